//! Every exit code of every binary, produced by running the built binaries (the README's table
//! is the contract; this test keeps it true).

use std::process::Command;
use std::time::Instant;

use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra};
use crate::support::repo::Repo;
use crate::support::s3::{free_port, s3_toml};
use crate::support::{Run, Scratch, bins, fake_segment};

#[test]
fn wal_push_codes() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let name = "000000010000000000000001";
    let rel = data.wal(name, &fake_segment(name, SYSID, SEG_1M, 1));
    // 0: archived, and 0 again: already archived.
    data.push(&cfg, &rel).expect(0);
    data.push(&cfg, &rel).expect(0);
    // 1: the repository cannot be reached (PostgreSQL will retry).
    let dead = scratch.file(
        "dead.toml",
        format!(
            "timeout = \"2s\"\nretries = 1\n{}",
            s3_toml(&format!("http://127.0.0.1:{}", free_port()), "b", "p")
        ),
    );
    data.push(&dead, &rel).expect(1);
    // 2: usage and configuration.
    Run::of(&mut Command::new(&bins().push)).expect(2).says(&["see --help"]);
    let bad = scratch.file("bad.toml", "repo = \"file:///tmp/x\"\nbogus = 1\n");
    data.push(&bad, &rel).expect(2);
    // 3: refused (not WAL).
    let not_wal = data.wal("000000010000000000000002", &vec![b'x'; SEG_1M as usize]);
    data.push(&cfg, &not_wal).expect(3);
    // --help is not an error.
    Run::of(Command::new(&bins().push).arg("--help")).expect(0);
}

#[test]
fn wal_fetch_codes() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("lz4", None));
    let name = "000000010000000000000001";
    data.push(&cfg, &data.wal(name, &fake_segment(name, SYSID, SEG_1M, 1))).expect(0);
    // 0: fetched. 1: not in the archive.
    data.fetch(&cfg, name).0.expect(0);
    data.fetch(&cfg, "000000010000000000000002").0.expect(1);
    // 200: storage unreachable after retries.
    let dead = scratch.file(
        "dead.toml",
        format!(
            "timeout = \"2s\"\nretries = 1\n{}",
            s3_toml(&format!("http://127.0.0.1:{}", free_port()), "b", "p")
        ),
    );
    data.fetch(&dead, name).0.expect(200);
    // 201: the archived object is corrupt.
    let key = format!("wal/0000000100000000/{name}");
    let mut obj = repo.get(&key);
    let mid = obj.len() / 2;
    obj[mid] ^= 0x55;
    repo.overwrite(&key, obj);
    let (run, got) = data.fetch(&cfg, name);
    run.expect(201);
    assert!(got.is_none());
    // 202: usage, configuration, key problems.
    Run::of(Command::new(&bins().fetch).arg("only-one-arg")).expect(202);
    data.fetch(&cfg, "not-a-wal-name").0.expect(202);
    let bad = scratch.file("bad.toml", "repo = \"gopher://x\"\n");
    data.fetch(&bad, name).0.expect(202);
    // 203: the destination cannot be written.
    let other = "000000010000000000000003";
    data.push(&cfg, &data.wal(other, &fake_segment(other, SYSID, SEG_1M, 3))).expect(0);
    Run::of(
        Command::new(&bins().fetch).arg("--config").arg(&cfg).args([other, "/nonexistent-dir/RECOVERYXLOG"]),
    )
    .expect(203);
    Run::of(Command::new(&bins().fetch).arg("--version")).expect(0);
}

