//! `[notify]`: where walvault posts its alerts. `webhook` (an `http://` or `https://` URL),
//! `headers` (a table, e.g. an authorization token), `format` (`json` or `slack`),
//! `repeat_after` (how often a still-failing `wal-push` alerts again, default 15m) and
//! `timeout` (of one POST, default 5s). The URL's path and query and every header value are
//! secrets: they are never printed (a Slack webhook URL carries its token in the path).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::ConfigError;
use super::table::Table;
use crate::units::parse_duration;

/// How often a still-failing `wal-push` alerts again by default.
pub const DEFAULT_REPEAT_AFTER: Duration = Duration::from_secs(15 * 60);
/// How long one POST may take by default.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// `[notify]` as written in the file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotifyTable {
    webhook: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    format: Option<String>,
    repeat_after: Option<String>,
    timeout: Option<String>,
}

/// The payload a webhook gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// walvault's own JSON object.
    Json,
    /// Slack's incoming-webhook payload (`{"text": …}`).
    Slack,
}

/// `[notify]`, checked. `Debug` and [`NotifySettings::describe`] never show the secrets.
#[derive(Clone)]
pub struct NotifySettings {
    /// The webhook URL (`None`: no alerts).
    pub webhook: Option<SecretString>,
    /// Extra request headers (values are secrets).
    pub headers: Vec<(String, SecretString)>,
    /// The payload format.
    pub format: Format,
    /// How often a still-failing `wal-push` alerts again.
    pub repeat_after: Duration,
    /// How long one POST may take.
    pub timeout: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            webhook: None,
            headers: Vec::new(),
            format: Format::Json,
            repeat_after: DEFAULT_REPEAT_AFTER,
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }
}

impl NotifySettings {
    /// The webhook with only its scheme and host (for messages), if one is set.
    pub fn describe(&self) -> Option<String> {
        self.webhook.as_ref().map(|w| redact_url(w.expose_secret()))
    }
}

/// `scheme://host[:port]/…`: a URL without its path, query and credentials.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<a webhook URL>".to_string(),
    }
}

impl fmt::Debug for NotifyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NotifyTable(<redacted>)")
    }
}

impl fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifySettings")
            .field("webhook", &self.describe())
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| format!("{k}: <redacted>")).collect::<Vec<_>>(),
            )
            .field("format", &self.format)
            .field("repeat_after", &self.repeat_after)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn duration(setting: &'static str, text: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(default),
        Some(t) => {
            let d = parse_duration(&t).map_err(|message| ConfigError::BadValue { setting, message })?;
            if d.is_zero() {
                return Err(ConfigError::BadValue { setting, message: "must be more than zero".into() });
            }
            Ok(d)
        }
    }
}

impl Table for NotifyTable {
    type Resolved = NotifySettings;

    fn resolve(self) -> Result<NotifySettings, ConfigError> {
        let webhook = match self.webhook {
            None => None,
            Some(w) => {
                let ok = url::Url::parse(&w)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
                if !ok {
                    return Err(ConfigError::BadValue {
                        setting: "notify.webhook",
                        message:
                            "is not an http:// or https:// URL (the value is not shown: it may hold a token)"
                                .into(),
                    });
                }
                Some(SecretString::from(w))
            }
        };
        let format = match self.format.as_deref() {
            None | Some("json") => Format::Json,
            Some("slack") => Format::Slack,
            Some(other) => {
                return Err(ConfigError::BadValue {
                    setting: "notify.format",
                    message: format!("`{other}` is not json or slack"),
                });
            }
        };
        for k in self.headers.keys() {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(ConfigError::BadValue {
                    setting: "notify.headers",
                    message: format!("`{k}` is not a header name"),
                });
            }
        }
        if webhook.is_none() && !self.headers.is_empty() {
            return Err(ConfigError::BadValue {
                setting: "notify.headers",
                message: "given without a webhook".into(),
            });
        }
        Ok(NotifySettings {
            webhook,
            headers: self.headers.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect(),
            format,
            repeat_after: duration("notify.repeat_after", self.repeat_after, DEFAULT_REPEAT_AFTER)?,
            timeout: duration("notify.timeout", self.timeout, DEFAULT_NOTIFY_TIMEOUT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let t: NotifyTable = toml::from_str(
            "webhook = \"https://hooks.slack.com/services/T000/B000/SECRETTOKEN\"\nformat = \"slack\"\n[headers]\nAuthorization = \"Bearer hunter2\"",
        )
        .unwrap();
        let n = t.resolve().unwrap();
        assert_eq!(n.format, Format::Slack);
        let shown = format!("{n:?} {}", n.describe().unwrap());
        assert!(
            !shown.contains("SECRETTOKEN") && !shown.contains("hunter2") && !shown.contains("services"),
            "{shown}"
        );
        assert!(shown.contains("https://hooks.slack.com/…"), "{shown}");
        let bad =
            |text: &str| toml::from_str::<NotifyTable>(text).unwrap().resolve().unwrap_err().to_string();
        assert!(bad("webhook = \"ftp://x/secret\"").starts_with("notify.webhook:"));
        assert!(!bad("webhook = \"not a url secret\"").contains("secret"));
        assert!(bad("webhook = \"http://x\"\nformat = \"xml\"").contains("notify.format"));
        assert!(bad("[headers]\nA = \"b\"").contains("without a webhook"));
        assert!(toml::from_str::<NotifyTable>("hook = \"x\"").is_err());
        assert!(NotifyTable::default().resolve().unwrap().webhook.is_none());
    }
}
