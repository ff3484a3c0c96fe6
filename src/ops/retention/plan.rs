//! The retention plan, a pure function of what the repository holds, the policy and the time:
//! which backups go and why, which stay and which rule keeps them, which WAL ranges stay, and
//! (folded in a folder at a time by [`WalFold`]) which WAL objects go. Nothing here does IO.
//!
//! Rules (the README has a worked example):
//! - Backups are ordered by stop time, never by id or timeline. The newest is always kept.
//! - `retain_full = N`: the N newest.
//! - `keep_within = W`: every moment of the last W stays restorable: every backup that finished
//!   inside the window, and the newest one that finished before it starts (the *anchor*; the
//!   oldest backup when none did), with all WAL from the anchor's start on.
//! - `keep_daily/weekly/monthly = N`: the newest backup of each of the last N calendar days, ISO
//!   weeks and months (UTC), counting the current one.
//! - `mark --keep`: kept, whatever the rules say; never stops the rules from deleting others.
//! - WAL: all of it from the earliest start among the backups kept for point-in-time recovery
//!   (those `retain_full` and `keep_within` keep, the window's anchor included; without either
//!   rule, the newest backup), on every timeline, so a restore of any of them to any later moment
//!   works, along whichever timeline it follows; for every other kept backup (tiers, marks) only
//!   its start to its stop (enough to make it consistent). A
//!   backup being taken keeps all WAL from where the server was when it started. History files
//!   are never deleted. With no backup at all, or a backup of unknown start being taken, no WAL
//!   is deleted.
//! - A backup folder without a descriptor is the leftovers of a failed backup once it is older
//!   than `older_than`; younger, it may be a backup being taken and is left alone. One with a
//!   `.deleting` marker is a deletion to finish, whatever its age. One whose descriptor exists
//!   but cannot be read is never deleted by a policy.

use serde::Serialize;
use time::{Date, Duration as TimeSpan, Month, OffsetDateTime};

use super::error::RetentionError;
use crate::config::RetentionPolicy;
use crate::repo::inventory::{Backup, BackupFolder, WalObject};
use crate::repo::layout;
use crate::units::UtcTime;
use crate::wal::{Lsn, SegmentName, TimelineId, WalFileName, WalSegSize};

/// What happens to a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// It stays.
    Keep,
    /// It is deleted.
    Delete,
    /// It stays, and a `.deleting` marker left by an interrupted deletion is removed.
    KeepAndCancelDeletion,
}

/// The decision about one backup (with a descriptor).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BackupDecision {
    /// The backup id.
    pub id: String,
    /// When it finished.
    pub stop_time: UtcTime,
    /// Its timeline.
    pub timeline: TimelineId,
    /// Where replay starts.
    pub start_lsn: Lsn,
    /// Where it is consistent.
    pub stop_lsn: Lsn,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// What happens to it.
    pub action: Action,
    /// The rules that keep it (empty when it goes), or why it goes.
    pub reasons: Vec<String>,
}

impl BackupDecision {
    /// The decision `action`, for `reasons`, about the backup `d` describes.
    fn of(d: &crate::repo::descriptor::Descriptor, action: Action, reasons: Vec<String>) -> BackupDecision {
        BackupDecision {
            id: d.id.clone(),
            stop_time: d.stop_time,
            timeline: d.timeline,
            start_lsn: d.start_lsn,
            stop_lsn: d.stop_lsn,
            stored_bytes: d.stored_bytes,
            action,
            reasons,
        }
    }
}

/// What happens to a backup id without a readable descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderAction {
    /// Left alone.
    Untouched,
    /// Its objects and markers are removed.
    Delete,
}

/// The decision about one backup folder without a (readable) descriptor.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FolderDecision {
    /// The backup id.
    pub id: String,
    /// What happens to it.
    pub action: FolderAction,
    /// Why.
    pub reason: String,
}

/// WAL kept from `from` to `to` (inclusive; `None`: everything after `from`), on every timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeptWal {
    /// The first position kept.
    pub from: Lsn,
    /// The last position kept; `None` for all WAL after `from`.
    pub to: Option<Lsn>,
    /// Which rule keeps it.
    pub why: String,
}

/// The plan for the backups, and the WAL ranges that stay.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Plan {
    /// The policy, as the file would say it.
    pub policy: String,
    /// The time the plan was made for.
    pub now: UtcTime,
    /// Where the PITR window starts, with `keep_within`.
    pub window_start: Option<UtcTime>,
    /// Every backup with a descriptor, oldest (by stop time) first.
    pub backups: Vec<BackupDecision>,
    /// Every backup id without a readable descriptor.
    pub folders: Vec<FolderDecision>,
    /// WAL that stays, and why.
    pub wal_kept: Vec<KeptWal>,
    /// Why no WAL is deleted at all, when none is.
    pub wal_untouched: Option<String>,
    /// The oldest moment a restore can reach once the plan is carried out (the stop time of
    /// the oldest backup that stays).
    pub oldest_restorable: Option<UtcTime>,
}

