//! The repository's identity object, `walvault.json`: format version and the PostgreSQL cluster
//! (system identifier) it belongs to. Created by the first segment pushed, checked by every push.

use object_store::PutPayload;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::error::StorageError;
use super::{Storage, layout};
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
