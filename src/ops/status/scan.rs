//! What `status` knows of the repository, kept small and refreshed incrementally, so a status
//! (or a scrape of `status --listen`) never lists the whole repository:
//!
//! - WAL: `wal/` is listed one level (its folders); only folders not seen before and the newest
//!   folder of each timeline (the only ones WAL is appended to) are listed again, every other one
//!   is taken from the cache. A full listing is made when the cache is older than
//!   [`RESCAN_AFTER`] (retention and repairs change old folders).
//! - Backups: `backups/` is listed one level; a descriptor is read only the first time its id
//!   is seen (descriptors are written once, create-only).
//!
//! Why this and not a summary object that wal-push and base-backup update: a summary written by
//! every wal-push would add a request to every archived segment, and concurrent pushers would
//! race to overwrite it; listing the newest folder costs one request per refresh, whoever wrote.
//! The cache is a file for a one-shot `walvault status` (`--cache`, default in
//! `$XDG_CACHE_HOME/walvault/`) and memory for `status --listen`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::repo::descriptor::Descriptor;
use crate::repo::inventory::{self, WalRanges};
use crate::repo::layout::{self, Marker, WalDir};
use crate::repo::{DirListing, Storage, StorageError};
use crate::units::UtcTime;
use crate::wal::{WalFileName, WalSegSize};

/// A full listing of `wal/` is made at least this often.
pub const RESCAN_AFTER: Duration = Duration::from_secs(3600);

/// One WAL folder, summarised.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Folder {
    /// The WAL file names in it (history files included), in name order.
    pub names: Vec<String>,
    /// Bytes stored.
    pub bytes: u64,
    /// The newest segment (by name) and when it was written.
    pub newest: Option<(String, UtcTime)>,
}

/// A backup, as much as status needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BackupSummary {
    /// Its id.
    pub id: String,
    /// Its descriptor.
    pub descriptor: Descriptor,
}

/// The cache.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Cache {
    /// The repository it is of.
    pub repo: String,
    /// `wal/` folder key → summary.
    pub folders: BTreeMap<String, Folder>,
    /// Backup id → descriptor.
    pub backups: BTreeMap<String, Descriptor>,
    /// When `wal/` was last listed whole.
    pub full_at: Option<UtcTime>,
}

/// What a refresh found.
#[derive(Clone, Debug, Default)]
pub struct Scanned {
    /// Backups with a descriptor, oldest first.
    pub backups: Vec<Descriptor>,
    /// Backup ids without a descriptor (being taken, or failed).
    pub without_descriptor: Vec<String>,
    /// WAL folders listed in this refresh (the rest came from the cache).
    pub folders_listed: usize,
    /// Whether this refresh listed every WAL folder.
    pub full: bool,
}

impl Cache {
    /// Reads a cache file (empty when missing, unreadable or of another repository).
    pub fn load(path: &Path, repo: &str) -> Cache {
        let c: Cache =
            std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        if c.repo == repo { c } else { Cache { repo: repo.to_string(), ..Cache::default() } }
    }

    /// Writes the cache file (best effort: a status never fails for its cache).
    pub fn save(&self, path: &Path) {
        let write = || -> std::io::Result<()> {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::debug!("cannot write the status cache {}: {e}", path.display());
        }
    }

