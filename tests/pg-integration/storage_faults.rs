//! Misbehaving storage (issue 14, point 2): `fault-proxy` in front of moto answers 500 and 503,
//! resets connections, accepts and never answers, stops mid-body, returns short bodies with a
//! 200, or goes down. Every `wal-push` and `wal-fetch` call (the prefetcher's downloads too),
//! every base backup and every restore ends within the configured bound, with the exit code the
//! README documents, and no wrong byte reaches `%p`, the prefetch spool, a restored directory or
//! the repository (checked by decoding every stored object directly, past the proxy). A storage
//! outage while PostgreSQL archives (the proxy refusing connections, and a real moto server
//! killed and started again) makes `wal-push` fail; PostgreSQL keeps the WAL, and once storage
//! is back the backlog drains and the archive has no gap.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use walvault::repo::retry::RetryPolicy;

use crate::support::backups::{archiving, configure, verifybackup, walvault};
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra};
use crate::support::faults::{FaultProxy, PrivateMoto, decode_all, keys_under, names_in, seed};
use crate::support::pg::{Cluster, pg_bin, tail};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, bins, fake_segment};
use crate::{require_fault_proxy, require_s3, skip_or_fail};

/// The storage settings of every test here: a short timeout and two retries.
const TIMEOUT: Duration = Duration::from_secs(2);
const RETRIES: u32 = 2;

fn settings() -> String {
    format!("timeout = \"{}s\"\nretries = {RETRIES}\n", TIMEOUT.as_secs())
}

/// (retries + 1) × timeout + backoff: the longest one storage operation may take.
fn bound() -> Duration {
    RetryPolicy::new(RETRIES, TIMEOUT).bound()
}

/// Process start, the config, the local work around the storage calls: generous, since this is
/// a bound and not a speed assertion.
const SLACK: Duration = Duration::from_secs(10);

/// Every fault mode of the proxy but `down` (tested as an outage).
const MODES: [&str; 7] = ["500", "503", "reset", "hang", "cut", "short-close", "short-length"];

/// Adds a line to a test's report, and shows it at once.
fn note(report: &mut Vec<String>, line: String) {
    eprintln!("{line}");
    report.push(line);
}

/// Runs `cmd`, timing it.
fn timed(cmd: &mut std::process::Command) -> (Run, Duration) {
    let t = Instant::now();
    let run = Run::of(cmd);
    (run, t.elapsed())
}

/// Temporary files wal-fetch leaves in `dir` (there must be none).
fn temp_files(dir: &Path) -> Vec<String> {
    names_in(dir).into_iter().filter(|n| n.contains(".walvault-") || n.ends_with(".tmp")).collect()
}

/// The WAL objects of the repository must be exactly `pushed` (name → bytes): each decodes and
/// verifies to the bytes that were pushed, and nothing else is there.
fn assert_wal_objects(repo: &Repo, pushed: &BTreeMap<String, Vec<u8>>) {
    use sha2::Digest;
    let decoded: BTreeMap<String, (String, u64)> = decode_all(repo)
        .into_iter()
        .filter(|(k, _, _)| k.starts_with("wal/"))
        .map(|(k, sha, n)| (k.rsplit('/').next().unwrap().to_string(), (sha, n)))
        .collect();
    let want: BTreeMap<String, (String, u64)> = pushed
        .iter()
        .map(|(n, b)| (n.clone(), (hex::encode(sha2::Sha256::digest(b)), b.len() as u64)))
        .collect();
    assert_eq!(decoded, want, "the WAL objects in the repository are not exactly what was pushed");
}

