//! Recovery targets: parsing what the command line gives (`--target-time`, `--target-lsn`,
//! `--target-xid`, `--target-name`, `--target-immediate`), choosing the backup to restore for a
//! target, refusing targets before a backup's consistency point, and the `recovery_target_*`
//! settings PostgreSQL gets.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::repo::descriptor::Descriptor;
use crate::wal::lsn::Lsn;

/// The longest restore point name PostgreSQL accepts (`MAXFNAMELEN - 1`).
pub const MAX_NAME_LEN: usize = 63;

/// A backup's `stop_time` is stored to the second, rounded down: it finished before
/// `stop_time + STOP_TIME_RESOLUTION`.
pub const STOP_TIME_RESOLUTION: time::Duration = time::Duration::SECOND;

/// Why a target or the backup choice is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    /// A value could not be parsed.
    #[error("{option}: {message}")]
    Bad {
        /// The option.
        option: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The repository has no backups.
    #[error("the repository has no base backups (take one with walvault base-backup)")]
    NoBackups,
    /// No backup finished before the target.
    #[error(
        "no backup finished before the recovery target ({target}); the oldest one, {oldest}, finished at {point}"
    )]
    NoBackupBefore {
        /// The target.
        target: String,
        /// The oldest backup's id.
        oldest: String,
        /// When or where it became consistent.
        point: String,
    },
    /// The chosen backup becomes consistent after the target.
    #[error(
        "the recovery target ({target}) is before backup {backup} is consistent ({point}): \
         choose an older backup with --backup, or leave --backup out"
    )]
    BeforeBackup {
        /// The target.
        target: String,
        /// The backup's id.
        backup: String,
        /// Its consistency point.
        point: String,
    },
}

fn bad(option: &'static str, message: impl Into<String>) -> TargetError {
    TargetError::Bad { option, message: message.into() }
}

/// A point in time with an explicit UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub OffsetDateTime);

impl FromStr for Timestamp {
    type Err = TargetError;

    /// `YYYY-MM-DD[T ]HH:MM:SS[.fraction][ ]OFFSET` where OFFSET is `Z`, `UTC`, `±HH`,
    /// `±HH:MM` or `±HHMM` (RFC 3339 and PostgreSQL's own output both fit). An offset is
    /// required: without one the server's time zone would decide, silently.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |m: &str| {
            bad(
                "--target-time",
                format!(
                    "`{s}` {m}; expected e.g. 2026-11-23 10:45:01+00, 2026-11-23T10:45:01.5Z or \
                     2026-11-23 11:45:01+01:00"
                ),
            )
        };
        let t = s.trim();
        let b = t.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = t.get(r)?;
            part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
        };
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return Err(err("is not a date and time"));
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(err("is not a date and time"));
        }
        let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) =
            (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19))
        else {
            return Err(err("is not a date and time"));
        };
        let mut rest = &t[19..];
        let mut nanos = 0u32;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(err("has a bad fraction of a second"));
            }
            nanos = frac[..digits].parse::<u32>().map_err(|_| err("has a bad fraction"))?
                * 10u32.pow(9 - digits as u32);
            rest = &frac[digits..];
        }
        let offset = parse_offset(rest.trim_start()).ok_or_else(|| {
            err(if rest.trim().is_empty() { "has no UTC offset" } else { "has an unreadable UTC offset" })
        })?;
        let month = Month::try_from(mo as u8).map_err(|_| err("has no such month"))?;
        let date = Date::from_calendar_date(y as i32, month, d as u8).map_err(|_| err("has no such day"))?;
        let time =
            Time::from_hms_nano(h as u8, mi as u8, sec as u8, nanos).map_err(|_| err("has no such time"))?;
        Ok(Timestamp(date.with_time(time).assume_offset(offset)))
    }
}

fn parse_offset(s: &str) -> Option<UtcOffset> {
    if matches!(s, "Z" | "z" | "UTC") {
        return Some(UtcOffset::UTC);
    }
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1i8, &s[1..]),
        b'-' => (-1i8, &s[1..]),
        _ => return None,
    };
    let digits: String = match digits.len() {
        2 | 4 => digits.to_string(),
        5 if digits.as_bytes()[2] == b':' => digits.replacen(':', "", 1),
        _ => return None,
    };
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i8 = digits[..2].parse().ok()?;
    let m: i8 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

