//! Why an object could not be encoded or decoded: one variant per cause, each with its own
//! message (a decoder error names the chunk, the key or the checksum concerned).

use thiserror::Error;

use crate::keys::KeyId;

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
