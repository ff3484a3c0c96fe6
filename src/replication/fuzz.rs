//! Fuzzing (see `crate::fuzz`) the replication protocol on mutated real message streams: the framing (`codec::decode`),
//! error and notice fields, result sets, and the `BASE_BACKUP` response machine of both
//! dialects. Never a panic, every message taken consumes bytes (so a read loop always ends), and
//! memory stays bounded by the bytes received whatever a length field claims.

use std::collections::VecDeque;

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use rand::Rng;
use rand::rngs::StdRng;

use super::backup_machine::tests::{copy_data, end};
use super::backup_machine::{self, Dialect, Machine};
use super::codec::tests::{error_response, msg};
use super::codec::{self, Backend, Fields};
use crate::fuzz::mutate::{mutate, pieces, run};

/// Inputs tried per run.
const CASES: u64 = 30_000;
/// Fixed memory a message may cost beyond its bytes: a RowDescription or DataRow claiming
/// 65535 fields (postgres-protocol sizes its vector by the count) and the read buffer.
const FIXED: usize = 8 << 20;

fn header() -> Vec<u8> {
    backup_machine::tests::header(&backup_machine::tests::TS)
}

/// A PostgreSQL 15+ `BASE_BACKUP` response, with a notice and a parameter change in it.
fn modern() -> Vec<u8> {
    let mut s = msg(b'S', b"server_version\x0015.4\x00");
    s.extend(header());
    s.extend(msg(b'H', &[0, 0, 0]));
    s.extend(copy_data(Some(b'n'), b"16384.tar\0/srv/ts1\0"));
    s.extend(copy_data(Some(b'd'), &[7u8; 1500]));
    s.extend(copy_data(Some(b'p'), &42i64.to_be_bytes()));
    s.extend(copy_data(Some(b'n'), b"base.tar\0\0"));
    s.extend(copy_data(Some(b'd'), b"base-1"));
    s.extend(msg(b'N', b"SWARNING\0VWARNING\0C01000\0Mslow\0\0"));
    s.extend(copy_data(Some(b'd'), b"base-2"));
    s.extend(copy_data(Some(b'm'), b""));
    s.extend(copy_data(Some(b'd'), b"{manifest}"));
    s.extend(msg(b'c', b""));
    s.extend(end());
    s
}

/// A PostgreSQL 13/14 response: one COPY per tablespace, then the manifest.
fn legacy() -> Vec<u8> {
    let mut s = header();
    for body in [&b"ts-bytes"[..], b"base-1", b"{manifest}"] {
        s.extend(msg(b'H', &[0, 0, 0]));
        s.extend(copy_data(None, body));
        s.extend(msg(b'c', b""));
    }
    s.extend(end());
    s
}

