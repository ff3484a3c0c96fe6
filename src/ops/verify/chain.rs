//! Whether the archived WAL a backup needs is all there, without reading any WAL: from the
//! backup's start to its stop (to be consistent), and from its start to the newest archived
//! segment along the timeline a recovery would follow (`recovery_target_timeline = latest`: the
//! newest timeline whose history leads back to the backup), switching timelines where the
//! history files say. Pure functions of the archived segment numbers per timeline.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::repo::inventory::TimelineWal;
use crate::wal::history::History;
use crate::wal::{Lsn, SegmentName, TimelineId, WalFileName, WalSegSize};

/// The archived segments of each timeline, as ranges of segment numbers.
#[derive(Clone, Debug)]
pub struct Archived {
    per: BTreeMap<u32, Vec<(u64, u64)>>,
    seg_size: WalSegSize,
}

/// A run of missing segments on one timeline.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Gap {
    /// The timeline.
    pub timeline: u32,
    /// The first missing segment.
    pub first: String,
    /// The last missing segment.
    pub last: String,
    /// How many are missing.
    pub segments: u64,
}

impl Archived {
    /// From the inventory's ranges.
    pub fn new(wal: &[TimelineWal], seg_size: WalSegSize) -> Archived {
        let segno = |name: &str| -> Option<u64> {
            Some(name.parse::<WalFileName>().ok()?.segment()?.segno(seg_size))
        };
        let per = wal
            .iter()
            .map(|t| {
                (
                    t.timeline,
                    t.ranges.iter().filter_map(|r| Some((segno(&r.first)?, segno(&r.last)?))).collect(),
                )
            })
            .collect();
        Archived { per, seg_size }
    }

    /// The newest archived segment of `tli`.
    pub fn newest(&self, tli: TimelineId) -> Option<u64> {
        self.per.get(&tli.get()).and_then(|r| r.last()).map(|r| r.1)
    }

    /// The segments of `[first, last]` on `tli` that are not archived, as runs.
    pub fn missing(&self, tli: TimelineId, first: u64, last: u64) -> Vec<Gap> {
        let mut gaps = Vec::new();
        if first > last {
            return gaps;
        }
        let mut at = first;
        for &(a, b) in self.per.get(&tli.get()).map(Vec::as_slice).unwrap_or(&[]) {
            if b < at {
                continue;
            }
            if a > last {
                break;
            }
            if a > at {
                gaps.push(self.gap(tli, at, a - 1));
            }
            at = b + 1;
            if at > last {
                return gaps;
            }
        }
        if at <= last {
            gaps.push(self.gap(tli, at, last));
        }
        gaps
    }

    fn gap(&self, tli: TimelineId, a: u64, b: u64) -> Gap {
        let name = |n| SegmentName::from_segno(tli, n, self.seg_size).to_string();
        Gap { timeline: tli.get(), first: name(a), last: name(b), segments: b - a + 1 }
    }

    fn seg(&self, l: Lsn) -> u64 {
        l.segment_no(self.seg_size)
    }

    /// What is missing of the WAL from `start` to `stop` on `tli` (a backup's consistency).
    pub fn consistency_gaps(&self, tli: TimelineId, start: Lsn, stop: Lsn) -> Vec<Gap> {
        self.missing(tli, self.seg(start), self.seg(stop))
    }

