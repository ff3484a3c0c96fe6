//! Why the configuration is unusable: [`ConfigError`], each message naming the setting and what
//! to write instead, on one line.

use std::path::PathBuf;

use thiserror::Error;

use crate::keys::KeyError;

/// Why the configuration is unusable; each message names the setting and what to do.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// No repository was given anywhere.
    #[error("no repository configured: set repo in the config file, WALVAULT_REPO or --repo")]
    NoRepo,
    /// The repository URL is malformed or of an unknown scheme.
    #[error(
        "repo `{url}`: {why}; use file:///absolute/dir, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
    )]
    BadRepo {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or has an unknown key.
    #[error("config file {path}{line}: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// " line N" where known.
        line: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// A setting has a bad value.
    #[error("{setting}: {message}")]
    BadValue {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
}
