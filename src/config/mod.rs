//! Configuration: command-line flags, then `WALVAULT_*` environment variables, then the TOML file,
//! then defaults, resolved once into one validated [`Config`]. Secrets are redacted in `Debug`
//! and in `walvault config`. Every `[table]` of the file follows one pattern ([`table`]): its own
//! struct, unknown keys refused, one `resolve` that checks it.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::format::{Compression, DEFAULT_CHUNK_SIZE};
use crate::keys::{KeyRing, MasterKey};
use crate::units::{format_duration, format_size, parse_duration, parse_size};
pub use error::ConfigError;
pub use notify::NotifySettings;
use notify::NotifyTable;
pub use retention::{DumpPolicy, RetentionPolicy, RetentionTable};
use status::StatusTable;
pub use status::Thresholds;
use table::StorageTable;
pub use table::{StorageOptions, Table};
pub use verify::VerifySettings;
use verify::VerifyTable;

pub mod error;
pub mod notify;
pub mod retention;
pub mod status;
pub mod table;
pub mod verify;

/// Default time one storage request may take before it is abandoned and retried.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of retries after a failed storage request.
pub const DEFAULT_RETRIES: u32 = 3;
/// Default number of segments `wal-push` uploads at once (the one asked for plus look-ahead).
pub const DEFAULT_UPLOAD_CONCURRENCY: u32 = 8;
/// Default number of segments `wal-fetch`'s background prefetcher keeps ahead of recovery.
pub const DEFAULT_PREFETCH: u32 = 16;
/// Default bytes of tar data per stored part of a base backup.
pub const DEFAULT_PART_SIZE: u64 = 1 << 30;
/// Default compression.
pub const DEFAULT_COMPRESSION: Compression = Compression::Zstd { level: crate::format::DEFAULT_ZSTD_LEVEL };

/// Settings given on the command line or in `WALVAULT_*` variables (flags win).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "WALVAULT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Repository URL: file:///dir, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix.
    #[arg(long, env = "WALVAULT_REPO", value_name = "URL")]
    pub repo: Option<String>,
    /// Compression for new objects: zstd, zstd:LEVEL, lz4, none.
    #[arg(long, env = "WALVAULT_COMPRESSION", value_name = "CODEC")]
    pub compression: Option<String>,
    /// File with the 32-byte key new objects are encrypted with.
    #[arg(long, env = "WALVAULT_ENCRYPTION_KEY_FILE", value_name = "FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Older keys still accepted for reading (repeat, or comma-separate in the variable).
    #[arg(
        long = "decryption-key-file",
        env = "WALVAULT_DECRYPTION_KEY_FILES",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub decryption_key_files: Option<Vec<PathBuf>>,
    /// Time one storage request may take (e.g. 30s, 500ms, 2m).
    #[arg(long, env = "WALVAULT_TIMEOUT", value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Retries after a failed storage request.
    #[arg(long, env = "WALVAULT_RETRIES", value_name = "N")]
    pub retries: Option<u32>,
    /// Segments wal-push uploads at once, pushing ahead those PostgreSQL has marked ready (1: none).
    #[arg(long, env = "WALVAULT_UPLOAD_CONCURRENCY", value_name = "N")]
    pub upload_concurrency: Option<u32>,
    /// Segments wal-fetch prefetches ahead of recovery in the background (0: none).
    #[arg(long, env = "WALVAULT_PREFETCH", value_name = "N")]
    pub prefetch: Option<u32>,
    /// Bytes of tar data per stored part of a base backup (e.g. 1GiB, 256MiB).
    #[arg(long, env = "WALVAULT_PART_SIZE", value_name = "SIZE")]
    pub part_size: Option<String>,
}

impl ConfigArgs {
    /// The flags that reproduce these settings (for a background process started with them).
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = Vec::new();
        let mut flag = |name: &str, v: std::ffi::OsString| {
            a.push(name.into());
            a.push(v);
        };
        if let Some(v) = &self.config {
            flag("--config", v.into());
        }
        if let Some(v) = &self.repo {
            flag("--repo", v.into());
        }
        if let Some(v) = &self.compression {
            flag("--compression", v.into());
        }
        if let Some(v) = &self.encryption_key_file {
            flag("--encryption-key-file", v.into());
        }
        for v in self.decryption_key_files.iter().flatten() {
            flag("--decryption-key-file", v.into());
        }
        if let Some(v) = &self.timeout {
            flag("--timeout", v.into());
        }
        if let Some(v) = self.retries {
            flag("--retries", v.to_string().into());
        }
        if let Some(v) = self.upload_concurrency {
            flag("--upload-concurrency", v.to_string().into());
        }
        if let Some(v) = self.prefetch {
            flag("--prefetch", v.to_string().into());
        }
        if let Some(v) = &self.part_size {
            flag("--part-size", v.into());
        }
        a
    }
}