#[test]
fn walvault_codes() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let key = scratch.path().join("k");
    Run::of(Command::new(&bins().walvault).arg("keygen").arg(&key)).expect(0);
    Run::of(Command::new(&bins().walvault).arg("keygen").arg(&key)).expect(2).says(&["never overwrites"]);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", Some(&key)));
    let run = Run::of(Command::new(&bins().walvault).arg("config").arg("--config").arg(&cfg));
    run.expect(0);
    assert!(
        run.stdout.contains("aes-256-gcm") && run.stdout.contains("compression = \"zstd:3\""),
        "{}",
        run.stdout
    );
    let short = scratch.file("short.key", [1u8; 16]);
    Run::of(
        Command::new(&bins().walvault)
            .arg("config")
            .arg("--config")
            .arg(&cfg)
            .arg("--encryption-key-file")
            .arg(&short),
    )
    .expect(2);
    Run::of(Command::new(&bins().walvault).arg("no-such-command")).expect(2);
    // The subcommands keep the small binaries' codes.
    let name = "000000010000000000000001";
    let rel = data.wal(name, &fake_segment(name, SYSID, SEG_1M, 1));
    Run::of(
        Command::new(&bins().walvault)
            .current_dir(&data.path)
            .arg("wal-push")
            .arg("--config")
            .arg(&cfg)
            .arg(&rel),
    )
    .expect(0);
    let fetch = |n: &str| {
        Run::of(
            Command::new(&bins().walvault)
                .current_dir(&data.path)
                .arg("wal-fetch")
                .arg("--config")
                .arg(&cfg)
                .args([n, "pg_wal/X"]),
        )
    };
    fetch(name).expect(0);
    fetch("000000010000000000000009").expect(1);
    fetch("garbage").expect(202);
    // Dumps: an unknown one for delete and mark, --force without --backup or --dump, and an
    // unknown key in [retention.dumps] are all 2.
    let wv = |c: &std::path::Path, args: &[&str]| {
        Run::of(Command::new(&bins().walvault).args(args).arg("--config").arg(c))
    };
    wv(&cfg, &["delete", "--dump", "20200101T000000Z"])
        .expect(2)
        .says(&["dump 20200101T000000Z is not in the repository"]);
    wv(&cfg, &["delete", "--force"]).expect(2);
    wv(&cfg, &["mark", "20200101T000000Z", "--keep", "--dump"]).expect(2).says(&["dump 20200101T000000Z"]);
    wv(&cfg, &["mark", "20200101T000000Z", "--keep"]).expect(2).says(&["no backup or dump 20200101T000000Z"]);
    let bad = repo.config(&scratch, "bad-dumps.toml", "[retention.dumps]\nretain = 2\nkeep_yearly = 1\n");
    wv(&bad, &["delete"]).expect(2).says(&["unknown field `keep_yearly`"]);
    let dumps_only = repo.config(&scratch, "dumps.toml", "[retention.dumps]\nretain = 2\n");
    wv(&dumps_only, &["delete", "--confirm"]).expect(0);
}

#[test]
fn unreachable_storage_fails_within_the_bound() {
    // Refused connections and a server that accepts but never answers: both give up within
    // (retries + 1) x timeout + backoff, instead of hanging.
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let name = "000000010000000000000001";
    let rel = data.wal(name, &fake_segment(name, SYSID, SEG_1M, 1));
    for endpoint in [format!("http://127.0.0.1:{}", free_port()), crate::support::s3::silent_server()] {
        let cfg = scratch.file(
            &crate::support::unique("dead"),
            format!("timeout = \"1s\"\nretries = 2\n{}", s3_toml(&endpoint, "bucket", "p")),
        );
        let bound =
            std::time::Duration::from_millis(3 * 1000 + 100 + 200) + std::time::Duration::from_secs(5);
        let t = Instant::now();
        data.push(&cfg, &rel).expect(1);
        assert!(t.elapsed() < bound, "wal-push took {:?} against {endpoint}", t.elapsed());
        let t = Instant::now();
        data.fetch(&cfg, name).0.expect(200);
        assert!(t.elapsed() < bound, "wal-fetch took {:?} against {endpoint}", t.elapsed());
    }
}

#[test]
fn walvault_restore_codes() {
    // 0 and 3 for real parts are in restore.rs (pg_restore_refusals_and_corrupt_parts).
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let target = scratch.path().join("restored");
    let restore = |cfg: &std::path::Path, args: &[&str]| {
        Run::of(
            Command::new(&bins().walvault)
                .arg("restore")
                .arg("--config")
                .arg(cfg)
                .arg("--target-dir")
                .arg(&target)
                .args(args),
        )
    };
    // 2: usage, configuration, nothing to restore.
    Run::of(Command::new(&bins().walvault).arg("restore")).expect(2).says(&["--target-dir", "see --help"]);
    restore(&cfg, &["--target-xid", "5", "--target-immediate"]).expect(2).says(&["cannot be used with"]);
    restore(&cfg, &["--target-action", "pause"]).expect(2).says(&["required arguments", "--target-lsn"]);
    restore(&cfg, &["--target-timeline", "sideways"]).expect(2);
    restore(&cfg, &["--tablespace-map", "x=/y"]).expect(2).says(&["not a tablespace OID"]);
    restore(&cfg, &[]).expect(2).says(&["no base backups"]);
    // 3: a descriptor that is not one.
    repo.overwrite("backups/20261123T104501Z.json", b"{\"format\": 1}".to_vec());
    restore(&cfg, &["--backup", "20261123T104501Z"]).expect(3).says(&["backups/20261123T104501Z.json"]);
    // 1: the repository cannot be reached.
    let dead = scratch.file(
        "dead.toml",
        format!(
            "timeout = \"1s\"\nretries = 1\n{}",
            s3_toml(&format!("http://127.0.0.1:{}", free_port()), "b", "p")
        ),
    );
    restore(&dead, &[]).expect(1);
    assert!(!target.exists());
}
