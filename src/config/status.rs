//! `[status]`: the thresholds that make `walvault status` (and `/health` of `status --listen`)
//! report unhealthy: `max_backup_age` (e.g. `26h`), `max_wal_age` (the recovery point objective,
//! e.g. `15m`), `min_backups`. None is set by default.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::table::Table;
use crate::units::parse_duration;

/// `[status]` as written in the file.
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StatusTable {
    /// The newest backup may be at most this old.
    pub max_backup_age: Option<String>,
    /// The newest archived WAL (or the server's unarchived WAL) may be at most this old.
    pub max_wal_age: Option<String>,
    /// At least this many backups.
    pub min_backups: Option<u32>,
}

/// `[status]`, checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// The newest backup may be at most this old.
    pub max_backup_age: Option<Duration>,
    /// The recovery point objective.
    pub max_wal_age: Option<Duration>,
    /// At least this many backups.
    pub min_backups: Option<u32>,
}

impl Table for StatusTable {
    type Resolved = Thresholds;

    fn resolve(self) -> Result<Thresholds, ConfigError> {
        let d = |setting: &'static str, t: Option<String>| -> Result<Option<Duration>, ConfigError> {
            t.map(|t| parse_duration(&t).map_err(|message| ConfigError::BadValue { setting, message }))
                .transpose()
        };
        Ok(Thresholds {
            max_backup_age: d("status.max_backup_age", self.max_backup_age)?,
            max_wal_age: d("status.max_wal_age", self.max_wal_age)?,
            min_backups: self.min_backups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let t: StatusTable =
            toml::from_str("max_backup_age = \"26h\"\nmax_wal_age = \"15m\"\nmin_backups = 2").unwrap();
        let r = t.resolve().unwrap();
        assert_eq!(r.max_backup_age, Some(Duration::from_secs(26 * 3600)));
        assert_eq!(r.max_wal_age, Some(Duration::from_secs(900)));
        assert_eq!(r.min_backups, Some(2));
        let t: StatusTable = toml::from_str("max_wal_age = \"soon\"").unwrap();
        assert!(t.resolve().unwrap_err().to_string().starts_with("status.max_wal_age:"));
        assert!(toml::from_str::<StatusTable>("max_age = \"1h\"").is_err());
    }
}