#[test]
fn wal_push_and_fetch_end_within_their_bound_under_every_fault() {
    let program = require_fault_proxy!();
    let server = require_s3!();
    let seed = seed("fault-proxy cut points");
    let proxy = FaultProxy::start(program, &server.endpoint, seed);
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg = proxy.config(
        &repo,
        &server.endpoint,
        &scratch,
        "c.toml",
        &format!("{}{}prefetch = 0\n", settings(), extra("zstd", None)),
    );
    let data = DataDir::new(&scratch);
    let pg_wal = data.path.join("pg_wal");
    let mut pushed = BTreeMap::new();
    let mut next = 1u32;
    let mut segment = || {
        let name = format!("0000000100000000000000{next:02X}");
        let bytes = fake_segment(&name, SYSID, SEG_1M, u64::from(next));
        next += 1;
        let rel = data.wal(&name, &bytes);
        (name, rel, bytes)
    };
    // A first segment, pushed cleanly: the repository exists and the identity is cached.
    let (first, first_rel, bytes) = segment();
    data.push(&cfg, &first_rel).expect(0);
    pushed.insert(first.clone(), bytes.clone());
    let first_bytes = bytes;

    eprintln!("bound per storage operation: {:?} (+ {SLACK:?} slack)", bound());
    let mut report = Vec::new();
    for mode in MODES.iter().chain(["down"].iter()) {
        // wal-push of a new segment while every request fails this way.
        let (name, rel, bytes) = segment();
        let before = proxy.injected();
        proxy.set(&format!("mode={mode}"));
        let (run, took) = timed(&mut data.push_cmd(&cfg, &[&rel]));
        let faults = proxy.injected() - before;
        proxy.pass();
        note(&mut report, format!("wal-push  {mode:>12}: exit {} in {took:.1?}, {faults} faults", run.code));
        assert!(took <= bound() + SLACK, "wal-push under {mode} took {took:?}\n{}", run.stderr);
        // A PUT answers with no body: the short-body faults find nothing to cut, and the push
        // succeeds; every other fault makes it fail with 1 (PostgreSQL keeps the file, retries).
        if mode.starts_with("short") {
            run.expect(0);
            assert_eq!(faults, 0, "{mode} was applied to a bodiless response");
        } else {
            run.expect(1);
            assert!(faults > 0, "no fault was injected under {mode}");
            assert_eq!(run.error_lines().len(), 1, "one ERROR line:\n{}", run.stderr);
            assert!(
                keys_under(&repo, "wal/").iter().all(|k| !k.ends_with(&name)),
                "a failed push of {name} left an object"
            );
            // PostgreSQL's next attempt, with the storage back.
            data.push(&cfg, &rel).expect(0);
        }
        pushed.insert(name, bytes);

        // PostgreSQL archiving a segment again (after a crash, say): the object is there, so
        // wal-push reads it back to compare, through the fault.
        let _ = std::fs::remove_dir_all(pg_wal.join(".walvault/pushed"));
        let before = proxy.injected();
        proxy.set(&format!("mode={mode}&method=GET"));
        let (run, took) = timed(&mut data.push_cmd(&cfg, &[&first_rel]));
        let faults = proxy.injected() - before;
        proxy.pass();
        note(
            &mut report,
            format!("wal-push again {mode:>6}: exit {} in {took:.1?}, {faults} faults", run.code),
        );
        // The PUT finds the object (one bound) and the read-back fails (another): a storage
        // failure (1, PostgreSQL tries again), or, for a consistent short body, a copy that
        // does not verify (3, refused). Never 0 on a copy that was not read back whole. A body
        // closed early is resumed from the next byte with a ranged GET, whose 206 the proxy
        // leaves alone: the copy is then read back whole and compared (0).
        assert!(took <= 2 * bound() + SLACK, "wal-push again under {mode} took {took:?}\n{}", run.stderr);
        assert!(faults > 0, "no fault under {mode}");
        if *mode == "short-close" {
            run.expect(0);
            assert!(run.stderr.contains("resuming"), "the read-back did not resume:\n{}", run.stderr);
            assert!(run.stderr.contains("already archived with the same contents"), "{}", run.stderr);
        } else {
            run.expect(if *mode == "short-length" { 3 } else { 1 });
            assert_eq!(run.error_lines().len(), 1, "one ERROR line:\n{}", run.stderr);
        }
        data.push(&cfg, &first_rel).expect(0);

        // wal-fetch of an archived segment while every request fails this way.
        let _ = std::fs::remove_file(pg_wal.join("RECOVERYXLOG"));
        let before = proxy.injected();
        proxy.set(&format!("mode={mode}"));
        let (run, took) = timed(std::process::Command::new(&bins().fetch).current_dir(&data.path).args([
            "--config".as_ref(),
            cfg.as_os_str(),
            first.as_ref(),
            "pg_wal/RECOVERYXLOG".as_ref(),
        ]));
        let faults = proxy.injected() - before;
        proxy.pass();
        note(&mut report, format!("wal-fetch {mode:>12}: exit {} in {took:.1?}, {faults} faults", run.code));
        assert!(took <= bound() + SLACK, "wal-fetch under {mode} took {took:?}\n{}", run.stderr);
        assert!(faults > 0, "no fault was injected under {mode}");
        // A consistent short body is a truncated object (201); anything else is storage
        // failing after retries (200). Either stops recovery; neither leaves a file. A body
        // closed early is resumed from the next byte (the proxy leaves the 206 alone), and
        // the segment arrives whole.
        if *mode == "short-close" {
            run.expect(0);
            assert!(run.stderr.contains("resuming"), "the fetch did not resume:\n{}", run.stderr);
            let got = std::fs::read(pg_wal.join("RECOVERYXLOG")).unwrap();
            assert!(got == first_bytes, "the fetch resumed under {mode} gave other bytes");
            std::fs::remove_file(pg_wal.join("RECOVERYXLOG")).unwrap();
        } else {
            run.expect(if *mode == "short-length" { 201 } else { 200 });
            assert_eq!(run.error_lines().len(), 1, "one ERROR line:\n{}", run.stderr);
            assert!(!pg_wal.join("RECOVERYXLOG").exists(), "a failed fetch under {mode} left %p");
        }
        assert_eq!(temp_files(&pg_wal), Vec::<String>::new(), "a fetch under {mode} left a temp file");
        let (run, got) = data.fetch(&cfg, &first);
        run.expect(0);
        assert!(got.as_deref() == Some(&first_bytes[..]), "the fetch after {mode} gave other bytes");
    }

    // A fault on the first attempt only: the retry absorbs it, the call succeeds.
    for mode in MODES {
        let (name, rel, bytes) = segment();
        proxy.set(&format!("mode={mode}&limit=1"));
        let before = proxy.injected();
        let (run, took) = timed(&mut data.push_cmd(&cfg, &[&rel]));
        let push_faults = proxy.injected() - before;
        assert!(took <= bound() + SLACK, "wal-push under one {mode} took {took:?}");
        run.expect(0);
        pushed.insert(name.clone(), bytes.clone());
        proxy.set(&format!("mode={mode}&limit=1"));
        let before = proxy.injected();
        let (run, got) = data.fetch(&cfg, &name);
        let fetch_faults = proxy.injected() - before;
        note(
            &mut report,
            format!(
                "one {mode:>12}: push 0 ({push_faults} faults), fetch {} ({fetch_faults} faults)",
                run.code
            ),
        );
        assert_eq!(fetch_faults, 1, "the first GET under {mode} was not faulted");
        match run.code {
            0 => assert!(got.as_deref() == Some(&bytes[..]), "wrong bytes at %p after one {mode}"),
            // A consistent short body is not retried: to any reader it is a truncated object,
            // and recovery stops rather than replaying something unverified.
            201 if mode == "short-length" => assert!(got.is_none()),
            c => panic!("wal-fetch exited {c} after one {mode}: {}", run.stderr),
        }
    }
    proxy.pass();
    let stats = proxy.stats();
    eprintln!(
        "{}\nfault-proxy: {} requests, faults {}",
        report.join("\n"),
        stats["requests"],
        stats["faults"]
    );
    assert_wal_objects(&repo, &pushed);
}

