//! `wal-fetch`: restore one WAL file for PostgreSQL. One GET; the bytes go to a temporary file
//! beside the destination, are verified against the object's trailer, and only then renamed into
//! place. A missing object is reported as such only when the repository itself is really there.
//! Segments the background prefetcher (see [`prefetch`]) has already verified are taken
//! from its spool instead. Either way a segment's first page must be the segment its name says
//! (`segment_check`).
//!
//! What a miss means, by what the repository shows (a data directory has seen a repository once
//! a miss there found it real; a standby reaches streaming through a miss):
//!
//! | repository | first miss in this data directory | later misses |
//! |---|---|---|
//! | has `walvault.json` | 1, remembered in `pg_wal/.walvault/` | 1, one request |
//! | no `walvault.json`, but a timeline history file (its first segment is still to come) | 1, remembered | 1 |
//! | empty, or not walvault's layout (a wrong URL or prefix, a `cp` archive) | 202: recovery stops | — |
//! | `file://` directory missing, never seen here | 202 | — |
//! | `file://` directory seen here before, gone now, server in standby mode | — | 1 after an ERROR line: a standby keeps streaming |
//! | the same, not in standby mode (archive recovery) | — | 202: "not found" would end recovery early |

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

pub mod prefetch;
mod segment_check;

use crate::config::{Config, RepoUrl};
use crate::format::DecodeError;
use crate::object::read::{ObjectSink, ReadError, read_object};
use crate::repo::identity::{self, IdentityError};
use crate::repo::{Storage, StorageError, layout, missing_dir};
use crate::state::daemon::Launcher;
use crate::wal::name::{NameError, WalFileName};
use prefetch::{ClaimOrTaken, Spool, ensure_running};

/// The marker, in a state directory beside the destination, that remembers a repository was
/// seen to exist, so later misses cost one request.
const VERIFIED_MARKER: &str = "fetch-repo-verified";

