//! The upload engine shared by PostgreSQL's wal-push calls and the background pusher: checks a
//! local file is WAL of this repository's cluster, encodes it (one encoding at a time, on every
//! core, within an upload budget), writes it create-only, treats an existing object as success
//! only when its verified SHA-256 equals the local file's, and records uploads made ahead of
//! PostgreSQL's request.
//!
//! Files larger than [`super::large::threshold`] (64 MiB) go through [`super::large`] instead,
//! with bounded memory.
//!
//! Crash story: a record is written (temp + rename) only after the create-only PUT (or the
//! verification of an identical object) succeeded, so a kill at any moment leaves either no
//! record or the record of a durable object; an interrupted PUT leaves nothing visible.

use std::fs::File;
use std::path::{Path, PathBuf};

use object_store::PutPayload;
use thiserror::Error;
use tokio::sync::{OnceCell, Semaphore};

use super::large::{self, LargeError, Placed};
use crate::config::Config;
use crate::format::Trailer;
use crate::object::encode::{Encoded, encode_file};
use crate::object::read::{Discard, ReadError, read_object};
use crate::repo::identity::{self, Identity, IdentityError, REPO_FORMAT};
use crate::repo::{Storage, StorageError, layout};
use crate::state::stats::{Outcome, StatsFile};
use crate::state::{IdentityCache, PushedRecord, StateDir, now_secs};
use crate::units::UtcTime;
use crate::wal::header::{LONG_HEADER_LEN, SegmentHeader};
use crate::wal::name::WalFileName;

/// What a successful push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The file is now in the repository.
    Archived {
        /// Bytes of the original file.
        len: u64,
        /// Bytes stored.
        stored: u64,
    },
    /// An identical copy was already there.
    AlreadyArchived,
    /// An earlier call pushed it ahead, and the local file still has the SHA-256 it pushed.
    ConfirmedAhead,
}

/// Why a file was not archived.
#[derive(Debug, Error)]
pub enum PushError {
    /// The local file is not something walvault archives.
    #[error("{path}: {why}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why, in words an operator can act on.
        why: String,
    },
    /// The segment belongs to another cluster than the repository.
    #[error(
        "{path} is from the cluster with system identifier {file_id}, but repository {repo} belongs to \
         system identifier {repo_id}: refusing to mix clusters; {advice}",
        advice = identity::OTHER_CLUSTER_ADVICE
    )]
    OtherCluster {
        /// The file.
        path: PathBuf,
        /// The system identifier in the segment.
        file_id: u64,
        /// The system identifier in `walvault.json`.
        repo_id: String,
        /// The repository URL.
        repo: String,
    },
    /// A different file of the same name is already archived.
    #[error(
        "{name} is already archived with different contents (archived SHA-256 {archived}, local {local}); \
         refusing to overwrite: is another cluster archiving into this repository?"
    )]
    Conflict {
        /// The WAL file name.
        name: String,
        /// SHA-256 of the archived copy.
        archived: String,
        /// SHA-256 of the local file.
        local: String,
    },
    /// An object of the same name exists but cannot be verified.
    #[error("{name} already exists in the repository but cannot be verified: {source}")]
    ExistingUnverifiable {
        /// The WAL file name.
        name: String,
        /// Why it cannot be read back.
        source: ReadError,
    },
    /// The local file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A task of the upload panicked (a bug; PostgreSQL retries the file).
    #[error("an internal task failed: {0}")]
    Panicked(String),
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The repository identity could not be read or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// What an upload read of the local file: the trailer it archived, and the XXH3-128 of the
/// same bytes where the encoding computed it (segments up to 64 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// Length and SHA-256 of the bytes archived.
    pub trailer: Trailer,
    /// XXH3-128 of those bytes.
    pub xxh3: Option<u128>,
}