impl Plan {
    /// The backups that go.
    pub fn deleted(&self) -> impl Iterator<Item = &BackupDecision> {
        self.backups.iter().filter(|b| b.action == Action::Delete)
    }

    /// Bytes the backups that go hold (their parts and manifest).
    pub fn backup_bytes_freed(&self) -> u64 {
        self.deleted().map(|b| b.stored_bytes).sum()
    }
}

/// The plan for `backups` and `folders` under `policy` at `now`.
pub fn plan(backups: &[Backup], folders: &[BackupFolder], policy: &RetentionPolicy, now: UtcTime) -> Plan {
    let mut order: Vec<&Backup> = backups.iter().collect();
    order.sort_by(|a, b| {
        (a.descriptor.stop_time, &a.descriptor.id).cmp(&(b.descriptor.stop_time, &b.descriptor.id))
    });
    let n = order.len();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut keep = |i: usize, why: String| {
        if !reasons[i].contains(&why) {
            reasons[i].push(why);
        }
    };
    let now_dt = now.datetime();
    let mut window_start = None;
    // The backups kept for point-in-time recovery (by `retain_full` and `keep_within`; without
    // either, the newest): all WAL from the earliest start among them stays, on every timeline.
    let mut pitr: Vec<usize> = Vec::new();
    if n > 0 {
        keep(n - 1, "the newest backup".into());
        for (i, b) in order.iter().enumerate() {
            if b.kept {
                keep(i, "marked keep (walvault mark --keep)".into());
            }
        }
        if let Some(full) = policy.retain_full {
            for i in n.saturating_sub(full as usize)..n {
                keep(i, format!("retain_full = {full}"));
                pitr.push(i);
            }
        }
        if let Some(w) = policy.keep_within {
            let start = UtcTime::from_datetime(now_dt - w);
            window_start = Some(start);
            let span = crate::units::format_span(w);
            for (i, b) in order.iter().enumerate() {
                if b.descriptor.stop_time > start {
                    keep(i, format!("keep_within = {span}: finished inside the window"));
                    pitr.push(i);
                }
            }
            let a = order.iter().rposition(|b| b.descriptor.stop_time <= start);
            match a {
                Some(a) => {
                    keep(a, format!("keep_within = {span}: the newest backup before the window starts"))
                }
                None => keep(
                    0,
                    format!("keep_within = {span}: the oldest backup (the window reaches back before it)"),
                ),
            }
            pitr.push(a.unwrap_or(0));
        }
        if pitr.is_empty() {
            pitr.push(n - 1);
        }
        let tiers: [(u32, &str, Period); 3] = [
            (policy.keep_daily, "keep_daily", day_back),
            (policy.keep_weekly, "keep_weekly", week_back),
            (policy.keep_monthly, "keep_monthly", month_back),
        ];
        for (count, name, period) in tiers {
            for k in 0..count {
                let (from, to, label) = period(now_dt, k);
                let newest = order.iter().rposition(|b| {
                    let t = b.descriptor.stop_time.datetime();
                    t >= from && t < to
                });
                if let Some(i) = newest {
                    keep(i, format!("{name} = {count}: the newest of {label}"));
                }
            }
        }
    }
    let mut wal_kept = Vec::new();
    if let Some(&first) = pitr.iter().min_by_key(|&&i| (order[i].descriptor.start_lsn, i)) {
        let d = &order[first].descriptor;
        wal_kept.push(KeptWal {
            from: d.start_lsn,
            to: None,
            why: format!(
                "point-in-time recovery from backup {} on (the earliest start of those kept for it)",
                d.id
            ),
        });
    }
    let mut decisions = Vec::with_capacity(n);
    for (i, b) in order.iter().enumerate() {
        let d = &b.descriptor;
        let kept = !reasons[i].is_empty();
        if kept && !pitr.contains(&i) {
            wal_kept.push(KeptWal {
                from: d.start_lsn,
                to: Some(d.stop_lsn),
                why: format!("backup {} (start to stop: enough to make it consistent)", d.id),
            });
        }
        let action = match (kept, b.deleting) {
            (true, true) => Action::KeepAndCancelDeletion,
            (true, false) => Action::Keep,
            (false, _) => Action::Delete,
        };
        let why = if kept {
            std::mem::take(&mut reasons[i])
        } else if b.deleting {
            vec!["no rule keeps it; a deletion of it did not finish".into()]
        } else {
            vec!["no rule keeps it".into()]
        };
        decisions.push(BackupDecision::of(d, action, why));
    }
    let mut wal_untouched =
        (n == 0).then(|| "no backup: WAL is never deleted without one to keep".to_string());
    let mut folder_decisions = Vec::new();
    for f in folders {
        let (action, reason) = folder(f, policy, now);
        if action == FolderAction::Untouched && !f.unreadable_descriptor && !f.deleting {
            match &f.started {
                Some(s) => wal_kept.push(KeptWal {
                    from: s.wal_from,
                    to: None,
                    why: format!("backup {} being taken (from the server's position when it started)", f.id),
                }),
                None => {
                    wal_untouched.get_or_insert_with(|| {
                        format!(
                            "backup {} may be being taken and its start is unknown: no WAL is deleted",
                            f.id
                        )
                    });
                }
            }
        }
        folder_decisions.push(FolderDecision { id: f.id.clone(), action, reason });
    }
    let oldest_restorable = decisions.iter().find(|d| d.action != Action::Delete).map(|d| d.stop_time);
    Plan {
        policy: policy.describe(),
        now,
        window_start,
        backups: decisions,
        folders: folder_decisions,
        wal_kept,
        wal_untouched,
        oldest_restorable,
    }
}

