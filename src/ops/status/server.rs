//! What the server says, over an ordinary SQL session: its WAL position, `pg_stat_archiver`, and
//! the recovery point objective now: WAL written but not archived, in bytes (from the end of the
//! last archived segment to the current position) and seconds (since the last archived segment,
//! when WAL was written after it).

use serde::Serialize;

use crate::replication::{ConnectOptions, ReplicationClient};
use crate::units::UtcTime;
use crate::wal::{Lsn, WalFileName, WalSegSize};

/// The server's part of a status.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ServerStatus {
    /// Why the server could not be asked, if it could not.
    pub error: Option<String>,
    /// Whether it is in recovery (a standby: no RPO of its own).
    pub in_recovery: bool,
    /// Its current WAL write position.
    pub current_lsn: Option<Lsn>,
    /// The segment it is writing.
    pub current_wal: Option<String>,
    /// `pg_stat_archiver.archived_count`.
    pub archived_count: u64,
    /// `pg_stat_archiver.failed_count`.
    pub failed_count: u64,
    /// The last segment archived.
    pub last_archived_wal: Option<String>,
    /// When.
    pub last_archived_time: Option<UtcTime>,
    /// The last segment that failed to archive.
    pub last_failed_wal: Option<String>,
    /// When.
    pub last_failed_time: Option<UtcTime>,
    /// Bytes of WAL written but not archived.
    pub rpo_bytes: Option<u64>,
    /// Seconds of WAL written but not archived.
    pub rpo_seconds: Option<i64>,
}

impl ServerStatus {
    /// Whether the archiver's last attempt failed.
    pub fn archiver_failing(&self) -> bool {
        match (self.last_failed_time, self.last_archived_time) {
            (Some(f), Some(a)) => f > a,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

const QUERY: &str = "select pg_is_in_recovery(), \
    case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end, \
    case when pg_is_in_recovery() then null else pg_walfile_name(pg_current_wal_lsn()) end, \
    current_setting('wal_segment_size'), \
    archived_count, failed_count, last_archived_wal, \
    to_char(last_archived_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
    last_failed_wal, \
    to_char(last_failed_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
    from pg_stat_archiver";

/// Asks the server at `opts`; a failure is in the result, not an error.
pub async fn query(opts: &ConnectOptions, now: UtcTime) -> ServerStatus {
    let asked = async {
        let mut c =
            ReplicationClient::connect(&opts.clone().sql_session()).await.map_err(|e| e.to_string())?;
        let rows = c.query(QUERY).await.map_err(|e| e.to_string())?;
        c.close().await;
        rows.into_iter().next().ok_or_else(|| "pg_stat_archiver returned no row".to_string())
    };
    let row = match asked.await {
        Ok(r) => r,
        Err(e) => return ServerStatus { error: Some(e), ..ServerStatus::default() },
    };
    let text = |i: usize| row.get(i).cloned().flatten();
    let num = |i: usize| text(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    let time = |i: usize| text(i).and_then(|t| t.parse::<UtcTime>().ok());
    let seg_size = text(3)
        .and_then(|t| crate::units::parse_pg_size(&t))
        .and_then(|b| WalSegSize::new(u64::from(b)).ok())
        .unwrap_or(WalSegSize::DEFAULT);
    let mut s = ServerStatus {
        error: None,
        in_recovery: text(0).as_deref() == Some("t"),
        current_lsn: text(1).and_then(|t| t.parse().ok()),
        current_wal: text(2),
        archived_count: num(4),
        failed_count: num(5),
        last_archived_wal: text(6),
        last_archived_time: time(7),
        last_failed_wal: text(8),
        last_failed_time: time(9),
        rpo_bytes: None,
        rpo_seconds: None,
    };
    if let Some(current) = s.current_lsn {
        // The end of the last archived segment; without one, nothing is archived yet.
        let archived_end = s
            .last_archived_wal
            .as_deref()
            .and_then(|n| n.parse::<WalFileName>().ok())
            .and_then(|n| n.segment())
            .map(|seg| seg.start_lsn(seg_size).0 + u64::from(seg_size.bytes()));
        let bytes = current.0.saturating_sub(archived_end.unwrap_or(0));
        s.rpo_bytes = Some(bytes);
        s.rpo_seconds = Some(match (bytes, s.last_archived_time) {
            (0, _) => 0,
            (_, Some(t)) => now.seconds_since(t).max(0),
            (_, None) => 0,
        });
    }
    s
}
