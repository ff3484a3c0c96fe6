//! Restore drills (`walvault verify --restore-test`): the backup is restored as an operator would
//! restore it (`walvault restore`, run as a separate process, into a temporary directory),
//! started with PostgreSQL's own binaries (unix socket in the temporary directory, no TCP,
//! archiving off, local connections trusted), recovered to the target (by default the end of the
//! archive) and promoted, then checked with `pg_amcheck --all --install-missing` (the copy is
//! thrown away, so the amcheck extension may be installed in it), or, where `pg_amcheck` is
//! missing (PostgreSQL 13), a query in every database. The time to restore and to recover is the recovery time you would
//! have today. The server is stopped and everything removed afterwards, also on failure and on
//! SIGINT/SIGTERM.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;
use tokio::process::Command;

/// What a drill is asked.
#[derive(Clone, Debug)]
pub struct DrillRequest {
    /// The walvault executable (`walvault restore` is run from it).
    pub exe: PathBuf,
    /// The configuration flags `walvault restore` gets (paths absolute).
    pub config_args: Vec<OsString>,
    /// Recovery targets (`--target-time` values); none: one drill to the end of the archive.
    pub targets: Vec<String>,
    /// Where PostgreSQL's binaries are (else found for the backup's major version, else PATH).
    pub pg_bin: Option<PathBuf>,
    /// Where the temporary directories go.
    pub work_dir: PathBuf,
    /// How long recovery may take before the drill gives up.
    pub timeout: Duration,
}

/// One drill's result.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DrillReport {
    /// The backup restored.
    pub backup: String,
    /// The recovery target (`end of archive`, or the time).
    pub target: String,
    /// It restored, recovered and passed the checks.
    pub ok: bool,
    /// Seconds `walvault restore` took.
    pub restore_seconds: f64,
    /// Seconds from starting the server to the end of recovery.
    pub recovery_seconds: f64,
    /// What checked the data: `pg_amcheck --all`, or a query per database.
    pub check: String,
    /// What happened, or why it failed.
    pub message: String,
}

/// Why a drill could not be run at all.
#[derive(Debug, Error)]
pub enum DrillError {
    /// There is no backup (and no dump) to restore.
    #[error("the repository has no backup or dump to restore")]
    NoBackup,
    /// PostgreSQL refuses to run as root.
    #[error("PostgreSQL does not run as root: run walvault verify --restore-test as the PostgreSQL user")]
    AsRoot,
    /// No PostgreSQL binaries for the backup's version.
    #[error("{0}")]
    NoBinaries(String),
    /// The temporary directory could not be made.
    #[error("cannot make a temporary directory in {dir}: {source}")]
    WorkDir {
        /// Where.
        dir: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM.
    #[error("interrupted; the drill's server was stopped and its directory removed")]
    Interrupted,
}

/// Finds `postgres`, `pg_ctl`, `psql` for major version `major` ([`crate::pgbin::find`]).
pub fn find_binaries(dir: Option<&Path>, major: u32) -> Result<PathBuf, DrillError> {
    crate::pgbin::find(dir, major, &["postgres", "pg_ctl", "psql"]).map_err(DrillError::NoBinaries)
}

/// Runs a drill per target (one to the end of the archive without any) of backup `backup`,
/// taken from a server of `server_version` (`server_version_num`).
pub async fn run(
    req: &DrillRequest,
    backup: &str,
    server_version: u32,
) -> Result<Vec<DrillReport>, DrillError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Err(DrillError::AsRoot);
    }
    let bin = find_binaries(req.pg_bin.as_deref(), server_version / 10_000)?;
    let targets: Vec<Option<&str>> = if req.targets.is_empty() {
        vec![None]
    } else {
        req.targets.iter().map(|t| Some(t.as_str())).collect()
    };
    let mut out = Vec::new();
    for target in targets {
        let dir = Scratch::new(&req.work_dir)?;
        let drill = Drill { req, bin: &bin, dir: &dir, backup };
        let result = tokio::select! {
            r = drill.run(target) => r,
            _ = crate::shutdown::signal() => {
                drill.stop_server().await;
                return Err(DrillError::Interrupted);
            }
        };
        drill.stop_server().await;
        tracing::info!("restore drill of {backup}: {}", render(&result));
        out.push(result);
    }
    Ok(out)
}