/// Start-up and a failing command: authentication, parameters, key data, an error.
fn startup() -> Vec<u8> {
    let mut s = msg(b'R', &0u32.to_be_bytes());
    s.extend(msg(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0"));
    s.extend(msg(b'v', &[0, 0, 0, 0, 0, 0, 0, 0]));
    s.extend(msg(b'S', b"server_version\x0015.4\x00"));
    s.extend(msg(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
    s.extend(msg(b'Z', b"I"));
    s.extend(msg(b'W', &[0, 0, 0]));
    s.extend(error_response("ERROR", "42501", "must be superuser or replication role"));
    s.extend(msg(b'Z', b"I"));
    s
}

/// Frames `input` (fed in `parts`) and runs what comes out through the machine, as the
/// connection does; returns whether the whole stream was a finished backup.
fn drive(parts: &[&[u8]], dialect: Dialect) -> bool {
    let mut buf = BytesMut::new();
    let mut m = Machine::new(dialect);
    let mut out = VecDeque::new();
    for p in parts {
        buf.extend_from_slice(p);
        loop {
            let before = buf.len();
            let b = match codec::decode(&mut buf) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(_) => return false,
            };
            assert!(buf.len() < before, "a message was taken without consuming bytes");
            let Backend::Message(message) = b else { continue };
            let fed = match message {
                Message::ParameterStatus(p) => {
                    p.name().and_then(|n| Ok((n.len(), p.value()?.len()))).map(|_| ()).map_err(|_| ())
                }
                Message::NoticeResponse(n) => Fields::read(n.fields()).map(|_| ()).map_err(|_| ()),
                Message::ErrorResponse(e) => {
                    let _ = codec::server_error(&e).to_string();
                    m.feed(Message::ErrorResponse(e), &mut out).map_err(|_| ())
                }
                other => m.feed(other, &mut out).map_err(|_| ()),
            };
            out.clear();
            if fed.is_err() {
                return false;
            }
        }
    }
    m.is_finished()
}

#[test]
fn fuzz_replication_codec() {
    let bases = [(modern(), Dialect::Modern), (legacy(), Dialect::Legacy), (startup(), Dialect::Modern)];
    assert!(drive(&[&bases[0].0], Dialect::Modern) && drive(&[&bases[1].0], Dialect::Legacy));
    let streams: Vec<Vec<u8>> = bases.iter().map(|b| b.0.clone()).collect();
    run(
        "replication codec",
        CASES,
        |len| 3 * len + FIXED,
        |rng: &mut StdRng, _| {
            let (base, dialect) = &bases[rng.random_range(0..bases.len())];
            let input = mutate(rng, base, &streams);
            let whole = drive(&[&input], *dialect);
            let split = drive(&pieces(rng, &input), *dialect);
            assert_eq!(whole, split, "split and whole streams end differently");
            (input.len(), whole)
        },
    );
}

#[test]
fn a_huge_length_claim_does_not_reserve_it() {
    // Five bytes announcing a 1 GiB CopyData: the codec waits for the bytes, it does not
    // allocate for them.
    for len in [0x4000_0000u32, 0x3FFF_FFFF, 64 << 20] {
        let mut b = vec![b'd'];
        b.extend_from_slice(&len.to_be_bytes());
        let peak = crate::fuzz::alloc::Peak::start();
        let mut buf = BytesMut::from(&b[..]);
        assert!(matches!(codec::decode(&mut buf), Ok(None)));
        assert!(peak.bytes() < 2 << 20, "{} bytes reserved for a claim of {len}", peak.bytes());
    }
}

#[test]
fn fuzz_connection_strings_and_passfiles() {
    use super::options::{ConnectOptions, Sources};
    use super::passfile::{PassKey, find_password};
    let bases: Vec<Vec<u8>> = [
        "host=127.0.0.1 port=5432 user=backup password='s3cr\\'et' dbname=postgres sslmode=verify-full",
        "host=/var/run/postgresql,db2.example port=5432,5433 application_name=walvault connect_timeout=10",
        "postgresql://backup:p%40ss@[::1]:5433,db2:5434/postgres?sslmode=require&channel_binding=require",
        "postgres://%2Fvar%2Frun%2Fpostgresql/mydb?options=-c%20statement_timeout%3D0",
        "mydb",
        "localhost:5432:replication:backup:pa\\:ss\\\\word\n*:*:*:*:fallback\n# comment\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let env = |k: &str| (k == "PGPASSWORD").then(|| "from-env".to_string());
    let src = Sources { env: &env, os_user: Some("osuser".into()), home: Some("/nonexistent-home".into()) };
    run(
        "connection strings and passfiles",
        CASES,
        |len| 16 * len + (1 << 20),
        |rng: &mut StdRng, _| {
            let base = &bases[rng.random_range(0..bases.len())];
            let input = mutate(rng, base, &bases);
            let text = String::from_utf8_lossy(&input);
            let ok = ConnectOptions::resolve(Some(&text), &src).is_ok();
            let key = PassKey { host: "localhost", port: "5432", database: "replication", user: "backup" };
            let _ = find_password(&text, key);
            (input.len(), ok)
        },
    );
}
