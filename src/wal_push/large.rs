//! Pushing a WAL file too large to hold encoded in memory (`initdb --wal-segsize` up to 1 GiB)
//! with bounded memory: the file is read, hashed, compressed and sealed as it streams into a
//! multipart upload at a temporary key ([`layout::wal_upload`], under `tmp/`), with a few parts
//! in flight; once that object is complete and its trailer (SHA-256 and length of the bytes
//! actually read) matches the file, a create-only copy ([`Storage::copy_if_absent`]) puts it at
//! its final key `wal/...`, and the temporary object is deleted (also on every failure after
//! the upload began). The object is the same as the in-memory path would store: wal-fetch,
//! verify and restore read it alike. An existing object at the final key is never replaced: the
//! copy refuses, and the caller (`upload`) compares it as for a small file.
//!
//! Used only for files above [`threshold`] on backends whose copy is create-only, atomic and
//! complete when it answers ([`Storage::has_create_only_copy`]); others keep the in-memory
//! create-only PUT.
//!
//! Crash story: until the multipart upload completes nothing is visible (S3 keeps the parts of
//! an incomplete upload until it is aborted or a lifecycle rule removes them; file:// a staging
//! file beside the temporary key); between its completion and the copy, a kill leaves a complete
//! object under `tmp/` and nothing at the final key; the copy is atomic (a hard link, or a
//! conditional CompleteMultipartUpload), so the final key holds either nothing or the complete
//! object; after it, a kill leaves at most the temporary object behind, never read as WAL.
//! wal-push exits 0 only after the copy succeeded (or an identical object was verified there).

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as Key;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::Config;
use crate::format::Trailer;
use crate::object::encode::{ONE_SHOT_MAX, encode_reader_into};
use crate::repo::{Storage, StorageError, layout};
use crate::wal::name::WalFileName;

/// Bytes per multipart part (S3 wants at least 5 MiB but for the last).
const PART: usize = 8 << 20;
/// Parts uploading at once, besides the one being filled.
const PARTS_IN_FLIGHT: usize = 2;
/// Encoded KiB queued between the encoding thread and the uploader.
const QUEUE_BUDGET_KIB: u32 = 4 * 1024;
/// Encoded pieces queued (a count bound; [`QUEUE_BUDGET_KIB`] bounds the bytes).
const QUEUE: usize = 256;

/// Test builds only (the `test-tools` feature): a size in bytes from this variable replaces
/// [`ONE_SHOT_MAX`] as the threshold, so the tests exercise this path on 16 MiB segments.
/// Release builds never read it.
pub const TEST_THRESHOLD_VAR: &str = "WALVAULT_TEST_LARGE_PUSH_MIN";

/// Files larger than this take this path (where the backend allows): [`ONE_SHOT_MAX`], the size
/// up to which a file is encoded in one shot in memory.
pub fn threshold() -> u64 {
    #[cfg(feature = "test-tools")]
    if let Some(n) = std::env::var(TEST_THRESHOLD_VAR).ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    ONE_SHOT_MAX
}

/// Where the object ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// It is now at the final key.
    Created,
    /// An object was already at the final key (left as it was): the caller compares it.
    AlreadyExists,
}

/// A file streamed into the repository.
#[derive(Debug, Clone, Copy)]
pub struct Streamed {
    /// Length and SHA-256 of the bytes read.
    pub trailer: Trailer,
    /// The object's size.
    pub stored: u64,
    /// Whether it was copied into place.
    pub placed: Placed,
}

/// Why a file could not be streamed into place.
#[derive(Debug, Error)]
pub enum LargeError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The file could not be read, or was not the size it was announced to be.
    #[error("{0}")]
    Read(io::Error),
    /// The encoding thread panicked (a bug).
    #[error("an internal task failed: {0}")]
    Panicked(String),
}

