//! The last step of a base backup or a dump: the proof that no `walvault delete` took its folder
//! for a failed run's leftovers while it ran, then its descriptor, written create-only.
//!
//! `delete` removes a folder without a descriptor once nothing was written to it for
//! `older_than`; a backup or dump that wrote nothing for that long (a long checkpoint, a wait for
//! WAL archiving, a stopped process) can be taken for leftovers while it still runs. The two
//! sides meet in a handshake that needs nothing but read-after-write consistency:
//!
//! - the writer puts `<id>.sealing`, checks that `<id>.deleting` is absent, lists its folder and
//!   finds every object it describes with its size, and only then puts `<id>.json`, and removes
//!   `<id>.sealing`;
//! - `delete` (`ops::retention::execute`) puts `<id>.deleting`, then reads `<id>.sealing` and
//!   `<id>.json`, in that order, and deletes the folder's objects (the marker last) only if
//!   neither is there (a `.sealing` marker its listing already saw and older than `older_than`,
//!   left by a killed writer, does not count). If either is there it leaves the folder *and its
//!   `.deleting` marker*: removing the marker could let the writer pass its check while another
//!   `delete` that wrote the same marker deletes the folder; the next run cancels the marker of
//!   a backup that has its descriptor, or finishes an empty folder.
//!
//! If `delete` found no `.sealing` marker, either the writer puts it later, after `.deleting`
//! was written, and its check finds `.deleting` (deletion running) or, once `delete` finished,
//! its objects gone, and it fails without a descriptor; or the writer had already removed it,
//! after its descriptor was written, which `delete` then reads and keeps the folder.
//!
//! Crash story: killed before the descriptor, the writer leaves objects, its `.started` and maybe
//! its `.sealing` marker and no descriptor: leftovers once old. Killed after it, a complete
//! backup or dump with a stray `.sealing` marker, which nothing minds and deletion removes. No
//! kill leaves a descriptor over a folder `delete` emptied. What stays open is a writer that
//! pauses for longer than `older_than` between its `.sealing` marker and its descriptor
//! (docs/RELIABILITY.md §6). The price of the handshake: when both sides write their markers
//! at once, both may give up (the writer fails, exit 3; `delete` keeps the folder).

use std::collections::HashMap;

use object_store::PutPayload;
use object_store::path::Path;

use super::inventory::modified;
use super::layout::Marker;
use super::{Storage, StorageError};
use crate::units::UtcTime;

/// What is sealed: the backup's or dump's keys, and every object its descriptor describes.
pub struct Sealed<'a> {
    /// `backups/<id>.json` or `dumps/<id>.json`.
    pub descriptor: Path,
    /// The marker key of the backup or dump for a marker (`layout::marker` or
    /// `layout::dump_marker` with the id).
    pub marker: &'a dyn Fn(Marker) -> Path,
    /// `backups/<id>/` or `dumps/<id>/`.
    pub folder: Path,
    /// The objects described (key, stored bytes).
    pub objects: Vec<(&'a str, u64)>,
}

/// Why a descriptor was not written.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `delete` is removing the folder, or removed objects of it.
    #[error("{0}")]
    NotWhole(String),
}

/// Checks that what `s` describes is whole and that no deletion runs on it, then writes `json`
/// at `s.descriptor`.
pub async fn seal(storage: &Storage, s: &Sealed<'_>, json: Vec<u8>) -> Result<(), SealError> {
    let sealing = (s.marker)(Marker::Sealing);
    storage.put(&sealing, PutPayload::from_static(b"")).await?;
    if let Some(why) = check(storage, s).await? {
        return Err(SealError::NotWhole(why));
    }
    storage.put_if_absent(&s.descriptor, PutPayload::from(json)).await?;
    if let Err(e) = storage.delete(&sealing).await {
        tracing::warn!("{} is written, but {sealing} could not be removed: {e}", s.descriptor);
    }
    Ok(())
}

