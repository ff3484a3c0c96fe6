//! Integration tests against a real PostgreSQL and a real S3-compatible server (moto), running
//! the built binaries the way PostgreSQL runs them.
//!
//! Tests whose names start with `pg_` start PostgreSQL clusters; nextest runs at most two at a
//! time (see `.config/nextest.toml`).

mod support;

mod archive_recovery;
mod bad_input;
mod base_backup;
mod exit_codes;
mod latency;
mod replication;
mod restore;
mod throughput;
mod wal_commands;
