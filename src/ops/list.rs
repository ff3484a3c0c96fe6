//! `walvault list`: the repository's backups (from their descriptors, no key needed) with what
//! keeps each (a `mark --keep`, the rules of `[retention]`), the oldest moment a restore can
//! reach, the logical dumps with what keeps each (`[retention.dumps]`), and, per timeline, the
//! ranges of archived WAL with the gaps between them.

use std::fmt::Write as _;

use futures::TryStreamExt;
use serde::Serialize;

use super::retention::dumps as dump_plan;
use super::retention::plan::{self, Action};
use crate::config::RetentionPolicy;
use crate::repo::descriptor::Descriptor;
use crate::repo::dumps::{self, DumpDescriptor};
use crate::repo::identity::{self, IdentityError};
use crate::repo::inventory::{self, TimelineWal, WalRanges};
use crate::repo::{Storage, StorageError};
use crate::units::{UtcTime, human};
use crate::wal::{WalFileName, WalSegSize};

/// What `list` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// The repository URL.
    pub repo: String,
    /// The cluster's system identifier, if the repository has one.
    pub system_identifier: Option<String>,
    /// Every backup, oldest first.
    pub backups: Vec<Listed>,
    /// Backups being taken (or left by one that failed): ids with no descriptor.
    pub without_descriptor: Vec<String>,
    /// The `[retention]` rules the `keep` reasons come from, if any.
    pub policy: Option<String>,
    /// The oldest moment a restore can reach: the stop time of the oldest backup whose WAL from
    /// start to stop is all archived.
    pub oldest_restorable: Option<UtcTime>,
    /// Archived WAL per timeline.
    pub wal: Vec<TimelineWal>,
    /// Every logical dump, oldest first.
    pub dumps: Vec<ListedDump>,
    /// Dumps being taken (or left by one that failed): ids with no descriptor.
    pub dumps_without_descriptor: Vec<String>,
    /// The `[retention.dumps]` rules the dumps' `kept_by` come from, if any.
    pub dump_policy: Option<String>,
}

/// One dump as `list` shows it: its descriptor's fields, and what keeps it.
#[derive(Clone, Debug, Serialize)]
pub struct ListedDump {
    /// The descriptor.
    #[serde(flatten)]
    pub descriptor: DumpDescriptor,
    /// Marked keep (`walvault mark --keep`).
    pub marked_keep: bool,
    /// The rules that keep it now (the mark, `[retention.dumps]`'s rules); empty when `walvault
    /// delete` would delete it, or when no dump policy is configured and it is not marked.
    pub kept_by: Vec<String>,
}

/// One backup as `list` shows it: its descriptor's fields, and what keeps it.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// The descriptor.
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// Marked keep (`walvault mark --keep`).
    pub marked_keep: bool,
    /// The rules that keep it now (the mark, `[retention]`'s rules); empty when `walvault
    /// delete` would delete it, or when no policy is configured and it is not marked.
    pub kept_by: Vec<String>,
    /// Whether its WAL from start to stop is all archived (it can be restored).
    pub consistent_wal: bool,
}

