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
mod config_sweep;
mod deploy_compose;
mod deploy_manifests;
mod disk_full;
mod dump_rows;
mod dumps;
mod exit_codes;
mod failover;
mod fetch_misses;
mod kill_storm;
mod large_push;
mod latency;
mod limits;
mod monitoring;
mod postgres_tap;
mod replication;
mod restore;
mod retention;
mod secrets;
mod storage;
mod storage_faults;
mod tamper;
mod throughput;
mod tutorial;
mod verify;
mod verify_dumps;
mod wal_commands;
