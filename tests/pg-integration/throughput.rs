//! Look-ahead push and prefetching fetch, on synthetic segments in a data directory laid out as
//! PostgreSQL's (`pg_wal/`, `pg_wal/archive_status/*.ready`): a queue drains in fewer uploading
//! calls than segments, a kill at any moment never leaves a record of a segment that is not
//! durably archived, untrustworthy records are ignored, and recovery calls are served from the
//! prefetch spool, each segment downloaded once.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::on_backends;
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra, keygen};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch, bins, fake_segment};

/// Segment names 1..=n on timeline 1 (1 MiB segments: 4096 per log).
fn names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("0000000100000000{i:08X}")).collect()
}

/// Writes segments and marks them ready, as PostgreSQL does before calling archive_command.
fn queue(data: &DataDir, names: &[String], seg_size: u32) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(data.path.join("pg_wal/archive_status")).unwrap();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let bytes = fake_segment(n, SYSID, seg_size, i as u64 + 100);
            data.wal(n, &bytes);
            std::fs::write(data.path.join(format!("pg_wal/archive_status/{n}.ready")), "").unwrap();
            (n.clone(), bytes)
        })
        .collect()
}

/// Writes one more segment (the 1 MiB kind) and marks it ready.
fn queue_one(data: &DataDir, name: &str) {
    data.wal(name, &fake_segment(name, SYSID, SEG_1M, 7));
    std::fs::write(data.path.join(format!("pg_wal/archive_status/{name}.ready")), "").unwrap();
}

/// Marks `name` done, as PostgreSQL does after archive_command exits 0.
fn mark_done(data: &DataDir, name: &str) {
    let st = data.path.join("pg_wal/archive_status");
    std::fs::rename(st.join(format!("{name}.ready")), st.join(format!("{name}.done"))).unwrap();
}

