//! Leftover temporary uploads under `tmp/`: what a large wal-push (`wal_push::large`) killed
//! between its upload's completion and its create-only copy, or after the copy but before it
//! removed the temporary object, leaves behind. Nothing ever reads them as WAL; they only cost
//! storage. `delete` removes those older than `older_than`, with the backup rules (they belong
//! to WAL archiving: the dump rules alone never touch them), and lists them in its dry run.
//!
//! Only keys of the form wal-push writes (`tmp/<WAL file name>.<16 hex>`, [`wal_upload`](crate::repo::layout::wal_upload))
//! are touched; anything else under `tmp/` is left alone. A temporary object younger than
//! `older_than` may be an upload that is about to be copied, and stays. An older one deleted just
//! before its copy (only a wal-push stalled for longer than `older_than` could be there) makes
//! that copy fail with "not found": that wal-push exits non-zero and PostgreSQL retries it, so
//! nothing is ever reported archived that is not. A kill while deleting leaves fewer leftovers;
//! the next run removes the rest.

use std::time::Duration;

use object_store::path::Path;
use serde::Serialize;

use crate::repo::layout::TMP;
use crate::repo::{Storage, StorageError};
use crate::units::{UtcTime, format_span};
use crate::wal::WalFileName;

/// What `delete` does with `tmp/`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TmpPlan {
    /// Why nothing under `tmp/` is looked at (no backup rules in this run), if so.
    pub untouched: Option<String>,
    /// The leftovers that go, oldest first.
    pub deleted: Vec<TmpObject>,
    /// Temporary uploads younger than `older_than`, which stay (possibly being copied now).
    pub young: u64,
    /// Objects under `tmp/` that wal-push did not write, left alone.
    pub foreign: u64,
    /// The age a leftover must reach (`older_than`).
    pub older_than: String,
}

/// One leftover temporary upload.
#[derive(Clone, Debug, Serialize)]
pub struct TmpObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was last written.
    pub last_modified: UtcTime,
}

impl TmpPlan {
    /// A plan that leaves `tmp/` alone, saying why.
    pub fn untouched(why: &str) -> TmpPlan {
        TmpPlan { untouched: Some(why.to_string()), ..TmpPlan::default() }
    }

    /// Bytes the plan frees.
    pub fn bytes_freed(&self) -> u64 {
        self.deleted.iter().map(|o| o.bytes).sum()
    }
}

/// The leftovers under `tmp/` older than `older_than` at `now`.
pub async fn plan(storage: &Storage, now: UtcTime, older_than: Duration) -> Result<TmpPlan, StorageError> {
    let mut p = TmpPlan { older_than: format_span(older_than), ..TmpPlan::default() };
    for meta in storage.list(&Path::from(TMP)).await? {
        if !is_wal_upload(&meta.location) {
            p.foreign += 1;
            continue;
        }
        let written = time::OffsetDateTime::from_unix_timestamp(meta.last_modified.timestamp())
            .map(UtcTime::from_datetime)
            .unwrap_or(now);
        if now.datetime() - written.datetime() < older_than {
            p.young += 1;
            continue;
        }
        p.deleted.push(TmpObject {
            key: meta.location.to_string(),
            bytes: meta.size,
            last_modified: written,
        });
    }
    p.deleted.sort_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)));
    Ok(p)
}

/// Deletes the leftovers the plan lists.
pub async fn execute(storage: &Storage, p: &TmpPlan) -> Result<(), StorageError> {
    if p.deleted.is_empty() {
        return Ok(());
    }
    let keys: Vec<Path> = p.deleted.iter().map(|o| Path::from(o.key.as_str())).collect();
    storage.delete_many(&keys).await?;
    tracing::info!("deleted {} leftover temporary uploads under {TMP}/", keys.len());
    Ok(())
}

/// Whether `key` is one [`wal_upload`](crate::repo::layout::wal_upload) makes: `tmp/<WAL file name>.<16 hex>`.
fn is_wal_upload(key: &Path) -> bool {
    let mut parts = key.parts();
    let (Some(top), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if top.as_ref() != TMP {
        return false;
    }
    let Some((wal, suffix)) = name.as_ref().rsplit_once('.') else {
        return false;
    };
    let hex = suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex && wal.parse::<WalFileName>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::layout;

    #[test]
    fn only_keys_wal_push_writes_are_leftovers() {
        let name: WalFileName = "00000001000000020000003A".parse().unwrap();
        assert!(is_wal_upload(&layout::wal_upload(&name, 0xAB)));
        assert!(is_wal_upload(&layout::wal_upload(&"00000002.history".parse().unwrap(), u64::MAX)));
        for other in [
            "tmp/00000001000000020000003A",
            "tmp/00000001000000020000003A.00000000000000AB",
            "tmp/00000001000000020000003A.00000000000000ab#1",
            "tmp/notes.00000000000000ab",
            "tmp/x/00000001000000020000003A.00000000000000ab",
            "wal/00000001000000020000003A.00000000000000ab",
        ] {
            assert!(!is_wal_upload(&Path::from(other)), "{other}");
        }
    }
}
