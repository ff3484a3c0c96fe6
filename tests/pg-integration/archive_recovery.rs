//! End to end with a real PostgreSQL 15: the primary archives through `wal-push`; every archived
//! object decodes to the exact bytes of its segment; a second cluster started from a
//! `pg_basebackup` copy recovers through `wal-fetch` to the end of the archive and holds the
//! same table contents as the primary at its last archived point.

use std::path::PathBuf;
use std::time::Duration;

use crate::on_backends;
use crate::support::datadir::{extra, keygen};
use crate::support::pg::{Cluster, pg_bin, pgbench_fingerprint};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch, bins, chown_to_pg};

/// How a run archives and recovers.
pub struct Setup {
    pub backend: Backend,
    pub compression: &'static str,
    pub with_key: bool,
    /// Extra top-level config lines (e.g. concurrency settings).
    pub config: String,
    /// Let `.ready` files pile up (archiving paused, as during a storage outage) before
    /// archiving through wal-push.
    pub backlog: bool,
}

/// What a run left for further checks.
pub struct Outcome {
    /// The primary's server log (archive_command's stderr included).
    pub primary_log: String,
    /// The recovered cluster's server log (restore_command's stderr included).
    pub restored_log: String,
    /// The prefetcher's log in the recovered cluster's spool.
    pub prefetch_log: String,
    /// Names of the archived segments.
    pub segments: Vec<String>,
}

impl Setup {
    fn new(backend: Backend, compression: &'static str, with_key: bool) -> Setup {
        Setup { backend, compression, with_key, config: String::new(), backlog: false }
    }
}