fn records(data: &DataDir) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data.path.join("pg_wal/.walvault/pushed"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits until no background pusher runs for `data`'s pg_wal (it exits 2 s after its last upload).
fn pusher_idle(data: &DataDir) {
    let lock = data.path.join("pg_wal/.walvault/pusher.lock");
    let start = std::time::Instant::now();
    while walvault::state::daemon::is_locked(&lock) {
        assert!(start.elapsed() < Duration::from_secs(60), "the background pusher never went idle");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The background pusher's log.
fn pusher_log(data: &DataDir) -> String {
    std::fs::read_to_string(data.path.join("pg_wal/.walvault/pusher.log")).unwrap_or_default()
}

/// Kills every background pusher working on `data` (they run in their own session).
fn kill_pushers(data: &DataDir) {
    let Ok(procs) = std::fs::read_dir("/proc") else { return };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("--pusher-daemon") && cmdline.contains(&*data.path.to_string_lossy()) {
            // SAFETY: sending a signal to a process id.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn segment_objects(repo: &Repo) -> usize {
    repo.listing().keys().filter(|k| k.starts_with("wal/")).count()
}

fn lookahead_drains_a_queue(backend: Backend) {
    let scratch = Scratch::new();
    let repo = crate::repo_on!(backend, &scratch);
    let cfg = repo.config(&scratch, "c.toml", &format!("{}upload_concurrency = 4\n", extra("zstd", None)));
    let data = DataDir::new(&scratch);
    let segs = queue(&data, &names(20), SEG_1M);
    // The archiver's loop: one call per ready file, oldest first.
    let (mut uploading, mut confirmed) = (0, 0);
    for name in segs.keys() {
        let run = data.push(&cfg, &format!("pg_wal/{name}"));
        run.expect(0);
        if run.stderr.contains(&format!("archived {name} (")) {
            uploading += 1;
        }
        if run
            .stderr
            .contains(&format!("{name} was pushed ahead; the local file matches the upload (by XXH3-128"))
        {
            confirmed += 1;
        }
        mark_done(&data, name);
    }
    // The first call starts the background pusher, which pushes the rest while the calls confirm.
    let log = pusher_log(&data);
    let ahead = segs.keys().filter(|n| log.contains(&format!("pushed {n} ahead"))).count();
    eprintln!("{uploading} calls uploaded, {confirmed} confirmed, {ahead} pushed by the background pusher");
    assert!(uploading * 2 < segs.len(), "{uploading} of {} calls uploaded their own segment", segs.len());
    assert_eq!(uploading + confirmed, segs.len());
    assert_eq!(ahead, confirmed, "every confirmed segment was pushed by the pusher:\n{log}");
    assert_eq!(segment_objects(&repo), 20);
    pusher_idle(&data);
    assert!(log_says_exited(&data), "{}", pusher_log(&data));
    // Records are kept until PostgreSQL marks their segment done; the next call drops them.
    let next = names(21).pop().unwrap();
    queue_one(&data, &next);
    data.push(&cfg, &format!("pg_wal/{next}")).expect(0);
    assert_eq!(records(&data), [next], "records of archived segments left");
    for (name, bytes) in &segs {
        let (run, got) = data.fetch(&cfg, name);
        run.expect(0);
        assert!(got.as_deref() == Some(&bytes[..]), "{name} differs");
    }
}

on_backends!(lookahead_drains_a_queue, lookahead_drains_a_queue, [file, s3, azure]);

#[test]
fn concurrency_one_pushes_only_what_is_asked() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &format!("{}upload_concurrency = 1\n", extra("lz4", None)));
    let data = DataDir::new(&scratch);
    let segs = queue(&data, &names(5), SEG_1M);
    data.push(&cfg, &format!("pg_wal/{}", segs.keys().next().unwrap())).expect(0);
    assert_eq!(segment_objects(&repo), 1);
    assert!(records(&data).is_empty());
}

#[test]
fn untrustworthy_records_are_not_trusted() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let other = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let cfg_other = other.config(&scratch, "o.toml", &extra("zstd", None));
    let data = DataDir::new(&scratch);
    let segs = queue(&data, &names(6), SEG_1M);
    let n: Vec<&String> = segs.keys().collect();
    data.push(&cfg, &format!("pg_wal/{}", n[0])).expect(0);
    pusher_idle(&data);
    // Kept until PostgreSQL marks each done: the one the call pushed, and those pushed ahead.
    assert_eq!(records(&data), n.iter().map(|s| s.to_string()).collect::<Vec<_>>());

    // One byte changed in place, in the middle of a segment pushed ahead (same size, same
    // inode): never confirmed; pushed again, and refused since the archived copy differs.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(data.path.join("pg_wal").join(n[4])).unwrap();
        let at = (SEG_1M / 2 + 17) as u64;
        let old = segs[n[4]][at as usize];
        f.write_at(&[old ^ 0x01], at).unwrap();
    }
    data.push(&cfg, &format!("pg_wal/{}", n[4]))
        .expect(3)
        .says(&["the local file has changed since", "already archived with different contents"]);

    // A record of an earlier version (no XXH3-128) is confirmed by its SHA-256.
    let rec_path = data.path.join("pg_wal/.walvault/pushed").join(n[5]);
    let mut rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec_path).unwrap()).unwrap();
    assert!(rec.as_object_mut().unwrap().remove("xxh3").is_some(), "records carry the quick hash: {rec}");
    std::fs::write(&rec_path, serde_json::to_vec(&rec).unwrap()).unwrap();
    data.push(&cfg, &format!("pg_wal/{}", n[5]))
        .expect(0)
        .says(&[&format!("{} was pushed ahead; the local file matches the upload (by SHA-256", n[5])]);

    // The archive moved to another repository: records of the old one mean nothing there.
    let run = data.push(&cfg_other, &format!("pg_wal/{}", n[1]));
    run.expect(0).says(&["it was for another repository", &format!("archived {} (", n[1])]);

    // The local file changed after it was pushed ahead: pushed again, and since the archived
    // copy differs, refused rather than confirmed.
    let changed = fake_segment(n[2], SYSID, SEG_1M, 999);
    data.wal(n[2], &changed);
    data.push(&cfg, &format!("pg_wal/{}", n[2]))
        .expect(3)
        .says(&["the local file has changed since", "already archived with different contents"]);

    // A record cut short (a crash while writing it) is ignored; the object exists, so the push
    // verifies it and succeeds without writing.
    std::fs::write(data.path.join("pg_wal/.walvault/pushed").join(n[3]), b"{\"name\":").unwrap();
    let before = repo.listing();
    data.push(&cfg, &format!("pg_wal/{}", n[3])).expect(0).says(&["already archived with the same contents"]);
    pusher_idle(&data);
    assert_eq!(repo.listing(), before);
}

