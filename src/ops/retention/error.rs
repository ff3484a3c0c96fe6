//! Why `walvault delete` could not run: [`RetentionError`].

use thiserror::Error;

use crate::repo::StorageError;
use crate::repo::identity::IdentityError;

/// Why `delete` could not run.
#[derive(Debug, Error)]
pub enum RetentionError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Its identity is unreadable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// No rule says what to keep (of backups, nor of dumps).
    #[error(
        "no retention policy: set retain_full, keep_within or keep_daily/weekly/monthly in [retention] \
         (or retain, keep_within, keep_daily/weekly/monthly in [retention.dumps]), or give --retain-full, \
         --keep-within, --keep-daily, --keep-weekly or --keep-monthly"
    )]
    NoPolicy,
    /// `--backup` names a backup the repository does not have.
    #[error("backup {0} is not in the repository (see walvault list)")]
    UnknownBackup(String),
    /// `--backup` names a kept backup, without `--force`.
    #[error(
        "backup {0} is marked keep: add --force to delete it anyway, or walvault mark {0} --unkeep first"
    )]
    Kept(String),
    /// `--backup` is not a backup id.
    #[error("--backup {0:?} is not a backup id (like 20261123T104501Z)")]
    BadId(String),
    /// `--dump` names a dump the repository does not have.
    #[error("dump {0} is not in the repository (see walvault list)")]
    UnknownDump(String),
    /// `--dump` names a kept dump, without `--force`.
    #[error(
        "dump {0} is marked keep: add --force to delete it anyway, or walvault mark {0} --dump --unkeep first"
    )]
    DumpKept(String),
    /// `--dump` is not a dump id.
    #[error("--dump {0:?} is not a dump id (like 20261201T020000Z)")]
    BadDumpId(String),
}
