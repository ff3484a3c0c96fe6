//! The `BASE_BACKUP` response as a state machine without IO: backend messages in, backup events
//! out. It knows both dialects: PostgreSQL 15+ (one COPY whose CopyData carry `n`/`d`/`p`/`m`
//! sub-messages) and 13/14 (one COPY per tablespace of bare tar without its trailer, then one
//! for the manifest). It owns the events a base backup yields ([`BackupEvent`], [`Tablespace`]).

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use postgres_protocol::message::backend::Message;

use super::codec::{self, ResultSet};
use super::error::ReplicationError;
use crate::wal::lsn::{Lsn, TimelineId};

/// One tablespace as the server announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    /// Its OID; `None` for the main data directory.
    pub oid: Option<u32>,
    /// Its directory on the server; `None` for the main data directory.
    pub location: Option<String>,
    /// The server's size estimate in bytes (sent because the request asks for `PROGRESS`).
    pub size_bytes: Option<u64>,
}

/// What a base backup stream yields, in this order: `Started`; for each archive `ArchiveStart`,
/// `ArchiveData`*, `ArchiveEnd`; `ManifestStart`, `ManifestData`*, `ManifestEnd`; `Finished`.
/// `Progress` may come anywhere in between (PostgreSQL 15+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupEvent {
    /// The start checkpoint is done.
    Started {
        /// Where WAL replay must start.
        start_lsn: Lsn,
        /// The timeline at the start.
        timeline: TimelineId,
        /// The tablespaces, user tablespaces first and the main data directory last.
        tablespaces: Vec<Tablespace>,
    },
    /// An archive begins.
    ArchiveStart {
        /// `base.tar` or `<oid>.tar`.
        name: String,
        /// The tablespace; `None` for the main data directory.
        tablespace_oid: Option<u32>,
    },
    /// Raw tar bytes of the current archive, in order.
    ArchiveData(Bytes),
    /// The current archive is complete (for PostgreSQL 13/14 the client has appended the
    /// 1024-byte tar trailer as the last `ArchiveData`).
    ArchiveEnd,
    /// The `backup_manifest` begins.
    ManifestStart,
    /// Manifest bytes, to be stored byte for byte.
    ManifestData(Bytes),
    /// The manifest is complete.
    ManifestEnd,
    /// Bytes sent so far (PostgreSQL 15+ `p` messages).
    Progress {
        /// Uncompressed bytes done.
        bytes_done: u64,
    },
    /// The server finished the backup (and, on a primary, archived the WAL it needs).
    Finished {
        /// Where WAL replay must reach for the backup to be consistent.
        stop_lsn: Lsn,
        /// The timeline at the end.
        timeline: TimelineId,
    },
}

/// The two blocks of 512 zero bytes that end a tar archive; PostgreSQL 13/14 leave them out.
static TAR_TRAILER: [u8; 1024] = [0; 1024];

/// Which `BASE_BACKUP` response format the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL 15 and later.
    Modern,
    /// PostgreSQL 13 and 14.
    Legacy,
}

/// What the current COPY carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Nothing yet (PostgreSQL 15+: before the first `n`).
    Nothing,
    /// Archive bytes.
    Archive,
    /// The manifest.
    Manifest,
}

/// The response's state.
#[derive(Debug)]
pub struct Machine {
    dialect: Dialect,
    /// The result set being collected, if any.
    result: Option<ResultSet>,
    /// How many result sets completed so far (start position, tablespaces, end position).
    result_sets: usize,
    tablespaces: Vec<Tablespace>,
    started: bool,
    /// Inside a COPY, and what it carries.
    copy: Option<Content>,
    /// PostgreSQL 13/14: how many archive COPYs have started.
    archives_started: usize,
    manifest_seen: bool,
    stop: Option<(Lsn, TimelineId)>,
    /// An ErrorResponse seen; reported once ReadyForQuery (or the end of the connection) comes.
    error: Option<ReplicationError>,
    finished: bool,
}