/// Encoded bytes (KiB) allowed to wait for or be in upload at once, whatever the concurrency.
const UPLOAD_BUDGET_KIB: u32 = 16 * 1024;
/// What one process shares between its uploads.
pub struct Ctx<'a> {
    pub(super) cfg: &'a Config,
    pub(super) storage: &'a Storage,
    /// The state directory of the `pg_wal` the files are in.
    pub state: StateDir,
    /// The repository's system identifier, once checked in this process.
    system_id: OnceCell<String>,
    /// One encoding at a time, on every core: one mapped segment in memory at once (peak RSS),
    /// as fast as several single-threaded encodings side by side.
    cpu: Semaphore,
    /// Encoded KiB waiting for or in upload.
    memory: Semaphore,
    /// Threads an encoding runs on (every core; the hashing thread joins the compression when
    /// it is done).
    compress_threads: usize,
}

impl<'a> Ctx<'a> {
    /// The context for uploads of WAL files in `pg_wal`.
    pub fn new(cfg: &'a Config, storage: &'a Storage, pg_wal: &Path) -> Ctx<'a> {
        Ctx {
            cfg,
            storage,
            state: StateDir::in_wal_dir(pg_wal),
            system_id: OnceCell::new(),
            cpu: Semaphore::new(1),
            memory: Semaphore::new(UPLOAD_BUDGET_KIB as usize),
            compress_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// Records that `name` is durably in the repository; false (and a warning) if it cannot.
pub fn record(ctx: &Ctx<'_>, name: WalFileName, digests: &Digests) -> bool {
    let record = PushedRecord {
        name: name.to_string(),
        sha256: hex::encode(digests.trailer.sha256),
        xxh3: digests.xxh3.map(crate::object::encode::xxh3_hex),
        len: digests.trailer.len,
        repo: ctx.storage.url().to_string(),
        pushed_at: now_secs(),
    };
    match ctx.state.record_pushed(&record) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("pushed {name} but cannot record it in {}: {e}", ctx.state.path().display());
            false
        }
    }
}

/// Uploads a ready file PostgreSQL has not asked for yet and records it once durable.
/// Failures are only logged: PostgreSQL will ask for the file itself, and the error shows then.
pub async fn push_ahead(ctx: &Ctx<'_>, path: &Path, name: WalFileName) -> bool {
    let started = std::time::Instant::now();
    let (ok, outcome) = match upload(ctx, path, name).await {
        Ok((pushed, digests)) => {
            let ok = record(ctx, name, &digests);
            if ok {
                tracing::info!("pushed {name} ahead");
            }
            let outcome = match pushed {
                Pushed::Archived { len, stored } => Outcome::Moved { raw: len, stored },
                _ => Outcome::Already,
            };
            (ok, outcome)
        }
        Err(e) => {
            tracing::warn!("could not push {name} ahead: {e}");
            (false, Outcome::Failed { kind: e.kind().to_string(), message: e.to_string() })
        }
    };
    let secs = started.elapsed().as_secs_f64();
    StatsFile::in_state_dir(ctx.state.path())
        .update(|s| s.pusher.add(&name.to_string(), &outcome, secs, UtcTime::now()));
    ok
}

impl PushError {
    /// The kind of failure, as `walvault status` counts the background pusher's.
    pub fn kind(&self) -> &'static str {
        let storage = |e: &StorageError| match e {
            StorageError::Config(_) | StorageError::Denied { .. } => "config",
            _ => "storage",
        };
        match self {
            PushError::Refused { .. }
            | PushError::OtherCluster { .. }
            | PushError::Conflict { .. }
            | PushError::ExistingUnverifiable { .. } => "refused",
            PushError::Read { .. } | PushError::Panicked(_) => "local",
            PushError::Storage(e) | PushError::Identity(IdentityError::Storage(e)) => storage(e),
            PushError::Identity(_) => "config",
        }
    }
}

