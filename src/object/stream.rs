//! One stream of bytes into stored objects (a base backup's archive or manifest, a logical
//! dump): bytes arrive from a producer, an encoding thread cuts them into parts (at tar member
//! boundaries, or not at all), hashes, compresses (zstd on worker threads of its own or on the
//! encoding thread, as [`Workers`] says) and seals them, and each part is uploaded as a multipart
//! upload with a bounded number of chunks in flight. Memory stays bounded by the channels and
//! the chunks in flight, whatever the archive's size.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use object_store::path::Path;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use thiserror::Error;

use crate::config::Config;
use crate::format::{Compression, Encoder, Trailer};
use crate::keys::MasterKey;
use crate::repo::descriptor::Part;
use crate::repo::{Storage, StorageError, layout};
use crate::tar::split::{self as tarsplit, TarError, TarSplitter};

/// Why a stream could not be stored.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stream cut at tar members is not a valid tar stream.
    #[error("not a valid tar stream: {0}")]
    Tar(#[from] TarError),
    /// Encoding failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The encoding task panicked (a bug).
    #[error("an internal task failed: {0}")]
    Panicked(String),
    /// The stream was abandoned (`abort`, or the other side stopped).
    #[error("stopped because another part of the work failed")]
    Aborted,
}

/// Raw chunks queued for the encoding thread.
pub const INPUT_QUEUE: usize = 64;
/// Encoded pieces queued for the uploader (a count bound; [`OUTPUT_BUDGET_KIB`] bounds the bytes).
const OUTPUT_QUEUE: usize = 256;
/// Encoded KiB queued for the uploader: without compression every raw byte passes this queue,
/// and a count of chunk-sized pieces alone would let it hold 256 chunks.
const OUTPUT_BUDGET_KIB: u32 = 16 * 1024;
/// Bytes per multipart chunk.
const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// Multipart chunks in flight per part.
const UPLOADS_IN_FLIGHT: usize = 4;

/// Where a stream is stored.
#[derive(Clone, Debug)]
pub enum Keys {
    /// An archive of a backup, cut into parts at tar member boundaries.
    Parts {
        /// The backup id.
        backup: String,
        /// The archive's name (`base.tar`, `<oid>.tar`).
        archive: String,
    },
    /// One object, not cut (the manifest).
    One(Path),
}

/// Where zstd compresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    /// On the encoding thread itself: for a producer that one zstd thread outruns (pg_dump, one
    /// process writing into a pipe). zstd's workers would only add hand-offs and job buffers:
    /// a dump took 0.85x the time and 0.4x the memory without them (BENCHMARKS, "Logical dumps:
    /// zstd on the encoding thread").
    None,
    /// On one thread of zstd's own per core, beside the encoding thread: for a producer faster
    /// than one zstd thread (the server's base backup stream, 0.92x the time with them).
    PerCore,
}

/// What to store and how to cut it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where the parts go.
    pub keys: Keys,
    /// With [`Keys::Parts`]: cut at tar member boundaries once a part holds this many bytes.
    pub part_size: u64,
    /// Where zstd compresses.
    pub workers: Workers,
}

impl Plan {
    fn split(&self) -> bool {
        matches!(self.keys, Keys::Parts { .. })
    }

    fn part_key(&self, index: usize) -> Path {
        match &self.keys {
            Keys::Parts { backup, archive } => layout::part(backup, archive, index),
            Keys::One(key) => key.clone(),
        }
    }
}

/// What the encoding thread sends the uploader.
enum Out {
    /// Encoded bytes of part `index`, holding their share of the output budget.
    Data(usize, Bytes, OwnedSemaphorePermit),
    /// Part `index` is complete.
    End(usize, Trailer, u64),
}

/// What the encoding thread needs, owned.
struct Settings {
    compression: Compression,
    key: Option<MasterKey>,
    chunk_size: u32,
}

/// Cuts one stream into encoded parts. A cut is decided at a member boundary once the part holds
/// `part_size` bytes, but made only when the next header block proves another member follows:
/// the end-of-archive blocks stay in the last part instead of making a part of their own.
struct Cutter<'a> {
    settings: &'a Settings,
    plan: &'a Plan,
    output: &'a mpsc::Sender<Out>,
    budget: &'a Arc<Semaphore>,
    workers: u32,
    splitter: TarSplitter,
    index: usize,
    enc: Encoder,
    sha: Sha256,
    raw: u64,
    pieces: Vec<Bytes>,
    /// A cut is due at the next member header.
    cut_due: bool,
    /// Bytes after a due cut, held until a whole header block shows what follows.
    held: Vec<u8>,
}

