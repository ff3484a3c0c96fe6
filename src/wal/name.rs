//! The names PostgreSQL gives WAL files (segments, `.partial` segments, timeline histories, backup
//! history labels), parsed into a typed enum that prints back to the same text.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::wal::lsn::{Lsn, TimelineId, WalSegSize};

/// A segment's identity: timeline plus the "log" and "segment" halves of its name
/// (`TTTTTTTTLLLLLLLLSSSSSSSS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// The timeline the segment belongs to.
    pub timeline: TimelineId,
    /// The high 32 bits of the segment's start position.
    pub log: u32,
    /// The segment's index inside its 4 GiB log.
    pub seg: u32,
}

/// Any file name PostgreSQL hands to `archive_command` or asks of `restore_command`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalFileName {
    /// A complete segment, `000000010000000A000000FF`.
    Segment(SegmentName),
    /// The last, incomplete segment of an old timeline after promotion, `…FF.partial`.
    Partial(SegmentName),
    /// A timeline history file, `00000002.history`.
    History(TimelineId),
    /// A backup history label, `000000010000000A000000FF.00000028.backup`.
    BackupLabel {
        /// The segment the backup started in.
        segment: SegmentName,
        /// The backup's start offset inside that segment.
        offset: u32,
    },
}

/// Why a name is not a WAL file name.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a WAL file name (expected a 24-hex-digit segment, a .partial segment, \
     a TTTTTTTT.history file or a .backup label)"
)]
pub struct NameError(pub String);

fn hex8(s: &str) -> Option<u32> {
    // PostgreSQL writes upper-case hex only (see IsXLogFileName); so do we.
    if s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

impl SegmentName {
    /// The segment with number `segno` (position / segment size) on `timeline`.
    pub fn from_segno(timeline: TimelineId, segno: u64, seg_size: WalSegSize) -> Self {
        let per_log = seg_size.segments_per_log();
        SegmentName { timeline, log: (segno / per_log) as u32, seg: (segno % per_log) as u32 }
    }

    /// The segment that holds `lsn` on `timeline`.
    pub fn containing(timeline: TimelineId, lsn: Lsn, seg_size: WalSegSize) -> Self {
        Self::from_segno(timeline, lsn.segment_no(seg_size), seg_size)
    }

    /// This segment's number (start position / segment size).
    pub fn segno(self, seg_size: WalSegSize) -> u64 {
        u64::from(self.log) * seg_size.segments_per_log() + u64::from(self.seg)
    }

    /// The position of the segment's first byte.
    pub fn start_lsn(self, seg_size: WalSegSize) -> Lsn {
        Lsn(self.segno(seg_size) * u64::from(seg_size.bytes()))
    }

    /// The following segment on the same timeline.
    pub fn next(self, seg_size: WalSegSize) -> Self {
        Self::from_segno(self.timeline, self.segno(seg_size) + 1, seg_size)
    }

    /// Whether the name is possible for this segment size (the segment half must be below
    /// the number of segments per 4 GiB).
    pub fn fits(self, seg_size: WalSegSize) -> bool {
        u64::from(self.seg) < seg_size.segments_per_log()
    }

    fn parse(s: &str) -> Option<Self> {
        if s.len() != 24 || !s.is_ascii() {
            return None;
        }
        let timeline = TimelineId::new(hex8(&s[0..8])?).ok()?;
        Some(SegmentName { timeline, log: hex8(&s[8..16])?, seg: hex8(&s[16..24])? })
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline.get(), self.log, self.seg)
    }
}

impl WalFileName {
    /// The timeline the file belongs to.
    pub fn timeline(self) -> TimelineId {
        match self {
            WalFileName::Segment(s) | WalFileName::Partial(s) => s.timeline,
            WalFileName::BackupLabel { segment, .. } => segment.timeline,
            WalFileName::History(t) => t,
        }
    }

    /// The segment this file is, or belongs beside; `None` for history files.
    pub fn segment(self) -> Option<SegmentName> {
        match self {
            WalFileName::Segment(s) | WalFileName::Partial(s) => Some(s),
            WalFileName::BackupLabel { segment, .. } => Some(segment),
            WalFileName::History(_) => None,
        }
    }

    /// Whether the file is WAL data with a long page header (a segment or a `.partial`).
    pub fn has_segment_header(self) -> bool {
        matches!(self, WalFileName::Segment(_) | WalFileName::Partial(_))
    }
}

