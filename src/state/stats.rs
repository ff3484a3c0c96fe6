//! What wal-push, wal-fetch, the background pusher and the prefetcher did on this host, for
//! `walvault status` and its metrics: `pg_wal/.walvault/stats.json`, counters and last events.
//!
//! Every process updates it under an exclusive `flock` on `stats.lock` (read, change, write a
//! temporary file, rename), so concurrent calls never lose a count and a reader never sees a
//! half-written file. A kill at any moment leaves the old file or the new one (and perhaps a
//! stray temporary file, replaced by the next writer). An unreadable file starts the counters
//! again from zero, with a warning; a failure to update is logged and never fails the call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::daemon::lock_blocking;
use super::{make_dir, write_atomic};
use crate::units::UtcTime;

/// The file, in the state directory.
pub const STATS_FILE: &str = "stats.json";
const LOCK_FILE: &str = "stats.lock";

/// The last time something happened.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: Option<UtcTime>,
    /// The WAL file concerned.
    pub file: String,
    /// What happened (for failures: the one-line message).
    pub message: String,
}

/// The counters of one kind of activity (PostgreSQL's calls, or a background helper's work).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Counters {
    /// Calls (or helper attempts) made.
    pub calls: u64,
    /// Files moved: archived (push) or restored (fetch).
    pub files: u64,
    /// Bytes of those files.
    pub raw_bytes: u64,
    /// Bytes stored (push) or downloaded (fetch) for them.
    pub stored_bytes: u64,
    /// Push: files already archived with the same contents. Fetch: files not in the archive.
    pub already: u64,
    /// Push: files pushed ahead and confirmed. Fetch: files served from the prefetch spool.
    pub ahead: u64,
    /// Failures, by kind (`storage`, `refused`, `config`, `corrupt`, `local`).
    pub failures: BTreeMap<String, u64>,
    /// The last success.
    pub last_success: Event,
    /// The last failure.
    pub last_failure: Event,
    /// Seconds of every call together (for a mean with `calls`).
    pub seconds_total: f64,
    /// The longest call, in seconds.
    pub seconds_max: f64,
}

/// Everything recorded on this host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Stats {
    /// PostgreSQL's `archive_command` calls.
    pub push: Counters,
    /// The background pusher's uploads ahead of PostgreSQL's calls.
    pub pusher: Counters,
    /// PostgreSQL's `restore_command` calls.
    pub fetch: Counters,
    /// The prefetcher's downloads.
    pub prefetch: Counters,
    /// `.ready` files waiting when a wal-push call last looked.
    pub ready_backlog: u64,
    /// When it looked.
    pub ready_backlog_at: Option<UtcTime>,
    /// When the last webhook alert about failing archiving went out (for its rate limit).
    pub push_alert_at: Option<UtcTime>,
    /// Whether that alert is still open (archiving has not recovered since).
    pub push_alert_open: bool,
}

/// One call's outcome, to add to a [`Counters`].
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A file moved: its bytes and what was stored or downloaded.
    Moved {
        /// Bytes of the file.
        raw: u64,
        /// Bytes stored or downloaded.
        stored: u64,
    },
    /// Push: already archived with the same contents. Fetch: not in the archive.
    Already,
    /// Push: pushed ahead, confirmed. Fetch: served from the spool.
    Ahead {
        /// Bytes of the file.
        raw: u64,
    },
    /// It failed.
    Failed {
        /// The kind (`storage`, `refused`, `config`, `corrupt`, `local`).
        kind: String,
        /// The one-line message.
        message: String,
    },
}

