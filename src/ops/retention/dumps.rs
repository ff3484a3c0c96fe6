//! The retention plan for logical dumps, a pure function of the dumps the repository holds,
//! `[retention.dumps]` and the time, like [`super::plan`] for backups. Dumps need no WAL, so
//! nothing here touches backups or WAL, and the backup rules never reach a dump.
//!
//! Rules (all in UTC, each keeping dumps *in addition* to the others), applied to each *series*
//! on its own: the dumps of the same databases (`--all-databases` dumps are one series whatever
//! databases they held), so a nightly dump of one database and an hourly one of another do not
//! crowd each other out.
//! - The newest dump of each series always stays (the last dump of a database is never deleted
//!   by a policy; `delete --dump ID` deletes it).
//! - `retain = N`: the N newest of the series, by stop time.
//! - `keep_within = D`: every dump that finished in the last D.
//! - `keep_daily/weekly/monthly = N`: the newest dump of each of the last N calendar days, ISO
//!   weeks and months, counting the current one.
//! - `mark --keep`: kept, whatever the rules say.
//! - Without `[retention.dumps]` nothing under `dumps/` is touched.
//! - A dump folder without a descriptor is the leftovers of a failed dump once its id (its
//!   start time) is older than `older_than`; younger, it may be a dump being taken (its
//!   `.started` marker stays until the descriptor is written) and is left alone. One with a
//!   `.deleting` marker is a deletion to finish, whatever its age; one whose descriptor exists
//!   but cannot be read is never deleted by a policy.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::RetentionError;
use super::plan::{Action, FolderAction, FolderDecision, Period, day_back, id_time, month_back, week_back};
use crate::config::DumpPolicy;
use crate::repo::dumps::{Dump, DumpDescriptor, DumpFolder};
use crate::repo::layout;
use crate::units::{UtcTime, format_span};

/// The decision about one dump (with a descriptor).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DumpDecision {
    /// The dump id.
    pub id: String,
    /// When it finished.
    pub stop_time: UtcTime,
    /// The series it belongs to (see [`series`]).
    pub series: String,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// What happens to it.
    pub action: Action,
    /// The rules that keep it, or why it goes.
    pub reasons: Vec<String>,
}

/// The plan for the dumps.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DumpPlan {
    /// The rules, as the file would say them (or why there are none).
    pub policy: String,
    /// Every dump with a descriptor, oldest (by stop time) first.
    pub dumps: Vec<DumpDecision>,
    /// Every dump id without a readable descriptor.
    pub folders: Vec<FolderDecision>,
}

impl DumpPlan {
    /// The dumps that go.
    pub fn deleted(&self) -> impl Iterator<Item = &DumpDecision> {
        self.dumps.iter().filter(|d| d.action == Action::Delete)
    }

    /// Bytes the dumps that go hold.
    pub fn bytes_freed(&self) -> u64 {
        self.deleted().map(|d| d.stored_bytes).sum()
    }

    /// Whether the plan changes anything under `dumps/`.
    pub fn changes_anything(&self) -> bool {
        self.dumps.iter().any(|d| d.action != Action::Keep)
            || self.folders.iter().any(|f| f.action == FolderAction::Delete)
    }
}

/// The series of a dump: `all databases` for `--all-databases`, else its databases' names,
/// sorted.
pub fn series(d: &DumpDescriptor) -> String {
    if d.globals.is_some() {
        return "all databases".into();
    }
    let mut names: Vec<&str> = d.databases.iter().map(|x| x.name.as_str()).collect();
    names.sort_unstable();
    // Quoted: a database named `a, b` is not the series of `a` and `b`.
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!("database {}", quoted.join(", "))
}

fn ordered(dumps: &[Dump]) -> Vec<&Dump> {
    let mut order: Vec<&Dump> = dumps.iter().collect();
    order.sort_by(|a, b| {
        (a.descriptor.stop_time, &a.descriptor.id).cmp(&(b.descriptor.stop_time, &b.descriptor.id))
    });
    order
}

fn decision(d: &Dump, action: Action, reasons: Vec<String>) -> DumpDecision {
    DumpDecision {
        id: d.descriptor.id.clone(),
        stop_time: d.descriptor.stop_time,
        series: series(&d.descriptor),
        stored_bytes: d.descriptor.stored_bytes,
        action,
        reasons,
    }
}