/// The plan for `walvault delete --backup ID`: that backup goes (refused for a kept one
/// without `force`), everything else stays, and WAL is left for the policy.
pub fn one(
    backups: &[Backup],
    folders: &[BackupFolder],
    id: &str,
    force: bool,
    now: UtcTime,
) -> Result<Plan, RetentionError> {
    if !layout::is_backup_id(id) {
        return Err(RetentionError::BadId(id.to_string()));
    }
    let known = backups.iter().any(|b| b.descriptor.id == id);
    let folder = folders.iter().find(|f| f.id == id);
    if !known && folder.is_none() {
        return Err(RetentionError::UnknownBackup(id.to_string()));
    }
    let marked = backups.iter().any(|b| b.descriptor.id == id && b.kept) || folder.is_some_and(|f| f.kept);
    if marked && !force {
        return Err(RetentionError::Kept(id.to_string()));
    }
    let mut order: Vec<&Backup> = backups.iter().collect();
    order.sort_by(|a, b| {
        (a.descriptor.stop_time, &a.descriptor.id).cmp(&(b.descriptor.stop_time, &b.descriptor.id))
    });
    let decisions = order
        .iter()
        .map(|b| {
            let d = &b.descriptor;
            let asked = d.id == id;
            BackupDecision::of(
                d,
                if asked { Action::Delete } else { Action::Keep },
                vec![if asked { "asked for with --backup".into() } else { "not asked for".into() }],
            )
        })
        .collect::<Vec<_>>();
    let folders = folder
        .map(|f| FolderDecision {
            id: f.id.clone(),
            action: FolderAction::Delete,
            reason: "asked for with --backup".into(),
        })
        .into_iter()
        .collect();
    let oldest_restorable = decisions.iter().find(|d| d.action != Action::Delete).map(|d| d.stop_time);
    Ok(Plan {
        policy: format!("delete backup {id}"),
        now,
        window_start: None,
        backups: decisions,
        folders,
        wal_kept: Vec::new(),
        wal_untouched: Some(
            "one backup deleted with --backup: WAL is left for the policy (walvault delete)".into(),
        ),
        oldest_restorable,
    })
}

/// The plan that leaves every backup, backup folder and WAL object alone, for a run that is
/// about dumps only (`[retention.dumps]` without backup rules, or `delete --dump ID`): `why`
/// says so in each decision and for the WAL.
pub fn untouched(
    backups: &[Backup],
    folders: &[BackupFolder],
    policy: &str,
    why: &str,
    now: UtcTime,
) -> Plan {
    let mut order: Vec<&Backup> = backups.iter().collect();
    order.sort_by(|a, b| {
        (a.descriptor.stop_time, &a.descriptor.id).cmp(&(b.descriptor.stop_time, &b.descriptor.id))
    });
    let decisions: Vec<BackupDecision> = order
        .iter()
        .map(|b| {
            let d = &b.descriptor;
            BackupDecision::of(d, Action::Keep, vec![why.to_string()])
        })
        .collect();
    Plan {
        policy: policy.to_string(),
        now,
        window_start: None,
        oldest_restorable: decisions.first().map(|d| d.stop_time),
        backups: decisions,
        folders: folders
            .iter()
            .map(|f| FolderDecision { id: f.id.clone(), action: FolderAction::Untouched, reason: why.into() })
            .collect(),
        wal_kept: Vec::new(),
        wal_untouched: Some(why.to_string()),
    }
}

