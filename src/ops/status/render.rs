//! A status as text for a person, and in Prometheus's text exposition format (pure functions of
//! a [`Status`]). Metric names start with `walvault_` and carry their unit; counters end in
//! `_total`; every family has its HELP and TYPE lines.

use std::fmt::Write as _;

use super::model::Status;
use crate::state::stats::Counters;
use crate::units::{UtcTime, format_seconds, human};

/// The status as text.
pub fn text(s: &Status) -> String {
    let mut o = String::new();
    let r = &s.repo;
    let _ = writeln!(o, "repository {}", r.url);
    if !r.reachable {
        let _ = writeln!(o, "  cannot be read: {}", r.error.as_deref().unwrap_or("?"));
    } else {
        let _ =
            writeln!(o, "  backups: {} ({} being taken or failed)", r.backups, r.backups_without_descriptor);
        match &r.newest_backup {
            Some(b) => {
                let _ = writeln!(
                    o,
                    "  newest backup: {} finished {} ({} ago), {}, took {}",
                    b.id,
                    b.stop_time,
                    format_seconds(b.age_seconds),
                    human(b.stored_bytes),
                    format_seconds(b.duration_seconds)
                );
            }
            None => {
                let _ = writeln!(o, "  newest backup: none");
            }
        }
        if let Some(t) = r.oldest_restorable {
            let _ = writeln!(o, "  oldest restorable moment: {t}");
        }
        match (&r.newest_wal, r.newest_wal_age_seconds) {
            (Some(n), Some(a)) => {
                let _ = writeln!(o, "  newest archived WAL: {n} ({} ago)", format_seconds(a));
            }
            _ => {
                let _ = writeln!(o, "  newest archived WAL: none");
            }
        }
        let _ = writeln!(
            o,
            "  WAL: {} objects, {}; backups: {}",
            r.wal_objects,
            human(r.wal_bytes),
            human(r.backup_bytes)
        );
        for g in &r.wal_gaps {
            let _ = writeln!(
                o,
                "  WAL GAP timeline {}: {} - {} ({} missing)",
                g.timeline, g.first, g.last, g.segments
            );
        }
    }
    if let Some(h) = &s.host {
        let p = &h.stats.push;
        let _ = writeln!(o, "host {} ({} .ready files waiting)", h.pgdata.display(), h.ready_files);
        let _ = writeln!(
            o,
            "  wal-push: {} calls, {} archived ({} → {}), {} confirmed ahead, {} already, {} failed",
            p.calls,
            p.files,
            human(p.raw_bytes),
            human(p.stored_bytes),
            p.ahead,
            p.already,
            p.failed()
        );
        let _ = writeln!(
            o,
            "  background pusher: {} pushed ahead, {} failed",
            h.stats.pusher.files,
            h.stats.pusher.failed()
        );
        if let Some(at) = p.last_failure.at {
            let _ = writeln!(
                o,
                "  last wal-push failure {at}: {}: {}",
                p.last_failure.file, p.last_failure.message
            );
        }
        let f = &h.stats.fetch;
        if f.calls > 0 {
            let _ = writeln!(
                o,
                "  wal-fetch: {} calls, {} restored ({} from the prefetch spool), {} not in the archive, {} failed",
                f.calls,
                f.files,
                f.ahead,
                f.already,
                f.failed()
            );
        }
    }
    if let Some(v) = &s.server {
        match &v.error {
            Some(e) => {
                let _ = writeln!(o, "server: cannot be asked: {e}");
            }
            None => {
                let _ = writeln!(
                    o,
                    "server: {}at {} ({}), archived {}, failed {}",
                    if v.in_recovery { "in recovery, " } else { "" },
                    v.current_lsn.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                    v.current_wal.as_deref().unwrap_or("-"),
                    v.archived_count,
                    v.failed_count
                );
                if let (Some(b), Some(sec)) = (v.rpo_bytes, v.rpo_seconds) {
                    let _ = writeln!(
                        o,
                        "  RPO now: {} of WAL not archived, written over the last {}",
                        human(b),
                        format_seconds(sec)
                    );
                }
            }
        }
    }
    if s.health.healthy {
        let _ = writeln!(o, "healthy");
    } else {
        for r in &s.health.reasons {
            let _ = writeln!(o, "UNHEALTHY: {r}");
        }
    }
    o
}

/// Writes one metric family.
struct Families(String);

