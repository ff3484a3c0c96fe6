//! Blocking stages between local files and encoded objects: reading a file into an encoded
//! object (hashing on a second thread while this one compresses and seals), and decoding an
//! object stream into a file.

use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::format::{Compression, EncodeError, Encoder, Trailer};
use crate::keys::MasterKey;

/// Bytes read from the file at a time.
const READ_BLOCK: usize = 1 << 20;
/// Blocks queued for the hashing thread (bounds memory).
const HASH_QUEUE: usize = 4;

/// An encoded object ready to upload.
#[derive(Debug)]
pub struct Encoded {
    /// The object's bytes in order (header first).
    pub pieces: Vec<Bytes>,
    /// Length and SHA-256 of the original bytes.
    pub trailer: Trailer,
    /// XXH3-128 of the same bytes, where the encoding computed it ([`encode_file`]'s one-shot
    /// path): what a later look at the local file can compare cheaply ([`xxh3_file`]).
    pub xxh3: Option<u128>,
    /// The object's size.
    pub stored: u64,
}

/// Files up to this size are encoded in one shot (mapped whole, compressed in one call); larger
/// ones (`initdb --wal-segsize` allows 1 GiB) are streamed to keep memory bounded.
pub const ONE_SHOT_MAX: u64 = 64 << 20;

/// Encodes a whole file of `len` bytes. Up to [`ONE_SHOT_MAX`] it maps the file and compresses
/// it in one call (faster than feeding a compressor in pieces) while a second thread hashes the
/// same memory and then joins in (`threads` threads in all,
/// [`crate::format::compress_all_beside`]). Larger files are streamed.
pub fn encode_file(
    file: std::fs::File,
    len: u64,
    compression: Compression,
    key: Option<&MasterKey>,
    chunk_size: u32,
    threads: usize,
) -> io::Result<Encoded> {
    if len == 0 || len > ONE_SHOT_MAX {
        return encode_reader(file, compression, key, chunk_size, Some(len));
    }
    // SAFETY: PostgreSQL never changes a WAL file it has handed to archive_command; a file
    // truncated under us would be a bug of someone else's that the length check below reports
    // (or, at worst, ends the process with SIGBUS: nothing is acknowledged then).
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).populate().map(&file)? };
    let input: &[u8] = &map;
    let (compressed, (sha256, xxh3)) =
        crate::format::compress_all_beside(compression, input, threads, || {
            (Sha256::digest(input), twox_hash::XxHash3_128::oneshot(input))
        });
    drop(map);
    let trailer = Trailer { len, sha256: sha256.into() };
    let mut enc = Encoder::for_compressed(compression, key, chunk_size);
    let mut pieces = vec![enc.header()];
    for part in compressed {
        enc.update_owned(part, &mut pieces).map_err(io::Error::other)?;
    }
    let stored = enc.finish(trailer, &mut pieces).map_err(io::Error::other)?;
    Ok(Encoded { pieces, trailer, xxh3: Some(xxh3), stored })
}

/// Reads all of `reader` and encodes it. The SHA-256 is computed on a second thread from the
/// same buffers the encoder compresses, so the trailer always describes the encoded bytes.
pub fn encode_reader(
    reader: impl Read,
    compression: Compression,
    key: Option<&MasterKey>,
    chunk_size: u32,
    size_hint: Option<u64>,
) -> io::Result<Encoded> {
    let mut pieces = Vec::new();
    let (trailer, stored) = encode_reader_into(reader, compression, key, chunk_size, size_hint, |p| {
        pieces.append(p);
        Ok(())
    })?;
    Ok(Encoded { pieces, trailer, xxh3: None, stored })
}

/// Like [`encode_reader`], but hands the object's bytes to `sink` as they are made (header
/// first, then after each block read, the trailer's last), so a caller can upload them while
/// the rest is read: memory stays bounded by what `sink` keeps (it empties the vector it is
/// given; blocking in it holds the reading back). Returns the trailer of the bytes read and
/// the object's size. With `size_hint`, input of any other size is an error.
pub fn encode_reader_into(
    mut reader: impl Read,
    compression: Compression,
    key: Option<&MasterKey>,
    chunk_size: u32,
    size_hint: Option<u64>,
    mut sink: impl FnMut(&mut Vec<Bytes>) -> io::Result<()>,
) -> io::Result<(Trailer, u64)> {
    let mut enc = Encoder::new(compression, key, chunk_size, size_hint);
    let mut pieces = vec![enc.header()];
    let (tx, rx) = mpsc::sync_channel::<Bytes>(HASH_QUEUE);
    let (trailer, read_result) = std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut sha = Sha256::new();
            let mut len = 0u64;
            for block in rx {
                sha.update(&block);
                len += block.len() as u64;
            }
            Trailer { len, sha256: sha.finalize().into() }
        });
        let read_result = (|| -> io::Result<()> {
            // zstd holds the compressor to an announced size (a panic otherwise): a file that
            // is not that size is an error before zstd sees it.
            let wrong_size =
                |read: u64, size: u64| io::Error::other(format!("read {read} bytes, expected {size}"));
            let mut read = 0u64;
            loop {
                let mut buf = BytesMut::zeroed(READ_BLOCK);
                let n = read_full(&mut reader, &mut buf)?;
                read += n as u64;
                match size_hint {
                    Some(size) if read > size || (n == 0 && read != size) => {
                        return Err(wrong_size(read, size));
                    }
                    _ => {}
                }
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                let block = buf.freeze();
                tx.send(block.clone()).map_err(|_| io::Error::other("hashing thread stopped"))?;
                enc.update(&block, &mut pieces).map_err(io::Error::other)?;
                if !pieces.is_empty() {
                    sink(&mut pieces)?;
                }
            }
        })();
        drop(tx);
        (hasher.join().expect("hashing thread panicked"), read_result)
    });
    read_result?;
    let stored = enc.finish(trailer, &mut pieces).map_err(|e: EncodeError| io::Error::other(e))?;
    sink(&mut pieces)?;
    Ok((trailer, stored))
}

