//! `walvault restore` end to end against real PostgreSQL: a primary archives through
//! `wal-push`, `walvault base-backup` takes a base backup, more load follows while the contents
//! of every table are recorded at several moments (with the LSN, time, transaction id and a
//! restore point of each); then restores to each kind of target are started with `pg_ctl start`
//! and must hold exactly what was recorded at their target. `pg_verifybackup -n` runs on every
//! restored directory before it starts. Also: a user tablespace restored to another directory,
//! the base-backup + restore-to-LSN cycle on PostgreSQL 13, 14, 16, 17 and 18, and the refusals and
//! failures (corrupt or swapped parts, busy directories, bad targets), which leave nothing
//! behind and never change the repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::on_backends;
use crate::require_s3;
use crate::skip_or_fail;
use crate::support::backups::{
    Action, Moment, archive_everything, archiving, base_backup, configure, contents, restore, start_restored,
    step, verifybackup,
};
use crate::support::datadir::{extra, keygen};
use crate::support::pg::{Cluster, pg_bin, pg_bin_for, tail};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch, bins};

/// One restore of a scenario: target flags, expected end state, the moment it must show.
struct Case<'a> {
    name: &'static str,
    args: Vec<String>,
    /// The backup it must restore.
    backup: &'a str,
    action: Action,
    /// Index into the recorded moments (0: the base backup).
    moment: usize,
    /// What the server log says when it stops there.
    log: String,
}