    /// The timeline a recovery from `tli` at `start` follows (the newest whose history leads
    /// back to it), and what is missing on the way from `start` to the newest archived segment.
    pub fn chain_gaps(&self, histories: &[History], tli: TimelineId, start: Lsn) -> (TimelineId, Vec<Gap>) {
        let target = histories.iter().filter(|h| h.descends_from(tli, start)).max_by_key(|h| h.timeline);
        let path = match target {
            Some(h) => h.path_from(tli, start),
            None => vec![(tli, start, None)],
        };
        let mut gaps = Vec::new();
        for (t, from, to) in &path {
            let first = self.seg(*from);
            let last = match to {
                // The segment holding the switch point is read from the new timeline.
                Some(switch) if self.seg(*switch) > first => self.seg(*switch) - 1,
                Some(_) => continue,
                None => match self.newest(*t) {
                    Some(n) => n,
                    None => continue,
                },
            };
            gaps.extend(self.missing(*t, first, last));
        }
        (target.map_or(tli, |h| h.timeline), gaps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::inventory::wal_ranges;

    const SEG: u64 = 16 << 20;

    fn tl(n: u32) -> TimelineId {
        TimelineId::new(n).unwrap()
    }

    fn archived(segs: &[(u32, u64)]) -> Archived {
        let names = segs
            .iter()
            .map(|&(t, n)| WalFileName::Segment(SegmentName::from_segno(tl(t), n, WalSegSize::DEFAULT)));
        Archived::new(&wal_ranges(names, WalSegSize::DEFAULT), WalSegSize::DEFAULT)
    }

    #[test]
    fn gaps_are_named_first_to_last() {
        let a = archived(&[(1, 2), (1, 3), (1, 6), (1, 9), (1, 10)]);
        let g = a.missing(tl(1), 1, 12);
        let runs: Vec<(String, String, u64)> =
            g.iter().map(|g| (g.first[16..].to_string(), g.last[16..].to_string(), g.segments)).collect();
        assert_eq!(
            runs,
            [
                ("00000001".to_string(), "00000001".to_string(), 1),
                ("00000004".to_string(), "00000005".to_string(), 2),
                ("00000007".to_string(), "00000008".to_string(), 2),
                ("0000000B".to_string(), "0000000C".to_string(), 2),
            ]
        );
        assert!(a.missing(tl(1), 2, 3).is_empty());
        assert_eq!(a.missing(tl(2), 5, 5).len(), 1);
        assert!(a.consistency_gaps(tl(1), Lsn(9 * SEG + 40), Lsn(10 * SEG + 5)).is_empty());
        assert_eq!(a.consistency_gaps(tl(1), Lsn(3 * SEG + 40), Lsn(6 * SEG)).len(), 1);
    }

    #[test]
    fn the_chain_follows_the_newest_timeline_that_leads_back() {
        // Timeline 1: 1..=9; promoted at 0/6000100 to timeline 2 (10.. on 2 from 6); a dead-end
        // timeline 3 forked from 1 at 0/3000000 before the backup.
        let mut segs: Vec<(u32, u64)> = (1..=9).map(|n| (1, n)).collect();
        segs.extend((6..=12).map(|n| (2, n)));
        segs.extend((3..=4).map(|n| (3, n)));
        let a = archived(&segs);
        let h2 = History::parse(tl(2), "1\t0/6000100\tx\n").unwrap();
        let h3 = History::parse(tl(3), "1\t0/3000000\tx\n").unwrap();
        let (target, gaps) = a.chain_gaps(&[h2.clone(), h3.clone()], tl(1), Lsn(4 * SEG + 40));
        assert_eq!(target, tl(2));
        assert!(gaps.is_empty(), "{gaps:?}");
        // A missing segment on the old timeline before the switch is a gap; the switch segment
        // of the old timeline is not needed.
        let mut holes = segs.clone();
        holes.retain(|s| *s != (1, 5) && *s != (1, 6));
        let (_, gaps) = archived(&holes).chain_gaps(&[h2.clone(), h3], tl(1), Lsn(4 * SEG + 40));
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].timeline, &gaps[0].first[16..], gaps[0].segments), (1, "00000005", 1));
        // A gap on the new timeline.
        let mut holes = segs.clone();
        holes.retain(|s| *s != (2, 8));
        let (_, gaps) = archived(&holes).chain_gaps(&[h2], tl(1), Lsn(4 * SEG + 40));
        assert_eq!((gaps[0].timeline, &gaps[0].first[16..]), (2, "00000008"));
        // No history: the backup's own timeline to its newest segment.
        let (target, gaps) = a.chain_gaps(&[], tl(1), Lsn(SEG));
        assert_eq!(target, tl(1));
        assert!(gaps.is_empty());
    }
}