/// Archives a pgbench workload and recovers it; `None` when skipped outside CI.
pub fn archive_and_recover(setup: Setup) -> Option<Outcome> {
    let Some(bin) = pg_bin() else { skip_or_fail_opt("PostgreSQL 15 server binaries not found")? };
    let scratch = Scratch::new();
    let repo = match Repo::on(setup.backend, &scratch) {
        Ok(r) => r,
        Err(why) => skip_or_fail_opt(&why)?,
    };
    let key = setup.with_key.then(|| keygen(&scratch, "walvault.key"));
    let cfg = repo.config(
        &scratch,
        "walvault.toml",
        &format!("{}{}", extra(setup.compression, key.as_deref()), setup.config),
    );

    let mut primary = Cluster::init(&scratch, "primary", &bin, &[]);
    primary.configure(&[
        ("wal_level", "replica"),
        ("archive_mode", "on"),
        ("archive_command", &format!("{} --config {} %p", bins().push.display(), cfg.display())),
        // Keep every segment in pg_wal so archived objects can be compared with the originals.
        ("wal_keep_size", "2GB"),
        ("max_wal_size", "2GB"),
        ("fsync", "off"),
    ]);
    primary.start();

    // The base copy: -X none, so recovery needs the archive from the backup's start on.
    let base: PathBuf = scratch.path().join("restored");
    Run::of(primary.client("pg_basebackup").arg("-D").arg(&base).args([
        "-X",
        "none",
        "-c",
        "fast",
        "--no-sync",
    ]))
    .expect(0);

    let archive_command = format!("{} --config {} %p", bins().push.display(), cfg.display());
    let set_archive_command = |cmd: &str| {
        primary.sql(&format!("alter system set archive_command = '{}'", cmd.replace('\'', "''")));
        primary.sql("select pg_reload_conf()");
    };
    if setup.backlog {
        set_archive_command("");
        std::thread::sleep(Duration::from_millis(500));
    }
    Run::of(primary.client("pgbench").args(["-i", "-s", "2", "-q", "postgres"])).expect(0);
    Run::of(primary.client("pgbench").args(["-T", "4", "-c", "2", "-j", "1", "postgres"])).expect(0);
    if setup.backlog {
        primary.sql("create table backlog (i int)");
        for i in 0..30 {
            primary.sql(&format!("insert into backlog values ({i})"));
            primary.sql("select pg_switch_wal()");
        }
        let ready = std::fs::read_dir(primary.data.join("pg_wal/archive_status"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".ready"))
            .count();
        assert!(ready >= 30, "only {ready} segments queued");
        set_archive_command(&archive_command);
    }
    let switched = primary.sql("select pg_switch_wal()");
    let last = primary.sql(&format!("select pg_walfile_name('{switched}')"));
    primary.wait_for(
        &format!("select coalesce(last_archived_wal >= '{last}', false) from pg_stat_archiver"),
        "t",
        Duration::from_secs(180),
    );
    assert_eq!(primary.sql("select failed_count from pg_stat_archiver"), "0", "{}", primary.log_text());
    let mut expected = pgbench_fingerprint(&primary);
    if setup.backlog {
        expected.push_str(&primary.sql("select string_agg(i::text, ',' order by i) from backlog"));
    }
    primary.stop();

    // Every archived object decodes (through wal-fetch) to the exact bytes of its segment.
    let listing = repo.listing();
    let mut segments = Vec::new();
    let check = scratch.subdir("check");
    for object in listing.keys().filter(|k| k.starts_with("wal/")) {
        let name = object.rsplit('/').next().unwrap();
        let out = check.join("out");
        Run::of(std::process::Command::new(&bins().fetch).arg("--config").arg(&cfg).arg(name).arg(&out))
            .expect(0);
        let local = primary.data.join("pg_wal").join(name);
        if name.len() == 24 {
            segments.push(name.to_string());
            assert!(local.exists(), "{name} archived but gone from pg_wal");
        }
        if local.exists() {
            assert!(
                std::fs::read(&out).unwrap() == std::fs::read(&local).unwrap(),
                "{name} does not decode to its segment"
            );
        }
    }
    assert!(segments.len() >= 3, "only {} segments archived", segments.len());

    // Recover a second cluster from the base copy through wal-fetch.
    std::fs::write(base.join("recovery.signal"), "").unwrap();
    chown_to_pg(&base);
    let sock = scratch.subdir("restored-sock");
    let mut restored = Cluster::at(&bin, base, sock, scratch.path().join("restored.log"));
    restored.configure(&[
        ("restore_command", &format!("{} --config {} %f %p", bins().fetch.display(), cfg.display())),
        ("archive_mode", "off"),
    ]);
    restored.start();
    restored.wait_for("select pg_is_in_recovery()", "f", Duration::from_secs(300));
    let mut got = pgbench_fingerprint(&restored);
    if setup.backlog {
        got.push_str(&restored.sql("select string_agg(i::text, ',' order by i) from backlog"));
    }
    let log = restored.log_text();
    assert!(
        log.contains(&format!("restored log file \"{last}\" from archive")),
        "recovery did not reach {last}:\n{log}"
    );
    assert_eq!(got, expected, "recovered contents differ from the primary's");
    let prefetch_log = std::fs::read_to_string(restored.data.join("pg_wal/.walvault/prefetch/prefetch.log"))
        .unwrap_or_default();
    Some(Outcome { primary_log: primary.log_text(), restored_log: log, prefetch_log, segments })
}

/// Skips (returning `None`) outside CI, fails in CI.
fn skip_or_fail_opt<T>(why: &str) -> Option<T> {
    if crate::support::in_ci() {
        panic!("required test dependency missing under CI=true: {why}");
    }
    eprintln!("SKIPPED (not in CI): {why}");
    None
}

/// Archive and recover with `compression`, with or without a key, on each backend.
fn codec(compression: &'static str, with_key: bool) -> impl Fn(Backend) {
    move |backend| {
        archive_and_recover(Setup::new(backend, compression, with_key));
    }
}