/// The whole point-in-time scenario on PostgreSQL 15 for one repository kind.
fn pitr(backend: Backend, with_key: bool) {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(backend, &scratch);
    let key = with_key.then(|| keygen(&scratch, "walvault.key"));
    let cfg = repo.config(
        &scratch,
        "walvault.toml",
        &format!("{}part_size = \"1MiB\"\n", extra("zstd", key.as_deref())),
    );

    let mut primary = Cluster::init(&scratch, "primary", &bin, &[]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    Run::of(primary.client("pgbench").args(["-i", "-s", "1", "-q", "postgres"])).expect(0);
    primary.sql("create table t (i int primary key, v text)");
    primary.sql("insert into t select g, 'v0' from generate_series(1, 500) g");
    let at_backup = contents(&primary, true);
    let first = base_backup(&cfg, &primary);
    let desc: serde_json::Value =
        serde_json::from_slice(&repo.get(&format!("backups/{first}.json"))).unwrap();
    let parts = desc["archives"][0]["parts"].as_array().unwrap().len();
    assert!(parts >= 3, "base.tar in {parts} parts: too few to test parallel restore");
    // A backup's stop time is kept to the second: let the next step be a second later.
    std::thread::sleep(Duration::from_millis(1100));
    let mut moments = vec![Moment {
        contents: at_backup,
        lsn: String::new(),
        time: String::new(),
        xid: String::new(),
        name: String::new(),
    }];
    moments.push(step(&primary, 1, true));
    moments.push(step(&primary, 2, true));
    // A second backup, holding moment 2.
    let second = base_backup(&cfg, &primary);
    std::thread::sleep(Duration::from_millis(1100));
    moments.push(step(&primary, 3, true));
    moments.push(step(&primary, 4, true));
    // A commit after the last moment, so every target has something to stop before.
    step(&primary, 5, true);
    for (i, a) in moments.iter().enumerate() {
        assert!(moments[..i].iter().all(|b| b.contents != a.contents), "moment {i} is not distinct");
    }
    archive_everything(&primary);
    primary.stop();
    let before = repo.listing();

    let flag = |f: &str, v: &str| vec![f.to_string(), v.to_string()];
    let cases = [
        // Without --backup: the newest backup finished before the target time (the first).
        Case {
            name: "time",
            args: flag("--target-time", &moments[2].time),
            backup: &first,
            action: Action::Pause,
            moment: 2,
            log: "recovery stopping before commit of transaction".into(),
        },
        // The newest backup whose stop LSN is before the target (the second).
        Case {
            name: "lsn",
            args: [flag("--target-lsn", &moments[3].lsn), flag("--target-action", "promote")].concat(),
            backup: &second,
            action: Action::Promote,
            moment: 3,
            // PostgreSQL names the first record at or after the target.
            log: "recovery stopping after WAL location (LSN)".into(),
        },
        // A restore point before the newest backup: the older backup is named.
        Case {
            name: "name",
            args: [flag("--target-name", &moments[1].name), flag("--backup", &first)].concat(),
            backup: &first,
            action: Action::Pause,
            moment: 1,
            log: "recovery stopping at restore point \"step1\"".into(),
        },
        // xid: the newest backup.
        Case {
            name: "xid",
            args: [flag("--target-xid", &moments[4].xid), flag("--target-action", "promote")].concat(),
            backup: &second,
            action: Action::Promote,
            moment: 4,
            log: format!("recovery stopping after commit of transaction {}", moments[4].xid),
        },
        // immediate: the newest backup, as it was when it was taken; or the one named.
        Case {
            name: "immediate",
            args: vec!["--target-immediate".into()],
            backup: &second,
            action: Action::Pause,
            moment: 2,
            log: "recovery stopping after reaching consistency".into(),
        },
        Case {
            name: "immediate-first",
            args: [vec!["--target-immediate".into()], flag("--backup", &first)].concat(),
            backup: &first,
            action: Action::Pause,
            moment: 0,
            log: "recovery stopping after reaching consistency".into(),
        },
        Case {
            name: "shutdown",
            args: [flag("--target-lsn", &moments[2].lsn), flag("--target-action", "shutdown")].concat(),
            backup: &first,
            action: Action::Shutdown,
            moment: 2,
            log: "shutdown at recovery target".into(),
        },
    ];
    for case in &cases {
        let dir = scratch.path().join(format!("restored-{}", case.name));
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let run = restore(&cfg, &dir, &args);
        run.expect(0);
        assert!(
            run.stderr.contains(&format!("restoring backup {} ", case.backup)),
            "{}: {}",
            case.name,
            run.stderr
        );
        let verify = verifybackup(&dir, &[]);
        assert_eq!(verify.code, 0, "pg_verifybackup on {}: {}{}", case.name, verify.stdout, verify.stderr);
        // The test's own manifest check (used for 17 and 18) agrees.
        verify_manifest(&dir);
        let mut c = start_restored(&bin, &scratch, &dir, case.action);
        let log = c.log_text();
        assert!(
            log.contains(&case.log),
            "{}: the server log lacks {:?}:\n{}",
            case.name,
            case.log,
            tail(&log, 40)
        );
        if case.action != Action::Shutdown {
            let got = contents(&c, true);
            assert_eq!(
                got, moments[case.moment].contents,
                "{}: contents differ from the target's",
                case.name
            );
        }
        let what = if case.action == Action::Shutdown { "shut down at" } else { "contents match" };
        eprintln!(
            "{}: backup {}, {what} moment {} ({})",
            case.name,
            case.backup,
            case.moment,
            case.args.join(" ")
        );
        if case.action == Action::Promote {
            // A promoted cluster is writable.
            c.sql("insert into t values (-100, 'after promotion')");
        }
        c.stop();
        drop(c);
        // The restored cluster's prefetcher may still be leaving: remove what it leaves too.
        crate::support::remove_tree(&dir);
    }
    assert_eq!(repo.listing(), before, "restore changed the repository");
}

on_backends!(pg_restore_pitr_key, |b| pitr(b, true), [file, s3, azure]);
on_backends!(pg_restore_pitr_plain, |b| pitr(b, false), [file, s3]);

/// Every file and its size below `dir` (following nothing), for "unchanged" checks.
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), if m.is_dir() { 0 } else { m.len() }));
        }
    }
    out.sort();
    out
}