/// Why the repository could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Its identity is unreadable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Reads everything `list` shows; `policy` (when it has rules) says what keeps each backup.
pub async fn listing(storage: &Storage, policy: &RetentionPolicy) -> Result<Listing, ListError> {
    let identity = identity::read(storage).await?;
    let seg_size = identity
        .as_ref()
        .and_then(|i| WalSegSize::new(u64::from(i.wal_segment_size)).ok())
        .unwrap_or(WalSegSize::DEFAULT);
    // One wal/<TLI+LOG>/ folder at a time: memory grows with the ranges, not the segments.
    let mut wal = WalRanges::new(seg_size);
    let files = inventory::wal_files(storage);
    futures::pin_mut!(files);
    while let Some((_, objects)) = files.try_next().await? {
        objects.into_iter().for_each(|o| wal.add(o.name));
    }
    let wal = wal.finish();
    let all = inventory::backups(storage).await?;
    let plan =
        policy.has_rules().then(|| plan::plan(&all.backups, &all.without_descriptor, policy, UtcTime::now()));
    let mut backups: Vec<Listed> = all
        .backups
        .iter()
        .map(|b| {
            let d = &b.descriptor;
            let kept_by = match &plan {
                Some(p) => p
                    .backups
                    .iter()
                    .find(|x| x.id == d.id && x.action != Action::Delete)
                    .map(|x| x.reasons.clone())
                    .unwrap_or_default(),
                None if b.kept => vec!["marked keep (walvault mark --keep)".to_string()],
                None => Vec::new(),
            };
            Listed {
                descriptor: d.clone(),
                marked_keep: b.kept,
                kept_by,
                consistent_wal: covered(&wal, d, seg_size),
            }
        })
        .collect();
    backups.sort_by(|a, b| a.descriptor.id.cmp(&b.descriptor.id));
    let oldest_restorable = backups.iter().filter(|b| b.consistent_wal).map(|b| b.descriptor.stop_time).min();
    let all_dumps = dumps::dumps(storage).await?;
    let dplan = policy
        .dumps
        .as_ref()
        .map(|p| dump_plan::plan(&all_dumps.dumps, &all_dumps.without_descriptor, p, UtcTime::now()));
    let listed_dumps = all_dumps
        .dumps
        .iter()
        .map(|d| {
            let kept_by = match &dplan {
                Some(p) => p
                    .dumps
                    .iter()
                    .find(|x| x.id == d.descriptor.id && x.action != Action::Delete)
                    .map(|x| x.reasons.clone())
                    .unwrap_or_default(),
                None if d.kept => vec!["marked keep (walvault mark --keep)".to_string()],
                None => Vec::new(),
            };
            ListedDump { descriptor: d.descriptor.clone(), marked_keep: d.kept, kept_by }
        })
        .collect();
    Ok(Listing {
        dumps: listed_dumps,
        dumps_without_descriptor: all_dumps.without_descriptor.iter().map(|f| f.id.clone()).collect(),
        dump_policy: dplan.map(|p| p.policy),
        repo: storage.url().to_string(),
        system_identifier: identity.map(|i| i.system_identifier),
        without_descriptor: all.without_descriptor.iter().map(|f| f.id.clone()).collect(),
        policy: plan.map(|p| p.policy),
        oldest_restorable,
        backups,
        wal,
    })
}

/// Whether every segment from `d`'s start to its stop is archived on its timeline.
fn covered(wal: &[TimelineWal], d: &Descriptor, seg_size: WalSegSize) -> bool {
    let (first, last) = (d.start_lsn.segment_no(seg_size), d.stop_lsn.segment_no(seg_size));
    let segno =
        |name: &str| -> Option<u64> { Some(name.parse::<WalFileName>().ok()?.segment()?.segno(seg_size)) };
    wal.iter().filter(|t| t.timeline == d.timeline.get()).any(|t| {
        t.ranges.iter().any(
            |r| matches!((segno(&r.first), segno(&r.last)), (Some(a), Some(b)) if a <= first && last <= b),
        )
    })
}

/// What keeps a backup or dump, in one cell.
fn kept_cell(kept_by: &[String], policy: bool) -> String {
    match (kept_by.first(), policy) {
        (Some(first), _) if kept_by.len() > 1 => format!("{first} (+{} more)", kept_by.len() - 1),
        (Some(first), _) => first.clone(),
        (None, true) => "no: walvault delete would delete it".to_string(),
        (None, false) => "-".to_string(),
    }
}