/// Streams `file` (`len` bytes) into a temporary object and copies it create-only to
/// `wal/...` (see the module); the temporary object is deleted whatever happened. The caller
/// holds the memory this takes (a few parts) against its budget.
pub async fn push(
    cfg: &Config,
    storage: &Storage,
    file: File,
    len: u64,
    name: WalFileName,
) -> Result<Streamed, LargeError> {
    let temp = layout::wal_upload(&name, rand::random());
    tracing::info!("{name} is {len} bytes: streaming it through {temp}");
    let result = async {
        let (trailer, stored) = stream_to(cfg, storage, file, len, &temp).await?;
        let key = layout::wal(&name);
        // Looked for first: an object already there is not copied over at all (no gigabyte
        // copied for a duplicate, and a store that ignored the copy's precondition would still
        // not replace it, but for a race); the copy itself is create-only.
        let placed = match storage.head(&key).await {
            Ok(_) => Placed::AlreadyExists,
            // A store that answers a HEAD of a missing key with 403 (S3 without s3:ListBucket)
            // says nothing: the create-only copy decides.
            Err(StorageError::NotFound { .. } | StorageError::Denied { .. }) => {
                match storage.copy_if_absent(&temp, &key).await {
                    Ok(()) => Placed::Created,
                    Err(StorageError::AlreadyExists { .. }) => Placed::AlreadyExists,
                    Err(e) => return Err(LargeError::from(e)),
                }
            }
            Err(e) => return Err(LargeError::from(e)),
        };
        Ok(Streamed { trailer, stored, placed })
    }
    .await;
    // Best effort: a leftover under tmp/ is never read as WAL.
    if let Err(e) = storage.delete(&temp).await {
        tracing::warn!("cannot remove the temporary upload {temp}: {e}");
    }
    result
}

