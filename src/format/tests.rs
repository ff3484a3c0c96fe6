//! Round trips at every split point and tamper tests for the object format.

use bytes::Bytes;

use super::*;
use crate::keys::{KeyRing, MasterKey};

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes([b; 32])
}

fn ring(keys: &[u8]) -> KeyRing {
    let mut it = keys.iter().map(|&b| key(b));
    KeyRing::new(it.next(), it.collect())
}

/// Encodes `data` fed in pieces of `piece` bytes into one contiguous object.
fn encode(data: &[u8], c: Compression, k: Option<&MasterKey>, chunk: u32, piece: usize) -> Vec<u8> {
    let mut enc = Encoder::new(c, k, chunk, Some(data.len() as u64));
    let mut out = vec![enc.header()];
    for p in data.chunks(piece.max(1)) {
        enc.update(p, &mut out).unwrap();
    }
    let total = enc.finish(Trailer::of(data), &mut out).unwrap();
    let obj: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(total, obj.len() as u64);
    obj
}

/// Decodes `obj` fed as the given pieces.
fn decode_pieces<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    keys: &KeyRing,
) -> Result<Vec<u8>, DecodeError> {
    let mut dec = Decoder::new(keys);
    let mut out = Vec::new();
    for p in pieces {
        dec.update(p, &mut |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        })?;
    }
    let trailer = dec.finish(&mut |b: &[u8]| {
        out.extend_from_slice(b);
        Ok(())
    })?;
    assert_eq!(trailer.len, out.len() as u64);
    Ok(out)
}

fn decode(obj: &[u8], keys: &KeyRing) -> Result<Vec<u8>, DecodeError> {
    decode_pieces([obj], keys)
}

fn sample(n: usize) -> Vec<u8> {
    // Part text-like, part noise, so every codec has real work.
    (0..n)
        .map(|i| if i % 3 == 0 { (i.wrapping_mul(2_654_435_761) >> 7) as u8 } else { b'a' + (i % 7) as u8 })
        .collect()
}

const CODECS: [Compression; 3] = [Compression::None, Compression::Zstd { level: 3 }, Compression::Lz4];

#[test]
fn round_trips_at_chunk_edges() {
    let chunk = 64u32;
    let k = key(1);
    let keys = ring(&[1]);
    let c = chunk as usize;
    // With no compression the chunk edges fall exactly where the input sizes say.
    for n in
        [0, 1, c - 1, c, c + 1, 2 * c - 1, 2 * c, 2 * c + 1, c - TRAILER_LEN, c - TRAILER_LEN + 1, 10 * c + 3]
    {
        let data = sample(n);
        for comp in CODECS {
            for k in [None, Some(&k)] {
                let obj = encode(&data, comp, k, chunk, 7);
                assert_eq!(decode(&obj, &keys).unwrap(), data, "n={n} {comp} key={}", k.is_some());
            }
        }
    }
}

#[test]
fn decodes_at_every_split_point() {
    let data = sample(1000);
    let keys = ring(&[1]);
    for comp in CODECS {
        for k in [None, Some(key(1))] {
            let obj = encode(&data, comp, k.as_ref(), 100, 13);
            for split in 0..=obj.len() {
                let got = decode_pieces([&obj[..split], &obj[split..]], &keys).unwrap();
                assert_eq!(got, data, "split {split} {comp}");
            }
            let bytewise = decode_pieces(obj.chunks(1), &keys).unwrap();
            assert_eq!(bytewise, data);
        }
    }
}

#[test]
fn default_chunk_size_round_trips_large_input() {
    let data = sample(3 * DEFAULT_CHUNK_SIZE as usize + 12345);
    let keys = ring(&[9]);
    for comp in CODECS {
        let obj = encode(&data, comp, Some(&key(9)), DEFAULT_CHUNK_SIZE, 1 << 20);
        assert_eq!(decode_pieces(obj.chunks(65536), &keys).unwrap(), data);
    }
}