/// A duration in the TOML file: seconds as a number, or text like `30s`.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum TomlDuration {
    Seconds(u64),
    Text(String),
}

/// A size in the TOML file: bytes as a number, or text like `1GiB`.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum TomlSize {
    Bytes(u64),
    Text(String),
}

/// The TOML file's keys; anything else is an error.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    repo: Option<String>,
    compression: Option<String>,
    encryption_key_file: Option<PathBuf>,
    decryption_key_files: Option<Vec<PathBuf>>,
    timeout: Option<TomlDuration>,
    retries: Option<u32>,
    upload_concurrency: Option<u32>,
    prefetch: Option<u32>,
    part_size: Option<TomlSize>,
    storage: Option<StorageTable>,
    retention: Option<RetentionTable>,
    verify: Option<VerifyTable>,
    notify: Option<NotifyTable>,
    status: Option<StatusTable>,
}

/// Where the repository lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoUrl {
    /// A local (or mounted) directory.
    Local(PathBuf),
    /// Amazon S3 or an S3-compatible server.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix inside it (no leading or trailing slash).
        prefix: String,
    },
    /// Google Cloud Storage.
    Gcs {
        /// The bucket.
        bucket: String,
        /// The key prefix inside it.
        prefix: String,
    },
    /// Azure Blob Storage.
    Azure {
        /// The container.
        container: String,
        /// The key prefix inside it.
        prefix: String,
    },
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file read, if any.
    pub config_file: Option<PathBuf>,
    /// The repository.
    pub repo: RepoUrl,
    /// Extra object_store options.
    pub storage: StorageOptions,
    /// Compression for new objects.
    pub compression: Compression,
    /// The key file new objects are encrypted with.
    pub encryption_key_file: Option<PathBuf>,
    /// Older key files accepted for reading.
    pub decryption_key_files: Vec<PathBuf>,
    /// The loaded keys.
    pub keys: KeyRing,
    /// Time one storage request may take.
    pub timeout: Duration,
    /// Retries after a failed storage request.
    pub retries: u32,
    /// Segments wal-push uploads at once (1: no look-ahead).
    pub upload_concurrency: u32,
    /// Segments wal-fetch prefetches (0: no prefetcher).
    pub prefetch: u32,
    /// Bytes of tar data per stored part of a base backup.
    pub part_size: u64,
    /// Plaintext bytes per sealed chunk in new objects.
    pub chunk_size: u32,
    /// `[retention]` as the file gives it (`delete`'s flags are merged over it).
    pub retention_table: RetentionTable,
    /// `[retention]`, checked.
    pub retention: RetentionPolicy,
    /// `[verify]`, checked.
    pub verify: VerifySettings,
    /// `[notify]`, checked.
    pub notify: NotifySettings,
    /// `[status]`, checked.
    pub status: Thresholds,
}

