//! Storage that misbehaves, for the fault tests: `fault-proxy` (bench/fault_proxy.rs, built with
//! the `test-tools` feature) in front of an S3 server, switched from mode to mode through its
//! control port; a private moto server a test can stop and start again on the same port; a
//! size-limited tmpfs, unmounted on drop; and the check that every object of a repository
//! decodes and verifies.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Scratch;
use super::repo::Repo;
use super::s3::{S3Server, free_port, http};

/// The fault proxy program, built only with the `test-tools` feature.
pub fn program() -> Option<&'static str> {
    option_env!("CARGO_BIN_EXE_fault-proxy")
}

/// The fault proxy program, or a loud skip (a failure under CI).
#[macro_export]
macro_rules! require_fault_proxy {
    () => {
        match $crate::support::faults::program() {
            Some(p) => p,
            None => $crate::skip_or_fail!("fault-proxy is not built: run with --features test-tools"),
        }
    };
}

pub use super::seed;

/// A running fault proxy; killed on drop.
pub struct FaultProxy {
    /// `http://ADDR`, the endpoint to give walvault.
    pub endpoint: String,
    control: String,
    child: Child,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`), passing everything.
    pub fn start(program: &str, upstream: &str, seed: u64) -> FaultProxy {
        let mut child = Command::new(program)
            .args(["--upstream", upstream.trim_start_matches("http://"), "--seed", &seed.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = |prefix: &str| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            l.trim().strip_prefix(prefix).unwrap_or_else(|| panic!("fault-proxy printed {l:?}")).to_string()
        };
        let addr = line("listening on ");
        let control = line("control on ");
        FaultProxy { endpoint: format!("http://{addr}"), control: format!("http://{control}"), child }
    }

    /// A new fault setting, e.g. `mode=503&every=2&path=/wal/` (see bench/fault_proxy.rs).
    pub fn set(&self, setting: &str) {
        let (status, body) =
            super::http::request(&self.control, "GET", &format!("/set?{setting}"), &[], b"").unwrap();
        assert_eq!(status, 200, "fault-proxy refused {setting}: {}", String::from_utf8_lossy(&body));
    }

    /// Passes everything again (and brings a downed proxy back).
    pub fn pass(&self) {
        self.set("mode=pass");
    }

    /// What the proxy has seen: `requests`, `injected`, `faults` per mode, `faulted` lines.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = super::http::request(&self.control, "GET", "/stats", &[], b"").unwrap();
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    }

    /// Faults injected so far (all settings).
    pub fn injected(&self) -> u64 {
        self.stats()["injected"].as_u64().unwrap()
    }

    /// A copy of `repo`'s config that reaches its server through this proxy.
    pub fn config(&self, repo: &Repo, server: &str, scratch: &Scratch, name: &str, extra: &str) -> PathBuf {
        let direct = repo.config(scratch, &format!("{name}.direct"), extra);
        let text = std::fs::read_to_string(&direct).unwrap().replace(server, &self.endpoint);
        assert!(text.contains(&self.endpoint), "the config names no endpoint to replace: {text}");
        scratch.file(name, text)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto server of the test's own (not the run's shared one), on a fixed port so that it can
/// be stopped and started again at the same address. moto keeps everything in memory: a
/// restarted server is empty.
pub struct PrivateMoto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    child: Option<Child>,
}

impl PrivateMoto {
    /// Starts one on a free port; `None` without moto.
    pub fn start() -> Option<PrivateMoto> {
        super::s3::moto_server()?;
        let port = free_port();
        let mut m = PrivateMoto { endpoint: format!("http://127.0.0.1:{port}"), port, child: None };
        m.up();
        Some(m)
    }

    /// Starts the server (again) and waits until it answers.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "already running");
        let moto = super::s3::moto_server().expect("moto was found before");
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while http(&self.endpoint, "GET", "/").is_err() {
            assert!(start.elapsed() < Duration::from_secs(60), "moto did not come up on {}", self.endpoint);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL, by pid), as a crash would: connections are refused after.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server as the repository helpers take it (this struct stops it, not that one).
    pub fn server(&self) -> S3Server {
        S3Server::at(&self.endpoint)
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A size-limited tmpfs mounted on a fresh directory under /tmp, owned by PostgreSQL's user,
/// unmounted and removed on drop.
pub struct Tmpfs {
    /// The mount point.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `4m`); `Err` says why it cannot.
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        if !super::is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        let path = std::env::temp_dir().join(super::unique("wv-tmpfs"));
        std::fs::create_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&path);
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        super::chown_to_pg(&path);
        Ok(Tmpfs { path })
    }

    /// Bytes still free on it.
    pub fn free(&self) -> u64 {
        let out = Command::new("stat").args(["-f", "-c", "%a %S"]).arg(&self.path).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
        v[0] * v[1]
    }

    /// Fills it up with a file (`name`) until at most `leave` bytes are free.
    pub fn fill(&self, name: &str, leave: u64) -> PathBuf {
        use std::io::Write;
        let p = self.path.join(name);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p).unwrap();
        let block = vec![0x5a_u8; 4096];
        while self.free() > leave {
            let want = (self.free() - leave).min(block.len() as u64) as usize;
            if f.write_all(&block[..want]).is_err() {
                break;
            }
            f.flush().unwrap();
        }
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // A background helper may still have a file open: a lazy unmount detaches it anyway.
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success())
            || Command::new("umount").arg("-l").arg(&self.path).status().is_ok_and(|s| s.success());
        if ok {
            let _ = std::fs::remove_dir(&self.path);
        } else {
            eprintln!("could not unmount {}", self.path.display());
        }
    }
}

/// A size-limited tmpfs, or a loud skip (a failure under `CI=true`).
#[macro_export]
macro_rules! require_tmpfs {
    ($size:expr) => {
        match $crate::support::faults::Tmpfs::mount($size) {
            Ok(t) => t,
            Err(why) => $crate::skip_or_fail!("{why}"),
        }
    };
}

/// The stored objects of `repo` (read directly, not through any proxy) that are walvault objects
/// (not JSON descriptors, markers or `walvault.json`), each decoded and verified; returns each
/// one's key and decoded bytes' SHA-256 and length. Panics, naming the object, on any that does
/// not decode and verify.
pub fn decode_all(repo: &Repo) -> Vec<(String, String, u64)> {
    use sha2::Digest;
    let keys = walvault::keys::KeyRing::new(None, Vec::new());
    let mut out = Vec::new();
    for key in repo.keys() {
        let plain = key.ends_with(".json")
            || key.ends_with(".started")
            || key.ends_with(".keep")
            || key.ends_with(".deleting")
            || key.starts_with("verify/");
        if plain {
            continue;
        }
        let bytes = repo.get(&key);
        let mut dec = walvault::format::Decoder::new(&keys);
        let mut h = sha2::Sha256::new();
        let mut n = 0u64;
        let mut sink = |b: &[u8]| {
            h.update(b);
            n += b.len() as u64;
            Ok(())
        };
        dec.update(&bytes, &mut sink).unwrap_or_else(|e| panic!("{key} does not decode: {e}"));
        let t = dec.finish(&mut sink).unwrap_or_else(|e| panic!("{key} does not verify: {e}"));
        let sha = hex::encode(h.finalize());
        assert_eq!((hex::encode(t.sha256), t.len), (sha.clone(), n), "{key}: trailer and bytes differ");
        out.push((key, sha, n));
    }
    out
}

/// The keys of `repo` under `prefix`.
pub fn keys_under(repo: &Repo, prefix: &str) -> Vec<String> {
    repo.keys().into_iter().filter(|k| k.starts_with(prefix)).collect()
}

/// Files in `dir` (names), sorted; empty when it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|it| it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Kills (by pid) the background helpers walvault started for a test: the processes whose
/// command line or working directory is under `dir` (the prefetcher's spool, the pusher's `pg_wal`), so
/// none outlives the test's directories.
pub fn kill_helpers_under(dir: &Path) {
    let dir = dir.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let helper = args.iter().any(|a| a == "--prefetch-daemon" || a == "--pusher-daemon");
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if helper && (cwd.starts_with(&dir) || args.iter().any(|a| a.starts_with(&dir))) {
            // SAFETY: sending a signal has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
