//! verify on an in-memory repository: a second run reads no object bodies, and each kind of
//! damage is named.

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::config::ConfigArgs;
use crate::format::Compression;
use crate::repo::descriptor::{Archive, Part, StoredFile};
use crate::repo::dumps::DumpDescriptor;
use crate::repo::retry::RetryPolicy;
use crate::repo::testutil::{TestStore, mem_storage};
use crate::wal::header::tests::fake_header;
use crate::wal::{Lsn, SegmentName, TimelineId};

const SEG: u64 = 1 << 20;
const SYSID: u64 = 7;

struct Fixture {
    store: Arc<TestStore>,
    storage: Storage,
    cfg: Config,
}

fn encode(bytes: &[u8]) -> (Vec<u8>, Trailer, u64) {
    let enc = crate::object::encode::encode_reader(bytes, Compression::Lz4, None, 4096, None).unwrap();
    (enc.pieces.iter().flat_map(|p| p.iter().copied()).collect(), enc.trailer, enc.stored)
}

impl Fixture {
    fn new() -> Fixture {
        let store = Arc::new(TestStore::default());
        let storage = mem_storage(store.clone(), RetryPolicy::new(0, Duration::from_secs(5)));
        let cfg = Config::resolve(&ConfigArgs { repo: Some("file:///unused".into()), ..Default::default() })
            .unwrap();
        let f = Fixture { store, storage, cfg };
        let id = format!(
            "{{\"format\":1,\"system_identifier\":\"{SYSID}\",\"pg_version\":15,\"wal_segment_size\":{SEG},\"created\":\"2026-11-23T10:00:00Z\",\"created_by\":\"t\"}}"
        );
        f.put("walvault.json", id.into_bytes());
        for n in 1..=6u64 {
            f.segment(n, n);
        }
        let parts: Vec<Part> = (0..2)
            .map(|i| {
                let data: Vec<u8> = (0..20_000 + i * 3000).map(|b| (b % 251) as u8).collect();
                let key = layout::part("20261123T100000Z", "base.tar", i);
                let (bytes, t, stored) = encode(&data);
                f.put(key.as_ref(), bytes);
                Part {
                    key: key.to_string(),
                    raw_bytes: t.len,
                    stored_bytes: stored,
                    sha256: hex::encode(t.sha256),
                }
            })
            .collect();
        let (mbytes, mt, mstored) = encode(b"{\"manifest\": 1}");
        let mkey = layout::manifest("20261123T100000Z");
        f.put(mkey.as_ref(), mbytes);
        let d = Descriptor {
            format: 1,
            id: "20261123T100000Z".into(),
            label: "t".into(),
            system_identifier: SYSID.to_string(),
            server_version: 150_000,
            timeline: TimelineId::new(1).unwrap(),
            start_lsn: Lsn(2 * SEG + 40),
            stop_lsn: Lsn(3 * SEG + 100),
            start_time: "2026-11-23T10:00:00Z".parse().unwrap(),
            stop_time: "2026-11-23T10:00:05Z".parse().unwrap(),
            wal_segment_size: SEG as u32,
            compression: "lz4".into(),
            key_id: None,
            walvault_version: "t".into(),
            archives: vec![Archive { name: "base.tar".into(), tablespace_oid: None, location: None, parts }],
            manifest: StoredFile {
                key: mkey.to_string(),
                raw_bytes: mt.len,
                stored_bytes: mstored,
                sha256: hex::encode(mt.sha256),
            },
            raw_bytes: 0,
            stored_bytes: 0,
        };
        f.put(layout::descriptor(&d.id).as_ref(), serde_json::to_vec(&d).unwrap());
        f
    }

    /// Segment number `n` of timeline 1 holding a header for segment `holds`.
    fn segment(&self, n: u64, holds: u64) {
        let name = WalFileName::Segment(SegmentName::from_segno(
            TimelineId::new(1).unwrap(),
            n,
            WalSegSize::new(SEG).unwrap(),
        ));
        let mut body = fake_header(SYSID, holds * SEG, SEG as u32);
        body.resize(4096, 1);
        self.put(layout::wal(&name).as_ref(), encode(&body).0);
    }

