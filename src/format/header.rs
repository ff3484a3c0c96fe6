//! The object header (56 bytes: magic, version, codec, cipher, chunk size, key id, salt, check)
//! and trailer (40 bytes: plaintext length and SHA-256), as bytes and back; and the format's
//! constants.

use super::compress::Compression;
use super::error::DecodeError;
use crate::keys::KeyId;

/// The magic at the start of every object.
pub const MAGIC: &[u8; 4] = b"WVLT";
/// The format version this code writes.
pub const VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 56;
/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 40;
/// Bytes of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// The default plaintext bytes per chunk.
pub const DEFAULT_CHUNK_SIZE: u32 = 256 * 1024;
/// The largest chunk size a decoder accepts (bounds its memory).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// The cipher an object's chunks are sealed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// Stored in the clear (integrity from the trailer's SHA-256 only).
    None,
    /// AES-256-GCM, STREAM construction.
    Aes256Gcm,
}

/// The decoded object header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// How the body is compressed.
    pub compression: Compression,
    /// How the chunks are sealed.
    pub cipher: Cipher,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The id of the master key (zero when not encrypted).
    pub key_id: KeyId,
    /// The per-object salt for key derivation.
    pub salt: [u8; 32],
}

/// The plaintext length and SHA-256 carried in the last chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Bytes of the original file.
    pub len: u64,
    /// SHA-256 of the original file.
    pub sha256: [u8; 32],
}

impl Header {
    /// The 56 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = self.compression.code();
        b[6] = match self.cipher {
            Cipher::None => 0,
            Cipher::Aes256Gcm => 1,
        };
        b[8..12].copy_from_slice(&self.chunk_size.to_le_bytes());
        b[12..20].copy_from_slice(&self.key_id.0);
        b[20..52].copy_from_slice(&self.salt);
        let check = <sha2::Sha256 as sha2::Digest>::digest(&b[..52]);
        b[52..56].copy_from_slice(&check[..4]);
        b
    }

    /// Parses a header; `Ok(None)` while fewer than [`HEADER_LEN`] bytes are available.
    pub fn parse(b: &[u8]) -> Result<Option<Header>, DecodeError> {
        let magic_seen = b.len().min(4);
        if b[..magic_seen] != MAGIC[..magic_seen] {
            return Err(DecodeError::NotAnObject);
        }
        if b.len() < HEADER_LEN {
            return Ok(None);
        }
        let check = <sha2::Sha256 as sha2::Digest>::digest(&b[..52]);
        if check[..4] != b[52..56] {
            if b[4] != VERSION {
                return Err(DecodeError::UnsupportedVersion(b[4]));
            }
            return Err(DecodeError::CorruptHeader("check bytes do not match"));
        }
        if b[4] != VERSION {
            return Err(DecodeError::UnsupportedVersion(b[4]));
        }
        let compression =
            Compression::from_code(b[5]).ok_or(DecodeError::CorruptHeader("unknown compression"))?;
        let cipher = match b[6] {
            0 => Cipher::None,
            1 => Cipher::Aes256Gcm,
            _ => return Err(DecodeError::CorruptHeader("unknown cipher")),
        };
        let chunk_size = u32::from_le_bytes(b[8..12].try_into().expect("4"));
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(DecodeError::CorruptHeader("impossible chunk size"));
        }
        Ok(Some(Header {
            compression,
            cipher,
            chunk_size,
            key_id: KeyId(b[12..20].try_into().expect("8")),
            salt: b[20..52].try_into().expect("32"),
        }))
    }

    /// Bytes a sealed chunk adds to its plaintext.
    pub fn overhead(&self) -> usize {
        match self.cipher {
            Cipher::None => 0,
            Cipher::Aes256Gcm => TAG_LEN,
        }
    }
}

impl Trailer {
    pub(super) fn to_bytes(self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        b[..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..].copy_from_slice(&self.sha256);
        b
    }

    pub(super) fn parse(b: &[u8; TRAILER_LEN]) -> Self {
        Trailer {
            len: u64::from_le_bytes(b[..8].try_into().expect("8")),
            sha256: b[8..].try_into().expect("32"),
        }
    }

    /// The trailer of `data` (length and SHA-256).
    pub fn of(data: &[u8]) -> Self {
        Trailer { len: data.len() as u64, sha256: <sha2::Sha256 as sha2::Digest>::digest(data).into() }
    }
}
