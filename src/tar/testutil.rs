//! Test helpers: ustar headers and whole archives with deterministic contents, shared by the
//! tests of the tar splitter, the tar reader, part cutting and extraction.

use super::split::BLOCK;

/// A ustar header for a regular file (or `kind`) of `size` bytes.
pub fn header(name: &str, size: u64, kind: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000600");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// A tar archive of files `(name, size, kind)` with deterministic contents.
pub fn archive(files: &[(&str, u64, u8)], end: bool) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut boundaries = vec![0];
    for (i, (name, size, kind)) in files.iter().enumerate() {
        out.extend_from_slice(&header(name, *size, *kind));
        out.extend((0..*size).map(|j| (i as u64 * 7 + j) as u8));
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        if !matches!(kind, b'x' | b'L') {
            boundaries.push(out.len());
        }
    }
    if end {
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
    }
    (out, boundaries)
}
