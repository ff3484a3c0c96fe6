//! The walvault object format (DESIGN §3) as a codec that does no IO: a header, the compressed
//! stream cut into fixed-size chunks (each sealed with AES-256-GCM when a key is set, STREAM
//! construction), and a trailer with the plaintext length and SHA-256 inside the last chunk.
//!
//! ```text
//! header  (56 bytes)  "WVLT" | version u8 | compression u8 | cipher u8 | 0u8 | chunk size u32 LE
//!                     | key id [8] | salt [32] | check: first 4 bytes of SHA-256 of the 52 before
//! chunks              chunk_size bytes of the compressed stream each (+16-byte tag when sealed);
//!                     the last holds the rest of the stream plus the 40-byte trailer
//! trailer (40 bytes)  plaintext length u64 LE | SHA-256 of the plaintext
//! ```
//! Sealed chunk `i` uses nonce `[0; 7] | i as u32 BE | last?1:0` under the object key
//! HKDF-SHA256(master, salt) with the whole header as associated data, so a flipped byte, a
//! reordered, dropped or spliced chunk, and a truncation each fail authentication.

mod compress;
mod decoder;
mod encoder;
mod seal;

use thiserror::Error;

pub use compress::{Compression, DEFAULT_ZSTD_LEVEL, Sink, compress_all};
pub use decoder::Decoder;
pub use encoder::Encoder;

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

/// Why bytes could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// The caller's trailer does not describe the bytes that were encoded.
    #[error("trailer says {trailer} bytes but {seen} were encoded")]
    LengthMismatch {
        /// The length in the trailer.
        trailer: u64,
        /// The bytes actually encoded.
        seen: u64,
    },
    /// More chunks than a 32-bit counter can number.
    #[error("object too large for its chunk size")]
    TooManyChunks,
}

/// Why an object could not be decoded; each cause has its own variant and message.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The object does not start with the walvault magic.
    #[error("not a walvault object (bad magic)")]
    NotAnObject,
    /// A format version this build does not know.
    #[error("object format version {0} is newer than this walvault understands; upgrade walvault")]
    UnsupportedVersion(u8),
    /// The header's check bytes or fields are wrong.
    #[error("the object header is corrupt ({0})")]
    CorruptHeader(&'static str),
    /// The object is encrypted but no key is configured.
    #[error("the object is encrypted with key {0} and no key is configured (set encryption_key_file)")]
    MissingKey(KeyId),
    /// The object is encrypted with a key that is not configured.
    #[error("the object was written with key {object}; configured keys are {configured}")]
    WrongKey {
        /// The key id in the object header.
        object: KeyId,
        /// The ids of the configured keys, comma-separated.
        configured: String,
    },
    /// A sealed chunk failed authentication: its bytes were changed.
    #[error("chunk {0} failed authentication: the object is corrupt")]
    CorruptChunk(u64),
    /// The final chunk failed authentication: cut short mid-chunk, or changed.
    #[error("final chunk {0} failed authentication: the object is truncated or corrupt")]
    CorruptFinalChunk(u64),
    /// A sealed chunk authenticates under another position: chunks were reordered.
    #[error("chunk {index} is chunk {found} of this object: its chunks are out of order")]
    ReorderedChunk {
        /// Where the chunk was found.
        index: u64,
        /// Where it belongs.
        found: u64,
    },
    /// The object ends before its last chunk.
    #[error("the object is truncated (it ends before its final chunk)")]
    Truncated,
    /// Bytes follow the final chunk.
    #[error("the object has data after its final chunk")]
    TrailingData,
    /// The compressed stream is damaged.
    #[error("the compressed stream is corrupt: {0}")]
    Decompress(String),
    /// The decoded length differs from the trailer's.
    #[error("decoded {got} bytes but the object says {expected}")]
    LengthMismatch {
        /// The trailer's length.
        expected: u64,
        /// What was decoded.
        got: u64,
    },
    /// The decoded SHA-256 differs from the trailer's.
    #[error("SHA-256 of the decoded bytes is {got} but the object says {expected}")]
    ChecksumMismatch {
        /// The trailer's SHA-256 (hex).
        expected: String,
        /// What was decoded (hex).
        got: String,
    },
    /// The sink (the caller's writer) failed.
    #[error("cannot write the decoded bytes: {0}")]
    Sink(std::io::Error),
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
    fn to_bytes(self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        b[..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..].copy_from_slice(&self.sha256);
        b
    }

    fn parse(b: &[u8; TRAILER_LEN]) -> Self {
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

#[cfg(test)]
mod tests;
