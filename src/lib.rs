//! walvault: PostgreSQL WAL archiving and recovery to object storage, compressed, encrypted and
//! verified.
//!
//! # Layout
//! - [`lsn`]: WAL positions, timelines, segment sizes and their arithmetic.
//! - [`walname`]: the file names PostgreSQL archives and asks for, parsed and printed.
//! - [`walheader`]: a segment's long page header (system identifier, segment size).
//! - [`keys`]: master keys, key ids, per-object key derivation, `keygen`.
//! - [`format`]: the object format (header, sealed chunks, trailer) as a codec without IO.
#![deny(missing_docs)]

pub mod format;
pub mod keys;
pub mod lsn;
pub mod walheader;
pub mod walname;