fn lsn_tli(rs: &ResultSet, what: &str) -> Result<(Lsn, TimelineId), ReplicationError> {
    if rs.rows.len() != 1 || rs.columns.len() < 2 {
        return Err(ReplicationError::protocol(format!(
            "{what} position: expected one row of (recptr, tli), got {} rows of {:?}",
            rs.rows.len(),
            rs.columns
        )));
    }
    let lsn: Lsn =
        rs.required(0, 0)?.parse().map_err(|e| ReplicationError::protocol(format!("{what} LSN: {e}")))?;
    let tli =
        rs.required(0, 1)?.parse::<u32>().ok().and_then(|t| TimelineId::new(t).ok()).ok_or_else(|| {
            ReplicationError::protocol(format!("{what} timeline is not a timeline: {:?}", rs.text(0, 1)))
        })?;
    Ok((lsn, tli))
}

fn tablespaces(rs: &ResultSet) -> Result<Vec<Tablespace>, ReplicationError> {
    if rs.columns.len() < 3 {
        return Err(ReplicationError::protocol(format!("tablespace header has columns {:?}", rs.columns)));
    }
    let num = |s: Option<&str>, what: &str| -> Result<Option<u64>, ReplicationError> {
        s.map(|s| {
            s.parse::<u64>().map_err(|_| ReplicationError::protocol(format!("tablespace {what} {s:?}")))
        })
        .transpose()
    };
    (0..rs.rows.len())
        .map(|i| {
            let oid = num(rs.text(i, 0)?, "oid")?
                .map(|o| {
                    u32::try_from(o).map_err(|_| ReplicationError::protocol(format!("tablespace oid {o}")))
                })
                .transpose()?;
            Ok(Tablespace {
                oid,
                location: rs.text(i, 1)?.map(str::to_string),
                size_bytes: num(rs.text(i, 2)?, "size")?.map(|kib| kib.saturating_mul(1024)),
            })
        })
        .collect()
}

fn archive_name(oid: Option<u32>) -> String {
    match oid {
        Some(oid) => format!("{oid}.tar"),
        None => "base.tar".to_string(),
    }
}

/// Reads a NUL-terminated string off the front of `b`.
fn cstring(b: &mut Bytes) -> Result<String, ReplicationError> {
    let end = b
        .iter()
        .position(|c| *c == 0)
        .ok_or_else(|| ReplicationError::protocol("unterminated string in CopyData"))?;
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    b.advance(end + 1);
    Ok(s)
}

impl Machine {
    /// A machine for a response in `dialect`.
    pub fn new(dialect: Dialect) -> Machine {
        Machine {
            dialect,
            result: None,
            result_sets: 0,
            tablespaces: Vec::new(),
            started: false,
            copy: None,
            archives_started: 0,
            manifest_seen: false,
            stop: None,
            error: None,
            finished: false,
        }
    }

    /// True once `Finished` has been produced (the server is ready for the next command).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The server's error, if one arrived and the connection then ended without ReadyForQuery.
    pub fn take_error(&mut self) -> Option<ReplicationError> {
        self.error.take()
    }

