//! What the repository holds, read without any key: the backups (their descriptors, and folders
//! left without one), and the archived WAL as ranges of consecutive segments per timeline with
//! the gaps between them.
//!
//! WAL is read one `wal/<TLI+LOG>/` folder at a time (at most 4096 segments, 256 at the default
//! segment size), in key order, and folded into [`WalRanges`] as it comes: memory grows with the
//! number of ranges and folders, never with the number of segments archived.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::descriptor::{Descriptor, Started};
use super::error::StorageError;
use super::layout::{self, Marker, WalDir};
use super::{DirListing, Storage};
use crate::units::UtcTime;
use crate::wal::{SegmentName, TimelineId, WalFileName, WalSegSize};

/// The backups of a repository.
#[derive(Clone, Debug, Default)]
pub struct Backups {
    /// Every backup whose descriptor parses, oldest first (by id, the start time).
    pub backups: Vec<Backup>,
    /// Backups with no (readable) descriptor: one being taken now, the leftovers of one that
    /// failed and could not clean up, or of a deletion that did not finish.
    pub without_descriptor: Vec<BackupFolder>,
}

/// A backup with its descriptor, and its marks.
#[derive(Clone, Debug)]
pub struct Backup {
    /// Its descriptor.
    pub descriptor: Descriptor,
    /// `walvault mark --keep` keeps it.
    pub kept: bool,
    /// A deletion of it started and did not finish.
    pub deleting: bool,
}

/// A backup id with objects or markers but no readable descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFolder {
    /// The backup id.
    pub id: String,
    /// What its `.started` marker says, if it has a readable one.
    pub started: Option<Started>,
    /// It has a `.started` marker (readable or not).
    pub has_started: bool,
    /// It has a `.deleting` marker.
    pub deleting: bool,
    /// It has a `.sealing` marker (a base-backup checking its folder, or one killed doing so).
    pub sealing: bool,
    /// It has a `.keep` marker.
    pub kept: bool,
    /// Its folder holds objects (parts, the manifest).
    pub has_objects: bool,
    /// It has a descriptor that does not parse.
    pub unreadable_descriptor: bool,
    /// When the store last wrote any of its objects or markers: a backup being taken keeps
    /// writing parts, so this, not its start, says whether it may still be running.
    pub last_written: Option<UtcTime>,
}

impl BackupFolder {
    fn new(id: &str) -> BackupFolder {
        BackupFolder {
            id: id.to_string(),
            started: None,
            has_started: false,
            deleting: false,
            sealing: false,
            kept: false,
            has_objects: false,
            unreadable_descriptor: false,
            last_written: None,
        }
    }
}

