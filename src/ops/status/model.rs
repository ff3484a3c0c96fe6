//! What a status is: the repository's part, this host's, the server's, and the verdict.

use std::path::PathBuf;

use serde::Serialize;

use super::server::ServerStatus;
use crate::replication::ConnectOptions;
use crate::state::stats::Stats;
use crate::units::UtcTime;

/// The newest backup.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NewestBackup {
    /// Its id.
    pub id: String,
    /// When it finished.
    pub stop_time: UtcTime,
    /// Seconds since then.
    pub age_seconds: i64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Seconds it took.
    pub duration_seconds: i64,
}

/// A run of missing segments.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GapStatus {
    /// The timeline.
    pub timeline: u32,
    /// The first missing segment.
    pub first: String,
    /// The last missing segment.
    pub last: String,
    /// How many.
    pub segments: u64,
    /// Whether it lies after the newest backup's start (recovery from it stops there).
    pub after_newest_backup: bool,
}

/// What the repository holds.
#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct RepoStatus {
    /// The repository URL.
    pub url: String,
    /// Whether it could be read.
    pub reachable: bool,
    /// Why not, if not.
    pub error: Option<String>,
    /// Its cluster's system identifier.
    pub system_identifier: Option<String>,
    /// Backups with a descriptor.
    pub backups: u64,
    /// Backups being taken (or left by failed ones).
    pub backups_without_descriptor: u64,
    /// The newest backup.
    pub newest_backup: Option<NewestBackup>,
    /// The oldest moment a restore can reach (the oldest backup's stop time).
    pub oldest_restorable: Option<UtcTime>,
    /// The newest archived WAL segment.
    pub newest_wal: Option<String>,
    /// When it was archived.
    pub newest_wal_time: Option<UtcTime>,
    /// Seconds since then.
    pub newest_wal_age_seconds: Option<i64>,
    /// Archived WAL objects.
    pub wal_objects: u64,
    /// Gaps in the archived WAL.
    pub wal_gaps: Vec<GapStatus>,
    /// Bytes of WAL stored.
    pub wal_bytes: u64,
    /// Bytes of backups stored.
    pub backup_bytes: u64,
    /// WAL folders listed for this status (the rest came from the cache).
    pub folders_listed: usize,
}

/// Everything `status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// When it was taken.
    pub at: UtcTime,
    /// The repository.
    pub repo: RepoStatus,
    /// This host's counters, with `--pgdata`.
    pub host: Option<HostStatus>,
    /// The server, with `-d`.
    pub server: Option<ServerStatus>,
    /// Against the thresholds.
    pub health: Health,
}

/// This host's counters and backlog.
#[derive(Clone, Debug, Serialize)]
pub struct HostStatus {
    /// The data directory.
    pub pgdata: PathBuf,
    /// `.ready` files waiting now.
    pub ready_files: u64,
    /// What the commands recorded.
    pub stats: Stats,
}

/// Why `status` exits non-zero (after printing the status).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A threshold is crossed, or something is wrong.
    #[error("unhealthy: {0}")]
    Unhealthy(String),
    /// The repository could not be read.
    #[error("the repository cannot be read: {0}")]
    Unreadable(String),
}

impl Status {
    /// `Ok` when healthy, else why not.
    pub fn verdict(&self) -> Result<(), StatusError> {
        if !self.repo.reachable {
            return Err(StatusError::Unreadable(self.repo.error.clone().unwrap_or_default()));
        }
        if self.health.healthy { Ok(()) } else { Err(StatusError::Unhealthy(self.health.reasons.join("; "))) }
    }
}

/// What `status` is asked.
#[derive(Clone, Debug, Default)]
pub struct StatusRequest {
    /// The data directory whose `pg_wal/.walvault` holds this host's counters.
    pub pgdata: Option<PathBuf>,
    /// The server to ask (an SQL session).
    pub server: Option<ConnectOptions>,
}

/// Healthy, or why not.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Health {
    /// Every threshold met, nothing wrong.
    pub healthy: bool,
    /// What is wrong, one line each.
    pub reasons: Vec<String>,
}