    /// Feeds one message (not NoticeResponse or ParameterStatus: the connection handles those);
    /// events go to `out`. At ReadyForQuery after an ErrorResponse, that error is returned.
    pub fn feed(&mut self, msg: Message, out: &mut VecDeque<BackupEvent>) -> Result<(), ReplicationError> {
        if self.finished {
            return Err(ReplicationError::protocol("message after the base backup finished"));
        }
        if self.error.is_some() {
            // Drain to ReadyForQuery; the server may still send the rest of what it had.
            if let Message::ReadyForQuery(_) = msg {
                self.finished = true;
                return Err(self
                    .error
                    .take()
                    .unwrap_or_else(|| ReplicationError::protocol("error vanished")));
            }
            return Ok(());
        }
        match msg {
            Message::ErrorResponse(body) => {
                self.error = Some(codec::server_error(&body));
                Ok(())
            }
            Message::RowDescription(body) if self.copy.is_none() && self.result.is_none() => {
                self.result = Some(ResultSet::from_description(&body)?);
                Ok(())
            }
            Message::DataRow(body) => match &mut self.result {
                Some(rs) => rs.push_row(&body),
                None => Err(ReplicationError::protocol("DataRow outside a result set")),
            },
            Message::CommandComplete(_) => match self.result.take() {
                Some(rs) => self.result_set_done(rs, out),
                // The final `BASE_BACKUP` command tag.
                None if self.copy.is_none() => Ok(()),
                None => Err(ReplicationError::protocol("CommandComplete inside COPY")),
            },
            Message::CopyOutResponse(_) if self.copy.is_none() && self.result.is_none() => {
                self.copy_start(out)
            }
            Message::CopyData(body) => self.copy_data(body.into_bytes(), out),
            Message::CopyDone => self.copy_done(out),
            Message::ReadyForQuery(_) => match (self.stop, self.manifest_seen, self.copy) {
                (Some((stop_lsn, timeline)), true, None) => {
                    self.finished = true;
                    out.push_back(BackupEvent::Finished { stop_lsn, timeline });
                    Ok(())
                }
                _ => Err(ReplicationError::protocol(format!(
                    "BASE_BACKUP ended early (end position seen: {}, manifest seen: {})",
                    self.stop.is_some(),
                    self.manifest_seen
                ))),
            },
            _ => Err(ReplicationError::protocol("unexpected message in a BASE_BACKUP response")),
        }
    }

    fn result_set_done(
        &mut self,
        rs: ResultSet,
        out: &mut VecDeque<BackupEvent>,
    ) -> Result<(), ReplicationError> {
        self.result_sets += 1;
        match self.result_sets {
            1 => {
                let (start_lsn, timeline) = lsn_tli(&rs, "start")?;
                // Kept until the tablespaces arrive.
                self.stop = Some((start_lsn, timeline));
            }
            2 => {
                self.tablespaces = tablespaces(&rs)?;
                let (start_lsn, timeline) =
                    self.stop.take().ok_or_else(|| ReplicationError::protocol("no start position"))?;
                self.started = true;
                out.push_back(BackupEvent::Started {
                    start_lsn,
                    timeline,
                    tablespaces: self.tablespaces.clone(),
                });
            }
            3 if self.manifest_seen || self.archives_started > 0 => {
                self.stop = Some(lsn_tli(&rs, "end")?);
            }
            _ => return Err(ReplicationError::protocol(format!("unexpected result set {:?}", rs.columns))),
        }
        Ok(())
    }

    fn copy_start(&mut self, out: &mut VecDeque<BackupEvent>) -> Result<(), ReplicationError> {
        if !self.started || self.stop.is_some() {
            return Err(ReplicationError::protocol(
                "COPY before the tablespace list or after the end position",
            ));
        }
        match self.dialect {
            Dialect::Modern => {
                if self.archives_started > 0 {
                    return Err(ReplicationError::protocol("a second COPY from PostgreSQL 15+"));
                }
                self.copy = Some(Content::Nothing);
            }
            Dialect::Legacy => {
                if let Some(ts) = self.tablespaces.get(self.archives_started) {
                    out.push_back(BackupEvent::ArchiveStart {
                        name: archive_name(ts.oid),
                        tablespace_oid: ts.oid,
                    });
                    self.archives_started += 1;
                    self.copy = Some(Content::Archive);
                } else if !self.manifest_seen {
                    self.manifest_seen = true;
                    out.push_back(BackupEvent::ManifestStart);
                    self.copy = Some(Content::Manifest);
                } else {
                    return Err(ReplicationError::protocol(
                        "more COPY streams than tablespaces and a manifest",
                    ));
                }
            }
        }
        Ok(())
    }

