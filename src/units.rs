//! Units, parsed and printed once: sizes (`1GiB`, PostgreSQL's `16MB`), durations (`30s`),
//! byte counts for people (`1.5 GiB`), and UTC times as the repository stores them
//! (RFC 3339 to the second, `2026-11-23T10:45:01Z`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds; the error says what is
/// expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (write e.g. 30s, 500ms, 2m)");
    let (n, unit) = number_and_unit(text).ok_or_else(bad)?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(d)
}

/// Parses `1GiB`, `256MiB`, `64KiB`, `1GB`, `10MB` or a bare number of bytes; the error says
/// what is expected.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a size (write e.g. 1GiB, 256MiB, or bytes)");
    let (n, unit) = number_and_unit(text).ok_or_else(bad)?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Leading decimal digits and the (trimmed) rest.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// A size as [`parse_size`] reads it back (`1GiB`, `256MiB`, or bytes).
pub fn format_size(b: u64) -> String {
    match b {
        b if b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b => b.to_string(),
    }
}

/// A duration as [`parse_duration`] reads it back (`30s`, `1500ms`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 { format!("{}ms", d.as_millis()) } else { format!("{}s", d.as_secs()) }
}

/// A span as people write it: `7d`, `36h`, `90m`, or what [`format_duration`] prints, whichever is
/// exact; [`parse_duration`] reads each back.
pub fn format_span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s > 0 && s % 86_400 == 0 && d.subsec_nanos() == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 && d.subsec_nanos() == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 && d.subsec_nanos() == 0 => format!("{}m", s / 60),
        _ => format_duration(d),
    }
}

/// An age or a span of whole seconds as [`format_span`] prints it (a negative one, from clocks
/// apart, as `0s`).
pub fn format_seconds(secs: i64) -> String {
    format_span(Duration::from_secs(secs.max(0) as u64))
}

/// `1.5 GiB`-style sizes for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Parses PostgreSQL's size display (`16MB`, `1GB`, `64kB`), as `SHOW` prints it.
pub fn parse_pg_size(text: &str) -> Option<u32> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = t[..split].parse().ok()?;
    let mult = match &t[split..] {
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    u32::try_from(n * mult).ok()
}

/// A moment in UTC, to the second, as the repository records it: RFC 3339 text
/// (`2026-11-23T10:45:01Z`) in JSON. Finer fractions are cut when made, never rounded up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(OffsetDateTime);

impl UtcTime {
    /// Now, cut to the second.
    pub fn now() -> UtcTime {
        UtcTime::from_datetime(OffsetDateTime::now_utc())
    }

    /// `t` in UTC, cut to the second.
    pub fn from_datetime(t: OffsetDateTime) -> UtcTime {
        let t = t.to_offset(time::UtcOffset::UTC);
        UtcTime(t.replace_nanosecond(0).unwrap_or(t))
    }

    /// The moment as a `time` value.
    pub fn datetime(self) -> OffsetDateTime {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Whole seconds from `earlier` to this moment (negative when `earlier` is later).
    pub fn seconds_since(self, earlier: UtcTime) -> i64 {
        (self.0 - earlier.0).whole_seconds()
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.format(&Rfc3339).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for UtcTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(UtcTime::from_datetime)
            .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["", "1.5GiB", "1 parsec", "GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(1 << 30), "1GiB");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        for bad in ["", "s", "1.5s", "-1s", "10 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_span(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_span(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(format_span(Duration::from_secs(61)), "61s");
        assert_eq!(format_seconds(5400), "90m");
        assert_eq!(format_seconds(-3), "0s");
    }

    #[test]
    fn seconds_between_moments() {
        let a: UtcTime = "2026-12-01T10:00:00Z".parse().unwrap();
        let b: UtcTime = "2026-12-01T11:30:05Z".parse().unwrap();
        assert_eq!(b.seconds_since(a), 5405);
        assert_eq!(a.seconds_since(b), -5405);
    }

    #[test]
    fn pg_sizes() {
        assert_eq!(parse_pg_size("16MB"), Some(16 << 20));
        assert_eq!(parse_pg_size("1GB"), Some(1 << 30));
        assert_eq!(parse_pg_size("16"), None);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn utc_times_round_trip_as_the_repository_writes_them() {
        let t: UtcTime = "2026-11-23T10:45:01Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:45:01Z");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-11-23T10:45:01Z\"");
        let back: UtcTime = serde_json::from_str("\"2026-11-23T11:45:01.9+01:00\"").unwrap();
        assert_eq!(back, t);
        assert!(serde_json::from_str::<UtcTime>("\"yesterday\"").is_err());
        assert_eq!(UtcTime::now().datetime().nanosecond(), 0);
    }
}