/// SHA-256 and length of a file.
pub fn hash_file(path: &Path) -> std::io::Result<Trailer> {
    let mut f = std::fs::File::open(path)?;
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        len += n as u64;
    }
    Ok(Trailer { len, sha256: sha.finalize().into() })
}

/// What an earlier read of a local file saw: its length, SHA-256 (hex) and, where that read
/// computed it, XXH3-128 (hex, [`xxh3_hex`]).
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// Bytes read.
    pub len: u64,
    /// Their SHA-256, hex.
    pub sha256: &'a str,
    /// Their XXH3-128, hex.
    pub xxh3: Option<&'a str>,
}

/// Whether the file at `path` still holds the bytes `earlier` describes, hashing it whole by
/// XXH3-128 where `earlier` has one (a tenth of SHA-256's CPU; a changed bit goes unseen with
/// probability 2^-128), else by SHA-256. `Some(name of the hash)` when it does.
pub fn still_holds(path: &Path, earlier: Recorded<'_>) -> std::io::Result<Option<&'static str>> {
    let same = match earlier.xxh3 {
        Some(x) => xxh3_file(path).map(|(len, h)| len == earlier.len && xxh3_hex(h) == x)?,
        None => hash_file(path).map(|t| t.len == earlier.len && hex::encode(t.sha256) == earlier.sha256)?,
    };
    Ok(same.then_some(if earlier.xxh3.is_some() { "XXH3-128" } else { "SHA-256" }))
}

/// An XXH3-128 as records keep it: 32 lowercase hex digits.
pub fn xxh3_hex(x: u128) -> String {
    format!("{x:032x}")
}

/// Length and XXH3-128 of a file, read through one mapping (no copy out of the page cache).
/// XXH3 is not a cryptographic hash: it is for telling whether a local file still holds the
/// bytes an earlier read of it saw, where whoever could forge a collision could as well rewrite
/// the record it is compared with.
/// Files above [`ONE_SHOT_MAX`] are read in blocks instead, so that memory stays bounded (a
/// mapping of a 1 GiB segment would count whole in the process's RSS).
pub fn xxh3_file(path: &Path) -> std::io::Result<(u64, u128)> {
    xxh3_file_mapping_up_to(path, ONE_SHOT_MAX)
}

fn xxh3_file_mapping_up_to(path: &Path, map_max: u64) -> std::io::Result<(u64, u128)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 || len > map_max {
        let mut h = twox_hash::XxHash3_128::new();
        let mut buf = vec![0u8; READ_BLOCK];
        let mut read = 0u64;
        loop {
            let n = read_full(&mut f, &mut buf)?;
            if n == 0 {
                return Ok((read, h.finish_128()));
            }
            h.write(&buf[..n]);
            read += n as u64;
        }
    }
    let len_usize = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
    // SAFETY: a read-only mapping of a WAL file PostgreSQL has handed to archive_command and
    // never changes; one truncated under us is someone else's bug that ends this process with
    // SIGBUS before anything is confirmed.
    let map = unsafe { memmap2::MmapOptions::new().len(len_usize).populate().map(&f)? };
    Ok((len, twox_hash::XxHash3_128::oneshot(&map)))
}

