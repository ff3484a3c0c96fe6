//! `walvault verify` on logical dumps against a real PostgreSQL 15 and the S3-compatible server.
//! The dump is made by hand here, the way `walvault dump` makes one (tests/pg-integration/dumps.rs
//! runs verify on dumps taken by the command itself): PostgreSQL's
//! `pg_dump -Fc -Z0` and `pg_dumpall --globals-only`, encoded (encrypted) into the repository
//! with the library, and a descriptor with each table's row count. verify reads it sound;
//! `--restore-test --dump ID` restores it into a temporary cluster and passes; a row count changed
//! in the descriptor fails the drill naming the table; a flipped byte in the dump object fails
//! both the object check and the drill; nothing of the drills is left behind.

use std::path::Path;
use std::process::Command;

use walvault::format::{Compression, DEFAULT_CHUNK_SIZE};
use walvault::keys::MasterKey;
use walvault::repo::descriptor::StoredFile;
use walvault::repo::dumps::{DumpDescriptor, DumpedDatabase, TableRows};
use walvault::repo::layout;

use crate::skip_or_fail;
use crate::support::backups::{archive_everything, archiving, configure, walvault};
use crate::support::datadir::{extra, keygen};
use crate::support::pg::{Cluster, pg_bin};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch};

const ID: &str = "20261201T020000Z";

fn verify(cfg: &Path, args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let run = Run::of(walvault(cfg).args(&all));
    let json = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, json)
}