#[test]
fn the_prefetcher_never_spools_or_serves_wrong_bytes_under_faults() {
    let program = require_fault_proxy!();
    let server = require_s3!();
    let seed = seed("fault schedule and cut points");
    let proxy = FaultProxy::start(program, &server.endpoint, seed);
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg = proxy.config(
        &repo,
        &server.endpoint,
        &scratch,
        "c.toml",
        &format!("{}{}prefetch = 4\n", settings(), extra("lz4", None)),
    );
    let source = DataDir::new(&scratch);
    let mut segments = Vec::new();
    for i in 1..=12u32 {
        let name = format!("0000000100000000000000{i:02X}");
        let bytes = fake_segment(&name, SYSID, SEG_1M, u64::from(i) + 100);
        source.push(&cfg, &source.wal(&name, &bytes)).expect(0);
        segments.push((name, bytes));
    }
    // Recovery asks for the segments in order while a fault, drawn from the seed, hits every
    // second request: the calls' own GETs and the prefetcher's downloads alike.
    let data = DataDir::new(&scratch);
    let spool = data.path.join("pg_wal/.walvault/prefetch");
    let mut rng = seed | 1;
    let mut outcomes: BTreeMap<i32, u32> = BTreeMap::new();
    let mut logged = 0u64;
    for (name, bytes) in &segments {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mode = MODES[(rng % MODES.len() as u64) as usize];
        proxy.set(&format!("mode={mode}&every=2"));
        let t = Instant::now();
        let (run, got) = data.fetch(&cfg, name);
        let took = t.elapsed();
        *outcomes.entry(run.code).or_default() += 1;
        // A call may first wait up to the timeout for the prefetcher's download of its segment.
        assert!(took <= TIMEOUT + bound() + SLACK, "wal-fetch {name} under {mode} took {took:?}");
        match run.code {
            0 => assert!(got.as_deref() == Some(&bytes[..]), "wrong bytes at %p for {name} under {mode}"),
            200 | 201 => assert!(got.is_none(), "a failed fetch left %p"),
            c => panic!("wal-fetch {name} exited {c} under {mode}: {}", run.stderr),
        }
        assert_eq!(temp_files(&data.path.join("pg_wal")), Vec::<String>::new());
        // Give the prefetcher (a detached process, slow to start on a busy machine) its turn:
        // until it has logged another download or failure, or the next segment is spooled
        // (bounded; this is not a speed assertion).
        let log_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let next = segments.iter().skip_while(|(n, _)| n != name).nth(1).map(|(n, _)| n.clone());
        let start = Instant::now();
        while let Some(next) = &next
            && log_len(&spool.join("prefetch.log")) <= logged
            && !spool.join(next).exists()
            && start.elapsed() < Duration::from_secs(3)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        logged = log_len(&spool.join("prefetch.log"));
        // Whatever the spool holds as ready is exactly the segment it names.
        for f in names_in(&spool) {
            if let Some((_, b)) = segments.iter().find(|(n, _)| *n == f) {
                let spooled = std::fs::read(spool.join(&f)).unwrap_or_default();
                let meta = spool.join(format!("{f}.meta"));
                assert!(!meta.exists() || spooled == *b, "the spool holds wrong bytes for {f}");
            }
        }
    }
    let faults = proxy.injected();
    proxy.pass();
    // With the storage sound again every segment comes back exact (from the spool or not).
    for (name, bytes) in &segments {
        let (run, got) = data.fetch(&cfg, name);
        run.expect(0);
        assert!(got.as_deref() == Some(&bytes[..]), "wrong bytes for {name} after the faults");
    }
    let log = std::fs::read_to_string(spool.join("prefetch.log")).unwrap_or_default();
    crate::support::faults::kill_helpers_under(scratch.path());
    eprintln!(
        "{} calls under faults: exit codes {outcomes:?}; {faults} faults injected; prefetcher: {} prefetched, {} failed",
        segments.len(),
        log.matches("prefetched ").count(),
        log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count()
    );
    assert!(faults > 0);
    assert!(!log.is_empty(), "the prefetcher never ran");
}

