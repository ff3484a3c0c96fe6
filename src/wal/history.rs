//! Timeline history files (`00000002.history`), as PostgreSQL writes them when a server is
//! promoted: one line per ancestor timeline, `parentTLI<TAB>switchpoint<TAB>reason`, oldest first
//! (blank lines and `#` comments allowed). Parsed without IO.

use std::fmt;

use thiserror::Error;

use super::lsn::{Lsn, TimelineId};

/// One ancestor in a history file: timeline `parent` ended at `switch`, where its child began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ancestor {
    /// The ancestor timeline.
    pub parent: TimelineId,
    /// Where it ended (the first position of the next timeline).
    pub switch: Lsn,
}

/// The history of one timeline: its ancestors, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// The timeline this history is of.
    pub timeline: TimelineId,
    /// Its ancestors, oldest first; the last one is its parent.
    pub ancestors: Vec<Ancestor>,
}

/// Why a history file does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("timeline {timeline}'s history file, line {line}: {why}")]
pub struct HistoryError {
    timeline: TimelineId,
    line: usize,
    why: String,
}

impl History {
    /// Parses the history file of `timeline`.
    pub fn parse(timeline: TimelineId, text: &str) -> Result<History, HistoryError> {
        let mut ancestors: Vec<Ancestor> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| HistoryError { timeline, line: i + 1, why: why.to_string() };
            let mut fields = line.split_whitespace();
            let parent = fields
                .next()
                .and_then(|t| t.parse::<u32>().ok())
                .and_then(|t| TimelineId::new(t).ok())
                .ok_or_else(|| bad("no parent timeline"))?;
            let switch: Lsn =
                fields.next().and_then(|l| l.parse().ok()).ok_or_else(|| bad("no switch point"))?;
            if parent >= timeline || ancestors.last().is_some_and(|a| a.parent >= parent || a.switch > switch)
            {
                return Err(bad("timelines and switch points must increase"));
            }
            ancestors.push(Ancestor { parent, switch });
        }
        Ok(History { timeline, ancestors })
    }

    /// Where this timeline began (its parent's switch point); `None` for a timeline without
    /// ancestors.
    pub fn begins_at(&self) -> Option<Lsn> {
        self.ancestors.last().map(|a| a.switch)
    }

    /// Whether a server on `tli` at `lsn` can follow this timeline: `tli` is this timeline, or
    /// one of its ancestors that ended after `lsn`.
    pub fn descends_from(&self, tli: TimelineId, lsn: Lsn) -> bool {
        tli == self.timeline || self.ancestors.iter().any(|a| a.parent == tli && a.switch >= lsn)
    }

    /// The pieces of WAL a recovery from `tli` at `from` follows to reach this timeline: each
    /// `(timeline, from, to)`, `to = None` for this timeline itself (to the end of its WAL).
    pub fn path_from(&self, tli: TimelineId, from: Lsn) -> Vec<(TimelineId, Lsn, Option<Lsn>)> {
        let mut out = Vec::new();
        let mut at = from;
        let mut on = false;
        for a in &self.ancestors {
            on |= a.parent == tli;
            if on {
                out.push((a.parent, at, Some(a.switch)));
                at = a.switch;
            }
        }
        if on || tli == self.timeline {
            out.push((self.timeline, at, None));
        }
        out
    }
}

impl fmt::Display for Ancestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeline {} until {}", self.parent, self.switch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl(n: u32) -> TimelineId {
        TimelineId::new(n).unwrap()
    }

    #[test]
    fn parses_what_postgres_writes() {
        let text = "1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point \"x\"\n";
        let h = History::parse(tl(3), text).unwrap();
        assert_eq!(
            h.ancestors,
            [
                Ancestor { parent: tl(1), switch: Lsn(0x3000158) },
                Ancestor { parent: tl(2), switch: Lsn(0x5000000) }
            ]
        );
        assert_eq!(h.begins_at(), Some(Lsn(0x5000000)));
        assert!(h.descends_from(tl(1), Lsn(0x2000000)));
        assert!(!h.descends_from(tl(1), Lsn(0x4000000)));
        assert!(h.descends_from(tl(3), Lsn(0x9000000)));
        assert_eq!(
            h.path_from(tl(1), Lsn(0x1000028)),
            [
                (tl(1), Lsn(0x1000028), Some(Lsn(0x3000158))),
                (tl(2), Lsn(0x3000158), Some(Lsn(0x5000000))),
                (tl(3), Lsn(0x5000000), None)
            ]
        );
        assert_eq!(
            h.path_from(tl(2), Lsn(0x4000000)),
            [(tl(2), Lsn(0x4000000), Some(Lsn(0x5000000))), (tl(3), Lsn(0x5000000), None)]
        );
        assert_eq!(h.path_from(tl(3), Lsn(0x6000000)), [(tl(3), Lsn(0x6000000), None)]);
    }

    #[test]
    fn refuses_what_postgres_never_writes() {
        for bad in ["x\t0/1\n", "1\n", "1\tnot-an-lsn\n", "2\t0/1\treason\n", "1\t0/5\n1\t0/6\n", "0\t0/1\n"]
        {
            assert!(History::parse(tl(2), bad).is_err(), "{bad:?}");
        }
        assert!(History::parse(tl(3), "2\t0/5\n1\t0/6\n").is_err());
    }
}
