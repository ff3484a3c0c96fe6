//! The last step of a base backup or a dump: its descriptor, written create-only, then the proof
//! that no `walvault delete` took its folder for a failed run's leftovers while it ran.
//!
//! `delete` removes a folder without a descriptor once nothing was written to it for
//! `older_than`; a backup or dump that wrote nothing for that long (a long checkpoint, a wait for
//! WAL archiving, a stopped process) can be taken for leftovers while it still runs. The two
//! sides meet in a handshake that needs nothing but read-after-write consistency:
//!
//! - `delete` writes `<id>.deleting`, then checks that `<id>.json` is absent, and only then
//!   deletes the folder's objects, the marker last (`ops::retention::execute`);
//! - the writer puts `<id>.json`, then checks that `<id>.deleting` is absent, then lists its
//!   folder and finds every object it describes, with its size.
//!
//! Whichever writes second sees the other: if `delete` found no descriptor, its marker was in
//! place before the descriptor was written, so the writer's check finds the marker (deletion
//! running) or, once `delete` finished, its objects gone. Either way the writer removes its own
//! descriptor first and fails: a descriptor never stays for a folder `delete` emptied.
//!
//! Crash story: killed between writing the descriptor and the end of the checks, a writer can
//! leave a descriptor whose objects a racing `delete` removes; `restore` then fails naming the
//! missing object, and `verify` reports it (docs/RELIABILITY.md §6). Killed after a failed check,
//! its objects are leftovers for the next `delete` (the marker, or their age).

use std::collections::HashMap;

use object_store::PutPayload;
use object_store::path::Path;

use super::{Storage, StorageError};

/// What is sealed: the descriptor's key, the `.deleting` marker a racing `delete` writes, the
/// folder, and every object the descriptor describes (key, stored bytes).
pub struct Sealed<'a> {
    /// `backups/<id>.json` or `dumps/<id>.json`.
    pub descriptor: Path,
    /// `backups/<id>.deleting` or `dumps/<id>.deleting`.
    pub deleting: Path,
    /// `backups/<id>/` or `dumps/<id>/`.
    pub folder: Path,
    /// The objects described.
    pub objects: Vec<(&'a str, u64)>,
}

/// Why a sealed descriptor was taken back.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The repository failed (the descriptor was taken back if it had been written).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `delete` is removing the folder, or removed objects of it.
    #[error("{0}")]
    NotWhole(String),
}

/// Writes `json` at `s.descriptor` and checks that what it describes is still whole; if not,
/// removes the descriptor again.
pub async fn seal(storage: &Storage, s: &Sealed<'_>, json: Vec<u8>) -> Result<(), SealError> {
    storage.put_if_absent(&s.descriptor, PutPayload::from(json)).await?;
    let broken = match check(storage, s).await {
        Ok(None) => return Ok(()),
        Ok(Some(why)) => SealError::NotWhole(why),
        Err(e) => SealError::Storage(e),
    };
    // The descriptor first: from here nothing takes the folder for a backup or a dump.
    if let Err(e) = storage.delete(&s.descriptor).await {
        tracing::error!("could not remove {}, which describes objects that are not whole: {e}", s.descriptor);
    }
    Err(broken)
}

