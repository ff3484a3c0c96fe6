//! WAL positions: `Lsn` (printed `X/X` as PostgreSQL does), `TimelineId`, `WalSegSize`, and the
//! arithmetic between an LSN and the segment that holds it.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use thiserror::Error;

/// A position in the write-ahead log (PostgreSQL's `XLogRecPtr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// A timeline identifier (PostgreSQL's `TimeLineID`); never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimelineId(u32);

/// A WAL segment size: a power of two from 1 MiB to 1 GiB (`initdb --wal-segsize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalSegSize(u32);

/// Why a position, timeline or segment size could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LsnError {
    /// The text is not of the form `X/X` with hexadecimal halves.
    #[error("`{0}` is not an LSN (expected two hexadecimal numbers like 0/16B3748)")]
    BadLsn(String),
    /// Timeline zero does not exist.
    #[error("timeline 0 is not valid")]
    ZeroTimeline,
    /// The segment size is not a power of two between 1 MiB and 1 GiB.
    #[error("WAL segment size {0} is not a power of two between 1 MiB and 1 GiB")]
    BadSegSize(u64),
}

impl Lsn {
    /// The number of the segment that holds this position.
    pub fn segment_no(self, seg: WalSegSize) -> u64 {
        self.0 / u64::from(seg.bytes())
    }

    /// The offset of this position inside its segment.
    pub fn segment_offset(self, seg: WalSegSize) -> u64 {
        self.0 % u64::from(seg.bytes())
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = LsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || LsnError::BadLsn(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let valid = |p: &str| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid(hi) || !valid(lo) {
            return Err(bad());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn(hi << 32 | lo))
    }
}

impl TimelineId {
    /// A timeline id; zero is refused.
    pub fn new(id: u32) -> Result<Self, LsnError> {
        if id == 0 { Err(LsnError::ZeroTimeline) } else { Ok(TimelineId(id)) }
    }

    /// The number itself.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// In JSON an LSN is its `X/X` text, as PostgreSQL prints it.
impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// In JSON a timeline is its number; zero is refused.
impl serde::Serialize for TimelineId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for TimelineId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TimelineId::new(u32::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl WalSegSize {
    /// PostgreSQL's default, 16 MiB.
    pub const DEFAULT: WalSegSize = WalSegSize(16 * 1024 * 1024);

    /// A segment size in bytes, checked to be a power of two in 1 MiB ..= 1 GiB.
    pub fn new(bytes: u64) -> Result<Self, LsnError> {
        if bytes.is_power_of_two() && (1 << 20..=1 << 30).contains(&bytes) {
            Ok(WalSegSize(bytes as u32))
        } else {
            Err(LsnError::BadSegSize(bytes))
        }
    }

    /// The size in bytes.
    pub fn bytes(self) -> u32 {
        self.0
    }

    /// How many segments make one 4 GiB "log" (the middle 8 hex digits of a segment name).
    pub fn segments_per_log(self) -> u64 {
        0x1_0000_0000 / u64::from(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        assert_eq!(serde_json::to_string(&Lsn(0x1_0000_0028)).unwrap(), "\"1/28\"");
        assert_eq!(serde_json::from_str::<Lsn>("\"1/28\"").unwrap(), Lsn(0x1_0000_0028));
        assert!(serde_json::from_str::<Lsn>("\"1-28\"").is_err());
        assert_eq!(serde_json::to_string(&TimelineId::new(3).unwrap()).unwrap(), "3");
        assert_eq!(serde_json::from_str::<TimelineId>("3").unwrap().get(), 3);
        assert!(serde_json::from_str::<TimelineId>("0").is_err());
    }
    use proptest::prelude::*;

    #[test]
    fn lsn_parses_and_prints_like_postgres() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        for bad in ["", "/", "1/", "/1", "x/1", "1/2/3", "123456789/0", "-1/0", "1 /0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn segment_arithmetic() {
        let seg = WalSegSize::DEFAULT;
        let lsn: Lsn = "2/3A000028".parse().unwrap();
        assert_eq!(lsn.segment_no(seg), 0x2_3A);
        assert_eq!(lsn.segment_offset(seg), 0x28);
        assert_eq!(seg.segments_per_log(), 256);
        assert!(WalSegSize::new(3 << 20).is_err());
        assert!(WalSegSize::new(1 << 19).is_err());
        assert!(WalSegSize::new(1 << 31).is_err());
        assert_eq!(WalSegSize::new(1 << 30).unwrap().segments_per_log(), 4);
        assert!(TimelineId::new(0).is_err());
    }

    proptest! {
        #[test]
        fn lsn_round_trips(v in any::<u64>()) {
            let lsn = Lsn(v);
            prop_assert_eq!(lsn.to_string().parse::<Lsn>().unwrap(), lsn);
        }

        #[test]
        fn lsn_parse_never_panics(s in "\\PC*") {
            let _ = s.parse::<Lsn>();
        }
    }
}
