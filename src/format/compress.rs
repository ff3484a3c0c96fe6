//! Push-style compression codecs (zstd, lz4, none) for the object body: bytes in, bytes out, no IO,
//! output handed over in bounded pieces so a small input can never inflate memory.

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use zstd::stream::raw::{DParameter, Decoder as ZstdRawDecoder, InBuffer, Operation, OutBuffer};

use super::error::DecodeError;
use super::zstd_stream::ZstdStream;

/// The default zstd level (the same as pgBackRest's and zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Raw bytes per lz4 block; each block is compressed on its own.
const LZ4_BLOCK: usize = 256 * 1024;
/// The largest lz4 block a decoder accepts (guards memory against a corrupt length).
const LZ4_MAX_BLOCK: usize = 4 * 1024 * 1024;
/// Flag in an lz4 block's stored length: the block is stored uncompressed.
const LZ4_STORED: u32 = 1 << 31;
/// Size of the pieces decompressed output is handed over in.
const OUT_PIECE: usize = 128 * 1024;
/// The largest zstd window (log2 bytes) a decoder accepts. Every level walvault writes (-7 to
/// 19) uses at most 2^23 (8 MiB); zstd's own limit, 2^27, would let a frame header of a few
/// bytes in a rewritten unsealed object make the decoder allocate 128 MiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// How an object's body is compressed; recorded in the object header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// zstd at the given level.
    Zstd {
        /// The compression level (1..=22, or negative for the fast levels).
        level: i32,
    },
    /// lz4 blocks (walvault's own simple framing, see [`Compressor`]).
    Lz4,
}

