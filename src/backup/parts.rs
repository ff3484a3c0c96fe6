//! One stream of a base backup (an archive, or the manifest) into stored objects: bytes arrive
//! from the server, an encoding thread cuts them into parts at tar member boundaries, hashes,
//! compresses (zstd on its own worker threads) and seals them, and each part is uploaded as a
//! multipart upload with a bounded number of chunks in flight. Memory stays bounded by the
//! channels and the chunks in flight, whatever the archive's size.

use bytes::Bytes;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::BackupError;
use super::descriptor::Part;
use super::tarsplit::TarSplitter;
use crate::config::Config;
use crate::format::{Compression, Encoder, Trailer};
use crate::keys::MasterKey;
use crate::storage::Storage;

/// Raw chunks queued for the encoding thread.
pub const INPUT_QUEUE: usize = 64;
/// Encoded pieces queued for the uploader.
const OUTPUT_QUEUE: usize = 256;
/// Bytes per multipart chunk.
const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// Multipart chunks in flight per part.
const UPLOADS_IN_FLIGHT: usize = 4;

/// What to store and how to cut it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Key of the first part when `split` (suffix `.00001`, `.00002`, … added), else the key.
    pub key: String,
    /// Cut at tar member boundaries once a part holds `part_size` bytes.
    pub split: bool,
    /// Bytes of tar data per part (at least).
    pub part_size: u64,
}

impl Plan {
    fn part_key(&self, index: usize) -> String {
        if self.split { format!("{}.{:05}", self.key, index + 1) } else { self.key.clone() }
    }
}

/// What the encoding thread sends the uploader.
enum Out {
    /// Encoded bytes of part `index`.
    Data(usize, Bytes),
    /// Part `index` is complete.
    End(usize, Trailer, u64),
}

/// What the encoding thread needs, owned.
struct Settings {
    compression: Compression,
    key: Option<MasterKey>,
    chunk_size: u32,
}

/// The encoding thread: raw bytes in, encoded parts out.
fn encode(
    settings: &Settings,
    plan: &Plan,
    mut input: mpsc::Receiver<Bytes>,
    output: mpsc::Sender<Out>,
) -> Result<(), BackupError> {
    let workers = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let new_part = || {
        Encoder::with_workers(settings.compression, settings.key.as_ref(), settings.chunk_size, None, workers)
    };
    let send = |o: Out| output.blocking_send(o).map_err(|_| BackupError::Aborted);
    let mut splitter = TarSplitter::new();
    let mut index = 0;
    let mut enc = new_part();
    let mut sha = Sha256::new();
    let mut raw = 0u64;
    let mut pieces = vec![enc.header()];
    let flush = |pieces: &mut Vec<Bytes>, index: usize| {
        for p in pieces.drain(..) {
            send(Out::Data(index, p))?;
        }
        Ok::<_, BackupError>(())
    };
    while let Some(bytes) = input.blocking_recv() {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = if plan.split { splitter.advance(rest)? } else { rest.len() };
            let (now, later) = rest.split_at(n);
            enc.update(now, &mut pieces).map_err(|e| BackupError::Encode(e.to_string()))?;
            sha.update(now);
            raw += n as u64;
            rest = later;
            flush(&mut pieces, index)?;
            if plan.split && splitter.at_boundary() && raw >= plan.part_size {
                let done = std::mem::replace(&mut enc, new_part());
                let trailer = Trailer { len: raw, sha256: std::mem::take(&mut sha).finalize().into() };
                let stored =
                    done.finish(trailer, &mut pieces).map_err(|e| BackupError::Encode(e.to_string()))?;
                flush(&mut pieces, index)?;
                send(Out::End(index, trailer, stored))?;
                index += 1;
                raw = 0;
                pieces.push(enc.header());
            }
        }
    }
    let trailer = Trailer { len: raw, sha256: sha.finalize().into() };
    let stored = enc.finish(trailer, &mut pieces).map_err(|e| BackupError::Encode(e.to_string()))?;
    flush(&mut pieces, index)?;
    send(Out::End(index, trailer, stored))
}

/// Stores the stream arriving on `input` as `plan` says; returns its parts in order. On error
/// the part being uploaded is aborted (the caller removes finished parts).
pub async fn store(
    cfg: &Config,
    storage: &Storage,
    plan: Plan,
    input: mpsc::Receiver<Bytes>,
) -> Result<Vec<Part>, BackupError> {
    let (tx, mut rx) = mpsc::channel(OUTPUT_QUEUE);
    let settings = Settings {
        compression: cfg.compression,
        key: cfg.keys.write_key().cloned(),
        chunk_size: cfg.chunk_size,
    };
    let thread_plan = plan.clone();
    let encoding = tokio::task::spawn_blocking(move || encode(&settings, &thread_plan, input, tx));
    let mut parts = Vec::new();
    let mut current: Option<(usize, object_store::WriteMultipart, Path)> = None;
    let upload = async {
        while let Some(out) = rx.recv().await {
            match out {
                Out::Data(index, bytes) => {
                    if current.as_ref().is_none_or(|(i, _, _)| *i != index) {
                        let key = Path::from(plan.part_key(index));
                        current = Some((index, storage.start_multipart(&key, UPLOAD_CHUNK).await?, key));
                    }
                    let (_, w, key) = current.as_mut().expect("started above");
                    w.put(bytes);
                    w.wait_for_capacity(UPLOADS_IN_FLIGHT)
                        .await
                        .map_err(|e| crate::storage::StorageError::from_store("PUT", key, e))?;
                }
                Out::End(index, trailer, stored) => {
                    let (i, w, key) = current.take().expect("a part has data before its end");
                    debug_assert_eq!(i, index);
                    w.finish().await.map_err(|e| crate::storage::StorageError::from_store("PUT", &key, e))?;
                    parts.push(Part {
                        key: key.to_string(),
                        raw_bytes: trailer.len,
                        stored_bytes: stored,
                        sha256: hex::encode(trailer.sha256),
                    });
                }
            }
        }
        Ok::<_, BackupError>(())
    };
    let uploaded = upload.await;
    if uploaded.is_err() {
        // Stop the encoder (it fails on its next send) and drop the unfinished upload.
        rx.close();
        if let Some((_, w, _)) = current.take() {
            let _ = w.abort().await;
        }
    }
    let encoded = encoding.await.map_err(|e| BackupError::Encode(e.to_string()))?;
    uploaded?;
    encoded?;
    Ok(parts)
}