/// A temporary directory with a short path (it holds the server's socket), removed on drop.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(parent: &Path) -> Result<Scratch, DrillError> {
        let dir = parent.join(format!("wvdrill-{}-{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir(&dir)
            .map_err(|source| DrillError::WorkDir { dir: parent.to_path_buf(), source })?;
        let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A prefetcher started by the drill's recovery may still be leaving its spool.
        for _ in 0..50 {
            match std::fs::remove_dir_all(&self.0) {
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => return,
            }
        }
    }
}

/// A drill's server: its programs, its directory (`data/` and the socket), and what it restores.
pub(super) struct Drill<'a> {
    req: &'a DrillRequest,
    bin: &'a Path,
    dir: &'a Scratch,
    backup: &'a str,
}

/// The last ERROR line of a command's stderr, or its last line.
pub(super) fn why(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("ERROR"))
        .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()));
    line.unwrap_or("no output").trim().to_string()
}

impl<'a> Drill<'a> {
    /// The server of `dir` (its data directory `dir/data`), run with the programs in `bin`, for
    /// `what` (a backup or dump id).
    pub(super) fn new(req: &'a DrillRequest, bin: &'a Path, dir: &'a Scratch, what: &'a str) -> Self {
        Drill { req, bin, dir, backup: what }
    }

    pub(super) fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    async fn run(&self, target: Option<&str>) -> DrillReport {
        let mut report = DrillReport {
            backup: self.backup.to_string(),
            target: target.map_or("end of archive".to_string(), |t| format!("time {t}")),
            ok: false,
            restore_seconds: 0.0,
            recovery_seconds: 0.0,
            check: String::new(),
            message: String::new(),
        };
        if let Err(m) = self.go(target, &mut report).await {
            report.message = m;
        } else {
            report.ok = true;
        }
        report
    }

