//! Failover and split brain against real PostgreSQL 15 and the S3-compatible server: a primary
//! with a streaming standby (restored by walvault, `restore_command = wal-fetch`,
//! `archive_mode = always`) loses the repository, is stopped, and the standby is promoted; the
//! repository then holds every timeline-1 segment (the ones the primary never archived came
//! from the standby), the `.partial` segment, `00000002.history` and timeline 2 without a gap.
//! The old primary comes back twice: on timeline 1 (its pushes go to names nobody else wrote,
//! and are accepted) and then promoted too, onto timeline 2 with another history: everything it
//! pushes is refused as a conflict, nothing of it reaches the repository, and the promoted
//! standby keeps archiving. A restore to a restore point made after the promotion follows the
//! timeline switch and holds the promoted cluster's data only. Also: a cluster made by
//! `pg_upgrade` (a new system identifier) pointed at the old repository is refused on its first
//! push with what to do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::require_s3;
use crate::skip_or_fail;
use crate::support::backups::{
    Action, archive_everything, archiving, base_backup, configure, contents, restore, start_restored, step,
    walvault,
};
use crate::support::datadir::extra;
use crate::support::pg::{Cluster, pg_bin, tail};
use crate::support::proxy::Proxy;
use crate::support::repo::Repo;
use crate::support::s3::free_port;
use crate::support::{Run, Scratch, as_pg_user, bins, chown_to_pg, remove_tree};

/// Segments of 1 MiB: every switch is cheap to archive.
const SEG_MB: u64 = 1;

/// The segment name of `lsn` (`X/Y`) on `timeline`, for 1 MiB segments.
fn segment_of(timeline: u32, lsn: &str) -> String {
    let (hi, lo) = lsn.split_once('/').unwrap();
    let lsn = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    let segno = lsn / (SEG_MB << 20);
    let per_log = 0x1_0000_0000 / (SEG_MB << 20);
    format!("{timeline:08X}{:08X}{:08X}", segno / per_log, segno % per_log)
}

/// The next segment's name on the same timeline.
fn next(name: &str) -> String {
    let tli = u32::from_str_radix(&name[..8], 16).unwrap();
    let segno = u64::from_str_radix(&name[8..16], 16).unwrap() * 4096
        + u64::from_str_radix(&name[16..], 16).unwrap()
        + 1;
    format!("{tli:08X}{:08X}{:08X}", segno / 4096, segno % 4096)
}

