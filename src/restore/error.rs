//! Why a restore failed: [`RestoreError`], one variant per kind of cause an operator acts on
//! (the exit code follows from it).

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::extract::ExtractError;
use super::layout::DirError;
use super::target::TargetError;
use crate::format::DecodeError;
use crate::object::download::DownloadError;
use crate::repo::StorageError;

/// Why a restore failed.
#[derive(Debug, Error)]
pub enum RestoreError {
    /// The target, or the backup choice for it, is unusable.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A request setting is unusable (tablespace map, backup id, …).
    #[error("{0}")]
    Usage(String),
    /// The data or a tablespace directory is unusable (not empty, not a directory).
    #[error("cannot restore into {what}: {source}")]
    Directory {
        /// "the target directory" or "tablespace N's directory".
        what: String,
        /// Why.
        source: DirError,
    },
    /// The backup does not exist.
    #[error("backup {0} is not in the repository")]
    UnknownBackup(String),
    /// The backup's descriptor cannot be used.
    #[error("backup descriptor {key}: {message}")]
    Descriptor {
        /// The descriptor's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The backup is encrypted with a key that is not configured.
    #[error(
        "backup {backup} is encrypted with key {key_id}, which is not configured (configured: {configured})"
    )]
    Key {
        /// The backup.
        backup: String,
        /// Its key id.
        key_id: String,
        /// The configured key ids.
        configured: String,
    },
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A part could not be restored.
    #[error("part {key}: {source}")]
    Part {
        /// The part's key.
        key: String,
        /// Why.
        source: PartError,
    },
    /// The backup manifest could not be restored.
    #[error("backup manifest {key}: {source}")]
    Manifest {
        /// Its key.
        key: String,
        /// Why (a [`PartError`] too: the same checks apply).
        source: PartError,
    },
    /// Writing the restored directory failed.
    #[error("cannot write {path}: {source}")]
    Local {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM.
    #[error("interrupted; what was restored has been removed")]
    Interrupted,
}

/// Why a part could not be restored.
#[derive(Debug, Error)]
pub enum PartError {
    /// Reading it from the repository failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// It does not decode and verify (corrupt, truncated, or a key problem).
    #[error(transparent)]
    Decode(DecodeError),
    /// Its tar data is malformed or unsafe, or a file could not be written.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// It verifies, but is not the part the descriptor lists (another object in its place).
    #[error(
        "it holds {got_len} bytes with SHA-256 {got}, but the descriptor lists {expected_len} bytes with SHA-256 {expected}"
    )]
    Mismatch {
        /// The descriptor's SHA-256.
        expected: String,
        /// The object's (verified) SHA-256.
        got: String,
        /// The descriptor's length.
        expected_len: u64,
        /// The object's length.
        got_len: u64,
    },
    /// Abandoned because another part failed or the restore was interrupted.
    #[error("abandoned")]
    Abandoned,
    /// The thread extracting it panicked (a bug: the restore is removed).
    #[error("its extracting thread failed: {0}")]
    Panicked(String),
}

/// Wraps an I/O failure on `path` as [`RestoreError::Local`].
pub fn local(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError + '_ {
    move |source| RestoreError::Local { path: path.to_path_buf(), source }
}
