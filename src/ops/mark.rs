//! `walvault mark ID --keep | --unkeep`: a kept backup (`backups/<id>.keep`) is never deleted by
//! a retention policy and keeps the WAL that makes it consistent; it never stops the policy from
//! deleting other backups. `delete --backup ID` refuses it without `--force`.

use object_store::PutPayload;
use thiserror::Error;

use crate::repo::layout::{self, Marker};
use crate::repo::{Storage, StorageError};

/// Why a backup could not be marked.
#[derive(Debug, Error)]
pub enum MarkError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No such backup.
    #[error("backup {0} is not in the repository (see walvault list)")]
    UnknownBackup(String),
    /// Not a backup id.
    #[error("{0:?} is not a backup id (like 20261123T104501Z)")]
    BadId(String),
}

/// Marks backup `id` kept (`keep`) or not.
pub async fn mark(storage: &Storage, id: &str, keep: bool) -> Result<(), MarkError> {
    if !layout::is_backup_id(id) {
        return Err(MarkError::BadId(id.to_string()));
    }
    match storage.head(&layout::descriptor(id)).await {
        Ok(_) => {}
        Err(StorageError::NotFound { .. }) => return Err(MarkError::UnknownBackup(id.to_string())),
        Err(e) => return Err(e.into()),
    }
    let key = layout::marker(id, Marker::Keep);
    if keep {
        match storage.put_if_absent(&key, PutPayload::from_static(b"")).await {
            Ok(()) => tracing::info!("backup {id} is kept: no retention policy deletes it"),
            Err(StorageError::AlreadyExists { .. }) => tracing::info!("backup {id} was already kept"),
            Err(e) => return Err(e.into()),
        }
    } else {
        storage.delete(&key).await?;
        tracing::info!("backup {id} is no longer kept: retention policies apply to it again");
    }
    Ok(())
}
