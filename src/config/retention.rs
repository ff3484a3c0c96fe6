//! `[retention]`: which backups and WAL `walvault delete` keeps. The table in the file, the
//! `delete` command's flags merged over it, and the checked [`RetentionPolicy`] they resolve to.
//! `[retention.dumps]` ([`DumpRetentionTable`] → [`DumpPolicy`]) has the rules for logical
//! dumps, which apply to dumps only; without it no policy deletes a dump. What the rules mean is
//! `ops::retention`'s (and the README's, with a worked example).

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
    /// Leftovers of a failed backup, and of a large wal-push (`tmp/`), are removed once this old (default 24h).
    pub older_than: Option<String>,
    /// Apply the policy after every successful `walvault base-backup`.
    pub auto: Option<bool>,
    /// `[retention.dumps]`: the rules for logical dumps.
    pub dumps: Option<DumpRetentionTable>,
}

/// `[retention.dumps]` as written in the file: the rules for logical dumps (`walvault dump`),
/// applied to each series of dumps (the same databases) on its own.
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DumpRetentionTable {
    /// Keep the N newest dumps.
    pub retain: Option<u32>,
    /// Keep every dump that finished within this span (`30d`).
    pub keep_within: Option<String>,
    /// Keep the newest dump of each of the last N days.
    pub keep_daily: Option<u32>,
    /// … of each of the last N ISO weeks.
    pub keep_weekly: Option<u32>,
    /// … of each of the last N months.
    pub keep_monthly: Option<u32>,
    /// Leftovers of a failed dump are removed once this old (default 24h).
    pub older_than: Option<String>,
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
            dumps: over.dumps.clone().or_else(|| self.dumps.clone()),
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
    /// Age after which a backup folder without a descriptor is a failed backup's leftovers, and a
    /// temporary upload under `tmp/` an interrupted large wal-push's.
    pub older_than: Duration,
    /// Apply after every successful base backup.
    pub auto: bool,
    /// `[retention.dumps]`, if the file has it (without it, no policy deletes a dump).
    pub dumps: Option<DumpPolicy>,
}

/// The checked rules for logical dumps, each keeping dumps *in addition* to the others; the
/// newest dump of each series always stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpPolicy {
    /// Keep the N newest dumps (by stop time).
    pub retain: Option<u32>,
    /// Keep every dump that finished within this span.
    pub keep_within: Option<Duration>,
    /// Newest dump of each of the last N days.
    pub keep_daily: u32,
    /// Newest dump of each of the last N ISO weeks.
    pub keep_weekly: u32,
    /// Newest dump of each of the last N months.
    pub keep_monthly: u32,
    /// Age after which a dump folder without a descriptor is a failed dump's leftovers.
    pub older_than: Duration,
}

impl DumpPolicy {
    /// The rules in one line, as the file would say them.
    pub fn describe(&self) -> String {
        describe_rules(
            ("retain", self.retain),
            self.keep_within,
            [self.keep_daily, self.keep_weekly, self.keep_monthly],
        )
        .join(", ")
    }
}

impl Table for DumpRetentionTable {
    type Resolved = DumpPolicy;

    fn resolve(self) -> Result<DumpPolicy, ConfigError> {
        let p = DumpPolicy {
            retain: count("retention.dumps.retain", self.retain)?,
            keep_within: duration("retention.dumps.keep_within", self.keep_within.as_deref())?,
            keep_daily: count("retention.dumps.keep_daily", self.keep_daily)?.unwrap_or(0),
            keep_weekly: count("retention.dumps.keep_weekly", self.keep_weekly)?.unwrap_or(0),
            keep_monthly: count("retention.dumps.keep_monthly", self.keep_monthly)?.unwrap_or(0),
            older_than: duration("retention.dumps.older_than", self.older_than.as_deref())?
                .unwrap_or(DEFAULT_OLDER_THAN),
        };
        if p.retain.is_none() && p.keep_within.is_none() && p.keep_daily + p.keep_weekly + p.keep_monthly == 0
        {
            return Err(ConfigError::BadValue {
                setting: "retention.dumps",
                message: "no rule: set retain, keep_within or keep_daily/weekly/monthly (or leave the table \
                          out: then no policy deletes a dump)"
                    .into(),
            });
        }
        Ok(p)
    }
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
            dumps: None,
        }
    }
}

