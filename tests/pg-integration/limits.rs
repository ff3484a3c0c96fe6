//! Concurrency and limits (issue 14.6), against real PostgreSQL 15 and S3 (moto):
//! - a cluster made with `initdb --wal-segsize=1024` archives its 1 GiB segments through
//!   `wal-push` and recovers them through `wal-fetch`, each call's peak RSS measured by
//!   `/usr/bin/time` inside archive_command and restore_command; and a 1 GiB segment of
//!   incompressible-ish bytes pushed and fetched with their peak RSS, both under 64 MB
//!   (wal-fetch streams; wal-push streams it through a temporary object under `tmp/` and a
//!   create-only copy, `wal_push::large`, and leaves no `tmp/` object behind);
//! - many concurrent `wal-fetch` calls against one prefetch spool: every call gets the right
//!   bytes, nothing half-written is served or left behind;
//! - `delete` in a loop racing `wal-push` (a primary under load) and a running `base-backup`:
//!   the backup being taken and the WAL after it survive, and restoring it recovers every row;
//!   a folder whose id is years old but which the store wrote just now (a backup running longer
//!   than `older_than`) is not taken for leftovers;
//! - a base backup paused (SIGSTOP) for longer than `older_than` after its first part, whose
//!   folder `delete` removes as leftovers meanwhile: resumed, it finds its parts gone, fails
//!   (exit 3, saying why) and keeps no descriptor (the handshake of `repo::seal`).
//!   (Two `wal-push` of one segment at once: `wal_commands::concurrent_pushes`.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::require_s3;
use crate::skip_or_fail;
use crate::support::backups::{
    Action, archive_everything, archiving, base_backup, configure, restore, start_restored, walvault,
};
use crate::support::datadir::{DataDir, SYSID, extra, keygen};
use crate::support::pg::{Cluster, pg_bin};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, bins, fake_segment};

const GIB: u32 = 1 << 30;

