//! Seeded random mutations of valid inputs (flip, set, truncate, extend, splice, duplicate,
//! delete, and length-like fields set to huge values), and the loop every target runs: a fixed
//! number of cases per target, the seed printed (`WALVAULT_TEST_SEED` repeats a run), a panic
//! reported with the seed and case, and each case's peak allocation checked against a bound.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::alloc::Peak;

/// The seed of this run: `WALVAULT_TEST_SEED`, else a random one (printed either way).
pub fn seed() -> u64 {
    std::env::var("WALVAULT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random)
}

/// Values that length and count fields are set to.
const HUGE: [u64; 10] =
    [0, 1, 0x7F, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x4000_0000, 0x7FFF_FFFF_FFFF_FFFF, u64::MAX];

/// One mutation of `base`; `others` are further valid inputs to splice from. The case's
/// allocation is measured from its return on (building the input is not the decoder's doing:
/// a 64-byte input extended by 2 KiB and cut back to 12 bytes holds 4 KiB it never used).
pub fn mutate(rng: &mut StdRng, base: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut v = base.to_vec();
    let rounds = 1 + rng.random_range(0..4usize).saturating_sub(1);
    for _ in 0..rounds {
        let len = v.len();
        match rng.random_range(0..10u8) {
            // Flip one bit.
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] ^= 1 << rng.random_range(0..8);
            }
            // Set a few bytes to random values.
            1 if len > 0 => {
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(0..len);
                    v[i] = rng.random();
                }
            }
            // Truncate.
            2 => v.truncate(rng.random_range(0..=len)),
            // Extend with zeros, random bytes or a copy of its own tail.
            3 => {
                let n = rng.random_range(1..2048);
                match rng.random_range(0..3) {
                    0 => v.extend(std::iter::repeat_n(0, n)),
                    1 => v.extend((0..n).map(|_| rng.random::<u8>())),
                    _ => {
                        let from = rng.random_range(0..=len);
                        v.extend_from_within(from..);
                    }
                }
            }
            // Splice a piece of another valid input in (replacing or inserting).
            4 if !others.is_empty() => {
                let o = &others[rng.random_range(0..others.len())];
                if !o.is_empty() {
                    let a = rng.random_range(0..o.len());
                    let b = rng.random_range(a..=o.len());
                    let at = rng.random_range(0..=len);
                    if rng.random_bool(0.5) {
                        let end = (at + (b - a)).min(len);
                        v.splice(at..end, o[a..b].iter().copied());
                    } else {
                        v.splice(at..at, o[a..b].iter().copied());
                    }
                }
            }
            // Duplicate a range in place.
            5 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 4096));
                let piece = v[a..b].to_vec();
                let at = rng.random_range(0..=len);
                v.splice(at..at, piece);
            }
            // Delete a range.
            6 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 4096));
                v.drain(a..b);
            }
            // A 2-, 4- or 8-byte field (either byte order) set to a huge or edge value.
            7 | 8 if len >= 2 => {
                let width = [2usize, 4, 8][rng.random_range(0..3)].min(len);
                let at = rng.random_range(0..=len - width);
                let x = HUGE[rng.random_range(0..HUGE.len())];
                let bytes = if rng.random_bool(0.5) { x.to_le_bytes() } else { x.to_be_bytes() };
                let bytes = if bytes[0] == 0 && width < 8 { &bytes[8 - width..] } else { &bytes[..width] };
                v[at..at + width].copy_from_slice(bytes);
            }
            // Swap two ranges.
            _ if len > 2 => {
                let n = rng.random_range(1..=(len / 2).min(1024));
                let a = rng.random_range(0..=len - n);
                let b = rng.random_range(0..=len - n);
                if a + n <= b || b + n <= a {
                    let piece = v[a..a + n].to_vec();
                    v.copy_within(b..b + n, a);
                    v[b..b + n].copy_from_slice(&piece);
                }
            }
            _ => v.push(rng.random()),
        }
    }
    super::alloc::restart();
    v
}

/// Cuts `input` into random pieces (for the push decoders' split handling).
pub fn pieces<'a>(rng: &mut StdRng, input: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    // Byte by byte only for small inputs (it is slow in a debug build).
    let first = if input.len() <= 2048 { 0 } else { 1 };
    let max = [1usize, 7, 64, 512, 4096, 1 << 20][rng.random_range(first..6)];
    while !rest.is_empty() {
        let n = rng.random_range(1..=max).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// What a target's loop saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Inputs tried.
    pub cases: u64,
    /// Inputs accepted (decoded or parsed without error).
    pub accepted: u64,
    /// The largest peak allocation of one case, in bytes.
    pub peak: usize,
    /// The largest input, in bytes.
    pub largest: usize,
}

/// Runs `cases` cases of target `name`: `case(rng, i)` builds one input, runs it and returns
/// its length and whether it was accepted; its peak allocation must stay within `bound(len)`.
/// Prints the seed and the tally; a panic is re-raised with the seed and the case number.
pub fn run(
    name: &str,
    cases: u64,
    bound: impl Fn(usize) -> usize,
    mut case: impl FnMut(&mut StdRng, u64) -> (usize, bool),
) -> Tally {
    let seed = seed();
    eprintln!("fuzz {name}: seed {seed} (WALVAULT_TEST_SEED={seed} repeats it), {cases} cases");
    let mut t = Tally::default();
    for i in 0..cases {
        // Each case its own generator, so one case repeats on its own from (seed, i).
        let mut rng = StdRng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let peak = Peak::start();
        let got = catch_unwind(AssertUnwindSafe(|| case(&mut rng, i)));
        let used = peak.bytes();
        let (len, ok) = match got {
            Ok(r) => r,
            Err(p) => {
                eprintln!("fuzz {name}: case {i} of seed {seed} panicked");
                resume_unwind(p)
            }
        };
        assert!(
            used <= bound(len),
            "fuzz {name}: case {i} of seed {seed} allocated {used} bytes at peak for a {len}-byte input \
             (bound {})",
            bound(len)
        );
        t.cases += 1;
        t.accepted += u64::from(ok);
        t.peak = t.peak.max(used);
        t.largest = t.largest.max(len);
    }
    eprintln!(
        "fuzz {name}: {} inputs, {} accepted, largest {} bytes, peak allocation of one case {} bytes",
        t.cases, t.accepted, t.largest, t.peak
    );
    t
}
