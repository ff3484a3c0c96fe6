//! `[retention]`: which backups and WAL `walvault delete` keeps. The table in the file, the
//! `delete` command's flags merged over it, and the checked [`RetentionPolicy`] they resolve to.
//! What the rules mean is `ops::retention`'s (and the README's, with a worked example).

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::table::Table;
use crate::units::{format_span, parse_duration};

/// How long a backup folder without a descriptor must have been there before `delete` takes it
/// for the leftovers of a failed backup (younger ones may be backups being taken).
pub const DEFAULT_OLDER_THAN: Duration = Duration::from_secs(24 * 3600);

/// `[retention]` as written in the file (or merged from the `delete` command's flags).
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionTable {
    /// Keep the N newest backups.
    pub retain_full: Option<u32>,
    /// The PITR window (`7d`): every moment in it stays restorable.
    pub keep_within: Option<String>,
    /// Keep the newest backup of each of the last N days.
    pub keep_daily: Option<u32>,
    /// … of each of the last N weeks (ISO weeks, from Monday, UTC).
    pub keep_weekly: Option<u32>,
    /// … of each of the last N months.
    pub keep_monthly: Option<u32>,
    /// Leftovers of a failed backup are removed once this old (default 24h).
    pub older_than: Option<String>,
    /// Apply the policy after every successful `walvault base-backup`.
    pub auto: Option<bool>,
}

impl RetentionTable {
    /// `over`'s settings where it has them, this table's elsewhere.
    pub fn merged(&self, over: &RetentionTable) -> RetentionTable {
        RetentionTable {
            retain_full: over.retain_full.or(self.retain_full),
            keep_within: over.keep_within.clone().or_else(|| self.keep_within.clone()),
            keep_daily: over.keep_daily.or(self.keep_daily),
            keep_weekly: over.keep_weekly.or(self.keep_weekly),
            keep_monthly: over.keep_monthly.or(self.keep_monthly),
            older_than: over.older_than.clone().or_else(|| self.older_than.clone()),
            auto: over.auto.or(self.auto),
        }
    }
}

/// The checked retention policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the N newest backups (by stop time).
    pub retain_full: Option<u32>,
    /// The PITR window.
    pub keep_within: Option<Duration>,
    /// Newest backup of each of the last N days.
    pub keep_daily: u32,
    /// Newest backup of each of the last N ISO weeks.
    pub keep_weekly: u32,
    /// Newest backup of each of the last N months.
    pub keep_monthly: u32,
    /// Age after which a backup folder without a descriptor is a failed backup's leftovers.
    pub older_than: Duration,
    /// Apply after every successful base backup.
    pub auto: bool,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            retain_full: None,
            keep_within: None,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            older_than: DEFAULT_OLDER_THAN,
            auto: false,
        }
    }
}

impl RetentionPolicy {
    /// Whether any rule says what to keep (without one, `delete` has no policy to apply).
    pub fn has_rules(&self) -> bool {
        self.retain_full.is_some()
            || self.keep_within.is_some()
            || self.keep_daily + self.keep_weekly + self.keep_monthly > 0
    }

    /// The rules in one line, as the file would say them.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.retain_full {
            parts.push(format!("retain_full = {n}"));
        }
        if let Some(w) = self.keep_within {
            parts.push(format!("keep_within = \"{}\"", format_span(w)));
        }
        for (name, n) in [
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
        ] {
            if n > 0 {
                parts.push(format!("{name} = {n}"));
            }
        }
        if parts.is_empty() { "no rules".to_string() } else { parts.join(", ") }
    }
}

fn count(setting: &'static str, n: Option<u32>) -> Result<Option<u32>, ConfigError> {
    match n {
        Some(0) => Err(ConfigError::BadValue {
            setting,
            message: "must be at least 1 (leave it out to not use the rule)".into(),
        }),
        Some(n) if n > 100_000 => {
            Err(ConfigError::BadValue { setting, message: format!("{n} is more than 100000") })
        }
        n => Ok(n),
    }
}

fn duration(setting: &'static str, text: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    let Some(t) = text else { return Ok(None) };
    let d = parse_duration(t).map_err(|message| ConfigError::BadValue { setting, message })?;
    if d.is_zero() {
        return Err(ConfigError::BadValue { setting, message: "must be more than zero".into() });
    }
    Ok(Some(d))
}

impl Table for RetentionTable {
    type Resolved = RetentionPolicy;

    fn resolve(self) -> Result<RetentionPolicy, ConfigError> {
        Ok(RetentionPolicy {
            retain_full: count("retention.retain_full", self.retain_full)?,
            keep_within: duration("retention.keep_within", self.keep_within.as_deref())?,
            keep_daily: count("retention.keep_daily", self.keep_daily)?.unwrap_or(0),
            keep_weekly: count("retention.keep_weekly", self.keep_weekly)?.unwrap_or(0),
            keep_monthly: count("retention.keep_monthly", self.keep_monthly)?.unwrap_or(0),
            older_than: duration("retention.older_than", self.older_than.as_deref())?
                .unwrap_or(DEFAULT_OLDER_THAN),
            auto: self.auto.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_refuses_with_the_setting_named() {
        let t: RetentionTable =
            toml::from_str("retain_full = 2\nkeep_within = \"7d\"\nkeep_daily = 30\nauto = true").unwrap();
        let p = t.clone().resolve().unwrap();
        assert_eq!(p.retain_full, Some(2));
        assert_eq!(p.keep_within, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(p.keep_daily, 30);
        assert_eq!(p.older_than, DEFAULT_OLDER_THAN);
        assert!(p.auto && p.has_rules());
        assert_eq!(p.describe(), "retain_full = 2, keep_within = \"7d\", keep_daily = 30");
        let flags = RetentionTable { retain_full: Some(5), ..Default::default() };
        assert_eq!(t.merged(&flags).resolve().unwrap().retain_full, Some(5));
        let bad = |text: &str| {
            toml::from_str::<RetentionTable>(text)
                .map_err(|e| e.to_string())
                .and_then(|t| t.resolve().map_err(|e| e.to_string()))
        };
        assert!(bad("retain_full = 0").unwrap_err().contains("retention.retain_full"));
        assert!(
            bad("keep_within = \"soon\"")
                .unwrap_err()
                .contains("retention.keep_within: `soon` is not a duration")
        );
        assert!(bad("keep_within = \"0s\"").unwrap_err().contains("more than zero"));
        assert!(bad("keep_yearly = 3").unwrap_err().contains("keep_yearly"));
        assert!(!RetentionTable::default().resolve().unwrap().has_rules());
    }
}