impl RetentionPolicy {
    /// Whether any rule says which backups to keep (`[retention.dumps]` aside).
    pub fn has_rules(&self) -> bool {
        self.retain_full.is_some()
            || self.keep_within.is_some()
            || self.keep_daily + self.keep_weekly + self.keep_monthly > 0
    }

    /// The rules in one line, as the file would say them.
    pub fn describe(&self) -> String {
        let parts = describe_rules(
            ("retain_full", self.retain_full),
            self.keep_within,
            [self.keep_daily, self.keep_weekly, self.keep_monthly],
        );
        if parts.is_empty() { "no rules".to_string() } else { parts.join(", ") }
    }
}

/// The rules of a policy as the file says them: the count (`retain_full` or `retain`), the
/// window, and the daily, weekly and monthly tiers that are set.
fn describe_rules(count: (&str, Option<u32>), within: Option<Duration>, tiers: [u32; 3]) -> Vec<String> {
    let mut parts = Vec::new();
    if let (name, Some(n)) = count {
        parts.push(format!("{name} = {n}"));
    }
    if let Some(w) = within {
        parts.push(format!("keep_within = \"{}\"", format_span(w)));
    }
    for (name, n) in ["keep_daily", "keep_weekly", "keep_monthly"].into_iter().zip(tiers) {
        if n > 0 {
            parts.push(format!("{name} = {n}"));
        }
    }
    parts
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
            dumps: self.dumps.map(Table::resolve).transpose()?,
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

    #[test]
    fn dump_rules_are_their_own_table() {
        let t: RetentionTable = toml::from_str(
            "retain_full = 2\n[dumps]\nretain = 7\nkeep_within = \"30d\"\nkeep_monthly = 12\nolder_than = \"2d\"",
        )
        .unwrap();
        let p = t.resolve().unwrap();
        assert_eq!(p.retain_full, Some(2));
        let d = p.dumps.unwrap();
        assert_eq!(d.retain, Some(7));
        assert_eq!(d.keep_within, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!((d.keep_daily, d.keep_weekly, d.keep_monthly), (0, 0, 12));
        assert_eq!(d.older_than, Duration::from_secs(2 * 86_400));
        assert_eq!(d.describe(), "retain = 7, keep_within = \"30d\", keep_monthly = 12");
        // Absent: no dump policy; the backup rules do not reach dumps.
        let p: RetentionPolicy =
            toml::from_str::<RetentionTable>("retain_full = 2").unwrap().resolve().unwrap();
        assert_eq!(p.dumps, None);
        // A dump table alone is not a backup policy.
        let p = toml::from_str::<RetentionTable>("[dumps]\nretain = 1").unwrap().resolve().unwrap();
        assert!(!p.has_rules() && p.dumps.is_some());
        let bad = |text: &str| {
            toml::from_str::<RetentionTable>(text)
                .map_err(|e| e.to_string())
                .and_then(|t| t.resolve().map_err(|e| e.to_string()))
                .unwrap_err()
        };
        assert!(
            bad("[dumps]\nretain_full = 3").contains("unknown field `retain_full`"),
            "{}",
            bad("[dumps]\nretain_full = 3")
        );
        assert!(bad("[dumps]\nretain = 0").contains("retention.dumps.retain: must be at least 1"));
        assert!(bad("[dumps]\nkeep_within = \"soon\"").contains("retention.dumps.keep_within"));
        assert!(bad("[dumps]\nolder_than = \"1h\"").contains("retention.dumps: no rule"));
    }
}