/// The repository key of a WAL file name.
fn key(name: &str) -> String {
    if name.ends_with(".history") {
        format!("wal/history/{name}")
    } else {
        format!("wal/{}/{name}", &name[..16])
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

/// wal-push run as PostgreSQL's archiver runs it: in `c`'s data directory, as its user.
fn push_as_archiver(c: &Cluster, cfg: &Path, name: &str) -> Run {
    Run::of(
        as_pg_user(&bins().push).current_dir(&c.data).arg("--config").arg(cfg).arg(format!("pg_wal/{name}")),
    )
}

/// Switches `c` to a new segment after a write (a switch with nothing written does nothing);
/// returns the name of the segment it completed.
fn switch(c: &Cluster, what: &str) -> String {
    static ROW: AtomicU32 = AtomicU32::new(100_000);
    c.sql(&format!("insert into t values (-{}, '{what}')", ROW.fetch_add(1, Ordering::Relaxed)));
    let lsn = c.sql("select pg_switch_wal()");
    c.sql(&format!("select pg_walfile_name('{lsn}')"))
}

/// What `c`'s server log and its wal-push state directory's pusher log say.
fn archiver_logs(c: &Cluster) -> String {
    let pusher = std::fs::read_to_string(c.data.join("pg_wal/.walvault/pusher.log")).unwrap_or_default();
    format!("{}\n{pusher}", c.log_text())
}

/// Only the WAL objects of a listing.
fn wal_objects(listing: &BTreeMap<String, (u64, String)>) -> BTreeMap<String, (u64, String)> {
    listing.iter().filter(|(k, _)| k.starts_with("wal/")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn pg_failover_split_brain_and_restore_across_the_switch() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let server = require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg = repo.config(&scratch, "walvault.toml", &extra("zstd", None));
    let good_command = format!("{} --config {} %p", bins().push.display(), cfg.display());
    // The primary reaches the repository through a proxy, to be cut by killing it (which cuts
    // wal-push's background pusher too, not only PostgreSQL's next calls).
    let proxy = Proxy::start(crate::require_proxy!(), server.endpoint.trim_start_matches("http://"), 0);
    let p_cfg = scratch.file(
        "primary.toml",
        format!(
            "timeout = \"2s\"\nretries = 1\n{}",
            std::fs::read_to_string(&cfg)
                .unwrap()
                .replace(&server.endpoint, &format!("http://{}", proxy.addr))
        ),
    );

    let mut p = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize=1"]);
    configure(&p, &archiving(&p_cfg));
    p.configure(&[("wal_keep_size", "64MB")]);
    p.start();
    p.sql("create table t (i int primary key, v text)");
    p.sql("insert into t select g, 'v0' from generate_series(1, 500) g");
    let backup = base_backup(&cfg, &p);

    // The standby: the walvault backup restored, then made a standby of the primary, archiving
    // what it receives.
    let sdir = scratch.path().join("standby");
    restore(&cfg, &sdir, &[]).expect(0);
    std::fs::remove_file(sdir.join("recovery.signal")).unwrap();
    std::fs::write(sdir.join("standby.signal"), "").unwrap();
    chown_to_pg(&sdir);
    let mut s =
        Cluster::at(&bin, sdir.clone(), scratch.subdir("standby-sock"), scratch.path().join("standby.log"));
    s.configure(&[
        ("primary_conninfo", &format!("host={} port={} user=postgres", p.sock.display(), p.port)),
        ("archive_mode", "always"),
        // Its own way to the repository (the restored one is the primary's, through the proxy).
        ("archive_command", &good_command),
    ]);
    s.start();
    p.wait_for(
        "select count(*) from pg_stat_replication where state = 'streaming'",
        "1",
        Duration::from_secs(120),
    );
    let caught_up =
        "select coalesce(bool_and(replay_lsn >= pg_current_wal_flush_lsn()), false) from pg_stat_replication";

    // Both archive the same timeline-1 segments; whichever comes second finds an identical copy.
    step(&p, 1, false);
    let both = [switch(&p, "both archive"), switch(&p, "both archive")];
    for c in [&p, &s] {
        c.wait_for(
            &format!("select coalesce(last_archived_wal >= '{}', false) from pg_stat_archiver", both[1]),
            "t",
            Duration::from_secs(120),
        );
        assert_eq!(
            c.sql("select failed_count from pg_stat_archiver"),
            "0",
            "{}",
            tail(&archiver_logs(c), 30)
        );
    }
    for name in &both {
        let said = format!("{name} was already archived with the same contents");
        assert!(
            archiver_logs(&p).contains(&said) || archiver_logs(&s).contains(&said),
            "{name} was archived by both, but neither says it found the other's copy"
        );
    }

    // The primary loses the repository (the fault that leads to the failover): the last
    // complete segments reach the archive only through the standby.
    drop(proxy);
    let only_standby = [switch(&p, "only the standby archives"), switch(&p, "only the standby archives")];
    // WAL only partly in a segment: what becomes the .partial.
    p.sql("insert into t values (-7000, 'last commit of the primary')");
    let primary_last = contents(&p, false);
    let last_lsn = p.sql("select pg_current_wal_lsn()");
    p.wait_for(caught_up, "t", Duration::from_secs(60));
    s.wait_for(
        &format!("select coalesce(last_archived_wal >= '{}', false) from pg_stat_archiver", only_standby[1]),
        "t",
        Duration::from_secs(120),
    );
    let p_archived = p.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver");
    assert!(p_archived < only_standby[0], "the primary archived {p_archived} despite the cut");
    // Its archive_command fails once wal-push gives up retrying the unreachable repository,
    // which may be after the standby archived both segments.
    p.wait_for("select failed_count > 0 from pg_stat_archiver", "t", Duration::from_secs(120));
    // The primary is lost (an immediate stop: a clean one would switch to a new segment first,
    // leaving only its shutdown checkpoint in the .partial).
    Run::of(as_pg_user(bin.join("pg_ctl")).args(["-w", "-m", "immediate", "-D"]).arg(&p.data).arg("stop"))
        .expect(0);

    // Failover.
    s.wait_for("select count(*) from t where i = -7000", "1", Duration::from_secs(60));
    assert_eq!(contents(&s, false), primary_last, "the standby lacks the primary's last commit");
    assert_eq!(s.sql("select pg_promote()"), "t");
    let history = std::fs::read_to_string(sdir.join("pg_wal/00000002.history")).unwrap();
    let fork = history.split('\t').nth(1).unwrap().to_string();
    let partial = format!("{}.partial", segment_of(1, &fork));
    assert_eq!(
        segment_of(1, &last_lsn),
        segment_of(1, &fork),
        "the primary's last commit is not in the .partial"
    );
    let fork_segment = segment_of(2, &fork);
    eprintln!(
        "archived by both: {both:?}, by the standby only: {only_standby:?}; promoted at {fork}: {partial}, \
         timeline 2 from {fork_segment}"
    );
    let m_promoted = step(&s, 11, false);
    archive_everything(&s);
    step(&s, 12, false);
    archive_everything(&s);

    let listing = repo.listing();
    for name in ["00000002.history", &partial, &fork_segment] {
        assert!(listing.contains_key(&key(name)), "{name} not archived: {:?}", listing.keys());
    }
    // The archived copies are the primary's bytes (the standby wrote the last two).
    for name in both.iter().chain(&only_standby) {
        let out = scratch.path().join("fetched");
        Run::of(std::process::Command::new(&bins().fetch).arg("--config").arg(&cfg).arg(name).arg(&out))
            .expect(0);
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(p.data.join("pg_wal").join(name)).unwrap(),
            "archived {name} differs from the primary's segment"
        );
    }
    let list = Run::of(walvault(&cfg).args(["list", "--json"]));
    let l: serde_json::Value = serde_json::from_str(&list.expect(0).stdout).unwrap();
    let tl = |n: u64| l["wal"].as_array().unwrap().iter().find(|t| t["timeline"] == n).unwrap().clone();
    let (one, two) = (tl(1), tl(2));
    assert_eq!(one["gaps"], serde_json::json!([]), "{l:#}");
    assert_eq!(one["partial"], serde_json::json!([partial]), "{l:#}");
    // One run from the backup's first segment to the one before the fork.
    let desc: serde_json::Value =
        serde_json::from_slice(&repo.get(&format!("backups/{backup}.json"))).unwrap();
    let backup_start = segment_of(1, desc["start_lsn"].as_str().unwrap());
    assert_eq!(one["ranges"].as_array().unwrap().len(), 1, "{l:#}");
    assert!(one["ranges"][0]["first"].as_str().unwrap() <= backup_start.as_str(), "{l:#}");
    assert_eq!(next(one["ranges"][0]["last"].as_str().unwrap()), segment_of(1, &fork), "{l:#}");
    assert_eq!(two["gaps"], serde_json::json!([]), "{l:#}");
    assert_eq!(two["ranges"][0]["first"], fork_segment.as_str(), "{l:#}");
    assert_eq!(two["history"], true);
    let before_split = wal_objects(&listing);

    // Split brain, first form: the old primary is started again, still on timeline 1, with its
    // way to the repository back. Its backlog is what the standby archived (identical: accepted);
    // what it writes now goes to timeline-1 names nobody else wrote (accepted too).
    p.configure(&[("archive_command", &good_command)]);
    p.start();
    p.sql("select pg_stat_reset_shared('archiver')");
    let tl1_after_split = switch(&p, "old primary after the split");
    assert_eq!(tl1_after_split, segment_of(1, &fork), "the old primary's segment after the split");
    p.wait_for(
        &format!("select coalesce(last_archived_wal >= '{tl1_after_split}', false) from pg_stat_archiver"),
        "t",
        Duration::from_secs(120),
    );
    assert_eq!(p.sql("select failed_count from pg_stat_archiver"), "0", "{}", tail(&archiver_logs(&p), 30));
    for name in &only_standby {
        let said = format!("{name} was already archived with the same contents");
        assert!(
            archiver_logs(&p).contains(&said),
            "the old primary's backlog {name}: {}",
            tail(&archiver_logs(&p), 30)
        );
    }
    let after_tl1 = wal_objects(&repo.listing());
    for (k, v) in &before_split {
        assert_eq!(after_tl1.get(k), Some(v), "{k} changed when the old primary came back");
    }
    assert!(
        after_tl1.contains_key(&key(&tl1_after_split)),
        "the old primary's {tl1_after_split} not archived"
    );

    // Split brain, second form: the old primary is promoted too (a standby.signal and a
    // promotion, with no restore_command that would show it the archived 00000002.history): it
    // takes timeline 2 as well, forking later. Everything it archives is refused.
    p.stop();
    std::fs::write(p.data.join("standby.signal"), "").unwrap();
    chown_to_pg(&p.data);
    p.start();
    assert_eq!(p.sql("select pg_promote()"), "t");
    let p_history = std::fs::read(p.data.join("pg_wal/00000002.history")).unwrap();
    assert_ne!(p_history, history.as_bytes(), "the second promotion forked where the first did: no conflict");
    p.sql("insert into t values (-9100, 'second primary on timeline 2')");
    let p_tl2: Vec<String> = (0..3).map(|_| switch(&p, "second primary on timeline 2")).collect();
    p.wait_for(
        "select failed_count >= 3 and last_failed_wal = '00000002.history' from pg_stat_archiver",
        "t",
        Duration::from_secs(120),
    );
    assert!(
        p.log_text().contains("00000002.history is already archived with different contents"),
        "{}",
        tail(&p.log_text(), 30)
    );
    // PostgreSQL's archiver does not go past the refused history file; neither may wal-push's
    // background pusher (it exits after 2 s without work).
    std::thread::sleep(Duration::from_secs(4));
    let archived_history = repo.get(&key("00000002.history"));
    let refused = push_as_archiver(&p, &cfg, "00000002.history");
    refused.expect(3).says(&[
        "00000002.history is already archived with different contents",
        &sha(&p_history),
        &sha(history.as_bytes()),
    ]);
    assert_eq!(refused.error_lines().len(), 1, "{}", refused.stderr);
    // A timeline-2 segment the promoted standby archived under the same name.
    let clash = &p_tl2[0];
    assert!(after_tl1.contains_key(&key(clash)), "the promoted standby never archived {clash}");
    push_as_archiver(&p, &cfg, clash)
        .expect(3)
        .says(&[&format!("{clash} is already archived with different contents")]);
    assert_eq!(repo.get(&key("00000002.history")), archived_history, "the archived history changed");
    let after_second = wal_objects(&repo.listing());
    assert_eq!(
        after_second.keys().filter(|k| !after_tl1.contains_key(*k)).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "the second primary on timeline 2 got files into the repository\n{}",
        archiver_logs(&p)
    );
    assert_eq!(after_second, after_tl1, "an archived object changed");
    p.stop();

    // The promoted standby keeps archiving, past the names the second primary tried.
    let m_target = step(&s, 13, false);
    let mut last = String::new();
    while last.is_empty() || last <= *p_tl2.last().unwrap() {
        last = switch(&s, "promoted standby goes on");
    }
    archive_everything(&s);
    step(&s, 14, false);
    archive_everything(&s);
    s.stop();

    // A restore to a restore point made on timeline 2 follows the switch: the promoted
    // standby's data, none of the old primary's writes after the split.
    let rdir = scratch.path().join("restored");
    restore(
        &cfg,
        &rdir,
        &["--backup", &backup, "--target-name", &m_target.name, "--target-action", "promote"],
    )
    .expect(0);
    let r = start_restored(&bin, &scratch, &rdir, Action::Promote);
    let log = r.log_text();
    assert!(log.contains("restored log file \"00000002.history\" from archive"), "{}", tail(&log, 40));
    assert!(
        log.contains(&format!("recovery stopping at restore point \"{}\"", m_target.name)),
        "{}",
        tail(&log, 40)
    );
    assert_eq!(
        contents(&r, false),
        m_target.contents,
        "restored contents differ from the promoted standby's"
    );
    assert_eq!(r.sql("select count(*) from t where v like 'old primary%' or v like 'second primary%'"), "0");
    assert_eq!(r.sql("select count(*) from t where i = -7000 or i = -11"), "2", "{m_promoted:?}");
    r.sql("checkpoint");
    assert_eq!(
        r.sql("select timeline_id from pg_control_checkpoint()"),
        "3",
        "the restore's promotion reused a timeline"
    );
    drop(r);
    remove_tree(&rdir);
    let verify = Run::of(walvault(&cfg).arg("verify"));
    eprintln!("verify: {}{}", verify.stdout, verify.stderr);
    verify.expect(0);
}

/// A real `pg_upgrade` (PostgreSQL 15 into a new PostgreSQL 15 cluster: the same major, which
/// pg_upgrade allows, and a new `initdb`, so a new system identifier) with the old
/// configuration kept: the new cluster's first push into the old repository is refused with
/// one line that names both identifiers and says what to do; so is a base backup; the
/// repository is untouched.
#[test]
fn pg_upgraded_cluster_is_refused_by_the_old_repository() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    if !bin.join("pg_upgrade").exists() {
        skip_or_fail!("pg_upgrade not found in {}", bin.display());
    }
    let server = require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let cfg = repo.config(&scratch, "walvault.toml", &extra("lz4", None));
    let mut old = Cluster::init(&scratch, "old", &bin, &[]);
    configure(&old, &archiving(&cfg));
    old.start();
    old.sql("create table t (i int primary key, v text)");
    old.sql("insert into t select g, 'before the upgrade' from generate_series(1, 1000) g");
    archive_everything(&old);
    let old_id = old.sql("select system_identifier from pg_control_system()");
    old.stop();

    let new_dir = scratch.path().join("new");
    Run::of(
        as_pg_user(bin.join("initdb"))
            .args(["--no-sync", "-U", "postgres", "-A", "trust", "-D"])
            .arg(&new_dir),
    )
    .expect(0);
    let work = scratch.subdir("upgrade");
    let upgrade = Run::of(
        as_pg_user(bin.join("pg_upgrade"))
            .current_dir(&work)
            .arg("-b")
            .arg(&bin)
            .arg("-B")
            .arg(&bin)
            .arg("-d")
            .arg(&old.data)
            .arg("-D")
            .arg(&new_dir)
            .arg("--socketdir")
            .arg(&work)
            .args([
                "-U",
                "postgres",
                "--no-sync",
                "-p",
                &free_port().to_string(),
                "-P",
                &free_port().to_string(),
            ]),
    );
    upgrade.expect(0);
    let before = repo.listing();

    // The upgraded cluster, with the old cluster's archiving settings (as a kept
    // postgresql.conf would give it).
    let mut new = Cluster::at(&bin, new_dir, scratch.subdir("new-sock"), scratch.path().join("new.log"));
    configure(&new, &archiving(&cfg));
    new.start();
    let new_id = new.sql("select system_identifier from pg_control_system()");
    assert_ne!(new_id, old_id, "pg_upgrade kept the system identifier");
    assert_eq!(new.sql("select count(*) from t"), "1000", "pg_upgrade lost the data");
    let first = switch(&new, "after the upgrade");
    new.wait_for(
        &format!("select failed_count > 0 and last_failed_wal = '{first}' from pg_stat_archiver"),
        "t",
        Duration::from_secs(120),
    );
    assert_eq!(new.sql("select coalesce(last_archived_wal, '-') from pg_stat_archiver"), "-");
    let advice =
        "give it its own repository (set `repo` to a new prefix or bucket) and take a base backup there";
    let run = push_as_archiver(&new, &cfg, &first);
    run.expect(3).says(&[&new_id, &old_id, "refusing to mix clusters", advice]);
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    eprintln!("{}", run.error_lines()[0]);
    assert!(new.log_text().contains(advice), "{}", tail(&new.log_text(), 20));
    let conninfo = format!("host={} port={} user=postgres", new.sock.display(), new.port);
    let backup = Run::of(walvault(&cfg).args(["base-backup", "--fast-checkpoint", "-d", &conninfo]));
    backup.expect(3).says(&[&new_id, &old_id, advice]);
    assert_eq!(backup.error_lines().len(), 1, "{}", backup.stderr);
    new.stop();
    assert_eq!(repo.listing(), before, "the upgraded cluster changed the old repository");
}
