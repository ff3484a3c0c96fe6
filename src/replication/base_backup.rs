//! `BASE_BACKUP`: the options, the command text for each server version, and the stream of
//! events (archives, manifest, progress) handed over as the bytes arrive.

use std::collections::VecDeque;

use postgres_protocol::message::frontend;

pub use super::backup_machine::{BackupEvent, Tablespace};
use super::backup_machine::{Dialect, Machine};
use super::client::ReplicationClient;
use super::error::ReplicationError;

/// The lowest `MAX_RATE` the server accepts, in kB/s.
pub const MIN_MAX_RATE_KB: u32 = 32;
/// The highest `MAX_RATE` the server accepts, in kB/s.
pub const MAX_MAX_RATE_KB: u32 = 1_048_576;
/// The first server version with the PostgreSQL 15 option syntax and one COPY stream.
pub const MODERN_SYNTAX_VERSION: u32 = 150_000;
/// The oldest server version base backups support (backup manifests appeared in 13).
pub const MIN_BACKUP_VERSION: u32 = 130_000;

/// The checksum algorithm of the `backup_manifest` file entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestChecksums {
    /// No per-file checksums.
    None,
    /// CRC-32C, the server's default: cheap, catches corruption.
    #[default]
    Crc32c,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl ManifestChecksums {
    /// The name `MANIFEST_CHECKSUMS` takes.
    pub fn sql_name(self) -> &'static str {
        match self {
            ManifestChecksums::None => "NONE",
            ManifestChecksums::Crc32c => "CRC32C",
            ManifestChecksums::Sha224 => "SHA224",
            ManifestChecksums::Sha256 => "SHA256",
            ManifestChecksums::Sha384 => "SHA384",
            ManifestChecksums::Sha512 => "SHA512",
        }
    }
}

/// What to ask `BASE_BACKUP` for. The request always includes `PROGRESS` (tablespace sizes),
/// `TABLESPACE_MAP` and `MANIFEST 'yes'`; it never includes `WAL`, and keeps the server's
/// default `WAIT` (on a primary the command finishes only once the WAL the backup needs is
/// archived).
#[derive(Debug, Clone, Default)]
pub struct BaseBackupOptions {
    /// The backup label (in `backup_label`); any text without NUL bytes.
    pub label: String,
    /// An immediate checkpoint (`CHECKPOINT 'fast'`) instead of a spread one.
    pub fast_checkpoint: bool,
    /// Server-side rate limit in kB/s (32 ..= 1048576), or none.
    pub max_rate_kb: Option<u32>,
    /// Checksums in the manifest.
    pub manifest_checksums: ManifestChecksums,
}

/// A string as an SQL literal of the replication grammar: `'` doubled, no NUL bytes.
fn literal(s: &str, what: &str) -> Result<String, ReplicationError> {
    if s.contains('\0') {
        return Err(ReplicationError::InvalidArgument(format!("{what} contains a NUL byte")));
    }
    Ok(format!("'{}'", s.replace('\'', "''")))
}

/// The dialect for a server version, or `UnsupportedVersion`.
pub fn dialect(version: u32) -> Result<Dialect, ReplicationError> {
    match version {
        v if v >= MODERN_SYNTAX_VERSION => Ok(Dialect::Modern),
        v if v >= MIN_BACKUP_VERSION => Ok(Dialect::Legacy),
        v => Err(ReplicationError::UnsupportedVersion { version: v }),
    }
}

/// The `BASE_BACKUP` command for `opts` in the syntax of `dialect`.
pub fn command(opts: &BaseBackupOptions, dialect: Dialect) -> Result<String, ReplicationError> {
    let label = literal(&opts.label, "the backup label")?;
    if let Some(r) = opts.max_rate_kb
        && !(MIN_MAX_RATE_KB..=MAX_MAX_RATE_KB).contains(&r)
    {
        return Err(ReplicationError::InvalidArgument(format!(
            "max rate {r} kB/s is outside {MIN_MAX_RATE_KB}..={MAX_MAX_RATE_KB}"
        )));
    }
    let checksums = opts.manifest_checksums.sql_name();
    Ok(match dialect {
        Dialect::Modern => {
            let mut o = vec![format!("LABEL {label}"), "PROGRESS".to_string()];
            o.push(format!("CHECKPOINT '{}'", if opts.fast_checkpoint { "fast" } else { "spread" }));
            if let Some(r) = opts.max_rate_kb {
                o.push(format!("MAX_RATE {r}"));
            }
            o.push("TABLESPACE_MAP".into());
            o.push("MANIFEST 'yes'".into());
            o.push(format!("MANIFEST_CHECKSUMS '{checksums}'"));
            format!("BASE_BACKUP ( {} )", o.join(", "))
        }
        Dialect::Legacy => {
            let mut o = vec![format!("LABEL {label}"), "PROGRESS".to_string()];
            if opts.fast_checkpoint {
                o.push("FAST".into());
            }
            if let Some(r) = opts.max_rate_kb {
                o.push(format!("MAX_RATE {r}"));
            }
            o.push("TABLESPACE_MAP".into());
            o.push("MANIFEST 'yes'".into());
            o.push(format!("MANIFEST_CHECKSUMS '{checksums}'"));
            format!("BASE_BACKUP {}", o.join(" "))
        }
    })
}