/// What happens to a backup id without a readable descriptor, and why.
fn folder(f: &BackupFolder, policy: &RetentionPolicy, now: UtcTime) -> (FolderAction, String) {
    if f.unreadable_descriptor {
        return (
            FolderAction::Untouched,
            "its descriptor cannot be read: no policy deletes it (check it; `walvault delete --backup ID \
             --force` removes it)"
                .into(),
        );
    }
    if f.deleting {
        return (FolderAction::Delete, "a deletion that did not finish".into());
    }
    let started = f.started.as_ref().map(|s| s.start_time).or_else(|| id_time(&f.id));
    let Some(started) = started else {
        return (FolderAction::Untouched, "its start time is unknown".into());
    };
    let older_than = crate::units::format_span(policy.older_than);
    // A backup being taken keeps writing parts: its age is since its last write, not its start
    // (a backup running longer than older_than must not be taken for leftovers).
    if now.datetime() - started.datetime() < policy.older_than {
        (
            FolderAction::Untouched,
            format!("started {started}: may be a backup being taken (older_than = {older_than})"),
        )
    } else if let Some(last) = f.last_written.filter(|t| now.datetime() - t.datetime() < policy.older_than) {
        (
            FolderAction::Untouched,
            format!(
                "started {started}, last written {last}: may be a backup being taken (older_than = {older_than})"
            ),
        )
    } else {
        (FolderAction::Delete, format!("leftovers of a backup started {started} that never finished"))
    }
}

/// The start time a backup (or dump) id stands for.
pub(super) fn id_time(id: &str) -> Option<UtcTime> {
    layout::is_backup_id(id).then_some(())?;
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(id, &f).ok()?.assume_utc();
    Some(UtcTime::from_datetime(t))
}

/// A calendar period `k` back from `now`: its start, its end and its name.
pub(super) type Period = fn(OffsetDateTime, u32) -> (OffsetDateTime, OffsetDateTime, String);

fn midnight(d: Date) -> OffsetDateTime {
    d.midnight().assume_utc()
}

/// Day `k` before the one `now` is in: its start, its end and its name.
pub(super) fn day_back(now: OffsetDateTime, k: u32) -> (OffsetDateTime, OffsetDateTime, String) {
    let day = now.date() - TimeSpan::days(i64::from(k));
    (midnight(day), midnight(day) + TimeSpan::days(1), day.to_string())
}

/// ISO week `k` before the one `now` is in.
pub(super) fn week_back(now: OffsetDateTime, k: u32) -> (OffsetDateTime, OffsetDateTime, String) {
    let monday = now.date() - TimeSpan::days(i64::from(now.weekday().number_days_from_monday()));
    let start = monday - TimeSpan::weeks(i64::from(k));
    let (year, week, _) = start.to_iso_week_date();
    (midnight(start), midnight(start) + TimeSpan::weeks(1), format!("week {year}-W{week:02}"))
}

/// Month `k` before the one `now` is in.
pub(super) fn month_back(now: OffsetDateTime, k: u32) -> (OffsetDateTime, OffsetDateTime, String) {
    let total = now.year() * 12 + i32::from(u8::from(now.month())) - 1 - k as i32;
    let (year, month) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u8);
    let first =
        Date::from_calendar_date(year, Month::try_from(month).expect("1..=12"), 1).expect("a valid date");
    let next_total = total + 1;
    let next = Date::from_calendar_date(
        next_total.div_euclid(12),
        Month::try_from((next_total.rem_euclid(12) + 1) as u8).expect("1..=12"),
        1,
    )
    .expect("a valid date");
    (midnight(first), midnight(next), format!("{year}-{month:02}"))
}

/// A run of consecutive WAL segments to delete on one timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WalRange {
    /// The timeline.
    pub timeline: TimelineId,
    /// The first segment.
    pub first: String,
    /// The last segment.
    pub last: String,
    /// Objects in it (segments, `.partial` and `.backup` files).
    pub objects: u64,
    /// Bytes stored.
    pub bytes: u64,
}

/// Folds the WAL objects of a repository, a folder at a time in key order, into what goes: the
/// objects of each folder to delete (for the caller to delete before reading the next folder),
/// and ranges per timeline for the plan.
#[derive(Debug)]
pub struct WalFold {
    seg_size: WalSegSize,
    /// Kept segment numbers: `[from, to]`, `to = u64::MAX` for "on".
    kept: Vec<(u64, u64)>,
    untouched: bool,
    /// Ranges to delete, per timeline, in order.
    pub ranges: Vec<WalRange>,
    /// Objects kept.
    pub kept_objects: u64,
}

impl WalFold {
    /// A fold that deletes what `plan` does not keep.
    pub fn new(plan: &Plan, seg_size: WalSegSize) -> WalFold {
        let seg = |l: Lsn| l.segment_no(seg_size);
        let kept = plan.wal_kept.iter().map(|k| (seg(k.from), k.to.map_or(u64::MAX, seg))).collect();
        WalFold {
            seg_size,
            kept,
            untouched: plan.wal_untouched.is_some(),
            ranges: Vec::new(),
            kept_objects: 0,
        }
    }

    fn keeps(&self, name: &WalFileName) -> bool {
        if self.untouched {
            return true;
        }
        match name.segment() {
            None => true,
            Some(s) => {
                let n = s.segno(self.seg_size);
                self.kept.iter().any(|&(a, b)| n >= a && n <= b)
            }
        }
    }