impl<'a> Cutter<'a> {
    fn new(
        settings: &'a Settings,
        plan: &'a Plan,
        output: &'a mpsc::Sender<Out>,
        budget: &'a Arc<Semaphore>,
    ) -> Self {
        let workers = match plan.workers {
            Workers::None => 0,
            Workers::PerCore => std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        };
        let enc = Self::encoder(settings, workers);
        let pieces = vec![enc.header()];
        Cutter {
            settings,
            plan,
            output,
            budget,
            workers,
            splitter: TarSplitter::new(),
            index: 0,
            enc,
            sha: Sha256::new(),
            raw: 0,
            pieces,
            cut_due: false,
            held: Vec::new(),
        }
    }

    fn encoder(settings: &Settings, workers: u32) -> Encoder {
        Encoder::with_workers(settings.compression, settings.key.as_ref(), settings.chunk_size, None, workers)
    }

    fn send(&self, o: Out) -> Result<(), StreamError> {
        self.output.blocking_send(o).map_err(|_| StreamError::Aborted)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        for p in std::mem::take(&mut self.pieces) {
            let kib = u32::try_from(p.len().div_ceil(1024)).unwrap_or(u32::MAX).min(OUTPUT_BUDGET_KIB);
            let permit = futures::executor::block_on(self.budget.clone().acquire_many_owned(kib))
                .map_err(|_| StreamError::Aborted)?;
            self.send(Out::Data(self.index, p, permit))?;
        }
        Ok(())
    }

    /// Ends the current part and starts the next.
    fn cut(&mut self) -> Result<(), StreamError> {
        let done = std::mem::replace(&mut self.enc, Self::encoder(self.settings, self.workers));
        let trailer = Trailer { len: self.raw, sha256: std::mem::take(&mut self.sha).finalize().into() };
        let stored =
            done.finish(trailer, &mut self.pieces).map_err(|e| StreamError::Encode(e.to_string()))?;
        self.flush()?;
        self.send(Out::End(self.index, trailer, stored))?;
        self.index += 1;
        self.raw = 0;
        self.pieces.push(self.enc.header());
        Ok(())
    }

    /// Encodes bytes into the current part, noting when a cut becomes due.
    fn encode(&mut self, mut rest: &[u8]) -> Result<(), StreamError> {
        while !rest.is_empty() {
            let n = if self.plan.split() { self.splitter.advance(rest)? } else { rest.len() };
            let (now, later) = rest.split_at(n);
            self.enc.update(now, &mut self.pieces).map_err(|e| StreamError::Encode(e.to_string()))?;
            self.sha.update(now);
            self.raw += n as u64;
            rest = later;
            self.flush()?;
            if self.plan.split() && self.splitter.at_boundary() && self.raw >= self.plan.part_size {
                self.cut_due = true;
                return self.feed(rest);
            }
        }
        Ok(())
    }

    /// Takes the next bytes of the stream.
    fn feed(&mut self, mut rest: &[u8]) -> Result<(), StreamError> {
        if !self.cut_due {
            return self.encode(rest);
        }
        let take = (tarsplit::BLOCK - self.held.len()).min(rest.len());
        self.held.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        if self.held.len() < tarsplit::BLOCK {
            return Ok(());
        }
        self.cut_due = false;
        let held = std::mem::take(&mut self.held);
        if held.iter().any(|b| *b != 0) {
            self.cut()?;
        }
        self.encode(&held)?;
        self.feed(rest)
    }

    /// Ends the stream: the last part.
    fn finish(mut self) -> Result<(), StreamError> {
        let held = std::mem::take(&mut self.held);
        self.cut_due = false;
        self.encode(&held)?;
        let trailer = Trailer { len: self.raw, sha256: std::mem::take(&mut self.sha).finalize().into() };
        let enc = std::mem::replace(&mut self.enc, Self::encoder(self.settings, 0));
        let stored = enc.finish(trailer, &mut self.pieces).map_err(|e| StreamError::Encode(e.to_string()))?;
        self.flush()?;
        self.send(Out::End(self.index, trailer, stored))
    }
}

