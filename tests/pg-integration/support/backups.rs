//! The walvault commands a test runs around a real cluster, as an operator would: archiving
//! settings, `walvault` as PostgreSQL's user, base backups, restores, recorded moments, and
//! starting a restored copy until it reaches its target.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::pg::{Cluster, PG15_BIN, pgbench_fingerprint, tail};
use super::{Run, Scratch, as_pg_user, bins};

/// Settings of every primary: archiving through wal-push, no autovacuum (its commits would not
/// change the recorded tables, but quiet WAL keeps the moments apart), small parts so that every
/// archive is restored from several parts at once.
pub fn archiving(cfg: &Path) -> Vec<(String, String)> {
    [
        ("wal_level", "replica".to_string()),
        ("archive_mode", "on".into()),
        ("archive_command", format!("{} --config {} %p", bins().push.display(), cfg.display())),
        ("autovacuum", "off".into()),
        ("fsync", "off".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn configure(c: &Cluster, settings: &[(String, String)]) {
    let s: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    c.configure(&s);
}

/// `walvault` run as PostgreSQL's user (so the repository and the restored directory are
/// theirs, as in production).
pub fn walvault(cfg: &Path) -> Command {
    let mut c = as_pg_user(&bins().walvault);
    c.env("WALVAULT_CONFIG", cfg);
    c
}

/// Takes a base backup of `c`; returns its id.
pub fn base_backup(cfg: &Path, c: &Cluster) -> String {
    let conninfo = format!("host={} port={} user=postgres", c.sock.display(), c.port);
    let run = Run::of(walvault(cfg).args(["base-backup", "--fast-checkpoint", "--json", "-d", &conninfo]));
    run.expect(0);
    let d: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    d["id"].as_str().unwrap().to_string()
}

/// `walvault restore --target-dir DIR ARGS…`.
pub fn restore(cfg: &Path, dir: &Path, args: &[&str]) -> Run {
    Run::of(walvault(cfg).arg("restore").arg("--target-dir").arg(dir).args(args))
}

/// What a table held at one moment, and where that moment is.
#[derive(Clone, Debug)]
pub struct Moment {
    pub contents: String,
    pub lsn: String,
    pub time: String,
    pub xid: String,
    pub name: String,
}

/// Row count and md5 of `t` (and of the pgbench tables, when `pgbench`).
pub fn contents(c: &Cluster, pgbench: bool) -> String {
    let t = c.sql("select count(*) || ':' || md5(string_agg(i || '=' || v, ',' order by i)) from t");
    if pgbench { format!("{}t={t}", pgbench_fingerprint(c)) } else { format!("t={t}") }
}

/// Changes `t` in one transaction (step `k`) and records the moment right after its commit:
/// contents, LSN, time (UTC, microseconds), the transaction's id, and a restore point.
pub fn step(c: &Cluster, k: u32, pgbench: bool) -> Moment {
    if pgbench {
        Run::of(c.client("pgbench").args(["-n", "-t", "40", "-c", "1", "postgres"])).expect(0);
    }
    let xid = c.sql(&format!(
        "with u as (update t set v = 'v{k}' where i % {} = 0), n as (insert into t values (-{k}, 'new{k}')) \
         select txid_current()",
        k + 1,
    ));
    let name = format!("step{k}");
    let m = Moment {
        contents: contents(c, pgbench),
        lsn: c.sql("select pg_current_wal_lsn()"),
        time: c
            .sql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"),
        xid,
        name: name.clone(),
    };
    c.sql(&format!("select pg_create_restore_point('{name}')"));
    // Commits of the next step get later timestamps than the time recorded here.
    std::thread::sleep(Duration::from_millis(300));
    m
}

/// Switches to a new segment and waits until it is archived.
pub fn archive_everything(c: &Cluster) {
    let switched = c.sql("select pg_switch_wal()");
    let last = c.sql(&format!("select pg_walfile_name('{switched}')"));
    c.wait_for(
        &format!("select coalesce(last_archived_wal >= '{last}', false) from pg_stat_archiver"),
        "t",
        Duration::from_secs(180),
    );
    assert_eq!(c.sql("select failed_count from pg_stat_archiver"), "0", "{}", tail(&c.log_text(), 40));
}

/// `pg_verifybackup -n` (PostgreSQL 15's) on a restored directory, with extra arguments.
pub fn verifybackup(dir: &Path, extra: &[&str]) -> Run {
    Run::of(Command::new(Path::new(PG15_BIN).join("pg_verifybackup")).arg("-n").args(extra).arg(dir))
}

/// How a restored cluster is expected to end up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Paused at the target, read-only (PostgreSQL's default).
    Pause,
    /// Promoted at the target.
    Promote,
    /// Shut down at the target.
    Shutdown,
}

/// Starts the restored `dir` with `pg_ctl start` and no other step, waits until it reaches
/// the target, and returns it (running unless `Shutdown`).
pub fn start_restored(bin: &Path, scratch: &Scratch, dir: &Path, action: Action) -> Cluster {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let sock = scratch.subdir(&format!("{name}-sock"));
    let log = scratch.path().join(format!("{name}.log"));
    let mut c = Cluster::at(bin, dir.to_path_buf(), sock, log.clone());
    // Promotions must not add timelines to the repository the next restore of the test reads.
    c.configure(&[("archive_mode", "off")]);
    if action == Action::Shutdown {
        // pg_ctl start without waiting: the server may be gone before it would see it ready.
        let opts = format!("-c listen_addresses='' -k {} -p {}", c.sock.display(), c.port);
        Run::of(
            as_pg_user(bin.join("pg_ctl"))
                .args(["-W", "-D"])
                .arg(dir)
                .arg("-l")
                .arg(&log)
                .args(["-o", &opts, "start"]),
        )
        .expect(0);
        let start = Instant::now();
        while dir.join("postmaster.pid").exists() || !c.log_text().contains("database system is shut down") {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no shutdown at the target:\n{}",
                c.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        return c;
    }
    c.start();
    let done = match action {
        Action::Pause => "select pg_is_in_recovery() and pg_get_wal_replay_pause_state() = 'paused'",
        _ => "select not pg_is_in_recovery()",
    };
    c.wait_for(done, "t", Duration::from_secs(180));
    c
}
