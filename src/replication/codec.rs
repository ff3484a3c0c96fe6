//! Backend message framing without IO: cuts complete messages off a `BytesMut` (returning
//! `Ok(None)` while one is incomplete), handles the two messages postgres-protocol does not know
//! (CopyBothResponse `W`, NegotiateProtocolVersion `v`), and turns ErrorResponse / NoticeResponse
//! fields into typed values. Simple result sets are collected here too.

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{self, ErrorFields, Header};

use super::error::ReplicationError;

/// The largest message accepted: PostgreSQL never sends more than 1 GiB in one message.
pub const MAX_MESSAGE_LEN: usize = (1 << 30) + 64 * 1024;

/// The most room made ahead for the rest of an incomplete message: a length field is the
/// peer's claim, so the buffer grows with the bytes that arrive, not with the claim.
const RESERVE_AHEAD: usize = 1 << 20;

/// One backend message.
pub enum Backend {
    /// A message postgres-protocol parses.
    Message(backend::Message),
    /// CopyBothResponse (`W`), as sent by `START_REPLICATION`.
    CopyBoth,
    /// NegotiateProtocolVersion (`v`): the newest minor version the server supports.
    NegotiateProtocolVersion {
        /// The server's newest supported minor protocol version.
        newest_minor: i32,
    },
}

/// Cuts the next complete message off `buf`, or returns `Ok(None)` (leaving `buf` as it was)
/// if it does not hold one yet.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Backend>, ReplicationError> {
    let header = match Header::parse(buf) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(e) => return Err(ReplicationError::protocol(e.to_string())),
    };
    let total = header.len() as usize + 1;
    if total > MAX_MESSAGE_LEN {
        return Err(ReplicationError::protocol(format!(
            "message '{}' of {} bytes is larger than any PostgreSQL sends",
            char::from(header.tag()).escape_default(),
            header.len()
        )));
    }
    if buf.len() < total {
        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    match header.tag() {
        b'W' => {
            buf.advance(total);
            Ok(Some(Backend::CopyBoth))
        }
        b'v' => {
            let mut body = buf.split_to(total).freeze();
            body.advance(5);
            if body.len() < 8 {
                return Err(ReplicationError::protocol("short NegotiateProtocolVersion message"));
            }
            Ok(Some(Backend::NegotiateProtocolVersion { newest_minor: body.get_i32() }))
        }
        tag => match backend::Message::parse(buf) {
            Ok(Some(m)) => Ok(Some(Backend::Message(m))),
            Ok(None) => Err(ReplicationError::protocol("incomplete message after a complete header")),
            Err(e) => Err(ReplicationError::protocol(format!(
                "bad message '{}': {e}",
                char::from(tag).escape_default()
            ))),
        },
    }
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// Non-localised severity (`V`), else the localised one (`S`).
    pub severity: String,
    /// SQLSTATE (`C`).
    pub code: String,
    /// Message (`M`).
    pub message: String,
    /// Detail (`D`).
    pub detail: Option<String>,
}

impl Fields {
    /// Reads the fields; a malformed body becomes a protocol error.
    pub fn read(mut fields: ErrorFields<'_>) -> Result<Fields, ReplicationError> {
        let mut out = Fields::default();
        let mut localized_severity = String::new();
        while let Some(f) =
            fields.next().map_err(|e| ReplicationError::protocol(format!("bad error fields: {e}")))?
        {
            let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'V' => out.severity = v,
                b'S' => localized_severity = v,
                b'C' => out.code = v,
                b'M' => out.message = v,
                b'D' => out.detail = Some(v),
                _ => {}
            }
        }
        if out.severity.is_empty() {
            out.severity = localized_severity;
        }
        Ok(out)
    }

    /// The typed error for an ErrorResponse.
    pub fn into_error(self) -> ReplicationError {
        ReplicationError::Server {
            severity: self.severity,
            code: self.code,
            // Messages are one line, but make sure the Display stays one line.
            message: self.message.replace('\n', " "),
            detail: self.detail.map(|d| d.replace('\n', " ")),
        }
    }
}