impl fmt::Display for Timestamp {
    /// PostgreSQL's form, in UTC, to the microsecond (a finer fraction is cut, never rounded up,
    /// so no commit after the given time is included).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.to_offset(UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

/// Where recovery stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// `recovery_target_time`: the last commit at or before this time.
    Time(Timestamp),
    /// `recovery_target_lsn`: the first record at or after this position.
    Lsn(Lsn),
    /// `recovery_target_xid`: the commit of this transaction.
    Xid(u64),
    /// `recovery_target_name`: a restore point made with `pg_create_restore_point`.
    Name(String),
    /// `recovery_target = 'immediate'`: as soon as the backup is consistent.
    Immediate,
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryTarget::Time(t) => write!(f, "time {t}"),
            RecoveryTarget::Lsn(l) => write!(f, "LSN {l}"),
            RecoveryTarget::Xid(x) => write!(f, "transaction {x}"),
            RecoveryTarget::Name(n) => write!(f, "restore point {n:?}"),
            RecoveryTarget::Immediate => write!(f, "the end of the backup"),
        }
    }
}

/// Parses an LSN option.
pub fn parse_lsn(s: &str) -> Result<Lsn, TargetError> {
    s.trim().parse().map_err(|e: crate::wal::lsn::LsnError| bad("--target-lsn", e.to_string()))
}

/// Parses a transaction id option (a 32-bit xid or a 64-bit one as `txid_current()` shows it).
pub fn parse_xid(s: &str) -> Result<u64, TargetError> {
    match s.trim().parse::<u64>() {
        Ok(x) if x >= 3 => Ok(x),
        _ => Err(bad("--target-xid", format!("`{s}` is not a transaction id (a number, 3 or more)"))),
    }
}

/// Checks a restore point name option.
pub fn parse_name(s: &str) -> Result<String, TargetError> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(bad("--target-name", format!("restore point names have 1 to {MAX_NAME_LEN} bytes")));
    }
    Ok(s.to_string())
}

/// What happens when the target is reached (`recovery_target_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetAction {
    /// Stay in recovery, read-only, until `pg_wal_replay_resume()` (PostgreSQL's default).
    Pause,
    /// End recovery and open for writes on a new timeline.
    Promote,
    /// Stop the server.
    Shutdown,
}

impl TargetAction {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetAction::Pause => "pause",
            TargetAction::Promote => "promote",
            TargetAction::Shutdown => "shutdown",
        }
    }
}

/// Which timeline recovery follows (`recovery_target_timeline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetTimeline {
    /// The newest timeline in the archive (PostgreSQL's default).
    Latest,
    /// The backup's own timeline.
    Current,
    /// This timeline.
    Id(u32),
}

impl FromStr for TargetTimeline {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "latest" => Ok(TargetTimeline::Latest),
            "current" => Ok(TargetTimeline::Current),
            n => match n.parse::<u32>() {
                Ok(id) if id > 0 => Ok(TargetTimeline::Id(id)),
                _ => Err(bad("--target-timeline", format!("`{s}` is not latest, current or a timeline id"))),
            },
        }
    }
}

impl fmt::Display for TargetTimeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetTimeline::Latest => write!(f, "latest"),
            TargetTimeline::Current => write!(f, "current"),
            TargetTimeline::Id(id) => write!(f, "{id}"),
        }
    }
}

/// When a backup finished, at the latest (its `stop_time` plus the resolution it is kept at).
fn finished_by(d: &Descriptor) -> OffsetDateTime {
    d.stop_time.datetime() + STOP_TIME_RESOLUTION
}

/// Whether backup `d` is consistent at or before `target`; `None` when that cannot be known
/// before replay (xid, name, immediate).
fn consistent_before(d: &Descriptor, target: &RecoveryTarget) -> Option<bool> {
    match target {
        RecoveryTarget::Time(t) => Some(finished_by(d) <= t.0),
        RecoveryTarget::Lsn(l) => Some(d.stop_lsn <= *l),
        _ => None,
    }
}

/// Where a backup becomes consistent, for messages.
fn point(d: &Descriptor, target: &RecoveryTarget) -> String {
    match target {
        RecoveryTarget::Lsn(_) => format!("LSN {}", d.stop_lsn),
        _ => format!("{} (stop time, to the second)", d.stop_time),
    }
}