/// Archive and recover with `upload_concurrency` and `prefetch` set (the defaults are 8 and 16;
/// set explicitly here).
fn concurrency(upload_concurrency: u32, prefetch: u32) -> impl Fn(Backend) {
    move |backend| {
        archive_and_recover(Setup {
            config: format!("upload_concurrency = {upload_concurrency}\nprefetch = {prefetch}\n"),
            ..Setup::new(backend, "zstd", true)
        });
    }
}

on_backends!(pg_archive_recover_zstd_key, codec("zstd", true), [file, s3, azure]);
on_backends!(pg_archive_recover_zstd_plain, codec("zstd", false), [file, s3]);
on_backends!(pg_archive_recover_lz4_key, codec("lz4", true), [file, s3, azure]);
on_backends!(pg_archive_recover_lz4_plain, codec("lz4", false), [file, s3]);
on_backends!(pg_archive_recover_c1_p0, concurrency(1, 0), [file, s3, azure]);
on_backends!(pg_archive_recover_c8_p16, concurrency(8, 16), [file, s3, azure]);

/// A backlog of ready segments (archiving paused, then resumed) is drained by PostgreSQL's own
/// archiver with fewer uploading wal-push calls than segments; recovery with prefetch then
/// downloads every segment exactly once, and the recovered data matches.
fn backlog_and_prefetch(backend: Backend) {
    let Some(out) = archive_and_recover(Setup {
        config: "upload_concurrency = 8\nprefetch = 16\n".into(),
        backlog: true,
        ..Setup::new(backend, "zstd", true)
    }) else {
        return;
    };
    let uploading =
        out.segments.iter().filter(|s| out.primary_log.contains(&format!("archived {s} ("))).count();
    let confirmed = out
        .segments
        .iter()
        .filter(|s| {
            out.primary_log
                .contains(&format!("{s} was pushed ahead; the local file matches the upload (by XXH3-128"))
        })
        .count();
    assert!(
        uploading * 2 < out.segments.len(),
        "{uploading} of {} segments were uploaded by the call PostgreSQL made for them",
        out.segments.len()
    );
    assert!(confirmed >= out.segments.len() / 2, "only {confirmed} confirmed from look-ahead records");

    eprintln!(
        "{} segments archived: {uploading} uploaded by the call made for them, {confirmed} confirmed from look-ahead",
        out.segments.len()
    );
    let calls = vec![out.restored_log.clone()];
    let counts = crate::throughput::downloads(&out.prefetch_log, &calls);
    assert!(!out.prefetch_log.is_empty(), "the prefetcher never ran");
    let from_spool = out.restored_log.matches("from the prefetch spool").count();
    eprintln!("recovery: {from_spool} of {} segments served from the prefetch spool", counts.len());
    assert!(
        from_spool * 2 > counts.len(),
        "only {from_spool} of {} segments came from the spool",
        counts.len()
    );
    // Every request is served by exactly one download (PostgreSQL asks for the last segment
    // again at the end of recovery, so a segment may be asked for more than once), the prefetcher
    // fetches a segment at most once, and the spool serves a segment at most once.
    for (name, n) in &counts {
        let asked = out.restored_log.matches(&format!("restored log file \"{name}\" from archive")).count();
        let prefetched = out.prefetch_log.matches(&format!("prefetched {name} ")).count();
        let served = out
            .restored_log
            .lines()
            .filter(|l| l.contains(&format!("restored {name} (")) && l.contains("from the prefetch spool"))
            .count();
        let about: Vec<&str> = out.restored_log.lines().filter(|l| l.contains(name.as_str())).collect();
        let context =
            format!("prefetch log:\n{}\nserver log about it:\n{}", out.prefetch_log, about.join("\n"));
        assert_eq!(*n, asked, "{name}: {n} downloads for {asked} requests\n{context}");
        assert!(prefetched <= 1, "{name} prefetched {prefetched} times\n{context}");
        assert!(served <= 1, "{name} served from the spool {served} times\n{context}");
    }
}

on_backends!(pg_backlog_drains_and_prefetch_recovers, backlog_and_prefetch, [file, s3, azure]);