impl Config {
    /// Resolves flags and environment (already merged by clap), the TOML file and defaults.
    pub fn resolve(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let repo_text = args.repo.clone().or(file.repo).ok_or(ConfigError::NoRepo)?;
        let repo = RepoUrl::parse(&repo_text)?;
        let compression = match args.compression.clone().or(file.compression) {
            Some(c) => {
                c.parse().map_err(|message| ConfigError::BadValue { setting: "compression", message })?
            }
            None => DEFAULT_COMPRESSION,
        };
        let timeout = match (&args.timeout, &file.timeout) {
            (Some(t), _) | (None, Some(TomlDuration::Text(t))) => {
                parse_duration(t).map_err(|message| ConfigError::BadValue { setting: "timeout", message })?
            }
            (None, Some(TomlDuration::Seconds(s))) => Duration::from_secs(*s),
            (None, None) => DEFAULT_TIMEOUT,
        };
        if timeout.is_zero() {
            return Err(ConfigError::BadValue {
                setting: "timeout",
                message: "must be more than zero".into(),
            });
        }
        let retries = args.retries.or(file.retries).unwrap_or(DEFAULT_RETRIES);
        if retries > 100 {
            return Err(ConfigError::BadValue {
                setting: "retries",
                message: format!("{retries} is more than 100"),
            });
        }
        let upload_concurrency =
            args.upload_concurrency.or(file.upload_concurrency).unwrap_or(DEFAULT_UPLOAD_CONCURRENCY);
        if !(1..=64).contains(&upload_concurrency) {
            return Err(ConfigError::BadValue {
                setting: "upload_concurrency",
                message: format!("{upload_concurrency} is not between 1 and 64"),
            });
        }
        let prefetch = args.prefetch.or(file.prefetch).unwrap_or(DEFAULT_PREFETCH);
        if prefetch > 256 {
            return Err(ConfigError::BadValue {
                setting: "prefetch",
                message: format!("{prefetch} is more than 256"),
            });
        }
        let part_size = match (&args.part_size, &file.part_size) {
            (Some(t), _) | (None, Some(TomlSize::Text(t))) => {
                parse_size(t).map_err(|message| ConfigError::BadValue { setting: "part_size", message })?
            }
            (None, Some(TomlSize::Bytes(b))) => *b,
            (None, None) => DEFAULT_PART_SIZE,
        };
        if part_size < 1 << 20 {
            return Err(ConfigError::BadValue {
                setting: "part_size",
                message: format!("{part_size} is less than 1MiB"),
            });
        }
        let storage = table::resolve(file.storage)?;
        let retention_table = file.retention.unwrap_or_default();
        let retention = retention_table.clone().resolve()?;
        let verify = table::resolve(file.verify)?;
        let notify = table::resolve(file.notify)?;
        let status = table::resolve(file.status)?;
        let base = args.config.as_deref().and_then(Path::parent);
        let encryption_key_file = args.encryption_key_file.clone().or(file.encryption_key_file);
        let decryption_key_files =
            args.decryption_key_files.clone().or(file.decryption_key_files).unwrap_or_default();
        // Relative key paths in the file are relative to the file; on the command line, to the cwd.
        let encryption_key_file =
            encryption_key_file.map(|p| relative_to(base, args.encryption_key_file.is_some(), p));
        let decryption_key_files: Vec<PathBuf> = decryption_key_files
            .into_iter()
            .map(|p| relative_to(base, args.decryption_key_files.is_some(), p))
            .collect();
        let write = encryption_key_file.as_deref().map(MasterKey::load).transpose()?;
        let read = decryption_key_files.iter().map(|p| MasterKey::load(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            config_file: args.config.clone(),
            repo,
            storage,
            compression,
            encryption_key_file,
            decryption_key_files,
            keys: KeyRing::new(write, read),
            timeout,
            retries,
            upload_concurrency,
            prefetch,
            part_size,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retention_table,
            retention,
            verify,
            notify,
            status,
        })
    }