/// `None` when no deletion is running and every object described is there.
async fn check(storage: &Storage, s: &Sealed<'_>) -> Result<Option<String>, StorageError> {
    match storage.head(&s.deleting).await {
        Ok(_) => return Ok(Some("a `walvault delete` is removing its folder".into())),
        Err(StorageError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let found: HashMap<String, u64> =
        storage.list(&s.folder).await?.into_iter().map(|o| (o.location.to_string(), o.size)).collect();
    let gone: Vec<&str> =
        s.objects.iter().filter(|(k, n)| found.get(*k) != Some(n)).map(|(k, _)| *k).collect();
    Ok(gone.first().map(|first| {
        format!("{} of its {} objects are gone or changed (the first: {first})", gone.len(), s.objects.len())
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::*;
    use crate::repo::descriptor::{Archive, DESCRIPTOR_FORMAT, Descriptor, Part, StoredFile};
    use crate::repo::layout::{self, Marker};
    use crate::repo::retry::RetryPolicy;
    use crate::repo::testutil::mem_storage;
    use crate::units::UtcTime;
    use crate::wal::{Lsn, TimelineId};

    fn mem() -> Storage {
        mem_storage(Arc::new(InMemory::new()), RetryPolicy::new(0, Duration::from_secs(5)))
    }

    fn descriptor(id: &str) -> Descriptor {
        let part = |n: u32| Part {
            key: format!("backups/{id}/base.tar.{n:05}"),
            raw_bytes: 10,
            stored_bytes: 4,
            sha256: String::new(),
        };
        Descriptor {
            format: DESCRIPTOR_FORMAT,
            id: id.into(),
            label: String::new(),
            system_identifier: "7300000000000000001".into(),
            server_version: 150_010,
            timeline: TimelineId::new(1).unwrap(),
            start_lsn: Lsn(0x2000028),
            stop_lsn: Lsn(0x2000100),
            start_time: UtcTime::now(),
            stop_time: UtcTime::now(),
            wal_segment_size: 16 << 20,
            compression: "zstd:3".into(),
            key_id: None,
            walvault_version: "test".into(),
            archives: vec![Archive {
                name: "base.tar".into(),
                tablespace_oid: None,
                location: None,
                parts: vec![part(0), part(1)],
            }],
            manifest: StoredFile {
                key: format!("backups/{id}/backup_manifest"),
                raw_bytes: 10,
                stored_bytes: 4,
                sha256: String::new(),
            },
            raw_bytes: 30,
            stored_bytes: 12,
        }
    }

    fn sealed(d: &Descriptor) -> Sealed<'_> {
        Sealed {
            descriptor: layout::descriptor(&d.id),
            deleting: layout::marker(&d.id, Marker::Deleting),
            folder: layout::backup_dir(&d.id),
            objects: d.archives[0]
                .parts
                .iter()
                .map(|p| (p.key.as_str(), p.stored_bytes))
                .chain([(d.manifest.key.as_str(), d.manifest.stored_bytes)])
                .collect(),
        }
    }

    async fn store_objects(storage: &Storage, d: &Descriptor) {
        for k in d.archives[0].parts.iter().map(|p| &p.key).chain([&d.manifest.key]) {
            storage.put_if_absent(&k.as_str().into(), PutPayload::from_static(b"data")).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_whole_backup_keeps_its_descriptor() {
        let storage = mem();
        let d = descriptor("20261201T120000Z");
        store_objects(&storage, &d).await;
        seal(&storage, &sealed(&d), b"{}".to_vec()).await.unwrap();
        assert!(storage.head(&layout::descriptor(&d.id)).await.is_ok());
    }

    #[tokio::test]
    async fn a_running_deletion_or_a_finished_one_leaves_no_descriptor() {
        // A delete that is removing the folder now: its marker is there.
        let storage = mem();
        let d = descriptor("20261201T120000Z");
        store_objects(&storage, &d).await;
        storage
            .put_if_absent(&layout::marker(&d.id, Marker::Deleting), PutPayload::from_static(b""))
            .await
            .unwrap();
        let e = seal(&storage, &sealed(&d), b"{}".to_vec()).await.unwrap_err();
        assert!(e.to_string().contains("is removing its folder"), "{e}");
        assert!(matches!(storage.head(&layout::descriptor(&d.id)).await, Err(StorageError::NotFound { .. })));
        // A delete that finished while the backup ran: its first part is gone.
        let storage = mem();
        store_objects(&storage, &d).await;
        storage.delete(&d.archives[0].parts[0].key.as_str().into()).await.unwrap();
        let e = seal(&storage, &sealed(&d), b"{}".to_vec()).await.unwrap_err();
        assert!(e.to_string().contains("1 of its 3 objects are gone"), "{e}");
        assert!(e.to_string().contains("base.tar.00000"), "{e}");
        assert!(matches!(storage.head(&layout::descriptor(&d.id)).await, Err(StorageError::NotFound { .. })));
    }
}