/// Reads an ErrorResponse into a typed error.
pub fn server_error(body: &backend::ErrorResponseBody) -> ReplicationError {
    match Fields::read(body.fields()) {
        Ok(f) => f.into_error(),
        Err(e) => e,
    }
}

/// A result set from a simple query, values as raw bytes (`None` = NULL).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResultSet {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Option<Bytes>>>,
}

impl ResultSet {
    /// Starts a result set from its RowDescription.
    pub fn from_description(body: &backend::RowDescriptionBody) -> Result<ResultSet, ReplicationError> {
        let columns = body
            .fields()
            .map(|f| Ok(f.name().to_string()))
            .collect()
            .map_err(|e| ReplicationError::protocol(format!("bad RowDescription: {e}")))?;
        Ok(ResultSet { columns, rows: Vec::new() })
    }

    /// Adds a DataRow.
    pub fn push_row(&mut self, body: &backend::DataRowBody) -> Result<(), ReplicationError> {
        let buf = body.buffer_bytes();
        let row: Vec<Option<Bytes>> = body
            .ranges()
            .map(|r| Ok(r.map(|r| buf.slice(r))))
            .collect()
            .map_err(|e| ReplicationError::protocol(format!("bad DataRow: {e}")))?;
        if row.len() != self.columns.len() {
            return Err(ReplicationError::protocol(format!(
                "DataRow has {} values for {} columns",
                row.len(),
                self.columns.len()
            )));
        }
        self.rows.push(row);
        Ok(())
    }

    /// The value of `column` in `row` as text; NULL is `None`.
    pub fn text(&self, row: usize, column: usize) -> Result<Option<&str>, ReplicationError> {
        let v = self.rows.get(row).and_then(|r| r.get(column)).ok_or_else(|| {
            ReplicationError::protocol(format!("result has no row {row} column {column}: {:?}", self.columns))
        })?;
        v.as_ref()
            .map(|b| {
                std::str::from_utf8(b).map_err(|_| {
                    ReplicationError::protocol(format!("column {:?} is not UTF-8", self.columns.get(column)))
                })
            })
            .transpose()
    }

