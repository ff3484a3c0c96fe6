//! Why a repository operation failed: [`StorageError`], with "not found" and "already exists"
//! kept apart from failures worth retrying, up to the exit code.

use std::time::Duration;

use object_store::path::Path;
use thiserror::Error;

use super::retry::Retryable;

/// Why a storage operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{key} does not exist in the repository")]
    NotFound {
        /// The object's key.
        key: String,
    },
    /// A create-only write found the object already there.
    #[error("{key} already exists in the repository")]
    AlreadyExists {
        /// The object's key.
        key: String,
    },
    /// An attempt took longer than the configured timeout.
    #[error("{op} timed out after {after:?}")]
    Timeout {
        /// The operation.
        op: String,
        /// The timeout.
        after: Duration,
    },
    /// The store refused our credentials or permissions.
    #[error("{op}: access denied: {message}")]
    Denied {
        /// The operation.
        op: String,
        /// What the store said.
        message: String,
    },
    /// The store failed or could not be reached (worth retrying).
    #[error("{op}: {message}")]
    Unavailable {
        /// The operation.
        op: String,
        /// What went wrong.
        message: String,
    },
    /// The repository is misconfigured (bad option, missing directory).
    #[error("{0}")]
    Config(String),
}

impl Retryable for StorageError {
    fn is_permanent(&self) -> bool {
        !matches!(self, StorageError::Timeout { .. } | StorageError::Unavailable { .. })
    }

    fn timed_out(what: &str, after: Duration) -> Self {
        StorageError::Timeout { op: what.to_string(), after }
    }
}

impl StorageError {
    /// Classifies an object_store error for operation `op` on `key`.
    pub fn from_store(op: &str, key: &Path, e: object_store::Error) -> Self {
        use object_store::Error as E;
        let message = || one_line(&e);
        match e {
            E::NotFound { .. } => StorageError::NotFound { key: key.to_string() },
            E::AlreadyExists { .. } => StorageError::AlreadyExists { key: key.to_string() },
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                StorageError::Denied { op: format!("{op} {key}"), message: message() }
            }
            E::NotImplemented { .. }
            | E::NotSupported { .. }
            | E::InvalidPath { .. }
            | E::UnknownConfigurationKey { .. }
            | E::Precondition { .. } => StorageError::Config(format!("{op} {key}: {}", message())),
            _ => StorageError::Unavailable { op: format!("{op} {key}"), message: message() },
        }
    }
}

/// An error and its sources on one line.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s.replace('\n', " ")
}
