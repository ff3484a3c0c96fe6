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