    /// Like [`ResultSet::text`], but NULL is a protocol error.
    pub fn required(&self, row: usize, column: usize) -> Result<&str, ReplicationError> {
        self.text(row, column)?.ok_or_else(|| {
            ReplicationError::protocol(format!("column {:?} is unexpectedly NULL", self.columns.get(column)))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BufMut;

    /// Builds one backend message: tag, length, body.
    pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    pub fn row_description(cols: &[&str]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u16(cols.len() as u16);
        for c in cols {
            b.put_slice(&cstr(c));
            b.put_u32(0);
            b.put_i16(0);
            b.put_u32(25);
            b.put_i16(-1);
            b.put_i32(-1);
            b.put_i16(0);
        }
        msg(b'T', &b)
    }

    pub fn data_row(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u16(values.len() as u16);
        for v in values {
            match v {
                Some(s) => {
                    b.put_i32(s.len() as i32);
                    b.put_slice(s.as_bytes());
                }
                None => b.put_i32(-1),
            }
        }
        msg(b'D', &b)
    }

    pub fn command_complete(tag: &str) -> Vec<u8> {
        msg(b'C', &cstr(tag))
    }

    pub fn error_response(severity: &str, code: &str, message: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (t, v) in [(b'S', severity), (b'V', severity), (b'C', code), (b'M', message)] {
            b.push(t);
            b.extend(cstr(v));
        }
        b.push(0);
        msg(b'E', &b)
    }

    /// A stream of every kind of message the client handles.
    fn sample_stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(msg(b'R', &0u32.to_be_bytes()));
        s.extend(msg(b'S', b"server_version\x0015.4\x00"));
        s.extend(msg(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
        s.extend(msg(b'Z', b"I"));
        s.extend(row_description(&["a", "b"]));
        s.extend(data_row(&[Some("x"), None]));
        s.extend(command_complete("SELECT"));
        s.extend(msg(b'H', &[0, 0, 0]));
        s.extend(msg(b'd', b"n1.tar\x00\x00"));
        s.extend(msg(b'd', &[b'd'; 3000]));
        s.extend(msg(b'c', b""));
        s.extend(msg(b'W', &[0, 0, 0]));
        s.extend(msg(b'v', &[0, 0, 0, 0, 0, 0, 0, 0]));
        s.extend(error_response("ERROR", "XX000", "boom"));
        s
    }

    fn kinds(buf: &mut BytesMut) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = decode(buf).unwrap() {
            out.push(match m {
                Backend::CopyBoth => "W".to_string(),
                Backend::NegotiateProtocolVersion { newest_minor } => format!("v{newest_minor}"),
                Backend::Message(backend::Message::CopyData(d)) => format!("d{}", d.data().len()),
                Backend::Message(backend::Message::ErrorResponse(e)) => server_error(&e).to_string(),
                Backend::Message(_) => "m".to_string(),
            });
        }
        out
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let stream = sample_stream();
        let whole = kinds(&mut BytesMut::from(&stream[..]));
        assert_eq!(whole.len(), 14);
        assert_eq!(whole[9], "d3000");
        assert_eq!(whole[11..13], ["W", "v0"]);
        assert!(whole[13].contains("boom") && whole[13].contains("XX000"));
        for split in 0..=stream.len() {
            let mut buf = BytesMut::from(&stream[..split]);
            let mut got = kinds(&mut buf);
            buf.extend_from_slice(&stream[split..]);
            got.extend(kinds(&mut buf));
            assert_eq!(got, whole, "split at {split}");
            assert!(buf.is_empty());
        }
        // Byte by byte.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in &stream {
            buf.put_u8(*b);
            got.extend(kinds(&mut buf));
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        // Length below 4.
        let mut b = BytesMut::from(&[b'Z', 0, 0, 0, 3][..]);
        assert!(matches!(decode(&mut b), Err(ReplicationError::Protocol(_))));
        // Absurd length.
        let mut b = BytesMut::from(&[b'd', 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(decode(&mut b), Err(ReplicationError::Protocol(_))));
        // Unknown tag.
        let mut b = BytesMut::from(&msg(b'?', b"xx")[..]);
        assert!(matches!(decode(&mut b), Err(ReplicationError::Protocol(_))));
        // Truncated body contents.
        let mut b = BytesMut::from(&msg(b'C', b"no-nul")[..]);
        assert!(matches!(decode(&mut b), Err(ReplicationError::Protocol(_))));
        let mut b = BytesMut::from(&msg(b'v', b"1")[..]);
        assert!(matches!(decode(&mut b), Err(ReplicationError::Protocol(_))));
    }

    #[test]
    fn result_sets() {
        let mut buf = BytesMut::new();
        buf.extend(row_description(&["systemid", "timeline", "dbname"]));
        buf.extend(data_row(&[Some("7"), Some("1"), None]));
        buf.extend(data_row(&[Some("7")]));
        let Some(Backend::Message(backend::Message::RowDescription(d))) = decode(&mut buf).unwrap() else {
            panic!()
        };
        let mut rs = ResultSet::from_description(&d).unwrap();
        let Some(Backend::Message(backend::Message::DataRow(r))) = decode(&mut buf).unwrap() else {
            panic!()
        };
        rs.push_row(&r).unwrap();
        assert_eq!(rs.required(0, 0).unwrap(), "7");
        assert_eq!(rs.text(0, 2).unwrap(), None);
        assert!(rs.required(0, 2).is_err());
        assert!(rs.text(1, 0).is_err());
        let Some(Backend::Message(backend::Message::DataRow(r))) = decode(&mut buf).unwrap() else {
            panic!()
        };
        assert!(rs.push_row(&r).is_err(), "wrong column count");
    }
}