/// Chooses from `backups` (any order): the newest that is consistent before `target`
/// (time: finished by then; LSN: stop LSN at or before it), or simply the newest when there is
/// no target or its position cannot be known before replay (xid, restore point, immediate).
pub fn choose<'a>(
    backups: &'a [Descriptor],
    target: Option<&RecoveryTarget>,
) -> Result<&'a Descriptor, TargetError> {
    let mut sorted: Vec<&Descriptor> = backups.iter().collect();
    sorted.sort_by(|a, b| b.id.cmp(&a.id));
    let newest = *sorted.first().ok_or(TargetError::NoBackups)?;
    let Some(target) = target else { return Ok(newest) };
    if consistent_before(newest, target).is_none() {
        return Ok(newest);
    }
    sorted.iter().find(|d| consistent_before(d, target) == Some(true)).copied().ok_or_else(|| {
        let oldest = sorted.last().expect("not empty");
        TargetError::NoBackupBefore {
            target: target.to_string(),
            oldest: oldest.id.clone(),
            point: point(oldest, target),
        }
    })
}

/// Refuses a target that comes before `backup` is consistent (where that is known).
pub fn check(backup: &Descriptor, target: Option<&RecoveryTarget>) -> Result<(), TargetError> {
    match target {
        Some(t) if consistent_before(backup, t) == Some(false) => Err(TargetError::BeforeBackup {
            target: t.to_string(),
            backup: backup.id.clone(),
            point: point(backup, t),
        }),
        _ => Ok(()),
    }
}

/// Every `recovery_target*` setting that names a target.
pub const TARGET_SETTINGS: [&str; 5] = [
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
];