    fn copy_data(
        &mut self,
        mut data: Bytes,
        out: &mut VecDeque<BackupEvent>,
    ) -> Result<(), ReplicationError> {
        let Some(content) = self.copy else {
            return Err(ReplicationError::protocol("CopyData outside COPY"));
        };
        if self.dialect == Dialect::Legacy {
            out.push_back(match content {
                Content::Manifest => BackupEvent::ManifestData(data),
                _ => BackupEvent::ArchiveData(data),
            });
            return Ok(());
        }
        if data.is_empty() {
            return Err(ReplicationError::protocol("empty CopyData"));
        }
        let kind = data.get_u8();
        match (kind, content) {
            (b'n', Content::Nothing | Content::Archive) => {
                if content == Content::Archive {
                    out.push_back(BackupEvent::ArchiveEnd);
                }
                let name = cstring(&mut data)?;
                let path = cstring(&mut data)?;
                let tablespace_oid = if path.is_empty() {
                    None
                } else {
                    let by_location = self.tablespaces.iter().find(|t| t.location.as_deref() == Some(&path));
                    match by_location.and_then(|t| t.oid) {
                        Some(oid) => Some(oid),
                        None => name.split('.').next().and_then(|n| n.parse().ok()),
                    }
                };
                self.archives_started += 1;
                self.copy = Some(Content::Archive);
                out.push_back(BackupEvent::ArchiveStart { name, tablespace_oid });
            }
            (b'd', Content::Archive) => out.push_back(BackupEvent::ArchiveData(data)),
            (b'd', Content::Manifest) => out.push_back(BackupEvent::ManifestData(data)),
            (b'p', _) => {
                if data.len() < 8 {
                    return Err(ReplicationError::protocol("short progress message"));
                }
                let done = data.get_i64();
                out.push_back(BackupEvent::Progress { bytes_done: u64::try_from(done).unwrap_or(0) });
            }
            (b'm', Content::Nothing | Content::Archive) if !self.manifest_seen => {
                if content == Content::Archive {
                    out.push_back(BackupEvent::ArchiveEnd);
                }
                self.manifest_seen = true;
                self.copy = Some(Content::Manifest);
                out.push_back(BackupEvent::ManifestStart);
            }
            (k, c) => {
                return Err(ReplicationError::protocol(format!(
                    "CopyData sub-message '{}' while receiving {c:?}",
                    char::from(k).escape_default()
                )));
            }
        }
        Ok(())
    }

