//! The pipe a dumping program (pg_dump, pg_dumpall) writes into, and the thread that reads it.
//!
//! pg_dump writes its output 4 KiB at a time. Read through tokio, each write woke the runtime and
//! passed a few KiB to the encoding thread: about 40 000 reads, channel sends and thread wake-ups
//! for a 0.5 GB dump, and heap memory allocated and given back to the kernel each time. Here the
//! pipe holds up to 1 MiB (`F_SETPIPE_SZ`, where the system allows it), a thread of its own
//! reads it with blocking reads, and only whole [`CHUNK`]s (the last one excepted) go on to the
//! encoder, cut from buffers reused once their chunks are gone. Each chunk is shown to an observer first (the row counter).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::units::human;

/// Bytes passed to the encoder at a time.
pub const CHUNK: usize = 256 * 1024;
/// The buffers chunks are cut from, reused once every chunk cut from one is gone.
const ARENA: usize = 8 * CHUNK;
/// Used-up buffers kept for reuse.
const SPARE_ARENAS: usize = 3;
/// The pipe's capacity asked for (Linux's default limit for unprivileged processes).
const PIPE_SIZE: libc::c_int = 1024 * 1024;

/// A pipe for a child's stdout: its read end, and the write end to give the child.
pub fn for_stdout() -> io::Result<(io::PipeReader, Stdio)> {
    let (reader, writer) = io::pipe()?;
    // SAFETY: fcntl on a file descriptor this function owns; a failure leaves the default size.
    unsafe {
        libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
    Ok((reader, Stdio::from(writer)))
}

/// Why reading stopped early.
pub enum ReadError {
    /// Reading the pipe failed.
    Io(io::Error),
    /// The encoder stopped taking chunks.
    Closed,
}

/// Reads `from` to its end (blocking: run it on a thread of its own), showing each chunk to
/// `observe` before sending it on `tx`; returns `tx`, still open (the caller closes it once the
/// program's exit status says the stream is whole), and the bytes read.
pub fn read_to_end(
    mut from: io::PipeReader,
    tx: mpsc::Sender<Bytes>,
    observe: &mut dyn FnMut(&[u8]),
    progress: Option<&str>,
) -> Result<(mpsc::Sender<Bytes>, u64), ReadError> {
    let started = Instant::now();
    let mut last = Instant::now();
    let mut total = 0u64;
    let mut buf = BytesMut::with_capacity(ARENA);
    let mut spare: VecDeque<BytesMut> = VecDeque::new();
    loop {
        // The buffer used up (it is, between chunks): the first spare one whose chunks are all
        // gone (the one just used up still has its last chunk queued), or a new one. Without
        // the spares, a new buffer was mapped, faulted in and unmapped every 2 MiB.
        if buf.capacity() < CHUNK {
            debug_assert!(buf.is_empty(), "a buffer is used up between chunks");
            let reusable = spare.iter_mut().position(|b| b.try_reclaim(CHUNK));
            let next = match reusable {
                Some(i) => spare.remove(i).expect("found"),
                None => BytesMut::with_capacity(ARENA),
            };
            spare.push_back(std::mem::replace(&mut buf, next));
            if spare.len() > SPARE_ARENAS {
                spare.pop_front();
            }
        }
        let filled = buf.len();
        let room = CHUNK - filled;
        let spare = &mut buf.spare_capacity_mut()[..room];
        // SAFETY: read() only writes into the slice; the bytes it reports are initialised.
        let spare = unsafe { &mut *(spare as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        let n = match from.read(spare) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        // SAFETY: read() initialised n bytes past the old length.
        unsafe { buf.set_len(filled + n) };
        total += n as u64;
        if n == 0 || buf.len() == CHUNK {
            let chunk = buf.split().freeze();
            if !chunk.is_empty() {
                observe(&chunk);
                tx.blocking_send(chunk).map_err(|_| ReadError::Closed)?;
            }
            if n == 0 {
                break;
            }
        }
        if let Some(what) = progress
            && last.elapsed().as_millis() >= 500
        {
            last = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprint!("\r\x1b[K{what}: {} at {}/s", human(total), human((total as f64 / secs) as u64));
        }
    }
    if progress.is_some() {
        eprint!("\r\x1b[K");
    }
    Ok((tx, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn whole_chunks_reach_the_encoder_and_the_observer_in_order() {
        let (reader, writer) = io::pipe().unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        let sent = data.clone();
        let writing = std::thread::spawn(move || {
            let mut w = writer;
            for piece in sent.chunks(4096) {
                w.write_all(piece).unwrap();
            }
        });
        let (tx, mut rx) = mpsc::channel(64);
        let mut seen = Vec::new();
        let (tx, total) = read_to_end(reader, tx, &mut |c| seen.extend_from_slice(c), None).ok().unwrap();
        writing.join().unwrap();
        drop(tx);
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sizes.push(c.len());
            got.extend_from_slice(&c);
        }
        assert_eq!(total, data.len() as u64);
        assert_eq!(got, data);
        assert_eq!(seen, data);
        assert_eq!(sizes, [CHUNK, CHUNK, CHUNK, 12345]);
    }

    #[test]
    fn buffers_are_reused_once_their_chunks_are_gone() {
        let (reader, writer) = io::pipe().unwrap();
        let writing = std::thread::spawn(move || {
            let mut w = writer;
            w.write_all(&vec![7u8; 64 * CHUNK]).unwrap();
        });
        // A queue of one: the reader waits for the encoder, which drops each chunk at once.
        let (tx, mut rx) = mpsc::channel::<Bytes>(1);
        let consuming = std::thread::spawn(move || {
            let mut at = std::collections::HashSet::new();
            while let Some(c) = rx.blocking_recv() {
                at.insert(c.as_ptr() as usize);
            }
            at.len()
        });
        let (tx, total) = read_to_end(reader, tx, &mut |_| {}, None).ok().unwrap();
        drop(tx);
        writing.join().unwrap();
        assert_eq!(total, 64 * CHUNK as u64);
        let places = consuming.join().unwrap();
        assert!(places <= (SPARE_ARENAS + 1) * ARENA / CHUNK, "64 chunks in {places} places");
    }

    #[test]
    fn a_closed_encoder_stops_the_reader() {
        let (reader, writer) = io::pipe().unwrap();
        let writing = std::thread::spawn(move || {
            let mut w = writer;
            let _ = w.write_all(&vec![1u8; 2 * CHUNK]);
        });
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        assert!(matches!(read_to_end(reader, tx, &mut |_| {}, None), Err(ReadError::Closed)));
        writing.join().unwrap();
    }
}
