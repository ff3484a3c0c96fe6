//! A counting global allocator for the fuzz tests: the bytes this thread holds now and the most
//! it held since [`Peak::start`], so a test can show that a length field claiming GiBs does not
//! make a decoder allocate GiBs. Counts are per thread (each test runs on its own thread, and the
//! decoders under test allocate on the caller's thread), so parallel tests do not disturb them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static NOW: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static BASE: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    // `try_with`: the thread-local may be gone while a thread is torn down.
    let _ = NOW.try_with(|now| {
        let v = now.get() + n;
        now.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn shrank(n: usize) {
    let _ = NOW.try_with(|now| now.set(now.get().saturating_sub(n)));
}

// SAFETY: every call is passed on to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The most this thread held above what it held at [`Peak::start`] (or at the last
/// [`restart`]).
pub struct Peak(());

/// Measures from what the thread holds now: what was allocated before (a case's input, and
/// whatever building it took) no longer counts.
pub fn restart() {
    let now = NOW.with(Cell::get);
    BASE.with(|b| b.set(now));
    PEAK.with(|p| p.set(now));
}

impl Peak {
    /// Starts measuring from what the thread holds now.
    pub fn start() -> Peak {
        restart();
        Peak(())
    }

    /// Bytes held at most since `start`, beyond what was held then.
    pub fn bytes(&self) -> usize {
        PEAK.with(Cell::get).saturating_sub(BASE.with(Cell::get))
    }
}

#[test]
fn counts_what_this_thread_allocates() {
    let p = Peak::start();
    let v = vec![1u8; 10 << 20];
    assert!(p.bytes() >= 10 << 20, "{}", p.bytes());
    drop(v);
    let p = Peak::start();
    let small = vec![0u8; 100];
    assert!(p.bytes() < 4096, "{}", p.bytes());
    drop(small);
    let p = Peak::start();
    let input = vec![0u8; 1 << 20];
    restart();
    let small = vec![0u8; 100];
    assert!(p.bytes() < 4096, "what was held before the restart counts: {}", p.bytes());
    drop((input, small));
}
