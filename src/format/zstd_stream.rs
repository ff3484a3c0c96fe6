//! A streaming zstd compressor on libzstd's own context, for the one setting the `zstd` crate
//! does not expose: zstd 1.5.7's pre-block splitter (`ZSTD_c_blockSplitterLevel`) is turned off.
//! At level 3 it fingerprints every 128 KiB block to look for a better place to end it; on a
//! 3.2 GB base backup (pgbench scale 200) that cost about 6 % of walvault's CPU for a stream
//! 5 KB (0.004 %) smaller. With it off, zstd cuts blocks as the zstd before 1.5.7 did
//! (pg_basebackup's libzstd on Debian 12). The output is an ordinary zstd frame either way.

use std::ptr::NonNull;

use bytes::BytesMut;
use zstd_sys::{ZSTD_EndDirective, ZSTD_cParameter, ZSTD_inBuffer, ZSTD_outBuffer};

/// `ZSTD_c_blockSplitterLevel` (an experimental parameter of zstd 1.5.7).
const BLOCK_SPLITTER_LEVEL: ZSTD_cParameter = ZSTD_cParameter::ZSTD_c_experimentalParam20;
/// Its value for "never split a block before compressing it".
const NO_PRE_SPLIT: i32 = 1;
/// Output room reserved before each call.
const OUT_ROOM: usize = 128 * 1024;

/// One zstd frame being written.
pub(crate) struct ZstdStream {
    ctx: NonNull<zstd_sys::ZSTD_CCtx>,
}

// SAFETY: the context is owned by this value alone and used only through `&mut self`; libzstd's
// worker threads are its own and are joined when the context is freed.
unsafe impl Send for ZstdStream {}

/// Panics with zstd's message if `code` is an error (only a bug can make one: the parameters
/// are in range and the output always has room).
fn check(code: usize, what: &str) -> usize {
    // SAFETY: both functions only read their argument; the name is a static C string.
    unsafe {
        if zstd_sys::ZSTD_isError(code) != 0 {
            let name = std::ffi::CStr::from_ptr(zstd_sys::ZSTD_getErrorName(code));
            panic!("zstd {what}: {}", name.to_string_lossy());
        }
    }
    code
}

impl ZstdStream {
    /// A frame at `level`, compressed on `workers` threads of zstd's own (0: on the caller's
    /// thread; without zstd's multithreading it stays on the caller's). `size_hint` only helps
    /// zstd choose its parameters, but a wrong one is an error: give it only when the input's
    /// exact size is known.
    pub(crate) fn new(level: i32, workers: u32, size_hint: Option<u64>) -> Self {
        // SAFETY: a fresh context, checked for NULL; it is freed in Drop.
        let ctx = NonNull::new(unsafe { zstd_sys::ZSTD_createCCtx() }).expect("zstd context allocation");
        let s = ZstdStream { ctx };
        s.set(ZSTD_cParameter::ZSTD_c_compressionLevel, level, true);
        s.set(BLOCK_SPLITTER_LEVEL, NO_PRE_SPLIT, true);
        if workers > 0 {
            s.set(ZSTD_cParameter::ZSTD_c_nbWorkers, workers as i32, false);
        }
        if let Some(n) = size_hint {
            // SAFETY: the context is valid and no frame has started.
            check(unsafe { zstd_sys::ZSTD_CCtx_setPledgedSrcSize(s.ctx.as_ptr(), n as _) }, "size hint");
        }
        s
    }

    /// Compresses all of `input` into one frame in a single call (ZSTD_compress2: zstd sees the
    /// whole input at once, no copy into its window, and writes its size in the frame header),
    /// in a buffer of its own. zstd needs room for its bound (a little more than the input);
    /// the buffer is then shrunk in place to the frame's size, so what the frame did not use
    /// goes back to the allocator at once, for the next buffers, instead of staying reserved
    /// (and, in a heap, resident) until the frame is freed. The context can compress the next
    /// frame after it (with its tables already allocated), but must not have a streamed frame
    /// under way.
    pub(crate) fn compress_frame(&mut self, input: &[u8]) -> BytesMut {
        // SAFETY: only computes a size.
        let bound = unsafe { zstd_sys::ZSTD_compressBound(input.len()) };
        let mut out: Vec<u8> = Vec::with_capacity(bound);
        // SAFETY: the context is valid (ZSTD_compress2 starts a new frame on it); `input` is a
        // live slice and the destination is `out`'s spare capacity of at least the bound, of
        // which zstd writes at most `bound` bytes and returns how many.
        let n = check(
            unsafe {
                zstd_sys::ZSTD_compress2(
                    self.ctx.as_ptr(),
                    out.as_mut_ptr().cast(),
                    bound,
                    input.as_ptr().cast(),
                    input.len(),
                )
            },
            "compression",
        );
        // SAFETY: zstd initialised the first `n` bytes.
        unsafe { out.set_len(n) };
        out.shrink_to_fit();
        // Collecting a vector's own iterator keeps its allocation (no copy).
        out.into_iter().collect()
    }

