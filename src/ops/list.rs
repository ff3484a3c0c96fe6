//! `walvault list`: the repository's backups (from their descriptors, no key needed) with what
//! keeps each (a `mark --keep`, the rules of `[retention]`), the oldest moment a restore can
//! reach, and, per timeline, the ranges of archived WAL with the gaps between them.

use std::fmt::Write as _;

use futures::TryStreamExt;
use serde::Serialize;

use super::retention::plan::{self, Action};
use crate::config::RetentionPolicy;
use crate::repo::descriptor::Descriptor;
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
    Ok(Listing {
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
        let kept = match (lb.kept_by.first(), l.policy.is_some()) {
            (Some(first), _) if lb.kept_by.len() > 1 => format!("{first} (+{} more)", lb.kept_by.len() - 1),
            (Some(first), _) => first.clone(),
            (None, true) => "no: walvault delete would delete it".to_string(),
            (None, false) => "-".to_string(),
        };
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
