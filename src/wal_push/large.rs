//! Pushing a WAL file too large to hold encoded in memory (`initdb --wal-segsize` up to 1 GiB)
//! with bounded memory: the file is read, hashed, compressed and sealed as it streams into a
//! multipart upload at a temporary key ([`layout::wal_upload`], under `tmp/`), with a few parts
//! in flight; once that object is complete and its trailer (SHA-256 and length of the bytes
//! actually read) matches the file, a create-only copy ([`Storage::copy_if_absent`]) puts it at
//! its final key `wal/...`, and the temporary object is deleted (also on every failure after
//! the upload began). The object is the same as the in-memory path would store: wal-fetch,
//! verify and restore read it alike. An existing object at the final key is never replaced: the
//! copy refuses, and [`compare_existing`] decides as for a small file.
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
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as Key;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::upload::{Ctx, PushError, Pushed, UPLOAD_BUDGET_KIB, compare_existing};
use crate::format::Trailer;
use crate::object::encode::{ONE_SHOT_MAX, encode_reader_into};
use crate::repo::{StorageError, layout};
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

/// Pushes `file` (`len` bytes, already checked) through a temporary object; see the module.
pub async fn upload(
    ctx: &Ctx<'_>,
    file: File,
    len: u64,
    name: WalFileName,
    path: &Path,
) -> Result<(Pushed, Trailer), PushError> {
    let temp = layout::wal_upload(&name, rand::random());
    let result = async {
        let (trailer, stored) = stream_to(ctx, file, len, &temp, path).await?;
        let key = layout::wal(&name);
        match ctx.storage.copy_if_absent(&temp, &key).await {
            Ok(()) => Ok((Pushed::Archived { len, stored }, trailer)),
            Err(StorageError::AlreadyExists { .. }) => {
                compare_existing(ctx.cfg, ctx.storage, &key, name, trailer).await.map(|p| (p, trailer))
            }
            Err(e) => Err(PushError::from(e)),
        }
    }
    .await;
    // Best effort: a leftover under tmp/ is never read as WAL.
    if let Err(e) = ctx.storage.delete(&temp).await {
        tracing::warn!("cannot remove the temporary upload {temp}: {e}");
    }
    result
}

/// Encodes `file` into a complete object at `temp`; returns its trailer and stored size. One
/// such upload at a time per process (it holds the encoding turn and the whole upload budget).
async fn stream_to(
    ctx: &Ctx<'_>,
    file: File,
    len: u64,
    temp: &Key,
    path: &Path,
) -> Result<(Trailer, u64), PushError> {
    let _cpu = ctx.cpu.acquire().await.expect("semaphore never closed");
    let _memory = ctx.memory.acquire_many(UPLOAD_BUDGET_KIB).await.expect("semaphore never closed");
    let mut upload = ctx.storage.start_multipart(temp, PART).await?;

    let (compression, key, chunk) =
        (ctx.cfg.compression, ctx.cfg.keys.write_key().cloned(), ctx.cfg.chunk_size);
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
        (Err(e), _) => Err(PushError::from(e)),
        (Ok(()), Err(e)) => Err(PushError::Panicked(e.to_string())),
        (Ok(()), Ok(Err(e))) => Err(PushError::Read { path: path.into(), source: e }),
        (Ok(()), Ok(Ok((trailer, _)))) if trailer.len != len => Err(PushError::Read {
            path: path.into(),
            source: io::Error::other(format!("read {} bytes, expected {len}", trailer.len)),
        }),
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
    use std::sync::Arc;
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::*;
    use crate::config::{Config, ConfigArgs};
    use crate::format::Compression;
    use crate::format::{HEADER_LEN, Header};
    use crate::keys::{KeyRing, MasterKey};
    use crate::object::encode::encode_reader;
    use crate::object::read::{ObjectSink, read_object};
    use crate::repo::Storage;
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

    async fn push(ctx: &Ctx<'_>, dir: &Path, name: WalFileName, bytes: &[u8]) -> Result<Pushed, PushError> {
        let path = dir.join(name.to_string());
        std::fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        upload(ctx, file, bytes.len() as u64, name, &path).await.map(|(p, t)| {
            assert_eq!(t, Trailer::of(bytes));
            p
        })
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
        let store = Arc::new(InMemory::new());
        let storage = Storage::from_store(store, RetryPolicy::new(1, Duration::from_secs(5)), "memory://");
        let cfg = config(None);
        let ctx = Ctx::new(&cfg, &storage, dir.path());
        let name: WalFileName = "000000010000000000000003".parse().unwrap();
        let final_key = layout::wal(&name);
        // Several parts of PART bytes once encoded, and a last short one.
        let first = data(3 * PART + 12_345, 7);

        let pushed = push(&ctx, dir.path(), name, &first).await.unwrap();
        let stored = storage.get_bytes(&final_key).await.unwrap();
        assert_eq!(pushed, Pushed::Archived { len: first.len() as u64, stored: stored.len() as u64 });
        assert!(stored.len() > 2 * PART, "only {} bytes stored: too few parts to test", stored.len());
        // Without a key the encoding is deterministic: the very object the in-memory path makes.
        let in_memory =
            encode_reader(&first[..], cfg.compression, None, cfg.chunk_size, Some(first.len() as u64))
                .unwrap();
        // (but for the header's random salt).
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

        // Again: verified identical, nothing written.
        assert_eq!(push(&ctx, dir.path(), name, &first).await.unwrap(), Pushed::AlreadyArchived);
        assert_eq!(keys(&storage).await, [final_key.to_string()]);

        // Different bytes under the same name: refused, the archived object untouched.
        let second = data(first.len(), 8);
        let err = push(&ctx, dir.path(), name, &second).await.unwrap_err();
        assert!(matches!(err, PushError::Conflict { .. }), "{err}");
        assert!(storage.get_bytes(&final_key).await.unwrap() == stored, "the archived object changed");
        assert_eq!(keys(&storage).await, [final_key.to_string()]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn encrypted_large_objects_decode_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(InMemory::new());
        let storage = Storage::from_store(store, RetryPolicy::new(1, Duration::from_secs(5)), "memory://");
        let cfg = config(Some(MasterKey::from_bytes([9; 32])));
        let ctx = Ctx::new(&cfg, &storage, dir.path());
        let name: WalFileName = "000000010000000000000004".parse().unwrap();
        let bytes = data(PART + 1, 3);
        assert!(matches!(push(&ctx, dir.path(), name, &bytes).await.unwrap(), Pushed::Archived { .. }));
        let mut out = Collect(Vec::new());
        let trailer = read_object(&storage, &layout::wal(&name), &cfg.keys, &mut out).await.unwrap();
        assert_eq!(trailer, Trailer::of(&bytes));
        assert!(out.0 == bytes, "decoded bytes differ");
        assert_eq!(keys(&storage).await, [layout::wal(&name).to_string()]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_file_shorter_than_announced_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(InMemory::new());
        let storage = Storage::from_store(store, RetryPolicy::new(1, Duration::from_secs(5)), "memory://");
        let cfg = config(None);
        let ctx = Ctx::new(&cfg, &storage, dir.path());
        let name: WalFileName = "000000010000000000000005".parse().unwrap();
        let bytes = data(PART + 100, 4);
        let path = dir.path().join(name.to_string());
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let err = upload(&ctx, file, bytes.len() as u64 + 1, name, &path).await.unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
        assert!(keys(&storage).await.is_empty(), "{:?}", keys(&storage).await);
    }
}
