//! `ReplicationError`: every way a replication connection or command can fail, typed so callers
//! can branch (authentication, permissions, too many connections, server errors mid-stream).

use std::io;

use thiserror::Error;

/// SQLSTATE `42501` insufficient_privilege (e.g. a role without REPLICATION).
const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// SQLSTATE `53300` too_many_connections (also: `max_wal_senders` exhausted or zero).
const TOO_MANY_CONNECTIONS: &str = "53300";

/// Why a replication connection or command failed. Every variant prints as one line.
#[derive(Debug, Error)]
pub enum ReplicationError {
    /// The connection settings are invalid (bad conninfo or URI, unknown key, bad value).
    #[error("invalid connection settings: {0}")]
    Config(String),

    /// A command argument is invalid (a `SHOW` name, a label, a rate); nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Nothing listens at the address: TCP connection refused, or no socket file in the directory.
    #[error(
        "could not connect to {addr}: connection refused (is the server running and accepting connections there?)"
    )]
    ConnectRefused {
        /// `host:port` or the socket path.
        addr: String,
    },

    /// Connecting (TCP/socket, TLS and authentication) took longer than `connect_timeout`.
    #[error("could not connect to {addr}: timed out after {secs} s")]
    ConnectTimeout {
        /// `host:port` or the socket path.
        addr: String,
        /// The timeout in seconds.
        secs: u64,
    },

    /// Another IO error while connecting or talking to the server (name resolution, reset, EOF).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and with which address.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// TLS could not be set up: the server refused it when `sslmode` requires it, the certificate
    /// failed verification, the root certificate file is missing or unreadable.
    #[error("TLS: {0}")]
    Tls(String),

    /// The server rejected the authentication (SQLSTATE class 28: wrong password, no `pg_hba.conf`
    /// entry for a replication connection from this host and user).
    #[error("authentication as \"{user}\" failed: {message} (SQLSTATE {code})")]
    Auth {
        /// The user name sent.
        user: String,
        /// The SQLSTATE, e.g. `28P01` (invalid_password) or `28000`.
        code: String,
        /// The server's message.
        message: String,
    },

    /// The server asked for a password and there is none (no `password`, `PGPASSWORD` or
    /// matching passfile line).
    #[error("the server asked for a password for user \"{user}\" and none was supplied")]
    PasswordRequired {
        /// The user name sent.
        user: String,
    },

    /// The server asked for an authentication method this client does not implement
    /// (GSSAPI, SSPI, Kerberos, SCM credentials), or for SCRAM channel binding when
    /// `channel_binding=require` cannot be met.
    #[error("authentication method {0} is not supported")]
    UnsupportedAuth(String),

    /// The server sent an ErrorResponse (at startup, for a command, or in the middle of a
    /// `BASE_BACKUP` stream). See [`ReplicationError::is_permission_denied`] and
    /// [`ReplicationError::is_too_many_connections`].
    #[error("server {severity}: {message} (SQLSTATE {code}){}", detail.as_deref().map(|d| format!("; {d}")).unwrap_or_default())]
    Server {
        /// `ERROR`, `FATAL` or `PANIC`.
        severity: String,
        /// The SQLSTATE.
        code: String,
        /// The primary message.
        message: String,
        /// The DETAIL field, if any.
        detail: Option<String>,
    },

    /// The server sent something the protocol does not allow here (or a malformed message), or
    /// the connection was left in the middle of an abandoned base backup.
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// The server is too old for the requested operation (base backups need PostgreSQL 13+).
    #[error("PostgreSQL {version} is not supported for base backups: PostgreSQL 13 or later is needed")]
    UnsupportedVersion {
        /// The server's `server_version_num`, e.g. `120017`.
        version: u32,
    },
}

impl ReplicationError {
    /// The SQLSTATE the server sent, for [`ReplicationError::Server`] and
    /// [`ReplicationError::Auth`].
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ReplicationError::Server { code, .. } | ReplicationError::Auth { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when the server refused for lack of privilege: typically a role without the
    /// REPLICATION attribute (SQLSTATE 42501).
    pub fn is_permission_denied(&self) -> bool {
        self.sqlstate() == Some(INSUFFICIENT_PRIVILEGE)
    }

    /// True when the server has no free connection slot, including `max_wal_senders` being
    /// exhausted or zero (SQLSTATE 53300).
    pub fn is_too_many_connections(&self) -> bool {
        self.sqlstate() == Some(TOO_MANY_CONNECTIONS)
    }

    /// True for authentication failures: rejected credentials, a missing password, an
    /// unsupported method.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ReplicationError::Auth { .. }
                | ReplicationError::PasswordRequired { .. }
                | ReplicationError::UnsupportedAuth(_)
        )
    }

    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        ReplicationError::Protocol(what.into())
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ReplicationError::Io { context: context.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_print_on_one_line_and_classify() {
        let e = ReplicationError::Server {
            severity: "FATAL".into(),
            code: "53300".into(),
            message: "number of requested standby connections exceeds max_wal_senders (currently 0)".into(),
            detail: None,
        };
        assert!(e.is_too_many_connections());
        assert!(!e.is_permission_denied());
        let s = e.to_string();
        assert!(!s.contains('\n'));
        assert!(s.contains("53300") && s.contains("max_wal_senders"), "{s}");

        let e = ReplicationError::Server {
            severity: "FATAL".into(),
            code: "42501".into(),
            message: "permission denied to start WAL sender".into(),
            detail: Some("Only roles with the REPLICATION attribute may start a WAL sender process.".into()),
        };
        assert!(e.is_permission_denied());
        assert!(e.to_string().contains("REPLICATION attribute"));
    }
}
