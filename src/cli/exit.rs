//! Exit codes are API: every code each command returns is decided here, in [`code`], and
//! listed in the README.

use std::process::ExitCode;

use thiserror::Error;

use crate::backup::BackupError;
use crate::config::ConfigError;
use crate::dump::DumpError;
use crate::format::DecodeError;
use crate::keys::KeyError;
use crate::object::download::DownloadError;
use crate::ops::check::CheckFailed;
use crate::ops::list::ListError;
use crate::ops::mark::MarkError;
use crate::ops::retention::RetentionError;
use crate::ops::status::StatusError;
use crate::ops::verify::VerifyError;
use crate::ops::verify::drill::DrillError;
use crate::replication::ReplicationError;
use crate::repo::StorageError;
use crate::repo::identity::IdentityError;
use crate::restore::extract::ExtractError;
use crate::restore::{PartError, RestoreError};
use crate::wal_fetch::FetchError;
use crate::wal_push::PushError;

/// Which program is exiting (wal-fetch answers PostgreSQL's recovery, so its codes differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `wal-push` / `walvault wal-push`.
    WalPush,
    /// `wal-fetch` / `walvault wal-fetch`.
    WalFetch,
    /// Every other `walvault` subcommand.
    Other,
}

/// Success.
pub const OK: u8 = 0;
/// wal-fetch: the archive does not have the file. wal-push and others: the repository failed
/// (PostgreSQL retries the archive_command).
pub const NOT_FOUND_OR_FAILED: u8 = 1;
/// wal-push and others: bad usage, configuration, key or credentials.
pub const USAGE: u8 = 2;
/// wal-push: the file was refused (not WAL, another cluster, a different copy already archived).
pub const REFUSED: u8 = 3;
/// wal-fetch: the repository could not be read after retries (recovery stops).
pub const FETCH_STORAGE: u8 = 200;
/// wal-fetch: the archived object is corrupt (recovery stops).
pub const FETCH_CORRUPT: u8 = 201;
/// wal-fetch: bad usage, configuration, key or credentials (recovery stops).
pub const FETCH_CONFIG: u8 = 202;
/// wal-fetch: the destination could not be written (recovery stops).
pub const FETCH_LOCAL: u8 = 203;

