//! Tunes glibc's allocator for walvault's pattern of many short-lived buffers of 32 KiB to a few
//! MiB, freed on another thread than the one that made them:
//!
//! - Large buffers are returned on free. glibc raises its mmap threshold every time a mapped
//!   block is freed (up to 32 MiB), so after the first encoding the few-MiB buffers of the next
//!   ones come from heap arenas and stay resident once freed. A fixed threshold of 1 MiB keeps
//!   every such buffer mapped and unmapped on free: a `wal-push` pushing ten segments ahead
//!   peaks at 34 MB instead of 46 MB, no slower.
//! - In the `walvault` binary's long streams (base backups, restores, dumps), smaller freed
//!   memory stays with the process. glibc gives the top of a heap back to the kernel as soon as
//!   128 KiB of it are free, and the next buffer faults the same pages in again, zeroed: a 3 GB
//!   base backup took about 500 000 page faults (a second of system time on two cores). Keeping
//!   up to 64 MiB free per heap brings that to about 10 000 to 30 000; peak RSS is the same,
//!   since the memory kept is what the stream was using a moment before. `wal-push` and
//!   `wal-fetch` (and their subcommands of `walvault`) keep glibc's trimming: their calls are
//!   short, and their peak RSS has a bound of its own.

/// Large allocations are mapped from this size on (and returned to the system when freed).
pub const MMAP_THRESHOLD: usize = 1 << 20;
/// Free memory at the top of a heap is returned to the system only beyond this size.
pub const TRIM_THRESHOLD: usize = 64 << 20;

/// Sets the fixed mmap threshold. Call first thing in `main`, before other threads start.
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// [`return_large_buffers`], and keeps freed heap memory up to [`TRIM_THRESHOLD`]: for long
/// streams. Call before other threads start.
pub fn tune_for_streams() {
    return_large_buffers();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as above.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Bytes glibc holds in mapped blocks now.
    fn mapped() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        unsafe { libc::mallinfo2() }.hblkhd
    }

    /// Free bytes glibc keeps in its heaps (every arena) now.
    fn kept_free() -> usize {
        // SAFETY: as above.
        unsafe { libc::mallinfo2() }.fordblks
    }

    #[test]
    fn large_buffers_stay_mapped_after_one_is_freed() {
        // Without the fixed threshold, freeing the first 4 MiB buffer raises glibc's threshold
        // above 4 MiB and the second one comes from the heap (and would stay resident).
        return_large_buffers();
        let first = std::hint::black_box(vec![1u8; 4 << 20]);
        drop(first);
        let before = mapped();
        let second = std::hint::black_box(vec![2u8; 4 << 20]);
        assert!(mapped() >= before + (4 << 20), "the second 4 MiB buffer is not mapped");
        drop(second);
        assert!(mapped() < before + (4 << 20), "a freed mapped buffer stays counted");
    }

    #[test]
    fn freed_heap_memory_is_kept_for_the_next_buffers() {
        // 32 buffers of 512 KiB (below the mmap threshold: from the heap), freed: without the
        // trim threshold glibc hands all but 128 KiB of the heap's top back to the kernel.
        tune_for_streams();
        let before = kept_free();
        let buffers: Vec<Vec<u8>> = (0..32).map(|i| std::hint::black_box(vec![i as u8; 512 << 10])).collect();
        drop(buffers);
        let kept = kept_free().saturating_sub(before);
        assert!(kept >= 8 << 20, "only {kept} bytes of 16 MiB freed stay in the heap");
    }
}
