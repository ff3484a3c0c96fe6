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
//!
//! - `header`: the header and trailer as bytes, and the format's constants.
//! - `error`: why an object could not be encoded or decoded.
//! - `compress`: the codecs (zstd, lz4 in walvault's own framing, none), push-based.
//! - `zstd_stream`: zstd on libzstd's own context, without 1.5.7's pre-block splitter.
//! - `seal`: AES-256-GCM sealing of one chunk.
//! - `encoder`: bytes in, object pieces out.
//! - `decoder`: object bytes in, verified plaintext out.

mod compress;
mod decoder;
mod encoder;
mod error;
mod header;
mod seal;
mod zstd_stream;

#[cfg(test)]
use compress::compress_all;
pub use compress::{Compression, DEFAULT_ZSTD_LEVEL, Sink, compress_all_beside};
pub use decoder::Decoder;
pub use encoder::Encoder;
pub use error::{DecodeError, EncodeError};
pub use header::{
    Cipher, DEFAULT_CHUNK_SIZE, HEADER_LEN, Header, MAGIC, MAX_CHUNK_SIZE, TAG_LEN, TRAILER_LEN, Trailer,
    VERSION,
};

#[cfg(test)]
mod tests;