/// Anything a command can fail with.
#[derive(Debug, Error)]
pub enum CommandError {
    /// The command line could not be parsed.
    #[error("{0}")]
    Usage(String),
    /// A local file or directory could not be used (a background helper's state, say).
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The repository could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `wal-push` failed.
    #[error(transparent)]
    Push(#[from] PushError),
    /// `wal-fetch` failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// `keygen` failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `base-backup` failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// `dump`, `dump-restore` or `dump-fetch` failed.
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// `list` failed.
    #[error(transparent)]
    List(#[from] ListError),
    /// `restore` failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// `delete` failed.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// `mark` failed.
    #[error(transparent)]
    Mark(#[from] MarkError),
    /// `verify` failed or found problems.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// `status` is unhealthy.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// `check` found something to fix.
    #[error(transparent)]
    Check(#[from] CheckFailed),
}

/// The exit code for `err` from `cmd`.
pub fn code(cmd: Command, err: &CommandError) -> u8 {
    match (cmd, class(err)) {
        (Command::WalFetch, Class::NotFound) => NOT_FOUND_OR_FAILED,
        (Command::WalFetch, Class::Storage) => FETCH_STORAGE,
        (Command::WalFetch, Class::Corrupt) => FETCH_CORRUPT,
        (Command::WalFetch, Class::Config | Class::Refused) => FETCH_CONFIG,
        (Command::WalFetch, Class::Local) => FETCH_LOCAL,
        (_, Class::Config) => USAGE,
        (_, Class::Refused | Class::Corrupt) => REFUSED,
        (_, Class::NotFound | Class::Storage | Class::Local) => NOT_FOUND_OR_FAILED,
    }
}

/// The kind of failure `err` is, as `walvault status` counts it: `not_found`, `storage`,
/// `corrupt`, `config`, `refused` or `local`.
pub fn failure_kind(err: &CommandError) -> &'static str {
    match class(err) {
        Class::NotFound => "not_found",
        Class::Storage => "storage",
        Class::Corrupt => "corrupt",
        Class::Config => "config",
        Class::Refused => "refused",
        Class::Local => "local",
    }
}

/// What kind of failure `err` is (the exit code of each command follows from it).
fn class(err: &CommandError) -> Class {
    use CommandError as C;
    match err {
        C::Usage(_) | C::Config(_) | C::Key(_) => Class::Config,
        C::Local { .. } => Class::Local,
        C::Storage(e) => storage(e),
        C::Push(e) => match e {
            PushError::Refused { .. }
            | PushError::OtherCluster { .. }
            | PushError::Conflict { .. }
            | PushError::ExistingUnverifiable { .. } => Class::Refused,
            PushError::Read { .. } | PushError::Panicked(_) => Class::Storage,
            PushError::Storage(e) | PushError::Identity(IdentityError::Storage(e)) => storage(e),
            PushError::Identity(_) => Class::Config,
        },
        C::Backup(e) => match e {
            BackupError::Replication(r) => replication(r),
            BackupError::Storage(e) | BackupError::Identity(IdentityError::Storage(e)) => storage(e),
            BackupError::Identity(_) => Class::Config,
            BackupError::OtherCluster { .. } | BackupError::TakenForLeftovers { .. } => Class::Refused,
            _ => Class::Storage,
        },
        C::Dump(e) => match e {
            DumpError::Usage(_) | DumpError::NoProgram(_) | DumpError::UnknownDump(_) => Class::Config,
            // A database that does not exist is the operator's to fix.
            DumpError::Server(r) if r.sqlstate() == Some("3D000") => Class::Config,
            DumpError::Server(r) => replication(r),
            DumpError::Storage(e) | DumpError::Identity(IdentityError::Storage(e)) => storage(e),
            DumpError::Identity(_) => Class::Config,
            DumpError::OtherCluster { .. } | DumpError::TakenForLeftovers { .. } => Class::Refused,
            DumpError::Decode {
                source: DecodeError::MissingKey(_) | DecodeError::WrongKey { .. }, ..
            } => Class::Config,
            DumpError::Decode { source: DecodeError::Sink(_), .. } => Class::Local,
            DumpError::Download(DownloadError::Storage(StorageError::NotFound { .. }))
            | DumpError::Download(DownloadError::Size { .. } | DownloadError::Changed { .. })
            | DumpError::Decode { .. }
            | DumpError::Mismatch { .. } => Class::Corrupt,
            DumpError::Download(DownloadError::Storage(e)) => storage(e),
            DumpError::Local { .. } => Class::Local,
            DumpError::Program { .. }
            | DumpError::Stream(_)
            | DumpError::Unexpected(_)
            | DumpError::Download(DownloadError::Stopped)
            | DumpError::Interrupted => Class::Storage,
        },
        C::List(e) => match e {
            ListError::Storage(e) | ListError::Identity(IdentityError::Storage(e)) => storage(e),
            _ => Class::Config,
        },
        C::Retention(e) => match e {
            RetentionError::Storage(e) | RetentionError::Identity(IdentityError::Storage(e)) => storage(e),
            _ => Class::Config,
        },
        C::Verify(e) => match e {
            VerifyError::Failed { problems, .. } if *problems > 0 => Class::Refused,
            VerifyError::Failed { .. } => Class::Storage,
            VerifyError::Storage(e) | VerifyError::Identity(IdentityError::Storage(e)) => storage(e),
            VerifyError::Drill(DrillError::Interrupted) => Class::Storage,
            VerifyError::Drill(DrillError::WorkDir { .. }) => Class::Local,
            _ => Class::Config,
        },
        C::Status(StatusError::Unhealthy(_)) | C::Check(_) => Class::Refused,
        C::Status(StatusError::Unreadable(_)) => Class::Storage,
        C::Mark(e) => match e {
            MarkError::Storage(e) => storage(e),
            _ => Class::Config,
        },
        C::Restore(e) => match e {
            RestoreError::Target(_)
            | RestoreError::Usage(_)
            | RestoreError::Directory { .. }
            | RestoreError::UnknownBackup(_)
            | RestoreError::Key { .. } => Class::Config,
            RestoreError::Storage(e) => storage(e),
            RestoreError::Descriptor { .. } => Class::Corrupt,
            RestoreError::Part { source, .. } | RestoreError::Manifest { source, .. } => part(source),
            RestoreError::Local { .. } => Class::Local,
            RestoreError::Interrupted => Class::Storage,
        },
        C::Fetch(e) => match e {
            FetchError::NotFound(_) => Class::NotFound,
            FetchError::BadName(_)
            | FetchError::NoRepository(_)
            | FetchError::Vanished(_)
            | FetchError::Key { .. } => Class::Config,
            FetchError::Storage(e) | FetchError::Identity(IdentityError::Storage(e)) => storage(e),
            FetchError::Identity(_) => Class::Config,
            FetchError::Corrupt { .. } | FetchError::NotItsSegment { .. } => Class::Corrupt,
            FetchError::Local { .. } => Class::Local,
        },
    }
}

/// Credentials and bad settings are the operator's to fix; anything else may pass.
fn storage(e: &StorageError) -> Class {
    match e {
        StorageError::Config(_) | StorageError::Denied { .. } => Class::Config,
        _ => Class::Storage,
    }
}

/// A part (or the manifest) of a backup being restored: missing, corrupt, swapped or unsafe
/// is "unverifiable" (3); a missing key is configuration (2); local write failures and
/// repository outages may pass (1).
fn part(e: &PartError) -> Class {
    match e {
        PartError::Download(DownloadError::Storage(StorageError::NotFound { .. })) => Class::Corrupt,
        PartError::Download(DownloadError::Storage(e)) => storage(e),
        PartError::Download(DownloadError::Size { .. } | DownloadError::Changed { .. }) => Class::Corrupt,
        PartError::Download(DownloadError::Stopped) | PartError::Abandoned | PartError::Panicked(_) => {
            Class::Storage
        }
        PartError::Decode(DecodeError::MissingKey(_) | DecodeError::WrongKey { .. }) => Class::Config,
        PartError::Decode(DecodeError::Sink(_)) | PartError::Extract(ExtractError::Io { .. }) => Class::Local,
        PartError::Decode(_) | PartError::Extract(_) | PartError::Mismatch { .. } => Class::Corrupt,
    }
}

/// Connection settings, credentials and privileges are the operator's to fix; an old server is
/// refused; anything else may pass.
fn replication(e: &ReplicationError) -> Class {
    use ReplicationError as R;
    match e {
        R::UnsupportedVersion { .. } => Class::Refused,
        R::Config(_)
        | R::InvalidArgument(_)
        | R::PasswordRequired { .. }
        | R::UnsupportedAuth { .. }
        | R::Tls(_) => Class::Config,
        e if e.is_auth() || e.is_permission_denied() => Class::Config,
        _ => Class::Storage,
    }
}

enum Class {
    NotFound,
    Storage,
    Corrupt,
    Config,
    Refused,
    Local,
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so it prints as one line.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Logs `err` (one line) and turns the result into the process exit code.
pub fn finish(cmd: Command, result: Result<(), CommandError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(OK),
        Err(err) => {
            let code = code(cmd, &err);
            // A message may quote what it was given (a setting, a name), which may hold line
            // breaks or terminal escapes: escaped, it stays one line that cannot forge another.
            let line = one_line(&err.to_string());
            if matches!(err, CommandError::Fetch(FetchError::NotFound(_))) {
                tracing::info!("{line}");
            } else {
                tracing::error!("{line}");
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn error_lines_stay_one_line() {
        assert_eq!(one_line("a\nb\r\u{1b}[2Jc\té ok"), "a\\nb\\r\\u{1b}[2Jc\\té ok");
        assert_eq!(one_line("plain text"), "plain text");
    }
}