/// Runs `program args` under `/usr/bin/time` (a small process forks it: a peak taken with
/// wait4 from this test would count the memory a fork shares with the test until exec) and
/// returns the exit code and the peak RSS in KiB.
fn with_peak_rss(dir: &Path, program: &Path, args: &[&std::ffi::OsStr], out: &Path) -> (i32, u64) {
    let _ = std::fs::remove_file(out);
    let status = Command::new("/usr/bin/time")
        .current_dir(dir)
        .arg("-o")
        .arg(out)
        .args(["-f", "%M"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    (status.code().unwrap_or(-1), peaks(out).last().copied().unwrap_or(0))
}

/// Peak RSS figures `/usr/bin/time -a -o FILE -f %M` appended, in KiB.
fn peaks(file: &Path) -> Vec<u64> {
    std::fs::read_to_string(file).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn pg_limits_one_gib_segments() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let server = require_s3!();
    if !Path::new("/usr/bin/time").exists() {
        skip_or_fail!("/usr/bin/time (Debian package time) is not installed");
    }
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let key = keygen(&scratch, "walvault.key");
    // Two segments prefetched at most: each is 1 GiB on disk.
    let cfg = repo.config(&scratch, "walvault.toml", &format!("{}prefetch = 2\n", extra("zstd", Some(&key))));

    // A synthetic 1 GiB segment, a seventh of each MiB random: wal-push and wal-fetch alone.
    let data = DataDir::new(&scratch);
    let name = "000000010000000000000003";
    let mut seg = fake_segment(name, SYSID, GIB, 3);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for (i, b) in seg.iter_mut().enumerate().skip(4096) {
        if i % (1 << 20) > 890_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    let own = Repo::s3(&server);
    let own_cfg = own.config(&scratch, "own.toml", &extra("zstd", Some(&key)));
    let rel = data.wal(name, &seg);
    let rss = scratch.path().join("rss");
    let (code, push_kib) = with_peak_rss(
        &data.path,
        &bins().push,
        &["--config".as_ref(), own_cfg.as_os_str(), rel.as_ref()],
        &rss,
    );
    assert_eq!(code, 0, "wal-push of a 1 GiB segment");
    let stored = own.listing().iter().find(|(k, _)| k.ends_with(name)).map(|(_, (len, _))| *len).unwrap();
    let dest = data.path.join("pg_wal/RECOVERYXLOG");
    let (code, fetch_kib) = with_peak_rss(
        &data.path,
        &bins().fetch,
        &["--config".as_ref(), own_cfg.as_os_str(), name.as_ref(), "pg_wal/RECOVERYXLOG".as_ref()],
        &rss,
    );
    assert_eq!(code, 0, "wal-fetch of a 1 GiB segment");
    assert!(std::fs::read(&dest).unwrap() == seg, "the fetched 1 GiB segment differs");
    drop(seg);
    std::fs::remove_file(&dest).unwrap();
    eprintln!(
        "1 GiB segment, {} MB stored: wal-push peak RSS {} MB, wal-fetch {} MB",
        stored >> 20,
        push_kib >> 10,
        fetch_kib >> 10
    );
    assert!(fetch_kib < 64 << 10, "wal-fetch of a 1 GiB segment peaked at {fetch_kib} KiB");
    // Streamed through a temporary object: a few parts in flight, not the encoded object.
    assert!(
        push_kib < 64 << 10,
        "wal-push of a 1 GiB segment peaked at {push_kib} KiB ({stored} bytes stored)"
    );
    let temporaries: Vec<String> = own.keys().into_iter().filter(|k| k.starts_with("tmp/")).collect();
    assert!(temporaries.is_empty(), "wal-push left temporary objects: {temporaries:?}");

    // A real cluster with 1 GiB segments: archive, base backup, recover through wal-fetch.
    let push_rss = scratch.file("push-rss", "");
    let fetch_rss = scratch.file("fetch-rss", "");
    let mut primary = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize=1024"]);
    let mut settings = archiving(&cfg);
    settings.retain(|(k, _)| k != "archive_command");
    settings.push((
        "archive_command".into(),
        format!(
            "/usr/bin/time -a -o {} -f %M {} --config {} %p",
            push_rss.display(),
            bins().push.display(),
            cfg.display()
        ),
    ));
    configure(&primary, &settings);
    primary.configure(&[("min_wal_size", "2GB"), ("max_wal_size", "4GB")]);
    primary.start();
    primary.sql("create table t (i int, v text)");
    let id = base_backup(&cfg, &primary);
    primary.sql("insert into t select g, md5(g::text) from generate_series(1, 300000) g");
    let rows = primary.sql("select count(*) from t");
    archive_everything(&primary);
    primary.stop();
    let dir = scratch.path().join("restored");
    restore(&cfg, &dir, &["--backup", &id]).expect(0);
    // restore_command as walvault wrote it, under /usr/bin/time.
    let conf = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
    let line = conf.lines().rev().find(|l| l.starts_with("restore_command")).unwrap().to_string();
    let command = line.split_once('=').unwrap().1.trim().trim_matches('\'').replace("''", "'");
    let c =
        Cluster::at(&bin, dir.clone(), scratch.subdir("restored-sock"), scratch.path().join("restored.log"));
    c.configure(&[(
        "restore_command",
        &format!("/usr/bin/time -a -o {} -f %M {command}", fetch_rss.display()),
    )]);
    drop(c);
    let restored = start_restored(&bin, &scratch, &dir, Action::Promote);
    assert_eq!(restored.sql("select count(*) from t"), rows);
    drop(restored);
    let (push, fetch) = (peaks(&push_rss), peaks(&fetch_rss));
    eprintln!(
        "cluster with 1 GiB segments: {} archive calls, peak RSS max {} MB; {} restore calls, max {} MB",
        push.len(),
        push.iter().max().unwrap_or(&0) >> 10,
        fetch.len(),
        fetch.iter().max().unwrap_or(&0) >> 10
    );
    assert!(!push.is_empty() && !fetch.is_empty(), "no call was measured: {push:?} {fetch:?}");
    assert!(
        push.iter().all(|k| *k < 64 << 10),
        "an archive call of a 1 GiB segment peaked over 64 MB: {push:?}"
    );
    assert!(
        fetch.iter().all(|k| *k < 64 << 10),
        "a restore call of a 1 GiB segment peaked over 64 MB: {fetch:?}"
    );
}

#[test]
fn many_concurrent_fetches_share_one_spool() {
    let server = require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg = repo.config(
        &scratch,
        "c.toml",
        &format!("{}prefetch = 8\nupload_concurrency = 1\n", extra("lz4", None)),
    );
    let data = DataDir::new(&scratch);
    let names: Vec<String> = (1..=12).map(|i| format!("0000000100000000{i:08X}")).collect();
    let mut segs = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let bytes = fake_segment(n, SYSID, 1 << 20, i as u64 + 40);
        data.push(&cfg, &data.wal(n, &bytes)).expect(0);
        segs.push(bytes);
    }
    for n in &names {
        std::fs::remove_file(data.path.join("pg_wal").join(n)).unwrap();
    }
    // 36 calls at once: each segment three times, each into its own destination.
    let calls: Vec<_> = (0..36)
        .map(|i| {
            let n = &names[i % names.len()];
            let dest = format!("pg_wal/dest-{i}");
            let child = Command::new(&bins().fetch)
                .current_dir(&data.path)
                .arg("--config")
                .arg(&cfg)
                .args([n.as_str(), &dest])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, child)
        })
        .collect();
    for (i, child) in calls {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "call {i}: {}", String::from_utf8_lossy(&out.stderr));
        let got = std::fs::read(data.path.join(format!("pg_wal/dest-{i}"))).unwrap();
        assert!(got == segs[i % names.len()], "call {i} got other bytes");
    }
    // When the prefetcher leaves, nothing half-written is left in the spool.
    let spool = data.path.join("pg_wal/.walvault");
    let start = std::time::Instant::now();
    loop {
        let leftovers: Vec<String> = walk(&spool).into_iter().filter(|p| p.ends_with(".part")).collect();
        if leftovers.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "half-written spool files left: {leftovers:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("36 concurrent wal-fetch calls for 12 segments through one spool: all bytes right");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn pg_delete_racing_wal_push_and_base_backup() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let server = require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg = repo.config(
        &scratch,
        "walvault.toml",
        &format!("{}part_size = \"1MiB\"\nupload_concurrency = 4\n", extra("zstd", None)),
    );
    let mut primary = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize=1"]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    // Big enough that the second backup runs for seconds while delete plans again and again.
    Run::of(primary.client("pgbench").args(["-i", "-s", "10", "-q", "postgres"])).expect(0);
    primary.sql("create table ledger (n int)");
    let first = base_backup(&cfg, &primary);

    // delete --confirm (keep one full backup; a folder without a descriptor is leftovers once
    // nothing was written to it for 30 s) in a loop, while load archives.
    let stop = Arc::new(AtomicBool::new(false));
    let deleter = {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let run = Run::of(walvault(&cfg).args([
                    "delete",
                    "--retain-full",
                    "1",
                    "--older-than",
                    "30s",
                    "--confirm",
                ]));
                assert!(run.code == 0, "delete failed while racing: {}", run.stderr);
                runs += 1;
            }
            runs
        })
    };
    let mut pgbench = primary
        .client("pgbench")
        .args(["-n", "-c", "2", "-T", "12", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for n in 0..50 {
        primary.sql(&format!("insert into ledger values ({n})"));
    }
    // The second backup is taken while delete runs; more commits follow it.
    let second = base_backup(&cfg, &primary);
    for n in 50..100 {
        primary.sql(&format!("insert into ledger values ({n})"));
    }
    assert!(pgbench.wait().unwrap().success());
    archive_everything(&primary);
    stop.store(true, Ordering::Relaxed);
    let deletes = deleter.join().unwrap();
    primary.stop();
    let keys = repo.keys();
    assert!(keys.contains(&format!("backups/{second}.json")), "the backup taken during delete is gone");
    assert!(!keys.contains(&format!("backups/{first}.json")), "delete never removed the older backup");
    eprintln!("{deletes} delete runs raced wal-push and base-backup");

    let dir = scratch.path().join("restored");
    restore(&cfg, &dir, &["--backup", &second]).expect(0);
    let c = start_restored(&bin, &scratch, &dir, Action::Promote);
    assert_eq!(c.sql("select count(*) from ledger"), "100");
    drop(c);
    let verify = Run::of(walvault(&cfg).args(["verify", "--full", "--wal"]));
    assert_eq!(verify.code, 0, "verify after the race: {}{}", verify.stdout, verify.stderr);

    // A backup running longer than older_than: its id (its start) is years old, but the store
    // wrote its folder just now, so it may be a backup being taken and is left alone.
    let part = "backups/20200101T000000Z/base.tar.00000";
    repo.overwrite(part, b"a part of a backup still being taken".to_vec());
    let run =
        Run::of(walvault(&cfg).args(["delete", "--retain-full", "1", "--older-than", "1h", "--confirm"]));
    run.expect(0);
    assert!(
        repo.keys().contains(&part.to_string()),
        "delete removed a folder written to just now: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("last written"),
        "the plan does not say why it keeps the folder: {}",
        run.stdout
    );
    repo.delete(part);
}

#[test]
fn pg_base_backup_whose_folder_delete_removed_fails_and_keeps_no_descriptor() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let server = require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg =
        repo.config(&scratch, "walvault.toml", &format!("{}part_size = \"1MiB\"\n", extra("zstd", None)));
    let mut primary = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize=1"]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    Run::of(primary.client("pgbench").args(["-i", "-s", "10", "-q", "postgres"])).expect(0);
    let conninfo = format!("host={} port={} user=postgres", primary.sock.display(), primary.port);
    let child = walvault(&cfg)
        .args(["base-backup", "--fast-checkpoint", "-d", &conninfo])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Its first part stored: pause it there, a backup that writes nothing for a while.
    let first_part =
        || repo.keys().into_iter().find(|k| k.starts_with("backups/") && k.contains("/base.tar."));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let part = loop {
        if let Some(k) = first_part() {
            break k;
        }
        assert!(std::time::Instant::now() < deadline, "no part of the backup after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signals to the child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let id = part.trim_start_matches("backups/").split('/').next().unwrap().to_string();
    // Nothing written to its folder for over 1 s (the store's clock has whole seconds).
    std::thread::sleep(Duration::from_millis(2500));
    let delete =
        Run::of(walvault(&cfg).args(["delete", "--retain-full", "1", "--older-than", "1s", "--confirm"]));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    delete.expect(0);
    assert!(
        delete.stdout.contains(&id) && delete.stdout.contains("leftovers"),
        "delete did not take the paused backup for leftovers: {}",
        delete.stdout
    );
    assert!(!repo.keys().contains(&part), "delete left the paused backup's first part");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "base-backup whose parts were deleted: {stderr}");
    assert!(
        stderr.contains(&format!("backup {id} is not whole")) && stderr.contains("older_than"),
        "base-backup does not say why it failed: {stderr}"
    );
    let left: Vec<String> = repo.keys().into_iter().filter(|k| k.contains(&id)).collect();
    assert!(left.is_empty(), "the failed backup left {left:?}");
    let list = Run::of(walvault(&cfg).args(["list", "--json"]));
    list.expect(0);
    assert!(!list.stdout.contains(&id), "list shows the failed backup: {}", list.stdout);
    primary.stop();
}
