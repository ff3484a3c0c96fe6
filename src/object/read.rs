//! Reading a stored object: stream it from the repository through the decoder into a sink,
//! restarting from the beginning (sink reset) when a transient failure cuts the stream.

use futures::StreamExt;
use object_store::path::Path;
use thiserror::Error;

use crate::format::{DecodeError, Decoder, Trailer};
use crate::keys::KeyRing;
use crate::repo::retry::{Retryable, retry};
use crate::repo::{Storage, StorageError};

/// Where a decoded object goes.
pub trait ObjectSink {
    /// Discards anything written so far (called before every attempt).
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

impl Retryable for ReadError {
    fn is_permanent(&self) -> bool {
        match self {
            ReadError::Storage(e) => e.is_permanent(),
            ReadError::Decode { .. } => true,
        }
    }
    fn timed_out(what: &str, after: std::time::Duration) -> Self {
        ReadError::Storage(StorageError::timed_out(what, after))
    }
}

/// Streams the object at `key` into `sink`, decoding and verifying it. Only `Ok` means the sink
/// received exactly the original bytes.
pub async fn read_object(
    storage: &Storage,
    key: &Path,
    keys: &KeyRing,
    sink: &mut dyn ObjectSink,
) -> Result<Trailer, ReadError> {
    let decode_err = |source| ReadError::Decode { key: key.to_string(), source };
    // Each attempt borrows the sink in turn (the retry helper takes a closure that makes a
    // fresh future per attempt).
    let sink = tokio::sync::Mutex::new(sink);
    retry(storage.policy(), &format!("GET {key}"), || async {
        let mut sink = sink.lock().await;
        sink.reset().map_err(|e| decode_err(DecodeError::Sink(e)))?;
        let (_, mut stream) = storage.get_stream(key).await?;
        let mut dec = Decoder::new(keys);
        let mut write = |b: &[u8]| sink.write(b);
        while let Some(piece) = stream.next().await {
            dec.update(&piece?, &mut write).map_err(decode_err)?;
        }
        dec.finish(&mut write).map_err(decode_err)
    })
    .await
}
