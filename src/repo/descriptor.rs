//! The backup descriptor, `backups/<id>.json`: plain JSON written last, so a backup exists if and
//! only if its descriptor does. `list` and retention read it without any key. LSNs, the timeline
//! and times are typed here and serialise to the same JSON as ever (`"0/2000028"`, `1`,
//! `"2026-11-23T10:45:01Z"`).

use serde::{Deserialize, Serialize};

use crate::units::UtcTime;
use crate::wal::{Lsn, TimelineId};

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
    pub timeline: TimelineId,
    /// Where replay must start (`X/X` in JSON).
    pub start_lsn: Lsn,
    /// Where the backup becomes consistent (`X/X` in JSON).
    pub stop_lsn: Lsn,
    /// When the backup started (RFC 3339 UTC, to the second).
    pub start_time: UtcTime,
    /// When it finished (RFC 3339 UTC, to the second, cut).
    pub stop_time: UtcTime,
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

/// What `backups/<id>.started` says of a backup being taken: enough for `delete` to keep the
/// WAL it will need before its descriptor exists.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Started {
    /// The backup id.
    pub id: String,
    /// When base-backup started.
    pub start_time: UtcTime,
    /// The server's WAL position before the backup started: its start LSN is at or after it.
    pub wal_from: Lsn,
    /// The server's timeline then.
    pub timeline: TimelineId,
}

impl Descriptor {
    /// Stored / original size.
    pub fn ratio(&self) -> f64 {
        if self.raw_bytes == 0 { 1.0 } else { self.stored_bytes as f64 / self.raw_bytes as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_fields_keep_the_json_of_format_1() {
        let json = r#"{"format":1,"id":"20261123T104501Z","label":"l","system_identifier":"7","server_version":150010,
            "timeline":2,"start_lsn":"0/2000028","stop_lsn":"0/2000100","start_time":"2026-11-23T10:45:01Z",
            "stop_time":"2026-11-23T10:45:09Z","wal_segment_size":16777216,"compression":"zstd:3","key_id":null,
            "walvault_version":"0.1.0","archives":[],"manifest":{"key":"k","raw_bytes":1,"stored_bytes":2,"sha256":"ab"},
            "raw_bytes":1,"stored_bytes":2}"#;
        let d: Descriptor = serde_json::from_str(json).unwrap();
        assert_eq!(d.start_lsn, Lsn(0x2000028));
        assert_eq!(d.timeline.get(), 2);
        assert_eq!(d.stop_time.to_string(), "2026-11-23T10:45:09Z");
        let back: serde_json::Value = serde_json::to_value(&d).unwrap();
        let orig: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, orig);
        assert!(serde_json::from_str::<Descriptor>(&json.replace("0/2000028", "bogus")).is_err());
    }
}
