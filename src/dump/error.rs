//! Why a dump, a dump restore or a dump fetch failed: [`DumpError`] (the exit code follows from
//! its variant, in `cli::exit`).

use thiserror::Error;

use crate::format::DecodeError;
use crate::object::download::DownloadError;
use crate::object::stream::StreamError;
use crate::replication::ReplicationError;
use crate::repo::StorageError;
use crate::repo::identity::IdentityError;

/// Why a dump command failed.
#[derive(Debug, Error)]
pub enum DumpError {
    /// Bad usage: what to give instead.
    #[error("{0}")]
    Usage(String),
    /// The server could not be asked (connection, authentication, a query).
    #[error(transparent)]
    Server(#[from] ReplicationError),
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
        server: String,
        /// The repository's.
        repo_id: String,
        /// The repository URL.
        repo: String,
    },
    /// pg_dump, pg_dumpall or pg_restore is not there.
    #[error("{0}")]
    NoProgram(String),
    /// pg_dump, pg_dumpall or pg_restore failed.
    #[error("{program} {what} exited with {status}: {stderr}")]
    Program {
        /// Which program.
        program: &'static str,
        /// For what (`of database "app"`).
        what: String,
        /// How it ended.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// A local file or a child process's pipe failed.
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Storing the stream failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// No dump with that id (or no dump at all).
    #[error("{0}")]
    UnknownDump(String),
    /// A dump object could not be downloaded.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// A dump object does not decode, or is not the object the descriptor names.
    #[error("{key}: {source}")]
    Decode {
        /// The object's key.
        key: String,
        /// Why.
        source: DecodeError,
    },
    /// A dump object decoded, but not to the bytes the descriptor records.
    #[error("{key} is not the object the dump's descriptor names: {why}; nothing was restored from it")]
    Mismatch {
        /// The object's key.
        key: String,
        /// What differs.
        why: String,
    },
    /// Something walvault did not expect from the server or a program (a bug, or an unusual
    /// server): nothing of the dump is kept.
    #[error("unexpected: {0}")]
    Unexpected(String),
    /// `walvault delete` took the dump's folder for a failed dump's leftovers while it ran.
    #[error(
        "dump {id} is not whole: {why}, as `walvault delete` does to a folder without a descriptor \
         that was not written to for [retention.dumps] older_than; nothing of it was kept: take it \
         again, and set older_than above the longest pause of a dump"
    )]
    TakenForLeftovers {
        /// The dump id.
        id: String,
        /// What the last check found.
        why: String,
    },
    /// SIGINT or SIGTERM.
    #[error("interrupted; nothing of this dump was kept")]
    Interrupted,
}