/// The bytes a client program of `c` writes to stdout.
fn output(mut cmd: Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    crate::support::logs::output(&out);
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Encodes `bytes` into the repository at `key`, as `walvault dump` stores an object.
fn store(repo: &Repo, key: &MasterKey, at: &str, bytes: &[u8]) -> StoredFile {
    let enc = walvault::object::encode::encode_reader(
        bytes,
        Compression::Zstd { level: 3 },
        Some(key),
        DEFAULT_CHUNK_SIZE,
        None,
    )
    .unwrap();
    repo.overwrite(at, enc.pieces.iter().flat_map(|p| p.iter().copied()).collect());
    StoredFile {
        key: at.to_string(),
        raw_bytes: enc.trailer.len,
        stored_bytes: enc.stored,
        sha256: hex::encode(enc.trailer.sha256),
    }
}

#[test]
fn pg_verify_dumps_restores_a_dump_and_compares_row_counts() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(Backend::S3, &scratch);
    let key_file = keygen(&scratch, "master.key");
    let cfg = repo.config(&scratch, "walvault.toml", &extra("zstd", Some(&key_file)));
    let key = MasterKey::load(&key_file).unwrap();
    let mut p = Cluster::init(&scratch, "primary", &bin, &[]);
    configure(&p, &archiving(&cfg));
    p.start();
    // The repository's identity comes with the first archived segment.
    archive_everything(&p);
    p.sql("create role app_owner");
    p.sql("create database app owner app_owner");
    let app = |sql: &str| {
        Run::of(p.client("psql").args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", "app", "-c", sql]))
            .expect(0);
    };
    app("create schema shop authorization app_owner");
    app("create table shop.orders (id int primary key, note text)");
    app("alter table shop.orders owner to app_owner");
    app("insert into shop.orders select i, repeat('x', i % 50) from generate_series(1, 5000) i");
    app("create table public.\"Mixed Case\" (v int)");
    app("insert into public.\"Mixed Case\" select generate_series(1, 7)");
    app("create table public.empty (v int)");

    let mut dump = p.client("pg_dump");
    dump.args(["-Fc", "-Z0", "-d", "app"]);
    let dumped = output(dump);
    let mut globals = p.client("pg_dumpall");
    globals.arg("--globals-only");
    let globals = output(globals);
    let version: u32 = p.sql("show server_version_num").parse().unwrap();
    let sysid = p.sql("select system_identifier from pg_control_system()");
    let object = store(&repo, &key, layout::dump_database(ID, 0).as_ref(), &dumped);
    let globals = store(&repo, &key, layout::dump_globals(ID).as_ref(), &globals);
    p.stop();
    let mut d = DumpDescriptor {
        format: 1,
        id: ID.into(),
        label: "by hand".into(),
        system_identifier: sysid,
        server_version: version,
        pg_dump_version: "pg_dump (PostgreSQL) 15".into(),
        start_time: "2026-12-01T02:00:00Z".parse().unwrap(),
        stop_time: "2026-12-01T02:00:05Z".parse().unwrap(),
        compression: "zstd".into(),
        key_id: Some(key.id().to_string()),
        walvault_version: "test".into(),
        raw_bytes: object.raw_bytes + globals.raw_bytes,
        stored_bytes: object.stored_bytes + globals.stored_bytes,
        databases: vec![DumpedDatabase {
            name: "app".into(),
            object,
            tables: vec![
                TableRows { schema: "public".into(), table: "Mixed Case".into(), rows: 7 },
                TableRows { schema: "public".into(), table: "empty".into(), rows: 0 },
                TableRows { schema: "shop".into(), table: "orders".into(), rows: 5000 },
            ],
        }],
        globals: Some(globals),
    };
    let descriptor = layout::dump_descriptor(ID).to_string();
    repo.overwrite(&descriptor, serde_json::to_vec(&d).unwrap());

    // The objects verify, and a second run reads none of them.
    let (run, report) = verify(&cfg, &[]);
    run.expect(0);
    assert_eq!(report["dumps"][0]["id"], ID, "{report:#}");
    assert_eq!(report["dumps"][0]["read"], 2, "{report:#}");
    let (run, report) = verify(&cfg, &["--dump", ID]);
    run.expect(0);
    assert_eq!(
        (report["dumps"][0]["read"].as_u64(), report["dumps"][0]["skipped"].as_u64()),
        (Some(0), Some(2))
    );

    // A dump the repository does not have is a usage error.
    let (run, _) = verify(&cfg, &["--dump", "20991231T000000Z"]);
    run.expect(2).says(&["dump 20991231T000000Z is not in the repository"]);

    // The drill restores it (globals, then the database) and the counts match. Its temporary
    // directories go into the test's own (the backup drill's test watches /tmp).
    let work = scratch.subdir("d");
    let work = work.to_str().unwrap();
    let (run, report) = verify(&cfg, &["--restore-test", "--work-dir", work, "--dump", ID]);
    run.expect(0);
    assert_eq!(report["drills"].as_array().map(Vec::len), Some(0), "only the dump is drilled: {report:#}");
    let drill = &report["dump_drills"][0];
    assert_eq!(drill["ok"], true, "{report:#}");
    assert_eq!(drill["databases"][0]["tables"], 3, "{report:#}");
    let text = Run::of(walvault(&cfg).args(["verify", "--restore-test", "--work-dir", work, "--dump", ID]))
        .expect(0)
        .stdout
        .clone();
    assert!(text.contains(&format!("restore drill of dump {ID}: ok")), "{text}");

    // A row count the restore does not give back: the drill fails, naming the table.
    d.databases[0].tables[2].rows = 4999;
    repo.overwrite(&descriptor, serde_json::to_vec(&d).unwrap());
    let (run, report) = verify(&cfg, &["--restore-test", "--work-dir", work, "--dump", ID]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let drill = &report["dump_drills"][0];
    assert_eq!(drill["ok"], false);
    let m = &drill["mismatches"][0];
    assert_eq!((m["schema"].as_str(), m["table"].as_str()), (Some("shop"), Some("orders")), "{report:#}");
    assert_eq!((m["expected"].as_u64(), m["restored"].as_u64()), (Some(4999), Some(5000)));
    let text = Run::of(walvault(&cfg).args(["verify", "--restore-test", "--work-dir", work, "--dump", ID]))
        .stdout
        .clone();
    assert!(text.contains("app: shop.orders: 5000 rows restored, 4999 at dump time"), "{text}");
    d.databases[0].tables[2].rows = 5000;
    repo.overwrite(&descriptor, serde_json::to_vec(&d).unwrap());

    // A flipped byte in the dump object: the object check and the drill both fail.
    let at = d.databases[0].object.key.clone();
    let mut bytes = repo.get(&at);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    repo.overwrite(&at, bytes);
    let (run, report) = verify(&cfg, &["--restore-test", "--work-dir", work, "--dump", ID]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(report["dumps"][0]["problems"][0]["kind"], "corrupt", "{report:#}");
    let drill = &report["dump_drills"][0];
    assert_eq!(drill["ok"], false);
    assert!(drill["message"].as_str().unwrap().contains(&at), "{report:#}");
    // Nothing of the drills is left behind.
    let left: Vec<_> = std::fs::read_dir(work).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