/// `None` when no deletion is running and every object described is there.
async fn check(storage: &Storage, s: &Sealed<'_>) -> Result<Option<String>, StorageError> {
    match storage.head(&(s.marker)(Marker::Deleting)).await {
        Ok(_) => {
            return Ok(Some(format!(
                "a `walvault delete` marked its folder for deletion ({})",
                (s.marker)(Marker::Deleting)
            )));
        }
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

/// What `delete` reads after writing its `.deleting` marker on a folder without a descriptor:
/// whether a writer is sealing it now, or has sealed it. A `.sealing` marker counts when the
/// plan's listing did not see it, or when it is younger than `older_than` at `now` (one the
/// listing saw and that is older is a killed writer's); a descriptor counts when `describes`
/// takes it for this backup's or dump's. `.sealing` is read first (module comment).
pub async fn sealed_meanwhile(
    storage: &Storage,
    sealing: &Path,
    listing_saw_sealing: bool,
    (now, older_than): (UtcTime, std::time::Duration),
    descriptor: &Path,
    describes: impl Fn(&[u8]) -> bool,
) -> Result<bool, StorageError> {
    match storage.head(sealing).await {
        Ok(m) if !listing_saw_sealing || now.datetime() - modified(&m).datetime() < older_than => {
            return Ok(true);
        }
        Ok(_) | Err(StorageError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    match storage.get_bytes(descriptor).await {
        Ok(bytes) => Ok(describes(&bytes)),
        Err(StorageError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::*;
    use crate::repo::descriptor::{Archive, DESCRIPTOR_FORMAT, Descriptor, Part, StoredFile};
    use crate::repo::layout;
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

    fn sealed<'a>(d: &'a Descriptor, marker: &'a dyn Fn(Marker) -> Path) -> Sealed<'a> {
        Sealed {
            descriptor: layout::descriptor(&d.id),
            marker,
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
        seal(&storage, &sealed(&d, &|m| layout::marker(&d.id, m)), b"{}".to_vec()).await.unwrap();
        assert!(storage.head(&layout::descriptor(&d.id)).await.is_ok());
        assert!(storage.head(&layout::marker(&d.id, Marker::Sealing)).await.is_err(), "the marker stays");
    }

    #[tokio::test]
    async fn delete_sees_a_writer_sealing_or_sealed() {
        let storage = mem();
        let d = descriptor("20261201T120000Z");
        let (sealing, key) = (layout::marker(&d.id, Marker::Sealing), layout::descriptor(&d.id));
        let hour = Duration::from_secs(3600);
        let (now, later) = (
            UtcTime::now(),
            UtcTime::from_datetime(time::OffsetDateTime::now_utc() + time::Duration::days(2)),
        );
        let describes = |b: &[u8]| serde_json::from_slice::<Descriptor>(b).is_ok_and(|x| x.id == d.id);
        let meanwhile = |seen, at| sealed_meanwhile(&storage, &sealing, seen, (at, hour), &key, describes);
        assert!(!meanwhile(false, now).await.unwrap(), "nothing there");
        storage.put(&sealing, PutPayload::from_static(b"")).await.unwrap();
        assert!(meanwhile(false, later).await.unwrap(), "a .sealing marker the listing did not see");
        assert!(meanwhile(true, now).await.unwrap(), "one it saw, but young: a writer sealing now");
        assert!(!meanwhile(true, later).await.unwrap(), "one it saw, old: a killed writer's");
        storage.put(&key, PutPayload::from_static(b"not json")).await.unwrap();
        assert!(!meanwhile(true, later).await.unwrap(), "a descriptor that does not parse");
        let mut other = d.clone();
        other.id = "20261201T130000Z".into();
        storage.put(&key, serde_json::to_vec(&other).unwrap().into()).await.unwrap();
        assert!(!meanwhile(true, later).await.unwrap(), "a descriptor of another backup");
        storage.put(&key, serde_json::to_vec(&d).unwrap().into()).await.unwrap();
        assert!(meanwhile(true, later).await.unwrap(), "a descriptor");
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
        let e = seal(&storage, &sealed(&d, &|m| layout::marker(&d.id, m)), b"{}".to_vec()).await.unwrap_err();
        assert!(e.to_string().contains("marked its folder for deletion"), "{e}");
        assert!(matches!(storage.head(&layout::descriptor(&d.id)).await, Err(StorageError::NotFound { .. })));
        // A delete that finished while the backup ran: its first part is gone.
        let storage = mem();
        store_objects(&storage, &d).await;
        storage.delete(&d.archives[0].parts[0].key.as_str().into()).await.unwrap();
        let e = seal(&storage, &sealed(&d, &|m| layout::marker(&d.id, m)), b"{}".to_vec()).await.unwrap_err();
        assert!(e.to_string().contains("1 of its 3 objects are gone"), "{e}");
        assert!(e.to_string().contains("base.tar.00000"), "{e}");
        assert!(matches!(storage.head(&layout::descriptor(&d.id)).await, Err(StorageError::NotFound { .. })));
    }
}