    fn copy_done(&mut self, out: &mut VecDeque<BackupEvent>) -> Result<(), ReplicationError> {
        match self.copy.take() {
            Some(Content::Archive) => {
                if self.dialect == Dialect::Legacy {
                    out.push_back(BackupEvent::ArchiveData(Bytes::from_static(&TAR_TRAILER)));
                }
                out.push_back(BackupEvent::ArchiveEnd);
            }
            Some(Content::Manifest) => out.push_back(BackupEvent::ManifestEnd),
            Some(Content::Nothing) => {}
            None => return Err(ReplicationError::protocol("CopyDone outside COPY")),
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::codec::tests::{command_complete, data_row, error_response, msg, row_description};
    use super::super::codec::{Backend, decode};
    use super::*;
    use bytes::BytesMut;

    /// A CopyData message, with a PostgreSQL 15+ kind byte or without (13/14).
    pub(crate) fn copy_data(kind: Option<u8>, payload: &[u8]) -> Vec<u8> {
        let mut b: Vec<u8> = kind.into_iter().collect();
        b.extend_from_slice(payload);
        msg(b'd', &b)
    }

    /// The start of a `BASE_BACKUP` response: the start position, then the tablespaces.
    pub(crate) fn header(tablespaces: &[(Option<&str>, Option<&str>, Option<&str>)]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(row_description(&["recptr", "tli"]));
        s.extend(data_row(&[Some("0/4000028"), Some("1")]));
        s.extend(command_complete("SELECT"));
        s.extend(row_description(&["spcoid", "spclocation", "size"]));
        for (oid, loc, size) in tablespaces {
            s.extend(data_row(&[*oid, *loc, *size]));
        }
        s.extend(command_complete("SELECT"));
        s
    }

    /// The end of a `BASE_BACKUP` response: the end position, the command tags, ready.
    pub(crate) fn end() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(row_description(&["recptr", "tli"]));
        s.extend(data_row(&[Some("0/4000100"), Some("1")]));
        s.extend(command_complete("SELECT"));
        s.extend(command_complete("BASE_BACKUP"));
        s.extend(msg(b'Z', b"I"));
        s
    }

    /// Two tablespaces: a user one and the main data directory.
    pub(crate) const TS: [(Option<&str>, Option<&str>, Option<&str>); 2] =
        [(Some("16384"), Some("/srv/ts1"), Some("10")), (None, None, Some("30000"))];

    fn modern_stream() -> Vec<u8> {
        let mut s = header(&TS);
        s.extend(msg(b'H', &[0, 0, 0]));
        s.extend(copy_data(Some(b'n'), b"16384.tar\0/srv/ts1\0"));
        s.extend(copy_data(Some(b'd'), b"ts-bytes"));
        s.extend(copy_data(Some(b'p'), &42i64.to_be_bytes()));
        s.extend(copy_data(Some(b'n'), b"base.tar\0\0"));
        s.extend(copy_data(Some(b'd'), b"base-1"));
        s.extend(copy_data(Some(b'd'), b"base-2"));
        s.extend(copy_data(Some(b'm'), b""));
        s.extend(copy_data(Some(b'd'), b"{manifest}"));
        s.extend(msg(b'c', b""));
        s.extend(end());
        s
    }

    fn legacy_stream() -> Vec<u8> {
        let mut s = header(&TS);
        s.extend(msg(b'H', &[0, 0, 0]));
        s.extend(copy_data(None, b"ts-bytes"));
        s.extend(msg(b'c', b""));
        s.extend(msg(b'H', &[0, 0, 0]));
        s.extend(copy_data(None, b"base-1"));
        s.extend(copy_data(None, b"base-2"));
        s.extend(msg(b'c', b""));
        s.extend(msg(b'H', &[0, 0, 0]));
        s.extend(copy_data(None, b"{manifest}"));
        s.extend(msg(b'c', b""));
        s.extend(end());
        s
    }

    /// Runs a byte stream, cut at `split`, through framing and the machine; the events as text.
    fn run(dialect: Dialect, stream: &[u8], split: usize) -> Result<Vec<String>, ReplicationError> {
        let mut m = Machine::new(dialect);
        let mut out = VecDeque::new();
        let mut buf = BytesMut::new();
        for part in [&stream[..split], &stream[split..]] {
            buf.extend_from_slice(part);
            while let Some(b) = decode(&mut buf)? {
                let Backend::Message(msg) = b else { panic!("not a message") };
                m.feed(msg, &mut out)?;
            }
        }
        assert!(m.is_finished());
        Ok(out.into_iter().map(describe).collect())
    }

    fn describe(e: BackupEvent) -> String {
        match e {
            BackupEvent::Started { start_lsn, timeline, tablespaces } => {
                format!("started {start_lsn} {timeline} {tablespaces:?}")
            }
            BackupEvent::ArchiveStart { name, tablespace_oid } => {
                format!("archive {name} {tablespace_oid:?}")
            }
            BackupEvent::ArchiveData(b) if b.len() == 1024 && b.iter().all(|x| *x == 0) => "trailer".into(),
            BackupEvent::ArchiveData(b) => format!("data {}", String::from_utf8_lossy(&b)),
            BackupEvent::ArchiveEnd => "end".into(),
            BackupEvent::ManifestStart => "manifest".into(),
            BackupEvent::ManifestData(b) => format!("mdata {}", String::from_utf8_lossy(&b)),
            BackupEvent::ManifestEnd => "mend".into(),
            BackupEvent::Progress { bytes_done } => format!("progress {bytes_done}"),
            BackupEvent::Finished { stop_lsn, timeline } => format!("finished {stop_lsn} {timeline}"),
        }
    }

    const TS_DEBUG: &str = "[Tablespace { oid: Some(16384), location: Some(\"/srv/ts1\"), size_bytes: Some(10240) }, \
                            Tablespace { oid: None, location: None, size_bytes: Some(30720000) }]";

    #[test]
    fn modern_response_at_every_split_point() {
        let stream = modern_stream();
        let want = vec![
            format!("started 0/4000028 1 {TS_DEBUG}"),
            "archive 16384.tar Some(16384)".into(),
            "data ts-bytes".into(),
            "progress 42".into(),
            "end".into(),
            "archive base.tar None".into(),
            "data base-1".into(),
            "data base-2".into(),
            "end".into(),
            "manifest".into(),
            "mdata {manifest}".into(),
            "mend".into(),
            "finished 0/4000100 1".into(),
        ];
        for split in 0..=stream.len() {
            assert_eq!(run(Dialect::Modern, &stream, split).unwrap(), want, "split {split}");
        }
    }

    #[test]
    fn legacy_response_gets_tar_trailers() {
        let stream = legacy_stream();
        let want = vec![
            format!("started 0/4000028 1 {TS_DEBUG}"),
            "archive 16384.tar Some(16384)".into(),
            "data ts-bytes".into(),
            "trailer".into(),
            "end".into(),
            "archive base.tar None".into(),
            "data base-1".into(),
            "data base-2".into(),
            "trailer".into(),
            "end".into(),
            "manifest".into(),
            "mdata {manifest}".into(),
            "mend".into(),
            "finished 0/4000100 1".into(),
        ];
        for split in 0..=stream.len() {
            assert_eq!(run(Dialect::Legacy, &stream, split).unwrap(), want, "split {split}");
        }
    }

    #[test]
    fn an_error_mid_stream_is_reported_at_ready_for_query() {
        let mut s = header(&TS[1..]);
        s.extend(msg(b'H', &[0, 0, 0]));
        s.extend(copy_data(Some(b'n'), b"base.tar\0\0"));
        s.extend(copy_data(Some(b'd'), b"base-1"));
        s.extend(error_response("ERROR", "XX001", "checksum verification failure during base backup"));
        s.extend(msg(b'Z', b"I"));
        let e = run(Dialect::Modern, &s, 0).unwrap_err();
        assert!(matches!(&e, ReplicationError::Server { code, .. } if code == "XX001"), "{e}");
    }

    #[test]
    fn malformed_responses_are_protocol_errors() {
        let cases: Vec<Vec<u8>> = vec![
            // CopyData before the tablespace list.
            [
                row_description(&["recptr", "tli"]),
                data_row(&[Some("0/1"), Some("1")]),
                command_complete("SELECT"),
                msg(b'H', &[0, 0, 0]),
            ]
            .concat(),
            // Unknown sub-message.
            [header(&TS), msg(b'H', &[0, 0, 0]), copy_data(Some(b'x'), b"")].concat(),
            // Data before any archive.
            [header(&TS), msg(b'H', &[0, 0, 0]), copy_data(Some(b'd'), b"x")].concat(),
            // Ends without a manifest.
            [
                header(&TS),
                msg(b'H', &[0, 0, 0]),
                copy_data(Some(b'n'), b"base.tar\0\0"),
                msg(b'c', b""),
                end(),
            ]
            .concat(),
            // Bad start LSN.
            [
                row_description(&["recptr", "tli"]),
                data_row(&[Some("nope"), Some("1")]),
                command_complete("SELECT"),
            ]
            .concat(),
            // Timeline zero.
            [
                row_description(&["recptr", "tli"]),
                data_row(&[Some("0/1"), Some("0")]),
                command_complete("SELECT"),
            ]
            .concat(),
            // Unterminated archive name.
            [header(&TS), msg(b'H', &[0, 0, 0]), copy_data(Some(b'n'), b"base.tar")].concat(),
        ];
        for (i, s) in cases.iter().enumerate() {
            let mut m = Machine::new(Dialect::Modern);
            let mut out = VecDeque::new();
            let mut buf = BytesMut::from(&s[..]);
            let r: Result<(), ReplicationError> = (|| {
                while let Some(Backend::Message(msg)) = decode(&mut buf)? {
                    m.feed(msg, &mut out)?;
                }
                Ok(())
            })();
            assert!(matches!(r, Err(ReplicationError::Protocol(_))), "case {i}: {r:?}");
        }
    }
}
