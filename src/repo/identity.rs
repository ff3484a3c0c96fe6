//! The repository's identity object, `walvault.json`: format version and the PostgreSQL cluster
//! (system identifier) it belongs to. Created by the first segment pushed, checked by every push.
//!
//! Only a segment carries what the identity records (its long page header has the system
//! identifier and the segment size); a timeline history file carries neither. So a repository
//! whose first archived file is a history file (a promoted standby archives its new timeline's
//! history before its first segment) holds `wal/history/<TLI>.history` and no identity until
//! the next segment: [`holds_history`] tells that repository from an empty or wrong one.

use object_store::PutPayload;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::Storage;
use super::error::StorageError;
use super::layout::{self, WalDir};
use crate::units::UtcTime;

/// The repository format this build writes.
pub const REPO_FORMAT: u32 = 1;

/// What to do about a cluster whose system identifier is not the repository's, said by every
/// refusal of one (wal-push, base-backup, dump, check): after `pg_upgrade` or a new `initdb`
/// this is the normal first push of the new cluster.
pub const OTHER_CLUSTER_ADVICE: &str = "a cluster made by initdb or pg_upgrade is a new cluster: \
     give it its own repository (set `repo` to a new prefix or bucket) and take a base backup there \
     (docs/OPERATIONS.md, pg_upgrade)";

/// The contents of `walvault.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// Repository format version.
    pub format: u32,
    /// The cluster's system identifier, as decimal text (it does not fit a JSON number).
    pub system_identifier: String,
    /// PostgreSQL major version of the first segment, when known.
    pub pg_version: Option<u32>,
    /// WAL segment size in bytes.
    pub wal_segment_size: u32,
    /// When the repository was created (RFC 3339, UTC).
    pub created: UtcTime,
    /// The walvault version that created it.
    pub created_by: String,
}

/// Why the identity could not be read or does not match.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// Reading or writing `walvault.json` failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `walvault.json` is not what walvault writes.
    #[error("{0}/walvault.json is not a walvault identity ({1}); is repo pointing at the right place?")]
    Unreadable(String, String),
    /// The repository was made by a newer walvault.
    #[error(
        "{repo} has repository format {found}; this walvault understands {REPO_FORMAT}: upgrade walvault"
    )]
    NewerFormat {
        /// The repository URL.
        repo: String,
        /// The format found.
        found: u32,
    },
}

/// Reads `walvault.json`; `None` if the repository has none yet.
pub async fn read(storage: &Storage) -> Result<Option<Identity>, IdentityError> {
    let bytes = match storage.get_bytes(&layout::identity()).await {
        Ok(b) => b,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let id: Identity = serde_json::from_slice(&bytes)
        .map_err(|e| IdentityError::Unreadable(storage.url().into(), e.to_string()))?;
    if id.format > REPO_FORMAT {
        return Err(IdentityError::NewerFormat { repo: storage.url().into(), found: id.format });
    }
    Ok(Some(id))
}

/// Returns the repository's identity, creating it from `proposed` if there is none. Racing
/// creators agree: exactly one write wins and everyone reads the winner.
pub async fn ensure(storage: &Storage, proposed: &Identity) -> Result<Identity, IdentityError> {
    if let Some(id) = read(storage).await? {
        return Ok(id);
    }
    let mut json = serde_json::to_vec_pretty(proposed).expect("identity serialises");
    json.push(b'\n');
    match storage.put_if_absent(&layout::identity(), PutPayload::from(json)).await {
        Ok(()) => {
            tracing::info!(
                "created repository {} for system identifier {}",
                storage.url(),
                proposed.system_identifier
            );
            Ok(proposed.clone())
        }
        Err(StorageError::AlreadyExists { .. }) => read(storage).await?.ok_or_else(|| {
            IdentityError::Unreadable(storage.url().into(), "vanished after being created".into())
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether the repository holds a timeline history file, which only wal-push writes there: a
/// repository without `walvault.json` that holds one is a real walvault repository whose first
/// segment is still to come, not an empty bucket or a wrong prefix. One listing of
/// `wal/history/` (which holds one small file per timeline).
pub async fn holds_history(storage: &Storage) -> Result<bool, StorageError> {
    let listing = match storage.list_dir(&WalDir::History.key()).await {
        Ok(l) => l,
        Err(StorageError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(listing
        .objects
        .iter()
        .any(|o| matches!(layout::wal_name(&o.location), Some(n) if n.segment().is_none())))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    use super::*;
    use crate::repo::retry::RetryPolicy;

    async fn repo(keys: &[&str]) -> Storage {
        let store = Arc::new(InMemory::new());
        for k in keys {
            store.put(&Path::from(*k), PutPayload::from_static(b"x")).await.unwrap();
        }
        Storage::from_store(store, RetryPolicy::new(0, std::time::Duration::from_secs(5)), "memory://")
    }

    #[tokio::test]
    async fn only_a_history_file_is_proof_of_a_repository() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            // A flat `cp` archive, or anything else that is not walvault's layout.
            (&["00000002.history", "000000010000000000000001"], false),
            (&["wal/history/README"], false),
            (&["wal/history/00000002.history"], true),
            (&["wal/history/00000002.history", "wal/history/00000003.history"], true),
        ];
        for (keys, want) in cases {
            assert_eq!(holds_history(&repo(keys).await).await.unwrap(), *want, "{keys:?}");
        }
    }
}