/// Why a file was not restored.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The repository does not have the file (the only "normal" failure).
    #[error("{0} is not in the archive")]
    NotFound(String),
    /// The requested name is not a WAL file name.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// The repository has no identity: wrong URL or prefix, never "end of archive".
    #[error("repository {0} has no walvault.json: it is empty or repo points at the wrong place")]
    NoRepository(String),
    /// The local repository directory this data directory read from before has disappeared, and
    /// the server is not a standby: answering "not found" would end recovery early.
    #[error(
        "repository directory {0} has disappeared (this data directory read from it before): \
         recovery stops here rather than end early; restore the directory or fix repo"
    )]
    Vanished(PathBuf),
    /// The repository failed after retries.
    #[error(transparent)]
    Storage(StorageError),
    /// The repository identity is unreadable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The object is missing a key, or was written with another key.
    #[error("{name}: {source}")]
    Key {
        /// The WAL file.
        name: String,
        /// The key problem.
        source: DecodeError,
    },
    /// The object does not decode and verify.
    #[error("{name} is corrupt in the repository: {source}")]
    Corrupt {
        /// The WAL file.
        name: String,
        /// What is wrong.
        source: DecodeError,
    },
    /// The object decodes and verifies but holds another segment (renamed in the repository).
    #[error("{name} in the repository is not that segment: {why}")]
    NotItsSegment {
        /// The WAL file.
        name: String,
        /// What it holds instead.
        why: String,
    },
    /// The destination could not be written.
    #[error("cannot write {path}: {source}")]
    Local {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A temporary file beside the destination; removed unless renamed into place.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    fn create(dest: &Path) -> std::io::Result<TempFile> {
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = dest.file_name().and_then(|n| n.to_str()).unwrap_or("wal");
        let path = dir.join(format!(".{base}.walvault-{}.tmp", std::process::id()));
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        Ok(TempFile { path, file: Some(file) })
    }

    fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until persisted")
    }

    fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        drop(self.file.take());
        std::fs::rename(&self.path, dest)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl ObjectSink for TempFile {
    fn reset(&mut self) -> std::io::Result<()> {
        let f = self.file();
        f.set_len(0)?;
        f.rewind()?;
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file().write_all(bytes)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What a successful fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes of the WAL file.
    pub len: u64,
    /// It came from the prefetcher's spool (no request).
    pub from_spool: bool,
}

/// Fetches WAL file `name` into `dest`. With `prefetch` configured and a
/// launcher given, segments come from the prefetcher's spool when it has them, and the
/// prefetcher is started (once) to keep the next segments coming.
pub async fn fetch(
    cfg: &Config,
    storage: &Storage,
    name: &str,
    dest: &Path,
    launcher: Option<&Launcher>,
) -> Result<Fetched, FetchError> {
    let started = Instant::now();
    let wal: WalFileName = name.parse()?;
    let local = |source| FetchError::Local { path: dest.to_path_buf(), source };
    if let RepoUrl::Local(dir) = &cfg.repo
        && !dir.is_dir()
    {
        return Err(missing_local_repository(dir, storage, dest, name));
    }
    let mut _claim = None;
    if let (WalFileName::Segment(seg), Some(launcher), true) = (wal, launcher, cfg.prefetch > 0) {
        let spool = Spool::beside(dest);
        if let Err(e) = spool.set_want(seg) {
            tracing::warn!("prefetching is off: cannot write to {}: {e}", spool.path().display());
        } else {
            let from_spool = |t: prefetch::Taken| {
                tracing::info!(
                    "restored {name} ({} bytes) from the prefetch spool (re-checked by {}) in {} ms",
                    t.len,
                    t.checked_by,
                    started.elapsed().as_millis()
                );
                Ok(Fetched { len: t.len, from_spool: true })
            };
            if let Some(t) = spool.take(seg, dest, storage.url()) {
                ensure_running(&spool, launcher);
                return from_spool(t);
            }
            ensure_running(&spool, launcher);
            // Either we claim the segment and fetch it ourselves, or the prefetcher is on it.
            match spool.claim_or_take(seg, dest, storage.url(), cfg.timeout) {
                ClaimOrTaken::Taken(t) => return from_spool(t),
                ClaimOrTaken::Claimed(claim) => _claim = Some(claim),
                ClaimOrTaken::Neither => {}
            }
        }
    }
    let key = layout::wal(&wal);
    let mut tmp = TempFile::create(dest).map_err(local)?;
    match read_object(storage, &key, &cfg.keys, &mut tmp).await {
        Ok(trailer) => {
            if let WalFileName::Segment(seg) = wal
                && wal.has_segment_header()
                && let Some(why) = segment_check::mismatch(seg, tmp.file()).map_err(local)?
            {
                return Err(FetchError::NotItsSegment { name: name.to_string(), why });
            }
            tmp.persist(dest).map_err(local)?;
            tracing::info!("restored {name} ({} bytes) in {} ms", trailer.len, started.elapsed().as_millis());
            Ok(Fetched { len: trailer.len, from_spool: false })
        }
        Err(ReadError::Storage(StorageError::NotFound { .. })) => {
            drop(tmp);
            confirm_repository(storage, dest).await?;
            Err(FetchError::NotFound(name.to_string()))
        }
        Err(ReadError::Storage(e)) => Err(FetchError::Storage(e)),
        Err(ReadError::Decode {
            source: e @ (DecodeError::MissingKey(_) | DecodeError::WrongKey { .. }),
            ..
        }) => Err(FetchError::Key { name: name.to_string(), source: e }),
        Err(ReadError::Decode { source: DecodeError::Sink(e), .. }) => Err(local(e)),
        Err(ReadError::Decode { source, .. }) => Err(FetchError::Corrupt { name: name.to_string(), source }),
    }
}

/// The directory `dest` is in (`pg_wal` when PostgreSQL calls).
fn dest_dir(dest: &Path) -> &Path {
    dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The marker that remembers, beside `dest`, which repository was seen to exist.
fn marker_path(dest: &Path) -> PathBuf {
    dest_dir(dest).join(crate::state::STATE_DIR).join(VERIFIED_MARKER)
}

/// Whether this data directory has seen `storage`'s repository exist.
fn seen(storage: &Storage, dest: &Path) -> bool {
    std::fs::read_to_string(marker_path(dest)).is_ok_and(|s| s == storage.url())
}

/// Whether the server calling is in standby mode: `standby.signal` in its data directory, the
/// parent of the directory `%p` is in (PostgreSQL runs restore_command in the data directory with
/// `%p` = `pg_wal/RECOVERYXLOG`; the path is taken lexically, as `pg_wal` may be a symlink).
fn in_standby_mode(dest: &Path) -> bool {
    let data = match dest_dir(dest).parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    data.join("standby.signal").exists()
}

/// What a call answers when the `file://` repository directory is not there. Never seen from
/// this data directory: a wrong `repo` (202). Seen before, so it disappeared: a standby answers
/// "not in the archive" after an ERROR line, since in standby mode PostgreSQL takes a miss as
/// "try streaming, then the archive again", never as the end of recovery, and stopping it would
/// turn an archive outage into a replica outage; any other recovery stops (202), since there a
/// miss would end recovery at the wrong point.
fn missing_local_repository(dir: &Path, storage: &Storage, dest: &Path, name: &str) -> FetchError {
    if !seen(storage, dest) {
        return FetchError::Storage(missing_dir(dir));
    }
    if !in_standby_mode(dest) {
        return FetchError::Vanished(dir.to_path_buf());
    }
    tracing::error!(
        "repository directory {} has disappeared (this standby read from it before): answering \
         \"{name} is not in the archive\" so the standby keeps streaming from its primary; restore \
         the directory or fix repo: until then it has no archive to fall back on",
        dir.display()
    );
    FetchError::NotFound(name.to_string())
}

/// A miss means "end of archive" only if the repository exists: an empty bucket or a wrong prefix
/// must stop recovery, not end it. The repository exists if it has `walvault.json`, or, before
/// its first segment, a timeline history file (see [`identity::holds_history`]). The check is
/// remembered beside the destination.
async fn confirm_repository(storage: &Storage, dest: &Path) -> Result<(), FetchError> {
    if seen(storage, dest) {
        return Ok(());
    }
    let found = match identity::read(storage).await {
        Ok(Some(_)) => true,
        Ok(None) => {
            let history = identity::holds_history(storage).await.map_err(FetchError::Storage)?;
            if history {
                tracing::info!(
                    "repository {} has no walvault.json yet, but holds timeline history files \
                     (wal-push writes walvault.json with the first segment): it exists",
                    storage.url()
                );
            }
            history
        }
        Err(IdentityError::Storage(e)) => return Err(FetchError::Storage(e)),
        Err(e) => return Err(e.into()),
    };
    if !found {
        return Err(FetchError::NoRepository(storage.url().into()));
    }
    // Best effort: without the marker the next miss just checks again.
    let marker = marker_path(dest);
    let _ = std::fs::create_dir_all(marker.parent().expect("has parent"))
        .and_then(|_| std::fs::write(&marker, storage.url()));
    Ok(())
}