    /// Sets one parameter; `required` ones must be accepted.
    fn set(&self, p: ZSTD_cParameter, value: i32, required: bool) {
        // SAFETY: the context is valid; zstd checks the parameter and its bounds.
        let r = unsafe { zstd_sys::ZSTD_CCtx_setParameter(self.ctx.as_ptr(), p, value) };
        if required {
            check(r, "parameter");
        }
    }

    /// Compresses `input`, appending whatever output is ready to `out`.
    pub(crate) fn update(&mut self, input: &[u8], out: &mut BytesMut) {
        let mut inb = ZSTD_inBuffer { src: input.as_ptr().cast(), size: input.len(), pos: 0 };
        while inb.pos < inb.size {
            self.step(&mut inb, ZSTD_EndDirective::ZSTD_e_continue, out);
        }
    }

    /// Ends the frame, appending the rest of the output to `out`.
    pub(crate) fn finish(mut self, out: &mut BytesMut) {
        let mut inb = ZSTD_inBuffer { src: std::ptr::null(), size: 0, pos: 0 };
        while self.step(&mut inb, ZSTD_EndDirective::ZSTD_e_end, out) != 0 {}
    }

    /// One call of ZSTD_compressStream2 with room for output; returns what zstd says is left to
    /// flush.
    fn step(&mut self, inb: &mut ZSTD_inBuffer, end: ZSTD_EndDirective, out: &mut BytesMut) -> usize {
        out.reserve(OUT_ROOM);
        let room = out.spare_capacity_mut();
        let mut outb = ZSTD_outBuffer { dst: room.as_mut_ptr().cast(), size: room.len(), pos: 0 };
        // SAFETY: the context is valid; `inb` points into a live slice (or is empty) and `outb`
        // into `out`'s spare capacity, of which zstd writes at most `size` bytes and reports
        // `pos` written; with workers it blocks rather than return with no progress.
        let left = check(
            unsafe { zstd_sys::ZSTD_compressStream2(self.ctx.as_ptr(), &mut outb, inb, end) },
            "compression",
        );
        // SAFETY: zstd initialised the first `pos` bytes of the spare capacity.
        unsafe { out.set_len(out.len() + outb.pos) };
        left
    }
}

impl Drop for ZstdStream {
    fn drop(&mut self) {
        // SAFETY: the context was made by ZSTD_createCCtx and is freed once; this joins its
        // worker threads.
        unsafe { zstd_sys::ZSTD_freeCCtx(self.ctx.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        // Text-like, compressible, with some variety (a page of a table, over and over).
        (0..n).map(|i| b"abcdefghij0123456789 ,;\n"[(i * 7 + i / 1000) % 24]).collect()
    }

    #[test]
    fn frames_decode_to_the_input_with_and_without_workers_and_size_hints() {
        let data = sample(3 << 20);
        for (workers, hint) in [(0, None), (0, Some(data.len() as u64)), (2, None)] {
            let mut s = ZstdStream::new(3, workers, hint);
            let mut out = BytesMut::new();
            for piece in data.chunks(32 * 1024 + 7) {
                s.update(piece, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(zstd::decode_all(&out[..]).unwrap(), data, "workers {workers} hint {hint:?}");
            assert!(out.len() < data.len() / 4);
        }
    }

    #[test]
    fn the_pre_block_splitter_is_off() {
        let s = ZstdStream::new(3, 0, None);
        let mut value = -1;
        // SAFETY: reading a parameter of a valid context.
        check(
            unsafe { zstd_sys::ZSTD_CCtx_getParameter(s.ctx.as_ptr(), BLOCK_SPLITTER_LEVEL, &mut value) },
            "get",
        );
        assert_eq!(value, NO_PRE_SPLIT);
    }

    #[test]
    fn one_call_frames_on_one_context_decode_to_their_inputs() {
        let mut s = ZstdStream::new(3, 0, None);
        for n in [0usize, 1, 100_000, 3 << 20, 5] {
            let input = sample(n);
            let out = s.compress_frame(&input);
            assert_eq!(zstd::decode_all(&out[..]).unwrap(), input, "{n} bytes");
            // The frame header holds the size (what a decoder sizes its output by).
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(&out[..]).ok(),
                Some(Some(n as u64)),
                "{n} bytes"
            );
            // Nothing of zstd's bound stays reserved.
            assert_eq!(out.capacity(), out.len(), "{n} bytes");
        }
    }
}