/// Some WAL: `n` segments, each ended by a switch; returns the name of the last one.
fn switch_segments(c: &Cluster, n: u32) -> String {
    let mut last = String::new();
    for _ in 0..n {
        c.sql("insert into t select g, md5(g::text) from generate_series(1, 2000) g");
        let lsn = c.sql("select pg_switch_wal()");
        last = c.sql(&format!("select pg_walfile_name('{lsn}')"));
    }
    last
}

fn archived_through(c: &Cluster, last: &str) {
    c.wait_for(
        &format!("select coalesce(last_archived_wal >= '{last}', false) from pg_stat_archiver"),
        "t",
        Duration::from_secs(180),
    );
}

fn failed_count(c: &Cluster) -> u64 {
    c.sql("select failed_count from pg_stat_archiver").parse().unwrap()
}

/// Waits until the archiver has failed more than `than` times.
fn archiving_fails(c: &Cluster, than: u64) {
    let start = Instant::now();
    while failed_count(c) <= than {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the archiver never failed:\n{}",
            tail(&c.log_text(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `.ready` files PostgreSQL is keeping for a later attempt.
fn ready(c: &Cluster) -> Vec<String> {
    names_in(&c.data.join("pg_wal/archive_status"))
        .into_iter()
        .filter_map(|n| n.strip_suffix(".ready").map(str::to_string))
        .collect()
}

/// The segment number a 1 MiB segment's name stands for.
fn segno(name: &str) -> u64 {
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    log * 4096 + seg
}

/// The archive holds one unbroken run of segments, each decoding to the bytes PostgreSQL still
/// has in `pg_wal` (kept there by `wal_keep_size`); returns how many.
fn assert_no_gap(repo: &Repo, c: &Cluster) -> usize {
    let mut names: Vec<(String, String)> = decode_all(repo)
        .into_iter()
        .filter(|(k, _, _)| k.starts_with("wal/"))
        .map(|(k, sha, _)| (k.rsplit('/').next().unwrap().to_string(), sha))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "nothing archived");
    for pair in names.windows(2) {
        assert_eq!(
            segno(&pair[1].0),
            segno(&pair[0].0) + 1,
            "a gap in the archive between {} and {}",
            pair[0].0,
            pair[1].0
        );
    }
    use sha2::Digest;
    for (name, sha) in &names {
        let local = std::fs::read(c.data.join("pg_wal").join(name)).unwrap();
        assert_eq!(
            &hex::encode(sha2::Sha256::digest(&local)),
            sha,
            "{name} in the archive is not PostgreSQL's"
        );
    }
    names.len()
}

#[test]
fn pg_archiving_survives_a_storage_outage() {
    let program = require_fault_proxy!();
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let Some(mut moto) = PrivateMoto::start() else { skip_or_fail!("no moto server available") };
    let proxy = FaultProxy::start(program, &moto.endpoint, seed("fault-proxy"));
    let scratch = Scratch::new();
    let repo = Repo::s3(&moto.server());
    let cfg = proxy.config(
        &repo,
        &moto.endpoint,
        &scratch,
        "c.toml",
        &format!("{}{}", settings(), extra("zstd", None)),
    );
    let mut c = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize", "1"]);
    configure(&c, &archiving(&cfg));
    c.configure(&[("wal_keep_size", "1GB")]);
    c.start();
    c.sql("create table t (i int, v text)");
    let last = switch_segments(&c, 3);
    archived_through(&c, &last);

    // 1. The storage cannot be reached (connections refused): wal-push fails, PostgreSQL keeps
    //    the WAL and its .ready files, nothing new appears in the bucket.
    proxy.set("mode=down");
    let failed = failed_count(&c);
    let last = switch_segments(&c, 5);
    archiving_fails(&c, failed + 1);
    let kept = ready(&c);
    assert!(kept.contains(&last), "PostgreSQL keeps {last} for later: {kept:?}");
    let stored = keys_under(&repo, "wal/");
    for name in &kept {
        assert!(
            !stored.iter().any(|k| k.ends_with(name.as_str())),
            "{name} is stored although its push failed"
        );
    }
    assert!(c.log_text().contains("failed with exit code 1"), "{}", tail(&c.log_text(), 20));
    let outage1 = (failed_count(&c) - failed, kept.len());
    // Back: the backlog drains (a new segment wakes the archiver up at once).
    proxy.pass();
    let last = switch_segments(&c, 1);
    archived_through(&c, &last);
    assert!(ready(&c).is_empty(), "a backlog is left: {:?}", ready(&c));

    // 2. The server itself dies (SIGKILL) while PostgreSQL archives, and is started again on the
    //    same port. moto keeps its objects in memory only, so what the bucket held is put back
    //    byte for byte (what a durable store would still have); what wal-push was told is
    //    stored was acknowledged before the kill, so this loses nothing walvault relied on.
    let snapshot: Vec<(String, Vec<u8>)> = repo
        .keys()
        .into_iter()
        .map(|k| {
            let b = repo.get(&k);
            (k, b)
        })
        .collect();
    moto.kill();
    let failed = failed_count(&c);
    let last = switch_segments(&c, 4);
    archiving_fails(&c, failed + 1);
    let kept = ready(&c);
    assert!(kept.contains(&last), "{kept:?}");
    let outage2 = (failed_count(&c) - failed, kept.len());
    moto.up();
    let bucket = repo.bucket();
    moto.server().create_bucket(&bucket);
    for (k, b) in &snapshot {
        repo.overwrite(k, b.clone());
    }
    let last = switch_segments(&c, 1);
    archived_through(&c, &last);
    assert!(ready(&c).is_empty(), "a backlog is left: {:?}", ready(&c));
    c.stop();
    let archived = assert_no_gap(&repo, &c);
    let verify = Run::of(walvault(&cfg).args(["verify", "--wal", "--json"]));
    verify.expect(0);
    // walvault verify reads every segment back (its own decoder, its chain check): sound.
    let report: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    assert_eq!(report["wal"][0]["segments"].as_u64(), Some(archived as u64), "{report:#}");
    assert_eq!(report["wal"][0]["read"].as_u64(), Some(archived as u64), "{report:#}");
    assert_eq!(report["summary"]["problems"], 0, "{report:#}");
    crate::support::faults::kill_helpers_under(scratch.path());
    eprintln!(
        "outage (refused): {} failed archive attempts, {} segments kept; server killed: {} failed attempts, \
         {} segments kept; afterwards {archived} segments archived without a gap",
        outage1.0, outage1.1, outage2.0, outage2.1
    );
}

/// `walvault base-backup` of `c`, timed, without asserting its outcome.
fn try_base_backup(cfg: &Path, c: &Cluster) -> (Run, Duration) {
    let conninfo = format!("host={} port={} user=postgres", c.sock.display(), c.port);
    timed(walvault(cfg).args(["base-backup", "--fast-checkpoint", "--json", "-d", &conninfo]))
}

/// The ids of the backups the repository has (a backup exists iff its descriptor does).
fn backup_ids(repo: &Repo) -> Vec<String> {
    repo.keys()
        .into_iter()
        .filter_map(|k| k.strip_prefix("backups/")?.strip_suffix(".json").map(str::to_string))
        .filter(|id| !id.contains('/'))
        .collect()
}

/// `walvault restore --backup ID` into `dir`, timed.
fn try_restore(cfg: &Path, dir: &Path, id: &str) -> (Run, Duration) {
    timed(walvault(cfg).arg("restore").arg("--target-dir").arg(dir).args(["--backup", id, "--no-sync"]))
}

#[test]
fn pg_base_backup_and_restore_end_within_their_bound_under_every_fault() {
    let program = require_fault_proxy!();
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let server = require_s3!();
    let proxy = FaultProxy::start(program, &server.endpoint, seed("fault-proxy cut points"));
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg = proxy.config(
        &repo,
        &server.endpoint,
        &scratch,
        "c.toml",
        &format!("{}{}part_size = \"1MiB\"\n", settings(), extra("zstd", None)),
    );
    let mut c = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize", "1"]);
    configure(&c, &archiving(&cfg));
    c.start();
    c.sql("create table t (i int, v text)");
    c.sql("insert into t select g, md5(g::text) from generate_series(1, 100000) g");
    let (run, _) = try_base_backup(&cfg, &c);
    run.expect(0);
    let good = backup_ids(&repo);
    assert_eq!(good.len(), 1);
    let b0 = good[0].clone();
    let parts = repo.part_keys(&b0).len();
    let mut report = vec![format!("backup {b0}: {parts} parts in its base archive")];

    // Base backups while the part uploads fail (the fault starts after two requests, so the
    // backup is under way): exit 1, and no backup appears. `down` takes archiving down too, so
    // the server then waits for WAL archiving before it would send anything more: the backup
    // must not wait with it.
    for mode in ["down", "500", "503", "reset", "hang", "cut"] {
        let before = proxy.injected();
        proxy.set(&format!("mode={mode}&after=2&path=/backups/"));
        let (run, took) = try_base_backup(&cfg, &c);
        let faults = proxy.injected() - before;
        proxy.pass();
        note(
            &mut report,
            format!("base-backup {mode:>12}: exit {} in {took:.1?}, {faults} faults", run.code),
        );
        run.expect(1);
        assert!(faults > 0, "no fault under {mode}");
        assert_eq!(backup_ids(&repo), good, "a failed backup under {mode} left a descriptor");
        // The failure ends within the bound of the failing upload and of the clean-up after it
        // (each a bounded storage call), whatever the backup's size.
        assert!(took <= 4 * bound() + SLACK * 2, "base-backup under {mode} took {took:?}\n{}", run.stderr);
        let errors = run.error_lines();
        assert!(!errors.is_empty() && errors.len() <= 2, "{}", run.stderr);
    }
    // Faults now and then (every third request to backups/): the retries absorb them.
    for mode in ["503", "reset", "cut"] {
        proxy.set(&format!("mode={mode}&every=3&path=/backups/"));
        let before = proxy.injected();
        let (run, took) = try_base_backup(&cfg, &c);
        let faults = proxy.injected() - before;
        proxy.pass();
        note(
            &mut report,
            format!("base-backup every 3rd {mode:>5}: exit {} in {took:.1?}, {faults} faults", run.code),
        );
        run.expect(0);
        assert!(faults > 0);
    }
    let all = backup_ids(&repo);
    assert_eq!(all.len(), 4, "{all:?}");
    c.stop();

    // Restores while the part downloads fail: exit 1 (storage, after retries) or 3 (a part
    // that arrives shorter than its descriptor says), and the directory is left empty.
    for mode in MODES.iter().chain(["down"].iter()) {
        let dir = scratch.subdir(&format!("restore-{mode}"));
        let before = proxy.injected();
        proxy.set(&format!("mode={mode}&path=.tar."));
        let (run, took) = try_restore(&cfg, &dir, &b0);
        let faults = proxy.injected() - before;
        proxy.pass();
        note(&mut report, format!("restore {mode:>12}: exit {} in {took:.1?}, {faults} faults", run.code));
        assert!(faults > 0, "no fault under {mode}");
        match (*mode, run.code) {
            // A consistent short body: the part is not the size its descriptor says.
            ("short-length", 3) => {}
            // A cut-off stream resumes with a ranged GET from the next byte; the short-body
            // fault only hits whole-object 200s, so the resumed 206 completes the part, and a
            // cut that leaves the next resume no progress gives up after the retries.
            ("cut" | "short-close", 0) => {
                verifybackup(&dir, &[]).expect(0);
            }
            ("cut" | "short-close", 1) | ("500" | "503" | "reset" | "hang" | "down", 1) => {}
            (m, c) => panic!("restore under {m} exited {c}: {}", run.stderr),
        };
        if run.code != 0 {
            assert_eq!(run.error_lines().len(), 1, "one ERROR line:\n{}", run.stderr);
            assert_eq!(names_in(&dir), Vec::<String>::new(), "a failed restore under {mode} left files");
        }
        // Parts download concurrently; a cut stream resumes from where it stopped (progress
        // starts the retry count again), so the bound is per part, with room for the resumes.
        assert!(took <= 4 * bound() + SLACK * 2, "restore under {mode} took {took:?}\n{}", run.stderr);
        crate::support::remove_tree(&dir);
    }
    // A few faults (no more than the retries, so no part can run out of them even when they all
    // hit it): resumed downloads and retries, and the restored directory is the backup.
    for (i, id) in all.iter().enumerate() {
        let mode = ["cut", "short-close", "503", "reset"][i % 4];
        proxy.set(&format!("mode={mode}&every=2&limit={RETRIES}&path=.tar."));
        let dir = scratch.path().join(format!("restored-{i}"));
        let before = proxy.injected();
        let (run, took) = try_restore(&cfg, &dir, id);
        let faults = proxy.injected() - before;
        proxy.pass();
        note(
            &mut report,
            format!("restore of {id} with {faults} {mode} faults: exit {} in {took:.1?}", run.code),
        );
        run.expect(0);
        verifybackup(&dir, &[]).expect(0);
    }
    // Nothing in the repository decodes to wrong bytes, and verify finds it sound.
    let objects = decode_all(&repo).len();
    let verify = Run::of(walvault(&cfg).args(["verify", "--json"]));
    let stats = proxy.stats();
    eprintln!(
        "{}\n{objects} objects decode and verify; fault-proxy: {} requests, faults {}",
        report.join("\n"),
        stats["requests"],
        stats["faults"]
    );
    verify.expect(0);
}