/// Checks, encodes and uploads one file; returns what happened and what it read.
pub async fn upload(ctx: &Ctx<'_>, path: &Path, name: WalFileName) -> Result<(Pushed, Digests), PushError> {
    let refused = |why: String| PushError::Refused { path: path.to_path_buf(), why };
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => refused("no such file".into()),
        _ => PushError::Read { path: path.into(), source: e },
    })?;
    let meta = file.metadata().map_err(|e| PushError::Read { path: path.into(), source: e })?;
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(refused("the file is empty".into()));
    }
    let header =
        if name.has_segment_header() { Some(check_segment(&file, name, meta.len(), path)?) } else { None };
    // Too large to hold encoded in memory: streamed through a temporary object (where the
    // backend has an atomic create-only copy; elsewhere the in-memory path below, for any size).
    if meta.len() > large::threshold() && ctx.storage.has_create_only_copy() {
        if let Some(h) = &header {
            check_identity(ctx, h, path).await?;
        }
        return upload_large(ctx, file, meta.len(), name, path)
            .await
            .map(|(p, trailer)| (p, Digests { trailer, xxh3: None }));
    }

    // Encode on blocking threads (one file at a time) while the identity is checked. The encoding
    // keeps its turn until the upload budget has room for its output, so finished encodings never
    // pile up in memory behind slow uploads.
    let cfg = ctx.cfg;
    let (compression, key, chunk, len) =
        (cfg.compression, cfg.keys.write_key().cloned(), cfg.chunk_size, meta.len());
    let threads = ctx.compress_threads;
    let encoding = async {
        let _cpu = ctx.cpu.acquire().await.expect("semaphore never closed");
        let encoded = tokio::task::spawn_blocking(move || {
            encode_file(file, len, compression, key.as_ref(), chunk, threads)
        })
        .await
        .map_err(|e| PushError::Panicked(e.to_string()))?
        .map_err(|e| PushError::Read { path: path.into(), source: e })?;
        let kib = u32::try_from(encoded.stored.div_ceil(1024)).unwrap_or(u32::MAX).min(UPLOAD_BUDGET_KIB);
        let memory = ctx.memory.acquire_many(kib).await.expect("semaphore never closed");
        Ok::<_, PushError>((encoded, memory))
    };
    let identity = async {
        match &header {
            Some(h) => check_identity(ctx, h, path).await,
            None => Ok(()),
        }
    };
    let (encoded, identity) = tokio::join!(encoding, identity);
    identity?;
    let (encoded, _memory): (Encoded, _) = encoded?;
    if encoded.trailer.len != len {
        return Err(PushError::Read {
            path: path.into(),
            source: std::io::Error::other(format!("read {} bytes, expected {len}", encoded.trailer.len)),
        });
    }

    let key = layout::wal(&name);
    let (stored, trailer) = (encoded.stored, encoded.trailer);
    let digests = Digests { trailer, xxh3: encoded.xxh3 };
    match ctx.storage.put_if_absent(&key, PutPayload::from_iter(encoded.pieces)).await {
        Ok(()) => Ok((Pushed::Archived { len, stored }, digests)),
        Err(StorageError::AlreadyExists { .. }) => {
            compare_existing(cfg, ctx.storage, &key, name, trailer).await.map(|p| (p, digests))
        }
        Err(e) => Err(e.into()),
    }
}

/// Streams a file too large to hold encoded in memory through [`large`]: one at a time (the
/// encoding turn), with the whole upload budget (its parts in flight), and an existing object
/// compared as for a small file.
async fn upload_large(
    ctx: &Ctx<'_>,
    file: File,
    len: u64,
    name: WalFileName,
    path: &Path,
) -> Result<(Pushed, Trailer), PushError> {
    let streamed = {
        let _cpu = ctx.cpu.acquire().await.expect("semaphore never closed");
        let _memory = ctx.memory.acquire_many(UPLOAD_BUDGET_KIB).await.expect("semaphore never closed");
        large::push(ctx.cfg, ctx.storage, file, len, name).await.map_err(|e| match e {
            LargeError::Storage(e) => PushError::Storage(e),
            LargeError::Read(source) => PushError::Read { path: path.into(), source },
            LargeError::Panicked(m) => PushError::Panicked(m),
        })?
    };
    let trailer = streamed.trailer;
    match streamed.placed {
        Placed::Created => Ok((Pushed::Archived { len, stored: streamed.stored }, trailer)),
        Placed::AlreadyExists => compare_existing(ctx.cfg, ctx.storage, &layout::wal(&name), name, trailer)
            .await
            .map(|p| (p, trailer)),
    }
}