/// Fills `buf` as far as the reader allows; returns the bytes read (0 at end of input).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Decoder;
    use crate::keys::KeyRing;

    #[test]
    fn encodes_what_it_reads_and_hashes_it() {
        let data: Vec<u8> = (0..(3 * READ_BLOCK + 5)).map(|i| (i % 251) as u8).collect();
        let key = MasterKey::from_bytes([3; 32]);
        let enc = encode_reader(&data[..], Compression::Lz4, Some(&key), 4096, None).unwrap();
        assert_eq!(enc.trailer, Trailer::of(&data));
        assert_eq!(enc.stored, enc.pieces.iter().map(|p| p.len() as u64).sum::<u64>());
        let ring = KeyRing::new(Some(key), vec![]);
        assert_eq!(decode_all(&enc.pieces, &ring), data);
        let empty = encode_reader(&[][..], Compression::Zstd { level: 3 }, None, 4096, None).unwrap();
        assert_eq!(empty.trailer, Trailer::of(&[]));
    }

    #[test]
    fn input_of_another_size_than_announced_is_an_error_not_a_panic() {
        let data = vec![1u8; READ_BLOCK + 10];
        for announced in [0u64, 5, READ_BLOCK as u64 + 9, READ_BLOCK as u64 + 11, 3 << 20] {
            for c in [Compression::Zstd { level: 3 }, Compression::Lz4] {
                let err = encode_reader(&data[..], c, None, 4096, Some(announced)).unwrap_err();
                assert!(err.to_string().contains(&format!("expected {announced}")), "{err}");
            }
        }
        let ok =
            encode_reader(&data[..], Compression::Zstd { level: 3 }, None, 4096, Some(data.len() as u64));
        assert_eq!(ok.unwrap().trailer, Trailer::of(&data));
    }

    fn decode_all(pieces: &[Bytes], ring: &KeyRing) -> Vec<u8> {
        let mut dec = Decoder::new(ring);
        let mut out = Vec::new();
        for p in pieces {
            dec.update(p, &mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        }
        dec.finish(&mut |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn one_shot_and_streamed_files_decode_alike() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::from_bytes([5; 32]);
        let ring = KeyRing::new(Some(key.clone()), vec![]);
        // Sizes around chunk multiples: the last chunk must be cut exactly as the streaming
        // encoder cuts it.
        for len in [1usize, 4095, 4096, 4097, 3 * READ_BLOCK + 5] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 13) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).unwrap();
            for c in [Compression::None, Compression::Lz4, Compression::Zstd { level: 3 }] {
                for threads in [1, 2] {
                    let f = std::fs::File::open(&path).unwrap();
                    let enc = encode_file(f, len as u64, c, Some(&key), 4096, threads).unwrap();
                    assert_eq!(enc.trailer, Trailer::of(&data));
                    assert_eq!(enc.xxh3, Some(twox_hash::XxHash3_128::oneshot(&data)));
                    assert_eq!(enc.stored, enc.pieces.iter().map(|p| p.len() as u64).sum::<u64>());
                    assert!(decode_all(&enc.pieces, &ring) == data, "len {len} {c} threads {threads}");
                }
            }
        }
    }

    #[test]
    fn the_quick_hash_of_a_file_is_that_of_its_bytes_and_sees_one_changed_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let mut data: Vec<u8> = (0..(2 * READ_BLOCK + 3)).map(|i| (i * 31 % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (len, x) = xxh3_file(&path).unwrap();
        assert_eq!((len, x), (data.len() as u64, twox_hash::XxHash3_128::oneshot(&data)));
        // Above the mapping limit the file is read in blocks, to the same hash.
        assert_eq!(xxh3_file_mapping_up_to(&path, 4096).unwrap(), (len, x));
        let f = std::fs::File::open(&path).unwrap();
        let enc = encode_file(f, len, Compression::Zstd { level: 3 }, None, 4096, 2).unwrap();
        assert_eq!(enc.xxh3, Some(x), "the upload records what the confirming call computes");
        let (sha, quick) = (hex::encode(enc.trailer.sha256), xxh3_hex(x));
        let earlier = |xxh3| Recorded { len, sha256: &sha, xxh3 };
        assert_eq!(still_holds(&path, earlier(Some(&quick))).unwrap(), Some("XXH3-128"));
        assert_eq!(still_holds(&path, earlier(None)).unwrap(), Some("SHA-256"));
        // One bit, in place, anywhere: another hash.
        for at in [0, READ_BLOCK + 1, data.len() - 1] {
            data[at] ^= 0x10;
            std::fs::write(&path, &data).unwrap();
            assert_ne!(xxh3_file(&path).unwrap().1, x, "bit at {at}");
            assert_ne!(xxh3_file_mapping_up_to(&path, 4096).unwrap().1, x, "bit at {at}, read in blocks");
            assert_eq!(still_holds(&path, earlier(Some(&quick))).unwrap(), None, "bit at {at}");
            assert_eq!(still_holds(&path, earlier(None)).unwrap(), None, "bit at {at}, SHA-256");
            data[at] ^= 0x10;
        }
        std::fs::write(&path, b"").unwrap();
        assert_eq!(xxh3_file(&path).unwrap(), (0, twox_hash::XxHash3_128::oneshot(&[])));
        // Large files are streamed: no quick hash, the SHA-256 confirms them.
        let big = encode_reader(&data[..], Compression::Lz4, None, 4096, None).unwrap();
        assert_eq!(big.xxh3, None);
    }
}