/// The dumps' table of the text listing.
fn render_dumps(s: &mut String, l: &Listing) {
    let _ = writeln!(s, "\ndumps: {}", l.dumps.len());
    if !l.dumps.is_empty() {
        let _ = writeln!(
            s,
            "  {:<18} {:<20} {:<30} {:>10} {:>10}  kept",
            "id", "finished (UTC)", "databases", "size", "stored"
        );
    }
    for ld in &l.dumps {
        let d = &ld.descriptor;
        let mut dbs = d.databases.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ");
        if d.globals.is_some() {
            dbs = format!("all: {dbs}");
        }
        if dbs.chars().count() > 30 {
            dbs = format!("{}…", dbs.chars().take(29).collect::<String>());
        }
        let _ = writeln!(
            s,
            "  {:<18} {:<20} {:<30} {:>10} {:>10}  {}",
            d.id,
            d.stop_time.to_string().trim_end_matches('Z').replace('T', " "),
            dbs,
            human(d.raw_bytes),
            human(d.stored_bytes),
            kept_cell(&ld.kept_by, l.dump_policy.is_some())
        );
    }
    for id in &l.dumps_without_descriptor {
        let _ = writeln!(s, "  {id:<18} (no descriptor: being taken, or left by a dump that failed)");
    }
    if let Some(p) = &l.dump_policy {
        let _ = writeln!(s, "dump retention policy: {p}");
    }
}