impl Counters {
    /// Adds one call for `file` that took `seconds`.
    pub fn add(&mut self, file: &str, outcome: &Outcome, seconds: f64, now: UtcTime) {
        self.calls += 1;
        self.seconds_total += seconds;
        self.seconds_max = self.seconds_max.max(seconds);
        let ok = |c: &mut Counters, message: &str| {
            c.last_success = Event { at: Some(now), file: file.to_string(), message: message.to_string() };
        };
        match outcome {
            Outcome::Moved { raw, stored } => {
                self.files += 1;
                self.raw_bytes += raw;
                self.stored_bytes += stored;
                ok(self, "moved");
            }
            Outcome::Already => {
                self.already += 1;
                ok(self, "already");
            }
            Outcome::Ahead { raw } => {
                self.ahead += 1;
                self.files += 1;
                self.raw_bytes += raw;
                ok(self, "ahead");
            }
            Outcome::Failed { kind, message } => {
                *self.failures.entry(kind.clone()).or_default() += 1;
                self.last_failure = Event { at: Some(now), file: file.to_string(), message: message.clone() };
            }
        }
    }

    /// Failures of every kind.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Whether the last event was a failure.
    pub fn failing(&self) -> bool {
        match (self.last_failure.at, self.last_success.at) {
            (Some(f), Some(s)) => f > s,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// The stats file of a state directory.
#[derive(Clone, Debug)]
pub struct StatsFile {
    dir: PathBuf,
}

impl StatsFile {
    /// The stats of the state directory `dir` (`pg_wal/.walvault`).
    pub fn in_state_dir(dir: &Path) -> StatsFile {
        StatsFile { dir: dir.to_path_buf() }
    }

    /// Reads the stats (zero when there are none yet).
    pub fn read(&self) -> Stats {
        match std::fs::read(self.dir.join(STATS_FILE)) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: not walvault stats ({e}); counting from zero",
                    self.dir.join(STATS_FILE).display()
                );
                Stats::default()
            }),
            Err(_) => Stats::default(),
        }
    }

    /// Changes the stats with `f` under the lock; returns what `f` returned and the new stats.
    /// A failure is logged, never returned: counting must not fail archiving.
    pub fn update<T>(&self, f: impl FnOnce(&mut Stats) -> T) -> Option<(T, Stats)> {
        let run = || -> std::io::Result<(T, Stats)> {
            make_dir(&self.dir)?;
            let _lock = lock_blocking(&self.dir.join(LOCK_FILE))?;
            let mut stats = self.read();
            let t = f(&mut stats);
            let json = serde_json::to_vec(&stats).map_err(std::io::Error::other)?;
            write_atomic(&self.dir, STATS_FILE, &json)?;
            Ok((t, stats))
        };
        match run() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("cannot update {}: {e}", self.dir.join(STATS_FILE).display());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_last_events() {
        let now: UtcTime = "2026-12-01T00:00:00Z".parse().unwrap();
        let later: UtcTime = "2026-12-01T00:01:00Z".parse().unwrap();
        let mut c = Counters::default();
        c.add("A", &Outcome::Moved { raw: 16, stored: 4 }, 0.5, now);
        c.add("B", &Outcome::Failed { kind: "storage".into(), message: "down".into() }, 2.0, later);
        assert_eq!((c.calls, c.files, c.raw_bytes, c.stored_bytes, c.failed()), (2, 1, 16, 4, 1));
        assert!(c.failing());
        assert_eq!(c.last_failure.file, "B");
        assert_eq!(c.seconds_max, 2.0);
        c.add("B", &Outcome::Ahead { raw: 16 }, 0.1, "2026-12-01T00:02:00Z".parse().unwrap());
        assert!(!c.failing());
    }

    #[test]
    fn concurrent_updates_lose_no_count() {
        let dir = tempfile::tempdir().unwrap();
        let f = StatsFile::in_state_dir(&dir.path().join(".walvault"));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        f.update(|s| {
                            s.push.add(
                                &format!("{i}"),
                                &Outcome::Moved { raw: 1, stored: 1 },
                                0.0,
                                UtcTime::now(),
                            )
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let s = f.read();
        assert_eq!((s.push.calls, s.push.files, s.push.raw_bytes), (400, 400, 400));
        std::fs::write(dir.path().join(".walvault").join(STATS_FILE), b"{garbage").unwrap();
        assert_eq!(f.read(), Stats::default());
    }
}