    /// The resolved configuration as TOML, secrets redacted (for `walvault config`).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let q = |v: &str| toml::Value::String(v.to_string()).to_string();
        if let Some(f) = &self.config_file {
            let _ = writeln!(s, "# from {}", f.display());
        }
        let _ = writeln!(s, "repo = {}", q(&self.repo.to_string()));
        let _ = writeln!(s, "compression = {}", q(&self.compression.to_string()));
        match (&self.encryption_key_file, self.keys.write_key()) {
            (Some(p), Some(k)) => {
                let _ = writeln!(
                    s,
                    "encryption_key_file = {}  # key id {}, aes-256-gcm",
                    q(&p.display().to_string()),
                    k.id()
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "# encryption: none (no encryption_key_file): objects are stored unencrypted"
                );
            }
        }
        if !self.decryption_key_files.is_empty() {
            let files: Vec<String> =
                self.decryption_key_files.iter().map(|p| q(&p.display().to_string())).collect();
            let ids: Vec<String> = self.keys.ids().iter().map(ToString::to_string).collect();
            let _ = writeln!(
                s,
                "decryption_key_files = [{}]  # readable key ids: {}",
                files.join(", "),
                ids.join(", ")
            );
        }
        let _ = writeln!(s, "timeout = {}", q(&format_duration(self.timeout)));
        let _ = writeln!(s, "retries = {}", self.retries);
        let _ = writeln!(s, "upload_concurrency = {}", self.upload_concurrency);
        let _ = writeln!(s, "prefetch = {}", self.prefetch);
        let _ = writeln!(s, "part_size = {}", q(&format_size(self.part_size)));
        if self.retention_table != RetentionTable::default() {
            let _ = writeln!(s, "\n[retention]");
            for rule in self.retention.describe().split(", ").filter(|r| *r != "no rules") {
                let _ = writeln!(s, "{rule}");
            }
            let r = &self.retention;
            let _ = writeln!(s, "older_than = {}", q(&crate::units::format_span(r.older_than)));
            let _ = writeln!(s, "auto = {}", r.auto);
            if let Some(d) = &r.dumps {
                let _ = writeln!(s, "\n[retention.dumps]");
                for rule in d.describe().split(", ") {
                    let _ = writeln!(s, "{rule}");
                }
                let _ = writeln!(s, "older_than = {}", q(&crate::units::format_span(d.older_than)));
            }
        }
        if let Some(w) = self.notify.describe() {
            let _ = writeln!(s, "\n[notify]");
            let _ = writeln!(s, "webhook = {}  # path and query redacted", q(&w));
            for (k, _) in &self.notify.headers {
                let _ = writeln!(s, "headers.{k} = \"<redacted>\"");
            }
            let format = match self.notify.format {
                notify::Format::Json => "json",
                notify::Format::Slack => "slack",
            };
            let _ = writeln!(s, "format = {}", q(format));
            let _ = writeln!(s, "repeat_after = {}", q(&crate::units::format_span(self.notify.repeat_after)));
        }
        if !self.storage.0.is_empty() {
            let _ = writeln!(s, "\n[storage]");
            for (k, v) in self.storage.redacted() {
                let _ = writeln!(s, "{k} = {}", q(&v));
            }
        }
        s
    }
}

fn relative_to(base: Option<&Path>, from_cli: bool, p: PathBuf) -> PathBuf {
    match base {
        Some(b) if !from_cli && p.is_relative() => b.join(p),
        _ => p,
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::ReadFile { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|sp| {
                let n = text[..sp.start].matches('\n').count() + 1;
                match setting_on_line(&text, n) {
                    Some(setting) => format!(" line {n} ({setting})"),
                    None => format!(" line {n}"),
                }
            })
            .unwrap_or_default();
        ConfigError::ParseFile {
            path: path.into(),
            line,
            message: e.message().replace('\n', " ").trim().to_string(),
        }
    })
}

