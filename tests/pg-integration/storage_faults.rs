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
use std::path::{Path, PathBuf};
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
    let (first, rel, bytes) = segment();
    data.push(&cfg, &rel).expect(0);
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
        report.push(format!("wal-push  {mode:>12}: exit {} in {took:.1?}, {faults} faults", run.code));
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
        report.push(format!("wal-fetch {mode:>12}: exit {} in {took:.1?}, {faults} faults", run.code));
        assert!(took <= bound() + SLACK, "wal-fetch under {mode} took {took:?}\n{}", run.stderr);
        assert!(faults > 0, "no fault was injected under {mode}");
        // A consistent short body is a truncated object (201); anything else is storage
        // failing after retries (200). Either stops recovery; neither leaves a file.
        run.expect(if *mode == "short-length" { 201 } else { 200 });
        assert_eq!(run.error_lines().len(), 1, "one ERROR line:\n{}", run.stderr);
        assert!(!pg_wal.join("RECOVERYXLOG").exists(), "a failed fetch under {mode} left %p");
        assert_eq!(temp_files(&pg_wal), Vec::<String>::new(), "a failed fetch under {mode} left a temp file");
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
        report.push(format!(
            "one {mode:>12}: push 0 ({push_faults} faults), fetch {} ({fetch_faults} faults)",
            run.code
        ));
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
    eprintln!("{}\nfault-proxy: {} requests, faults {}", report.join("\n"), stats["requests"], stats["faults"]);
    assert_wal_objects(&repo, &pushed);
}
