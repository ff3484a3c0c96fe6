//! `walvault delete` and `walvault mark` against a real PostgreSQL 15 and the S3-compatible
//! server: a PITR window after which a restore to its oldest moment works and one before it is
//! refused; leftover temporary uploads under `tmp/`; kept backups; `delete --backup`; a delete during a running base backup; kills of
//! delete at random moments; and two timelines archiving into one repository.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::skip_or_fail;
use crate::support::backups::{
    Action, archive_everything, archiving, base_backup, configure, contents, restore, start_restored, step,
    walvault,
};
use crate::support::datadir::extra;
use crate::support::pg::{Cluster, pg_bin};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch, remove_tree};

/// `walvault ARGS` with `cfg`, as PostgreSQL's user.
fn wv(cfg: &Path, args: &[&str]) -> Run {
    Run::of(walvault(cfg).args(args))
}

/// The plan `delete ARGS --json` prints (and carries out with `--confirm`).
fn delete(cfg: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["delete", "--json"];
    all.extend_from_slice(args);
    let run = wv(cfg, &all);
    run.expect(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn action_of(plan: &serde_json::Value, id: &str) -> String {
    plan["plan"]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == id)
        .map_or("absent".into(), |b| b["action"].as_str().unwrap().to_string())
}

/// Backup ids with a descriptor, and every object key under `backups/` and `wal/`.
fn backup_ids(repo: &Repo) -> Vec<String> {
    repo.keys()
        .iter()
        .filter_map(|k| k.strip_prefix("backups/")?.strip_suffix(".json").map(str::to_string))
        .collect()
}

fn segments(repo: &Repo) -> Vec<String> {
    repo.keys()
        .iter()
        .filter(|k| k.starts_with("wal/") && !k.contains("history"))
        .map(|k| k[21..].to_string())
        .collect()
}

/// A primary archiving into a fresh S3 repository with `[retention]`-less config.
fn primary(scratch: &Scratch, repo: &Repo, bin: &Path) -> (Cluster, std::path::PathBuf) {
    let cfg = repo.config(scratch, "walvault.toml", &format!("{}part_size = \"1MiB\"\n", extra("lz4", None)));
    let mut p = Cluster::init(scratch, "primary", bin, &[]);
    configure(&p, &archiving(&cfg));
    p.start();
    p.sql("create table t (i int primary key, v text)");
    p.sql("insert into t select g, md5(g::text) from generate_series(1, 20000) g");
    (p, cfg)
}

/// A window that starts between the second and third backup: the first goes with its WAL, a
/// restore to the window's first moment works, one before it is refused; then marks and
/// `--backup`.
#[test]
fn pg_retention_window_keep_marks_and_single_deletes() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(Backend::S3, &scratch);
    let (mut p, cfg) = primary(&scratch, &repo, &bin);
    let b1 = base_backup(&cfg, &p);
    let m1 = step(&p, 1, false);
    let b2 = base_backup(&cfg, &p);
    let m2 = step(&p, 2, false);
    std::thread::sleep(Duration::from_secs(8));
    let b3 = base_backup(&cfg, &p);
    step(&p, 3, false);
    archive_everything(&p);
    let stops: serde_json::Value =
        serde_json::from_str(&wv(&cfg, &["list", "--json"]).expect(0).stdout.clone()).unwrap();
    let stop_of = |id: &str| -> time::OffsetDateTime {
        let b = stops["backups"].as_array().unwrap().iter().find(|b| b["id"] == id).unwrap();
        time::OffsetDateTime::parse(
            b["stop_time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    // The window starts 3 s after the second backup finished (the third finished 8 s later).
    let keep = (time::OffsetDateTime::now_utc() - stop_of(&b2)).whole_seconds() - 3;
    let window = format!("{keep}s");
    let before = repo.listing();

    // Dry run: the plan, nothing deleted.
    let plan = delete(&cfg, &["--keep-within", &window]);
    assert_eq!(action_of(&plan, &b1), "delete", "{plan:#}");
    assert_eq!(action_of(&plan, &b2), "keep");
    assert_eq!(action_of(&plan, &b3), "keep");
    assert!(!plan["executed"].as_bool().unwrap());
    assert!(!plan["wal_deleted"].as_array().unwrap().is_empty(), "no WAL before the anchor goes: {plan:#}");
    assert_eq!(repo.listing(), before, "a dry run changed the repository");
    let text = wv(&cfg, &["delete", "--keep-within", &window]).expect(0).stdout.clone();
    assert!(text.contains(&format!("DELETE {b1}")) && text.contains("dry run"), "{text}");

    let done = delete(&cfg, &["--keep-within", &window, "--confirm"]);
    assert!(done["executed"].as_bool().unwrap());
    assert_eq!(backup_ids(&repo), [b2.clone(), b3.clone()]);
    assert!(repo.keys().iter().all(|k| !k.contains(&b1)), "objects of {b1} left");
    let b2_start: walvault::wal::Lsn = stops["backups"][1]["start_lsn"].as_str().unwrap().parse().unwrap();
    let first_kept = walvault::wal::SegmentName::containing(
        walvault::wal::TimelineId::new(1).unwrap(),
        b2_start,
        walvault::wal::WalSegSize::DEFAULT,
    )
    .to_string();
    assert!(segments(&repo).iter().all(|s| s[..24] >= first_kept[..]), "WAL before {first_kept} left");
    assert!(segments(&repo).iter().any(|s| s[..24] == first_kept[..]));

    // The oldest promised moment restores; a moment before the window's anchor is refused.
    let window_start = done["plan"]["window_start"].as_str().unwrap().to_string();
    let dir = scratch.path().join("oldest");
    restore(&cfg, &dir, &["--target-time", &window_start, "--target-action", "promote"]).expect(0);
    let mut c = start_restored(&bin, &scratch, &dir, Action::Promote);
    assert_eq!(contents(&c, false), m2.contents, "the window's first moment holds other contents");
    c.stop();
    drop(c);
    remove_tree(&dir);
    let run = restore(&cfg, &scratch.path().join("too-old"), &["--target-time", &m1.time]);
    run.expect(2).says(&["no backup"]);

    // A leftover of an interrupted large wal-push under tmp/ is listed by the dry run and goes
    // once older than older_than; a young one stays, and so does an object under tmp/ that
    // wal-push does not name so. (retain_full = 100 keeps every backup here.)
    let leftover = format!("tmp/{first_kept}.00000000000000ab");
    repo.overwrite(&leftover, b"an interrupted upload".to_vec());
    repo.overwrite("tmp/unrelated", b"not walvault's".to_vec());
    let young = delete(&cfg, &["--retain-full", "100", "--confirm"]);
    assert_eq!(young["tmp"]["young"], 1, "{young}");
    assert!(repo.keys().contains(&leftover), "a young temporary upload may be finishing");
    std::thread::sleep(Duration::from_millis(2100));
    let dry = delete(&cfg, &["--retain-full", "100", "--older-than", "1s"]);
    assert_eq!(dry["tmp"]["deleted"][0]["key"], leftover.as_str(), "{dry}");
    assert!(repo.keys().contains(&leftover), "a dry run deletes nothing");
    delete(&cfg, &["--retain-full", "100", "--older-than", "1s", "--confirm"]);
    let keys = repo.keys();
    assert!(!keys.contains(&leftover) && keys.contains(&"tmp/unrelated".to_string()), "{keys:?}");

    // A kept backup survives a policy that deletes the others.
    let b4 = base_backup(&cfg, &p);
    wv(&cfg, &["mark", &b2, "--keep"]).expect(0);
    let done = delete(&cfg, &["--retain-full", "1", "--confirm"]);
    assert_eq!(action_of(&done, &b2), "keep");
    assert_eq!(backup_ids(&repo), [b2.clone(), b4.clone()]);
    let list = wv(&cfg, &["list"]).expect(0).stdout.clone();
    assert!(list.contains("marked keep"), "{list}");
    // `--backup` refuses a kept one without --force, deletes it with.
    wv(&cfg, &["delete", "--backup", &b2, "--confirm"]).expect(2).says(&["marked keep", "--force"]);
    wv(&cfg, &["delete", "--backup", &b2, "--force", "--confirm"]).expect(0);
    assert_eq!(backup_ids(&repo), std::slice::from_ref(&b4));
    wv(&cfg, &["delete", "--backup", "20200101T000000Z"]).expect(2).says(&["not in the repository"]);
    wv(&cfg, &["delete"]).expect(2).says(&["no retention policy"]);
    // The newest backup still restores to the end of the archive.
    archive_everything(&p);
    let dir = scratch.path().join("newest");
    restore(&cfg, &dir, &[]).expect(0);
    let c = start_restored(&bin, &scratch, &dir, Action::Promote);
    assert_eq!(contents(&c, false), contents(&p, false));
    drop(c);
    // [retention] auto = true: base-backup applies the policy after it succeeds.
    let auto = scratch.file(
        "auto.toml",
        format!("{}\n[retention]\nretain_full = 1\nauto = true\n", std::fs::read_to_string(&cfg).unwrap()),
    );
    let conninfo = format!("host={} port={} user=postgres", p.sock.display(), p.port);
    let run = Run::of(walvault(&auto).args(["base-backup", "--fast-checkpoint", "--json", "-d", &conninfo]));
    run.expect(0).says(&["applying the retention policy", &format!("deleted backup {b4}")]);
    let b5: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(backup_ids(&repo), [b5["id"].as_str().unwrap().to_string()]);
    let list = wv(&auto, &["list"]).expect(0).stdout.clone();
    assert!(list.contains("retain_full = 1") && list.contains("oldest moment a restore can reach"), "{list}");
    p.stop();
}

/// A delete while a base backup runs (slowly, through a proxy that adds a round trip to every
/// request) leaves that backup and its WAL whole: it completes and verifies.
#[test]
fn pg_retention_leaves_a_running_backup_whole() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let program = crate::require_proxy!();
    let server = crate::require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let (mut p, cfg) = primary(&scratch, &repo, &bin);
    Run::of(p.client("pgbench").args(["-i", "-s", "3", "-q", "postgres"])).expect(0);
    let oldest = base_backup(&cfg, &p);
    step(&p, 1, false);
    let old = base_backup(&cfg, &p);
    step(&p, 2, false);
    archive_everything(&p);
    let proxy =
        crate::support::proxy::Proxy::start(program, server.endpoint.trim_start_matches("http://"), 60);
    let slow_text =
        std::fs::read_to_string(&cfg).unwrap().replace(&server.endpoint, &format!("http://{}", proxy.addr));
    let slow = scratch.file("slow.toml", slow_text);
    let conninfo = format!("host={} port={} user=postgres", p.sock.display(), p.port);
    let child = walvault(&slow)
        .args(["base-backup", "--fast-checkpoint", "--json", "-d", &conninfo])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the backup has claimed its id (its .started marker) and uploaded a part.
    let start = Instant::now();
    let running = loop {
        let l = repo.keys();
        let started =
            l.iter().find_map(|k| k.strip_prefix("backups/")?.strip_suffix(".started").map(str::to_string));
        if let Some(id) = started
            && l.iter().any(|k| k.starts_with(&format!("backups/{id}/")))
        {
            break id;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the slow backup never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let plan = delete(&cfg, &["--retain-full", "1", "--older-than", "1h", "--confirm"]);
    assert_eq!(action_of(&plan, &oldest), "delete", "{plan:#}");
    assert_eq!(action_of(&plan, &old), "keep");
    let folder =
        plan["plan"]["folders"].as_array().unwrap().iter().find(|f| f["id"] == running.as_str()).cloned();
    assert_eq!(folder.as_ref().map(|f| f["action"].as_str().unwrap()), Some("untouched"), "{plan:#}");
    assert!(
        plan["plan"]["wal_kept"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["why"].as_str().unwrap().contains("being taken")),
        "{plan:#}"
    );
    let out = child.wait_with_output().unwrap();
    crate::support::logs::output(&out);
    assert!(out.status.success(), "the backup failed: {}", String::from_utf8_lossy(&out.stderr));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["id"], running.as_str());
    assert_eq!(backup_ids(&repo), [old.clone(), running.clone()]);
    wv(&cfg, &["verify", "--backup", &running]).expect(0);
    p.stop();
}

/// Kills `walvault delete --confirm` at random moments (seeded; the seed is printed), while it
/// talks to the repository through a proxy that adds 50 ms to every request (so a run takes
/// seconds and the kills land in every step): after each kill every backup that has a descriptor
/// verifies whole (verify reads every part), and a final run finishes the job, leaving no
/// folder, marker or WAL the policy does not keep. The kills are spread from half the time a dry
/// run takes (planning, measured through the same proxy) to half as long again, so most land while
/// objects are being deleted; the test fails if none does.
#[test]
fn pg_retention_kill_anywhere_then_finish() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let program = crate::require_proxy!();
    let server = crate::require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let (mut p, cfg) = primary(&scratch, &repo, &bin);
    Run::of(p.client("pgbench").args(["-i", "-s", "2", "-q", "postgres"])).expect(0);
    let mut ids = Vec::new();
    for k in 0..6 {
        ids.push(base_backup(&cfg, &p));
        step(&p, k, false);
    }
    archive_everything(&p);
    p.stop();
    let proxy =
        crate::support::proxy::Proxy::start(program, server.endpoint.trim_start_matches("http://"), 50);
    let slow_text =
        std::fs::read_to_string(&cfg).unwrap().replace(&server.endpoint, &format!("http://{}", proxy.addr));
    let slow = scratch.file("slow.toml", slow_text);
    let seed = crate::support::seed("kill");
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // What delete may touch (verify's own records, written by the checks below, are left out).
    let objects = || repo.keys().into_iter().filter(|k| !k.starts_with("verify/")).count();
    let planning = {
        let start = Instant::now();
        wv(&slow, &["delete", "--retain-full", "1"]).expect(0);
        start.elapsed().as_millis() as u64
    };
    eprintln!("a dry run through the proxy takes {planning} ms");
    let (mut kills, mut mid_deletion) = (0, 0);
    for round in 0..8 {
        let before = objects();
        let delay = planning / 2 + next() % planning;
        let mut child = walvault(&slow)
            .args(["delete", "--retain-full", "1", "--confirm"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        let after = objects();
        kills += usize::from(!finished);
        mid_deletion += usize::from(!finished && after != before);
        let left = backup_ids(&repo);
        eprintln!(
            "round {round}: killed after {delay} ms ({}), {before} -> {after} objects, {} backups left",
            if finished { "it had finished" } else { "running" },
            left.len()
        );
        // Every backup that exists is whole: verify reads every object of every one.
        let v = wv(&cfg, &["verify", "--full"]);
        assert_eq!(
            v.code, 0,
            "round {round}: a backup looks complete but is not:\n{}\n{}",
            v.stdout, v.stderr
        );
    }
    assert!(mid_deletion > 0, "no kill landed while delete was deleting ({kills} kills)");
    delete(&cfg, &["--retain-full", "1", "--confirm"]);
    assert_eq!(backup_ids(&repo), [ids[5].clone()]);
    let l = repo.keys();
    let stray: Vec<&String> =
        l.iter().filter(|k| k.starts_with("backups/") && !k.contains(&ids[5])).collect();
    assert!(stray.is_empty(), "left after the final run: {stray:?}");
    let again = delete(&cfg, &["--retain-full", "1"]);
    assert!(again["wal_deleted"].as_array().unwrap().is_empty(), "{again:#}");
    wv(&cfg, &["verify", "--wal"]).expect(0);
}

/// A copy restored from the first backup and promoted archives timeline 2 into the same
/// repository while the primary goes on on timeline 1. With a backup on each timeline kept,
/// a restore of either still recovers, on its own timeline, to its own data.
#[test]
fn pg_retention_keeps_what_both_timelines_need() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(Backend::S3, &scratch);
    let (mut p, cfg) = primary(&scratch, &repo, &bin);
    let first = base_backup(&cfg, &p);
    step(&p, 1, false);
    archive_everything(&p);
    // The copy: restored from the first backup, promoted, archiving on timeline 2.
    let dir = scratch.path().join("copy");
    restore(&cfg, &dir, &["--backup", &first, "--target-immediate", "--target-action", "promote"]).expect(0);
    // Archiving on from the start, so the promotion's history file is archived too.
    let sock = scratch.subdir("copy-sock");
    let mut copy = Cluster::at(&bin, dir.clone(), sock, scratch.path().join("copy.log"));
    copy.start();
    copy.wait_for("select not pg_is_in_recovery()", "t", Duration::from_secs(180));
    copy.sql("checkpoint");
    assert_eq!(copy.sql("select timeline_id from pg_control_checkpoint()"), "2");
    copy.sql("insert into t values (-2000, 'on timeline 2')");
    let on_two = base_backup(&cfg, &copy);
    copy.sql("insert into t values (-2001, 'later on timeline 2')");
    archive_everything(&copy);
    let copy_contents = contents(&copy, false);
    copy.stop();
    // The primary goes on on timeline 1.
    p.sql("insert into t values (-1000, 'on timeline 1')");
    let on_one = base_backup(&cfg, &p);
    p.sql("insert into t values (-1001, 'later on timeline 1')");
    archive_everything(&p);
    let primary_contents = contents(&p, false);
    p.stop();
    let done = delete(&cfg, &["--retain-full", "2", "--confirm"]);
    assert_eq!(action_of(&done, &first), "delete", "{done:#}");
    let mut kept = backup_ids(&repo);
    kept.sort();
    let mut want = vec![on_one.clone(), on_two.clone()];
    want.sort();
    assert_eq!(kept, want);
    assert!(repo.keys().contains(&"wal/history/00000002.history".to_string()));
    for (backup, timeline, expected) in
        [(&on_one, "current", &primary_contents), (&on_two, "latest", &copy_contents)]
    {
        let dir = scratch.path().join(format!("r-{backup}"));
        restore(&cfg, &dir, &["--backup", backup, "--target-timeline", timeline]).expect(0);
        let c = start_restored(&bin, &scratch, &dir, Action::Promote);
        assert_eq!(&contents(&c, false), expected, "restore of {backup} along {timeline}");
        drop(c);
        remove_tree(&dir);
    }
    wv(&cfg, &["verify"]).expect(0);
}
