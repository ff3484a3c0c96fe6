//! Tar, as base backups carry it, without IO: [`split`] finds member boundaries in a stream so
//! an archive can be cut into parts of whole members; [`read`] turns a part's bytes back into
//! members for extraction.

pub mod read;
pub mod split;
#[cfg(test)]
pub mod testutil;
