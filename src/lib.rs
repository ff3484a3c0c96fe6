//! walvault: PostgreSQL WAL archiving and recovery to object storage, compressed, encrypted and
//! verified.
//!
//! # Layout
//! - [`lsn`]: WAL positions, timelines, segment sizes and their arithmetic.
//! - [`walname`]: the file names PostgreSQL archives and asks for, parsed and printed.
//! - [`walheader`]: a segment's long page header (system identifier, segment size).
//! - [`keys`]: master keys, key ids, per-object key derivation, `keygen`.
//! - [`format`]: the object format (header, sealed chunks, trailer) as a codec without IO.
//! - [`config`]: flags, environment, TOML file and defaults resolved into one `Config`.
//! - [`retry`]: the one timeout-and-backoff helper every storage call goes through.
//! - [`storage`]: the object store built from the repo URL, and the key layout.
//! - [`replication`]: a PostgreSQL replication-protocol client (`IDENTIFY_SYSTEM`, `SHOW`, `BASE_BACKUP`).
//! - [`identity`]: `walvault.json`, the repository's cluster identity.
//! - [`state`]: wal-push's state directory (segments pushed ahead, identity cache).
//! - [`pipeline`]: blocking stages from a local file to an encoded object.
//! - [`object_io`]: streaming a stored object back through the decoder into a sink.
//! - [`daemon`]: starting a detached helper process, and the lock that keeps it alone.
//! - [`prefetch`]: wal-fetch's background prefetcher and its spool.
//! - [`claims`]: claims on WAL files being uploaded, shared by wal-push calls and the pusher.
//! - [`pusher`]: wal-push's background pusher, draining a backlog of ready files.
//! - [`push`]: `wal-push`, archiving one WAL file.
//! - [`fetch`]: `wal-fetch`, restoring one WAL file.
//! - [`exit`]: every exit code, decided in one place.
//! - [`list`]: `walvault list`, backups and archived WAL ranges.
//! - [`logging`]: the stderr logger.
//! - [`backup`]: `walvault base-backup`, the backup descriptor and its parts.
//! - [`restore`]: `walvault restore`, point-in-time restore from a base backup and archived WAL.
//! - [`cli`]: argument parsing and the entry points of the binaries.
#![deny(missing_docs)]

pub mod alloc;
pub mod backup;
pub mod claims;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod fetch;
pub mod format;
pub mod identity;
pub mod keys;
pub mod lazy_store;
pub mod list;
pub mod local_read;
pub mod logging;
pub mod lsn;
pub mod object_io;
pub mod pipeline;
pub mod prefetch;
pub mod push;
pub mod pusher;
pub mod replication;
pub mod restore;
pub mod retry;
pub mod state;
pub mod storage;
pub mod walheader;
pub mod walname;
