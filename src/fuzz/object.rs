//! The object decoder on mutated real objects (zstd, lz4 and none; with and without a key;
//! several chunk sizes): never a panic, the same answer in one piece as in random pieces, bytes
//! handed out only when they are the original ones, and memory bounded by the input plus fixed
//! buffers whatever a length field says.

use rand::Rng;
use rand::rngs::StdRng;

use super::mutate::{mutate, pieces, run};
use crate::format::{
    Compression, DEFAULT_CHUNK_SIZE, DecodeError, Decoder, Encoder, HEADER_LEN, MAGIC, Trailer,
};
use crate::keys::{KeyRing, MasterKey};

/// Inputs tried per run (8 s alone, up to 30 s on a loaded machine, in a debug build: a failing sealed chunk costs the decoder
/// 512 trial openings on its error path, to name what happened).
const CASES: u64 = 1000;
/// Fixed buffers a decoder may hold whatever the input: an lz4 block (4 MiB), zstd's context
/// and output piece, and zstd's window (at most 8 MiB, see `compress.rs`), with slack.
const FIXED: usize = 24 << 20;

fn encode(data: &[u8], c: Compression, key: Option<&MasterKey>, chunk: u32) -> Vec<u8> {
    let mut enc = Encoder::new(c, key, chunk, Some(data.len() as u64));
    let mut out = vec![enc.header()];
    enc.update(data, &mut out).unwrap();
    enc.finish(Trailer::of(data), &mut out).unwrap();
    out.iter().flat_map(|b| b.iter().copied()).collect()
}

fn decode(input: &[&[u8]], keys: &KeyRing) -> Result<Vec<u8>, DecodeError> {
    let mut dec = Decoder::new(keys);
    let mut out = Vec::new();
    let mut sink = |b: &[u8]| {
        out.extend_from_slice(b);
        Ok(())
    };
    for p in input {
        dec.update(p, &mut sink)?;
    }
    dec.finish(&mut sink)?;
    Ok(out)
}

/// Text-like data with some noise, so every codec has work.
fn sample(n: usize, salt: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            if i % 5 == 0 {
                ((i + salt).wrapping_mul(2_654_435_761) >> 9) as u8
            } else {
                b'a' + (i % 11) as u8
            }
        })
        .collect()
}

/// Recomputes the header's check bytes, so a mutated header field gets past the check and the
/// decoder meets the field itself.
fn fix_header(v: &mut [u8]) {
    if v.len() >= HEADER_LEN && v[..4] == MAGIC[..] {
        let check = <sha2::Sha256 as sha2::Digest>::digest(&v[..52]);
        v[52..56].copy_from_slice(&check[..4]);
    }
}

#[test]
fn fuzz_object_decoder() {
    let key = MasterKey::from_bytes([7; 32]);
    let keys = KeyRing::new(Some(key.clone()), Vec::new());
    let mut bases: Vec<(Vec<u8>, Vec<u8>, bool)> = Vec::new();
    let codecs = [Compression::None, Compression::Zstd { level: 3 }, Compression::Lz4];
    for (i, (n, chunk)) in
        [(0, 64), (1, 64), (700, 64), (5000, 1024), (20_000, 4096), (3000, DEFAULT_CHUNK_SIZE)]
            .into_iter()
            .enumerate()
    {
        for c in codecs {
            for k in [None, Some(&key)] {
                let data = sample(n, i);
                bases.push((encode(&data, c, k, chunk), data, k.is_some()));
            }
        }
    }
    let objects: Vec<Vec<u8>> = bases.iter().map(|b| b.0.clone()).collect();
    let t = run(
        "object decoder",
        CASES,
        |len| 4 * len + FIXED,
        |rng: &mut StdRng, _| {
            let (obj, data, sealed) = &bases[rng.random_range(0..bases.len())];
            let mut input = mutate(rng, obj, &objects);
            if rng.random_bool(0.5) {
                fix_header(&mut input);
            }
            let whole = decode(&[&input], &keys);
            let split = decode(&pieces(rng, &input), &keys);
            match (&whole, &split) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "split and whole decodes differ"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.to_string(), b.to_string(), "split and whole fail differently")
                }
                _ => panic!("split and whole decodes disagree: {:?} / {:?}", whole.is_ok(), split.is_ok()),
            }
            if let Ok(got) = &whole {
                // Accepted: the original bytes, or the input is another whole valid object.
                if got != data {
                    let other = bases.iter().find(|b| b.0 == input);
                    assert!(
                        other.is_some_and(|o| &o.1 == got),
                        "a changed object decoded to other bytes (sealed: {sealed})"
                    );
                }
            }
            (input.len(), whole.is_ok())
        },
    );
    assert_eq!(t.cases, CASES);
}

#[test]
fn hostile_lengths_in_an_unsealed_object_allocate_little() {
    // Unsealed objects can be rewritten by anyone with write access to the bucket, header check
    // included: lz4 blocks and zstd frames that claim huge sizes must not allocate them.
    let keys = KeyRing::default();
    let data = sample(10_000, 1);
    for c in [Compression::Lz4, Compression::Zstd { level: 3 }] {
        let obj = encode(&data, c, None, 4096);
        let mut variants = Vec::new();
        for at in HEADER_LEN..HEADER_LEN + 16 {
            for x in [0xFFu8, 0x7F, 0x80, 0x3F] {
                let mut v = obj.clone();
                v[at] = x;
                variants.push(v);
            }
        }
        for v in variants {
            let peak = super::alloc::Peak::start();
            let _ = decode(&[&v], &keys);
            assert!(peak.bytes() <= 4 * v.len() + FIXED, "{c}: {} bytes allocated", peak.bytes());
        }
    }
}
