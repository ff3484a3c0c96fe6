//! The JSON the repository holds (backup and dump descriptors, `.started` markers,
//! `walvault.json`) on mutated real documents: text-level mutations, and values replaced by
//! hostile ones (huge and negative numbers, wrong types, control characters, long strings, deep
//! nesting). Never a panic, bounded memory, and whatever parses serialises back to a document
//! that parses to the same value.

use rand::Rng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::mutate::{mutate, run};
use crate::repo::descriptor::{Archive, Descriptor, Part, Started, StoredFile};
use crate::repo::dumps::{DumpDescriptor, DumpedDatabase, TableRows};
use crate::repo::identity::Identity;

/// Inputs tried per run.
const CASES: u64 = 20_000;

fn j<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn stored(key: &str) -> StoredFile {
    StoredFile { key: key.into(), raw_bytes: 1234, stored_bytes: 567, sha256: "ab".repeat(32) }
}

fn documents() -> Vec<(usize, Vec<u8>)> {
    let desc = Descriptor {
        format: 1,
        id: "20261123T104501Z".into(),
        label: "walvault base backup 20261123T104501Z".into(),
        system_identifier: "7301234567890123456".into(),
        server_version: 150010,
        timeline: j(Value::from(2)),
        start_lsn: j(Value::String("0/2000028".into())),
        stop_lsn: j(Value::String("0/2000100".into())),
        start_time: j(Value::String("2026-11-23T10:45:01Z".into())),
        stop_time: j(Value::String("2026-11-23T10:45:09Z".into())),
        wal_segment_size: 16 << 20,
        compression: "zstd:3".into(),
        key_id: Some("0123456789abcdef".into()),
        walvault_version: "0.1.0".into(),
        archives: vec![
            Archive {
                name: "16384.tar".into(),
                tablespace_oid: Some(16384),
                location: Some("/srv/ts1".into()),
                parts: vec![Part {
                    key: "backups/20261123T104501Z/16384.tar.00001".into(),
                    raw_bytes: 10,
                    stored_bytes: 20,
                    sha256: "cd".repeat(32),
                }],
            },
            Archive { name: "base.tar".into(), tablespace_oid: None, location: None, parts: vec![] },
        ],
        manifest: stored("backups/20261123T104501Z/backup_manifest"),
        raw_bytes: 1244,
        stored_bytes: 587,
    };
    let desc_json = serde_json::to_value(&desc).unwrap();
    let dump = DumpDescriptor {
        format: 1,
        id: "20261201T020000Z".into(),
        label: "walvault dump".into(),
        system_identifier: "7301234567890123456".into(),
        server_version: 150010,
        pg_dump_version: "pg_dump (PostgreSQL) 15.10".into(),
        start_time: j(Value::String("2026-12-01T02:00:00Z".into())),
        stop_time: j(Value::String("2026-12-01T02:00:05Z".into())),
        compression: "lz4".into(),
        key_id: None,
        walvault_version: "0.1.0".into(),
        databases: vec![DumpedDatabase {
            name: "app".into(),
            object: stored("dumps/20261201T020000Z/db.00001"),
            tables: vec![TableRows { schema: "public".into(), table: "t".into(), rows: 42 }],
        }],
        globals: Some(stored("dumps/20261201T020000Z/globals")),
        raw_bytes: 2468,
        stored_bytes: 1134,
    };
    let started = Started {
        id: "20261123T104501Z".into(),
        start_time: j(Value::String("2026-11-23T10:45:01Z".into())),
        wal_from: j(Value::String("0/2000000".into())),
        timeline: j(Value::from(2)),
    };
    let identity = Identity {
        format: 1,
        system_identifier: "7301234567890123456".into(),
        pg_version: Some(15),
        wal_segment_size: 16 << 20,
        created: j(Value::String("2026-11-23T10:45:01Z".into())),
        created_by: "walvault 0.1.0".into(),
    };
    vec![
        (0, serde_json::to_vec_pretty(&desc_json).unwrap()),
        (1, serde_json::to_vec(&dump).unwrap()),
        (2, serde_json::to_vec(&started).unwrap()),
        (3, serde_json::to_vec(&identity).unwrap()),
    ]
}

/// A hostile JSON value.
fn hostile(rng: &mut StdRng) -> Value {
    match rng.random_range(0..12) {
        0 => Value::from(u64::MAX),
        1 => Value::from(-1),
        2 => serde_json::from_str("1e400").unwrap_or(Value::Null),
        3 => Value::from(1.5),
        4 => Value::Null,
        5 => Value::from(true),
        6 => Value::String("\u{0}\u{1b}[31m\n\r\u{202e}é🌀".into()),
        7 => Value::String("x".repeat(rng.random_range(0..100_000))),
        8 => Value::Array(vec![Value::from(1); rng.random_range(0..1000)]),
        9 => Value::Object(Default::default()),
        10 => Value::String("0/FFFFFFFFFFFFFFFF".into()),
        _ => Value::String("9999-99-99T99:99:99Z".into()),
    }
}

/// Replaces one value somewhere in `v` (a random path down objects and arrays).
fn replace_one(rng: &mut StdRng, v: &mut Value) {
    let descend = rng.random_bool(0.7);
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let k = m.keys().nth(rng.random_range(0..m.len())).unwrap().clone();
            return replace_one(rng, m.get_mut(&k).unwrap());
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.random_range(0..a.len());
            return replace_one(rng, &mut a[i]);
        }
        _ => {}
    }
    *v = hostile(rng);
}

/// Parses as `T`; a success must serialise and parse back to the same value.
fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(input: &[u8]) -> bool {
    match serde_json::from_slice::<T>(input) {
        Ok(v) => {
            let again: T = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).expect("round trip");
            assert_eq!(again, v);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn fuzz_repository_json() {
    let docs = documents();
    let texts: Vec<Vec<u8>> = docs.iter().map(|d| d.1.clone()).collect();
    assert!(check::<Descriptor>(&texts[0]) && check::<DumpDescriptor>(&texts[1]));
    assert!(check::<Started>(&texts[2]) && check::<Identity>(&texts[3]));
    run(
        "repository JSON",
        CASES,
        |len| 16 * len + (1 << 20),
        |rng: &mut StdRng, i| {
            let (kind, base) = &docs[rng.random_range(0..docs.len())];
            let input = match i % 3 {
                0 => mutate(rng, base, &texts),
                1 => {
                    let mut v: Value = serde_json::from_slice(base).unwrap();
                    for _ in 0..rng.random_range(1..4) {
                        replace_one(rng, &mut v);
                    }
                    serde_json::to_vec(&v).unwrap()
                }
                // Deep nesting (serde_json stops at 128 levels rather than overflowing the stack).
                _ => {
                    let depth = rng.random_range(100..100_000);
                    let mut s = "[".repeat(depth).into_bytes();
                    s.extend(std::iter::repeat_n(b']', depth));
                    s
                }
            };
            let ok = match kind {
                0 => check::<Descriptor>(&input),
                1 => check::<DumpDescriptor>(&input),
                2 => check::<Started>(&input),
                _ => check::<Identity>(&input),
            };
            if let (0, Ok(d)) = (kind, serde_json::from_slice::<Descriptor>(&input)) {
                let _ = d.ratio();
            }
            (input.len(), ok)
        },
    );
}