impl Families {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.0, "{name} {}", number(*v));
            } else {
                let _ = writeln!(self.0, "{name}{{{labels}}} {}", number(*v));
            }
        }
    }

    fn gauge(&mut self, name: &str, help: &str, v: Option<f64>) {
        if let Some(v) = v {
            self.family(name, "gauge", help, &[("", v)]);
        }
    }

    fn counter(&mut self, name: &str, help: &str, samples: &[(&str, f64)]) {
        self.family(name, "counter", help, samples);
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

fn unix(t: Option<UtcTime>) -> Option<f64> {
    t.map(|t| t.unix() as f64)
}

fn counters(f: &mut Families, prefix: &str, what: &str, c: &Counters) {
    f.counter(
        &format!("walvault_{prefix}_calls_total"),
        &format!("{what}: calls made."),
        &[("", c.calls as f64)],
    );
    f.counter(
        &format!("walvault_{prefix}_files_total"),
        &format!("{what}: WAL files moved."),
        &[("", c.files as f64)],
    );
    f.counter(
        &format!("walvault_{prefix}_bytes_total"),
        &format!("{what}: bytes of WAL files moved (raw) and stored or downloaded (stored)."),
        &[("kind=\"raw\"", c.raw_bytes as f64), ("kind=\"stored\"", c.stored_bytes as f64)],
    );
    let kinds: Vec<(String, f64)> = ["storage", "refused", "config", "corrupt", "local"]
        .iter()
        .map(|k| (format!("kind=\"{k}\""), *c.failures.get(*k).unwrap_or(&0) as f64))
        .collect();
    let samples: Vec<(&str, f64)> = kinds.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    f.counter(
        &format!("walvault_{prefix}_failures_total"),
        &format!("{what}: failed calls, by kind."),
        &samples,
    );
    f.counter(
        &format!("walvault_{prefix}_duration_seconds_total"),
        &format!("{what}: seconds spent in calls."),
        &[("", c.seconds_total)],
    );
    f.gauge(
        &format!("walvault_{prefix}_last_success_timestamp_seconds"),
        &format!("{what}: when the last call succeeded (Unix time)."),
        unix(c.last_success.at),
    );
    f.gauge(
        &format!("walvault_{prefix}_last_failure_timestamp_seconds"),
        &format!("{what}: when the last call failed (Unix time)."),
        unix(c.last_failure.at),
    );
}

/// The status in Prometheus's text exposition format.
pub fn prometheus(s: &Status) -> String {
    let mut f = Families(String::new());
    let r = &s.repo;
    f.gauge(
        "walvault_up",
        "Whether the repository could be read (1) or not (0).",
        Some(f64::from(u8::from(r.reachable))),
    );
    f.gauge(
        "walvault_healthy",
        "Whether every [status] threshold is met (1) or not (0).",
        Some(f64::from(u8::from(s.health.healthy))),
    );
    f.gauge(
        "walvault_health_reasons",
        "Reasons the status is unhealthy.",
        Some(s.health.reasons.len() as f64),
    );
    f.gauge("walvault_status_timestamp_seconds", "When this status was taken (Unix time).", unix(Some(s.at)));
    if r.reachable {
        f.gauge("walvault_backups", "Backups in the repository.", Some(r.backups as f64));
        f.gauge(
            "walvault_backups_without_descriptor",
            "Backup folders without a descriptor (being taken, or failed).",
            Some(r.backups_without_descriptor as f64),
        );
        if let Some(b) = &r.newest_backup {
            f.gauge(
                "walvault_backup_newest_timestamp_seconds",
                "When the newest backup finished (Unix time).",
                unix(Some(b.stop_time)),
            );
            f.gauge(
                "walvault_backup_newest_age_seconds",
                "Seconds since the newest backup finished.",
                Some(b.age_seconds as f64),
            );
            f.gauge(
                "walvault_backup_newest_stored_bytes",
                "Bytes the newest backup stores.",
                Some(b.stored_bytes as f64),
            );
            f.gauge(
                "walvault_backup_newest_duration_seconds",
                "Seconds the newest backup took.",
                Some(b.duration_seconds as f64),
            );
        }
        f.gauge(
            "walvault_restorable_oldest_timestamp_seconds",
            "The oldest moment a restore can reach (Unix time).",
            unix(r.oldest_restorable),
        );
        f.gauge(
            "walvault_wal_newest_timestamp_seconds",
            "When the newest archived WAL segment was stored (Unix time).",
            unix(r.newest_wal_time),
        );
        f.gauge(
            "walvault_wal_newest_age_seconds",
            "Seconds since the newest archived WAL segment was stored.",
            r.newest_wal_age_seconds.map(|a| a as f64),
        );
        f.gauge("walvault_wal_objects", "Archived WAL objects.", Some(r.wal_objects as f64));
        f.gauge("walvault_wal_gaps", "Runs of missing WAL segments.", Some(r.wal_gaps.len() as f64));
        f.gauge(
            "walvault_wal_gaps_after_newest_backup",
            "Runs of missing WAL segments after the newest backup's start.",
            Some(r.wal_gaps.iter().filter(|g| g.after_newest_backup).count() as f64),
        );
        f.gauge(
            "walvault_wal_gap_segments",
            "Missing WAL segments between archived ones.",
            Some(r.wal_gaps.iter().map(|g| g.segments).sum::<u64>() as f64),
        );
        f.family(
            "walvault_repository_bytes",
            "gauge",
            "Bytes stored in the repository, by kind.",
            &[("kind=\"wal\"", r.wal_bytes as f64), ("kind=\"backups\"", r.backup_bytes as f64)],
        );
    }
    if let Some(h) = &s.host {
        f.gauge(
            "walvault_ready_files",
            "WAL files PostgreSQL has marked ready for archiving.",
            Some(h.ready_files as f64),
        );
        counters(&mut f, "archive", "wal-push (PostgreSQL's archive_command)", &h.stats.push);
        f.counter(
            "walvault_archive_ahead_total",
            "wal-push: calls answered from a segment pushed ahead.",
            &[("", h.stats.push.ahead as f64)],
        );
        f.counter(
            "walvault_archive_already_total",
            "wal-push: files already archived with the same contents.",
            &[("", h.stats.push.already as f64)],
        );
        counters(&mut f, "pusher", "the background pusher", &h.stats.pusher);
        counters(&mut f, "restore", "wal-fetch (PostgreSQL's restore_command)", &h.stats.fetch);
        f.counter(
            "walvault_restore_not_found_total",
            "wal-fetch: files not in the archive (the normal end of recovery).",
            &[("", h.stats.fetch.already as f64)],
        );
        f.counter(
            "walvault_restore_spool_total",
            "wal-fetch: files served from the prefetch spool.",
            &[("", h.stats.fetch.ahead as f64)],
        );
        counters(&mut f, "prefetch", "the prefetcher", &h.stats.prefetch);
    }
    if let Some(v) = &s.server {
        f.gauge(
            "walvault_server_up",
            "Whether the server could be asked (1) or not (0).",
            Some(f64::from(u8::from(v.error.is_none()))),
        );
        if v.error.is_none() {
            f.gauge(
                "walvault_server_in_recovery",
                "Whether the server is in recovery (1) or not (0).",
                Some(f64::from(u8::from(v.in_recovery))),
            );
            f.gauge(
                "walvault_server_wal_position_bytes",
                "The server's current WAL position.",
                v.current_lsn.map(|l| l.0 as f64),
            );
            f.counter(
                "walvault_server_archived_total",
                "pg_stat_archiver: WAL files archived.",
                &[("", v.archived_count as f64)],
            );
            f.counter(
                "walvault_server_archive_failures_total",
                "pg_stat_archiver: failed archive attempts.",
                &[("", v.failed_count as f64)],
            );
            f.gauge(
                "walvault_server_last_archived_timestamp_seconds",
                "pg_stat_archiver: when the last WAL file was archived (Unix time).",
                unix(v.last_archived_time),
            );
            f.gauge(
                "walvault_server_last_failure_timestamp_seconds",
                "pg_stat_archiver: when archiving last failed (Unix time).",
                unix(v.last_failed_time),
            );
            f.gauge(
                "walvault_rpo_bytes",
                "Bytes of WAL written but not yet archived.",
                v.rpo_bytes.map(|b| b as f64),
            );
            f.gauge(
                "walvault_rpo_seconds",
                "Seconds of WAL written but not yet archived.",
                v.rpo_seconds.map(|b| b as f64),
            );
        }
    }
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::status::model::{Health, HostStatus, RepoStatus};

    #[test]
    fn every_family_has_help_and_type_and_counters_end_in_total() {
        let s = Status {
            at: "2026-12-01T00:00:00Z".parse().unwrap(),
            repo: RepoStatus { reachable: true, backups: 2, ..RepoStatus::default() },
            host: Some(HostStatus { pgdata: "/d".into(), ready_files: 3, stats: Default::default() }),
            server: None,
            health: Health { healthy: true, reasons: vec![] },
        };
        let m = prometheus(&s);
        let mut last_type = None;
        for line in m.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(name.starts_with("walvault_"), "{name}");
                assert!(kind != "counter" || name.ends_with("_total"), "{name}");
                last_type = Some(name.to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(Some(name.to_string()), last_type, "{line} outside its family");
            }
        }
        assert!(m.contains("walvault_backups 2\n"));
        assert!(m.contains("walvault_ready_files 3\n"));
        assert!(m.contains("walvault_archive_failures_total{kind=\"storage\"} 0\n"));
    }
}