    fn put(&self, key: &str, bytes: Vec<u8>) {
        block_on(self.store.inner.put(&Path::from(key), PutPayload::from(bytes))).unwrap();
    }

    fn get(&self, key: &str) -> Vec<u8> {
        block_on(async {
            self.store.inner.get(&Path::from(key)).await.unwrap().bytes().await.unwrap().to_vec()
        })
    }

    fn verify(&self, wal: bool) -> Report {
        let req = VerifyRequest { wal, ..Default::default() };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(verify(&self.cfg, &self.storage, &req))
            .unwrap()
    }

    fn gets(&self) -> Vec<String> {
        std::mem::take(&mut *self.store.got.lock().unwrap())
    }
}

fn kinds(r: &Report) -> Vec<(Kind, String)> {
    r.backups
        .iter()
        .flat_map(|b| &b.problems)
        .chain(r.wal.iter().flat_map(|w| &w.problems))
        .map(|p| (p.kind, p.object.clone()))
        .collect()
}

#[test]
fn a_second_run_reads_no_object_bodies() {
    let f = Fixture::new();
    let first = f.verify(true);
    assert!(first.sound(), "{}", render(&first));
    assert_eq!(first.summary.objects_read, 3 + 6);
    let read_first = f.gets();
    assert!(read_first.iter().any(|k| k.starts_with("backups/20261123T100000Z/")));
    let second = f.verify(true);
    assert!(second.sound());
    assert_eq!(second.summary.objects_read, 0);
    assert_eq!(second.summary.objects_skipped, 3 + 6);
    let read = f.gets();
    let bodies: Vec<&String> = read
        .iter()
        .filter(|k| k.starts_with("wal/") || k.contains("/base.tar.") || k.ends_with("backup_manifest"))
        .collect();
    assert!(bodies.is_empty(), "the second run read {bodies:?}");
    // --full reads everything again.
    let req = VerifyRequest { wal: true, full: true, ..Default::default() };
    let full = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(verify(&f.cfg, &f.storage, &req))
        .unwrap();
    assert_eq!(full.summary.objects_read, 9);
}

#[test]
fn every_kind_of_damage_is_named() {
    let f = Fixture::new();
    let p1 = "backups/20261123T100000Z/base.tar.00001";
    let p2 = "backups/20261123T100000Z/base.tar.00002";
    let good = f.get(p1);
    // A flipped byte.
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    f.put(p1, flipped);
    assert_eq!(kinds(&f.verify(false)), [(Kind::Corrupt, p1.to_string())]);
    // Truncated.
    f.put(p1, good[..good.len() - 10].to_vec());
    assert_eq!(kinds(&f.verify(false)), [(Kind::WrongSize, p1.to_string())]);
    // Another object in its place, of the same size: the second part's bytes, re-encoded to the
    // first one's size is not possible, so a copy of the first part of another backup stands in.
    let other: Vec<u8> = (0..20_000u32).map(|b| (b % 13) as u8).collect();
    let (bytes, _, _) = encode(&other);
    f.put(p1, bytes);
    let k = kinds(&f.verify(false));
    assert!(matches!(k.as_slice(), [(Kind::Mismatch | Kind::WrongSize, o)] if o == p1), "{k:?}");
    // Deleted.
    block_on(f.store.inner.delete(&Path::from(p1))).unwrap();
    assert_eq!(kinds(&f.verify(false)), [(Kind::MissingObject, p1.to_string())]);
    f.put(p1, good);
    assert!(f.verify(false).sound());
    // A missing WAL segment inside the backup's start..stop, and the chain after it.
    let seg3 = layout::wal(&"000000010000000000000003".parse().unwrap());
    let seg3_bytes = f.get(seg3.as_ref());
    block_on(f.store.inner.delete(&seg3)).unwrap();
    let r = f.verify(false);
    assert_eq!(kinds(&r), [(Kind::MissingWal, "000000010000000000000003".to_string())]);
    assert!(render(&r).contains("000000010000000000000003"));
    // A WAL object swapped with another segment's: found by --wal.
    let seg5 = layout::wal(&"000000010000000000000005".parse().unwrap());
    f.put(seg3.as_ref(), f.get(seg5.as_ref()));
    let k = kinds(&f.verify(true));
    assert_eq!(k, [(Kind::NotItsSegment, seg3.to_string())]);
    f.put(seg3.as_ref(), seg3_bytes);
    assert!(f.verify(true).sound());
    let _ = p2;
}