/// The encoding thread: raw bytes in, encoded parts out.
fn encode(
    settings: &Settings,
    plan: &Plan,
    mut input: mpsc::Receiver<Bytes>,
    output: mpsc::Sender<Out>,
    budget: Arc<Semaphore>,
) -> Result<(), StreamError> {
    let mut cutter = Cutter::new(settings, plan, &output, &budget);
    while let Some(bytes) = input.blocking_recv() {
        cutter.feed(&bytes)?;
    }
    cutter.finish()
}

/// Stores the stream arriving on `input` as `plan` says; returns its parts in order. On error
/// the part being uploaded is aborted (the caller removes finished parts).
/// When `abort` is set the stream is abandoned: the part being uploaded is aborted, none is
/// completed after that, and the result is [`StreamError::Aborted`].
pub async fn store(
    cfg: &Config,
    storage: &Storage,
    plan: Plan,
    input: mpsc::Receiver<Bytes>,
    abort: Arc<AtomicBool>,
) -> Result<Vec<Part>, StreamError> {
    let (tx, mut rx) = mpsc::channel(OUTPUT_QUEUE);
    let settings = Settings {
        compression: cfg.compression,
        key: cfg.keys.write_key().cloned(),
        chunk_size: cfg.chunk_size,
    };
    let thread_plan = plan.clone();
    let budget = Arc::new(Semaphore::new(OUTPUT_BUDGET_KIB as usize));
    let thread_budget = budget.clone();
    let encoding =
        tokio::task::spawn_blocking(move || encode(&settings, &thread_plan, input, tx, thread_budget));
    let mut parts = Vec::new();
    let mut current: Option<(usize, object_store::WriteMultipart, Path)> = None;
    let upload = async {
        while let Some(out) = rx.recv().await {
            if abort.load(Ordering::SeqCst) {
                return Err(StreamError::Aborted);
            }
            match out {
                Out::Data(index, bytes, permit) => {
                    if current.as_ref().is_none_or(|(i, _, _)| *i != index) {
                        let key = plan.part_key(index);
                        current = Some((index, storage.start_multipart(&key, UPLOAD_CHUNK).await?, key));
                    }
                    let (_, w, key) = current.as_mut().expect("started above");
                    // From here the bytes count against the uploads in flight, not the queue.
                    w.put(bytes);
                    drop(permit);
                    w.wait_for_capacity(UPLOADS_IN_FLIGHT)
                        .await
                        .map_err(|e| StorageError::from_store("PUT", key, e))?;
                }
                Out::End(index, trailer, stored) => {
                    let (i, w, key) = current.take().expect("a part has data before its end");
                    debug_assert_eq!(i, index);
                    w.finish().await.map_err(|e| StorageError::from_store("PUT", &key, e))?;
                    parts.push(Part {
                        key: key.to_string(),
                        raw_bytes: trailer.len,
                        stored_bytes: stored,
                        sha256: hex::encode(trailer.sha256),
                    });
                }
            }
        }
        Ok::<_, StreamError>(())
    };
    if let Err(e) = upload.await {
        // Stop the encoder (it fails on its next send, or while it waits for budget that the
        // queued pieces hold) and drop the unfinished upload.
        rx.close();
        budget.close();
        if let Some((_, w, _)) = current.take() {
            let _ = w.abort().await;
        }
        // Without waiting for the encoder: it may be waiting for input that the caller ends
        // only once it hears of this failure (a base backup's stream can go quiet for as long
        // as the server waits for WAL archiving). It writes nothing to the repository, and it
        // stops by itself at its next send or when the caller drops the input's sender.
        return Err(e);
    }
    encoding.await.map_err(|e| StreamError::Panicked(e.to_string()))??;
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Decoder;
    use crate::keys::KeyRing;
    use crate::tar::testutil::archive;

    /// Runs the encoding thread over `data` fed in `piece`-byte chunks; returns each part decoded.
    fn cut(data: &[u8], piece: usize, part_size: u64) -> Vec<Vec<u8>> {
        let settings = Settings { compression: Compression::Lz4, key: None, chunk_size: 4096 };
        let plan = Plan {
            keys: Keys::Parts { backup: "b".into(), archive: "a".into() },
            part_size,
            workers: Workers::PerCore,
        };
        let (in_tx, in_rx) = mpsc::channel(data.len() / piece + 2);
        let (out_tx, mut out_rx) = mpsc::channel(4 * data.len() + 64);
        for p in data.chunks(piece) {
            in_tx.try_send(Bytes::copy_from_slice(p)).unwrap();
        }
        drop(in_tx);
        std::thread::scope(|s| {
            s.spawn(|| encode(&settings, &plan, in_rx, out_tx, Arc::new(Semaphore::new(1 << 30))).unwrap());
        });
        let keys = KeyRing::default();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut dec = Decoder::new(&keys);
        let mut cur = Vec::new();
        while let Ok(o) = out_rx.try_recv() {
            match o {
                Out::Data(i, b, _) => {
                    assert_eq!(i, parts.len());
                    dec.update(&b, &mut |x: &[u8]| {
                        cur.extend_from_slice(x);
                        Ok(())
                    })
                    .unwrap();
                }
                Out::End(_, trailer, _) => {
                    let d = std::mem::replace(&mut dec, Decoder::new(&keys));
                    d.finish(&mut |x: &[u8]| {
                        cur.extend_from_slice(x);
                        Ok(())
                    })
                    .unwrap();
                    assert_eq!(trailer.len, cur.len() as u64);
                    parts.push(std::mem::take(&mut cur));
                }
            }
        }
        parts
    }

    #[test]
    fn queued_output_stays_within_the_budget() {
        // Uncompressed: every raw byte becomes output. While the uploader holds the budget's
        // worth of pieces, the encoder must wait, however long the output channel is.
        let settings = Settings { compression: Compression::None, key: None, chunk_size: 64 * 1024 };
        let plan = Plan { keys: Keys::One(Path::from("k")), part_size: u64::MAX, workers: Workers::None };
        let (in_tx, in_rx) = mpsc::channel(256);
        let (out_tx, mut out_rx) = mpsc::channel(4096);
        for _ in 0..128 {
            in_tx.try_send(Bytes::from(vec![7u8; 64 * 1024])).unwrap();
        }
        drop(in_tx);
        let budget_kib = 1024;
        let budget = Arc::new(Semaphore::new(budget_kib));
        let thread_budget = budget.clone();
        let encoder = std::thread::spawn(move || encode(&settings, &plan, in_rx, out_tx, thread_budget));
        // Take what comes without releasing it, until nothing more comes for 300 ms.
        let (mut held, mut held_bytes) = (Vec::new(), 0usize);
        let mut quiet_since = std::time::Instant::now();
        while quiet_since.elapsed() < std::time::Duration::from_millis(300) {
            match out_rx.try_recv() {
                Ok(Out::Data(_, b, permit)) => {
                    held_bytes += b.len();
                    held.push(permit);
                    quiet_since = std::time::Instant::now();
                }
                Ok(Out::End(..)) => panic!("the whole stream went past the budget"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        assert!(held_bytes <= budget_kib * 1024, "{held_bytes} bytes queued past a {budget_kib} KiB budget");
        assert!(
            held_bytes >= budget_kib * 1024 - 2 * 65 * 1024,
            "only {held_bytes} bytes before the encoder stopped"
        );
        let mut total = held_bytes;
        drop(held);
        while let Some(o) = out_rx.blocking_recv() {
            if let Out::Data(_, b, _) = o {
                total += b.len();
            }
        }
        encoder.join().unwrap().unwrap();
        assert!(total >= 128 * 64 * 1024, "{total} bytes out");
    }

    #[test]
    fn parts_hold_whole_members_and_never_only_the_end_marker() {
        let files: Vec<(String, u64, u8)> =
            (0..40).map(|i| (format!("f{i}"), (i * 937 % 5000) as u64, b'0')).collect();
        let files: Vec<(&str, u64, u8)> = files.iter().map(|(n, s, k)| (n.as_str(), *s, *k)).collect();
        let (data, boundaries) = archive(&files, true);
        for part_size in [1u64, 3000, 20_000, 1 << 30] {
            for piece in [1usize, 511, 512, 513, 7000, data.len()] {
                if piece == 1 && part_size > 1 {
                    continue;
                }
                let parts = cut(&data, piece, part_size);
                assert_eq!(parts.concat(), data, "part_size {part_size} piece {piece}");
                let mut at = 0;
                for (i, p) in parts.iter().enumerate() {
                    assert!(boundaries.contains(&at), "part {i} starts inside a member");
                    assert!(p.iter().any(|b| *b != 0), "part {i} holds only zeros");
                    if i + 1 < parts.len() {
                        assert!(p.len() as u64 >= part_size);
                    }
                    at += p.len();
                }
                if part_size == 1 {
                    // One part per member, the end marker riding with the last one.
                    assert_eq!(parts.len(), files.len());
                }
            }
        }
    }
}
