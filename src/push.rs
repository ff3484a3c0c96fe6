//! `wal-push`: archive one WAL file. Checks the file is WAL of this repository's cluster,
//! encodes it, writes it create-only, and treats an existing object as success only when its
//! verified SHA-256 equals the local file's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use object_store::PutPayload;
use thiserror::Error;

use crate::config::Config;
use crate::format::Trailer;
use crate::identity::{self, Identity, IdentityError, REPO_FORMAT};
use crate::object_io::{Discard, ReadError, read_object};
use crate::pipeline::{Encoded, encode_reader};
use crate::storage::{Storage, StorageError, wal_key};
use crate::walheader::{LONG_HEADER_LEN, SegmentHeader};
use crate::walname::WalFileName;

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
         system identifier {repo_id}: refusing to mix clusters (give this cluster its own repo)"
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
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The repository identity could not be read or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Archives the WAL file at `path` into `storage`.
pub async fn push(cfg: &Config, storage: &Storage, path: &Path) -> Result<Pushed, PushError> {
    let started = Instant::now();
    let refused = |why: String| PushError::Refused { path: path.to_path_buf(), why };
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name: WalFileName =
        file_name.parse().map_err(|e: crate::walname::NameError| refused(e.to_string()))?;
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

    // Encode on a blocking thread while the repository identity is checked.
    let (compression, key, chunk, len) =
        (cfg.compression, cfg.keys.write_key().cloned(), cfg.chunk_size, meta.len());
    let encoding =
        tokio::task::spawn_blocking(move || encode_reader(file, compression, key.as_ref(), chunk, Some(len)));
    if let Some(h) = header {
        check_identity(storage, &h, path).await?;
    }
    let encoded: Encoded = encoding
        .await
        .map_err(|e| PushError::Read { path: path.into(), source: std::io::Error::other(e) })?
        .map_err(|e| PushError::Read { path: path.into(), source: e })?;
    if encoded.trailer.len != len {
        return Err(PushError::Read {
            path: path.into(),
            source: std::io::Error::other(format!("read {} bytes, expected {len}", encoded.trailer.len)),
        });
    }

    let key = wal_key(&name);
    let stored = encoded.stored;
    match storage.put_if_absent(&key, PutPayload::from_iter(encoded.pieces)).await {
        Ok(()) => {
            tracing::info!(
                "archived {name} ({} → {} bytes, {}, {}) in {} ms",
                len,
                stored,
                cfg.compression,
                if cfg.keys.write_key().is_some() { "encrypted" } else { "not encrypted" },
                started.elapsed().as_millis()
            );
            Ok(Pushed::Archived { len, stored })
        }
        Err(StorageError::AlreadyExists { .. }) => {
            compare_existing(cfg, storage, &key, name, encoded.trailer).await
        }
        Err(e) => Err(e.into()),
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

/// Creates the repository identity on first use; refuses a segment of another cluster.
async fn check_identity(storage: &Storage, h: &SegmentHeader, path: &Path) -> Result<(), PushError> {
    let proposed = Identity {
        format: REPO_FORMAT,
        system_identifier: h.system_id.to_string(),
        pg_version: h.pg_major(),
        wal_segment_size: h.seg_size.bytes(),
        created: identity::now_rfc3339(),
        created_by: format!("walvault {}", env!("CARGO_PKG_VERSION")),
    };
    let id = identity::ensure(storage, &proposed).await?;
    if id.system_identifier != proposed.system_identifier {
        return Err(PushError::OtherCluster {
            path: path.into(),
            file_id: h.system_id,
            repo_id: id.system_identifier,
            repo: storage.url().into(),
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
    let archived = read_object(storage, key, &cfg.keys, &mut Discard)
        .await
        .map_err(|source| PushError::ExistingUnverifiable { name: name.to_string(), source })?;
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
