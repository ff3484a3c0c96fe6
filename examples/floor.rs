//! The "floor" for the `wal-push` benchmark (`bench/wal-push.sh`): the least work any archiver
//! must do for one WAL segment, done as plainly as possible in one process on one thread.
//!
//! It reads the file in 1 MiB blocks, computes its SHA-256 and compresses it with the codec
//! walvault would use: zstd through the `zstd` crate at the given level (default 3), lz4 through
//! `lz4_flex::block` in independent 256 KiB blocks, or nothing (`none`: read and hash only). The
//! compressed bytes are counted and dropped: no encryption, no storage, no fsync.
//!
//! With `--mmap` it maps the file instead (no copy out of the page cache, no zeroed buffers),
//! hashes the mapping and compresses it in one call: zstd then sees one contiguous input and
//! never works in its slower "external dictionary" mode, which streaming 1 MiB pieces through
//! its window falls into. That is the lowest cost of this work found so far.
//!
//! The benchmark times the whole process (start-up included) the same way it times wal-push;
//! the time measured inside the process is printed too, on stdout:
//!
//! ```text
//! floor CODEC IN_BYTES OUT_BYTES SHA256_HEX INTERNAL_MS
//! ```
//!
//! Usage: `floor [--mmap] zstd|zstd:LEVEL|lz4|none FILE`.

use std::fs::File;
use std::io::{self, Read};
use std::process::ExitCode;
use std::time::Instant;

use sha2::{Digest, Sha256};
use zstd::stream::raw::{Encoder as ZstdEncoder, InBuffer, Operation, OutBuffer};

/// Bytes read from the file at a time (as wal-push does).
const READ_BLOCK: usize = 1 << 20;
/// Raw bytes per lz4 block (as wal-push does).
const LZ4_BLOCK: usize = 256 * 1024;

/// The codec to measure.
enum Codec {
    None,
    Zstd(i32),
    Lz4,
}

impl Codec {
    fn parse(s: &str) -> Option<Codec> {
        match s {
            "none" => Some(Codec::None),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd(3)),
            _ => s.strip_prefix("zstd:")?.parse().ok().map(Codec::Zstd),
        }
    }
}

/// A compressor that only counts its output.
enum Sink {
    None,
    Zstd { enc: ZstdEncoder<'static>, out: Vec<u8> },
    Lz4 { out: Vec<u8> },
}

impl Sink {
    fn new(codec: &Codec, size: u64) -> io::Result<Sink> {
        Ok(match codec {
            Codec::None => Sink::None,
            Codec::Zstd(level) => {
                let mut enc = ZstdEncoder::new(*level)?;
                enc.set_pledged_src_size(Some(size))?;
                Sink::Zstd { enc, out: vec![0; zstd::zstd_safe::compress_bound(READ_BLOCK)] }
            }
            Codec::Lz4 => Sink::Lz4 { out: vec![0; lz4_flex::block::get_maximum_output_size(LZ4_BLOCK)] },
        })
    }

    /// Compresses `input`; returns the bytes of output produced.
    fn update(&mut self, input: &[u8]) -> io::Result<u64> {
        match self {
            Sink::None => Ok(input.len() as u64),
            Sink::Zstd { enc, out } => {
                let mut produced = 0;
                let mut inb = InBuffer::around(input);
                while inb.pos() < input.len() {
                    let mut outb = OutBuffer::around(&mut out[..]);
                    enc.run(&mut inb, &mut outb)?;
                    produced += outb.pos() as u64;
                }
                Ok(produced)
            }
            Sink::Lz4 { out } => {
                let mut produced = 0;
                for block in input.chunks(LZ4_BLOCK) {
                    let n = lz4_flex::block::compress_into(block, out).map_err(io::Error::other)?;
                    produced += n.min(block.len()) as u64 + 8;
                }
                Ok(produced)
            }
        }
    }

    /// Ends the stream; returns the last bytes of output.
    fn finish(&mut self) -> io::Result<u64> {
        match self {
            Sink::None | Sink::Lz4 { .. } => Ok(0),
            Sink::Zstd { enc, out } => {
                let mut produced = 0;
                loop {
                    let mut outb = OutBuffer::around(&mut out[..]);
                    let left = enc.finish(&mut outb, true)?;
                    produced += outb.pos() as u64;
                    if left == 0 {
                        return Ok(produced);
                    }
                }
            }
        }
    }
}

fn run(codec: &Codec, path: &str) -> io::Result<(u64, u64, [u8; 32])> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut sink = Sink::new(codec, size)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; READ_BLOCK];
    let (mut read, mut stored) = (0u64, 0u64);
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        sha.update(&buf[..filled]);
        stored += sink.update(&buf[..filled])?;
        read += filled as u64;
    }
    stored += sink.finish()?;
    Ok((read, stored, sha.finalize().into()))
}

/// Maps the file, then hashes it and compresses it in one call each (no copy, no zeroing).
fn run_mmap(codec: &Codec, path: &str) -> io::Result<(u64, u64, [u8; 32])> {
    use std::os::fd::AsRawFd;
    let file = File::open(path)?;
    let len = file.metadata()?.len() as usize;
    // SAFETY: a private read-only mapping of a file nobody truncates while we read it.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_POPULATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is `len` readable bytes and lives until the munmap below.
    let data = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
    let sha = Sha256::digest(data).into();
    let stored = match codec {
        Codec::None => data.len(),
        Codec::Zstd(level) => zstd::bulk::Compressor::new(*level)?.compress(data)?.len(),
        Codec::Lz4 => Sink::new(codec, len as u64)?.update(data)? as usize,
    };
    // SAFETY: unmaps what was mapped above; `data` is not used after this.
    unsafe { libc::munmap(ptr, len) };
    Ok((len as u64, stored as u64, sha))
}

fn main() -> ExitCode {
    let started = Instant::now();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mmap = args.first().is_some_and(|a| a == "--mmap");
    if mmap {
        args.remove(0);
    }
    let (Some(codec), Some(path)) = (args.first().and_then(|c| Codec::parse(c)), args.get(1)) else {
        eprintln!("usage: floor [--mmap] zstd|zstd:LEVEL|lz4|none FILE");
        return ExitCode::from(2);
    };
    let result = if mmap { run_mmap(&codec, path) } else { run(&codec, path) };
    match result {
        Ok((read, stored, sha)) => {
            let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "floor {}{} {read} {stored} {sha} {:.3}",
                if mmap { "mmap-" } else { "" },
                args[0],
                started.elapsed().as_secs_f64() * 1000.0
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("floor: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
