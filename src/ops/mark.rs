//! `walvault mark ID --keep | --unkeep`: a kept backup (`backups/<id>.keep`) is never deleted by
//! a retention policy and keeps the WAL that makes it consistent; it never stops the policy from
//! deleting other backups. `delete --backup ID` refuses it without `--force`. Dumps are marked
//! the same way (`dumps/<id>.keep`, out of `[retention.dumps]`'s reach, refused by
//! `delete --dump ID` without `--force`). Backup and dump ids have one format: an id that is
//! only a dump marks the dump; one that is both needs `--backup` or `--dump`.

use object_store::PutPayload;
use object_store::path::Path;
use thiserror::Error;

use crate::repo::layout::{self, Marker};
use crate::repo::{Storage, StorageError};

/// Why a backup or dump could not be marked.
#[derive(Debug, Error)]
pub enum MarkError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `--backup` names no backup.
    #[error("backup {0} is not in the repository (see walvault list)")]
    UnknownBackup(String),
    /// Neither a backup nor a dump has this id.
    #[error("no backup or dump {0} in the repository (see walvault list)")]
    Unknown(String),
    /// `--dump` names no dump.
    #[error("dump {0} is not in the repository (see walvault list)")]
    UnknownDump(String),
    /// Both a backup and a dump have this id.
    #[error("{0} is both a backup and a dump: add --backup or --dump to say which to mark")]
    Ambiguous(String),
    /// Not a backup id.
    #[error("{0:?} is not a backup id (like 20261123T104501Z)")]
    BadId(String),
}

/// What `mark` is asked to mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A base backup (`--backup`).
    Backup,
    /// A logical dump (`--dump`).
    Dump,
}

/// Marks backup or dump `id` kept (`keep`) or not; `target` says which when both exist.
pub async fn mark(
    storage: &Storage,
    id: &str,
    keep: bool,
    target: Option<Target>,
) -> Result<Target, MarkError> {
    if !layout::is_backup_id(id) {
        return Err(MarkError::BadId(id.to_string()));
    }
    let backup = exists(storage, &layout::descriptor(id)).await?;
    let dump = exists(storage, &layout::dump_descriptor(id)).await?;
    let target = match (target, backup, dump) {
        (Some(Target::Backup), false, _) => return Err(MarkError::UnknownBackup(id.to_string())),
        (Some(Target::Dump), _, false) => return Err(MarkError::UnknownDump(id.to_string())),
        (Some(t), ..) => t,
        (None, true, true) => return Err(MarkError::Ambiguous(id.to_string())),
        (None, true, false) => Target::Backup,
        (None, false, true) => Target::Dump,
        (None, false, false) => return Err(MarkError::Unknown(id.to_string())),
    };
    let (key, what) = match target {
        Target::Backup => (layout::marker(id, Marker::Keep), "backup"),
        Target::Dump => (layout::dump_marker(id, Marker::Keep), "dump"),
    };
    if keep {
        match storage.put_if_absent(&key, PutPayload::from_static(b"")).await {
            Ok(()) => tracing::info!("{what} {id} is kept: no retention policy deletes it"),
            Err(StorageError::AlreadyExists { .. }) => tracing::info!("{what} {id} was already kept"),
            Err(e) => return Err(e.into()),
        }
    } else {
        storage.delete(&key).await?;
        tracing::info!("{what} {id} is no longer kept: retention policies apply to it again");
    }
    Ok(target)
}

async fn exists(storage: &Storage, key: &Path) -> Result<bool, StorageError> {
    match storage.head(key).await {
        Ok(_) => Ok(true),
        Err(StorageError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;
    use crate::ops::retention::dumps::fixtures;
    use crate::repo::dumps;
    use crate::repo::retry::RetryPolicy;
    use crate::repo::testutil::mem_storage;

    #[tokio::test]
    async fn dumps_are_marked_and_a_shared_id_needs_saying_which() {
        let s =
            mem_storage(Arc::new(InMemory::new()), RetryPolicy::new(0, std::time::Duration::from_secs(5)));
        let d = fixtures::dump("2026-12-01T02:00:00Z", "2026-12-01T02:20:00Z", &["app"]);
        let id = d.descriptor.id.clone();
        fixtures::store(&s, &d).await;
        assert_eq!(mark(&s, &id, true, None).await.unwrap(), Target::Dump);
        assert!(dumps::dumps(&s).await.unwrap().dumps[0].kept);
        assert!(s.head(&layout::marker(&id, Marker::Keep)).await.is_err(), "no backup marker");
        // Again: already kept is fine.
        mark(&s, &id, true, Some(Target::Dump)).await.unwrap();
        assert!(matches!(mark(&s, &id, true, Some(Target::Backup)).await, Err(MarkError::UnknownBackup(_))));
        // A backup with the same id: now the id alone is ambiguous.
        s.put(&layout::descriptor(&id), PutPayload::from_static(b"{}")).await.unwrap();
        let e = mark(&s, &id, false, None).await.unwrap_err();
        assert!(matches!(e, MarkError::Ambiguous(_)));
        assert_eq!(
            e.to_string(),
            format!("{id} is both a backup and a dump: add --backup or --dump to say which to mark")
        );
        assert_eq!(mark(&s, &id, false, Some(Target::Dump)).await.unwrap(), Target::Dump);
        assert!(!dumps::dumps(&s).await.unwrap().dumps[0].kept);
        assert_eq!(mark(&s, &id, true, Some(Target::Backup)).await.unwrap(), Target::Backup);
        assert!(s.head(&layout::marker(&id, Marker::Keep)).await.is_ok());
        assert!(matches!(
            mark(&s, "20200101T000000Z", true, Some(Target::Dump)).await,
            Err(MarkError::UnknownDump(_))
        ));
        assert!(matches!(mark(&s, "20200101T000000Z", true, None).await, Err(MarkError::Unknown(_))));
    }
}