/// Every backup in the repository. One listing of `backups/` (descriptors, markers and folders,
/// not the parts inside them), then one GET per descriptor and per `.started` marker of a backup
/// without one. A descriptor that cannot be read as one is skipped with a warning, so one
/// damaged descriptor does not hide the other backups.
pub async fn backups(storage: &Storage) -> Result<Backups, StorageError> {
    let DirListing { objects, dirs } = storage.list_dir(&layout::backups_root()).await?;
    let mut ids: Vec<String> =
        objects.iter().filter_map(|o| layout::descriptor_id(&o.location).map(str::to_string)).collect();
    ids.sort();
    let mut markers: BTreeMap<String, Vec<Marker>> = BTreeMap::new();
    for o in &objects {
        if let Some((id, m)) = layout::marker_of(&o.location) {
            markers.entry(id.to_string()).or_default().push(m);
        }
    }
    let has = |id: &str, m: Marker| markers.get(id).is_some_and(|v| v.contains(&m));
    let mut backups = Vec::with_capacity(ids.len());
    let mut unreadable = Vec::new();
    for id in &ids {
        let key = layout::descriptor(id);
        match storage.get_bytes(&key).await {
            Ok(bytes) => match serde_json::from_slice::<Descriptor>(&bytes) {
                Ok(d) if d.id == *id => backups.push(Backup {
                    descriptor: d,
                    kept: has(id, Marker::Keep),
                    deleting: has(id, Marker::Deleting),
                }),
                Ok(d) => {
                    tracing::warn!("skipping {key}: it describes backup {}", d.id);
                    unreadable.push(id.clone());
                }
                Err(e) => {
                    tracing::warn!("skipping {key}: not a backup descriptor: {e}");
                    unreadable.push(id.clone());
                }
            },
            // Removed since the listing (retention): not an error.
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let described: std::collections::BTreeSet<&str> =
        backups.iter().map(|b| b.descriptor.id.as_str()).collect();
    let mut folders: BTreeMap<String, BackupFolder> = BTreeMap::new();
    for id in dirs.iter().filter_map(layout::backup_dir_id) {
        folders.entry(id.to_string()).or_insert_with(|| BackupFolder::new(id)).has_objects = true;
    }
    for (id, ms) in &markers {
        let f = folders.entry(id.clone()).or_insert_with(|| BackupFolder::new(id));
        f.has_started = ms.contains(&Marker::Started);
        f.deleting = ms.contains(&Marker::Deleting);
        f.sealing = ms.contains(&Marker::Sealing);
        f.kept = ms.contains(&Marker::Keep);
    }
    for id in unreadable {
        folders.entry(id.clone()).or_insert_with(|| BackupFolder::new(&id)).unreadable_descriptor = true;
    }
    folders.retain(|id, _| !described.contains(id.as_str()));
    let mut without_descriptor: Vec<BackupFolder> = folders.into_values().collect();
    for f in &mut without_descriptor {
        let marker_times =
            objects.iter().filter(|o| layout::marker_of(&o.location).is_some_and(|(id, _)| id == f.id));
        let part_times =
            if f.has_objects { storage.list(&layout::backup_dir(&f.id)).await? } else { Vec::new() };
        f.last_written = marker_times.chain(part_times.iter()).map(modified).max();
        if f.has_started {
            match storage.get_bytes(&layout::marker(&f.id, Marker::Started)).await {
                Ok(b) => f.started = serde_json::from_slice(&b).ok(),
                Err(StorageError::NotFound { .. }) => f.has_started = false,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Backups { backups, without_descriptor })
}

/// Every backup in the repository whose descriptor parses, oldest first.
pub async fn list_backups(storage: &Storage) -> Result<Vec<Descriptor>, StorageError> {
    Ok(backups(storage).await?.backups.into_iter().map(|b| b.descriptor).collect())
}

/// One archived WAL file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalObject {
    /// Its name.
    pub name: WalFileName,
    /// Bytes stored.
    pub size: u64,
    /// When the store last wrote it.
    pub modified: UtcTime,
    /// What identifies this very object (its ETag, else its modification time): it changes
    /// when the object is replaced.
    pub tag: String,
}

/// When the store last wrote `m`, to the second.
pub fn modified(m: &object_store::ObjectMeta) -> UtcTime {
    UtcTime::from_datetime(
        time::OffsetDateTime::from_unix_timestamp(m.last_modified.timestamp())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// What identifies an object's current version: its ETag, else its modification time and size.
pub fn object_tag(m: &object_store::ObjectMeta) -> String {
    match &m.e_tag {
        Some(t) => t.clone(),
        None => format!("{}/{}", m.last_modified.timestamp_nanos_opt().unwrap_or_default(), m.size),
    }
}

/// The folders under `wal/`, in key order: each timeline's logs in order, `history` last.
pub async fn wal_dirs(storage: &Storage) -> Result<Vec<WalDir>, StorageError> {
    let listing = storage.list_dir(&layout::wal_root()).await?;
    let mut dirs: Vec<WalDir> = listing.dirs.iter().filter_map(WalDir::parse).collect();
    dirs.sort();
    Ok(dirs)
}

/// The WAL files in one folder, by name (objects that are not WAL files are skipped).
pub async fn wal_dir(storage: &Storage, dir: WalDir) -> Result<Vec<WalObject>, StorageError> {
    let listing = storage.list_dir(&dir.key()).await?;
    let mut files: Vec<WalObject> = listing
        .objects
        .iter()
        .filter_map(|m| {
            Some(WalObject {
                name: layout::wal_name(&m.location)?,
                size: m.size,
                modified: time::OffsetDateTime::from_unix_timestamp(m.last_modified.timestamp())
                    .map(UtcTime::from_datetime)
                    .ok()?,
                tag: object_tag(m),
            })
        })
        .collect();
    files.sort_by_cached_key(|f| f.name.to_string());
    Ok(files)
}

/// Every archived WAL file, one folder listed at a time, in key order.
pub fn wal_files(
    storage: &Storage,
) -> impl Stream<Item = Result<(WalDir, Vec<WalObject>), StorageError>> + '_ {
    futures::stream::once(wal_dirs(storage))
        .map_ok(move |dirs| {
            futures::stream::iter(dirs)
                .then(move |d| async move { wal_dir(storage, d).await.map(|f| (d, f)) })
        })
        .try_flatten()
}

/// A run of consecutive segments on one timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Range {
    /// The first segment.
    pub first: String,
    /// The last segment.
    pub last: String,
    /// How many segments.
    pub segments: u64,
}

/// The archived WAL of one timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TimelineWal {
    /// The timeline.
    pub timeline: u32,
    /// Runs of consecutive segments, in order.
    pub ranges: Vec<Range>,
    /// The missing runs between them, in order.
    pub gaps: Vec<Range>,
    /// `.partial` segments of this timeline.
    pub partial: Vec<String>,
    /// Whether its `.history` file is archived.
    pub history: bool,
}

/// Folds WAL file names, each timeline's segments in ascending order (as [`wal_files`] yields
/// them), into ranges and gaps per timeline.
#[derive(Debug)]
pub struct WalRanges {
    seg_size: WalSegSize,
    per: BTreeMap<u32, Building>,
}

#[derive(Debug, Default)]
struct Building {
    ranges: Vec<(u64, u64)>,
    partial: Vec<String>,
    history: bool,
}

impl WalRanges {
    /// An empty fold for segments of `seg_size`.
    pub fn new(seg_size: WalSegSize) -> WalRanges {
        WalRanges { seg_size, per: BTreeMap::new() }
    }

    /// Adds one name. Segments of a timeline must come in ascending order; a repeat is ignored.
    pub fn add(&mut self, name: WalFileName) {
        let b = self.per.entry(name.timeline().get()).or_default();
        match name {
            WalFileName::Segment(s) => {
                let n = s.segno(self.seg_size);
                match b.ranges.last_mut() {
                    Some((_, last)) if n == *last + 1 => *last = n,
                    Some((_, last)) if n <= *last => debug_assert!(n == *last, "segments out of order"),
                    _ => b.ranges.push((n, n)),
                }
            }
            WalFileName::Partial(_) => b.partial.push(name.to_string()),
            WalFileName::History(_) => b.history = true,
            WalFileName::BackupLabel { .. } => {}
        }
    }

    /// The ranges and gaps per timeline, by timeline.
    pub fn finish(self) -> Vec<TimelineWal> {
        let seg_size = self.seg_size;
        self.per
            .into_iter()
            .map(|(tli, b)| {
                let timeline = TimelineId::new(tli).expect("parsed names have timelines above 0");
                let name = |segno| SegmentName::from_segno(timeline, segno, seg_size).to_string();
                let range = |a: u64, b: u64| Range { first: name(a), last: name(b), segments: b - a + 1 };
                let ranges: Vec<Range> = b.ranges.iter().map(|&(a, z)| range(a, z)).collect();
                let gaps = b.ranges.windows(2).map(|w| range(w[0].1 + 1, w[1].0 - 1)).collect();
                let mut partial = b.partial;
                partial.sort();
                TimelineWal { timeline: tli, ranges, gaps, partial, history: b.history }
            })
            .collect()
    }
}

/// Groups WAL file names, in any order, into per-timeline ranges and gaps (collects them first:
/// for small sets; the repository is folded folder by folder with [`WalRanges`]).
pub fn wal_ranges(names: impl IntoIterator<Item = WalFileName>, seg_size: WalSegSize) -> Vec<TimelineWal> {
    let mut names: Vec<WalFileName> = names.into_iter().collect();
    names.sort_by_key(|n| (n.timeline().get(), n.segment().map(|s| s.segno(seg_size))));
    let mut fold = WalRanges::new(seg_size);
    names.into_iter().for_each(|n| fold.add(n));
    fold.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::repo::retry::RetryPolicy;
    use crate::repo::testutil::{TestStore, mem_storage};

    fn seg(tli: u32, n: u64) -> WalFileName {
        WalFileName::Segment(SegmentName::from_segno(TimelineId::new(tli).unwrap(), n, WalSegSize::DEFAULT))
    }

    #[test]
    fn ranges_and_gaps_per_timeline() {
        let mut names: Vec<WalFileName> = [1, 2, 3, 7, 8, 300].iter().map(|&n| seg(1, n)).collect();
        names.push(seg(2, 8));
        names.push("00000002.history".parse().unwrap());
        names.push("000000010000000000000008.partial".parse().unwrap());
        let wal = wal_ranges(names, WalSegSize::DEFAULT);
        assert_eq!(wal.len(), 2);
        let t1 = &wal[0];
        let r: Vec<(&str, &str, u64)> =
            t1.ranges.iter().map(|r| (r.first.as_str(), r.last.as_str(), r.segments)).collect();
        assert_eq!(
            r,
            [
                ("000000010000000000000001", "000000010000000000000003", 3),
                ("000000010000000000000007", "000000010000000000000008", 2),
                ("00000001000000010000002C", "00000001000000010000002C", 1),
            ]
        );
        assert_eq!(t1.gaps[0].first, "000000010000000000000004");
        assert_eq!(t1.gaps[0].segments, 3);
        assert_eq!(t1.gaps[1].segments, 300 - 9);
        assert_eq!(t1.partial, ["000000010000000000000008.partial"]);
        assert!(wal[1].history && wal[1].gaps.is_empty());
    }

    #[tokio::test]
    async fn wal_is_read_one_folder_at_a_time() {
        let counting = Arc::new(TestStore::default());
        let inner = &counting.inner;
        // Three logs of timeline 1 (256 segments each at 16 MiB), two segments on timeline 2, a
        // history file, and something that is not WAL.
        let mut names: Vec<WalFileName> = (0..3 * 256 + 5).filter(|n| *n != 300).map(|n| seg(1, n)).collect();
        names.extend([seg(2, 0), seg(2, 1), "00000002.history".parse().unwrap()]);
        for n in &names {
            inner.put(&layout::wal(n), PutPayload::from_static(b"x")).await.unwrap();
        }
        inner.put(&object_store::path::Path::from("wal/stray"), PutPayload::from_static(b"x")).await.unwrap();
        let storage = mem_storage(counting.clone(), RetryPolicy::new(0, std::time::Duration::from_secs(5)));
        let mut fold = WalRanges::new(WalSegSize::DEFAULT);
        let mut folders = Vec::new();
        let files = wal_files(&storage);
        futures::pin_mut!(files);
        while let Some(r) = files.next().await {
            let (dir, objects) = r.unwrap();
            assert!(objects.len() <= 256, "{dir:?}: {} objects", objects.len());
            folders.push(dir);
            objects.into_iter().for_each(|o| fold.add(o.name));
        }
        assert_eq!(folders.len(), 6, "{folders:?}");
        assert_eq!(folders.last(), Some(&WalDir::History));
        // Never a recursive listing of wal/: one level at a time, each answer at most a folder.
        assert_eq!(counting.recursive_lists.load(Ordering::SeqCst), 0);
        assert!(counting.largest_answer.load(Ordering::SeqCst) <= 256);
        let wal = fold.finish();
        assert_eq!(wal, wal_ranges(names, WalSegSize::DEFAULT));
        assert_eq!(wal[0].gaps.len(), 1);
        assert_eq!(wal[0].gaps[0].first, seg(1, 300).to_string());
    }

    #[tokio::test]
    async fn backups_and_folders_without_descriptors() {
        let storage =
            mem_storage(Arc::new(InMemory::new()), RetryPolicy::new(0, std::time::Duration::from_secs(5)));
        let put = |k: object_store::path::Path, b: &'static [u8]| {
            let s = storage.clone();
            async move { s.put_if_absent(&k, PutPayload::from_static(b)).await.unwrap() }
        };
        put(layout::part("20261123T104501Z", "base.tar", 0), b"p").await;
        put(layout::part("20261124T104501Z", "base.tar", 0), b"p").await;
        put(layout::descriptor("20261124T104501Z"), b"not json").await;
        put(layout::marker("20261125T104501Z", Marker::Deleting), b"").await;
        let b = backups(&storage).await.unwrap();
        assert!(b.backups.is_empty());
        let ids: Vec<(&str, bool, bool, bool)> = b
            .without_descriptor
            .iter()
            .map(|f| (f.id.as_str(), f.has_objects, f.unreadable_descriptor, f.deleting))
            .collect();
        assert_eq!(
            ids,
            [
                ("20261123T104501Z", true, false, false),
                ("20261124T104501Z", true, true, false),
                ("20261125T104501Z", false, false, true)
            ]
        );
    }
}