/// The plan for `dumps` and `folders` under `policy` at `now`.
pub fn plan(dumps: &[Dump], folders: &[DumpFolder], policy: &DumpPolicy, now: UtcTime) -> DumpPlan {
    let order = ordered(dumps);
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); order.len()];
    let mut keep = |i: usize, why: String| {
        if !reasons[i].contains(&why) {
            reasons[i].push(why);
        }
    };
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, d) in order.iter().enumerate() {
        groups.entry(series(&d.descriptor)).or_default().push(i);
        if d.kept {
            keep(i, "marked keep (walvault mark --keep)".into());
        }
    }
    let now_dt = now.datetime();
    for (name, g) in &groups {
        let n = g.len();
        keep(g[n - 1], format!("the newest dump of {name}"));
        if let Some(r) = policy.retain {
            for &i in &g[n.saturating_sub(r as usize)..] {
                keep(i, format!("retain = {r}"));
            }
        }
        if let Some(w) = policy.keep_within {
            let start = UtcTime::from_datetime(now_dt - w);
            for &i in g.iter().filter(|&&i| order[i].descriptor.stop_time > start) {
                keep(i, format!("keep_within = {}: finished inside it", format_span(w)));
            }
        }
        let tiers: [(u32, &str, Period); 3] = [
            (policy.keep_daily, "keep_daily", day_back),
            (policy.keep_weekly, "keep_weekly", week_back),
            (policy.keep_monthly, "keep_monthly", month_back),
        ];
        for (count, rule, period) in tiers {
            for k in 0..count {
                let (from, to, label) = period(now_dt, k);
                let newest = g.iter().rev().find(|&&i| {
                    let t = order[i].descriptor.stop_time.datetime();
                    t >= from && t < to
                });
                if let Some(&i) = newest {
                    keep(i, format!("{rule} = {count}: the newest of {label}"));
                }
            }
        }
    }
    let decisions = order
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let kept = !reasons[i].is_empty();
            let action = match (kept, d.deleting) {
                (true, true) => Action::KeepAndCancelDeletion,
                (true, false) => Action::Keep,
                (false, _) => Action::Delete,
            };
            let why = if kept {
                std::mem::take(&mut reasons[i])
            } else if d.deleting {
                vec!["no rule keeps it; a deletion of it did not finish".into()]
            } else {
                vec!["no rule keeps it".into()]
            };
            decision(d, action, why)
        })
        .collect();
    DumpPlan {
        policy: policy.describe(),
        dumps: decisions,
        folders: folders.iter().map(|f| folder(f, policy, now)).collect(),
    }
}

/// The plan that leaves every dump and dump folder alone (no `[retention.dumps]`, or a run
/// about one backup): `why` says so.
pub fn untouched(dumps: &[Dump], folders: &[DumpFolder], why: &str) -> DumpPlan {
    DumpPlan {
        policy: why.to_string(),
        dumps: ordered(dumps).into_iter().map(|d| decision(d, Action::Keep, vec![why.to_string()])).collect(),
        folders: folders
            .iter()
            .map(|f| FolderDecision { id: f.id.clone(), action: FolderAction::Untouched, reason: why.into() })
            .collect(),
    }
}

/// The plan for `walvault delete --dump ID`: that dump goes (refused for a kept one without
/// `force`), every other stays.
pub fn one(
    dumps: &[Dump],
    folders: &[DumpFolder],
    id: &str,
    force: bool,
) -> Result<DumpPlan, RetentionError> {
    if !layout::is_backup_id(id) {
        return Err(RetentionError::BadDumpId(id.to_string()));
    }
    let known = dumps.iter().find(|d| d.descriptor.id == id);
    let folder = folders.iter().find(|f| f.id == id);
    if known.is_none() && folder.is_none() {
        return Err(RetentionError::UnknownDump(id.to_string()));
    }
    if (known.is_some_and(|d| d.kept) || folder.is_some_and(|f| f.kept)) && !force {
        return Err(RetentionError::DumpKept(id.to_string()));
    }
    Ok(DumpPlan {
        policy: format!("delete dump {id}"),
        dumps: ordered(dumps)
            .into_iter()
            .map(|d| match d.descriptor.id == id {
                true => decision(d, Action::Delete, vec!["asked for with --dump".into()]),
                false => decision(d, Action::Keep, vec!["not asked for".into()]),
            })
            .collect(),
        folders: folder
            .map(|f| FolderDecision {
                id: f.id.clone(),
                action: FolderAction::Delete,
                reason: "asked for with --dump".into(),
            })
            .into_iter()
            .collect(),
    })
}