/// Kills wal-push and its background pusher at several moments of a drain; after each, every
/// record must name a segment that is in the repository with exactly the local bytes, and the
/// archiver's loop must then complete (taking over the dead pusher's claims) with every segment
/// archived intact.
fn kill_anywhere(backend: Backend) {
    let scratch = Scratch::new();
    let key = keygen(&scratch, "key");
    let mut partial = false;
    for (round, delay_ms) in [5u64, 40, 120, 300, 700].into_iter().enumerate() {
        let repo = crate::repo_on!(backend, &scratch);
        let cfg = repo.config(
            &scratch,
            &format!("c{round}.toml"),
            &format!("{}upload_concurrency = 8\nprefetch = 0\n", extra("zstd", Some(&key))),
        );
        let data = DataDir::new(&scratch);
        let segs = queue(&data, &names(24), 4 << 20);
        let first = segs.keys().next().unwrap().clone();
        let mut child = data
            .push_cmd(&cfg, &[&format!("pg_wal/{first}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // A pusher forked just before the kill may still be exec'ing: look twice.
        kill_pushers(&data);
        std::thread::sleep(Duration::from_millis(30));
        kill_pushers(&data);
        pusher_idle(&data);

        let recorded = records(&data);
        eprintln!("round {round}: killed after {delay_ms} ms with {} of 24 records", recorded.len());
        partial |= !recorded.is_empty() && recorded.len() < segs.len();
        for name in recorded {
            let (run, got) = data.fetch(&cfg, &name);
            assert_eq!(
                run.code, 0,
                "round {round} ({delay_ms} ms): record of {name} but it is not archived: {}",
                run.stderr
            );
            assert!(
                got.as_deref() == Some(&segs[&name][..]),
                "round {round}: {name} archived with other bytes"
            );
        }
        for name in segs.keys() {
            data.push(&cfg, &format!("pg_wal/{name}")).expect(0);
            mark_done(&data, name);
        }
        for (name, bytes) in &segs {
            let (run, got) = data.fetch(&cfg, name);
            run.expect(0);
            assert!(got.as_deref() == Some(&bytes[..]), "round {round}: {name} differs");
        }
        pusher_idle(&data);
    }
    assert!(partial, "no kill landed while look-ahead uploads were under way");
}

/// The pusher's exit line, written when it leaves on its own.
fn log_says_exited(data: &DataDir) -> bool {
    pusher_log(data).contains("background pusher idle after pushing")
}

#[test]
fn a_second_pusher_leaves_at_once() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let data = DataDir::new(&scratch);
    queue(&data, &names(3), SEG_1M);
    let held =
        walvault::state::daemon::try_lock(&data.path.join("pg_wal/.walvault/pusher.lock")).unwrap().unwrap();
    let run = Run::of(&mut data.push_cmd(&cfg, &["--pusher-daemon", "pg_wal"]));
    run.expect(0);
    assert_eq!(segment_objects(&repo), 0, "a second pusher uploaded: {}", run.stderr);
    drop(held);
    // Alone, it pushes every ready file, records each, and leaves when idle.
    let run = Run::of(&mut data.push_cmd(&cfg, &["--pusher-daemon", "pg_wal"]));
    run.expect(0).says(&["background pusher idle after pushing 3 files"]);
    assert_eq!(segment_objects(&repo), 3);
    assert_eq!(records(&data), names(3));
}

/// `walvault wal-push` (the subcommand) starts its background pusher as `walvault wal-push …`.
#[test]
fn the_walvault_binary_starts_its_pusher_too() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("lz4", None));
    let data = DataDir::new(&scratch);
    let segs = queue(&data, &names(5), SEG_1M);
    let first = segs.keys().next().unwrap();
    Run::of(
        Command::new(&bins().walvault)
            .current_dir(&data.path)
            .args(["wal-push", "--config"])
            .arg(&cfg)
            .arg(format!("pg_wal/{first}")),
    )
    .expect(0);
    let start = std::time::Instant::now();
    while !log_says_exited(&data) {
        assert!(start.elapsed() < Duration::from_secs(30), "no pusher ran: {}", pusher_log(&data));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pusher_log(&data).contains("background pusher idle after pushing 4 files"),
        "{}",
        pusher_log(&data)
    );
    assert_eq!(segment_objects(&repo), 5);
}