    async fn go(&self, target: Option<&str>, report: &mut DrillReport) -> Result<(), String> {
        let started = Instant::now();
        tracing::info!("restore drill: restoring backup {} into {}", self.backup, self.data().display());
        let mut restore = Command::new(&self.req.exe);
        restore.arg("restore").args(&self.req.config_args).arg("--target-dir").arg(self.data());
        restore.args(["--backup", self.backup]);
        if let Some(t) = target {
            restore.args(["--target-time", t, "--target-action", "promote"]);
        }
        let out = restore
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run walvault restore: {e}"))?;
        report.restore_seconds = started.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!("walvault restore failed ({}): {}", out.status, why(&out.stderr)));
        }
        let auto = self.data().join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str("\n# walvault verify --restore-test\narchive_mode = 'off'\n");
        std::fs::write(&auto, conf).map_err(|e| format!("cannot write {}: {e}", auto.display()))?;
        let started = Instant::now();
        tracing::info!(
            "restore drill: starting PostgreSQL on the copy and waiting up to {} for recovery to {}",
            crate::units::format_span(self.req.timeout),
            target.unwrap_or("the end of the archive")
        );
        self.start().await?;
        // Recovery ends with promotion; wait for it (bounded).
        loop {
            match self.psql("postgres", "select pg_is_in_recovery()").await {
                Ok(v) if v.trim() == "f" => break,
                Ok(_) => {}
                Err(e) if !self.running() => {
                    return Err(format!(
                        "the restored server stopped during recovery: {e}; {}",
                        self.server_log_tail()
                    ));
                }
                Err(_) => {}
            }
            if started.elapsed() > self.req.timeout {
                return Err(format!(
                    "recovery did not finish within {} s: {}",
                    self.req.timeout.as_secs(),
                    self.server_log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        report.recovery_seconds = started.elapsed().as_secs_f64();
        let amcheck = self.bin.join("pg_amcheck");
        if amcheck.is_file() {
            tracing::info!(
                "restore drill: recovered in {:.1} s; checking the copy with pg_amcheck --all",
                report.recovery_seconds
            );
            report.check = "pg_amcheck --all".into();
            let user = self.superuser().await?;
            // The copy is thrown away: amcheck may be installed in it.
            let out = Command::new(&amcheck)
                .args(["--all", "--install-missing"])
                .arg("-h")
                .arg(&self.dir.0)
                .args(["-p", "5432", "-U", &user, "--no-password"])
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|e| format!("cannot run pg_amcheck: {e}"))?;
            if !out.status.success() {
                let text =
                    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
                let first: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(3).collect();
                return Err(format!("pg_amcheck --all found problems: {}", first.join(" | ")));
            }
        } else {
            report.check = "a query in every database (pg_amcheck not found)".into();
            let dbs = self.psql("postgres", "select datname from pg_database where datallowconn").await?;
            for db in dbs.lines().filter(|l| !l.trim().is_empty()) {
                self.psql(db.trim(), "select count(*) from pg_class").await?;
            }
        }
        report.message = format!(
            "restored in {:.1} s, recovered in {:.1} s, checked with {}",
            report.restore_seconds, report.recovery_seconds, report.check
        );
        Ok(())
    }

    /// Starts the server on [`Self::data`]: archiving off, local connections trusted, a socket
    /// of its own; waits (bounded by the drill's timeout) until it accepts connections.
    pub(super) async fn start(&self) -> Result<(), String> {
        let hba = self.dir.0.join("pg_hba.conf");
        std::fs::write(&hba, "local all all trust\n")
            .map_err(|e| format!("cannot write {}: {e}", hba.display()))?;
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c port=5432 -c hba_file='{}' -c archive_mode=off",
            self.dir.0.display(),
            hba.display()
        );
        let pg_ctl = Command::new(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", &self.req.timeout.as_secs().max(1).to_string(), "-o", &options, "-l"])
            .arg(self.dir.0.join("server.log"))
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if !pg_ctl.status.success() {
            return Err(format!("the server did not start: {}", self.server_log_tail()));
        }
        Ok(())
    }

    /// A superuser to connect as: `postgres`, else this OS user.
    async fn superuser(&self) -> Result<String, String> {
        let me = std::env::var("USER").unwrap_or_else(|_| "postgres".into());
        for user in ["postgres", me.as_str()] {
            if self.psql_as("postgres", user, "select 1").await.is_ok() {
                return Ok(user.to_string());
            }
        }
        Err("cannot connect to the restored server as postgres or as this OS user".into())
    }

    pub(super) async fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        match self.psql_as(db, "postgres", sql).await {
            Ok(v) => Ok(v),
            Err(_) => {
                self.psql_as(db, &std::env::var("USER").unwrap_or_else(|_| "postgres".into()), sql).await
            }
        }
    }

    pub(super) async fn psql_as(&self, db: &str, user: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir.0)
            .args(["-p", "5432", "-U", user, "-d", db, "-X", "-A", "-t", "-w", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(why(&out.stderr))
        }
    }

    pub(super) fn running(&self) -> bool {
        self.data().join("postmaster.pid").exists()
    }

    pub(super) fn server_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("FATAL") || l.contains("ERROR") || l.contains("PANIC"))
            .collect();
        match lines.last() {
            Some(l) => format!("the server log says: {l}"),
            None => {
                log.lines().last().map_or("no server log".into(), |l| format!("the server log ends: {l}"))
            }
        }
    }

    pub(super) async fn stop_server(&self) {
        if self.running() {
            let _ = Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
    }
}

/// One drill's result on one line.
pub fn render(d: &DrillReport) -> String {
    if d.ok {
        format!("restore drill of {} to the {}: ok: {}", d.backup, d.target, d.message)
    } else {
        format!("restore drill of {} to the {}: FAILED: {}", d.backup, d.target, d.message)
    }
}