/// What happens to a dump id without a readable descriptor, and why.
fn folder(f: &DumpFolder, policy: &DumpPolicy, now: UtcTime) -> FolderDecision {
    let (action, reason) = if f.unreadable_descriptor {
        (
            FolderAction::Untouched,
            "its descriptor cannot be read: no policy deletes it (check it; `walvault delete --dump ID \
             --force` removes it)"
                .to_string(),
        )
    } else if f.deleting {
        (FolderAction::Delete, "a deletion that did not finish".into())
    } else {
        match id_time(&f.id) {
            None => (FolderAction::Untouched, "its start time is unknown".into()),
            Some(started) if now.datetime() - started.datetime() < policy.older_than => (
                FolderAction::Untouched,
                format!(
                    "started {started}: may be a dump being taken (older_than = {})",
                    format_span(policy.older_than)
                ),
            ),
            // Still writing: a dump running longer than older_than is no leftover.
            Some(started)
                if f.last_written.is_some_and(|t| now.datetime() - t.datetime() < policy.older_than) =>
            {
                (
                    FolderAction::Untouched,
                    format!(
                        "started {started}, last written {}: may be a dump being taken (older_than = {})",
                        f.last_written.expect("checked"),
                        format_span(policy.older_than)
                    ),
                )
            }
            Some(started) => {
                (FolderAction::Delete, format!("leftovers of a dump started {started} that never finished"))
            }
        }
    };
    FolderDecision { id: f.id.clone(), action, reason }
}

/// Hand-built dumps for the tests of retention, `list` and `mark`.
#[cfg(test)]
pub(crate) mod fixtures {
    use object_store::PutPayload;

    use crate::repo::Storage;
    use crate::repo::descriptor::StoredFile;
    use crate::repo::dumps::{DUMP_FORMAT, Dump, DumpDescriptor, DumpedDatabase, TableRows};
    use crate::repo::layout::{self, Marker};
    use crate::units::UtcTime;

    /// `s` (RFC 3339) as a time.
    pub fn t(s: &str) -> UtcTime {
        s.parse().unwrap()
    }