/// Encodes `file` into a complete object at `temp`; returns its trailer and stored size.
async fn stream_to(
    cfg: &Config,
    storage: &Storage,
    file: File,
    len: u64,
    temp: &Key,
) -> Result<(Trailer, u64), LargeError> {
    let mut upload = storage.start_multipart(temp, PART).await?;
    let (compression, key, chunk) = (cfg.compression, cfg.keys.write_key().cloned(), cfg.chunk_size);
    let budget = Arc::new(Semaphore::new(QUEUE_BUDGET_KIB as usize));
    let (tx, mut rx) = mpsc::channel::<(Bytes, OwnedSemaphorePermit)>(QUEUE);
    let thread_budget = budget.clone();
    let encoding = tokio::task::spawn_blocking(move || {
        let stopped = || io::Error::other("the upload stopped");
        encode_reader_into(file, compression, key.as_ref(), chunk, Some(len), |pieces| {
            for p in pieces.drain(..) {
                let kib = u32::try_from(p.len().div_ceil(1024)).unwrap_or(u32::MAX).min(QUEUE_BUDGET_KIB);
                let permit = futures::executor::block_on(thread_budget.clone().acquire_many_owned(kib))
                    .map_err(|_| stopped())?;
                tx.blocking_send((p, permit)).map_err(|_| stopped())?;
            }
            Ok(())
        })
    });

    let mut sent = Ok(());
    while let Some((bytes, permit)) = rx.recv().await {
        // From here the bytes count against the parts in flight, not the queue.
        upload.put(bytes);
        drop(permit);
        if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
            sent = Err(StorageError::from_store("PUT", temp, e));
            break;
        }
    }
    // On failure the encoding thread stops at its next send (or wait for budget).
    rx.close();
    budget.close();
    let encoded = encoding.await;
    let checked = match (sent, encoded) {
        (Err(e), _) => Err(LargeError::from(e)),
        (Ok(()), Err(e)) => Err(LargeError::Panicked(e.to_string())),
        (Ok(()), Ok(Err(e))) => Err(LargeError::Read(e)),
        (Ok(()), Ok(Ok((trailer, _)))) if trailer.len != len => {
            Err(LargeError::Read(io::Error::other(format!("read {} bytes, expected {len}", trailer.len))))
        }
        (Ok(()), Ok(Ok(done))) => Ok(done),
    };
    match checked {
        Ok(done) => {
            upload.finish().await.map_err(|e| StorageError::from_store("PUT", temp, e))?;
            Ok(done)
        }
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::debug!("cannot abort the upload to {temp}: {abort}");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::*;
    use crate::config::ConfigArgs;
    use crate::format::{Compression, HEADER_LEN, Header};
    use crate::keys::{KeyRing, MasterKey};
    use crate::object::encode::encode_reader;
    use crate::object::read::{ObjectSink, read_object};
    use crate::repo::retry::RetryPolicy;

    struct Collect(Vec<u8>);

    impl ObjectSink for Collect {
        fn reset(&mut self) -> io::Result<()> {
            self.0.clear();
            Ok(())
        }
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn config(key: Option<MasterKey>) -> Config {
        let args = ConfigArgs { repo: Some("file:///unused".into()), ..Default::default() };
        let mut cfg = Config::resolve(&args).unwrap();
        cfg.compression = Compression::Zstd { level: 3 };
        cfg.keys = KeyRing::new(key, vec![]);
        cfg
    }

    fn memory() -> Storage {
        Storage::from_store(
            Arc::new(InMemory::new()),
            RetryPolicy::new(1, Duration::from_secs(5)),
            "memory://",
        )
    }

    /// Bytes that compress a little: several multipart parts' worth of stored bytes.
    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                if i % 4 == 0 {
                    0
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }
            })
            .collect()
    }

    async fn push_bytes(
        cfg: &Config,
        storage: &Storage,
        dir: &Path,
        name: WalFileName,
        bytes: &[u8],
        announced: u64,
    ) -> Result<Streamed, LargeError> {
        let path = dir.join(name.to_string());
        std::fs::write(&path, bytes).unwrap();
        push(cfg, storage, File::open(&path).unwrap(), announced, name).await
    }

    async fn keys(storage: &Storage) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for prefix in ["wal", "tmp"] {
            let listed = storage.list(&Key::from(prefix)).await.unwrap();
            keys.extend(listed.iter().map(|o| o.location.to_string()));
        }
        keys
    }

    #[tokio::test(flavor = "current_thread")]
    async fn streams_the_same_object_creates_only_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, cfg) = (memory(), config(None));
        let name: WalFileName = "000000010000000000000003".parse().unwrap();
        let final_key = layout::wal(&name);
        // Several parts of PART bytes once encoded, and a last short one.
        let first = data(3 * PART + 12_345, 7);
        let len = first.len() as u64;

        let s = push_bytes(&cfg, &storage, dir.path(), name, &first, len).await.unwrap();
        assert_eq!((s.placed, s.trailer), (Placed::Created, Trailer::of(&first)));
        let stored = storage.get_bytes(&final_key).await.unwrap();
        assert_eq!(s.stored, stored.len() as u64);
        assert!(stored.len() > 2 * PART, "only {} bytes stored: too few parts to test", stored.len());
        // Without a key the encoding is deterministic: the very object the in-memory path makes
        // (but for the header's random salt).
        let in_memory = encode_reader(&first[..], cfg.compression, None, cfg.chunk_size, Some(len)).unwrap();
        let in_memory = in_memory.pieces.concat();
        let salt_free = |o: &[u8]| {
            let mut h = Header::parse(o).unwrap().unwrap();
            h.salt = [0; 32];
            (h.to_bytes(), o[HEADER_LEN..].to_vec())
        };
        assert!(
            salt_free(&in_memory) == salt_free(&stored),
            "the streamed object differs from the in-memory one"
        );
        assert_eq!(keys(&storage).await, [final_key.to_string()]);

        // Different bytes under the same name: not copied, the archived object untouched, and
        // the trailer the caller compares is the new file's.
        let second = data(first.len(), 8);
        let s = push_bytes(&cfg, &storage, dir.path(), name, &second, len).await.unwrap();
        assert_eq!((s.placed, s.trailer), (Placed::AlreadyExists, Trailer::of(&second)));
        assert!(storage.get_bytes(&final_key).await.unwrap() == stored, "the archived object changed");
        assert_eq!(keys(&storage).await, [final_key.to_string()]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn encrypted_large_objects_decode_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, cfg) = (memory(), config(Some(MasterKey::from_bytes([9; 32]))));
        let name: WalFileName = "000000010000000000000004".parse().unwrap();
        let bytes = data(PART + 1, 3);
        let s = push_bytes(&cfg, &storage, dir.path(), name, &bytes, bytes.len() as u64).await.unwrap();
        assert_eq!(s.placed, Placed::Created);
        let mut out = Collect(Vec::new());
        let trailer = read_object(&storage, &layout::wal(&name), &cfg.keys, &mut out).await.unwrap();
        assert_eq!(trailer, Trailer::of(&bytes));
        assert!(out.0 == bytes, "decoded bytes differ");
        assert_eq!(keys(&storage).await, [layout::wal(&name).to_string()]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_file_shorter_than_announced_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, cfg) = (memory(), config(None));
        let name: WalFileName = "000000010000000000000005".parse().unwrap();
        let bytes = data(PART + 100, 4);
        let err =
            push_bytes(&cfg, &storage, dir.path(), name, &bytes, bytes.len() as u64 + 1).await.unwrap_err();
        assert!(matches!(&err, LargeError::Read(e) if e.to_string().contains("expected")), "{err}");
        assert!(keys(&storage).await.is_empty(), "{:?}", keys(&storage).await);
    }
}
