//! The kill storm: a real PostgreSQL 15 archives into S3 (moto) under pgbench load while a second
//! client commits numbered rows into a ledger and remembers each commit PostgreSQL acknowledged,
//! with the WAL position after it. A driver sends SIGKILL to running `wal-push` calls and to the
//! background pusher at random moments (seeded; the seed is printed, `WALVAULT_TEST_SEED`
//! repeats it). After the load, PostgreSQL's own retries must drain the backlog. The newest
//! backup is then restored and recovered to the end of the archive while the driver kills
//! `wal-fetch` calls and the prefetcher (a killed restore_command stops PostgreSQL's recovery;
//! the test starts it again, as an operator would). Afterwards every acknowledged commit before
//! the end of the last archived segment must be in the restored cluster exactly once,
//! `pg_amcheck` must pass and `walvault verify --full` must be clean.
//!
//! `WALVAULT_TEST_STORM_SECS` lengthens the load (the soak variant, `scripts/soak.sh`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::require_s3;
use crate::skip_or_fail;
use crate::support::backups::{archiving, base_backup, configure, restore, walvault};
use crate::support::datadir::{extra, keygen};
use crate::support::pg::{Cluster, pg_bin, tail};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, as_pg_user};

/// Seconds of load: `WALVAULT_TEST_STORM_SECS`, else 20.
fn storm_secs() -> u64 {
    std::env::var("WALVAULT_TEST_STORM_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20)
}

/// A process of ours: pid and what it is.
struct Proc {
    pid: i32,
    what: &'static str,
}

/// What `pid` is, if it is a live (non-zombie) walvault process whose command line names `cfg`
/// and one of `kinds` (`(needle, label)`: the first matching needle names it).
fn classify(pid: i32, cfg: &str, kinds: &[(&str, &'static str)]) -> Option<Proc> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    if !cmdline.contains(cfg) || cmdline.starts_with("sh ") || cmdline.starts_with("/bin/sh ") || !alive(pid)
    {
        return None;
    }
    kinds.iter().find(|(needle, _)| cmdline.contains(needle)).map(|(_, what)| Proc { pid, what })
}

/// Every process below `root`, from /proc's `children` lists (a few reads: fast enough to
/// catch a `wal-push` call that lives for milliseconds).
fn descendants(root: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

/// Every live walvault process of `kinds` for `cfg` in the whole system (slower: for the
/// long-lived background pusher and prefetcher, which run in their own session).
fn processes(cfg: &str, kinds: &[(&str, &'static str)]) -> Vec<Proc> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|pid| classify(pid, cfg, kinds))
        .collect()
}

/// Kills counted by what was killed, and the processes the driver saw.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, u32>, BTreeMap<&'static str, u32>);

impl Tally {
    fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

/// One kind of victim: processes whose command line has `needle`. In every window of
/// `window_ms` such a process is killed with probability `chance`, at a random moment of the
/// window (so kills land at every stage of its work: start-up, reading, uploading, the final
/// rename or record), at most `max` times in all and not before `after_ms` of the storm.
struct Kind {
    needle: &'static str,
    what: &'static str,
    window_ms: u64,
    chance: f64,
    max: u32,
    after_ms: u64,
}

/// The victims, and the total number of kills after which the driver stops.
struct Storm {
    kinds: Vec<Kind>,
    limit: u32,
}

/// Runs `storm` against `cfg`'s processes (those below the postmaster of `data`, and the
/// daemons anywhere) until `stop` is set or its limit is reached.
fn kill_driver(
    cfg: PathBuf,
    data: PathBuf,
    storm: Storm,
    mut rng: StdRng,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Tally> {
    std::thread::spawn(move || {
        let cfg = cfg.to_string_lossy().into_owned();
        let mut tally = Tally::default();
        // Per pid: the end of its current window, and the moment it is to be killed in it.
        let mut windows: BTreeMap<(i32, &'static str), (Instant, Option<Instant>)> = BTreeMap::new();
        let mut killed = std::collections::BTreeSet::new();
        let kinds: Vec<(&str, &'static str)> = storm.kinds.iter().map(|k| (k.needle, k.what)).collect();
        let began = Instant::now();
        let mut last_full_scan = began - Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) && tally.total() < storm.limit {
            let postmaster = std::fs::read_to_string(data.join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next()?.trim().parse::<i32>().ok());
            let mut found: Vec<Proc> = postmaster
                .map(|pm| descendants(pm).into_iter().filter_map(|p| classify(p, &cfg, &kinds)).collect())
                .unwrap_or_default();
            if last_full_scan.elapsed() > Duration::from_millis(100) {
                found.extend(processes(&cfg, &kinds));
                last_full_scan = Instant::now();
            }
            let now = Instant::now();
            for p in found {
                let kind = storm.kinds.iter().find(|k| k.what == p.what).unwrap();
                let window = kind.window_ms.max(1);
                if killed.contains(&p.pid) {
                    continue;
                }
                let entry = windows.entry((p.pid, p.what)).or_insert_with(|| {
                    *tally.1.entry(p.what).or_default() += 1;
                    (now, None)
                });
                if entry.0 <= now {
                    let spent = tally.0.get(p.what).copied().unwrap_or(0) >= kind.max
                        || began.elapsed() < Duration::from_millis(kind.after_ms);
                    let at = (!spent && rng.random_bool(kind.chance))
                        .then(|| now + Duration::from_millis(rng.random_range(0..window)));
                    *entry = (now + Duration::from_millis(window), at);
                }
                if entry.1.is_some_and(|at| at <= now) {
                    entry.1 = None;
                    // SAFETY: sending a signal to a process id (ours: its command line names cfg).
                    if alive(p.pid) && unsafe { libc::kill(p.pid, libc::SIGKILL) } == 0 {
                        killed.insert(p.pid);
                        *tally.0.entry(p.what).or_default() += 1;
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        tally
    })
}

/// The ledger client: commits `insert into ledger values (n)` for n = 1, 2, … in its own
/// session until `stop`, and after each acknowledged commit records n with the WAL insert
/// position read after it (at or past the commit record's end).
fn ledger_client(c: &Cluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(u64, u64)>> {
    let conninfo = format!("host={} port={} user=postgres dbname=postgres", c.sock.display(), c.port);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            use walvault::replication::{ConnectOptions, ReplicationClient};
            let opts = ConnectOptions::from_env_and_conninfo(Some(&conninfo)).unwrap().sql_session();
            let mut session = ReplicationClient::connect(&opts).await.expect("the ledger client connects");
            let mut acked = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                session.query(&format!("insert into ledger values ({n})")).await.expect("a ledger commit");
                let rows = session.query("select pg_current_wal_insert_lsn()").await.unwrap();
                let lsn = rows[0][0].clone().unwrap();
                acked.push((n, parse_lsn(&lsn)));
            }
            session.close().await;
            acked
        })
    })
}

fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// The end (exclusive LSN) of the last segment of the first contiguous run of archived
/// timeline-1 segments (1 MiB segments), read from the repository itself.
fn archived_end(repo: &Repo) -> u64 {
    let mut segnos: Vec<u64> = repo
        .keys()
        .iter()
        .filter_map(|k| {
            let name = k.rsplit('/').next()?;
            let name = name.split('.').next()?;
            (name.len() == 24 && name.starts_with("00000001") && name.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| {
                    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
                    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
                    log * 4096 + seg
                })
        })
        .collect();
    segnos.sort_unstable();
    segnos.dedup();
    let mut end = *segnos.first().expect("archived segments");
    for s in &segnos {
        if *s > end {
            break;
        }
        end = s + 1;
    }
    end << 20
}

/// Starts a cluster directory with `pg_ctl start` without waiting (recovery may stop it).
fn start_no_wait(c: &Cluster) {
    let opts = format!("-c listen_addresses='' -k {} -p {}", c.sock.display(), c.port);
    Run::of(
        as_pg_user(c.bin.join("pg_ctl"))
            .args(["-W", "-D"])
            .arg(&c.data)
            .arg("-l")
            .arg(c.log_path())
            .args(["-o", &opts, "start"]),
    )
    .expect(0);
}

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')))
}

/// The postmaster's pid once it wrote its pid file, or None if it is gone before that.
fn postmaster_pid(c: &Cluster, started: Instant) -> Option<i32> {
    loop {
        if let Some(pid) = c.pid() {
            return Some(pid);
        }
        if started.elapsed() > Duration::from_secs(30) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the restored server finished recovery (promoted at the end of the archive).
fn recovered(c: &Cluster) -> bool {
    let run =
        Run::of(c.client("psql").args(["-X", "-At", "-d", "postgres", "-c", "select pg_is_in_recovery()"]));
    run.code == 0 && run.stdout.trim() == "f"
}

#[test]
fn pg_kill_storm_every_acknowledged_commit_comes_back() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let server = require_s3!();
    let seed = crate::support::seed("kill storm");
    let mut rng = StdRng::seed_from_u64(seed);
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let key = keygen(&scratch, "walvault.key");
    let cfg = repo.config(
        &scratch,
        "walvault.toml",
        &format!("{}upload_concurrency = 4\nprefetch = 8\npart_size = \"4MiB\"\n", extra("zstd", Some(&key))),
    );

    // 1 MiB segments: many segments, so many archive calls and many moments to kill.
    let mut primary = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize=1"]);
    configure(&primary, &archiving(&cfg));
    primary.configure(&[("archive_timeout", "0"), ("max_wal_size", "64MB")]);
    primary.start();
    Run::of(primary.client("pgbench").args(["-i", "-s", "2", "-q", "postgres"])).expect(0);
    primary.sql("create table ledger (n bigint not null)");
    let backup = base_backup(&cfg, &primary);

    // The storm: pgbench, the ledger client and the killer, for storm_secs().
    let secs = storm_secs();
    let stop = Arc::new(AtomicBool::new(false));
    let mut pgbench: Child = primary
        .client("pgbench")
        .args(["-n", "-c", "2", "-j", "1", "-T", &secs.to_string(), "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ledger = ledger_client(&primary, stop.clone());
    // PostgreSQL starts an archiver whose command was killed again only after a pause of about
    // 10 s, in which nothing is archived and no pusher starts. So the pusher (started again by
    // the next call) is killed as often as it is found, and calls only in the last 40 % of the
    // storm, once per 20 s of it.
    let storm = Storm {
        kinds: vec![
            Kind {
                needle: "--pusher-daemon",
                what: "background pusher",
                window_ms: 300,
                chance: 0.5,
                max: u32::MAX,
                after_ms: 0,
            },
            Kind {
                needle: "wal-push",
                what: "wal-push call",
                window_ms: 40,
                chance: 0.2,
                max: (secs / 20).max(1) as u32,
                after_ms: secs * 600,
            },
        ],
        limit: u32::MAX,
    };
    let killer = kill_driver(
        cfg.clone(),
        primary.data.clone(),
        storm,
        StdRng::seed_from_u64(rng.random()),
        stop.clone(),
    );
    let status = pgbench.wait().unwrap();
    assert!(status.success(), "pgbench failed under the storm");
    stop.store(true, Ordering::Relaxed);
    let acked = ledger.join().unwrap();
    let push_kills = killer.join().unwrap();

    // PostgreSQL keeps the WAL of every failed call and retries: the backlog drains.
    let switched = primary.sql("select pg_switch_wal()");
    let last = primary.sql(&format!("select pg_walfile_name('{switched}')"));
    primary.wait_for(
        &format!("select coalesce(last_archived_wal >= '{last}', false) from pg_stat_archiver"),
        "t",
        Duration::from_secs(300),
    );
    let archived: u64 = primary.sql("select archived_count from pg_stat_archiver").parse().unwrap();
    // A killed call: the shell PostgreSQL runs it with exits 137; the archiver says so, exits,
    // and its successor retries the file.
    if std::env::var("KS_DEBUG").is_ok() {
        for l in primary.log_text().lines().filter(|l| l.contains("archiv")) {
            eprintln!("LOG {l}");
        }
    }
    let killed_calls = primary.log_text().matches("failed with exit code 137").count();
    let final_lsn = parse_lsn(&switched);
    primary.stop();
    eprintln!(
        "archive side: {} kills ({:?}, of {:?} seen) over {secs} s; {archived} files archived, {killed_calls} calls seen killed by the archiver; \
         {} ledger commits acknowledged",
        push_kills.total(),
        push_kills.0,
        push_kills.1,
        acked.len()
    );
    for what in ["background pusher", "wal-push call"] {
        assert!(
            push_kills.0.contains_key(what),
            "no {what} was killed: {:?} of {:?}",
            push_kills.0,
            push_kills.1
        );
    }
    assert!(killed_calls > 0, "PostgreSQL saw no killed archive call:\n{}", tail(&primary.log_text(), 30));
    let end = archived_end(&repo);
    assert!(
        end >= final_lsn,
        "the archive ends at {end:X}, before the last commit's segment ({final_lsn:X})"
    );

    // Recovery under kills of wal-fetch calls and the prefetcher.
    let dir = scratch.path().join("restored");
    restore(&cfg, &dir, &["--backup", &backup]).expect(0);
    let sock = scratch.subdir("restored-sock");
    let mut restored = Cluster::at(&bin, dir.clone(), sock, scratch.path().join("restored.log"));
    restored.configure(&[("archive_mode", "off")]);
    let fetch_kills_limit = 8;
    let stop = Arc::new(AtomicBool::new(false));
    let storm = Storm {
        kinds: vec![
            Kind {
                needle: "--prefetch-daemon",
                what: "prefetcher",
                window_ms: 300,
                chance: 0.4,
                max: 4,
                after_ms: 0,
            },
            Kind {
                needle: "wal-fetch",
                what: "wal-fetch call",
                window_ms: 30,
                chance: 0.1,
                max: 4,
                after_ms: 0,
            },
        ],
        limit: fetch_kills_limit,
    };
    let killer =
        kill_driver(cfg.clone(), dir.clone(), storm, StdRng::seed_from_u64(rng.random()), stop.clone());
    let starts = AtomicU32::new(0);
    let began = Instant::now();
    loop {
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "recovery never finished:\n{}",
            tail(&restored.log_text(), 40)
        );
        starts.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        start_no_wait(&restored);
        let Some(pid) = postmaster_pid(&restored, t) else { continue };
        restored.set_running(true);
        let mut done = false;
        while alive(pid) {
            if recovered(&restored) {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if done {
            break;
        }
        restored.set_running(false);
    }
    stop.store(true, Ordering::Relaxed);
    let fetch_kills = killer.join().unwrap();
    eprintln!(
        "restore side: {} kills ({:?}, of {:?} seen), the server started {} times",
        fetch_kills.total(),
        fetch_kills.0,
        fetch_kills.1,
        starts.load(Ordering::Relaxed),
    );
    assert!(fetch_kills.total() > 0, "no kill landed during recovery: {:?} seen", fetch_kills.1);

    // Every acknowledged commit before the end of the archive, exactly once.
    let present: BTreeMap<u64, u64> = restored
        .sql("select n || ' ' || count(*) from ledger group by n")
        .lines()
        .map(|l| {
            let (n, c) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), c.parse().unwrap())
        })
        .collect();
    let twice: Vec<_> = present.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "ledger rows restored twice: {twice:?}");
    let due: Vec<u64> = acked.iter().filter(|(_, lsn)| *lsn <= end).map(|(n, _)| *n).collect();
    let missing: Vec<&u64> = due.iter().filter(|n| !present.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged commits missing, first {:?}",
        missing.len(),
        due.len(),
        &missing[..missing.len().min(10)]
    );
    eprintln!(
        "{} acknowledged commits checked, all present once ({} rows restored)",
        due.len(),
        present.len()
    );

    let amcheck =
        Run::of(restored.client("pg_amcheck").args(["--all", "--install-missing", "-d", "postgres"]));
    assert_eq!(amcheck.code, 0, "pg_amcheck: {}{}", amcheck.stdout, amcheck.stderr);
    restored.stop();
    drop(restored);
    crate::support::remove_tree(&dir);
    let verify = Run::of(walvault(&cfg).args(["verify", "--full"]));
    assert_eq!(verify.code, 0, "verify after the storm: {}{}", verify.stdout, verify.stderr);
}
