//! Integration tests against a real PostgreSQL and real storage servers (moto's S3 server, the
//! Azurite Azure Blob emulator, fake-gcs-server), running the built binaries the way PostgreSQL
//! runs them.
//!
//! Tests whose names start with `pg_` start PostgreSQL clusters; nextest runs at most two at a
//! time (see `.config/nextest.toml`).

mod support;

mod archive_recovery;
mod bad_input;
mod base_backup;
mod cli;
mod deploy_compose;
mod deploy_manifests;
mod disk_full;
mod dumps;
mod exit_codes;
mod latency;
mod monitoring;
mod replication;
mod restore;
mod retention;
mod storage;
mod storage_faults;
mod throughput;
mod tutorial;
mod verify;
mod verify_dumps;
mod wal_commands;