    /// The objects of one folder that go (in name order, as [`crate::repo::inventory::wal_dir`]
    /// gives them), noted in [`WalFold::ranges`].
    pub fn fold(&mut self, objects: &[WalObject]) -> Vec<WalFileName> {
        let mut out = Vec::new();
        for o in objects {
            if self.keeps(&o.name) {
                self.kept_objects += 1;
                continue;
            }
            let seg = o.name.segment().expect("only segments are deleted");
            self.add(seg, o.size);
            out.push(o.name);
        }
        out
    }

    fn add(&mut self, seg: SegmentName, bytes: u64) {
        let n = seg.segno(self.seg_size);
        if let Some(r) = self.ranges.last_mut()
            && r.timeline == seg.timeline
        {
            let last: WalFileName = r.last.parse().expect("our own name");
            let last_no = last.segment().expect("a segment").segno(self.seg_size);
            if n == last_no || n == last_no + 1 {
                r.last = seg.to_string();
                r.objects += 1;
                r.bytes += bytes;
                return;
            }
        }
        self.ranges.push(WalRange {
            timeline: seg.timeline,
            first: seg.to_string(),
            last: seg.to_string(),
            objects: 1,
            bytes,
        });
    }

    /// Bytes of WAL that go.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::descriptor::{Descriptor, StoredFile};

    const SEG: u64 = 16 << 20;

    fn t(s: &str) -> UtcTime {
        s.parse().unwrap()
    }

    /// A backup that finished at `stop` (RFC 3339), starting at segment `seg`, on timeline 1.
    fn backup(id_time: &str, stop: &str, seg: u64) -> Backup {
        let start = t(id_time);
        let id = layout::backup_id(start.datetime());
        Backup {
            descriptor: Descriptor {
                format: 1,
                id,
                label: String::new(),
                system_identifier: "1".into(),
                server_version: 150_000,
                timeline: TimelineId::new(1).unwrap(),
                start_lsn: Lsn(seg * SEG + 40),
                stop_lsn: Lsn((seg + 1) * SEG + 100),
                start_time: start,
                stop_time: t(stop),
                wal_segment_size: SEG as u32,
                compression: "zstd:3".into(),
                key_id: None,
                walvault_version: "test".into(),
                archives: Vec::new(),
                manifest: StoredFile {
                    key: String::new(),
                    raw_bytes: 0,
                    stored_bytes: 0,
                    sha256: String::new(),
                },
                raw_bytes: 10,
                stored_bytes: 5,
            },
            kept: false,
            deleting: false,
        }
    }

    fn policy(f: impl FnOnce(&mut RetentionPolicy)) -> RetentionPolicy {
        let mut p = RetentionPolicy::default();
        f(&mut p);
        p
    }

    fn actions(p: &Plan) -> Vec<(String, Action)> {
        p.backups.iter().map(|b| (b.stop_time.to_string()[..10].to_string(), b.action)).collect()
    }

    fn kept_days(p: &Plan) -> Vec<&str> {
        p.backups.iter().filter(|b| b.action != Action::Delete).map(|b| &b.id[..8]).collect()
    }

    /// One backup a day at 01:00, finishing at 01:30, for `days` days up to 2026-12-01.
    fn daily(days: u64) -> Vec<Backup> {
        let last = Date::from_calendar_date(2026, Month::December, 1).unwrap();
        (0..days)
            .rev()
            .map(|k| {
                let d = last - TimeSpan::days(k as i64);
                backup(&format!("{d}T01:00:00Z"), &format!("{d}T01:30:00Z"), 10 * (days - k))
            })
            .collect()
    }

    #[test]
    fn retain_full_keeps_the_newest_by_stop_time_not_by_id_or_timeline() {
        // The middle backup has the newest id but finished first; the one on timeline 2 (after a
        // pg_upgrade or a promotion) finished last.
        let mut a = backup("2026-11-20T00:00:00Z", "2026-11-20T02:00:00Z", 10);
        let b = backup("2026-11-25T00:00:00Z", "2026-11-25T00:10:00Z", 20);
        let mut c = backup("2026-11-24T00:00:00Z", "2026-11-26T00:00:00Z", 30);
        c.descriptor.timeline = TimelineId::new(2).unwrap();
        a.descriptor.id = "20261130T000000Z".into();
        let p = plan(&[a, b, c], &[], &policy(|p| p.retain_full = Some(2)), t("2026-12-01T00:00:00Z"));
        assert_eq!(
            actions(&p),
            [
                ("2026-11-20".to_string(), Action::Delete),
                ("2026-11-25".to_string(), Action::Keep),
                ("2026-11-26".to_string(), Action::Keep),
            ]
        );
        // WAL: from the earliest start of the retained backups on (PITR), nothing for the deleted one.
        assert_eq!(p.wal_kept.len(), 1);
        assert_eq!(p.wal_kept[0].from, Lsn(20 * SEG + 40));
        assert_eq!(p.wal_kept[0].to, None);
        assert_eq!(p.oldest_restorable, Some(t("2026-11-25T00:10:00Z")));
    }

