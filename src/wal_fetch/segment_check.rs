//! The last check before a fetched segment reaches `%p`: its first page must be the segment its
//! name says. An object renamed (or copied) in the repository from another segment's key decodes
//! and verifies, since the trailer covers the bytes and not the name; PostgreSQL would read its
//! unexpected page address as the end of the WAL and end recovery there, silently early.
//! History, backup-label and `.partial` files carry no such header and are not checked here.

use std::io::{Read, Seek, SeekFrom};

use crate::wal::header::SegmentHeader;
use crate::wal::name::SegmentName;

/// Bytes of the long page header [`SegmentHeader::parse`] reads.
const HEAD: usize = 40;

/// Why the file is not the segment `seg`, if it is not.
pub fn mismatch(seg: SegmentName, file: &mut (impl Read + Seek)) -> std::io::Result<Option<String>> {
    file.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(HEAD);
    file.take(HEAD as u64).read_to_end(&mut head)?;
    Ok(why_not(seg, &head))
}

/// [`mismatch`] on the first bytes of the file.
pub fn why_not(seg: SegmentName, head: &[u8]) -> Option<String> {
    let h = match SegmentHeader::parse(head) {
        Ok(h) => h,
        Err(e) => return Some(format!("it is not a WAL segment: {e}")),
    };
    let expected = seg.start_lsn(h.seg_size);
    (h.page_addr != expected)
        .then(|| format!("it holds the segment at {} but its name means {expected}", h.page_addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::name::WalFileName;

    fn header(page_addr: u64, seg_size: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        b[2..4].copy_from_slice(&0x0006u16.to_le_bytes());
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[8..16].copy_from_slice(&page_addr.to_le_bytes());
        b[24..32].copy_from_slice(&7u64.to_le_bytes());
        b[32..36].copy_from_slice(&seg_size.to_le_bytes());
        b[36..40].copy_from_slice(&8192u32.to_le_bytes());
        b
    }

    fn seg(name: &str) -> SegmentName {
        match name.parse::<WalFileName>().unwrap() {
            WalFileName::Segment(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn its_own_segment_passes_and_others_are_named() {
        let s = seg("00000001000000000000001C");
        assert_eq!(why_not(s, &header(0x1C << 20, 1 << 20)), None);
        assert_eq!(why_not(s, &header(0x1C << 24, 16 << 20)), None);
        let other = why_not(s, &header(0x1E << 20, 1 << 20)).unwrap();
        assert!(other.contains("0/1E00000") && other.contains("0/1C00000"), "{other}");
        assert!(why_not(s, b"WVLT not wal").unwrap().contains("not a WAL segment"));
        let mut f = std::io::Cursor::new(header(0x1C << 20, 1 << 20));
        f.seek(SeekFrom::End(0)).unwrap();
        assert_eq!(mismatch(s, &mut f).unwrap(), None);
    }
}
