//! What each `wal-push` and `wal-fetch` call adds to the host's stats (`state::stats`), and the
//! alerts about failing archiving it hands to a detached sender, so that no webhook ever runs
//! while PostgreSQL waits for the call: at most one "archiving is failing" per `repeat_after`,
//! and one "archiving recovered" when it does.
//!
//! A pending alert is a file in `pg_wal/.walvault/alerts/`, written before the sender is
//! started; the sender posts each one and removes it. Killed in between, an alert stays for the
//! next sender (the next failing or recovering call starts one).

use std::path::{Path, PathBuf};

use super::exit::{CommandError, failure_kind};
use crate::config::Config;
use crate::notify::{Event, Origin};
use crate::state::archive_status::ready_count;
use crate::state::daemon::Launcher;
use crate::state::stats::{Counters, Outcome, Stats, StatsFile};
use crate::state::{STATE_DIR, make_dir, write_atomic};
use crate::units::UtcTime;

/// The folder of pending alerts in a state directory.
pub const ALERTS: &str = "alerts";

/// Which counters a call adds to.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    /// PostgreSQL's `archive_command`.
    Push,
    /// PostgreSQL's `restore_command`.
    Fetch,
}

/// The state directory beside `%p` (`pg_wal/.walvault`).
pub fn state_dir_of(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(STATE_DIR)
}

/// Adds a call's outcome to the stats beside `path`; for wal-push also the `.ready` backlog and,
/// when `[notify]` has a webhook, the alert decisions (handed to `launcher`'s sender).
pub fn call(
    which: Which,
    path: &Path,
    file: &str,
    outcome: Outcome,
    seconds: f64,
    cfg: Option<&Config>,
    launcher: Option<&Launcher>,
) {
    let dir = state_dir_of(path);
    if !dir.parent().is_some_and(Path::is_dir) {
        return;
    }
    let backlog = matches!(which, Which::Push).then(|| ready_count(dir.parent().expect("has a parent")));
    let notify = cfg.filter(|c| c.notify.webhook.is_some()).map(|c| c.notify.repeat_after);
    let now = UtcTime::now();
    let decided = StatsFile::in_state_dir(&dir).update(|s: &mut Stats| {
        let c: &mut Counters = match which {
            Which::Push => &mut s.push,
            Which::Fetch => &mut s.fetch,
        };
        c.add(file, &outcome, seconds, now);
        if let Some(n) = backlog {
            s.ready_backlog = n;
            s.ready_backlog_at = Some(now);
        }
        match (which, notify) {
            (Which::Push, Some(repeat)) => alert(s, file, &outcome, now, repeat),
            _ => None,
        }
    });
    if let (Some((Some(event), _)), Some(cfg), Some(launcher)) = (decided, cfg, launcher) {
        hand_over(&dir, &event, cfg, launcher);
    }
}

/// The alert, if any, that this push outcome calls for (and its rate-limit bookkeeping).
fn alert(
    s: &mut Stats,
    file: &str,
    outcome: &Outcome,
    now: UtcTime,
    repeat: std::time::Duration,
) -> Option<Event> {
    match outcome {
        Outcome::Failed { message, .. } => {
            let due = s.push_alert_at.is_none_or(|at| now.datetime() - at.datetime() >= repeat);
            if !due {
                return None;
            }
            s.push_alert_at = Some(now);
            s.push_alert_open = true;
            Some(Event::ArchivingFailing {
                file: file.to_string(),
                message: message.clone(),
                failures: s.push.failed(),
            })
        }
        _ if s.push_alert_open => {
            s.push_alert_open = false;
            s.push_alert_at = None;
            Some(Event::ArchivingRecovered { file: file.to_string() })
        }
        _ => None,
    }
}

/// Writes the alert for the sender and starts it, detached.
fn hand_over(dir: &Path, event: &Event, cfg: &Config, launcher: &Launcher) {
    let alerts = dir.join(ALERTS);
    let name = format!("{}-{}.json", UtcTime::now().unix(), std::process::id());
    let json = serde_json::to_vec(&(event, Origin::new(&cfg.repo.to_string()))).expect("events serialise");
    let written = make_dir(&alerts).and_then(|_| write_atomic(&alerts, &name, &json));
    match written.and_then(|_| launcher.spawn("--send-alerts", &alerts, &dir.join("alerts.log"))) {
        Ok(()) => tracing::debug!("handed the alert \"{}\" to a sender", event.summary()),
        Err(e) => tracing::warn!("cannot hand the alert \"{}\" to a sender: {e}", event.summary()),
    }
}

/// The stats outcome of a failed call.
pub fn failed(err: &CommandError) -> Outcome {
    Outcome::Failed { kind: failure_kind(err).to_string(), message: err.to_string().replace('\n', " ") }
}

/// The sender: posts every pending alert in `alerts` and removes it.
pub async fn send_pending(cfg: &Config, alerts: &Path) -> std::io::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(alerts)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let parsed: Option<(Event, Origin)> =
            std::fs::read(&f).ok().and_then(|b| serde_json::from_slice(&b).ok());
        if let Some((event, origin)) = parsed {
            crate::notify::send::send(&cfg.notify, &origin, &event).await;
        }
        let _ = std::fs::remove_file(&f);
    }
    Ok(())
}