#[test]
fn encoder_refuses_a_trailer_for_other_bytes() {
    let mut enc = Encoder::new(Compression::None, None, 64, None);
    let mut out = Vec::new();
    enc.update(b"hello", &mut out).unwrap();
    assert!(matches!(enc.finish(Trailer::of(b"hello!"), &mut out), Err(EncodeError::LengthMismatch { .. })));
}

#[test]
fn every_flipped_byte_is_caught() {
    // Sealed objects: any change fails. Unsealed objects: a change either fails or is one the
    // codec ignores (a zstd frame-header bit that does not alter the output); wrong bytes are
    // never handed out, because the trailer's SHA-256 is checked.
    let data = sample(500);
    let keys = ring(&[1]);
    for comp in CODECS {
        for k in [None, Some(key(1))] {
            let obj = encode(&data, comp, k.as_ref(), 64, 500);
            for i in 0..obj.len() {
                for bit in [0x01, 0x80] {
                    let mut bad = obj.clone();
                    bad[i] ^= bit;
                    match decode(&bad, &keys) {
                        Err(_) => {}
                        Ok(got) => {
                            assert!(k.is_none(), "flip at {i} of a sealed object went unnoticed ({comp})");
                            assert_eq!(got, data, "flip at {i} gave wrong bytes ({comp})");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn flipped_byte_in_a_sealed_chunk_names_the_chunk() {
    let obj = encode(&sample(1000), Compression::None, Some(&key(1)), 64, 1000);
    let mut bad = obj.clone();
    bad[HEADER_LEN + (64 + TAG_LEN) * 2 + 5] ^= 1;
    let err = decode(&bad, &ring(&[1])).unwrap_err();
    assert!(matches!(err, DecodeError::CorruptChunk(2)), "{err}");
    let mut bad = obj.clone();
    bad[3] ^= 1;
    assert!(matches!(decode(&bad, &ring(&[1])), Err(DecodeError::NotAnObject)));
    let mut bad = obj;
    bad[30] ^= 1;
    assert!(matches!(decode(&bad, &ring(&[1])), Err(DecodeError::CorruptHeader(_))));
}

#[test]
fn truncation_is_caught() {
    let keys = ring(&[1]);
    let obj = encode(&sample(1000), Compression::None, Some(&key(1)), 64, 1000);
    let step = 64 + TAG_LEN;
    // Cut at a chunk boundary: what remains ends with a chunk sealed as not-last.
    let err = decode(&obj[..HEADER_LEN + 3 * step], &keys).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated), "{err}");
    // Cut inside the final chunk.
    let err = decode(&obj[..obj.len() - 1], &keys).unwrap_err();
    assert!(matches!(err, DecodeError::CorruptFinalChunk(_)), "{err}");
    // Only a header, or less.
    assert!(matches!(decode(&obj[..HEADER_LEN], &keys), Err(DecodeError::Truncated)));
    assert!(matches!(decode(&obj[..10], &keys), Err(DecodeError::Truncated)));
    assert!(matches!(decode(&[], &keys), Err(DecodeError::Truncated)));
    // Without a key the trailer check catches it.
    for comp in CODECS {
        let obj = encode(&sample(1000), comp, None, 64, 1000);
        for cut in [1, 41, 200] {
            assert!(decode(&obj[..obj.len() - cut], &keys).is_err(), "{comp} cut {cut}");
        }
    }
}

#[test]
fn appended_data_is_caught() {
    let keys = ring(&[1]);
    let mut obj = encode(&sample(1000), Compression::None, Some(&key(1)), 64, 1000);
    obj.extend_from_slice(&[0u8; 200]);
    let err = decode(&obj, &keys).unwrap_err();
    assert!(matches!(err, DecodeError::TrailingData | DecodeError::CorruptChunk(_)), "{err}");
    // Appended right after a final chunk of full size, the extra bytes are named as such.
    let data = sample(64 * 3 - TRAILER_LEN);
    let mut obj = encode(&data, Compression::None, Some(&key(1)), 64, 1000);
    obj.extend_from_slice(&[0u8; 200]);
    let err = decode(&obj, &keys).unwrap_err();
    assert!(matches!(err, DecodeError::TrailingData), "{err}");
}

#[test]
fn swapped_chunks_are_caught() {
    let keys = ring(&[1]);
    let obj = encode(&sample(1000), Compression::None, Some(&key(1)), 64, 1000);
    let step = 64 + TAG_LEN;
    let mut bad = obj.clone();
    let (a, b) = (HEADER_LEN + step, HEADER_LEN + 3 * step);
    let chunk1 = obj[a..a + step].to_vec();
    bad[a..a + step].copy_from_slice(&obj[b..b + step]);
    bad[b..b + step].copy_from_slice(&chunk1);
    let err = decode(&bad, &keys).unwrap_err();
    assert!(matches!(err, DecodeError::ReorderedChunk { index: 1, found: 3 }), "{err}");
}

#[test]
fn chunk_spliced_from_another_object_is_caught() {
    let keys = ring(&[1]);
    let data = sample(1000);
    let a = encode(&data, Compression::None, Some(&key(1)), 64, 1000);
    let b = encode(&data, Compression::None, Some(&key(1)), 64, 1000);
    let mut bad = a.clone();
    let at = HEADER_LEN + 64 + TAG_LEN;
    bad[at..at + 80].copy_from_slice(&b[at..at + 80]);
    assert!(matches!(decode(&bad, &keys), Err(DecodeError::CorruptChunk(1))));
}

#[test]
fn wrong_and_missing_keys_are_named() {
    let obj = encode(&sample(100), Compression::Zstd { level: 3 }, Some(&key(1)), 64, 100);
    let err = decode(&obj, &ring(&[2, 3])).unwrap_err();
    match &err {
        DecodeError::WrongKey { object, configured } => {
            assert_eq!(*object, key(1).id());
            assert!(
                configured.contains(&key(2).id().to_string())
                    && configured.contains(&key(3).id().to_string())
            );
        }
        other => panic!("expected WrongKey, got {other}"),
    }
    assert!(err.to_string().contains(&key(1).id().to_string()));
    let err = decode(&obj, &KeyRing::default()).unwrap_err();
    assert!(matches!(err, DecodeError::MissingKey(id) if id == key(1).id()), "{err}");
    // An older key kept for reading opens it (key rotation).
    assert_eq!(decode(&obj, &ring(&[2, 1])).unwrap(), sample(100));
    // Unencrypted objects open whatever keys are configured.
    let plain = encode(&sample(100), Compression::Lz4, None, 64, 100);
    assert_eq!(decode(&plain, &ring(&[2])).unwrap(), sample(100));
}

#[test]
fn objects_differ_on_every_write() {
    let data = sample(300);
    let a = encode(&data, Compression::None, Some(&key(1)), 64, 300);
    let b = encode(&data, Compression::None, Some(&key(1)), 64, 300);
    assert_ne!(a, b);
    assert!(!a.windows(32).any(|w| w == &data[..32]), "plaintext visible in the sealed object");
}

#[test]
fn memory_stays_bounded_whatever_the_input_size() {
    // 256 MiB through encoder and decoder in 1 MiB pieces; neither may hold more than about a
    // chunk plus one piece's output.
    let keys = ring(&[1]);
    let piece = Bytes::from(sample(1 << 20));
    let bound = DEFAULT_CHUNK_SIZE as usize + (2 << 20);
    for comp in [Compression::Lz4, Compression::Zstd { level: 1 }] {
        let mut enc = Encoder::new(comp, Some(&key(1)), DEFAULT_CHUNK_SIZE, None);
        let mut dec = Decoder::new(&keys);
        let mut total = 0u64;
        let mut sha = <sha2::Sha256 as sha2::Digest>::new();
        let mut out = vec![enc.header()];
        let mut decoded = 0u64;
        let mut sink = |b: &[u8]| {
            decoded += b.len() as u64;
            Ok(())
        };
        for _ in 0..256 {
            enc.update(&piece, &mut out).unwrap();
            sha2::Digest::update(&mut sha, &piece);
            total += piece.len() as u64;
            assert!(enc.buffered() <= bound);
            for o in out.drain(..) {
                dec.update(&o, &mut sink).unwrap();
                assert!(dec.buffered() <= bound);
            }
        }
        let trailer = Trailer { len: total, sha256: sha2::Digest::finalize(sha).into() };
        enc.finish(trailer, &mut out).unwrap();
        for o in out.drain(..) {
            dec.update(&o, &mut sink).unwrap();
        }
        assert_eq!(dec.finish(&mut sink).unwrap(), trailer);
        assert_eq!(decoded, total);
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_bytes_any_split_round_trip(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            chunk in 1u32..300,
            piece in 1usize..500,
            split in 1usize..700,
            comp in 0u8..3,
            with_key in any::<bool>(),
        ) {
            let comp = CODECS[comp as usize];
            let k = key(4);
            let obj = encode(&data, comp, with_key.then_some(&k), chunk, piece);
            prop_assert_eq!(decode_pieces(obj.chunks(split), &ring(&[4])).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&data, &ring(&[4]));
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&data);
            let _ = decode(&with_magic, &ring(&[4]));
        }
    }
}

/// Objects written before the cipher moved from RustCrypto's `aes-gcm` to AWS-LC (commit
/// 1aa3e76, by `encode(&sample(10_000), c, Some(&key(42)), 1024, 777)`) still decode, byte for
/// byte, and only with their key.
#[test]
fn objects_written_by_the_earlier_cipher_still_decode() {
    let objects: [(&str, &[u8]); 3] = [
        ("none", include_bytes!("testdata/1aa3e76-none-key.obj")),
        ("zstd", include_bytes!("testdata/1aa3e76-zstd-key.obj")),
        ("lz4", include_bytes!("testdata/1aa3e76-lz4-key.obj")),
    ];
    let data = sample(10_000);
    for (name, obj) in objects {
        assert_eq!(decode(obj, &ring(&[42])).unwrap_or_else(|e| panic!("{name}: {e}")), data, "{name}");
        assert!(decode(obj, &ring(&[43])).is_err(), "{name} opened with another key");
    }
}

/// An object of `compressed` handed to the encoder in pieces cut at `cuts`.
fn encode_compressed(
    c: Compression,
    k: Option<&MasterKey>,
    chunk: u32,
    compressed: &[u8],
    cuts: &[usize],
    raw: &[u8],
) -> Vec<Bytes> {
    let mut enc = Encoder::for_compressed(c, k, chunk);
    let mut out = vec![enc.header()];
    let mut at = 0;
    for &cut in cuts.iter().chain([&compressed.len()]) {
        enc.update_owned(bytes::BytesMut::from(&compressed[at..cut]), &mut out).unwrap();
        at = cut;
    }
    enc.finish(Trailer::of(raw), &mut out).unwrap();
    out
}

#[test]
fn a_compressed_stream_in_pieces_makes_the_same_chunks_as_in_one() {
    let raw = sample(3 << 20);
    let c = Compression::Zstd { level: 3 };
    let compressed = compress_all(c, &raw, 1);
    let chunk = 16 * 1024;
    let whole = encode_compressed(c, None, chunk, &compressed, &[], &raw);
    let n = compressed.len();
    let c64 = chunk as usize;
    assert!(n > 4 * c64);
    // Cuts inside a chunk, on a chunk's edge, one byte either side, and empty pieces.
    for cuts in [vec![1], vec![c64], vec![c64 - 1, c64 + 1], vec![10, 10, 3 * c64 + 7, n - 1], vec![n / 2]] {
        let pieces = encode_compressed(c, None, chunk, &compressed, &cuts, &raw);
        let lens = |v: &[Bytes]| v.iter().map(|b| b.len()).collect::<Vec<_>>();
        assert_eq!(lens(&pieces), lens(&whole), "cuts {cuts:?}");
        // The header (piece 0) differs from object to object; every chunk after it is the same.
        assert!(pieces[1..] == whole[1..], "cuts {cuts:?}: other chunks");
        let sealed = encode_compressed(c, Some(&key(5)), chunk, &compressed, &cuts, &raw);
        let obj: Vec<u8> = sealed.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(decode(&obj, &ring(&[5])).unwrap(), raw, "cuts {cuts:?}");
    }
}