/// The listing as text for a person.
pub fn render(l: &Listing) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "repository {} (system identifier {})",
        l.repo,
        l.system_identifier.as_deref().unwrap_or("none: nothing archived yet")
    );
    let _ = writeln!(s, "\nbackups: {}", l.backups.len());
    if !l.backups.is_empty() {
        let _ = writeln!(
            s,
            "  {:<18} {:<20} {:<20} {:>3} {:>12} {:>12} {:>10} {:>10} {:>6}",
            "id",
            "started (UTC)",
            "finished (UTC)",
            "tli",
            "start lsn",
            "stop lsn",
            "size",
            "stored",
            "ratio"
        );
    }
    for lb in &l.backups {
        let b = &lb.descriptor;
        let kept = kept_cell(&lb.kept_by, l.policy.is_some());
        let missing = if lb.consistent_wal { "" } else { "  [WAL from start to stop is NOT all archived]" };
        let _ = writeln!(
            s,
            "  {:<18} {:<20} {:<20} {:>3} {:>12} {:>12} {:>10} {:>10} {:>5.1}%  {kept}{missing}",
            b.id,
            b.start_time.to_string().trim_end_matches('Z').replace('T', " "),
            b.stop_time.to_string().trim_end_matches('Z').replace('T', " "),
            b.timeline,
            b.start_lsn,
            b.stop_lsn,
            human(b.raw_bytes),
            human(b.stored_bytes),
            100.0 * b.ratio()
        );
    }
    for id in &l.without_descriptor {
        let _ = writeln!(s, "  {id:<18} (no descriptor: being taken, or left by a backup that failed)");
    }
    if let Some(p) = &l.policy {
        let _ = writeln!(s, "retention policy: {p}");
    }
    match l.oldest_restorable {
        Some(t) => {
            let _ = writeln!(s, "oldest moment a restore can reach: {t}");
        }
        None => {
            let _ = writeln!(s, "nothing can be restored yet: no backup with its WAL archived");
        }
    }
    render_dumps(&mut s, l);
    let _ = writeln!(s, "\nwal:");
    if l.wal.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for t in &l.wal {
        let hist = if t.history { " (history file archived)" } else { "" };
        let _ = writeln!(s, "  timeline {}{hist}", t.timeline);
        let mut gaps = t.gaps.iter();
        for r in &t.ranges {
            let _ = writeln!(s, "    {} - {}  {} segments", r.first, r.last, r.segments);
            if let Some(g) = gaps.next() {
                let _ = writeln!(s, "    GAP {} - {}  {} missing", g.first, g.last, g.segments);
            }
        }
        for p in &t.partial {
            let _ = writeln!(s, "    {p}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;
    use crate::config::DumpPolicy;
    use crate::ops::retention::dumps::fixtures::{dump, store};
    use crate::repo::layout;
    use crate::repo::retry::RetryPolicy;
    use crate::repo::testutil::mem_storage;

    #[tokio::test]
    async fn dumps_are_listed_beside_backups_with_what_keeps_them() {
        let s =
            mem_storage(Arc::new(InMemory::new()), RetryPolicy::new(0, std::time::Duration::from_secs(5)));
        let none = listing(&s, &RetentionPolicy::default()).await.unwrap();
        assert!(render(&none).contains("\ndumps: 0\n"), "{}", render(&none));
        let mut old = dump("2026-11-01T02:00:00Z", "2026-11-01T02:20:00Z", &["app", "billing"]);
        old.kept = true;
        let older = dump("2026-11-02T02:00:00Z", "2026-11-02T02:20:00Z", &["app", "billing"]);
        // Finished long ago: whatever `now` is, retain = 1 keeps only the newest.
        let new = dump("2026-11-03T02:00:00Z", "2026-11-03T02:20:00Z", &["app", "billing"]);
        let all = dump("2026-11-03T03:00:00Z", "2026-11-03T03:40:00Z", &[]);
        for d in [&old, &older, &new, &all] {
            store(&s, d).await;
        }
        s.put(
            &layout::dump_marker("20261203T020000Z", layout::Marker::Started),
            PutPayload::from_static(b""),
        )
        .await
        .unwrap();
        // Without [retention.dumps]: only the mark keeps.
        let l = listing(&s, &RetentionPolicy::default()).await.unwrap();
        assert_eq!(l.dumps.len(), 4);
        assert_eq!(l.dumps_without_descriptor, ["20261203T020000Z"]);
        assert_eq!(l.dump_policy, None);
        let text = render(&l);
        assert!(text.contains("\ndumps: 4\n  id "), "{text}");
        assert!(text.contains("databases"), "{text}");
        let row = text.lines().find(|r| r.contains(&old.descriptor.id)).unwrap();
        assert!(row.contains("2026-11-01 02:20:00") && row.contains("app, billing"), "{row}");
        assert!(row.ends_with("marked keep (walvault mark --keep)"), "{row}");
        let row = text.lines().find(|r| r.contains(&all.descriptor.id)).unwrap();
        assert!(row.contains("all: postgres, app") && row.ends_with("  -"), "{row}");
        assert!(
            text.contains("20261203T020000Z   (no descriptor: being taken, or left by a dump that failed)")
        );
        // Backups' part is as it was.
        assert!(text.starts_with(
            "repository memory:// (system identifier none: nothing archived yet)\n\nbackups: 0\n"
        ));
        // With [retention.dumps]: the rules' reasons, and what delete would delete.
        let policy = RetentionPolicy {
            dumps: Some(DumpPolicy {
                retain: Some(1),
                keep_within: None,
                keep_daily: 0,
                keep_weekly: 0,
                keep_monthly: 0,
                older_than: crate::config::retention::DEFAULT_OLDER_THAN,
            }),
            ..Default::default()
        };
        let l = listing(&s, &policy).await.unwrap();
        let text = render(&l);
        assert!(text.contains("dump retention policy: retain = 1"), "{text}");
        let row = text.lines().find(|r| r.contains(&older.descriptor.id)).unwrap();
        assert!(row.ends_with("no: walvault delete would delete it"), "{row}");
        let row = text.lines().find(|r| r.contains(&new.descriptor.id)).unwrap();
        assert!(row.ends_with("the newest dump of database \"app\", \"billing\" (+1 more)"), "{row}");
        let json = serde_json::to_value(&l).unwrap();
        let dumps = json["dumps"].as_array().unwrap();
        assert_eq!(dumps.len(), 4);
        assert_eq!(dumps[0]["id"], old.descriptor.id.as_str());
        assert_eq!(dumps[0]["marked_keep"], true);
        assert_eq!(dumps[0]["databases"][1]["name"], "billing");
        assert_eq!(dumps[1]["kept_by"].as_array().unwrap().len(), 0);
        assert_eq!(json["dumps_without_descriptor"][0], "20261203T020000Z");
        assert_eq!(json["dump_policy"], "retain = 1");
        assert!(json["backups"].as_array().unwrap().is_empty());
    }
}