impl FromStr for WalFileName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NameError(s.to_string());
        if let Some(base) = s.strip_suffix(".partial") {
            return SegmentName::parse(base).map(WalFileName::Partial).ok_or_else(bad);
        }
        if let Some(base) = s.strip_suffix(".history") {
            let tli = hex8(base).and_then(|t| TimelineId::new(t).ok()).ok_or_else(bad)?;
            return Ok(WalFileName::History(tli));
        }
        if let Some(base) = s.strip_suffix(".backup") {
            let (seg, off) = base.split_once('.').ok_or_else(bad)?;
            let segment = SegmentName::parse(seg).ok_or_else(bad)?;
            let offset = hex8(off).ok_or_else(bad)?;
            return Ok(WalFileName::BackupLabel { segment, offset });
        }
        SegmentName::parse(s).map(WalFileName::Segment).ok_or_else(bad)
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalFileName::Segment(s) => write!(f, "{s}"),
            WalFileName::Partial(s) => write!(f, "{s}.partial"),
            WalFileName::History(t) => write!(f, "{:08X}.history", t.get()),
            WalFileName::BackupLabel { segment, offset } => {
                write!(f, "{segment}.{offset:08X}.backup")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_kind() {
        let seg: WalFileName = "000000010000000A000000FF".parse().unwrap();
        let s = seg.segment().unwrap();
        assert_eq!((s.timeline.get(), s.log, s.seg), (1, 0xA, 0xFF));
        assert!(matches!("000000010000000A000000FF.partial".parse(), Ok(WalFileName::Partial(_))));
        assert!(matches!("0000000A.history".parse(), Ok(WalFileName::History(t)) if t.get() == 10));
        assert_eq!(
            "000000010000000A000000FF.00000028.backup".parse::<WalFileName>().unwrap(),
            WalFileName::BackupLabel { segment: s, offset: 0x28 }
        );
    }

    #[test]
    fn refuses_what_postgres_never_writes() {
        for bad in [
            "",
            "RECOVERYXLOG",
            "000000010000000A000000F",
            "000000010000000A000000FFF",
            "000000010000000a000000ff",
            "00000000000000010000000A",
            "00000000.history",
            "000000010000000A000000FF.backup",
            "000000010000000A000000FF.0000028.backup",
            "000000010000000A000000FF.tmp",
            "../000000010000000A000000FF",
            "000000010000000A000000FF.partial.partial",
        ] {
            assert!(bad.parse::<WalFileName>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn segment_numbers() {
        let seg = WalSegSize::DEFAULT;
        let tli = TimelineId::new(1).unwrap();
        let s = SegmentName::containing(tli, "A/FF000028".parse().unwrap(), seg);
        assert_eq!(s.to_string(), "000000010000000A000000FF");
        assert_eq!(s.next(seg).to_string(), "000000010000000B00000000");
        assert_eq!(s.start_lsn(seg).to_string(), "A/FF000000");
        let big = WalSegSize::new(1 << 30).unwrap();
        assert!(!s.fits(big));
        assert_eq!(SegmentName::from_segno(tli, 5, big).to_string(), "000000010000000100000001");
    }

    proptest! {
        #[test]
        fn names_round_trip(tli in 1u32.., log in any::<u32>(), seg in any::<u32>(), off in any::<u32>(), kind in 0..4u8) {
            let s = SegmentName { timeline: TimelineId::new(tli).unwrap(), log, seg };
            let name = match kind {
                0 => WalFileName::Segment(s),
                1 => WalFileName::Partial(s),
                2 => WalFileName::History(s.timeline),
                _ => WalFileName::BackupLabel { segment: s, offset: off },
            };
            prop_assert_eq!(name.to_string().parse::<WalFileName>().unwrap(), name);
        }

        #[test]
        fn segno_round_trips(segno in any::<u64>(), shift in 20u32..=30) {
            let segno = segno >> shift;
            let size = WalSegSize::new(1 << shift).unwrap();
            let tli = TimelineId::new(3).unwrap();
            let s = SegmentName::from_segno(tli, segno, size);
            prop_assert_eq!(s.segno(size), segno);
            prop_assert!(s.fits(size));
            prop_assert_eq!(SegmentName::containing(tli, s.start_lsn(size), size), s);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<WalFileName>();
        }
    }
}
