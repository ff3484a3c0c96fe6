//! The tar reader (restore) and the tar splitter (base-backup) on mutated real archives: plain
//! files, directories, links, GNU long names, pax records and ustar prefixes, with every header
//! checksum fixed up half the time so the fields behind it (sizes in octal and base-256,
//! lengths of pax records) are what the reader meets. Never a panic, never more data handed out
//! than came in, the same events whatever the split, bounded memory (metadata members are
//! capped at 1 MiB).

use rand::Rng;
use rand::rngs::StdRng;

use super::mutate::{mutate, pieces, run};
use crate::tar::read::{Event, TarError, TarReader};
use crate::tar::split::{BLOCK, TarSplitter};
use crate::tar::testutil::{archive, header};

/// Inputs tried per run.
const CASES: u64 = 20_000;

/// An archive with every kind of member the reader knows.
fn rich() -> Vec<u8> {
    let mut data = Vec::new();
    let long = "d/".repeat(80) + "file";
    data.extend_from_slice(&header("././@LongLink", long.len() as u64 + 1, b'L'));
    let mut name = long.into_bytes();
    name.push(0);
    name.resize(name.len().div_ceil(BLOCK) * BLOCK, 0);
    data.extend_from_slice(&name);
    data.extend_from_slice(&header("short", 3, b'0'));
    data.extend_from_slice(b"xyz");
    data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
    let pax = "16 path=pax/nm\n11 size=2\n20 mtime=1.500000\n";
    data.extend_from_slice(&header("PaxHeader", pax.len() as u64, b'x'));
    let mut p = pax.as_bytes().to_vec();
    p.resize(BLOCK, 0);
    data.extend_from_slice(&p);
    data.extend_from_slice(&header("ignored", 0, b'0'));
    data.extend_from_slice(&[1, 2]);
    data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
    let mut h = header("leaf", 0, b'0');
    h[345..351].copy_from_slice(b"prefix");
    data.extend_from_slice(&fix(h));
    let mut s = header("ln", 0, b'2');
    s[157..163].copy_from_slice(b"target");
    data.extend_from_slice(&fix(s));
    data.extend_from_slice(&header("dir/", 0, b'5'));
    data.extend_from_slice(&[0; 2 * BLOCK]);
    data
}

fn fix(mut h: [u8; BLOCK]) -> [u8; BLOCK] {
    fix_block(&mut h);
    h
}

/// Recomputes a header block's checksum.
fn fix_block(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// Fixes the checksum of every block that looks like a ustar header.
fn fix_headers(v: &mut [u8]) {
    for b in v.chunks_exact_mut(BLOCK) {
        if &b[257..262] == b"ustar" {
            fix_block(b);
        }
    }
}

/// What reading `parts` gave: the events (data summed per member) and how it ended.
fn read(parts: &[&[u8]]) -> (Vec<String>, Result<(), TarError>) {
    let mut r = TarReader::new();
    let mut events = Vec::new();
    let mut data = 0u64;
    let mut total_in = 0u64;
    for p in parts {
        total_in += p.len() as u64;
        let fed = r.feed(p, &mut |e: Event<'_>| {
            match e {
                Event::Member(m) => events.push(format!("member {:?} {:?} {}", m.path, m.kind, m.size)),
                Event::Data(d) => data += d.len() as u64,
                Event::MemberEnd => events.push(format!("end after {data}")),
            }
            Ok::<_, TarError>(())
        });
        assert!(data <= total_in, "more data handed out than came in");
        if let Err(e) = fed {
            return (events, Err(e));
        }
    }
    (events, r.finish(true))
}

/// The member boundaries the splitter finds, or its error.
fn split(parts: &[&[u8]]) -> Result<Vec<u64>, crate::tar::split::TarError> {
    let mut t = TarSplitter::new();
    let mut seen = Vec::new();
    for p in parts {
        let mut rest = *p;
        while !rest.is_empty() {
            let n = t.advance(rest)?;
            assert!(n > 0 && n <= rest.len(), "the splitter consumed {n} of {}", rest.len());
            rest = &rest[n..];
            if t.at_boundary() && seen.last() != Some(&t.offset()) {
                seen.push(t.offset());
            }
        }
    }
    Ok(seen)
}

#[test]
fn fuzz_tar_reader_and_splitter() {
    let (plain, _) = archive(
        &[("a", 0, b'0'), ("dir/", 0, b'5'), ("dir/b", 513, b'0'), ("c", 512, b'0'), ("d", 1, b'0')],
        true,
    );
    let (part, _) = archive(&[("x", 10, b'0'), ("././@LongLink", 200, b'L'), ("long", 20, b'0')], false);
    let bases = vec![plain, part, rich()];
    for b in &bases[..1] {
        assert!(read(&[b]).1.is_ok());
    }
    run(
        "tar reader and splitter",
        CASES,
        |len| 2 * len + (3 << 20),
        |rng: &mut StdRng, _| {
            let base = &bases[rng.random_range(0..bases.len())];
            let mut input = mutate(rng, base, &bases);
            let blocks = input.len() / BLOCK;
            if blocks > 0 && rng.random_bool(0.2) {
                // A size field in base-256, anything up to u64::MAX.
                let at = rng.random_range(0..blocks) * BLOCK;
                input[at + 124..at + 128].copy_from_slice(&[0x80, 0, 0, 0]);
                let size = [u64::MAX, u64::MAX - 511, 1 << 63, 1 << 40, 600][rng.random_range(0..5)];
                input[at + 128..at + 136].copy_from_slice(&size.to_be_bytes());
            }
            if rng.random_bool(0.5) {
                fix_headers(&mut input);
            }
            let whole = read(&[&input]);
            let parts = pieces(rng, &input);
            assert_eq!(read(&parts), whole, "split and whole reads differ");
            assert_eq!(split(&parts), split(&[&input]), "split and whole boundaries differ");
            (input.len(), whole.1.is_ok())
        },
    );
}

#[test]
fn sizes_near_the_top_of_u64_are_errors() {
    // Base-256 size fields can say anything up to u64::MAX; padding to a block must not overflow.
    for size in [u64::MAX, u64::MAX - 1, u64::MAX - 511, 1 << 63] {
        let mut h = header("big", 0, b'0');
        h[124] = 0x80;
        h[125..128].fill(0);
        h[128..136].copy_from_slice(&size.to_be_bytes());
        let h = fix(h);
        let (_, end) = read(&[&h]);
        assert!(end.is_err(), "size {size}");
        let _ = split(&[&h]);
        let pax = format!("{} size={size}\n", 7 + size.to_string().len() + 2);
        let mut data = header("PaxHeader", pax.len() as u64, b'x').to_vec();
        let mut p = pax.into_bytes();
        p.resize(BLOCK, 0);
        data.extend_from_slice(&p);
        data.extend_from_slice(&header("f", 0, b'0'));
        let (_, end) = read(&[&data]);
        assert!(end.is_err(), "pax size {size}");
    }
}
