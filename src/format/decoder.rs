//! Decoding: object bytes in (any split), verified original bytes out to a sink (no IO). The
//! trailer's length and SHA-256 are checked at [`Decoder::finish`]; nothing is trustworthy before.

use bytes::BytesMut;
use sha2::{Digest, Sha256};

use super::compress::{Decompressor, Sink};
use super::error::DecodeError;
use super::header::{Cipher, HEADER_LEN, Header, TRAILER_LEN, Trailer};
use super::seal::Seal;
use crate::keys::KeyRing;

/// How far past a failing chunk's position to look for where it belongs (error path only).
const REORDER_SEARCH: u64 = 256;

enum State {
    Header,
    Body { header: Header, seal: Option<Box<Seal>>, decomp: Decompressor },
}

/// Turns an object back into the original bytes, checking everything on the way.
pub struct Decoder<'k> {
    keys: &'k KeyRing,
    state: State,
    buf: BytesMut,
    index: u64,
    hasher: Sha256,
    len: u64,
    /// Where a chunk is decrypted to (the cipher opens out of place), reused for every chunk.
    plain: Vec<u8>,
}

impl<'k> Decoder<'k> {
    /// A decoder that opens encrypted objects with the keys in `keys`.
    pub fn new(keys: &'k KeyRing) -> Self {
        Decoder {
            keys,
            state: State::Header,
            buf: BytesMut::new(),
            index: 0,
            hasher: Sha256::new(),
            len: 0,
            plain: Vec::new(),
        }
    }

    /// The object header, once enough bytes have been fed.
    pub fn header(&self) -> Option<&Header> {
        match &self.state {
            State::Body { header, .. } => Some(header),
            State::Header => None,
        }
    }

    /// Bytes held back waiting for the rest of a chunk (bounded by the chunk size).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds more object bytes; decoded bytes go to `sink` (unverified until `finish`).
    pub fn update(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), DecodeError> {
        self.buf.extend_from_slice(input);
        if let State::Header = self.state {
            let Some(header) = Header::parse(&self.buf)? else {
                return Ok(());
            };
            let seal = self.seal_for(&header)?;
            let decomp = Decompressor::new(header.compression);
            let _ = self.buf.split_to(HEADER_LEN);
            self.state = State::Body { header, seal, decomp };
        }
        let State::Body { header, seal, decomp } = &mut self.state else {
            unreachable!("header parsed above")
        };
        let step = header.chunk_size as usize + header.overhead();
        // The final chunk holds at most chunk_size - 1 + TRAILER_LEN plaintext bytes, so with more
        // than that buffered the first chunk cannot be the final one.
        let max_final = header.chunk_size as usize - 1 + TRAILER_LEN + header.overhead();
        while self.buf.len() > max_final {
            let chunk = self.buf.split_to(step);
            let chunk = open(seal.as_deref(), self.index, false, &chunk, &mut self.plain)?;
            let (hasher, len) = (&mut self.hasher, &mut self.len);
            decomp.update(chunk, &mut |b: &[u8]| {
                hasher.update(b);
                *len += b.len() as u64;
                sink(b)
            })?;
            self.index += 1;
        }
        Ok(())
    }

    /// Ends the object: decodes the final chunk, then checks length and SHA-256 against the
    /// trailer. Only an `Ok` here means the bytes given to the sink are the original ones.
    pub fn finish(mut self, sink: &mut Sink<'_>) -> Result<Trailer, DecodeError> {
        let State::Body { header, seal, decomp } = &mut self.state else {
            return Err(DecodeError::Truncated);
        };
        if self.buf.len() < TRAILER_LEN + header.overhead() {
            return Err(DecodeError::Truncated);
        }
        let chunk = std::mem::take(&mut self.buf);
        let chunk = open(seal.as_deref(), self.index, true, &chunk, &mut self.plain)?;
        let (chunk, trailer) = chunk.split_at(chunk.len() - TRAILER_LEN);
        let trailer = Trailer::parse(trailer.try_into().expect("40 bytes"));
        let (hasher, len) = (&mut self.hasher, &mut self.len);
        decomp.update(chunk, &mut |b: &[u8]| {
            hasher.update(b);
            *len += b.len() as u64;
            sink(b)
        })?;
        decomp.finish()?;
        if self.len != trailer.len {
            return Err(DecodeError::LengthMismatch { expected: trailer.len, got: self.len });
        }
        let got: [u8; 32] = self.hasher.finalize().into();
        if got != trailer.sha256 {
            return Err(DecodeError::ChecksumMismatch {
                expected: hex::encode(trailer.sha256),
                got: hex::encode(got),
            });
        }
        Ok(trailer)
    }

    fn seal_for(&self, header: &Header) -> Result<Option<Box<Seal>>, DecodeError> {
        if header.cipher == Cipher::None {
            return Ok(None);
        }
        match self.keys.find(header.key_id) {
            Some(key) => Ok(Some(Box::new(Seal::new(&key.object_key(&header.salt), header.to_bytes())))),
            None if self.keys.ids().is_empty() => Err(DecodeError::MissingKey(header.key_id)),
            None => Err(DecodeError::WrongKey {
                object: header.key_id,
                configured: self.keys.ids().iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// Opens chunk `index` (its tag last) and returns its plaintext: the chunk itself without a
/// cipher, else decrypted into `plain`. On failure says why as precisely as it can.
fn open<'a>(
    seal: Option<&Seal>,
    index: u64,
    last: bool,
    chunk: &'a [u8],
    plain: &'a mut Vec<u8>,
) -> Result<&'a [u8], DecodeError> {
    let Some(seal) = seal else { return Ok(chunk) };
    let (sealed, tag) = chunk.split_at(chunk.len() - super::header::TAG_LEN);
    plain.resize(sealed.len(), 0);
    let idx = u32::try_from(index).map_err(|_| DecodeError::CorruptChunk(index))?;
    if seal.open(idx, last, sealed, tag, plain) {
        return Ok(plain);
    }
    // Error path only: find out what happened to give a precise message.
    if seal.open(idx, !last, sealed, tag, plain) {
        return Err(if last { DecodeError::Truncated } else { DecodeError::TrailingData });
    }
    for found in (0..index + REORDER_SEARCH).filter(|&f| f != index) {
        let Ok(f) = u32::try_from(found) else { break };
        if seal.open(f, false, sealed, tag, plain) || seal.open(f, true, sealed, tag, plain) {
            return Err(DecodeError::ReorderedChunk { index, found });
        }
    }
    Err(if last { DecodeError::CorruptFinalChunk(index) } else { DecodeError::CorruptChunk(index) })
}