/// A backup with a user tablespace, restored with the tablespace in another directory: the
/// original location is refused while it is in use, the remapped restore recovers, and the
/// original tablespace directory is never written.
#[test]
fn pg_restore_tablespace_elsewhere() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg =
        repo.config(&scratch, "walvault.toml", &format!("{}part_size = \"1MiB\"\n", extra("lz4", None)));
    let mut primary = Cluster::init(&scratch, "primary", &bin, &[]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    let ts = scratch.subdir("ts1");
    primary.sql(&format!("create tablespace ts1 location '{}'", ts.display()));
    let oid = primary.sql("select oid from pg_tablespace where spcname = 'ts1'");
    primary.sql("create table t (i int primary key, v text) tablespace ts1");
    primary.sql("insert into t select g, md5(g::text) from generate_series(1, 50000) g");
    base_backup(&cfg, &primary);
    std::thread::sleep(Duration::from_millis(1100));
    let m = step(&primary, 1, false);
    step(&primary, 2, false);
    archive_everything(&primary);
    primary.stop();
    let original = tree(&ts);

    // The original location is in use (not empty): refused, and nothing is left behind.
    let dir = scratch.path().join("restored");
    restore(&cfg, &dir, &["--target-lsn", &m.lsn])
        .expect(2)
        .says(&[&format!("tablespace {oid}'s directory"), "is not empty"]);
    assert!(!dir.exists());

    let elsewhere = scratch.path().join("ts-restored");
    let map = format!("{oid}={}", elsewhere.display());
    restore(&cfg, &dir, &["--target-lsn", &m.lsn, "--target-action", "promote", "--tablespace-map", &map])
        .expect(0);
    assert_eq!(std::fs::read_link(dir.join("pg_tblspc").join(&oid)).unwrap(), elsewhere);
    assert_eq!(
        std::fs::read_to_string(dir.join("tablespace_map")).unwrap(),
        format!("{oid} {}\n", elsewhere.display())
    );
    let mode =
        |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
    assert_eq!(mode(&elsewhere) & 0o777, 0o700);
    assert_eq!(mode(&dir) & 0o777, 0o700);
    // pg_verifybackup follows pg_tblspc/<oid> into the new directory and checks every file
    // there. tablespace_map is the one file that differs from the manifest (it names the new
    // location), and that is the only complaint.
    let verify = verifybackup(&dir, &[]);
    eprintln!("pg_verifybackup -n on the remapped restore: {}{}", verify.stdout, verify.stderr);
    let errors: Vec<&str> = verify.stderr.lines().filter(|l| l.contains("error")).collect();
    assert!(
        verify.code != 0 && errors.len() == 1 && errors[0].contains("tablespace_map"),
        "pg_verifybackup: {}{}",
        verify.stdout,
        verify.stderr
    );
    let verify = verifybackup(&dir, &["-i", "tablespace_map"]);
    assert_eq!(verify.code, 0, "pg_verifybackup -i tablespace_map: {}{}", verify.stdout, verify.stderr);

    let mut c = start_restored(&bin, &scratch, &dir, Action::Promote);
    assert_eq!(contents(&c, false), m.contents);
    assert_eq!(c.sql(&format!("select pg_tablespace_location({oid})")), elsewhere.display().to_string());
    c.sql("insert into t select g, 'more' from generate_series(100001, 120000) g");
    c.sql("checkpoint");
    c.stop();
    assert_eq!(tree(&ts), original, "the original tablespace directory changed");
    assert!(tree(&elsewhere).iter().any(|(p, _)| p.to_string_lossy().contains("PG_15_")));
}

/// Base backup and restore to an LSN on PostgreSQL `major` (servers from `pg_bin_for`, client
/// tools from 15). pg_verifybackup 15 reads the manifests of 13, 14 and 16, not those of 17 and 18
/// (manifest version 2): for those the manifest's own checksum and every file's size are checked.
fn restore_version(major: u32) {
    let Some(bin) = pg_bin_for(major) else {
        skip_or_fail!("PostgreSQL {major} server binaries not found (run scripts/install-deps.sh)")
    };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "walvault.toml", &extra("zstd", None));
    let mut primary = Cluster::init(&scratch, "primary", &bin, &[]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    assert_eq!(primary.sql("show server_version_num").parse::<u32>().unwrap() / 10_000, major);
    primary.sql("create table t (i int primary key, v text)");
    primary.sql("insert into t select g, md5(g::text) from generate_series(1, 20000) g");
    let id = base_backup(&cfg, &primary);
    let m1 = step(&primary, 1, false);
    step(&primary, 2, false);
    archive_everything(&primary);
    primary.stop();

    let dir = scratch.path().join("restored");
    restore(&cfg, &dir, &["--backup", &id, "--target-lsn", &m1.lsn, "--target-action", "promote"]).expect(0);
    if major <= 16 {
        let verify = verifybackup(&dir, &[]);
        assert_eq!(verify.code, 0, "pg_verifybackup: {}{}", verify.stdout, verify.stderr);
    } else {
        eprintln!(
            "PostgreSQL {major}: pg_verifybackup 15 cannot read its manifest (version 2); \
             checking it here instead (its own SHA-256, every file's size and CRC-32C)"
        );
        let files = verify_manifest(&dir);
        assert!(files > 500, "only {files} files in the manifest");
    }
    let c = start_restored(&bin, &scratch, &dir, Action::Promote);
    assert_eq!(contents(&c, false), m1.contents);
    assert!(c.log_text().contains("recovery stopping after WAL location (LSN)"), "{}", c.log_text());
}

