//! The long page header at the start of every WAL segment (PostgreSQL's
//! `XLogLongPageHeaderData`): magic, system identifier, segment and block size.

use thiserror::Error;

use crate::wal::lsn::{Lsn, WalSegSize};

/// Bytes of a long page header (PostgreSQL's `SizeOfXLogLongPHD`).
pub const LONG_HEADER_LEN: usize = 40;

const XLP_LONG_HEADER: u16 = 0x0002;

/// What the first page of a segment says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `xlp_magic`: changes with every PostgreSQL major version that changes the WAL format.
    pub magic: u16,
    /// `xlp_tli`: the timeline the first page was written on.
    pub timeline: u32,
    /// `xlp_pageaddr`: the position of the segment's first byte.
    pub page_addr: Lsn,
    /// `xlp_sysid`: the cluster's system identifier (from `pg_control`).
    pub system_id: u64,
    /// `xlp_seg_size`.
    pub seg_size: WalSegSize,
    /// `xlp_xlog_blcksz`: the WAL page size.
    pub block_size: u32,
}

/// Why the bytes are not the start of a WAL segment.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a long page header.
    #[error("it is {0} bytes long, too short for a WAL segment")]
    TooShort(usize),
    /// The magic number is not one PostgreSQL uses.
    #[error("its first page has magic 0x{0:04X}, which is not a PostgreSQL WAL page")]
    BadMagic(u16),
    /// The first page is not flagged as a long header.
    #[error("its first page has no long header (xlp_info 0x{0:04X})")]
    NotLongHeader(u16),
    /// The segment size in the header is impossible.
    #[error("its header gives an impossible segment size {0}")]
    BadSegSize(u32),
    /// The block size in the header is impossible.
    #[error("its header gives an impossible WAL block size {0}")]
    BadBlockSize(u32),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl SegmentHeader {
    /// Parses the first bytes of a segment (at least [`LONG_HEADER_LEN`] of them).
    pub fn parse(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < LONG_HEADER_LEN {
            return Err(HeaderError::TooShort(b.len()));
        }
        let magic = u16_at(b, 0);
        // Every WAL format since PostgreSQL 9.0 has used 0xD0xx or 0xD1xx; newer versions keep
        // counting up, so accept the range rather than a fixed list.
        if magic >> 9 != 0xD0 >> 1 {
            return Err(HeaderError::BadMagic(magic));
        }
        let info = u16_at(b, 2);
        if info & XLP_LONG_HEADER == 0 {
            return Err(HeaderError::NotLongHeader(info));
        }
        let raw_seg = u32_at(b, 32);
        let seg_size = WalSegSize::new(u64::from(raw_seg)).map_err(|_| HeaderError::BadSegSize(raw_seg))?;
        let block_size = u32_at(b, 36);
        if !block_size.is_power_of_two() || !(1024..=65536).contains(&block_size) {
            return Err(HeaderError::BadBlockSize(block_size));
        }
        Ok(SegmentHeader {
            magic,
            timeline: u32_at(b, 4),
            page_addr: Lsn(u64_at(b, 8)),
            system_id: u64_at(b, 24),
            seg_size,
            block_size,
        })
    }

    /// The PostgreSQL major version that writes this magic, when it is one we know.
    pub fn pg_major(&self) -> Option<u32> {
        Some(match self.magic {
            0xD106 => 13,
            0xD10D => 14,
            0xD110 => 15,
            0xD113 => 16,
            0xD116 => 17,
            0xD118 => 18,
            _ => return None,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic segment start with the given identity (for tests across the crate).
    pub(crate) fn fake_header(system_id: u64, page_addr: u64, seg_size: u32) -> Vec<u8> {
        let mut b = vec![0u8; LONG_HEADER_LEN];
        b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        b[2..4].copy_from_slice(&0x0007u16.to_le_bytes());
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[8..16].copy_from_slice(&page_addr.to_le_bytes());
        b[24..32].copy_from_slice(&system_id.to_le_bytes());
        b[32..36].copy_from_slice(&seg_size.to_le_bytes());
        b[36..40].copy_from_slice(&8192u32.to_le_bytes());
        b
    }

    #[test]
    fn parses_a_header() {
        let h =
            SegmentHeader::parse(&fake_header(7_301_234_567_890_123_456, 0x3_0000_0000, 16 << 20)).unwrap();
        assert_eq!(h.system_id, 7_301_234_567_890_123_456);
        assert_eq!(h.page_addr.to_string(), "3/0");
        assert_eq!(h.seg_size, WalSegSize::DEFAULT);
        assert_eq!(h.block_size, 8192);
        assert_eq!(h.pg_major(), Some(15));
    }

    #[test]
    fn refuses_non_wal() {
        assert_eq!(SegmentHeader::parse(&[0; 10]), Err(HeaderError::TooShort(10)));
        assert!(matches!(SegmentHeader::parse(&[0; 64]), Err(HeaderError::BadMagic(0))));
        let mut b = fake_header(1, 0, 16 << 20);
        b[2] = 0;
        assert!(matches!(SegmentHeader::parse(&b), Err(HeaderError::NotLongHeader(_))));
        let b = fake_header(1, 0, 3 << 20);
        assert!(matches!(SegmentHeader::parse(&b), Err(HeaderError::BadSegSize(_))));
        let mut b = fake_header(1, 0, 16 << 20);
        b[36..40].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(SegmentHeader::parse(&b), Err(HeaderError::BadBlockSize(1000))));
        let text = b"This is certainly not a WAL segment, just some text....".to_vec();
        assert!(SegmentHeader::parse(&text).is_err());
    }
}
