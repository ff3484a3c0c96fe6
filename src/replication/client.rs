//! `ReplicationClient`: a physical replication connection (startup parameter
//! `replication=true`) and its typed commands, over simple Query only (the walsender refuses the
//! extended protocol).

use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::auth;
use super::codec::{self, ResultSet};
use super::conn::Connection;
use super::error::ReplicationError;
use super::options::ConnectOptions;
use crate::wal::lsn::{Lsn, TimelineId};

/// What `IDENTIFY_SYSTEM` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The cluster's system identifier (as in `pg_controldata` and WAL page headers).
    pub system_id: u64,
    /// The current timeline.
    pub timeline: TimelineId,
    /// The current WAL flush position.
    pub xlogpos: Lsn,
    /// The database name (`None` for a physical replication connection).
    pub dbname: Option<String>,
}

/// Whether the connection can take a command.
#[derive(Debug, Clone)]
enum State {
    Ready,
    /// A base backup stream was started and has not finished.
    Busy,
    /// The connection failed; the reason.
    Broken(String),
}

/// A physical replication connection.
pub struct ReplicationClient {
    pub(crate) conn: Connection,
    pub(super) version: u32,
    state: State,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient")
            .field("peer", &self.conn.peer)
            .field("tls", &self.conn.tls)
            .field("server_version_num", &self.version)
            .field("state", &self.state)
            .finish()
    }
}

/// `server_version` as sent in ParameterStatus (`15.18 (Debian ...)`, `18beta1`, `9.6.24`) to
/// `server_version_num`.
/// `name` as an SQL identifier, quoted (for the text of a query run with
/// [`ReplicationClient::query`]).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn parse_server_version(s: &str) -> Option<u32> {
    let numeric: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = numeric.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    if major >= 10 {
        Some(major * 10_000 + minor)
    } else {
        let patch = parts.next().flatten().unwrap_or(0);
        Some(major * 10_000 + minor * 100 + patch)
    }
}

/// True when a connection error is the server's own answer rather than a failure to reach it.
fn is_from_server(e: &ReplicationError) -> bool {
    !matches!(
        e,
        ReplicationError::ConnectRefused { .. }
            | ReplicationError::ConnectTimeout { .. }
            | ReplicationError::Io { .. }
    )
}