/// CRC-32C (Castagnoli), as PostgreSQL computes it for backup manifests.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// What `pg_verifybackup -n` checks, for manifests it cannot read: the manifest's own SHA-256,
/// then every file it lists (except those pg_verifybackup ignores by default) exists with the
/// listed size and checksum (CRC-32C or SHA-256), and no other file is there. Returns the
/// number of files listed.
fn verify_manifest(dir: &Path) -> usize {
    use sha2::Digest;
    const IGNORED: [&str; 5] =
        ["backup_manifest", "pg_wal", "postgresql.auto.conf", "recovery.signal", "standby.signal"];
    let ignored = |p: &str| IGNORED.iter().any(|i| p == *i || p.starts_with(&format!("{i}/")));
    let manifest = std::fs::read(dir.join("backup_manifest")).unwrap();
    let text = std::str::from_utf8(&manifest).unwrap();
    let at = text.rfind("\"Manifest-Checksum\"").expect("a Manifest-Checksum line");
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&manifest[..at])),
        json["Manifest-Checksum"].as_str().unwrap(),
        "the manifest's own checksum"
    );
    let mut listed = std::collections::BTreeSet::new();
    for f in json["Files"].as_array().unwrap() {
        let path = f["Path"].as_str().expect("plain UTF-8 paths in a test cluster");
        listed.insert(dir.join(path));
        if ignored(path) {
            continue;
        }
        let bytes =
            std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{path} listed in the manifest: {e}"));
        assert_eq!(bytes.len() as u64, f["Size"].as_u64().unwrap(), "size of {path}");
        let want = f["Checksum"].as_str().unwrap_or_default();
        match f["Checksum-Algorithm"].as_str() {
            Some("CRC32C") => {
                assert_eq!(hex::encode(crc32c(&bytes).to_le_bytes()), want, "CRC-32C of {path}")
            }
            Some("SHA256") => {
                assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), want, "SHA-256 of {path}")
            }
            other => panic!("{path}: checksum algorithm {other:?}"),
        }
    }
    for (p, _) in tree(dir) {
        let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        if p.is_file() && !ignored(&rel) {
            assert!(listed.contains(&p), "{rel} is on disk but not in the manifest");
        }
    }
    listed.len()
}

#[test]
fn pg_restore_v13() {
    restore_version(13);
}

#[test]
fn pg_restore_v14() {
    restore_version(14);
}

#[test]
fn pg_restore_v16() {
    restore_version(16);
}

#[test]
fn pg_restore_v17() {
    restore_version(17);
}

#[test]
fn pg_restore_v18() {
    restore_version(18);
}

