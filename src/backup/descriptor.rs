//! The backup descriptor, `backups/<id>.json`: plain JSON written last, so a backup exists if and
//! only if its descriptor does. `list` and retention read it without any key.

use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;
use crate::storage::{Storage, StorageError};

/// The descriptor format this build writes.
pub const DESCRIPTOR_FORMAT: u32 = 1;

/// One stored part of an archive: a run of whole tar members, encoded as one object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    /// The object key.
    pub key: String,
    /// Bytes of tar data in the part.
    pub raw_bytes: u64,
    /// Bytes of the stored object.
    pub stored_bytes: u64,
    /// SHA-256 (hex) of the tar data (the same as the object's trailer).
    pub sha256: String,
}

/// One archive of the backup: the main data directory or one tablespace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Archive {
    /// `base.tar` or `<oid>.tar`.
    pub name: String,
    /// The tablespace's OID (`None` for the main data directory).
    pub tablespace_oid: Option<u32>,
    /// The tablespace's directory on the server.
    pub location: Option<String>,
    /// Its parts, in order.
    pub parts: Vec<Part>,
}

/// A stored object that is not a tar part (PostgreSQL's `backup_manifest`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredFile {
    /// The object key.
    pub key: String,
    /// Bytes of the original file.
    pub raw_bytes: u64,
    /// Bytes of the stored object.
    pub stored_bytes: u64,
    /// SHA-256 (hex) of the original file.
    pub sha256: String,
}

/// Everything about one finished base backup.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    /// Descriptor format version.
    pub format: u32,
    /// The backup id (UTC start time, `20261123T104501Z`): sorts by time.
    pub id: String,
    /// The label given to PostgreSQL.
    pub label: String,
    /// The cluster's system identifier (decimal text).
    pub system_identifier: String,
    /// `server_version_num` of the server.
    pub server_version: u32,
    /// The timeline the backup started on.
    pub timeline: u32,
    /// Where replay must start (`X/X`).
    pub start_lsn: String,
    /// Where the backup becomes consistent (`X/X`).
    pub stop_lsn: String,
    /// When the backup started (RFC 3339 UTC).
    pub start_time: String,
    /// When it finished (RFC 3339 UTC).
    pub stop_time: String,
    /// WAL segment size of the cluster.
    pub wal_segment_size: u32,
    /// Compression of the stored objects (`zstd:3`, `lz4`, `none`).
    pub compression: String,
    /// Id of the key the objects are encrypted with, if any.
    pub key_id: Option<String>,
    /// The walvault version that took it.
    pub walvault_version: String,
    /// The archives (main data directory first).
    pub archives: Vec<Archive>,
    /// PostgreSQL's backup manifest, stored byte for byte.
    pub manifest: StoredFile,
    /// Total bytes of tar data and manifest.
    pub raw_bytes: u64,
    /// Total bytes stored.
    pub stored_bytes: u64,
}

impl Descriptor {
    /// The descriptor's own key.
    pub fn key(id: &str) -> Path {
        Path::from(format!("backups/{id}.json"))
    }

    /// Where the backup's parts live.
    pub fn prefix(id: &str) -> Path {
        Path::from(format!("backups/{id}"))
    }

    /// The start position.
    pub fn start(&self) -> Option<Lsn> {
        self.start_lsn.parse().ok()
    }

    /// The consistency position.
    pub fn stop(&self) -> Option<Lsn> {
        self.stop_lsn.parse().ok()
    }

    /// Stored / original size.
    pub fn ratio(&self) -> f64 {
        if self.raw_bytes == 0 { 1.0 } else { self.stored_bytes as f64 / self.raw_bytes as f64 }
    }
}

/// Every backup in the repository (every `backups/<id>.json` that parses), oldest first.
/// A descriptor that cannot be read as one is skipped with a warning, so one damaged
/// descriptor does not hide the other backups.
pub async fn list_backups(storage: &Storage) -> Result<Vec<Descriptor>, StorageError> {
    let mut ids: Vec<String> = storage
        .list(&Path::from("backups"))
        .await?
        .into_iter()
        .filter_map(|o| {
            let key = o.location.as_ref();
            let id = key.strip_prefix("backups/")?.strip_suffix(".json")?;
            is_backup_id(id).then(|| id.to_string())
        })
        .collect();
    ids.sort();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let key = Descriptor::key(&id);
        match storage.get_bytes(&key).await {
            Ok(bytes) => match serde_json::from_slice::<Descriptor>(&bytes) {
                Ok(d) if d.id == id => out.push(d),
                Ok(d) => tracing::warn!("skipping {key}: it describes backup {}", d.id),
                Err(e) => tracing::warn!("skipping {key}: not a backup descriptor: {e}"),
            },
            // Removed since the listing (retention): not an error.
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// A new backup id for `now`: `YYYYMMDDTHHMMSSZ`.
pub fn backup_id(now: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.to_offset(time::UtcOffset::UTC).format(&f).expect("formats")
}

/// Whether `s` looks like a backup id (so stray objects are not taken for backups).
pub fn is_backup_id(s: &str) -> bool {
    s.len() == 16
        && s.as_bytes()[8] == b'T'
        && s.ends_with('Z')
        && s[..8].bytes().chain(s[9..15].bytes()).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let a = backup_id(time::macros::datetime!(2026-11-23 10:45:01 UTC));
        let b = backup_id(time::macros::datetime!(2026-11-23 10:45:02 UTC));
        let c = backup_id(time::macros::datetime!(2027-01-01 00:00:00 UTC));
        assert_eq!(a, "20261123T104501Z");
        assert!(a < b && b < c);
        assert!(is_backup_id(&a));
        for bad in ["20261123T104501", "2026112XT104501Z", "x", "20261123T104501Z.json"] {
            assert!(!is_backup_id(bad), "{bad}");
        }
    }
}