/// Checks a segment's long page header against its size and name.
fn check_segment(file: &File, name: WalFileName, len: u64, path: &Path) -> Result<SegmentHeader, PushError> {
    let refused = |why: String| PushError::Refused { path: path.to_path_buf(), why };
    if len < LONG_HEADER_LEN as u64 {
        return Err(refused(format!("{len} bytes is too short for a WAL segment")));
    }
    let mut buf = [0u8; LONG_HEADER_LEN];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, 0)
        .map_err(|e| PushError::Read { path: path.into(), source: e })?;
    let h = SegmentHeader::parse(&buf).map_err(|e| refused(format!("not a WAL segment: {e}")))?;
    if len != u64::from(h.seg_size.bytes()) {
        return Err(refused(format!(
            "the file is {len} bytes but its header says segments are {} bytes (incomplete copy?)",
            h.seg_size.bytes()
        )));
    }
    let seg = name.segment().expect("segment names have a segment");
    let expected = seg.start_lsn(h.seg_size);
    if !seg.fits(h.seg_size) || h.page_addr != expected {
        return Err(refused(format!(
            "its first page is for WAL position {}, but the name {name} means {expected}",
            h.page_addr
        )));
    }
    Ok(h)
}

/// Creates the repository identity on first use; refuses a segment of another cluster. Checked
/// once per process, and remembered in the state directory so later calls need no request.
async fn check_identity(ctx: &Ctx<'_>, h: &SegmentHeader, path: &Path) -> Result<(), PushError> {
    let mine = h.system_id.to_string();
    let repo = ctx.storage.url();
    let repo_id = ctx
        .system_id
        .get_or_try_init(|| async {
            if let Some(c) = ctx.state.identity()
                && c.repo == repo
                && c.system_identifier == mine
            {
                return Ok::<_, PushError>(c.system_identifier);
            }
            let proposed = Identity {
                format: REPO_FORMAT,
                system_identifier: mine.clone(),
                pg_version: h.pg_major(),
                wal_segment_size: h.seg_size.bytes(),
                created: UtcTime::now(),
                created_by: format!("walvault {}", env!("CARGO_PKG_VERSION")),
            };
            let id = identity::ensure(ctx.storage, &proposed).await?;
            if id.system_identifier == mine {
                let cache = IdentityCache { repo: repo.to_string(), system_identifier: mine.clone() };
                if let Err(e) = ctx.state.record_identity(&cache) {
                    tracing::debug!("cannot cache the repository identity: {e}");
                }
            }
            Ok(id.system_identifier)
        })
        .await?;
    if *repo_id != mine {
        return Err(PushError::OtherCluster {
            path: path.into(),
            file_id: h.system_id,
            repo_id: repo_id.clone(),
            repo: repo.into(),
        });
    }
    Ok(())
}

/// The object exists: success only if it verifies and holds the same bytes.
async fn compare_existing(
    cfg: &Config,
    storage: &Storage,
    key: &object_store::path::Path,
    name: WalFileName,
    local: Trailer,
) -> Result<Pushed, PushError> {
    // The repository failing while the copy is read back is a storage failure like any other
    // (exit 1: PostgreSQL tries again), not a refusal; only a copy that does not decode and
    // verify (a missing key, corruption) is refused.
    let archived =
        read_object(storage, key, &cfg.keys, &mut Discard).await.map_err(|source| match source {
            ReadError::Storage(e) => PushError::Storage(e),
            source => PushError::ExistingUnverifiable { name: name.to_string(), source },
        })?;
    if archived == local {
        tracing::info!(
            "{name} was already archived with the same contents (SHA-256 {})",
            hex::encode(local.sha256)
        );
        Ok(Pushed::AlreadyArchived)
    } else {
        Err(PushError::Conflict {
            name: name.to_string(),
            archived: hex::encode(archived.sha256),
            local: hex::encode(local.sha256),
        })
    }
}
