//! A PostgreSQL physical replication client, written on `postgres-protocol`'s message codec over
//! tokio TCP and Unix sockets, with TLS by rustls. Typed commands only: nothing outside this
//! module sees protocol messages.
//!
//! ```no_run
//! # async fn example() -> Result<(), walvault::replication::ReplicationError> {
//! use walvault::replication::{BackupEvent, BaseBackupOptions, ConnectOptions, ReplicationClient};
//! let opts = ConnectOptions::from_env_and_conninfo(Some("host=db1 user=backup"))?;
//! let mut client = ReplicationClient::connect(&opts).await?;
//! let id = client.identify_system().await?;
//! let mut backup = client.base_backup(&BaseBackupOptions { label: "nightly".into(), ..Default::default() }).await?;
//! while let Some(event) = backup.next().await? {
//!     if let BackupEvent::ArchiveData(bytes) = event { /* write `bytes` */ }
//! }
//! # let _ = id; Ok(()) }
//! ```
//!
//! # Layout
//! - `conninfo`: libpq `key=value` strings and `postgresql://` URIs, parsed without IO.
//! - `options`: [`ConnectOptions`], merged from conninfo, `PG*` variables and defaults.
//! - `passfile`: `~/.pgpass` / `PGPASSFILE` lookup with libpq's rules.
//! - `codec`: backend message framing and result sets, without IO.
//! - `tls`: rustls configuration per sslmode, channel-binding hash.
//! - `conn`: sockets, SSLRequest, startup packet, reading and writing messages.
//! - `auth`: trust, password, MD5 and SCRAM-SHA-256(-PLUS) authentication.
//! - `client`: [`ReplicationClient`] and its commands.
//! - `base_backup`: [`BaseBackupOptions`], the command text, [`ReplicationClient::base_backup`]
//!   and [`BaseBackupStream`].
//! - `backup_machine`: the `BASE_BACKUP` response as a state machine, without IO, and the
//!   [`BackupEvent`]s it yields.
//! - `error`: [`ReplicationError`].

mod auth;
mod backup_machine;
mod base_backup;
mod client;
mod codec;
mod conn;
mod conninfo;
mod error;
mod options;
mod passfile;
mod tls;

#[cfg(test)]
mod fuzz;

pub use base_backup::{BackupEvent, BaseBackupOptions, BaseBackupStream, ManifestChecksums, Tablespace};
pub use client::{ReplicationClient, SystemIdentity, quote_ident};
pub use error::ReplicationError;
pub use options::{ChannelBindingMode, ConnectOptions, Endpoint, Host, RootCert, Session, SslMode};
