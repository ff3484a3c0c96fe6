//! Webhook alerts (`[notify]`): what happened ([`Event`]), as the webhook gets it (walvault's
//! JSON or Slack's incoming-webhook payload, [`payload`]: pure), and the POST itself ([`send`]),
//! bounded by a short timeout, whose failure is only ever logged: an alert never blocks or fails
//! the operation it is about. The webhook URL and header values are never logged.

pub mod send;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::notify::Format;
use crate::units::UtcTime;

/// How serious an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Good news (a success, a recovery).
    Info,
    /// Something an operator must look at.
    Error,
}

/// Something worth telling an operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A base backup finished.
    BackupSucceeded {
        /// Its id.
        id: String,
        /// Bytes stored.
        stored_bytes: u64,
        /// Seconds it took.
        seconds: f64,
    },
    /// A base backup failed.
    BackupFailed {
        /// Why.
        message: String,
    },
    /// A logical dump finished.
    DumpSucceeded {
        /// Its id.
        id: String,
        /// The databases dumped.
        databases: Vec<String>,
        /// Bytes stored.
        stored_bytes: u64,
        /// Seconds it took.
        seconds: f64,
    },
    /// A logical dump failed.
    DumpFailed {
        /// Why.
        message: String,
    },
    /// `walvault delete --confirm` ran.
    DeleteDone {
        /// Backups deleted.
        backups_deleted: u64,
        /// Bytes freed.
        bytes_freed: u64,
    },
    /// `walvault delete` failed.
    DeleteFailed {
        /// Why.
        message: String,
    },
    /// `walvault verify` ran.
    VerifyDone {
        /// Everything checked is sound.
        sound: bool,
        /// Problems found.
        problems: u64,
        /// Objects that could not be read.
        unreadable: u64,
    },
    /// A `[status]` threshold is crossed (from `walvault status --listen`).
    ThresholdCrossed {
        /// Why, one reason per threshold.
        reasons: Vec<String>,
    },
    /// Every `[status]` threshold is met again.
    ThresholdRecovered,
    /// `wal-push` is failing (at most one alert per `repeat_after`).
    ArchivingFailing {
        /// The WAL file.
        file: String,
        /// The last error.
        message: String,
        /// Failed calls so far.
        failures: u64,
    },
    /// `wal-push` succeeded again after failing.
    ArchivingRecovered {
        /// The WAL file it archived.
        file: String,
    },
}

impl Event {
    /// How serious it is.
    pub fn severity(&self) -> Severity {
        match self {
            Event::BackupSucceeded { .. }
            | Event::DumpSucceeded { .. }
            | Event::DeleteDone { .. }
            | Event::ThresholdRecovered
            | Event::ArchivingRecovered { .. } => Severity::Info,
            Event::VerifyDone { sound: true, .. } => Severity::Info,
            _ => Severity::Error,
        }
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        match self {
            Event::BackupSucceeded { id, stored_bytes, seconds } => {
                format!(
                    "base backup {id} succeeded ({} stored in {seconds:.0} s)",
                    crate::units::human(*stored_bytes)
                )
            }
            Event::BackupFailed { message } => format!("base backup FAILED: {message}"),
            Event::DumpSucceeded { id, databases, stored_bytes, seconds } => format!(
                "dump {id} of {} succeeded ({} stored in {seconds:.0} s)",
                databases.join(", "),
                crate::units::human(*stored_bytes)
            ),
            Event::DumpFailed { message } => format!("dump FAILED: {message}"),
            Event::DeleteDone { backups_deleted, bytes_freed } => {
                format!(
                    "retention deleted {backups_deleted} backups, freed {}",
                    crate::units::human(*bytes_freed)
                )
            }
            Event::DeleteFailed { message } => format!("retention FAILED: {message}"),
            Event::VerifyDone { sound: true, .. } => "verify: everything checked is sound".into(),
            Event::VerifyDone { problems, unreadable, .. } => {
                format!("verify FOUND PROBLEMS: {problems} problem(s), {unreadable} object(s) unreadable")
            }
            Event::ThresholdCrossed { reasons } => {
                format!("walvault status is unhealthy: {}", reasons.join("; "))
            }
            Event::ThresholdRecovered => "walvault status is healthy again".into(),
            Event::ArchivingFailing { file, message, failures } => {
                format!("WAL archiving is FAILING ({failures} failed calls so far); last: {file}: {message}")
            }
            Event::ArchivingRecovered { file } => format!("WAL archiving recovered: {file} archived"),
        }
    }
}

/// Where an event comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The repository URL.
    pub repo: String,
    /// This machine's name.
    pub host: String,
}

impl Origin {
    /// For `repo`, from this machine.
    pub fn new(repo: &str) -> Origin {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Origin { repo: repo.to_string(), host }
    }
}

/// The body the webhook gets for `event`.
pub fn payload(format: Format, event: &Event, origin: &Origin, at: UtcTime) -> serde_json::Value {
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(event).expect("events serialise");
            let o = v.as_object_mut().expect("an object");
            o.insert("source".into(), json!("walvault"));
            o.insert("severity".into(), serde_json::to_value(event.severity()).expect("serialises"));
            o.insert("summary".into(), json!(event.summary()));
            o.insert("repo".into(), json!(origin.repo));
            o.insert("host".into(), json!(origin.host));
            o.insert("at".into(), json!(at.to_string()));
            v
        }
        Format::Slack => {
            let icon =
                if event.severity() == Severity::Error { ":red_circle:" } else { ":white_check_mark:" };
            json!({ "text": format!("{icon} walvault on {} ({}): {}", origin.host, origin.repo, event.summary()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let o = Origin { repo: "s3://b/p".into(), host: "db1".into() };
        let at: UtcTime = "2026-12-01T00:00:00Z".parse().unwrap();
        let e = Event::ArchivingFailing {
            file: "000000010000000000000003".into(),
            message: "timed out".into(),
            failures: 4,
        };
        let j = payload(Format::Json, &e, &o, at);
        assert_eq!(j["event"], "archiving_failing");
        assert_eq!(j["severity"], "error");
        assert_eq!(j["failures"], 4);
        assert_eq!(j["repo"], "s3://b/p");
        assert_eq!(j["at"], "2026-12-01T00:00:00Z");
        let s = payload(Format::Slack, &e, &o, at);
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("FAILING") && text.contains("db1") && text.contains("timed out"), "{text}");
        assert_eq!(s.as_object().unwrap().len(), 1);
        assert_eq!(Event::ThresholdRecovered.severity(), Severity::Info);
    }
}