impl ReplicationClient {
    /// Starts `BASE_BACKUP` (PostgreSQL 15+ syntax, or the 13/14 one); the returned stream
    /// borrows the client. Servers older than 13 are refused with `UnsupportedVersion`.
    pub async fn base_backup(
        &mut self,
        opts: &BaseBackupOptions,
    ) -> Result<BaseBackupStream<'_>, ReplicationError> {
        let dialect = dialect(self.version)?;
        let command = command(opts, dialect)?;
        self.check_ready()?;
        self.conn.write(|b| frontend::query(&command, b))?;
        if let Err(e) = self.conn.flush().await {
            self.set_broken(&e);
            return Err(e);
        }
        self.set_busy();
        Ok(BaseBackupStream::new(self, dialect))
    }
}

/// A running base backup; it borrows the client until it is finished. Dropping it early leaves
/// the client unusable (its connection is in the middle of the COPY).
pub struct BaseBackupStream<'a> {
    client: &'a mut ReplicationClient,
    machine: Machine,
    queue: VecDeque<BackupEvent>,
    failed: bool,
}

impl<'a> BaseBackupStream<'a> {
    pub(crate) fn new(client: &'a mut ReplicationClient, dialect: Dialect) -> Self {
        BaseBackupStream { client, machine: Machine::new(dialect), queue: VecDeque::new(), failed: false }
    }

    /// Next event; `Ok(None)` after `Finished` (or after an error was returned). Bytes are
    /// handed over as they arrive: nothing is read from the server until the caller asks, so a
    /// slow consumer slows the server down instead of filling memory. A server error in the
    /// middle of the stream (after it has been drained to ReadyForQuery, so the client can be
    /// used again) is [`ReplicationError::Server`].
    pub async fn next(&mut self) -> Result<Option<BackupEvent>, ReplicationError> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            if self.failed || self.machine.is_finished() {
                return Ok(None);
            }
            let msg = match self.client.conn.recv().await {
                Ok(m) => m,
                Err(e) => {
                    self.failed = true;
                    self.client.set_broken(&e);
                    // A FATAL error closes the connection without ReadyForQuery: report it.
                    return Err(self.machine.take_error().unwrap_or(e));
                }
            };
            if let Err(e) = self.machine.feed(msg, &mut self.queue) {
                self.failed = true;
                if self.machine.is_finished() {
                    self.client.set_ready();
                } else {
                    self.client.set_broken(&e);
                }
                return Err(e);
            }
            if self.machine.is_finished() {
                self.client.set_ready();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_for_both_dialects() {
        let mut o = BaseBackupOptions { label: "it's a label".into(), ..Default::default() };
        assert_eq!(
            command(&o, Dialect::Modern).unwrap(),
            "BASE_BACKUP ( LABEL 'it''s a label', PROGRESS, CHECKPOINT 'spread', TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C' )"
        );
        assert_eq!(
            command(&o, Dialect::Legacy).unwrap(),
            "BASE_BACKUP LABEL 'it''s a label' PROGRESS TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"
        );
        o.fast_checkpoint = true;
        o.max_rate_kb = Some(1024);
        o.manifest_checksums = ManifestChecksums::Sha256;
        assert_eq!(
            command(&o, Dialect::Modern).unwrap(),
            "BASE_BACKUP ( LABEL 'it''s a label', PROGRESS, CHECKPOINT 'fast', MAX_RATE 1024, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256' )"
        );
        assert_eq!(
            command(&o, Dialect::Legacy).unwrap(),
            "BASE_BACKUP LABEL 'it''s a label' PROGRESS FAST MAX_RATE 1024 TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'SHA256'"
        );
        o.max_rate_kb = Some(31);
        assert!(matches!(command(&o, Dialect::Modern), Err(ReplicationError::InvalidArgument(_))));
        o.max_rate_kb = None;
        o.label = "a\0b".into();
        assert!(matches!(command(&o, Dialect::Modern), Err(ReplicationError::InvalidArgument(_))));
    }

    #[test]
    fn versions() {
        assert_eq!(dialect(180_004).unwrap(), Dialect::Modern);
        assert_eq!(dialect(150_000).unwrap(), Dialect::Modern);
        assert_eq!(dialect(140_023).unwrap(), Dialect::Legacy);
        assert_eq!(dialect(130_000).unwrap(), Dialect::Legacy);
        let e = dialect(120_017).unwrap_err();
        assert!(matches!(e, ReplicationError::UnsupportedVersion { version: 120_017 }));
        assert!(e.to_string().contains("13 or later"), "{e}");
    }
}
