//! walvault: PostgreSQL WAL archiving and recovery to object storage, compressed, encrypted and
//! verified.
//!
//! # Layout
//! Folders are layers, listed here from the bottom up: a module uses only modules listed before
//! it (and, inside its own folder, siblings that do not use it back); a command never uses
//! another command. `layering` (a test) checks both.
//!
//! Vocabulary: types and codecs, no network IO.
//! - [`wal`]: PostgreSQL's WAL vocabulary: positions, timelines, segment sizes ([`wal::lsn`]),
//!   file names ([`wal::name`]), a segment's long page header ([`wal::header`]), timeline
//!   history files ([`wal::history`]).
//! - [`keys`]: master keys, key ids, per-object key derivation, `keygen`.
//! - [`units`]: byte counts, sizes, durations and UTC times, parsed and printed once.
//! - [`tar`]: tar member boundaries for cutting parts ([`tar::split`]), a push-based tar reader
//!   for extraction ([`tar::read`]).
//! - [`format`]: the object format (header, sealed chunks, trailer) as a codec without IO.
//!
//! Settings.
//! - [`config`]: flags, environment, TOML file and defaults resolved into one `Config`; why one is
//!   unusable ([`config::error`]); the one pattern every `[table]` follows ([`config::table`]);
//!   `[retention]` ([`config::retention`]); `[verify]` ([`config::verify`]); `[notify]`
//!   ([`config::notify`]); `[status]` ([`config::status`]).
//!
//! The repository: what is stored where.
//! - [`repo`]: the object store built from the repo URL ([`repo::Storage`]), its errors
//!   ([`repo::error`]), clients built on first use ([`repo::lazy`]), large-block reads of local
//!   objects ([`repo::local_read`]), the one retry helper ([`repo::retry`]), every object key
//!   ([`repo::layout`]), `walvault.json` ([`repo::identity`]), backup descriptors
//!   ([`repo::descriptor`]), logical dumps' descriptors and inventory ([`repo::dumps`]), and the
//!   WAL inventory per timeline ([`repo::inventory`]), and the last step of a backup or dump,
//!   its descriptor after the handshake with a racing `delete` ([`repo::seal`]).
//! - [`object`]: one object between local bytes and the repository: encoding a file
//!   ([`object::encode`]), reading an object back verified ([`object::read`]), a resuming
//!   download stream ([`object::download`]), a stream stored as objects with bounded memory
//!   ([`object::stream`]).
//! - [`replication`]: a PostgreSQL replication-protocol client (`IDENTIFY_SYSTEM`, `SHOW`,
//!   `BASE_BACKUP`).
//! - [`pgbin`]: PostgreSQL's programs of one major version (`pg_dump`, `pg_restore`, `postgres`, …).
//!
//! The PostgreSQL host.
//! - [`state`]: `pg_wal/.walvault`, shared by wal-push and wal-fetch: records of segments pushed
//!   ahead, the identity cache ([`state`]), PostgreSQL's `.ready` files, read only
//!   ([`state::archive_status`]), claims on segments being uploaded ([`state::claims`]), detached
//!   helpers and their locks ([`state::daemon`]), the counters `status` reports ([`state::stats`]).
//! - [`shutdown`]: the SIGINT/SIGTERM future every long command selects on.
//! - [`notify`]: webhook alerts: the events, their payloads ([`notify`]), the POST
//!   ([`notify::send`]).
//!
//! Commands: one folder each, using everything above, never a sibling.
//! - [`wal_push`]: `wal-push`, archiving one WAL file; the upload engine
//!   ([`wal_push::upload`]), files over 64 MiB streamed through a temporary object
//!   ([`wal_push::large`]) and the background pusher ([`wal_push::pusher`]).
//! - [`wal_fetch`]: `wal-fetch`, restoring one WAL file; the prefetcher ([`wal_fetch::prefetch`]).
//! - [`backup`]: `walvault base-backup`, streaming a base backup into parts.
//! - [`restore`]: `walvault restore`, point-in-time restore from a base backup and archived WAL.
//! - [`dump`]: `walvault dump`, `dump-restore` and `dump-fetch`: logical dumps ([`dump::take`],
//!   [`dump::restore`], [`dump::error`], [`dump::child`]).
//! - [`ops`]: the operations commands: `list` ([`ops::list`]), `delete` ([`ops::retention`]),
//!   `mark` ([`ops::mark`]), `verify` and restore drills ([`ops::verify`]), `status` and its
//!   metrics ([`ops::status`]), `check` ([`ops::check`]).
//!
//! Front end.
//! - [`cli`]: argument parsing and the one run helper of every command ([`cli`]), exit codes
//!   ([`cli::exit`]), the stderr logger ([`cli::logging`]), the `--help` examples
//!   ([`cli::help`]), completions and manual pages ([`cli::generate`]), the allocator setting
//!   ([`cli::alloc`]), what wal-push and wal-fetch calls add to the host's stats and the alerts
//!   they hand to a detached sender ([`cli::record`]).
#![deny(missing_docs)]

pub mod wal;

pub mod format;
pub mod keys;
pub mod tar;
pub mod units;

pub mod config;

pub mod object;
pub mod pgbin;
pub mod replication;
pub mod repo;

pub mod notify;
pub mod shutdown;
pub mod state;

pub mod backup;
pub mod dump;
pub mod ops;
pub mod restore;
pub mod wal_fetch;
pub mod wal_push;

pub mod cli;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod layering;
