//! Whether a status is healthy, by `[status]`'s thresholds and the facts that are always wrong
//! (an unreadable repository, a gap after the newest backup, archiving failing): a pure
//! function, with every reason in words.

use super::model::{Health, HostStatus, RepoStatus};
use super::server::ServerStatus;
use crate::config::Thresholds;
use crate::units::{format_seconds, format_span};

/// Checks a status.
pub fn check(
    t: &Thresholds,
    repo: &RepoStatus,
    host: Option<&HostStatus>,
    server: Option<&ServerStatus>,
) -> Health {
    let mut reasons = Vec::new();
    if !repo.reachable {
        reasons.push(format!(
            "the repository cannot be read: {}",
            repo.error.as_deref().unwrap_or("unknown error")
        ));
    } else {
        if let Some(min) = t.min_backups
            && repo.backups < u64::from(min)
        {
            reasons.push(format!("{} backup(s), fewer than min_backups = {min}", repo.backups));
        }
        if let Some(max) = t.max_backup_age {
            match &repo.newest_backup {
                None => reasons.push("no backup".into()),
                Some(b) if b.age_seconds > max.as_secs() as i64 => reasons.push(format!(
                    "the newest backup, {}, finished {} ago: more than max_backup_age = {}",
                    b.id,
                    format_seconds(b.age_seconds),
                    format_span(max)
                )),
                _ => {}
            }
        }
        if let Some(max) = t.max_wal_age {
            let rpo = server.filter(|s| s.error.is_none() && !s.in_recovery).and_then(|s| s.rpo_seconds);
            match (rpo, repo.newest_wal_age_seconds) {
                (Some(secs), _) if secs > max.as_secs() as i64 => reasons.push(format!(
                    "WAL written {} ago is not archived yet: more than max_wal_age = {} (the RPO)",
                    format_seconds(secs),
                    format_span(max)
                )),
                (Some(_), _) => {}
                (None, Some(age)) if age > max.as_secs() as i64 => reasons.push(format!(
                    "the newest archived WAL, {}, is {} old: more than max_wal_age = {} (the RPO)",
                    repo.newest_wal.as_deref().unwrap_or("?"),
                    format_seconds(age),
                    format_span(max)
                )),
                (None, None) => reasons.push("no WAL archived".into()),
                _ => {}
            }
        }
        for g in repo.wal_gaps.iter().filter(|g| g.after_newest_backup) {
            reasons.push(format!(
                "WAL gap on timeline {}: {} - {} ({} missing) after the newest backup: recovery stops there",
                g.timeline, g.first, g.last, g.segments
            ));
        }
    }
    if let Some(h) = host
        && h.stats.push.failing()
    {
        let f = &h.stats.push.last_failure;
        reasons.push(format!("wal-push is failing: {}: {}", f.file, f.message));
    }
    if let Some(s) = server {
        match &s.error {
            Some(e) => reasons.push(format!("the server cannot be asked: {e}")),
            None if s.archiver_failing() => reasons.push(format!(
                "PostgreSQL's archiver is failing: {} failed at {}",
                s.last_failed_wal.as_deref().unwrap_or("?"),
                s.last_failed_time.map(|t| t.to_string()).unwrap_or_default()
            )),
            None => {}
        }
    }
    Health { healthy: reasons.is_empty(), reasons }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ops::status::model::{GapStatus, NewestBackup};

    fn repo() -> RepoStatus {
        RepoStatus {
            reachable: true,
            backups: 1,
            newest_backup: Some(NewestBackup {
                id: "20261130T000000Z".into(),
                stop_time: "2026-11-30T00:10:00Z".parse().unwrap(),
                age_seconds: 30 * 3600,
                stored_bytes: 1,
                duration_seconds: 600,
            }),
            newest_wal: Some("000000010000000000000009".into()),
            newest_wal_age_seconds: Some(120),
            ..RepoStatus::default()
        }
    }

    #[test]
    fn every_threshold_gives_its_reason() {
        let t = Thresholds {
            max_backup_age: Some(Duration::from_secs(26 * 3600)),
            max_wal_age: Some(Duration::from_secs(60)),
            min_backups: Some(2),
        };
        let h = check(&t, &repo(), None, None);
        assert!(!h.healthy);
        assert_eq!(h.reasons.len(), 3, "{:?}", h.reasons);
        assert!(h.reasons[0].contains("fewer than min_backups = 2"));
        assert!(h.reasons[1].contains("max_backup_age = 26h") && h.reasons[1].contains("30h ago"));
        assert!(h.reasons[2].contains("max_wal_age = 1m"));
        let ok = Thresholds {
            max_backup_age: Some(Duration::from_secs(31 * 3600)),
            max_wal_age: Some(Duration::from_secs(300)),
            min_backups: Some(1),
        };
        assert!(check(&ok, &repo(), None, None).healthy);
        let mut gap = repo();
        gap.wal_gaps.push(GapStatus {
            timeline: 1,
            first: "a".into(),
            last: "b".into(),
            segments: 2,
            after_newest_backup: true,
        });
        gap.wal_gaps.push(GapStatus {
            timeline: 1,
            first: "c".into(),
            last: "c".into(),
            segments: 1,
            after_newest_backup: false,
        });
        assert_eq!(check(&Thresholds::default(), &gap, None, None).reasons.len(), 1);
        let down = RepoStatus { reachable: false, error: Some("timed out".into()), ..RepoStatus::default() };
        assert!(check(&Thresholds::default(), &down, None, None).reasons[0].contains("timed out"));
    }
}