/// The setting line `n` of a TOML file gives (`table.key`), when it is a plain `key = value`
/// line; only the name, never the value (which may be a secret).
fn setting_on_line(text: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (key, _) = lines.get(n - 1)?.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !plain(key) {
        return None;
    }
    let table = lines[..n - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        .filter(|t| plain(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

impl RepoUrl {
    /// Parses a repository URL.
    pub fn parse(text: &str) -> Result<RepoUrl, ConfigError> {
        let bad = |why: &str| ConfigError::BadRepo { url: text.to_string(), why: why.to_string() };
        let url = url::Url::parse(text).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => bad("not a URL"),
            e => bad(&e.to_string()),
        })?;
        let prefix = || url.path().trim_matches('/').to_string();
        let host = || url.host_str().filter(|h| !h.is_empty()).map(str::to_string);
        match url.scheme() {
            "file" => {
                if host().is_some_and(|h| h != "localhost") {
                    return Err(bad("a file URL needs an absolute path (three slashes: file:///dir)"));
                }
                let path = url.to_file_path().map_err(|_| bad("not an absolute local path"))?;
                Ok(RepoUrl::Local(path))
            }
            "s3" | "s3a" => {
                Ok(RepoUrl::S3 { bucket: host().ok_or_else(|| bad("no bucket"))?, prefix: prefix() })
            }
            "gs" => Ok(RepoUrl::Gcs { bucket: host().ok_or_else(|| bad("no bucket"))?, prefix: prefix() }),
            "az" | "azure" => {
                Ok(RepoUrl::Azure { container: host().ok_or_else(|| bad("no container"))?, prefix: prefix() })
            }
            other => Err(bad(&format!("unknown scheme `{other}`"))),
        }
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |scheme: &str, b: &str, p: &str| {
            if p.is_empty() { format!("{scheme}://{b}") } else { format!("{scheme}://{b}/{p}") }
        };
        match self {
            RepoUrl::Local(p) => write!(f, "file://{}", p.display()),
            RepoUrl::S3 { bucket, prefix } => f.write_str(&join("s3", bucket, prefix)),
            RepoUrl::Gcs { bucket, prefix } => f.write_str(&join("gs", bucket, prefix)),
            RepoUrl::Azure { container, prefix } => f.write_str(&join("az", container, prefix)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "c.toml", "repo = \"s3://b/p/\"\ncompression = \"lz4\"\ntimeout = 5\n");
        let mut args = ConfigArgs { config: Some(cfg), ..Default::default() };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.repo, RepoUrl::S3 { bucket: "b".into(), prefix: "p".into() });
        assert_eq!(c.compression, Compression::Lz4);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.retries, DEFAULT_RETRIES);
        assert!(c.keys.write_key().is_none());
        args.compression = Some("zstd:7".into());
        args.repo = Some("file:///tmp/x".into());
        args.timeout = Some("250ms".into());
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.compression, Compression::Zstd { level: 7 });
        assert_eq!(c.repo, RepoUrl::Local("/tmp/x".into()));
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert!(c.describe().contains("objects are stored unencrypted"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "c.toml", "repo = \"file:///x\"\n\ncompresion = \"lz4\"\n");
        let err =
            Config::resolve(&ConfigArgs { config: Some(cfg), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("compresion"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let bad = |args: ConfigArgs| Config::resolve(&args).unwrap_err().to_string();
        let base = || ConfigArgs { repo: Some("file:///x".into()), ..Default::default() };
        assert!(
            bad(ConfigArgs { compression: Some("gzip".into()), ..base() }).contains("compression `gzip`")
        );
        assert!(bad(ConfigArgs { timeout: Some("soon".into()), ..base() }).starts_with("timeout:"));
        assert!(
            bad(ConfigArgs { repo: Some("ftp://x/y".into()), ..base() }).contains("unknown scheme `ftp`")
        );
        assert!(bad(ConfigArgs { repo: None, ..base() }).contains("no repository"));
        assert!(
            bad(ConfigArgs { config: Some(dir.path().join("none.toml")), ..base() })
                .contains("cannot read config")
        );
        let short = write(dir.path(), "short.key", "abcd");
        assert!(bad(ConfigArgs { encryption_key_file: Some(short), ..base() }).contains("holds 4 bytes"));
    }

    #[test]
    fn type_errors_name_the_setting_not_the_value() {
        let text = "repo = \"x\"\n[retention]\nkeep_daily = \"x\"\n[notify.headers]\n\"Auth\" = 5\n= 3\n";
        assert_eq!(setting_on_line(text, 1).as_deref(), Some("repo"));
        assert_eq!(setting_on_line(text, 3).as_deref(), Some("retention.keep_daily"));
        assert_eq!(setting_on_line(text, 5).as_deref(), Some("notify.headers.Auth"));
        assert_eq!(setting_on_line(text, 6), None);
        assert_eq!(setting_on_line(text, 2), None);
    }

    #[test]
    fn repo_urls() {
        let ok = |s: &str| RepoUrl::parse(s).unwrap();
        assert_eq!(ok("file:///var/lib/wal"), RepoUrl::Local("/var/lib/wal".into()));
        assert_eq!(ok("s3://bucket"), RepoUrl::S3 { bucket: "bucket".into(), prefix: String::new() });
        assert_eq!(ok("gs://b/a/b"), RepoUrl::Gcs { bucket: "b".into(), prefix: "a/b".into() });
        assert_eq!(ok("az://c/x"), RepoUrl::Azure { container: "c".into(), prefix: "x".into() });
        assert_eq!(ok("s3://b/p").to_string(), "s3://b/p");
        for bad in ["/var/lib/wal", "file://relative/dir", "s3:///nobucket", "http://x/y", "wal"] {
            assert!(RepoUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_files_relative_to_the_config_file_and_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        crate::keys::keygen(&dir.path().join("k")).unwrap();
        let cfg = write(
            dir.path(),
            "c.toml",
            "repo = \"s3://b\"\nencryption_key_file = \"k\"\n[storage]\naws_secret_access_key = \"hunter2\"\naws_access_key_id = \"AKIA\"\nallow_http = true\n",
        );
        let c = Config::resolve(&ConfigArgs { config: Some(cfg), ..Default::default() }).unwrap();
        assert!(c.keys.write_key().is_some());
        let shown = format!("{} {:?}", c.describe(), c);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("AKIA") && shown.contains("allow_http = \"true\""), "{shown}");
        assert!(shown.contains("aes-256-gcm"));
    }
}
