//! Claims on WAL files being uploaded, so the background pusher and PostgreSQL's own wal-push
//! calls never encode the same segment at once: `pg_wal/.walvault/pushing/<name>`.
//!
//! A claim is live while some process holds an exclusive `flock` on the file at that path. It is
//! made by `link()`ing an already-locked temporary file into place, so nobody ever sees it
//! unlocked while its maker lives; it is released by unlinking it before closing it. A claim file
//! whose lock can be taken belongs to a process that died: whoever takes its lock (and still
//! finds that very file at the path) owns it. Only an owner ever unlinks a claim.
//!
//! A claim only avoids duplicate work: what makes a call answer 0 is still a record of a durable
//! upload (see [`crate::state`]) or its own upload.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::state::daemon::lock_nb;
use crate::wal::name::WalFileName;

/// How often a waiting call tries a busy claim again.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// The claims directory of a state directory.
#[derive(Clone, Debug)]
pub struct Claims {
    dir: PathBuf,
}

/// A live claim on one file; released when dropped.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    _file: File,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Unlink while still holding the lock: a waiter that then gets the lock sees the file is
        // no longer at the path and does not mistake it for a dead claimant's.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Claims {
    /// The claims inside the state directory `state_dir` (`pg_wal/.walvault`).
    pub fn in_state_dir(state_dir: &Path) -> Claims {
        Claims { dir: state_dir.join("pushing") }
    }

    /// Claims `name`, or `Ok(None)` if a live process holds it.
    pub fn try_claim(&self, name: &WalFileName) -> std::io::Result<Option<Claim>> {
        crate::state::make_dir(&self.dir)?;
        let path = self.dir.join(name.to_string());
        let tmp =
            self.dir.join(format!(".{name}.{}.{:?}.tmp", std::process::id(), std::thread::current().id()));
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        if !lock_nb(&file) {
            let _ = std::fs::remove_file(&tmp);
            return Err(std::io::Error::other(format!("cannot lock {}", tmp.display())));
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(Some(Claim { path, _file: file })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        drop(file);
        // Someone's claim is there: take it over only if its maker is gone.
        let existing = match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            // Released in the meantime: try again from the start.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.try_claim(name),
            Err(e) => return Err(e),
        };
        if !lock_nb(&existing) {
            return Ok(None);
        }
        let same = match (existing.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            tracing::debug!("taking over the claim on {name} left by a process that died");
            Ok(Some(Claim { path, _file: existing }))
        } else {
            // Its owner released it while we opened it; a new one may be there now.
            drop(existing);
            self.try_claim(name)
        }
    }

    /// Claims `name`, waiting up to `limit` while a live process holds it; `Ok(None)` after the
    /// limit.
    pub fn claim_waiting(&self, name: &WalFileName, limit: Duration) -> std::io::Result<Option<Claim>> {
        let start = Instant::now();
        loop {
            if let Some(c) = self.try_claim(name)? {
                return Ok(Some(c));
            }
            if start.elapsed() >= limit {
                return Ok(None);
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// Whether a live process holds a claim on `name`.
    pub fn is_claimed(&self, name: &WalFileName) -> bool {
        std::fs::File::open(self.dir.join(name.to_string())).is_ok_and(|f| !lock_nb(&f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> WalFileName {
        "000000010000000000000003".parse().unwrap()
    }

    #[test]
    fn one_live_claim_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::in_state_dir(dir.path());
        let held = claims.try_claim(&name()).unwrap().expect("free");
        assert!(claims.is_claimed(&name()));
        assert!(claims.try_claim(&name()).unwrap().is_none());
        drop(held);
        assert!(!dir.path().join("pushing").join(name().to_string()).exists());
        assert!(!claims.is_claimed(&name()));
        assert!(claims.try_claim(&name()).unwrap().is_some());
        // No temporary files are left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("pushing")).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_dead_claimants_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::in_state_dir(dir.path());
        std::fs::create_dir_all(dir.path().join("pushing")).unwrap();
        // A claim file nobody holds a lock on: its maker was killed.
        std::fs::write(dir.path().join("pushing").join(name().to_string()), b"").unwrap();
        assert!(!claims.is_claimed(&name()));
        let c = claims.try_claim(&name()).unwrap().expect("stale claim taken over");
        assert!(claims.try_claim(&name()).unwrap().is_none());
        drop(c);
        assert!(claims.try_claim(&name()).unwrap().is_some());
    }

    #[test]
    fn a_waiter_gets_the_claim_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::in_state_dir(dir.path());
        let held = claims.try_claim(&name()).unwrap().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        let start = Instant::now();
        let got = claims.claim_waiting(&name(), Duration::from_secs(10)).unwrap();
        assert!(got.is_some());
        assert!(start.elapsed() >= Duration::from_millis(90));
        t.join().unwrap();
        drop(got);
        let held = claims.try_claim(&name()).unwrap().unwrap();
        assert!(claims.claim_waiting(&name(), Duration::from_millis(50)).unwrap().is_none());
        drop(held);
    }
}