    #[test]
    fn the_window_keeps_its_anchor_and_all_wal_from_it() {
        let bs = daily(14);
        let p = plan(
            &bs,
            &[],
            &policy(|p| p.keep_within = Some(std::time::Duration::from_secs(7 * 86_400))),
            t("2026-12-01T12:00:00Z"),
        );
        // Window from 2026-11-24 12:00: backups of 11-25 .. 12-01 inside, 11-24 01:30 is the anchor.
        assert_eq!(
            kept_days(&p),
            ["20261124", "20261125", "20261126", "20261127", "20261128", "20261129", "20261130", "20261201"]
        );
        assert_eq!(p.window_start, Some(t("2026-11-24T12:00:00Z")));
        let anchor = p.backups.iter().find(|b| b.id.starts_with("20261124")).unwrap();
        assert!(
            anchor.reasons.iter().any(|r| r.contains("newest backup before the window")),
            "{:?}",
            anchor.reasons
        );
        let pitr: Vec<&KeptWal> = p.wal_kept.iter().filter(|k| k.to.is_none()).collect();
        assert_eq!(pitr.len(), 1);
        assert_eq!(pitr[0].from, anchor.start_lsn);
        assert_eq!(p.oldest_restorable, Some(anchor.stop_time));
        // No backup before the window: the oldest is the anchor and nothing goes.
        let p = plan(
            &bs,
            &[],
            &policy(|p| p.keep_within = Some(std::time::Duration::from_secs(30 * 86_400))),
            t("2026-12-01T12:00:00Z"),
        );
        assert!(p.deleted().next().is_none());
        assert!(
            p.backups[0].reasons.iter().any(|r| r.contains("the oldest backup")),
            "{:?}",
            p.backups[0].reasons
        );
    }

    #[test]
    fn tiers_keep_the_newest_of_each_period_with_only_their_consistency_wal() {
        // Two backups a day for 70 days.
        let last = Date::from_calendar_date(2026, Month::December, 1).unwrap();
        let mut bs = Vec::new();
        for k in (0..70).rev() {
            let d = last - TimeSpan::days(k);
            let base = 100 * (70 - k as u64);
            bs.push(backup(&format!("{d}T01:00:00Z"), &format!("{d}T01:10:00Z"), base));
            bs.push(backup(&format!("{d}T13:00:00Z"), &format!("{d}T13:10:00Z"), base + 50));
        }
        let p = plan(
            &bs,
            &[],
            &policy(|p| {
                p.keep_within = Some(std::time::Duration::from_secs(2 * 86_400));
                p.keep_daily = 7;
                p.keep_weekly = 4;
                p.keep_monthly = 3;
            }),
            t("2026-12-01T18:00:00Z"),
        );
        let kept: Vec<String> =
            p.backups.iter().filter(|b| b.action == Action::Keep).map(|b| b.id.clone()).collect();
        // Window (from 11-29 18:00): 11-30 x2, 12-01 x2, and the anchor 11-29 13:00.
        // Dailies: the 13:00 backup of 11-25 .. 12-01. Weeklies: Sundays 11-29, 11-22, 11-15 and
        // the current week's newest (12-01). Monthlies: 12-01, 11-30, 10-31.
        for want in [
            "20261201T130000Z",
            "20261201T010000Z",
            "20261130T130000Z",
            "20261130T010000Z",
            "20261129T130000Z",
            "20261128T130000Z",
            "20261127T130000Z",
            "20261126T130000Z",
            "20261125T130000Z",
            "20261122T130000Z",
            "20261115T130000Z",
            "20261031T130000Z",
        ] {
            assert!(kept.contains(&want.to_string()), "{want} not kept: {kept:?}");
        }
        assert_eq!(kept.len(), 12, "{kept:?}");
        let october = p.backups.iter().find(|b| b.id == "20261031T130000Z").unwrap();
        assert_eq!(october.reasons, ["keep_monthly = 3: the newest of 2026-10"]);
        // The monthly outside the window keeps only its own start..stop.
        let w = p.wal_kept.iter().find(|k| k.why.contains("20261031T130000Z")).unwrap();
        assert_eq!((w.from, w.to), (october.start_lsn, Some(october.stop_lsn)));
        assert_eq!(p.wal_kept.iter().filter(|k| k.to.is_none()).count(), 1);
    }