const DUMP: &str = "20261124T020000Z";

impl Fixture {
    /// A dump `id` of two databases (equal sizes, other bytes) and the globals.
    fn dump(&self, id: &str) -> DumpDescriptor {
        let stored = |key: Path, data: &[u8]| -> StoredFile {
            let (bytes, t, size) = encode(data);
            self.put(key.as_ref(), bytes);
            StoredFile {
                key: key.to_string(),
                raw_bytes: t.len,
                stored_bytes: size,
                sha256: hex::encode(t.sha256),
            }
        };
        let databases = ["app", "shop"]
            .iter()
            .enumerate()
            .map(|(i, name)| crate::repo::dumps::DumpedDatabase {
                name: name.to_string(),
                object: stored(layout::dump_database(id, i), &vec![b'a' + i as u8; 30_000]),
                tables: vec![crate::repo::dumps::TableRows {
                    schema: "public".into(),
                    table: "t".into(),
                    rows: 10,
                }],
            })
            .collect();
        let globals = Some(stored(layout::dump_globals(id), b"CREATE ROLE app;\n"));
        let d = DumpDescriptor {
            format: 1,
            id: id.into(),
            label: "t".into(),
            system_identifier: SYSID.to_string(),
            server_version: 150_000,
            pg_dump_version: "pg_dump (PostgreSQL) 15.8".into(),
            start_time: "2026-11-24T02:00:00Z".parse().unwrap(),
            stop_time: "2026-11-24T02:00:09Z".parse().unwrap(),
            compression: "lz4".into(),
            key_id: None,
            walvault_version: "t".into(),
            databases,
            globals,
            raw_bytes: 0,
            stored_bytes: 0,
        };
        self.put(layout::dump_descriptor(id).as_ref(), serde_json::to_vec(&d).unwrap());
        d
    }

    fn verify_req(&self, req: &VerifyRequest) -> Result<Report, VerifyError> {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(verify(
            &self.cfg,
            &self.storage,
            req,
        ))
    }
}

fn dump_kinds(r: &Report) -> Vec<(Kind, String)> {
    r.dumps.iter().flat_map(|d| &d.problems).map(|p| (p.kind, p.object.clone())).collect()
}

#[test]
fn dumps_are_verified_incrementally() {
    let f = Fixture::new();
    f.dump(DUMP);
    let first = f.verify(false);
    assert!(first.sound(), "{}", render(&first));
    assert_eq!(first.dumps.len(), 1);
    assert_eq!((first.dumps[0].objects, first.dumps[0].read), (3, 3));
    assert!(render(&first).contains(DUMP));
    f.gets();
    let second = f.verify(false);
    assert!(second.sound());
    assert_eq!((second.dumps[0].read, second.dumps[0].skipped), (0, 3));
    let bodies: Vec<String> =
        f.gets().into_iter().filter(|k| k.starts_with(&format!("dumps/{DUMP}/"))).collect();
    assert!(bodies.is_empty(), "the second run read {bodies:?}");
    // --full reads them again.
    let full = f.verify_req(&VerifyRequest { full: true, ..Default::default() }).unwrap();
    assert_eq!(full.dumps[0].read, 3);
}

