//! WAL file names, segment headers and timeline history files on mutated real ones: never a
//! panic, and whatever parses prints back to exactly the text that was parsed (names), or keeps
//! the header's invariants (a valid segment size and block size).

use rand::Rng;
use rand::rngs::StdRng;

use super::mutate::{mutate, run};
use crate::wal::history::History;
use crate::wal::{Lsn, SegmentHeader, TimelineId, WalFileName};

/// Inputs tried per run, per parser.
const CASES: u64 = 30_000;

#[test]
fn fuzz_wal_names() {
    let bases: Vec<Vec<u8>> = [
        "000000010000000A000000FF",
        "000000010000000A000000FF.partial",
        "0000000A.history",
        "000000010000000A000000FF.00000028.backup",
        "00000002000000000000001E",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run(
        "WAL names",
        CASES,
        |len| 8 * len + 4096,
        |rng: &mut StdRng, _| {
            let base = &bases[rng.random_range(0..bases.len())];
            let input = mutate(rng, base, &bases);
            let text = String::from_utf8_lossy(&input);
            let parsed = text.parse::<WalFileName>();
            if let Ok(name) = &parsed {
                assert_eq!(name.to_string(), text, "a name that does not print back as parsed");
                let key = crate::repo::layout::wal(name);
                assert_eq!(crate::repo::layout::wal_name(&key), Some(*name), "key {key}");
            }
            let _ = text.parse::<Lsn>();
            (input.len(), parsed.is_ok())
        },
    );
}

#[test]
fn fuzz_segment_headers_and_history_files() {
    let mut header = vec![0u8; 64];
    header[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    header[2..4].copy_from_slice(&0x0007u16.to_le_bytes());
    header[4..8].copy_from_slice(&1u32.to_le_bytes());
    header[8..16].copy_from_slice(&0x3_0000_0000u64.to_le_bytes());
    header[24..32].copy_from_slice(&7_301_234_567_890_123_456u64.to_le_bytes());
    header[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
    header[36..40].copy_from_slice(&8192u32.to_le_bytes());
    let history =
        b"1\t0/3000000\tno recovery target specified\n\n# comment\n2\t0/5000A28\tat restore point \"x\"\n"
            .to_vec();
    let bases = vec![header, history];
    let tli = TimelineId::new(3).unwrap();
    run(
        "segment headers and history files",
        CASES,
        |len| 8 * len + 4096,
        |rng: &mut StdRng, _| {
            let which = rng.random_range(0..2);
            let input = mutate(rng, &bases[which], &bases);
            let ok = if which == 0 {
                let h = SegmentHeader::parse(&input);
                if let Ok(h) = &h {
                    assert!(h.block_size.is_power_of_two() && (1024..=65536).contains(&h.block_size));
                    assert!(crate::wal::WalSegSize::new(u64::from(h.seg_size.bytes())).is_ok());
                    let _ = h.pg_major();
                }
                h.is_ok()
            } else {
                let text = String::from_utf8_lossy(&input);
                let h = History::parse(tli, &text);
                if let Ok(h) = &h {
                    let _ = (h.begins_at(), h.descends_from(TimelineId::new(1).unwrap(), Lsn(0x3000000)));
                    let _ = h.path_from(TimelineId::new(1).unwrap(), Lsn(0));
                }
                h.is_ok()
            };
            (input.len(), ok)
        },
    );
}