    #[test]
    fn pitr_wal_starts_at_the_earliest_start_whatever_the_timeline() {
        // The newer backup (by stop time) on timeline 2 started earlier in WAL than the one on 1.
        let mut a = backup("2026-11-30T00:00:00Z", "2026-11-30T00:10:00Z", 40);
        let mut b = backup("2026-11-30T01:00:00Z", "2026-11-30T01:10:00Z", 30);
        b.descriptor.timeline = TimelineId::new(2).unwrap();
        a.descriptor.id = "20261130T000000Z".into();
        let p = plan(&[a, b], &[], &policy(|p| p.retain_full = Some(2)), t("2026-12-01T00:00:00Z"));
        assert_eq!(p.wal_kept.len(), 1);
        assert_eq!(p.wal_kept[0].from, Lsn(30 * SEG + 40));
    }

    #[test]
    fn a_kept_backup_survives_and_others_still_go() {
        let mut bs = daily(10);
        bs[2].kept = true;
        let p = plan(&bs, &[], &policy(|p| p.retain_full = Some(3)), t("2026-12-02T00:00:00Z"));
        assert_eq!(kept_days(&p), ["20261124", "20261129", "20261130", "20261201"]);
        assert_eq!(p.deleted().count(), 6);
        assert!(p.backups[2].reasons[0].contains("marked keep"));
        assert_eq!(p.oldest_restorable, Some(bs[2].descriptor.stop_time));
    }

    #[test]
    fn the_newest_backup_always_stays_and_no_backup_means_no_wal_deleted() {
        let bs = daily(3);
        let p = plan(&bs, &[], &policy(|p| p.keep_daily = 1), t("2027-01-15T00:00:00Z"));
        assert_eq!(kept_days(&p), ["20261201"]);
        let p = plan(&[], &[], &policy(|p| p.retain_full = Some(1)), t("2027-01-15T00:00:00Z"));
        assert!(p.wal_untouched.is_some());
    }

    #[test]
    fn folders_without_descriptors() {
        let now = t("2026-12-01T12:00:00Z");
        let started = |id: &str, at: &str| BackupFolder {
            id: id.into(),
            started: Some(crate::repo::descriptor::Started {
                id: id.into(),
                start_time: t(at),
                wal_from: Lsn(77 * SEG),
                timeline: TimelineId::new(1).unwrap(),
            }),
            has_started: true,
            deleting: false,
            sealing: false,
            kept: false,
            has_objects: true,
            unreadable_descriptor: false,
            last_written: None,
        };
        let bare = |id: &str| BackupFolder {
            started: None,
            has_started: false,
            ..started(id, "2026-12-01T00:00:00Z")
        };
        let folders = [
            started("20261201T110000Z", "2026-12-01T11:00:00Z"),
            started("20261120T000000Z", "2026-11-20T00:00:00Z"),
            BackupFolder { deleting: true, ..started("20261201T100000Z", "2026-12-01T10:00:00Z") },
            BackupFolder { unreadable_descriptor: true, ..bare("20261001T000000Z") },
            bare("20261130T000000Z"),
            // Started long ago, but still writing parts: a long backup being taken.
            BackupFolder {
                last_written: Some(t("2026-12-01T11:59:00Z")),
                ..started("20261115T000000Z", "2026-11-15T00:00:00Z")
            },
        ];
        let p = plan(&daily(2), &folders, &policy(|p| p.retain_full = Some(1)), now);
        let got: Vec<(&str, FolderAction)> = p.folders.iter().map(|f| (f.id.as_str(), f.action)).collect();
        assert_eq!(
            got,
            [
                ("20261201T110000Z", FolderAction::Untouched),
                ("20261120T000000Z", FolderAction::Delete),
                ("20261201T100000Z", FolderAction::Delete),
                ("20261001T000000Z", FolderAction::Untouched),
                ("20261130T000000Z", FolderAction::Delete),
                ("20261115T000000Z", FolderAction::Untouched),
            ]
        );
        assert!(p.folders[5].reason.contains("last written 2026-12-01"), "{}", p.folders[5].reason);
        // The backup being taken keeps the WAL from where it started.
        assert!(
            p.wal_kept
                .iter()
                .any(|k| k.from == Lsn(77 * SEG) && k.to.is_none() && k.why.contains("being taken"))
        );
        assert!(p.wal_untouched.is_none());
        // One being taken whose start is unknown stops all WAL deletion.
        let p = plan(&daily(2), &[bare("20261201T110000Z")], &policy(|p| p.retain_full = Some(1)), now);
        assert!(p.wal_untouched.as_deref().is_some_and(|w| w.contains("20261201T110000Z")));
    }

    #[test]
    fn interrupted_deletions_are_finished_or_cancelled() {
        let mut bs = daily(3);
        bs[0].deleting = true;
        bs[2].deleting = true;
        let p = plan(&bs, &[], &policy(|p| p.retain_full = Some(2)), t("2026-12-02T00:00:00Z"));
        assert_eq!(p.backups[0].action, Action::Delete);
        assert!(p.backups[0].reasons[0].contains("did not finish"));
        assert_eq!(p.backups[2].action, Action::KeepAndCancelDeletion);
    }

