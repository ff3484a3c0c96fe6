//! Carrying out a retention plan, in the order `ops::retention` documents: for each backup that
//! goes, its `.deleting` marker, its descriptor, its parts and markers, the `.deleting` marker;
//! leftovers of failed backups (the marker first, and left alone, marker and all, if a young
//! `.sealing` marker or a descriptor is there now: the handshake of `repo::seal`); then dumps the same way (their `.deleting` marker, descriptor,
//! objects and markers); and only then WAL, a folder at a time.

use std::time::Duration;

use object_store::PutPayload;
use object_store::path::Path;

use super::dumps::DumpPlan;
use super::plan::{Action, FolderAction, FolderDecision, Plan};
use crate::repo::descriptor::Descriptor;
use crate::repo::dumps::{DumpDescriptor, DumpFolder};
use crate::repo::inventory::BackupFolder;
use crate::repo::layout::{self, Marker};
use crate::repo::seal;
use crate::repo::{Storage, StorageError};
use crate::units::UtcTime;
use crate::wal::WalFileName;

/// Deletes every backup and leftover folder the plan deletes, and removes the markers of
/// deletions it cancels.
pub async fn backups(
    storage: &Storage,
    plan: &Plan,
    folders: &[BackupFolder],
    older_than: Duration,
) -> Result<(), StorageError> {
    let age = (plan.now, older_than);
    for b in &plan.backups {
        match b.action {
            Action::Keep => {}
            Action::KeepAndCancelDeletion => {
                storage.delete(&layout::marker(&b.id, Marker::Deleting)).await?;
                tracing::info!("kept backup {}: removed the marker of an interrupted deletion", b.id);
            }
            Action::Delete => {
                mark_deleting(storage, &b.id).await?;
                storage.delete(&layout::descriptor(&b.id)).await?;
                remove_folder(storage, &b.id).await?;
                tracing::info!("deleted backup {} ({})", b.id, b.reasons.join("; "));
            }
        }
    }
    for f in plan.folders.iter().filter(|f| f.action == FolderAction::Delete) {
        // The handshake with a backup still being taken (`repo::seal`): the marker, then no
        // new `.sealing` marker and no descriptor, then the objects.
        mark_deleting(storage, &f.id).await?;
        let saw_sealing = folders.iter().any(|x| x.id == f.id && x.sealing);
        let (sealing, descriptor) = (layout::marker(&f.id, Marker::Sealing), layout::descriptor(&f.id));
        let describes = |b: &[u8]| serde_json::from_slice::<Descriptor>(b).is_ok_and(|d| d.id == f.id);
        if being_completed(storage, ("backup", f), (&sealing, saw_sealing), age, &descriptor, describes)
            .await?
        {
            continue;
        }
        // A descriptor that does not parse is there too when `--backup --force` deletes it.
        storage.delete(&descriptor).await?;
        remove_folder(storage, &f.id).await?;
        tracing::info!("removed backup folder {} ({})", f.id, f.reason);
    }
    Ok(())
}

/// Deletes every dump and leftover dump folder the plan deletes, in the backups' order, and
/// removes the markers of deletions it cancels.
pub async fn dumps(
    storage: &Storage,
    plan: &DumpPlan,
    folders: &[DumpFolder],
    (now, older_than): (UtcTime, Duration),
) -> Result<(), StorageError> {
    let age = (now, older_than);
    for d in &plan.dumps {
        match d.action {
            Action::Keep => {}
            Action::KeepAndCancelDeletion => {
                storage.delete(&layout::dump_marker(&d.id, Marker::Deleting)).await?;
                tracing::info!("kept dump {}: removed the marker of an interrupted deletion", d.id);
            }
            Action::Delete => {
                put_marker(storage, &layout::dump_marker(&d.id, Marker::Deleting)).await?;
                storage.delete(&layout::dump_descriptor(&d.id)).await?;
                remove_dump_folder(storage, &d.id).await?;
                tracing::info!("deleted dump {} ({})", d.id, d.reasons.join("; "));
            }
        }
    }
    for f in plan.folders.iter().filter(|f| f.action == FolderAction::Delete) {
        // The marker first, so that a kill before the descriptor goes leaves a deletion to
        // finish, and for the handshake with a dump still being taken (`repo::seal`).
        put_marker(storage, &layout::dump_marker(&f.id, Marker::Deleting)).await?;
        let saw_sealing = folders.iter().any(|x| x.id == f.id && x.sealing);
        let (sealing, descriptor) =
            (layout::dump_marker(&f.id, Marker::Sealing), layout::dump_descriptor(&f.id));
        let describes = |b: &[u8]| serde_json::from_slice::<DumpDescriptor>(b).is_ok_and(|d| d.id == f.id);
        if being_completed(storage, ("dump", f), (&sealing, saw_sealing), age, &descriptor, describes).await?
        {
            continue;
        }
        // A descriptor that does not parse is there too when `--dump --force` deletes it.
        storage.delete(&descriptor).await?;
        remove_dump_folder(storage, &f.id).await?;
        tracing::info!("removed dump folder {} ({})", f.id, f.reason);
    }
    Ok(())
}