impl Compression {
    /// The code stored in the object header.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd { .. } => 1,
            Compression::Lz4 => 2,
        }
    }

    /// The compression of a header code (levels do not matter for decoding).
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Compression::None,
            1 => Compression::Zstd { level: DEFAULT_ZSTD_LEVEL },
            2 => Compression::Lz4,
            _ => return None,
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
            Compression::Lz4 => f.write_str("lz4"),
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("compression `{s}` is not one of zstd, zstd:LEVEL (1 to 19, or -7 to -1), lz4, none");
        match s {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd { level: DEFAULT_ZSTD_LEVEL }),
            _ => {
                let level: i32 = s.strip_prefix("zstd:").and_then(|l| l.parse().ok()).ok_or_else(bad)?;
                if (-7..=19).contains(&level) && level != 0 {
                    Ok(Compression::Zstd { level })
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// A streaming compressor that appends its output to a caller's buffer.
pub(crate) enum Compressor {
    None,
    Zstd(Box<ZstdStream>),
    Lz4 { pending: Vec<u8> },
}

impl Compressor {
    /// A compressor; `size_hint` is the input size when known (lets zstd pick its parameters);
    /// `workers` above 0 lets zstd compress on that many threads of its own.
    pub(crate) fn new(c: Compression, size_hint: Option<u64>, workers: u32) -> Self {
        match c {
            Compression::None => Compressor::None,
            Compression::Lz4 => Compressor::Lz4 { pending: Vec::with_capacity(LZ4_BLOCK) },
            Compression::Zstd { level } => {
                Compressor::Zstd(Box::new(ZstdStream::new(level, workers, size_hint)))
            }
        }
    }

    /// Compresses `input`, appending whatever output is ready to `out`.
    pub(crate) fn update(&mut self, input: &[u8], out: &mut BytesMut) {
        match self {
            Compressor::None => out.extend_from_slice(input),
            Compressor::Zstd(enc) => enc.update(input, out),
            Compressor::Lz4 { pending } => {
                let mut input = input;
                while !input.is_empty() {
                    let take = (LZ4_BLOCK - pending.len()).min(input.len());
                    pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if pending.len() == LZ4_BLOCK {
                        lz4_block(pending, out);
                        pending.clear();
                    }
                }
            }
        }
    }

    /// Ends the stream, appending the last output to `out`.
    pub(crate) fn finish(self, out: &mut BytesMut) {
        match self {
            Compressor::None => {}
            Compressor::Zstd(enc) => enc.finish(out),
            Compressor::Lz4 { pending } => {
                if !pending.is_empty() {
                    lz4_block(&pending, out);
                }
                out.put_u32_le(0); // end marker: a block of raw length 0
                out.put_u32_le(0);
            }
        }
    }
}

/// Raw bytes per zstd frame, at most, when a one-shot compression is shared between threads:
/// small enough that a thread that joins late (the hashing thread of
/// [`crate::object::encode::encode_file`]) still takes a fair share, and large against level
/// 3's 2 MiB window, so the ratio barely changes.
const SHARED_SLICE: usize = 4 << 20;

/// [`compress_all_beside`] with nothing beside, its pieces concatenated (for tests).
#[cfg(test)]
pub(crate) fn compress_all(c: Compression, input: &[u8], threads: usize) -> BytesMut {
    let (pieces, ()) = compress_all_beside(c, input, threads, || ());
    let mut out = BytesMut::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for p in pieces {
        out.extend_from_slice(&p);
    }
    out
}

/// Compresses all of `input` at once into the same stream [`Compressor`] produces piece by
/// piece (zstd gets the whole input, which is faster than feeding it in pieces), and runs
/// `first` meanwhile, on `threads` threads in all: `first` runs on one of them, which then
/// joins in. zstd cuts the input into
/// slices (at most [`SHARED_SLICE`], at least two when `threads` is) and each free thread takes
/// the next one and compresses it as an independent frame (a valid zstd stream: a decoder reads
/// the frames one after another). So `first` costs no core of its own once it is done, and the
/// slices balance themselves: a very compressible segment is mostly compressed while `first`
/// (hashing) runs, a hard one is shared about evenly. The result is the stream in pieces, in
/// order; the same bytes whichever thread took which slice. With one thread `first` runs
/// before the compression.
pub fn compress_all_beside<T: Send>(
    c: Compression,
    input: &[u8],
    threads: usize,
    first: impl FnOnce() -> T + Send,
) -> (Vec<BytesMut>, T) {
    let threads = threads.clamp(1, 8);
    if threads == 1 {
        let t = first();
        return (vec![compress_one(c, input)], t);
    }
    let Compression::Zstd { level } = c else {
        return std::thread::scope(|s| {
            let side = s.spawn(first);
            let out = compress_one(c, input);
            (vec![out], side.join().expect("thread panicked"))
        });
    };
    let slice = SHARED_SLICE.min(input.len().div_ceil(threads)).max(1);
    let slices: Vec<&[u8]> = input.chunks(slice).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Takes slices until none is left, on one zstd context (reused from frame to frame).
    let take = || {
        contexts::with(level, |ctx| {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(part) = slices.get(i) else { return done };
                done.push((i, ctx.compress_frame(part)));
            }
        })
    };
    let (mut frames, t) = std::thread::scope(|s| {
        let side = s.spawn(|| {
            let t = first();
            (t, take())
        });
        let others: Vec<_> = (2..threads).map(|_| s.spawn(take)).collect();
        let mut frames = take();
        for h in others {
            frames.extend(h.join().expect("compressing thread panicked"));
        }
        let (t, theirs) = side.join().expect("thread panicked");
        frames.extend(theirs);
        (frames, t)
    });
    frames.sort_unstable_by_key(|(i, _)| *i);
    debug_assert_eq!(frames.len(), slices.len());
    (frames.into_iter().map(|(_, f)| f).collect(), t)
}

/// All of `input` as one stream on this thread: zstd one frame in one call, with the pre-block
/// splitter off (zstd_stream).
fn compress_one(c: Compression, input: &[u8]) -> BytesMut {
    if let Compression::Zstd { level } = c {
        return contexts::with(level, |ctx| ctx.compress_frame(input));
    }
    let mut comp = Compressor::new(c, Some(input.len() as u64), 0);
    let mut out = BytesMut::with_capacity(input.len() / 2);
    comp.update(input, &mut out);
    comp.finish(&mut out);
    out
}

/// zstd contexts kept between one-shot compressions: a context's tables (about 1 MiB at level 3)
/// are allocated and cleared once, not for every segment a long-lived process (the background
/// pusher) compresses.
mod contexts {
    use std::sync::Mutex;

    use crate::format::zstd_stream::ZstdStream;

    /// Contexts kept at most (one per compressing thread of the largest machines).
    const KEPT: usize = 8;
    static IDLE: Mutex<Vec<(i32, ZstdStream)>> = Mutex::new(Vec::new());

    /// Runs `f` on a context at `level` (an idle one, or a new one), then keeps the context for
    /// the next call. `f` only compresses whole frames ([`ZstdStream::compress_frame`]), so the
    /// context never has a frame under way when it is kept; if `f` panics it is dropped.
    pub(super) fn with<T>(level: i32, f: impl FnOnce(&mut ZstdStream) -> T) -> T {
        let idle_one = {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            idle.iter().position(|(l, _)| *l == level).map(|i| idle.swap_remove(i).1)
        };
        let mut ctx = idle_one.unwrap_or_else(|| ZstdStream::new(level, 0, None));
        let t = f(&mut ctx);
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEPT {
            idle.push((level, ctx));
        }
        t
    }
}

/// One lz4 block: raw length (u32 LE), stored length (u32 LE, top bit = stored raw), bytes.
fn lz4_block(raw: &[u8], out: &mut BytesMut) {
    let max = lz4_flex::block::get_maximum_output_size(raw.len());
    let start = out.len();
    out.put_u32_le(raw.len() as u32);
    out.put_u32_le(0);
    out.resize(start + 8 + max, 0);
    let n = lz4_flex::block::compress_into(raw, &mut out[start + 8..])
        .expect("buffer sized by get_maximum_output_size");
    if n < raw.len() {
        out.truncate(start + 8 + n);
        out[start + 4..start + 8].copy_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.truncate(start + 8);
        out.extend_from_slice(raw);
        out[start + 4..start + 8].copy_from_slice(&(raw.len() as u32 | LZ4_STORED).to_le_bytes());
    }
}

/// A streaming decompressor that hands its output to a sink in pieces of bounded size.
pub(crate) enum Decompressor {
    None,
    /// `in_frame`: a frame has begun and not ended; `frames`: frames completed.
    Zstd {
        ctx: Box<ZstdRawDecoder<'static>>,
        out: Vec<u8>,
        in_frame: bool,
        frames: u64,
    },
    Lz4 {
        buf: Vec<u8>,
        out: Vec<u8>,
        ended: bool,
    },
}

/// Where decompressed bytes go: the caller hashes and writes them.
pub type Sink<'a> = dyn FnMut(&[u8]) -> std::io::Result<()> + 'a;

impl Decompressor {
    pub(crate) fn new(c: Compression) -> Self {
        match c {
            Compression::None => Decompressor::None,
            Compression::Zstd { .. } => Decompressor::Zstd {
                ctx: Box::new({
                    let mut d = ZstdRawDecoder::new().expect("zstd context allocation");
                    d.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
                        .expect("a window limit zstd accepts");
                    d
                }),
                out: vec![0; OUT_PIECE],
                in_frame: false,
                frames: 0,
            },
            Compression::Lz4 => Decompressor::Lz4 { buf: Vec::new(), out: Vec::new(), ended: false },
        }
    }

    /// Decompresses `input`, passing output to `sink`.
    pub(crate) fn update(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), DecodeError> {
        match self {
            Decompressor::None => sink(input).map_err(DecodeError::Sink),
            Decompressor::Zstd { ctx, out, in_frame, frames } => {
                // Frames may follow one another (parallel compression writes several).
                let mut inb = InBuffer::around(input);
                loop {
                    let before = inb.pos();
                    let mut outb = OutBuffer::around(&mut out[..]);
                    let hint =
                        ctx.run(&mut inb, &mut outb).map_err(|e| DecodeError::Decompress(e.to_string()))?;
                    let n = outb.pos();
                    let progressed = inb.pos() > before || n > 0;
                    if hint == 0 {
                        if *in_frame || progressed {
                            *frames += 1;
                        }
                        *in_frame = false;
                    } else if progressed {
                        *in_frame = true;
                    }
                    if n > 0 {
                        sink(&out[..n]).map_err(DecodeError::Sink)?;
                    }
                    // Done when all input is consumed and the output buffer was not filled (a full
                    // buffer may mean more output is waiting).
                    if inb.pos() == input.len() && n < out.len() {
                        return Ok(());
                    }
                }
            }
            Decompressor::Lz4 { buf, out, ended } => {
                buf.extend_from_slice(input);
                let mut at = 0;
                while buf.len() - at >= 8 {
                    if *ended {
                        return Err(DecodeError::Decompress("data after the end of the lz4 stream".into()));
                    }
                    let raw_len = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4")) as usize;
                    let stored = u32::from_le_bytes(buf[at + 4..at + 8].try_into().expect("4"));
                    let is_raw = stored & LZ4_STORED != 0;
                    let stored_len = (stored & !LZ4_STORED) as usize;
                    if raw_len > LZ4_MAX_BLOCK
                        || stored_len > LZ4_MAX_BLOCK
                        || (is_raw && stored_len != raw_len)
                    {
                        return Err(DecodeError::Decompress("impossible lz4 block length".into()));
                    }
                    if raw_len == 0 {
                        if stored != 0 {
                            return Err(DecodeError::Decompress("bad lz4 end marker".into()));
                        }
                        *ended = true;
                        at += 8;
                        continue;
                    }
                    if buf.len() - at < 8 + stored_len {
                        break;
                    }
                    let data = &buf[at + 8..at + 8 + stored_len];
                    if is_raw {
                        sink(data).map_err(DecodeError::Sink)?;
                    } else {
                        out.resize(raw_len, 0);
                        let n = lz4_flex::block::decompress_into(data, out)
                            .map_err(|e| DecodeError::Decompress(e.to_string()))?;
                        if n != raw_len {
                            return Err(DecodeError::Decompress(
                                "lz4 block shorter than its header says".into(),
                            ));
                        }
                        sink(out).map_err(DecodeError::Sink)?;
                    }
                    at += 8 + stored_len;
                }
                buf.drain(..at);
                Ok(())
            }
        }
    }

    /// Checks that the compressed stream ended properly.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        let complete = match self {
            Decompressor::None => true,
            Decompressor::Zstd { in_frame, frames, .. } => !*in_frame && *frames > 0,
            Decompressor::Lz4 { buf, ended, .. } => *ended && buf.is_empty(),
        };
        if complete {
            Ok(())
        } else {
            Err(DecodeError::Decompress("the compressed stream ends early".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: Compression, data: &[u8], piece: usize) -> Vec<u8> {
        let mut comp = Compressor::new(c, None, 0);
        let mut packed = BytesMut::new();
        for p in data.chunks(piece.max(1)) {
            comp.update(p, &mut packed);
        }
        comp.finish(&mut packed);
        let mut dec = Decompressor::new(c);
        let mut out = Vec::new();
        let mut largest = 0;
        for p in packed.chunks(piece.max(1)) {
            dec.update(p, &mut |b: &[u8]| {
                largest = largest.max(b.len());
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        }
        dec.finish().unwrap();
        assert!(largest <= LZ4_MAX_BLOCK, "a piece of {largest} bytes");
        out
    }

    #[test]
    fn codecs_round_trip() {
        let mut data = vec![0u8; 3 * LZ4_BLOCK + 17];
        for (i, b) in data.iter_mut().enumerate().step_by(7) {
            *b = (i * 31 % 251) as u8;
        }
        let noise: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for c in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd { level: 3 },
            Compression::Zstd { level: -3 },
        ] {
            for input in [&data[..], &noise[..], &[][..], &[42][..]] {
                for piece in [1, 4096, 1 << 20] {
                    if piece == 1 && input.len() > 5000 {
                        continue;
                    }
                    assert_eq!(round_trip(c, input, piece), input, "{c} piece {piece}");
                }
            }
        }
    }

    /// The bytes `pieces` of a `c` stream decompress to.
    fn decompressed<'a>(c: Compression, pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut dec = Decompressor::new(c);
        let mut out = Vec::new();
        for p in pieces {
            dec.update(p, &mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        }
        dec.finish().unwrap();
        out
    }

    #[test]
    fn one_shot_streams_decode_like_piecewise_ones() {
        let data: Vec<u8> =
            (0..3_000_000u32).map(|i| if i % 5 == 0 { (i >> 3) as u8 } else { b'x' }).collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd { level: 3 }] {
            for workers in [1, 2, 3] {
                let packed = compress_all(c, &data, workers);
                assert!(decompressed(c, [&packed[..]]) == data, "{c} workers {workers}");
            }
        }
    }

    #[test]
    fn a_shared_compression_runs_its_side_job_and_makes_the_same_stream_whoever_takes_the_slices() {
        let data: Vec<u8> = (0..10_000_000u32)
            .map(|i| if i % 7 == 0 { (i.wrapping_mul(2_654_435_761) >> 9) as u8 } else { b'q' })
            .collect();
        let c = Compression::Zstd { level: 3 };
        let decoded = |c, pieces: &[BytesMut]| decompressed(c, pieces.iter().map(|p| &p[..]));
        // The side job done at once (it then takes slices) or after every slice is taken.
        let (quick, a) = compress_all_beside(c, &data, 2, || 7);
        let (late, b) = compress_all_beside(c, &data, 2, || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            8
        });
        assert_eq!((a, b), (7, 8));
        assert_eq!(quick.len(), 3, "10 MB in slices of at most 4 MiB");
        assert_eq!(quick, late, "the stream differs with who compressed which slice");
        assert!(decoded(c, &quick) == data);
        for threads in [1, 3] {
            let (pieces, x) = compress_all_beside(c, &data, threads, || threads);
            assert_eq!(x, threads);
            assert!(decoded(c, &pieces) == data, "threads {threads}");
        }
        for other in [Compression::None, Compression::Lz4] {
            let (pieces, x) = compress_all_beside(other, &data, 2, || 9);
            assert_eq!(x, 9);
            assert!(decoded(other, &pieces) == data, "{other}");
        }
    }

    #[test]
    fn kept_zstd_contexts_compress_at_the_level_asked_for() {
        let data: Vec<u8> = (0..2_000_000u32).map(|i| ((i / 3) ^ (i >> 11)) as u8).collect();
        let fresh = |level: i32| ZstdStream::new(level, 0, None).compress_frame(&data);
        let (one, nineteen) = (fresh(1), fresh(19));
        assert_ne!(one.len(), nineteen.len());
        // Each call takes a kept context back and forth; a context must never serve another level.
        for level in [1, 19, 1, 19, 19, 1] {
            let (pieces, ()) = compress_all_beside(Compression::Zstd { level }, &data, 1, || ());
            assert!(pieces[0] == if level == 1 { &one } else { &nineteen }, "level {level}");
        }
    }

    #[test]
    fn zero_runs_decompress_in_bounded_pieces() {
        let zeros = vec![0u8; 64 << 20];
        let mut comp = Compressor::new(Compression::Zstd { level: 3 }, None, 0);
        let mut packed = BytesMut::new();
        comp.update(&zeros, &mut packed);
        comp.finish(&mut packed);
        let mut dec = Decompressor::new(Compression::Zstd { level: 3 });
        let (mut total, mut largest) = (0, 0);
        dec.update(&packed, &mut |b: &[u8]| {
            total += b.len();
            largest = largest.max(b.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(total, zeros.len());
        assert!(largest <= OUT_PIECE);
    }

    #[test]
    fn cut_between_frames_is_caught() {
        let data = vec![7u8; 3 << 20];
        let packed = compress_all(Compression::Zstd { level: 3 }, &data, 2);
        // Find the end of the first frame by decoding byte by byte.
        let mut dec = Decompressor::new(Compression::Zstd { level: 3 });
        let mut seen = 0;
        let mut cut = 0;
        for (i, b) in packed.iter().enumerate() {
            dec.update(std::slice::from_ref(b), &mut |x: &[u8]| {
                seen += x.len();
                Ok(())
            })
            .unwrap();
            if seen * 2 >= data.len() && dec.finish().is_ok() {
                cut = i + 1;
                break;
            }
        }
        assert!(cut > 0 && cut < packed.len(), "two frames expected");
        // A stream that stops right after a complete frame passes the codec check; the trailer's
        // length and SHA-256 catch it (checked in the format tests).
        let mut dec = Decompressor::new(Compression::Zstd { level: 3 });
        dec.update(&packed[..cut + 3], &mut |_: &[u8]| Ok(())).unwrap();
        assert!(dec.finish().is_err(), "a frame cut short after the first one must fail");
    }

    #[test]
    fn truncated_streams_are_caught() {
        for c in [Compression::Lz4, Compression::Zstd { level: 3 }] {
            let mut comp = Compressor::new(c, None, 0);
            let mut packed = BytesMut::new();
            comp.update(&vec![5u8; 100_000], &mut packed);
            comp.finish(&mut packed);
            let mut dec = Decompressor::new(c);
            dec.update(&packed[..packed.len() - 3], &mut |_: &[u8]| Ok(())).unwrap();
            assert!(dec.finish().is_err(), "{c}");
        }
    }

    #[test]
    fn every_level_decodes_within_the_window_limit_and_larger_windows_are_refused() {
        // Without a size hint zstd uses the level's largest window, and says so in the frame.
        for level in (-7..=19).filter(|l| *l != 0) {
            for workers in [0, 2] {
                let c = Compression::Zstd { level };
                let mut comp = Compressor::new(c, None, workers);
                let mut packed = BytesMut::new();
                comp.update(b"a few bytes, a few bytes, a few bytes", &mut packed);
                comp.finish(&mut packed);
                let mut dec = Decompressor::new(c);
                let mut out = Vec::new();
                dec.update(&packed, &mut |b: &[u8]| {
                    out.extend_from_slice(b);
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("level {level} workers {workers}: {e}"));
                dec.finish().unwrap();
                assert_eq!(out, b"a few bytes, a few bytes, a few bytes");
            }
        }
        // A frame header claiming a 2^24 window (and 2^27, zstd's own limit), then a raw block.
        for exponent in [14u8, 17] {
            let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, exponent << 3];
            frame.extend_from_slice(&[(5 << 3) | 1, 0, 0]);
            frame.extend_from_slice(b"hello");
            let mut dec = Decompressor::new(Compression::Zstd { level: 3 });
            let err = dec.update(&frame, &mut |_: &[u8]| Ok(())).unwrap_err();
            assert!(matches!(err, DecodeError::Decompress(_)), "{err}");
        }
    }

    #[test]
    fn compression_names() {
        assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd { level: 3 });
        assert_eq!("zstd:9".parse::<Compression>().unwrap(), Compression::Zstd { level: 9 });
        assert_eq!("lz4".parse::<Compression>().unwrap(), Compression::Lz4);
        assert_eq!("none".parse::<Compression>().unwrap(), Compression::None);
        for bad in ["gzip", "zstd:", "zstd:0", "zstd:40", "zstd:x", "LZ4"] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
        for c in ["zstd:3", "lz4", "none", "zstd:-5"] {
            assert_eq!(c.parse::<Compression>().unwrap().to_string(), c);
        }
    }
}