impl ReplicationClient {
    /// Opens a physical replication connection, trying `opts.hosts` in order. When every host
    /// fails, the error returned is the most telling one: a server's answer (authentication,
    /// permissions, too many connections, TLS) over a failure to reach a host.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, ReplicationError> {
        let mut best: Option<ReplicationError> = None;
        for ep in &opts.hosts {
            let attempt = async {
                let mut conn = Connection::open(ep, opts).await?;
                conn.startup(opts).await?;
                auth::authenticate(&mut conn, opts, ep).await?;
                Ok::<_, ReplicationError>(conn)
            };
            let result = match opts.connect_timeout {
                Some(t) => tokio::time::timeout(t, attempt).await.unwrap_or_else(|_| {
                    Err(ReplicationError::ConnectTimeout { addr: ep.describe(), secs: t.as_secs() })
                }),
                None => attempt.await,
            };
            match result {
                Ok(conn) => return Self::ready(conn).await,
                Err(e) => {
                    tracing::debug!("connecting to {}: {e}", ep.describe());
                    // The latest error, but never one that hides a server's answer behind an unreachable host.
                    if best.as_ref().is_none_or(|b| is_from_server(&e) || !is_from_server(b)) {
                        best = Some(e);
                    }
                }
            }
        }
        Err(best.unwrap_or_else(|| ReplicationError::Config("no host to connect to".into())))
    }

    async fn ready(conn: Connection) -> Result<Self, ReplicationError> {
        let parsed = conn.params.get("server_version").and_then(|v| parse_server_version(v));
        let mut client = ReplicationClient { conn, version: parsed.unwrap_or(0), state: State::Ready };
        if parsed.is_none() {
            let v = client.show("server_version_num").await?;
            client.version = v
                .trim()
                .parse()
                .map_err(|_| ReplicationError::protocol(format!("server_version_num is {v:?}")))?;
        }
        Ok(client)
    }

    /// The server's version as `server_version_num` (e.g. `150018`).
    pub fn server_version_num(&self) -> u32 {
        self.version
    }

    /// Whether the server is a standby in hot standby (ParameterStatus `in_hot_standby`,
    /// PostgreSQL 14+; always false for older servers, which do not report it).
    pub fn in_hot_standby(&self) -> bool {
        self.conn.params.get("in_hot_standby").is_some_and(|v| v == "on")
    }

    /// Whether the connection is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.tls
    }

    /// `IDENTIFY_SYSTEM`: system identifier, timeline and current WAL position.
    pub async fn identify_system(&mut self) -> Result<SystemIdentity, ReplicationError> {
        let sets = self.simple_query("IDENTIFY_SYSTEM").await?;
        let rs = single_row(&sets, "IDENTIFY_SYSTEM", 4)?;
        let system_id = rs
            .required(0, 0)?
            .parse::<u64>()
            .map_err(|_| ReplicationError::protocol(format!("systemid {:?}", rs.text(0, 0))))?;
        let timeline = rs
            .required(0, 1)?
            .parse::<u32>()
            .ok()
            .and_then(|t| TimelineId::new(t).ok())
            .ok_or_else(|| ReplicationError::protocol(format!("timeline {:?}", rs.text(0, 1))))?;
        let xlogpos = rs
            .required(0, 2)?
            .parse::<Lsn>()
            .map_err(|e| ReplicationError::protocol(format!("xlogpos: {e}")))?;
        let dbname = rs.text(0, 3)?.map(str::to_string);
        Ok(SystemIdentity { system_id, timeline, xlogpos, dbname })
    }

    /// `SHOW name`: a server setting as text (e.g. `wal_segment_size` → `16MB`). The name may
    /// contain letters, digits, `_` and `.` only.
    pub async fn show(&mut self, name: &str) -> Result<String, ReplicationError> {
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !valid {
            return Err(ReplicationError::InvalidArgument(format!("{name:?} is not a setting name")));
        }
        let sets = self.simple_query(&format!("SHOW {name}")).await?;
        Ok(single_row(&sets, "SHOW", 1)?.required(0, 0)?.to_string())
    }

    /// Runs `sql` (one statement, on an SQL session: see [`ConnectOptions::sql_session`]) and
    /// returns the rows of its last result set, as text (`None` for NULL).
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ReplicationError> {
        let sets = self.simple_query(sql).await?;
        let Some(rs) = sets.last() else { return Ok(Vec::new()) };
        (0..rs.rows.len())
            .map(|r| (0..rs.columns.len()).map(|c| Ok(rs.text(r, c)?.map(str::to_string))).collect())
            .collect()
    }

    /// Ends the session politely (Terminate) and closes the socket.
    pub async fn close(self) {
        self.conn.terminate().await;
    }

    pub(super) fn check_ready(&self) -> Result<(), ReplicationError> {
        match &self.state {
            State::Ready => Ok(()),
            State::Busy => Err(ReplicationError::protocol(
                "the connection is in the middle of an abandoned BASE_BACKUP; open a new one",
            )),
            State::Broken(why) => {
                Err(ReplicationError::protocol(format!("the connection failed earlier: {why}")))
            }
        }
    }

    /// Marks the connection busy with a stream that has started and not finished.
    pub(super) fn set_busy(&mut self) {
        self.state = State::Busy;
    }

    pub(crate) fn set_ready(&mut self) {
        self.state = State::Ready;
    }

    pub(crate) fn set_broken(&mut self, e: &ReplicationError) {
        self.state = State::Broken(e.to_string());
    }

    /// Runs one simple Query and collects its result sets; a server error is returned after
    /// ReadyForQuery, so the connection stays usable.
    async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>, ReplicationError> {
        self.check_ready()?;
        self.conn.write(|b| frontend::query(sql, b))?;
        let r = self.collect_results().await;
        if let Err(e) = &r
            && !matches!(e, ReplicationError::Server { .. })
        {
            self.set_broken(e);
        }
        r
    }

    async fn collect_results(&mut self) -> Result<Vec<ResultSet>, ReplicationError> {
        self.conn.flush().await?;
        let mut sets = Vec::new();
        let mut current: Option<ResultSet> = None;
        let mut error = None;
        loop {
            match self.conn.recv().await? {
                Message::RowDescription(body) => current = Some(ResultSet::from_description(&body)?),
                Message::DataRow(body) => match &mut current {
                    Some(rs) => rs.push_row(&body)?,
                    None => return Err(ReplicationError::protocol("DataRow without RowDescription")),
                },
                Message::CommandComplete(_) => sets.extend(current.take()),
                Message::EmptyQueryResponse => {}
                Message::ErrorResponse(body) => error = Some(codec::server_error(&body)),
                Message::ReadyForQuery(_) => return error.map_or(Ok(sets), Err),
                Message::CopyOutResponse(_) | Message::CopyInResponse(_) => {
                    return Err(ReplicationError::protocol("a command unexpectedly started COPY"));
                }
                _ => return Err(ReplicationError::protocol("unexpected message in a query response")),
            }
        }
    }
}

/// The only result set of a command, with exactly one row of at least `columns` columns.
fn single_row<'a>(
    sets: &'a [ResultSet],
    what: &str,
    columns: usize,
) -> Result<&'a ResultSet, ReplicationError> {
    match sets {
        [rs] if rs.rows.len() == 1 && rs.columns.len() >= columns => Ok(rs),
        _ => Err(ReplicationError::protocol(format!(
            "{what}: expected one row of {columns} columns, got {:?}",
            sets.iter().map(|s| (s.columns.clone(), s.rows.len())).collect::<Vec<_>>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions() {
        assert_eq!(parse_server_version("15.18 (Debian 15.18-1.pgdg120+1)"), Some(150018));
        assert_eq!(parse_server_version("14.23"), Some(140023));
        assert_eq!(parse_server_version("18beta1"), Some(180000));
        assert_eq!(parse_server_version("17.10"), Some(170010));
        assert_eq!(parse_server_version("9.6.24"), Some(90624));
        assert_eq!(parse_server_version("devel"), None);
        assert_eq!(parse_server_version(""), None);
    }
}