/// Whether the backup or dump (`what`) of folder `f`, planned as leftovers, is being completed
/// now (`repo::seal::sealed_meanwhile`); if so it is left alone, its `.deleting` marker too (the
/// next run cancels it or finishes), and said so.
async fn being_completed(
    storage: &Storage,
    (what, f): (&str, &FolderDecision),
    (sealing, saw_sealing): (&Path, bool),
    age: (UtcTime, Duration),
    descriptor: &Path,
    describes: impl Fn(&[u8]) -> bool,
) -> Result<bool, StorageError> {
    let busy = seal::sealed_meanwhile(storage, sealing, saw_sealing, age, descriptor, describes).await?;
    if busy {
        tracing::warn!(
            "left {what} {} alone: planned as {}, it is being completed now (older_than is shorter \
             than its pauses); the next delete ends the deletion it started or cancels it",
            f.id,
            f.reason
        );
    }
    Ok(busy)
}

/// A dump's objects, its other markers, and its `.deleting` marker last.
async fn remove_dump_folder(storage: &Storage, id: &str) -> Result<(), StorageError> {
    let objects: Vec<_> =
        storage.list(&layout::dump_dir(id)).await?.into_iter().map(|o| o.location).collect();
    storage.delete_many(&objects).await?;
    storage
        .delete_many(&[
            layout::dump_marker(id, Marker::Keep),
            layout::dump_marker(id, Marker::Started),
            layout::dump_marker(id, Marker::Sealing),
        ])
        .await?;
    storage.delete(&layout::dump_marker(id, Marker::Deleting)).await
}

/// Step 1: the marker that lets a rerun finish what this run starts.
async fn mark_deleting(storage: &Storage, id: &str) -> Result<(), StorageError> {
    put_marker(storage, &layout::marker(id, Marker::Deleting)).await
}

/// Writes an empty marker, already there or not.
async fn put_marker(storage: &Storage, key: &Path) -> Result<(), StorageError> {
    match storage.put_if_absent(key, PutPayload::from_static(b"")).await {
        Ok(()) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Steps 3 and 4: the folder's objects, the backup's other markers, and the `.deleting` marker last.
async fn remove_folder(storage: &Storage, id: &str) -> Result<(), StorageError> {
    let objects: Vec<_> =
        storage.list(&layout::backup_dir(id)).await?.into_iter().map(|o| o.location).collect();
    storage.delete_many(&objects).await?;
    storage
        .delete_many(&[
            layout::marker(id, Marker::Keep),
            layout::marker(id, Marker::Started),
            layout::marker(id, Marker::Sealing),
        ])
        .await?;
    storage.delete(&layout::marker(id, Marker::Deleting)).await
}

/// Step 5, for one folder: the WAL objects the plan does not keep.
pub async fn wal(storage: &Storage, gone: &[WalFileName]) -> Result<(), StorageError> {
    let keys: Vec<_> = gone.iter().map(layout::wal).collect();
    storage.delete_many(&keys).await?;
    tracing::info!("deleted {} WAL objects ({} .. {})", keys.len(), gone[0], gone[gone.len() - 1]);
    Ok(())
}
