//! walvault's state directory on the PostgreSQL host, `pg_wal/.walvault/`, shared by wal-push and
//! wal-fetch: records of segments pushed ahead of PostgreSQL's request (written only after their
//! upload is durable, kept until PostgreSQL marks them done), and a cache of the repository
//! identity already checked. PostgreSQL's `archive_status` files are only read
//! ([`archive_status`]); claims on segments being uploaded are [`claims`]'s, detached helpers and
//! their locks [`daemon`]'s, the counters of what the commands did [`stats`]'.
//!
//! A record that is missing, unreadable, for another repository, or whose SHA-256 does not match
//! the local file is simply not trusted: the segment is pushed again (create-only, so an object
//! that is already there is verified, never overwritten).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::wal::name::WalFileName;

pub mod archive_status;
pub mod claims;
pub mod daemon;
pub mod stats;

/// Name of the state directory inside `pg_wal`.
pub const STATE_DIR: &str = ".walvault";
/// Records older than this are re-checked against the repository before they are trusted.
pub const RECORD_TRUST: Duration = Duration::from_secs(3600);

/// A segment uploaded ahead of PostgreSQL's request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushedRecord {
    /// The WAL file name.
    pub name: String,
    /// SHA-256 (hex) of the bytes uploaded.
    pub sha256: String,
    /// XXH3-128 (hex) of the same bytes, from the same read as the SHA-256, where the upload
    /// computed it: what a call confirming the file compares (a record without it is confirmed
    /// by the SHA-256, as records of earlier versions are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3: Option<String>,
    /// Their length.
    pub len: u64,
    /// The repository URL it was uploaded to.
    pub repo: String,
    /// When the upload became durable (seconds since the epoch).
    pub pushed_at: u64,
}

/// The repository identity already checked by an earlier call.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdentityCache {
    /// The repository URL.
    pub repo: String,
    /// Its system identifier.
    pub system_identifier: String,
}

/// The state directory beside a WAL file.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state directory for WAL files in `pg_wal` (the directory `%p` is in).
    pub fn in_wal_dir(pg_wal: &Path) -> StateDir {
        StateDir { dir: pg_wal.join(STATE_DIR) }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn pushed_dir(&self) -> PathBuf {
        self.dir.join("pushed")
    }

    /// The record for `name`, if there is a readable one.
    pub fn pushed(&self, name: &WalFileName) -> Option<PushedRecord> {
        let text = std::fs::read(self.pushed_dir().join(name.to_string())).ok()?;
        serde_json::from_slice(&text).ok().filter(|r: &PushedRecord| r.name == name.to_string())
    }

    /// Records that `name` is durably in the repository. Call only after the upload succeeded.
    pub fn record_pushed(&self, record: &PushedRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        write_atomic(&self.pushed_dir(), &record.name, &json)
    }

    /// Drops the record for `name` (after PostgreSQL has been told, or when it is not trusted).
    pub fn forget(&self, name: &WalFileName) {
        let _ = std::fs::remove_file(self.pushed_dir().join(name.to_string()));
    }

    /// Removes records PostgreSQL no longer needs: of files it has marked archived (no `.ready`
    /// left) or removed. A record is kept until then, so the background pusher never takes up a
    /// file again between a call's answer and PostgreSQL marking it done.
    pub fn prune(&self, pg_wal: &Path) {
        let Ok(entries) = std::fs::read_dir(self.pushed_dir()) else { return };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(n) = name.to_str().filter(|n| !n.starts_with('.')) else { continue };
            if !pg_wal.join(n).exists() || !archive_status::is_ready(pg_wal, n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// The cached identity, if any.
    pub fn identity(&self) -> Option<IdentityCache> {
        serde_json::from_slice(&std::fs::read(self.dir.join("identity.json")).ok()?).ok()
    }

    /// Caches the identity checked against the repository.
    pub fn record_identity(&self, id: &IdentityCache) -> std::io::Result<()> {
        write_atomic(&self.dir, "identity.json", &serde_json::to_vec(id).map_err(std::io::Error::other)?)
    }
}

/// Creates `dir`, and its parent if that is missing too, never anything above: state lives in
/// `pg_wal/.walvault/…`, and a `pg_wal` removed under a background helper must stay removed.
pub fn make_dir(dir: &Path) -> std::io::Result<()> {
    let make = |d: &Path| match std::fs::create_dir(d) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    };
    match make(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            make(dir.parent().unwrap_or(Path::new(".")))?;
            make(dir)
        }
        r => r,
    }
}

/// Writes `dir/name` whole or not at all (temporary file, then rename).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    make_dir(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateDir::in_wal_dir(dir.path());
        let name: WalFileName = "000000010000000000000003".parse().unwrap();
        assert!(st.pushed(&name).is_none());
        let rec = PushedRecord {
            name: name.to_string(),
            sha256: "ab".repeat(32),
            xxh3: Some("cd".repeat(16)),
            len: 16,
            repo: "file:///r".into(),
            pushed_at: now_secs(),
        };
        st.record_pushed(&rec).unwrap();
        assert_eq!(st.pushed(&name), Some(rec));
        std::fs::write(st.pushed_dir().join(name.to_string()), b"{garbage").unwrap();
        assert!(st.pushed(&name).is_none());
        std::fs::write(st.pushed_dir().join(name.to_string()), b"").unwrap();
        assert!(st.pushed(&name).is_none());
        st.forget(&name);
        assert!(!st.pushed_dir().join(name.to_string()).exists());
    }

    #[test]
    fn make_dir_creates_two_levels_at_most() {
        let dir = tempfile::tempdir().unwrap();
        make_dir(&dir.path().join("a/b")).unwrap();
        make_dir(&dir.path().join("a/b")).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        assert!(make_dir(&dir.path().join("x/y/z")).is_err());
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn prune_drops_records_of_archived_or_vanished_files() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateDir::in_wal_dir(dir.path());
        let status = dir.path().join("archive_status");
        std::fs::create_dir_all(&status).unwrap();
        for n in ["000000010000000000000003", "000000010000000000000004", "000000010000000000000005"] {
            let rec = PushedRecord {
                name: n.into(),
                sha256: String::new(),
                xxh3: None,
                len: 0,
                repo: String::new(),
                pushed_at: 0,
            };
            st.record_pushed(&rec).unwrap();
        }
        // 3 is gone; 4 is still ready; 5 is archived (PostgreSQL renamed .ready to .done).
        std::fs::write(status.join("000000010000000000000003.ready"), b"").unwrap();
        for n in ["000000010000000000000004", "000000010000000000000005"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        std::fs::write(status.join("000000010000000000000004.ready"), b"").unwrap();
        std::fs::write(status.join("000000010000000000000005.done"), b"").unwrap();
        st.prune(dir.path());
        assert!(st.pushed(&"000000010000000000000003".parse().unwrap()).is_none());
        assert!(st.pushed(&"000000010000000000000004".parse().unwrap()).is_some());
        assert!(st.pushed(&"000000010000000000000005".parse().unwrap()).is_none());
    }
}