    /// Brings the cache up to date with the repository at `now`.
    pub async fn refresh(&mut self, storage: &Storage, now: UtcTime) -> Result<Scanned, StorageError> {
        self.repo = storage.url().to_string();
        let full = self.full_at.is_none_or(|t| now.datetime() - t.datetime() >= RESCAN_AFTER);
        let dirs = inventory::wal_dirs(storage).await?;
        let newest_per_timeline: BTreeMap<u32, WalDir> = dirs
            .iter()
            .filter_map(|d| match d {
                WalDir::Segments { timeline, .. } => Some((timeline.get(), *d)),
                WalDir::History => None,
            })
            .collect();
        let keys: Vec<String> = dirs.iter().map(|d| d.key().to_string()).collect();
        self.folders.retain(|k, _| keys.contains(k));
        let mut listed = 0;
        for d in &dirs {
            let key = d.key().to_string();
            let stale = full
                || !self.folders.contains_key(&key)
                || *d == WalDir::History
                || newest_per_timeline.values().any(|n| n == d);
            if !stale {
                continue;
            }
            listed += 1;
            let objects = inventory::wal_dir(storage, *d).await?;
            let newest = objects
                .iter()
                .filter(|o| o.name.segment().is_some())
                .max_by_key(|o| o.name.to_string())
                .map(|o| (o.name.to_string(), o.modified));
            self.folders.insert(
                key,
                Folder {
                    names: objects.iter().map(|o| o.name.to_string()).collect(),
                    bytes: objects.iter().map(|o| o.size).sum(),
                    newest,
                },
            );
        }
        if full {
            self.full_at = Some(now);
        }
        let DirListing { objects, dirs: backup_dirs } = storage.list_dir(&layout::backups_root()).await?;
        let ids: Vec<String> =
            objects.iter().filter_map(|o| layout::descriptor_id(&o.location).map(str::to_string)).collect();
        self.backups.retain(|id, _| ids.contains(id));
        for id in &ids {
            if self.backups.contains_key(id) {
                continue;
            }
            match storage.get_bytes(&layout::descriptor(id)).await {
                Ok(b) => match serde_json::from_slice::<Descriptor>(&b) {
                    Ok(d) => {
                        self.backups.insert(id.clone(), d);
                    }
                    Err(e) => {
                        tracing::warn!("status: {} is not a backup descriptor: {e}", layout::descriptor(id))
                    }
                },
                Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut without: Vec<String> = backup_dirs
            .iter()
            .filter_map(layout::backup_dir_id)
            .chain(objects.iter().filter_map(|o| {
                layout::marker_of(&o.location).filter(|(_, m)| *m == Marker::Started).map(|(id, _)| id)
            }))
            .filter(|id| !self.backups.contains_key(*id))
            .map(str::to_string)
            .collect();
        without.sort();
        without.dedup();
        let mut backups: Vec<Descriptor> = self.backups.values().cloned().collect();
        backups.sort_by(|a, b| (a.stop_time, &a.id).cmp(&(b.stop_time, &b.id)));
        Ok(Scanned { backups, without_descriptor: without, folders_listed: listed, full })
    }

    /// The archived WAL per timeline, from the cache.
    pub fn ranges(&self, seg_size: WalSegSize) -> Vec<inventory::TimelineWal> {
        let mut fold = WalRanges::new(seg_size);
        for f in self.folders.values() {
            for n in &f.names {
                if let Ok(name) = n.parse::<WalFileName>() {
                    fold.add(name);
                }
            }
        }
        fold.finish()
    }

    /// The newest archived segment (highest timeline, then position) and when it was written.
    pub fn newest_wal(&self) -> Option<(String, UtcTime)> {
        self.folders.values().filter_map(|f| f.newest.clone()).max_by(|a, b| a.0.cmp(&b.0))
    }

    /// Bytes of WAL stored.
    pub fn wal_bytes(&self) -> u64 {
        self.folders.values().map(|f| f.bytes).sum()
    }
}

/// The default cache file for `repo`: `$XDG_CACHE_HOME/walvault/status-<hash>.json` (or under
/// `~/.cache`); `None` without a home.
pub fn default_cache(repo: &str) -> Option<PathBuf> {
    use sha2::Digest;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let hash = hex::encode(&sha2::Sha256::digest(repo.as_bytes())[..8]);
    Some(base.join("walvault").join(format!("status-{hash}.json")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use object_store::PutPayload;

    use super::*;
    use crate::repo::retry::RetryPolicy;
    use crate::repo::testutil::{TestStore, mem_storage};
    use crate::wal::{SegmentName, TimelineId};

    #[tokio::test]
    async fn only_new_and_newest_folders_are_listed_again() {
        let store = Arc::new(TestStore::default());
        let s = mem_storage(store.clone(), RetryPolicy::new(0, Duration::from_secs(5)));
        let seg = |n: u64| {
            WalFileName::Segment(SegmentName::from_segno(TimelineId::new(1).unwrap(), n, WalSegSize::DEFAULT))
        };
        for n in 0..600 {
            s.put_if_absent(&layout::wal(&seg(n)), PutPayload::from_static(b"x")).await.unwrap();
        }
        let now: UtcTime = "2026-12-01T00:00:00Z".parse().unwrap();
        let mut cache = Cache::default();
        let first = cache.refresh(&s, now).await.unwrap();
        assert!(first.full);
        assert_eq!(first.folders_listed, 3);
        s.put_if_absent(&layout::wal(&seg(600)), PutPayload::from_static(b"x")).await.unwrap();
        let before = store.level_lists.load(Ordering::SeqCst);
        let later: UtcTime = "2026-12-01T00:01:00Z".parse().unwrap();
        let second = cache.refresh(&s, later).await.unwrap();
        assert!(!second.full);
        assert_eq!(second.folders_listed, 1, "only the newest folder of the timeline");
        // wal/ itself, the newest folder, and backups/.
        assert_eq!(store.level_lists.load(Ordering::SeqCst) - before, 3);
        assert_eq!(cache.newest_wal().unwrap().0, seg(600).to_string());
        let r = cache.ranges(WalSegSize::DEFAULT);
        assert_eq!(r[0].ranges.len(), 1);
        assert_eq!(r[0].ranges[0].segments, 601);
        assert_eq!(store.recursive_lists.load(Ordering::SeqCst), 0);
        // An hour on, everything is listed again.
        let hour: UtcTime = "2026-12-01T01:01:00Z".parse().unwrap();
        assert!(cache.refresh(&s, hour).await.unwrap().full);
    }
}
