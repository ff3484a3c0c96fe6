//! Encoding: original bytes in, header + compressed, sealed chunks out (no IO).

use bytes::{Bytes, BytesMut};

use super::compress::{Compression, Compressor};
use super::error::EncodeError;
use super::header::{Cipher, HEADER_LEN, Header, Trailer};
use super::seal::Seal;
use crate::keys::MasterKey;

/// Turns a stream of original bytes into an object. Feed it with [`Encoder::update`], end it with
/// [`Encoder::finish`]; the pieces to store come out in order (header first).
pub struct Encoder {
    header: [u8; HEADER_LEN],
    chunk_size: usize,
    compressor: Compressor,
    seal: Option<Seal>,
    pending: BytesMut,
    index: u64,
    consumed: u64,
    produced: u64,
    /// Fed with an already compressed stream ([`Encoder::for_compressed`]).
    precompressed: bool,
}

impl Encoder {
    /// An encoder with a fresh random salt. `size_hint` is the exact input size when known.
    pub fn new(
        compression: Compression,
        key: Option<&MasterKey>,
        chunk_size: u32,
        size_hint: Option<u64>,
    ) -> Self {
        Self::with_workers(compression, key, chunk_size, size_hint, 0)
    }

    /// Like [`Encoder::new`], with zstd compressing on `workers` threads of its own (0: on the
    /// caller's thread). For long streams such as base backups.
    pub fn with_workers(
        compression: Compression,
        key: Option<&MasterKey>,
        chunk_size: u32,
        size_hint: Option<u64>,
        workers: u32,
    ) -> Self {
        assert!(chunk_size > 0 && chunk_size <= super::header::MAX_CHUNK_SIZE, "chunk size out of range");
        let mut salt = [0u8; 32];
        rand::fill(&mut salt);
        let header = Header {
            compression,
            cipher: if key.is_some() { Cipher::Aes256Gcm } else { Cipher::None },
            chunk_size,
            key_id: key.map(MasterKey::id).unwrap_or_default(),
            salt,
        }
        .to_bytes();
        let seal = key.map(|k| Seal::new(&k.object_key(&salt), header));
        Encoder {
            header,
            chunk_size: chunk_size as usize,
            compressor: Compressor::new(compression, size_hint, workers),
            seal,
            pending: BytesMut::with_capacity(chunk_size as usize),
            index: 0,
            consumed: 0,
            produced: HEADER_LEN as u64,
            precompressed: false,
        }
    }

    /// An encoder fed with a stream already compressed with `compression` (by
    /// [`super::compress_all_beside`]); it only cuts and seals. The trailer given to
    /// [`Encoder::finish`] still describes the original bytes.
    pub fn for_compressed(compression: Compression, key: Option<&MasterKey>, chunk_size: u32) -> Self {
        let mut enc = Self::new(Compression::None, key, chunk_size, None);
        let mut header = Header::parse(&enc.header).expect("own header").expect("whole header");
        header.compression = compression;
        enc.header = header.to_bytes();
        enc.seal = key.map(|k| Seal::new(&k.object_key(&header.salt), enc.header));
        enc.precompressed = true;
        enc
    }

    /// The header: the first bytes of the object.
    pub fn header(&self) -> Bytes {
        Bytes::copy_from_slice(&self.header)
    }

    /// Encodes more input; finished chunks are appended to `out`.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<Bytes>) -> Result<(), EncodeError> {
        self.consumed += input.len() as u64;
        self.compressor.update(input, &mut self.pending);
        self.drain_full(out)
    }

    /// Takes (a piece of) an already compressed stream (see [`Encoder::for_compressed`]) by
    /// value: it becomes the chunks without being copied, each sealed in place. Only the bytes
    /// that complete a chunk held back from the piece before are copied (less than a chunk).
    pub fn update_owned(&mut self, mut buf: BytesMut, out: &mut Vec<Bytes>) -> Result<(), EncodeError> {
        self.consumed += buf.len() as u64;
        if !self.pending.is_empty() {
            // Less than a chunk is held back (drain_full): complete it from the head of `buf`.
            let take = (self.chunk_size - self.pending.len()).min(buf.len());
            self.pending.extend_from_slice(&buf.split_to(take));
            self.drain_full(out)?;
            if buf.is_empty() {
                return Ok(());
            }
        }
        debug_assert!(self.pending.is_empty());
        self.pending = buf;
        self.drain_full(out)
    }

    /// Ends the object with `trailer` (which must describe exactly the bytes fed in); the last
    /// chunks are appended to `out`. Returns the object's total size in bytes.
    pub fn finish(mut self, trailer: Trailer, out: &mut Vec<Bytes>) -> Result<u64, EncodeError> {
        if !self.precompressed && trailer.len != self.consumed {
            return Err(EncodeError::LengthMismatch { trailer: trailer.len, seen: self.consumed });
        }
        let compressor = std::mem::replace(&mut self.compressor, Compressor::None);
        compressor.finish(&mut self.pending);
        self.drain_full(out)?;
        let mut last = std::mem::take(&mut self.pending);
        last.extend_from_slice(&trailer.to_bytes());
        self.emit(last, true, out)?;
        Ok(self.produced)
    }

    /// Compressed bytes held back waiting to fill a chunk (bounded by the chunk size plus one
    /// input piece's output).
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of input consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    fn drain_full(&mut self, out: &mut Vec<Bytes>) -> Result<(), EncodeError> {
        while self.pending.len() >= self.chunk_size {
            let chunk = self.pending.split_to(self.chunk_size);
            self.emit(chunk, false, out)?;
        }
        Ok(())
    }

    fn emit(&mut self, mut chunk: BytesMut, last: bool, out: &mut Vec<Bytes>) -> Result<(), EncodeError> {
        self.produced += chunk.len() as u64;
        if let Some(seal) = &self.seal {
            let index = u32::try_from(self.index).map_err(|_| EncodeError::TooManyChunks)?;
            let tag = seal.seal(index, last, &mut chunk);
            out.push(chunk.freeze());
            out.push(Bytes::copy_from_slice(&tag));
            self.produced += tag.len() as u64;
        } else {
            out.push(chunk.freeze());
        }
        self.index += 1;
        Ok(())
    }
}
