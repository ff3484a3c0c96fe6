//! One part of a backup, restored: downloaded on the async side (resuming if cut), decoded,
//! read as tar and written to files on a blocking thread, then its verified SHA-256 and length
//! compared with the descriptor's. Also the loop that runs every part with bounded concurrency
//! and stops the others at the first failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::error::{PartError, RestoreError};
use super::extract::{ExtractError, Extractor, Stats};
use super::plan::Destination;
use crate::config::Config;
use crate::format::{DecodeError, Decoder, Trailer};
use crate::keys::KeyRing;
use crate::object::download::{DownloadError, download};
use crate::repo::Storage;
use crate::repo::descriptor::{Descriptor, Part};
use crate::tar::read as tar;

/// Downloaded pieces queued per part for its extracting thread.
const PART_QUEUE: usize = 16;

/// A verified trailer against the descriptor's record of the object.
pub(super) fn compare(trailer: &Trailer, sha256: &str, len: u64) -> Result<(), PartError> {
    let got = hex::encode(trailer.sha256);
    if got.eq_ignore_ascii_case(sha256) && trailer.len == len {
        return Ok(());
    }
    Err(PartError::Mismatch { expected: sha256.to_string(), got, expected_len: len, got_len: trailer.len })
}

/// Restores every part of every archive, `concurrency` at a time. The first failure stops the
/// others (they are abandoned, their threads joined) and is returned.
pub(super) async fn restore_parts(
    cfg: &Config,
    storage: &Storage,
    desc: &Descriptor,
    dests: &[Destination],
    concurrency: usize,
    abort: &Arc<AtomicBool>,
) -> Result<Stats, RestoreError> {
    let mut jobs = Vec::new();
    for d in dests {
        let parts = &desc.archives[d.archive].parts;
        for (i, part) in parts.iter().enumerate() {
            jobs.push((part.clone(), d.dir.clone(), i + 1 == parts.len()));
        }
    }
    let mut running = futures::stream::iter(jobs)
        .map(|(part, dir, last)| restore_part(storage, &cfg.keys, part, dir, last, abort.clone()))
        .buffer_unordered(concurrency);
    let mut total = Stats::default();
    let mut first_err: Option<RestoreError> = None;
    while let Some(r) = running.next().await {
        match r {
            Ok(s) => {
                total.files += s.files;
                total.dirs += s.dirs;
                total.links += s.links;
                total.bytes += s.bytes;
            }
            Err(RestoreError::Part { source: PartError::Abandoned, .. }) => {}
            Err(e) => {
                abort.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if abort.load(Ordering::Relaxed) {
        return Err(RestoreError::Interrupted);
    }
    Ok(total)
}

/// One part: downloaded here, decoded and extracted on a blocking thread, then its verified
/// SHA-256 compared with the descriptor's.
async fn restore_part(
    storage: &Storage,
    keys: &KeyRing,
    part: Part,
    dir: PathBuf,
    last: bool,
    abort: Arc<AtomicBool>,
) -> Result<Stats, RestoreError> {
    let err = |source| RestoreError::Part { key: part.key.clone(), source };
    if abort.load(Ordering::Relaxed) {
        return Err(err(PartError::Abandoned));
    }
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Bytes>(PART_QUEUE);
    let (keys, stop) = (keys.clone(), abort.clone());
    let worker = tokio::task::spawn_blocking(move || extract_part(&keys, rx, &dir, last, &stop));
    let key = object_store::path::Path::from(part.key.as_str());
    let downloaded = download(storage, &key, Some(part.stored_bytes), &abort, &tx).await;
    drop(tx);
    let extracted = worker.await.map_err(|e| err(PartError::Panicked(e.to_string())))?;
    let (trailer, stats) = match (downloaded, extracted) {
        (Ok(_), Ok(done)) => done,
        (Err(DownloadError::Stopped), _) if abort.load(Ordering::Relaxed) => {
            return Err(err(PartError::Abandoned));
        }
        // The worker stopped first: its error is the cause.
        (Err(DownloadError::Stopped), Err(e)) => return Err(err(e)),
        (Err(DownloadError::Stopped), Ok(_)) => return Err(err(PartError::Abandoned)),
        (Err(e), _) => return Err(err(e.into())),
        (Ok(_), Err(e)) => return Err(err(e)),
    };
    compare(&trailer, &part.sha256, part.raw_bytes).map_err(err)?;
    tracing::debug!(
        "restored {} ({} files, {} bytes) in {} ms",
        part.key,
        stats.files,
        stats.bytes,
        started.elapsed().as_millis()
    );
    Ok(stats)
}

/// The blocking half of a part: object bytes → decoder → tar reader → files. Returns the
/// verified trailer; the files written count only once the caller has compared it.
fn extract_part(
    keys: &KeyRing,
    mut input: mpsc::Receiver<Bytes>,
    dir: &Path,
    last: bool,
    abort: &AtomicBool,
) -> Result<(Trailer, Stats), PartError> {
    let mut dec = Decoder::new(keys);
    let mut reader = tar::TarReader::new();
    let mut ex = Extractor::new(dir);
    let mut failed: Option<ExtractError> = None;
    // After a malformed or unsafe member nothing more is written, but decoding goes on to the
    // end: if the part is corrupt, that (not the garbage it decoded to) is the error to report.
    // A local write failure stops at once.
    let mut sink = |d: &[u8]| -> std::io::Result<()> {
        if failed.is_some() {
            return Ok(());
        }
        match reader.feed(d, &mut |e| ex.apply(e)) {
            Ok(()) => Ok(()),
            Err(e @ ExtractError::Io { .. }) => {
                failed = Some(e);
                Err(std::io::Error::other("extraction failed"))
            }
            Err(e) => {
                failed = Some(e);
                Ok(())
            }
        }
    };
    let mut pending_err = None;
    while let Some(bytes) = input.blocking_recv() {
        if abort.load(Ordering::Relaxed) {
            return Err(PartError::Abandoned);
        }
        if let Err(e) = dec.update(&bytes, &mut sink) {
            pending_err = Some(e);
            break;
        }
    }
    let finished = match pending_err {
        Some(e) => Err(e),
        None if abort.load(Ordering::Relaxed) => return Err(PartError::Abandoned),
        None => dec.finish(&mut sink),
    };
    let trailer = match (finished, failed) {
        (Ok(_), Some(e)) | (Err(DecodeError::Sink(_)), Some(e)) => return Err(PartError::Extract(e)),
        (Ok(t), None) => t,
        (Err(e), _) => return Err(PartError::Decode(e)),
    };
    reader.finish(last).map_err(|e| PartError::Extract(e.into()))?;
    Ok((trailer, ex.stats()))
}
