//! The one pattern every `[table]` of the configuration file follows: its own struct, read with
//! unknown keys refused (`#[serde(deny_unknown_fields)]`, or a check against the known names), and
//! one [`Table::resolve`] that checks every value once and yields the settings the commands use.
//! Flags and `WALVAULT_*` variables that override a key are merged into the table before
//! `resolve`, so a value is checked the same way wherever it came from.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::error::ConfigError;

/// Options passed to the object_store builder, from the `[storage]` table. Values whose key
/// looks secret are redacted whenever shown.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(pub Vec<(String, String)>);

impl StorageOptions {
    /// The options with secret-looking values replaced by `<redacted>`.
    pub fn redacted(&self) -> Vec<(String, String)> {
        const SECRET: [&str; 7] =
            ["secret", "password", "token", "sas", "credential", "access_key", "account_key"];
        self.0
            .iter()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let hide = SECRET.iter().any(|s| lower.contains(s)) && !lower.ends_with("access_key_id");
                (k.clone(), if hide { "<redacted>".to_string() } else { v.clone() })
            })
            .collect()
    }
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

/// A `[table]` of the configuration file.
pub trait Table: Default {
    /// The checked settings it resolves to.
    type Resolved;
    /// Checks every value once; errors name the setting as `table.key` and what to write.
    fn resolve(self) -> Result<Self::Resolved, ConfigError>;
}

/// Resolves a table that may be absent from the file (then its defaults).
pub fn resolve<T: Table>(table: Option<T>) -> Result<T::Resolved, ConfigError> {
    table.unwrap_or_default().resolve()
}

/// `[storage]`: options handed to object_store's builder for the repository's provider. Which
/// names are known depends on the provider, so unknown names are refused when the repository is
/// opened (`repo::Storage::open`), before anything is created.
#[derive(Deserialize, Debug, Default)]
#[serde(transparent)]
pub struct StorageTable(BTreeMap<String, toml::Value>);

impl Table for StorageTable {
    type Resolved = StorageOptions;

    fn resolve(self) -> Result<StorageOptions, ConfigError> {
        let options = self
            .0
            .into_iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => Ok((k, s)),
                toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_) => {
                    Ok((k, v.to_string()))
                }
                _ => Err(ConfigError::BadValue {
                    setting: "storage",
                    message: format!("option `{k}` must be a string, number or boolean"),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(StorageOptions(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_values_become_text_and_tables_are_refused() {
        let t: StorageTable = toml::from_str("a = \"x\"\nb = 3\nc = true").unwrap();
        let o = t.resolve().unwrap();
        assert_eq!(o.0, [("a".into(), "x".into()), ("b".into(), "3".into()), ("c".into(), "true".into())]);
        let t: StorageTable = toml::from_str("a = [1]").unwrap();
        assert!(t.resolve().unwrap_err().to_string().contains("option `a` must be a string"));
        assert!(resolve::<StorageTable>(None).unwrap().0.is_empty());
    }
}