    /// A dump of `databases` that started at `start` and finished at `stop` (RFC 3339); with
    /// `databases` empty, an `--all-databases` dump of `postgres` and `app` with globals.
    pub fn dump(start: &str, stop: &str, databases: &[&str]) -> Dump {
        let start = t(start);
        let id = layout::backup_id(start.datetime());
        let all = databases.is_empty();
        let names: Vec<&str> = if all { vec!["postgres", "app"] } else { databases.to_vec() };
        let stored =
            |key: String| StoredFile { key, raw_bytes: 1000, stored_bytes: 300, sha256: "00".repeat(32) };
        let databases: Vec<DumpedDatabase> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DumpedDatabase {
                name: n.to_string(),
                object: stored(layout::dump_database(&id, i).to_string()),
                tables: vec![TableRows { schema: "public".into(), table: "t".into(), rows: 3 }],
            })
            .collect();
        let globals = all.then(|| stored(layout::dump_globals(&id).to_string()));
        let objects = databases.len() as u64 + u64::from(all);
        Dump {
            descriptor: DumpDescriptor {
                format: DUMP_FORMAT,
                id: id.clone(),
                label: format!("walvault dump {id}"),
                system_identifier: "7300000000000000001".into(),
                server_version: 170_002,
                pg_dump_version: "pg_dump (PostgreSQL) 17.2".into(),
                start_time: start,
                stop_time: t(stop),
                compression: "zstd:3".into(),
                key_id: None,
                walvault_version: "test".into(),
                databases,
                globals,
                raw_bytes: 1000 * objects,
                stored_bytes: 300 * objects,
            },
            kept: false,
            deleting: false,
        }
    }

    /// Stores `d` as `walvault dump` leaves it: its objects, its descriptor, and its markers.
    pub async fn store(storage: &Storage, d: &Dump) {
        let id = &d.descriptor.id;
        for o in d.descriptor.objects() {
            storage.put(&o.key.as_str().into(), PutPayload::from_static(b"dump bytes")).await.unwrap();
        }
        let json = serde_json::to_vec(&d.descriptor).unwrap();
        storage.put(&layout::dump_descriptor(id), json.into()).await.unwrap();
        for (on, m) in [(d.kept, Marker::Keep), (d.deleting, Marker::Deleting)] {
            if on {
                storage.put(&layout::dump_marker(id, m), PutPayload::from_static(b"")).await.unwrap();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fixtures::{dump, t};
    use super::*;
    use crate::config::retention::DEFAULT_OLDER_THAN;

    fn policy(f: impl FnOnce(&mut DumpPolicy)) -> DumpPolicy {
        let mut p = DumpPolicy {
            retain: None,
            keep_within: None,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            older_than: DEFAULT_OLDER_THAN,
        };
        f(&mut p);
        p
    }

    /// A dump of `app` a day at 02:00 (finished 02:20) for `days` days up to 2026-12-01.
    fn nightly(days: i64, db: &str) -> Vec<Dump> {
        let last = time::Date::from_calendar_date(2026, time::Month::December, 1).unwrap();
        (0..days)
            .rev()
            .map(|k| {
                let d = last - time::Duration::days(k);
                dump(&format!("{d}T02:00:00Z"), &format!("{d}T02:20:00Z"), &[db])
            })
            .collect()
    }

    fn kept(p: &DumpPlan) -> Vec<&str> {
        p.dumps.iter().filter(|d| d.action != Action::Delete).map(|d| &d.id[..8]).collect()
    }

    #[test]
    fn retain_keeps_the_newest_by_stop_time() {
        let mut ds = nightly(5, "app");
        // The oldest id finished last (a slow dump): it is the newest.
        ds[0].descriptor.stop_time = t("2026-12-01T12:00:00Z");
        let p = plan(&ds, &[], &policy(|p| p.retain = Some(2)), t("2026-12-01T13:00:00Z"));
        assert_eq!(kept(&p), ["20261201", "20261127"]);
        assert_eq!(p.deleted().count(), 3);
        assert_eq!(p.bytes_freed(), 3 * 300);
        assert_eq!(p.dumps[4].reasons, ["the newest dump of database \"app\"", "retain = 2"]);
        assert_eq!(p.policy, "retain = 2");
    }

    #[test]
    fn keep_within_keeps_what_finished_inside_and_the_newest_always_stays() {
        let ds = nightly(10, "app");
        let p = plan(
            &ds,
            &[],
            &policy(|p| p.keep_within = Some(Duration::from_secs(3 * 86_400))),
            t("2026-12-01T12:00:00Z"),
        );
        // From 11-28 12:00: 11-29, 11-30, 12-01.
        assert_eq!(kept(&p), ["20261129", "20261130", "20261201"]);
        assert!(p.dumps[9].reasons.iter().any(|r| r == "keep_within = 3d: finished inside it"));
        // A month later nothing is inside the window; the newest stays all the same.
        let p = plan(
            &ds,
            &[],
            &policy(|p| p.keep_within = Some(Duration::from_secs(3 * 86_400))),
            t("2027-01-01T00:00:00Z"),
        );
        assert_eq!(kept(&p), ["20261201"]);
    }

    #[test]
    fn tiers_keep_the_newest_of_each_period() {
        let ds = nightly(70, "app");
        let p = plan(
            &ds,
            &[],
            &policy(|p| {
                p.keep_daily = 3;
                p.keep_weekly = 2;
                p.keep_monthly = 3;
            }),
            t("2026-12-01T18:00:00Z"),
        );
        // Days 12-01, 11-30, 11-29; weeks: this one (12-01), the one ending Sunday 11-29;
        // months: 12-01, 11-30, 10-31.
        assert_eq!(kept(&p), ["20261031", "20261129", "20261130", "20261201"]);
        let october = p.dumps.iter().find(|d| d.id.starts_with("20261031")).unwrap();
        assert_eq!(october.reasons, ["keep_monthly = 3: the newest of 2026-10"]);
    }

    #[test]
    fn each_series_has_its_own_rules() {
        // An hourly dump of `events` for two days must not push out the nightly dumps of `app`.
        let mut ds = nightly(5, "app");
        for h in 0..48 {
            let at = t("2026-11-30T00:30:00Z").datetime() + time::Duration::hours(h);
            let at = UtcTime::from_datetime(at);
            let stop = UtcTime::from_datetime(at.datetime() + time::Duration::minutes(5));
            ds.push(dump(&at.to_string(), &stop.to_string(), &["events"]));
        }
        ds.push(dump("2026-11-01T00:00:00Z", "2026-11-01T03:00:00Z", &[]));
        ds.push(dump("2026-11-02T00:00:00Z", "2026-11-02T03:00:00Z", &[]));
        let p = plan(&ds, &[], &policy(|p| p.retain = Some(3)), t("2026-12-02T00:00:00Z"));
        let kept_of = |s: &str| p.dumps.iter().filter(|d| d.series == s && d.action == Action::Keep).count();
        assert_eq!(kept_of("database \"app\""), 3);
        assert_eq!(kept_of("database \"events\""), 3);
        assert_eq!(kept_of("all databases"), 2);
        assert_eq!(p.deleted().count(), 2 + 45);
        // Order inside the plan is by stop time across series.
        assert!(p.dumps.windows(2).all(|w| w[0].stop_time <= w[1].stop_time));
    }

    #[test]
    fn marks_and_interrupted_deletions() {
        let mut ds = nightly(5, "app");
        ds[0].kept = true;
        ds[1].deleting = true;
        ds[4].deleting = true;
        let p = plan(&ds, &[], &policy(|p| p.retain = Some(1)), t("2026-12-02T00:00:00Z"));
        assert_eq!(p.dumps[0].action, Action::Keep);
        assert_eq!(p.dumps[0].reasons, ["marked keep (walvault mark --keep)"]);
        assert_eq!(p.dumps[1].action, Action::Delete);
        assert!(p.dumps[1].reasons[0].contains("did not finish"));
        assert_eq!(p.dumps[4].action, Action::KeepAndCancelDeletion);
        assert_eq!(kept(&p), ["20261127", "20261201"]);
    }

    #[test]
    fn folders_without_descriptor() {
        let now = t("2026-12-01T12:00:00Z");
        let f = |id: &str| DumpFolder { id: id.into(), has_objects: true, ..Default::default() };
        let folders = [
            DumpFolder { has_started: true, ..f("20261201T110000Z") },
            DumpFolder { has_started: true, ..f("20261120T000000Z") },
            f("20261125T000000Z"),
            DumpFolder { deleting: true, ..f("20261201T100000Z") },
            DumpFolder { unreadable_descriptor: true, ..f("20261001T000000Z") },
            // Started long ago but still writing: a long dump being taken.
            DumpFolder {
                has_started: true,
                last_written: Some(t("2026-12-01T11:59:00Z")),
                ..f("20261110T000000Z")
            },
        ];
        let p = plan(&nightly(2, "app"), &folders, &policy(|p| p.retain = Some(1)), now);
        let got: Vec<(&str, FolderAction)> = p.folders.iter().map(|f| (f.id.as_str(), f.action)).collect();
        assert_eq!(
            got,
            [
                ("20261201T110000Z", FolderAction::Untouched),
                ("20261120T000000Z", FolderAction::Delete),
                ("20261125T000000Z", FolderAction::Delete),
                ("20261201T100000Z", FolderAction::Delete),
                ("20261001T000000Z", FolderAction::Untouched),
                ("20261110T000000Z", FolderAction::Untouched),
            ]
        );
        assert!(p.folders[5].reason.contains("last written 2026-12-01"), "{}", p.folders[5].reason);
        assert!(
            p.folders[0].reason.contains("may be a dump being taken (older_than = 1d)"),
            "{}",
            p.folders[0].reason
        );
        // A longer older_than leaves the 11-25 leftovers for now.
        let p = plan(
            &[],
            &folders[2..3],
            &policy(|p| {
                p.retain = Some(1);
                p.older_than = Duration::from_secs(30 * 86_400);
            }),
            now,
        );
        assert_eq!(p.folders[0].action, FolderAction::Untouched);
    }

    #[test]
    fn untouched_and_one() {
        let mut ds = nightly(3, "app");
        ds[1].kept = true;
        ds[2].deleting = true;
        let folders = [DumpFolder { id: "20261120T000000Z".into(), has_objects: true, ..Default::default() }];
        let p = untouched(&ds, &folders, "no [retention.dumps]");
        assert!(!p.changes_anything());
        assert!(p.dumps.iter().all(|d| d.action == Action::Keep));
        let p = one(&ds, &folders, &ds[0].descriptor.id, false).unwrap();
        assert_eq!(p.deleted().map(|d| d.id.as_str()).collect::<Vec<_>>(), [ds[0].descriptor.id.as_str()]);
        assert!(p.folders.is_empty());
        let p = one(&ds, &folders, "20261120T000000Z", false).unwrap();
        assert_eq!(p.deleted().count(), 0);
        assert_eq!(p.folders[0].action, FolderAction::Delete);
        let id = ds[1].descriptor.id.clone();
        assert!(matches!(one(&ds, &folders, &id, false), Err(RetentionError::DumpKept(_))));
        assert!(one(&ds, &folders, &id, true).is_ok());
        assert!(matches!(one(&ds, &folders, "20200101T000000Z", false), Err(RetentionError::UnknownDump(_))));
        assert!(matches!(one(&ds, &folders, "latest", false), Err(RetentionError::BadDumpId(_))));
    }
}
