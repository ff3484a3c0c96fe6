//! `walvault status`: is WAL being archived now, how much would a disaster lose this minute, are
//! backups fresh. Three sources, each optional but the first:
//!
//! - the repository ([`scan`]: incremental, never a whole listing): backups, the newest one's
//!   age, size and duration, the oldest restorable moment, the newest archived WAL and its age,
//!   WAL gaps, bytes stored;
//! - this host's counters (`--pgdata`: what wal-push, wal-fetch and their helpers recorded in
//!   `pg_wal/.walvault/stats.json`), and the `.ready` backlog;
//! - the server (`-d CONNINFO`, an SQL session, [`server`]): its WAL position,
//!   `pg_stat_archiver`, and the recovery point objective now: bytes and seconds of WAL written
//!   but not archived.
//!
//! [`model`] holds what a status is; [`health`] checks it against `[status]`'s thresholds (a
//! pure function); [`render`] prints text or Prometheus's exposition format (pure); [`listen`]
//! serves `/metrics` and `/health`, refreshing in the background.

pub mod health;
pub mod listen;
pub mod model;
pub mod render;
pub mod scan;
pub mod server;

use crate::config::Config;
use crate::repo::identity;
use crate::repo::{Storage, StorageError};
use crate::state::STATE_DIR;
use crate::state::archive_status::ready_count;
use crate::state::stats::StatsFile;
use crate::units::UtcTime;
use crate::wal::WalSegSize;
pub use model::{GapStatus, HostStatus, NewestBackup, RepoStatus, Status, StatusError, StatusRequest};
use scan::{Cache, Scanned};

/// Takes a status at `now`, refreshing `cache`.
pub async fn status(cfg: &Config, storage: &Storage, req: &StatusRequest, cache: &mut Cache) -> Status {
    let now = UtcTime::now();
    let repo = repo_status(storage, cache, now).await;
    let host = req.pgdata.as_ref().map(|d| {
        let pg_wal = d.join("pg_wal");
        HostStatus {
            pgdata: d.clone(),
            ready_files: ready_count(&pg_wal),
            stats: StatsFile::in_state_dir(&pg_wal.join(STATE_DIR)).read(),
        }
    });
    let server = match &req.server {
        Some(opts) => Some(server::query(opts, now).await),
        None => None,
    };
    let health = health::check(&cfg.status, &repo, host.as_ref(), server.as_ref());
    Status { at: now, repo, host, server, health }
}

async fn repo_status(storage: &Storage, cache: &mut Cache, now: UtcTime) -> RepoStatus {
    let mut r = RepoStatus { url: storage.url().to_string(), ..RepoStatus::default() };
    let scanned: Result<(Option<identity::Identity>, Scanned), StorageError> = async {
        let id = identity::read(storage).await.map_err(|e| match e {
            identity::IdentityError::Storage(e) => e,
            other => StorageError::Config(other.to_string()),
        })?;
        let s = cache.refresh(storage, now).await?;
        Ok((id, s))
    }
    .await;
    let (id, s) = match scanned {
        Ok(x) => x,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.reachable = true;
    r.folders_listed = s.folders_listed;
    let seg_size = id
        .as_ref()
        .and_then(|i| WalSegSize::new(u64::from(i.wal_segment_size)).ok())
        .unwrap_or(WalSegSize::DEFAULT);
    r.system_identifier = id.map(|i| i.system_identifier);
    r.backups = s.backups.len() as u64;
    r.backups_without_descriptor = s.without_descriptor.len() as u64;
    r.backup_bytes = s.backups.iter().map(|b| b.stored_bytes).sum();
    let secs = |t: UtcTime| now.seconds_since(t);
    let newest = s.backups.last();
    r.newest_backup = newest.map(|b| NewestBackup {
        id: b.id.clone(),
        stop_time: b.stop_time,
        age_seconds: secs(b.stop_time),
        stored_bytes: b.stored_bytes,
        duration_seconds: b.stop_time.seconds_since(b.start_time),
    });
    r.oldest_restorable = s.backups.iter().map(|b| b.stop_time).min();
    if let Some((name, at)) = cache.newest_wal() {
        r.newest_wal = Some(name);
        r.newest_wal_time = Some(at);
        r.newest_wal_age_seconds = Some(secs(at));
    }
    let ranges = cache.ranges(seg_size);
    r.wal_objects = cache.folders.values().map(|f| f.names.len() as u64).sum();
    r.wal_bytes = cache.wal_bytes();
    let newest_start = newest.map(|b| (b.timeline.get(), b.start_lsn.segment_no(seg_size)));
    for t in &ranges {
        for g in &t.gaps {
            let first_no = g
                .first
                .parse::<crate::wal::WalFileName>()
                .ok()
                .and_then(|n| n.segment())
                .map(|s| s.segno(seg_size));
            let after = match (newest_start, first_no) {
                (Some((tli, start)), Some(n)) => t.timeline >= tli && n >= start,
                _ => false,
            };
            r.wal_gaps.push(GapStatus {
                timeline: t.timeline,
                first: g.first.clone(),
                last: g.last.clone(),
                segments: g.segments,
                after_newest_backup: after,
            });
        }
    }
    r
}
