//! `walvault list`: the repository's backups (from their descriptors, no key needed) and, per
//! timeline, the ranges of archived WAL with the gaps between them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use object_store::path::Path;
use serde::Serialize;

use crate::backup::descriptor::{Descriptor, list_backups};
use crate::backup::progress::human;
use crate::identity::{self, IdentityError};
use crate::lsn::WalSegSize;
use crate::storage::{Storage, StorageError};
use crate::walname::{SegmentName, WalFileName};

/// A run of consecutive segments on one timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Range {
    /// The first segment.
    pub first: String,
    /// The last segment.
    pub last: String,
    /// How many segments.
    pub segments: u64,
}

/// The archived WAL of one timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TimelineWal {
    /// The timeline.
    pub timeline: u32,
    /// Runs of consecutive segments, in order.
    pub ranges: Vec<Range>,
    /// The missing runs between them, in order.
    pub gaps: Vec<Range>,
    /// `.partial` segments of this timeline.
    pub partial: Vec<String>,
    /// Whether its `.history` file is archived.
    pub history: bool,
}

/// What `list` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// The repository URL.
    pub repo: String,
    /// The cluster's system identifier, if the repository has one.
    pub system_identifier: Option<String>,
    /// Every backup, oldest first.
    pub backups: Vec<Descriptor>,
    /// Archived WAL per timeline.
    pub wal: Vec<TimelineWal>,
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

/// Groups WAL file names into per-timeline ranges and gaps.
pub fn wal_ranges(names: impl IntoIterator<Item = WalFileName>, seg_size: WalSegSize) -> Vec<TimelineWal> {
    let mut per: BTreeMap<u32, (Vec<u64>, Vec<String>, bool)> = BTreeMap::new();
    for n in names {
        let e = per.entry(n.timeline().get()).or_default();
        match n {
            WalFileName::Segment(s) => e.0.push(s.segno(seg_size)),
            WalFileName::Partial(_) => e.1.push(n.to_string()),
            WalFileName::History(_) => e.2 = true,
            WalFileName::BackupLabel { .. } => {}
        }
    }
    per.into_iter()
        .map(|(tli, (mut segnos, mut partial, history))| {
            segnos.sort_unstable();
            segnos.dedup();
            partial.sort();
            let timeline = crate::lsn::TimelineId::new(tli).expect("parsed names have timelines above 0");
            let name = |segno| SegmentName::from_segno(timeline, segno, seg_size).to_string();
            let range = |a: u64, b: u64| Range { first: name(a), last: name(b), segments: b - a + 1 };
            let (mut ranges, mut gaps) = (Vec::new(), Vec::new());
            let mut it = segnos.into_iter();
            if let Some(first) = it.next() {
                let (mut start, mut prev) = (first, first);
                for s in it {
                    if s != prev + 1 {
                        ranges.push(range(start, prev));
                        gaps.push(range(prev + 1, s - 1));
                        start = s;
                    }
                    prev = s;
                }
                ranges.push(range(start, prev));
            }
            TimelineWal { timeline: tli, ranges, gaps, partial, history }
        })
        .collect()
}

/// Reads everything `list` shows.
pub async fn listing(storage: &Storage) -> Result<Listing, ListError> {
    let identity = identity::read(storage).await?;
    let seg_size = identity
        .as_ref()
        .and_then(|i| WalSegSize::new(u64::from(i.wal_segment_size)).ok())
        .unwrap_or(WalSegSize::DEFAULT);
    let names = storage
        .list(&Path::from("wal"))
        .await?
        .into_iter()
        .filter_map(|m| m.location.filename().and_then(|f| f.parse::<WalFileName>().ok()));
    Ok(Listing {
        repo: storage.url().to_string(),
        system_identifier: identity.map(|i| i.system_identifier),
        backups: list_backups(storage).await?,
        wal: wal_ranges(names, seg_size),
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
    for b in &l.backups {
        let _ = writeln!(
            s,
            "  {:<18} {:<20} {:<20} {:>3} {:>12} {:>12} {:>10} {:>10} {:>5.1}%",
            b.id,
            b.start_time.trim_end_matches('Z').replace('T', " "),
            b.stop_time.trim_end_matches('Z').replace('T', " "),
            b.timeline,
            b.start_lsn,
            b.stop_lsn,
            human(b.raw_bytes),
            human(b.stored_bytes),
            100.0 * b.ratio()
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(tli: u32, n: u64) -> WalFileName {
        WalFileName::Segment(SegmentName::from_segno(
            crate::lsn::TimelineId::new(tli).unwrap(),
            n,
            WalSegSize::DEFAULT,
        ))
    }

    #[test]
    fn ranges_and_gaps_per_timeline() {
        let mut names: Vec<WalFileName> = [1, 2, 3, 7, 8, 300].iter().map(|&n| seg(1, n)).collect();
        names.push(seg(2, 8));
        names.push("00000002.history".parse().unwrap());
        names.push("000000010000000000000008.partial".parse().unwrap());
        let wal = wal_ranges(names, WalSegSize::DEFAULT);
        assert_eq!(wal.len(), 2);
        let t1 = &wal[0];
        let r: Vec<(&str, &str, u64)> =
            t1.ranges.iter().map(|r| (r.first.as_str(), r.last.as_str(), r.segments)).collect();
        assert_eq!(
            r,
            [
                ("000000010000000000000001", "000000010000000000000003", 3),
                ("000000010000000000000007", "000000010000000000000008", 2),
                ("00000001000000010000002C", "00000001000000010000002C", 1),
            ]
        );
        assert_eq!(t1.gaps[0].first, "000000010000000000000004");
        assert_eq!(t1.gaps[0].segments, 3);
        assert_eq!(t1.gaps[1].segments, 300 - 9);
        assert_eq!(t1.partial, ["000000010000000000000008.partial"]);
        assert!(wal[1].history && wal[1].gaps.is_empty());
    }
}