/// The recovery settings for `target`, `action` and `timeline`, in the order they must appear:
/// every target setting not used is set empty first (so one left in `postgresql.conf` cannot
/// make a second target), then the one used, then the action and the timeline.
pub fn settings(
    target: Option<&RecoveryTarget>,
    action: Option<TargetAction>,
    timeline: Option<TargetTimeline>,
) -> Vec<(&'static str, String)> {
    let ours: Option<(&'static str, String)> = target.map(|t| match t {
        RecoveryTarget::Immediate => ("recovery_target", "immediate".to_string()),
        RecoveryTarget::Lsn(l) => ("recovery_target_lsn", l.to_string()),
        RecoveryTarget::Name(n) => ("recovery_target_name", n.clone()),
        RecoveryTarget::Time(t) => ("recovery_target_time", t.to_string()),
        RecoveryTarget::Xid(x) => ("recovery_target_xid", x.to_string()),
    });
    let mut out: Vec<(&'static str, String)> = TARGET_SETTINGS
        .iter()
        .filter(|k| ours.as_ref().is_none_or(|(o, _)| o != *k))
        .map(|k| (*k, String::new()))
        .collect();
    if let Some(o) = ours {
        out.push(o);
        out.push(("recovery_target_action", action.unwrap_or(TargetAction::Pause).as_str().to_string()));
    }
    if let Some(tl) = timeline {
        out.push(("recovery_target_timeline", tl.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn timestamps() {
        let want = "2026-11-23 10:45:01.000000+00";
        for s in [
            "2026-11-23 10:45:01+00",
            "2026-11-23T10:45:01Z",
            "2026-11-23 11:45:01+01",
            "2026-11-23 11:45:01 +01:00",
            "2026-11-23T05:15:01-0530",
            "2026-11-23 10:45:01 UTC",
        ] {
            assert_eq!(ts(s).to_string(), want, "{s}");
        }
        assert_eq!(ts("2026-11-23 10:45:01.5+00").to_string(), "2026-11-23 10:45:01.500000+00");
        assert_eq!(ts("2026-11-23 10:45:01.123456789Z").to_string(), "2026-11-23 10:45:01.123456+00");
        assert!(ts("2026-11-23 10:45:01.5Z") < ts("2026-11-23 10:45:02Z"));
        for bad in [
            "2026-11-23 10:45:01",
            "2026-11-23",
            "2026-13-23 10:45:01Z",
            "2026-02-30 10:45:01Z",
            "2026-11-23 25:45:01Z",
            "2026-11-23 10:45:01+1",
            "2026-11-23 10:45:01.Z",
            "yesterday",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn other_targets() {
        assert_eq!(parse_lsn("0/3000060").unwrap(), Lsn(0x3000060));
        assert!(parse_lsn("3000060").is_err());
        assert_eq!(parse_xid("748").unwrap(), 748);
        assert_eq!(parse_xid("4294967296000").unwrap(), 4_294_967_296_000);
        assert!(parse_xid("-1").is_err() && parse_xid("0").is_err() && parse_xid("x").is_err());
        assert!(parse_name("").is_err() && parse_name(&"n".repeat(64)).is_err());
        assert_eq!("latest".parse::<TargetTimeline>().unwrap(), TargetTimeline::Latest);
        assert_eq!("3".parse::<TargetTimeline>().unwrap(), TargetTimeline::Id(3));
        assert!("0".parse::<TargetTimeline>().is_err() && "next".parse::<TargetTimeline>().is_err());
    }

    fn desc(id: &str, stop_lsn: &str, stop_time: &str) -> Descriptor {
        Descriptor {
            format: 1,
            id: id.into(),
            label: String::new(),
            system_identifier: "1".into(),
            server_version: 150000,
            timeline: crate::wal::TimelineId::new(1).unwrap(),
            start_lsn: "0/1000000".parse().unwrap(),
            stop_lsn: stop_lsn.parse().unwrap(),
            start_time: stop_time.parse().unwrap(),
            stop_time: stop_time.parse().unwrap(),
            wal_segment_size: 16 << 20,
            compression: "zstd:3".into(),
            key_id: None,
            walvault_version: "0".into(),
            archives: Vec::new(),
            manifest: crate::repo::descriptor::StoredFile {
                key: String::new(),
                raw_bytes: 0,
                stored_bytes: 0,
                sha256: String::new(),
            },
            raw_bytes: 0,
            stored_bytes: 0,
        }
    }

    #[test]
    fn choosing() {
        let all = vec![
            desc("20261123T100000Z", "0/5000000", "2026-11-23T10:00:10Z"),
            desc("20261123T120000Z", "0/9000000", "2026-11-23T12:00:10Z"),
            desc("20261123T110000Z", "0/7000000", "2026-11-23T11:00:10Z"),
        ];
        let id = |t: Option<RecoveryTarget>| choose(&all, t.as_ref()).map(|d| d.id.clone());
        assert_eq!(id(None).unwrap(), "20261123T120000Z");
        assert_eq!(id(Some(RecoveryTarget::Immediate)).unwrap(), "20261123T120000Z");
        assert_eq!(id(Some(RecoveryTarget::Xid(5))).unwrap(), "20261123T120000Z");
        assert_eq!(id(Some(RecoveryTarget::Lsn(Lsn(0x7000000)))).unwrap(), "20261123T110000Z");
        assert_eq!(id(Some(RecoveryTarget::Lsn(Lsn(0x6FFFFFF)))).unwrap(), "20261123T100000Z");
        assert_eq!(id(Some(RecoveryTarget::Lsn(Lsn(u64::MAX)))).unwrap(), "20261123T120000Z");
        let t = |s: &str| Some(RecoveryTarget::Time(ts(s)));
        // Stored to the second: finished by 11:00:11 at the latest.
        assert_eq!(id(t("2026-11-23T11:00:11Z")).unwrap(), "20261123T110000Z");
        assert_eq!(id(t("2026-11-23T11:00:10.9Z")).unwrap(), "20261123T100000Z");
        assert!(matches!(id(Some(RecoveryTarget::Lsn(Lsn(0x10)))), Err(TargetError::NoBackupBefore { .. })));
        assert!(matches!(id(t("2020-01-01T00:00:00Z")), Err(TargetError::NoBackupBefore { .. })));
        assert_eq!(choose(&[], None).unwrap_err(), TargetError::NoBackups);
        // An explicit backup after the target is refused.
        assert!(check(&all[1], Some(&RecoveryTarget::Lsn(Lsn(0x8000000)))).is_err());
        assert!(check(&all[1], Some(&RecoveryTarget::Lsn(Lsn(0x9000000)))).is_ok());
        assert!(check(&all[1], Some(&RecoveryTarget::Name("x".into()))).is_ok());
        assert!(check(&all[1], None).is_ok());
    }

    #[test]
    fn setting_order() {
        let s = settings(Some(&RecoveryTarget::Lsn(Lsn(0x10))), None, Some(TargetTimeline::Current));
        let keys: Vec<&str> = s.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "recovery_target",
                "recovery_target_name",
                "recovery_target_time",
                "recovery_target_xid",
                "recovery_target_lsn",
                "recovery_target_action",
                "recovery_target_timeline"
            ]
        );
        assert_eq!(s[4].1, "0/10");
        assert_eq!(s[5].1, "pause");
        assert!(s[..4].iter().all(|(_, v)| v.is_empty()));
        let none = settings(None, None, None);
        assert_eq!(none.len(), 5);
        let imm = settings(Some(&RecoveryTarget::Immediate), Some(TargetAction::Promote), None);
        assert!(imm.contains(&("recovery_target", "immediate".into())));
        assert!(imm.contains(&("recovery_target_action", "promote".into())));
    }
}
