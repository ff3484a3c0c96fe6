//! Test support: the built binaries, scratch directories PostgreSQL's user can use, synthetic WAL
//! segments, repository snapshots, test certificates, and loud skipping (a failure under `CI=true`).

pub mod azure;
pub mod backups;
pub mod certs;
pub mod datadir;
pub mod faults;
pub mod gcs;
pub mod http;
pub mod logs;
pub mod pg;
pub mod proxy;
pub mod receiver;
pub mod repo;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// True when running in CI, where a missing server is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips the current test loudly, or fails it under CI.
#[macro_export]
macro_rules! skip_or_fail {
    ($($arg:tt)*) => {{
        let why = format!($($arg)*);
        if $crate::support::in_ci() {
            panic!("required test dependency missing under CI=true: {why}");
        }
        eprintln!("SKIPPED (not in CI): {why}");
        return;
    }};
}

/// The shared S3-compatible server; without one the test is skipped loudly (failed under CI).
#[macro_export]
macro_rules! require_s3 {
    () => {
        match $crate::support::s3::S3Server::start() {
            Some(server) => server,
            None => $crate::skip_or_fail!("no S3-compatible server (moto) available"),
        }
    };
}

/// Whether this process runs as root (then PostgreSQL runs as the `postgres` user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The user PostgreSQL and the archive commands run as, when we are root.
pub const PG_USER: &str = "postgres";

/// A command run as PostgreSQL's user (directly when we are not root). The process itself
/// changes user (no `runuser` in between), so the `Child` is the program: killing it kills the
/// program, not a wrapper that would leave it running.
pub fn as_pg_user(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    if is_root() {
        use std::os::unix::process::CommandExt;
        let (uid, gid, home) = pg_user();
        c.uid(uid).gid(gid).env("HOME", home).env("USER", PG_USER).env("LOGNAME", PG_USER);
    }
    c
}

/// PostgreSQL's user: uid, gid, home directory.
fn pg_user() -> (u32, u32, PathBuf) {
    static USER: OnceLock<(u32, u32, PathBuf)> = OnceLock::new();
    USER.get_or_init(|| {
        let line = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find(|l| l.split(':').next() == Some(PG_USER))
            .unwrap_or_else(|| panic!("no {PG_USER} user in /etc/passwd"))
            .to_string();
        let f: Vec<&str> = line.split(':').collect();
        (f[2].parse().unwrap(), f[3].parse().unwrap(), PathBuf::from(f[5]))
    })
    .clone()
}

/// Gives a path to PostgreSQL's user (no-op when not root).
pub fn chown_to_pg(path: &Path) {
    if is_root() {
        let st =
            Command::new("chown").args(["-R", &format!("{PG_USER}:{PG_USER}")]).arg(path).status().unwrap();
        assert!(st.success(), "chown {}", path.display());
    }
}

/// A scratch directory under /tmp with a short path (socket paths are limited to ~100 bytes),
/// owned by PostgreSQL's user, removed on drop (its `*.log` files kept in [`logs::dir`]).
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new scratch directory: `/tmp/wv-<run>-…`, `<run>` from `WALVAULT_TEST_RUN` (set by
    /// scripts/test.sh, which stops the clusters left under its own run's directories only, so
    /// two runs on one machine do not stop each other's servers).
    pub fn new() -> Scratch {
        let run = std::env::var("WALVAULT_TEST_RUN").unwrap_or_default();
        let prefix = if run.is_empty() { "wv-".to_string() } else { format!("wv-{run}-") };
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        chown_to_pg(dir.path());
        Scratch { dir }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A subdirectory, created and owned by PostgreSQL's user.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        chown_to_pg(&p);
        p
    }

    /// Writes a file readable by PostgreSQL's user.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        chown_to_pg(&p);
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        logs::keep_logs_under(self.dir.path());
    }
}

/// The built binaries, at a path PostgreSQL's user can execute.
pub struct Bins {
    /// wal-push.
    pub push: PathBuf,
    /// wal-fetch.
    pub fetch: PathBuf,
    /// walvault.
    pub walvault: PathBuf,
}

/// The binaries cargo built for this test run (copied to /tmp once if PostgreSQL's user cannot
/// reach the target directory).
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let built = [
            PathBuf::from(env!("CARGO_BIN_EXE_wal-push")),
            PathBuf::from(env!("CARGO_BIN_EXE_wal-fetch")),
            PathBuf::from(env!("CARGO_BIN_EXE_walvault")),
        ];
        let reachable =
            built.iter().all(|b| as_pg_user("test").arg("-x").arg(b).status().is_ok_and(|s| s.success()));
        let [push, fetch, walvault] = if reachable {
            built
        } else {
            let dir = std::env::temp_dir().join(format!("wv-bin-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            built.map(|b| {
                let to = dir.join(b.file_name().unwrap());
                std::fs::copy(&b, &to).unwrap();
                to
            })
        };
        Bins { push, fetch, walvault }
    })
}

/// The output of a finished command, with helpers for asserting on it.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` and collects everything (also into [`logs::dir`]).
    pub fn of(cmd: &mut Command) -> Run {
        let Output { status, stdout, stderr } = cmd.output().expect("command runs");
        logs::command(cmd.get_program(), status.code().unwrap_or(-1), &stdout, &stderr);
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into(),
            stderr: String::from_utf8_lossy(&stderr).into(),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts stderr mentions every one of `needles`.
    #[track_caller]
    pub fn says(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks {n:?}:\n{}", self.stderr);
        }
        self
    }

    /// The ERROR lines on stderr.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains("ERROR")).collect()
    }
}

/// A synthetic WAL segment: a valid long page header (PostgreSQL 15 magic) for `name` and
/// `system_id`, then pseudo-random but compressible contents.
pub fn fake_segment(name: &str, system_id: u64, seg_size: u32, seed: u64) -> Vec<u8> {
    let tli = u32::from_str_radix(&name[0..8], 16).unwrap();
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    let segno = log * (0x1_0000_0000 / u64::from(seg_size)) + seg;
    let mut b = vec![0u8; seg_size as usize];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly text-like repetition, some noise: compresses like real WAL, a bit.
        let v = if i % 4 == 0 { x } else { 0x2020_6574_6164_7075 + (i as u64 % 16) };
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
    b[2..4].copy_from_slice(&0x0006u16.to_le_bytes());
    b[4..8].copy_from_slice(&tli.to_le_bytes());
    b[8..16].copy_from_slice(&(segno * u64::from(seg_size)).to_le_bytes());
    b[16..24].fill(0);
    b[24..32].copy_from_slice(&system_id.to_le_bytes());
    b[32..36].copy_from_slice(&seg_size.to_le_bytes());
    b[36..40].copy_from_slice(&8192u32.to_le_bytes());
    b
}

/// Removes a directory tree that a background helper (a prefetcher that has not left yet) may
/// still be writing into: retried for a few seconds while the tree is not empty.
pub fn remove_tree(dir: &Path) {
    let start = std::time::Instant::now();
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if start.elapsed() < std::time::Duration::from_secs(10) => {
                eprintln!("removing {} again ({e})", dir.display());
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("cannot remove {}: {e}", dir.display()),
        }
    }
}

/// The seed of a test's randomness: `WALVAULT_TEST_SEED` or a fresh one, printed with `what` so
/// a failure can be repeated.
pub fn seed(what: &str) -> u64 {
    let seed: u64 =
        std::env::var("WALVAULT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("{what} seed {seed} (WALVAULT_TEST_SEED={seed} repeats it)");
    seed
}

/// A random lower-case name for buckets and prefixes.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}