/// Refusals (exit 2) and unverifiable parts (exit 3) with the built binary: one clear error
/// line each, the target directory left as it was found, no recovery.signal, and the
/// repository unchanged by restore.
#[test]
fn pg_restore_refusals_and_corrupt_parts() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let key = keygen(&scratch, "walvault.key");
    let cfg = repo.config(
        &scratch,
        "walvault.toml",
        &format!("{}part_size = \"1MiB\"\n", extra("zstd", Some(&key))),
    );
    let mut primary = Cluster::init(&scratch, "primary", &bin, &[]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    primary.sql("create table t (i int primary key, v text)");
    primary.sql("insert into t select g, md5(g::text) from generate_series(1, 20000) g");
    let id = base_backup(&cfg, &primary);
    let m = step(&primary, 1, false);
    step(&primary, 2, false);
    archive_everything(&primary);
    primary.stop();
    let parts = repo.part_keys(&id);
    assert!(parts.len() >= 3);
    let dir = scratch.path().join("restored");
    let one_error = |run: &Run| {
        assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
        assert!(!dir.exists(), "the target directory was left behind");
    };
    let before = repo.listing();

    // Usage and configuration: 2.
    let busy = scratch.subdir("busy");
    std::fs::write(busy.join("PG_VERSION"), "15\n").unwrap();
    restore(&cfg, &busy, &[]).expect(2).says(&["is not empty"]);
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    for (args, says) in [
        (vec!["--target-lsn", "0/1", "--target-name", "x"], "cannot be used with"),
        (vec!["--target-action", "promote"], "--target-"),
        (vec!["--target-time", "2026-11-23 10:00:00"], "has no UTC offset"),
        (vec!["--target-lsn", "16B3748"], "is not an LSN"),
        (vec!["--backup", &id, "--target-lsn", "0/1"], "is before backup"),
        (vec!["--target-lsn", "0/1"], "no backup finished before"),
        (vec!["--backup", "20200101T000000Z"], "is not in the repository"),
        (vec!["--tablespace-map", "99=/x"], "has no tablespace 99"),
    ] {
        let run = restore(&cfg, &dir, &args);
        run.expect(2).says(&[says]);
        one_error(&run);
    }
    // The backup is encrypted: without the key, 2, before anything is downloaded.
    let keyless = repo.config(&scratch, "keyless.toml", "");
    let run = restore(&keyless, &dir, &[]);
    run.expect(2).says(&["is encrypted with key", "configured: none"]);
    one_error(&run);
    assert_eq!(repo.listing(), before, "restore changed the repository");

    // A corrupt part: 3, named, and nothing left.
    let original = repo.get(&parts[1]);
    let mut corrupt = original.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x40;
    repo.overwrite(&parts[1], corrupt);
    let run = restore(&cfg, &dir, &[]);
    run.expect(3).says(&[&parts[1], "failed authentication"]);
    one_error(&run);
    // Another part's (valid) object in its place: 3.
    repo.overwrite(&parts[1], repo.get(&parts[2]));
    let run = restore(&cfg, &dir, &[]);
    run.expect(3).says(&[&parts[1], "the backup's descriptor says"]);
    one_error(&run);
    repo.overwrite(&parts[1], original);
    assert_eq!(repo.listing(), before, "the part was put back byte for byte");

    // And with everything in place, the same repository restores and recovers.
    restore(&cfg, &dir, &["--target-lsn", &m.lsn, "--target-action", "promote"]).expect(0);
    assert!(dir.join("recovery.signal").exists());
    let c = start_restored(&bin, &scratch, &dir, Action::Promote);
    assert_eq!(contents(&c, false), m.contents);
    assert_eq!(repo.listing(), before, "restore changed the repository");
}

/// SIGTERM in the middle of a restore (parts arriving slowly through a proxy that adds a round
/// trip to every request): exit 1, and the target directory is gone.
#[test]
fn pg_restore_interrupted_leaves_nothing() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let program = crate::require_proxy!();
    let server = require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg =
        repo.config(&scratch, "walvault.toml", &format!("{}part_size = \"1MiB\"\n", extra("lz4", None)));
    let mut primary = Cluster::init(&scratch, "primary", &bin, &[]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    Run::of(primary.client("pgbench").args(["-i", "-s", "2", "-q", "postgres"])).expect(0);
    base_backup(&cfg, &primary);
    primary.stop();
    let before = repo.listing();

    let upstream = server.endpoint.trim_start_matches("http://");
    let proxy = crate::support::proxy::Proxy::start(program, upstream, 200);
    let slow_cfg =
        std::fs::read_to_string(&cfg).unwrap().replace(&server.endpoint, &format!("http://{}", proxy.addr));
    let slow = scratch.file("slow.toml", slow_cfg);
    let dir = scratch.path().join("restored");
    let child = Command::new(&bins().walvault)
        .args(["restore", "--concurrency", "1", "--config"])
        .arg(&slow)
        .arg("--target-dir")
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dir.join("global").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "the restore did not start writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    crate::support::logs::output(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!dir.exists(), "the target directory was left behind");
    assert_eq!(repo.listing(), before);
}
