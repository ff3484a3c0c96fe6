//! `[verify]`: how `walvault verify` spends its reads. `reverify_after` (default 30d): an object
//! verified more recently than this (and unchanged since) is not read again unless `--full`.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::table::Table;
use crate::units::parse_duration;

/// How long a verification of an unchanged object is trusted by default.
pub const DEFAULT_REVERIFY_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// `[verify]` as written in the file.
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VerifyTable {
    /// Objects verified longer ago than this are read again.
    pub reverify_after: Option<String>,
}

/// `[verify]`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifySettings {
    /// Objects verified longer ago than this are read again.
    pub reverify_after: Duration,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings { reverify_after: DEFAULT_REVERIFY_AFTER }
    }
}

impl Table for VerifyTable {
    type Resolved = VerifySettings;

    fn resolve(self) -> Result<VerifySettings, ConfigError> {
        let reverify_after = match self.reverify_after {
            None => DEFAULT_REVERIFY_AFTER,
            Some(t) => parse_duration(&t)
                .map_err(|message| ConfigError::BadValue { setting: "verify.reverify_after", message })?,
        };
        Ok(VerifySettings { reverify_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        assert_eq!(VerifyTable::default().resolve().unwrap().reverify_after, DEFAULT_REVERIFY_AFTER);
        let t: VerifyTable = toml::from_str("reverify_after = \"7d\"").unwrap();
        assert_eq!(t.resolve().unwrap().reverify_after, Duration::from_secs(7 * 86_400));
        let t: VerifyTable = toml::from_str("reverify_after = \"often\"").unwrap();
        assert!(t.resolve().unwrap_err().to_string().starts_with("verify.reverify_after:"));
        assert!(toml::from_str::<VerifyTable>("reverify = \"7d\"").is_err());
    }
}
