//! What `walvault verify` has already checked, so a rerun reads only what it has not:
//! `verify/wal/<TLI+LOG>.json` for each WAL folder and `verify/backups/<id>.json` for each backup,
//! each the objects of that folder with the size and ETag (or modification time) they had and
//! when they were found sound. An object is read again when it changed (another size or tag),
//! when its check is older than `reverify_after`, or with `--full`.
//!
//! Only objects found sound are recorded, after they were read. A record that is missing or does
//! not parse means "not checked": a kill, or a lost record, only costs reads.

use std::collections::BTreeMap;
use std::time::Duration;

use object_store::PutPayload;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::repo::{Storage, StorageError};
use crate::units::UtcTime;

/// One object found sound.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seen {
    /// Its size then.
    pub size: u64,
    /// Its ETag (or modification time) then.
    pub tag: String,
    /// When it was read and found sound.
    pub at: UtcTime,
}

/// The objects of one folder found sound, by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checked {
    /// Key → what was seen.
    pub objects: BTreeMap<String, Seen>,
    /// Small objects kept here whole (history files, key → text), so a rerun need not read them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub texts: BTreeMap<String, String>,
}

impl Checked {
    /// Reads the record at `key` (empty when there is none or it does not parse).
    pub async fn load(storage: &Storage, key: &Path) -> Result<Checked, StorageError> {
        match storage.get_bytes(key).await {
            Ok(b) => Ok(serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!("ignoring {key}: not a verify record ({e}); its objects are read again");
                Checked::default()
            })),
            Err(StorageError::NotFound { .. }) => Ok(Checked::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the record to `key`.
    pub async fn save(&self, storage: &Storage, key: &Path) -> Result<(), StorageError> {
        let json = serde_json::to_vec(self).expect("records serialise");
        storage.put(key, PutPayload::from(json)).await
    }

    /// Whether `key` (now `size` bytes with `tag`) was found sound less than `reverify_after`
    /// before `now`, and has not changed since.
    pub fn fresh(&self, key: &str, size: u64, tag: &str, now: UtcTime, reverify_after: Duration) -> bool {
        self.objects.get(key).is_some_and(|s| {
            s.size == size && s.tag == tag && (now.datetime() - s.at.datetime()) < reverify_after
        })
    }

    /// Records `key` as found sound at `now`.
    pub fn record(&mut self, key: &str, size: u64, tag: &str, now: UtcTime) {
        self.objects.insert(key.to_string(), Seen { size, tag: tag.to_string(), at: now });
    }

    /// Drops records of objects no longer in `keys`.
    pub fn retain(&mut self, keys: &std::collections::BTreeSet<String>) {
        self.objects.retain(|k, _| keys.contains(k));
        self.texts.retain(|k, _| keys.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_only_while_unchanged_and_recent() {
        let now: UtcTime = "2026-12-01T00:00:00Z".parse().unwrap();
        let later: UtcTime = "2026-12-20T00:00:00Z".parse().unwrap();
        let month = Duration::from_secs(30 * 86_400);
        let mut c = Checked::default();
        c.record("k", 10, "e1", now);
        assert!(c.fresh("k", 10, "e1", later, month));
        assert!(!c.fresh("k", 11, "e1", later, month), "another size");
        assert!(!c.fresh("k", 10, "e2", later, month), "replaced");
        assert!(!c.fresh("k", 10, "e1", later, Duration::from_secs(86_400)), "too old");
        assert!(!c.fresh("other", 10, "e1", later, month));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Checked>(&json).unwrap(), c);
    }
}
