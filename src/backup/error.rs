//! Why a base backup failed: [`BackupError`] (the exit code follows from its variant).

use thiserror::Error;

use crate::object::stream::StreamError;
use crate::replication::ReplicationError;
use crate::repo::StorageError;
use crate::repo::identity::IdentityError;
use crate::tar::split::TarError;

/// Why a base backup failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The server connection or the backup stream failed.
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The repository identity could not be read or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The server is not the cluster the repository belongs to.
    #[error(
        "the server has system identifier {server}, but repository {repo} belongs to system identifier {repo_id}: \
         {advice}",
        advice = crate::repo::identity::OTHER_CLUSTER_ADVICE
    )]
    OtherCluster {
        /// The server's system identifier.
        server: u64,
        /// The repository's.
        repo_id: String,
        /// The repository URL.
        repo: String,
    },
    /// The server sent something that is not a tar stream.
    #[error("the server's archive is not a valid tar stream: {0}")]
    Tar(#[from] TarError),
    /// Encoding failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// A task of the backup panicked (a bug: nothing of this backup is kept).
    #[error("an internal task failed: {0}")]
    Panicked(String),
    /// The stream ended in an order the protocol does not allow.
    #[error("unexpected {0} in the backup stream")]
    Unexpected(&'static str),
    /// A stage stopped because another failed.
    #[error("stopped because another part of the backup failed")]
    Aborted,
    /// `walvault delete` took the backup's folder for a failed backup's leftovers while it ran
    /// (it wrote nothing for longer than `older_than`).
    #[error(
        "backup {id} is not whole: {why}, as `walvault delete` does to a folder without a \
         descriptor that was not written to for [retention] older_than; nothing of it was kept: \
         take it again, and set older_than above the longest pause of a backup (its checkpoint, \
         its wait for WAL archiving)"
    )]
    TakenForLeftovers {
        /// The backup id.
        id: String,
        /// What the last check found.
        why: String,
    },
    /// The backup was interrupted (SIGINT or SIGTERM).
    #[error("interrupted; nothing of this backup was kept")]
    Interrupted,
}

impl From<StreamError> for BackupError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Storage(e) => BackupError::Storage(e),
            StreamError::Tar(e) => BackupError::Tar(e),
            StreamError::Encode(e) => BackupError::Encode(e),
            StreamError::Panicked(e) => BackupError::Panicked(e),
            StreamError::Aborted => BackupError::Aborted,
        }
    }
}
