//! Reading a stored object: stream it from the repository through the decoder into a sink,
//! resuming a cut stream where it stopped ([`super::download`]); only an object replaced
//! while it was read starts over from the beginning (sink reset).

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use object_store::path::Path;
use thiserror::Error;
use tokio::sync::mpsc;

use super::download::{DownloadError, download};
use crate::format::{DecodeError, Decoder, Trailer};
use crate::keys::KeyRing;
use crate::repo::{Storage, StorageError};

/// Pieces of the stored object between the download and the decoder (each as the store
/// delivers it, some KiB): enough to keep both busy, little memory.
const PIECES_IN_FLIGHT: usize = 16;

/// Where a decoded object goes.
pub trait ObjectSink {
    /// Discards anything written so far (called before reading, and before reading again an
    /// object that changed meanwhile).
    fn reset(&mut self) -> std::io::Result<()>;
    /// Takes the next decoded bytes (not yet verified).
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// A sink that keeps nothing (to verify an object and learn its trailer).
pub struct Discard;

impl ObjectSink for Discard {
    fn reset(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why an object could not be read back.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The repository failed (or the object is missing).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The object's bytes do not decode and verify.
    #[error("{key}: {source}")]
    Decode {
        /// The object's key.
        key: String,
        /// Why it does not decode.
        source: DecodeError,
    },
}

/// Streams the object at `key` into `sink`, decoding and verifying it. Only `Ok` means the sink
/// received exactly the original bytes.
///
/// The bytes come through [`download`]: the timeout bounds each wait for more bytes, so a large
/// object (a 1 GiB segment) that takes longer than the timeout as a whole is still read, and a
/// stream cut off after some progress resumes from the next byte. Only an object replaced while
/// it was being read starts over (sink reset), as many times as the policy retries.
pub async fn read_object(
    storage: &Storage,
    key: &Path,
    keys: &KeyRing,
    sink: &mut dyn ObjectSink,
) -> Result<Trailer, ReadError> {
    let decode_err = |source| ReadError::Decode { key: key.to_string(), source };
    let mut restarts = 0;
    loop {
        sink.reset().map_err(|e| decode_err(DecodeError::Sink(e)))?;
        match attempt(storage, key, keys, sink).await {
            Err(Attempt::Changed) if restarts < storage.policy().retries => {
                restarts += 1;
                tracing::warn!("{key} changed in the repository while it was being read; reading it again");
            }
            Err(Attempt::Changed) => {
                return Err(ReadError::Storage(StorageError::Unavailable {
                    op: format!("GET {key}"),
                    message: format!("the object changed while it was being read, {} times", restarts + 1),
                }));
            }
            Err(Attempt::Failed(e)) => return Err(e),
            Ok(trailer) => return Ok(trailer),
        }
    }
}

/// How one pass over the object ended, if not with its trailer.
enum Attempt {
    /// The object was replaced (or grew) during the pass: worth starting over.
    Changed,
    /// Anything else: final.
    Failed(ReadError),
}

/// One pass: [`download`] feeds the decoder through a short channel, in this task.
async fn attempt(
    storage: &Storage,
    key: &Path,
    keys: &KeyRing,
    sink: &mut dyn ObjectSink,
) -> Result<Trailer, Attempt> {
    let decode_err = |source| Attempt::Failed(ReadError::Decode { key: key.to_string(), source });
    let abort = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Bytes>(PIECES_IN_FLIGHT);
    let fetch = {
        let abort = &abort;
        // `tx` moves in, so the decoder sees the end when the download returns.
        async move { download(storage, key, None, abort, &tx).await }
    };
    let mut dec = Decoder::new(keys);
    let decode = async {
        // Owned here, so a decoder error drops it on return and the download's next send fails.
        let mut rx = rx;
        let mut write = |b: &[u8]| sink.write(b);
        while let Some(piece) = rx.recv().await {
            if let Err(e) = dec.update(&piece, &mut write) {
                abort.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    };
    let (fetched, decoded) = tokio::join!(fetch, decode);
    // A decoder error is the cause of whatever the download then said.
    decoded.map_err(decode_err)?;
    match fetched {
        Ok(_) => dec.finish(&mut |b: &[u8]| sink.write(b)).map_err(decode_err),
        Err(DownloadError::Storage(e)) => Err(Attempt::Failed(ReadError::Storage(e))),
        Err(DownloadError::Changed { .. } | DownloadError::Size { .. }) => Err(Attempt::Changed),
        // Only the decoder stops a download, and it has not.
        Err(DownloadError::Stopped) => Err(Attempt::Failed(ReadError::Storage(StorageError::Unavailable {
            op: format!("GET {key}"),
            message: "the download stopped".into(),
        }))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::format::{Compression, Encoder};
    use crate::keys::{KeyRing, MasterKey};
    use crate::repo::retry::RetryPolicy;
    use crate::repo::testutil::{TestStore, mem_storage};

    /// Collects what it is given.
    #[derive(Default)]
    struct Keep(Vec<u8>, usize);

    impl ObjectSink for Keep {
        fn reset(&mut self) -> std::io::Result<()> {
            self.0.clear();
            self.1 += 1;
            Ok(())
        }
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    async fn stored(store: &TestStore, plain: &[u8], keys: &KeyRing) -> Vec<u8> {
        let encoded = encode(plain, keys);
        store.put(&Path::from("o"), PutPayload::from(encoded.clone())).await.unwrap();
        encoded
    }

    fn encode(plain: &[u8], keys: &KeyRing) -> Vec<u8> {
        let mut enc = Encoder::new(Compression::Zstd { level: 3 }, keys.write_key(), 4096, None);
        let mut out = vec![enc.header()];
        enc.update(plain, &mut out).unwrap();
        enc.finish(Trailer::of(plain), &mut out).unwrap();
        out.concat()
    }

    fn keys() -> KeyRing {
        KeyRing::new(Some(MasterKey::from_bytes([7; 32])), Vec::new())
    }

    fn plain() -> Vec<u8> {
        (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[tokio::test]
    async fn an_object_slower_than_the_timeout_as_a_whole_is_read() {
        let keys = keys();
        let data = plain();
        // 100 ms per request at most; the object comes in pieces 20 ms apart, 300 ms and more.
        let store =
            Arc::new(TestStore { trickle: Some((512, Duration::from_millis(20))), ..Default::default() });
        let encoded = stored(&store, &data, &keys).await;
        assert!(encoded.len() / 512 * 20 > 300, "the object must take longer than the timeout");
        let s = mem_storage(store.clone(), RetryPolicy::new(1, Duration::from_millis(100)));
        let mut sink = Keep::default();
        let trailer = read_object(&s, &Path::from("o"), &keys, &mut sink).await.unwrap();
        assert_eq!(trailer.len, data.len() as u64);
        assert!(sink.0 == data);
        assert_eq!(store.gets.load(Ordering::SeqCst), 1, "one request, never cut off");
    }

    #[tokio::test]
    async fn a_stream_cut_more_often_than_the_retries_resumes_while_it_progresses() {
        let keys = keys();
        let data = plain();
        // Five cuts, each after 3000 more bytes; one retry: read by resuming, reset once.
        let store = Arc::new(TestStore::cutting(5, 3000));
        stored(&store, &data, &keys).await;
        let s = mem_storage(store.clone(), RetryPolicy::new(1, Duration::from_secs(5)));
        let mut sink = Keep::default();
        read_object(&s, &Path::from("o"), &keys, &mut sink).await.unwrap();
        assert!(sink.0 == data);
        assert_eq!((store.gets.load(Ordering::SeqCst), sink.1), (6, 1));
        // Cuts without progress: given up after the retry.
        let store = Arc::new(TestStore::cutting(5, 0));
        stored(&store, &data, &keys).await;
        let s = mem_storage(store.clone(), RetryPolicy::new(1, Duration::from_secs(5)));
        let r = read_object(&s, &Path::from("o"), &keys, &mut Keep::default()).await;
        assert!(matches!(r, Err(ReadError::Storage(StorageError::Unavailable { .. }))), "{r:?}");
        assert_eq!(store.gets.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn corrupt_or_missing_objects_are_refused_without_retries() {
        let keys = keys();
        let data = plain();
        let store = Arc::new(TestStore::default());
        let mut encoded = encode(&data, &keys);
        let at = encoded.len() / 2;
        encoded[at] ^= 1;
        store.put(&Path::from("o"), PutPayload::from(encoded)).await.unwrap();
        let s = mem_storage(store.clone(), RetryPolicy::new(3, Duration::from_secs(5)));
        let r = read_object(&s, &Path::from("o"), &keys, &mut Keep::default()).await;
        assert!(matches!(r, Err(ReadError::Decode { .. })), "{r:?}");
        let r = read_object(&s, &Path::from("missing"), &keys, &mut Keep::default()).await;
        assert!(matches!(r, Err(ReadError::Storage(StorageError::NotFound { .. }))), "{r:?}");
        assert_eq!(store.gets.load(Ordering::SeqCst), 2);
    }
}