#[test]
fn every_kind_of_damage_to_a_dump_is_named() {
    let f = Fixture::new();
    let d = f.dump(DUMP);
    let (k1, k2) = (d.databases[0].object.key.clone(), d.databases[1].object.key.clone());
    let good = f.get(&k1);
    let other = f.get(&k2);
    assert_eq!(good.len(), other.len(), "the two databases' objects are the same size");
    let full = VerifyRequest { full: true, ..Default::default() };
    let damaged = |f: &Fixture| {
        let r = f.verify_req(&full).unwrap();
        assert!(!r.sound() && r.summary.problems > 0 && r.backups.iter().all(|b| b.ok), "{}", render(&r));
        assert!(!r.dumps[0].ok);
        dump_kinds(&r)
    };
    // A flipped byte.
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    f.put(&k1, flipped);
    assert_eq!(damaged(&f), [(Kind::Corrupt, k1.clone())]);
    // Truncated.
    f.put(&k1, good[..good.len() - 10].to_vec());
    assert_eq!(damaged(&f), [(Kind::WrongSize, k1.clone())]);
    // Deleted.
    block_on(f.store.inner.delete(&Path::from(k1.as_str()))).unwrap();
    assert_eq!(damaged(&f), [(Kind::MissingObject, k1.clone())]);
    // The two databases' objects swapped.
    f.put(&k1, other.clone());
    f.put(&k2, good.clone());
    assert_eq!(damaged(&f), [(Kind::Mismatch, k1.clone()), (Kind::Mismatch, k2.clone())]);
    f.put(&k1, good);
    f.put(&k2, other);
    assert!(f.verify_req(&full).unwrap().sound());
    // The globals gone.
    let g = d.globals.as_ref().unwrap().key.clone();
    block_on(f.store.inner.delete(&Path::from(g.as_str()))).unwrap();
    assert_eq!(damaged(&f), [(Kind::MissingObject, g)]);
}

#[test]
fn a_dump_is_chosen_by_id_and_a_bad_descriptor_is_a_problem() {
    let f = Fixture::new();
    f.dump(DUMP);
    f.dump("20261125T020000Z");
    let one = f.verify_req(&VerifyRequest { dump: Some(DUMP.into()), ..Default::default() }).unwrap();
    assert_eq!(one.dumps.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [DUMP]);
    let e = f.verify_req(&VerifyRequest { dump: Some("20991231T000000Z".into()), ..Default::default() });
    assert!(matches!(e, Err(VerifyError::UnknownDump(_))), "{e:?}");
    f.put(layout::dump_descriptor("20261125T020000Z").as_ref(), b"{not json".to_vec());
    let r = f.verify(false);
    assert_eq!(r.dumps.len(), 2);
    assert_eq!(dump_kinds(&r), [(Kind::Unparsable, "dumps/20261125T020000Z.json".to_string())]);
    assert!(!r.sound());
}

#[test]
fn a_dump_object_without_its_key_is_unreadable_not_a_problem() {
    let f = Fixture::new();
    let d = f.dump(DUMP);
    let key = crate::keys::MasterKey::from_bytes([9; 32]);
    let data = vec![7u8; 5000];
    let enc =
        crate::object::encode::encode_reader(&data[..], Compression::Lz4, Some(&key), 4096, None).unwrap();
    let k1 = d.databases[0].object.key.clone();
    let mut d2 = d.clone();
    d2.databases[0].object = StoredFile {
        key: k1.clone(),
        raw_bytes: enc.trailer.len,
        stored_bytes: enc.stored,
        sha256: hex::encode(enc.trailer.sha256),
    };
    f.put(&k1, enc.pieces.iter().flat_map(|p| p.iter().copied()).collect());
    f.put(layout::dump_descriptor(DUMP).as_ref(), serde_json::to_vec(&d2).unwrap());
    let r = f.verify(false);
    assert_eq!(dump_kinds(&r), [(Kind::Unreadable, k1)]);
    assert_eq!((r.summary.problems, r.summary.unreadable), (0, 1));
}