/// A call for a segment someone else has claimed (the pusher, uploading it) waits for the claim
/// instead of uploading the same segment alongside; once released without a record, it pushes it.
#[test]
fn a_call_waits_for_a_claimed_segment() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let data = DataDir::new(&scratch);
    let segs = queue(&data, &names(1), SEG_1M);
    let name = segs.keys().next().unwrap().clone();
    let claims = walvault::state::claims::Claims::in_state_dir(&data.path.join("pg_wal/.walvault"));
    let held = claims.try_claim(&name.parse().unwrap()).unwrap().expect("free");
    let mut child = data
        .push_cmd(&cfg, &[&format!("pg_wal/{name}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "wal-push did not wait for the claim");
    assert_eq!(segment_objects(&repo), 0);
    drop(held);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(segment_objects(&repo), 1);
}

on_backends!(kill_anywhere, kill_anywhere, [file, s3]);

/// The segment name at the start of `s` when it is followed by " (" (as in walvault's
/// "restored NAME (N bytes)" and "prefetched NAME (N bytes)" lines).
fn segment_at(s: &str) -> Option<&str> {
    let name = s.get(..24)?;
    (name.bytes().all(|b| b.is_ascii_hexdigit()) && s[24..].starts_with(" (")).then_some(name)
}

/// Reads the prefetcher's log and every call's stderr: how often each segment was downloaded.
pub fn downloads(spool_log: &str, calls: &[String]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for line in spool_log.lines() {
        if let Some(name) = line.split("prefetched ").nth(1).and_then(segment_at) {
            *count.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    for stderr in calls {
        for line in stderr.lines() {
            // A direct download: "restored NAME (N bytes) in" (not "from the prefetch spool").
            if let Some(name) = line.split("restored ").nth(1).and_then(segment_at)
                && !line.contains("from the prefetch spool")
            {
                *count.entry(name.to_string()).or_insert(0) += 1;
            }
        }
    }
    count
}

fn prefetch_serves_recovery(backend: Backend) {
    let scratch = Scratch::new();
    let repo = crate::repo_on!(backend, &scratch);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "c.toml", &format!("{}prefetch = 6\n", extra("lz4", Some(&key))));
    let source = DataDir::new(&scratch);
    let segs = queue(&source, &names(20), SEG_1M);
    for name in segs.keys() {
        source.push(&cfg, &format!("pg_wal/{name}")).expect(0);
        mark_done(&source, name);
    }
    // Recovery's loop: ask for each segment in turn, then for the one after the last.
    let target = DataDir::new(&scratch);
    let mut calls = Vec::new();
    let mut from_spool = 0;
    for (name, bytes) in &segs {
        let (run, got) = target.fetch(&cfg, name);
        run.expect(0);
        assert!(got.as_deref() == Some(&bytes[..]), "{name} differs");
        if run.stderr.contains("from the prefetch spool") {
            from_spool += 1;
            // The prefetcher records the XXH3-128 of what it wrote; the call compares that.
            assert!(run.stderr.contains("(re-checked by XXH3-128)"), "{}", run.stderr);
        }
        calls.push(run.stderr);
        // Replay takes a moment; let the prefetcher work as it would during recovery.
        std::thread::sleep(Duration::from_millis(20));
    }
    let (run, got) = target.fetch(&cfg, "000000010000000000000015");
    run.expect(1);
    assert!(got.is_none());
    assert!(from_spool >= 15, "only {from_spool} of 20 calls were served from the spool");
    let spool = target.path.join("pg_wal/.walvault/prefetch");
    let log = std::fs::read_to_string(spool.join("prefetch.log")).unwrap_or_default();
    let count = downloads(&log, &calls);
    for name in segs.keys() {
        assert_eq!(count.get(name), Some(&1), "{name} downloaded {:?} times\n{log}", count.get(name));
    }
    // Only one prefetcher ever ran for this spool at a time: it holds the lock; a second one
    // started by hand exits at once without touching anything.
    let second = Command::new(&bins().fetch)
        .arg("--config")
        .arg(&cfg)
        .arg("--prefetch-daemon")
        .arg(&spool)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(second.success());
    let (run, _) = target.fetch(&cfg, "000000010000000000000015");
    run.expect(1);
}

on_backends!(prefetch_serves_recovery, prefetch_serves_recovery, [file, s3, azure]);

#[test]
fn prefetch_zero_never_starts_a_prefetcher() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &format!("{}prefetch = 0\n", extra("zstd", None)));
    let data = DataDir::new(&scratch);
    let segs = queue(&data, &names(3), SEG_1M);
    for name in segs.keys() {
        data.push(&cfg, &format!("pg_wal/{name}")).expect(0);
    }
    let target = DataDir::new(&scratch);
    for name in segs.keys() {
        let (run, _) = target.fetch(&cfg, name);
        run.expect(0);
        assert!(!run.stderr.contains("prefetch"));
    }
    assert!(!Path::new(&target.path.join("pg_wal/.walvault/prefetch")).exists());
}