    #[test]
    fn the_wal_fold_deletes_only_outside_kept_ranges_on_every_timeline() {
        let bs = daily(5); // starts at segments 10, 20, .., 50; each consistent one segment later
        let p = plan(
            &bs,
            &[],
            &policy(|p| {
                p.retain_full = Some(1);
                p.keep_daily = 5;
            }),
            t("2026-12-01T12:00:00Z"),
        );
        // PITR from the newest (segment 50 on); the others keep [10, 11], [20, 21], ...
        let mut fold = WalFold::new(&p, WalSegSize::DEFAULT);
        let tl = |n: u32| TimelineId::new(n).unwrap();
        let obj = |tli: u32, segno: u64| WalObject {
            name: WalFileName::Segment(SegmentName::from_segno(tl(tli), segno, WalSegSize::DEFAULT)),
            size: 100,
            modified: t("2026-12-01T00:00:00Z"),
            tag: String::new(),
        };
        let mut objects: Vec<WalObject> = (5..60).map(|n| obj(1, n)).collect();
        objects.push(WalObject {
            name: "00000002.history".parse().unwrap(),
            size: 1,
            modified: t("2026-12-01T00:00:00Z"),
            tag: String::new(),
        });
        let gone = fold.fold(&objects);
        let on_tl2: Vec<WalObject> = (40..55).map(|n| obj(2, n)).collect();
        let gone2 = fold.fold(&on_tl2);
        let kept_segnos = [10u64, 11, 20, 21, 30, 31, 40, 41];
        for o in &objects[..55] {
            let n = o.name.segment().unwrap().segno(WalSegSize::DEFAULT);
            let should_go = n < 50 && !kept_segnos.contains(&n);
            assert_eq!(gone.contains(&o.name), should_go, "segment {n}");
        }
        assert!(!gone.iter().any(|g| g.segment().is_none()), "a history file was deleted");
        assert_eq!(gone2.len(), 15 - 2 - 5, "timeline 2: 42..49 go");
        let r: Vec<(u32, &str, &str, u64)> = fold
            .ranges
            .iter()
            .map(|r| (r.timeline.get(), &r.first[16..], &r.last[16..], r.objects))
            .collect();
        assert_eq!(
            r,
            [
                (1, "00000005", "00000009", 5),
                (1, "0000000C", "00000013", 8),
                (1, "00000016", "0000001D", 8),
                (1, "00000020", "00000027", 8),
                (1, "0000002A", "00000031", 8),
                (2, "0000002A", "00000031", 8),
            ]
        );
        assert_eq!(fold.bytes(), 45 * 100);
        // Nothing goes while WAL deletion is suspended.
        let mut p2 = p.clone();
        p2.wal_untouched = Some("x".into());
        assert!(WalFold::new(&p2, WalSegSize::DEFAULT).fold(&objects).is_empty());
    }

    #[test]
    fn the_readme_example() {
        let bs = daily(40);
        let p = plan(
            &bs,
            &[],
            &policy(|p| {
                p.keep_within = Some(std::time::Duration::from_secs(7 * 86_400));
                p.keep_daily = 14;
                p.keep_monthly = 2;
            }),
            t("2026-12-01T12:00:00Z"),
        );
        assert_eq!(bs[0].descriptor.id, "20261023T010000Z");
        let kept = kept_days(&p);
        assert_eq!(kept.len(), 14);
        assert_eq!(kept[0], "20261118");
        assert_eq!(p.deleted().count(), 26);
        assert_eq!(p.deleted().next().unwrap().id, "20261023T010000Z");
        assert_eq!(p.deleted().last().unwrap().id, "20261117T010000Z");
        let anchor = p.backups.iter().find(|b| b.id == "20261124T010000Z").unwrap();
        let pitr: Vec<&KeptWal> = p.wal_kept.iter().filter(|k| k.to.is_none()).collect();
        assert_eq!(pitr.len(), 1);
        assert_eq!(pitr[0].from, anchor.start_lsn);
        let consistency = p.wal_kept.iter().filter(|k| k.to.is_some()).count();
        assert_eq!(consistency, 6, "11-18 to 11-23 keep their start to stop");
        assert_eq!(p.oldest_restorable, Some(t("2026-11-18T01:30:00Z")));
    }

    #[test]
    fn months_and_weeks_count_back_across_years() {
        let now = t("2027-01-06T10:00:00Z").datetime(); // a Wednesday
        assert_eq!(month_back(now, 0).2, "2027-01");
        assert_eq!(month_back(now, 1).2, "2026-12");
        assert_eq!(month_back(now, 13).2, "2025-12");
        let (from, to, label) = week_back(now, 1);
        assert_eq!(label, "week 2026-W53");
        assert_eq!(from.date().to_string(), "2026-12-28");
        assert_eq!(to.date().to_string(), "2027-01-04");
        assert_eq!(day_back(now, 6).2, "2026-12-31");
    }
}
