//! Streams one stored object's bytes to a consumer, resuming where a cut-off stream stopped
//! (a ranged GET from the next byte, accepted only if the object's ETag and size are still the
//! first response's). The timeout bounds each wait for more bytes, not the whole object, so a
//! large part on a slow link is not abandoned while it is still moving; consecutive failures
//! without progress are bounded by the retry policy.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::repo::retry::Retryable;
use crate::repo::{Storage, StorageError};

/// Why an object could not be streamed.
#[derive(Debug, Error)]
pub enum DownloadError {
    /// The repository failed (after retries), or the object is missing.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored object's size is not the one the descriptor records.
    #[error("{key} has {actual} bytes in the repository, but the backup's descriptor says {expected}")]
    Size {
        /// The object.
        key: String,
        /// Its size in the repository.
        actual: u64,
        /// The descriptor's.
        expected: u64,
    },
    /// The object was replaced while it was being read.
    #[error("{key} changed in the repository while it was being read")]
    Changed {
        /// The object.
        key: String,
    },
    /// The consumer stopped (it failed, or the restore is being abandoned).
    #[error("stopped")]
    Stopped,
}

/// Streams the object at `key` (which must have `expected_size` bytes, when given: otherwise
/// the first response's size) into `tx`; returns the number of bytes sent. Stops early, with
/// [`DownloadError::Stopped`], once `abort` is set or the receiver is gone.
pub async fn download(
    storage: &Storage,
    key: &Path,
    expected_size: Option<u64>,
    abort: &AtomicBool,
    tx: &mpsc::Sender<Bytes>,
) -> Result<u64, DownloadError> {
    let policy = *storage.policy();
    let mut offset = 0u64;
    let mut first: Option<(Option<String>, u64)> = None;
    let mut failures = 0u32;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(DownloadError::Stopped);
        }
        let progress_before = offset;
        let cut = match tokio::time::timeout(policy.timeout, storage.get_stream_from(key, offset)).await {
            Err(_) => StorageError::timed_out(&format!("GET {key}"), policy.timeout),
            Ok(Err(e)) if e.is_permanent() => return Err(e.into()),
            Ok(Err(e)) => e,
            Ok(Ok((meta, mut stream))) => {
                match &first {
                    None => {
                        if let Some(expected) = expected_size
                            && meta.size != expected
                        {
                            return Err(DownloadError::Size {
                                key: key.to_string(),
                                actual: meta.size,
                                expected,
                            });
                        }
                        first = Some((meta.e_tag.clone(), meta.size));
                    }
                    Some((etag, size)) => {
                        if meta.e_tag != *etag || meta.size != *size {
                            return Err(DownloadError::Changed { key: key.to_string() });
                        }
                    }
                }
                let expected_size = first.as_ref().map_or(meta.size, |(_, size)| *size);
                loop {
                    match tokio::time::timeout(policy.timeout, stream.next()).await {
                        Ok(None) => return Ok(offset),
                        Ok(Some(Ok(bytes))) => {
                            if abort.load(Ordering::Relaxed) {
                                return Err(DownloadError::Stopped);
                            }
                            offset += bytes.len() as u64;
                            if offset > expected_size {
                                return Err(DownloadError::Size {
                                    key: key.to_string(),
                                    actual: offset,
                                    expected: expected_size,
                                });
                            }
                            tx.send(bytes).await.map_err(|_| DownloadError::Stopped)?;
                        }
                        Ok(Some(Err(e))) if e.is_permanent() => return Err(e.into()),
                        Ok(Some(Err(e))) => break e,
                        Err(_) => break StorageError::timed_out(&format!("GET {key}"), policy.timeout),
                    }
                }
            }
        };
        if offset > progress_before {
            failures = 0;
        }
        if failures >= policy.retries {
            return Err(cut.into());
        }
        let wait = policy.jittered(failures);
        tracing::warn!(
            "GET {key} failed at byte {offset} ({cut}); resuming in {} ms (attempt {} of {})",
            wait.as_millis(),
            failures + 2,
            policy.retries + 1
        );
        tokio::time::sleep(wait).await;
        failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::repo::retry::RetryPolicy;
    use crate::repo::testutil::{TestStore, mem_storage};

    fn storage(cuts: usize, after: usize) -> (Storage, Arc<TestStore>) {
        let store = Arc::new(TestStore::cutting(cuts, after));
        let policy = RetryPolicy::new(2, std::time::Duration::from_secs(5));
        (mem_storage(store.clone(), policy), store)
    }

    async fn run(s: &Storage, size: u64) -> (Result<u64, DownloadError>, Vec<u8>) {
        let (tx, mut rx) = mpsc::channel(1024);
        let r = download(s, &Path::from("o"), Some(size), &AtomicBool::new(false), &tx).await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.extend_from_slice(&b);
        }
        (r, got)
    }

    #[tokio::test]
    async fn resumes_after_cuts_and_gives_up_without_progress() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        // Two cuts, each after some progress: resumed twice, every byte once.
        let (s, store) = storage(2, 30_000);
        store.put(&Path::from("o"), PutPayload::from(data.clone())).await.unwrap();
        let (r, got) = run(&s, data.len() as u64).await;
        assert_eq!(r.unwrap(), data.len() as u64);
        assert!(got == data);
        assert_eq!(store.gets.load(Ordering::SeqCst), 3);
        // Cuts without progress: given up after the policy's retries.
        let (s, store) = storage(10, 0);
        store.put(&Path::from("o"), PutPayload::from(data.clone())).await.unwrap();
        let (r, _) = run(&s, data.len() as u64).await;
        assert!(matches!(r, Err(DownloadError::Storage(StorageError::Unavailable { .. }))), "{r:?}");
        assert_eq!(store.gets.load(Ordering::SeqCst), 3);
        // A size other than the descriptor's.
        let (s, store) = storage(0, 0);
        store.put(&Path::from("o"), PutPayload::from(data.clone())).await.unwrap();
        let (r, _) = run(&s, 5).await;
        assert!(matches!(r, Err(DownloadError::Size { actual: 100_000, expected: 5, .. })), "{r:?}");
        // Missing: permanent, no retry.
        let (s, _store) = storage(0, 0);
        let (r, _) = run(&s, 5).await;
        assert!(matches!(r, Err(DownloadError::Storage(StorageError::NotFound { .. }))), "{r:?}");
    }
}
