//! A real S3-compatible server for tests: moto's server, installed into `.tools/moto` if missing,
//! started on a free loopback port and stopped by pid. `WALVAULT_TEST_S3_ENDPOINT` points tests at
//! an already running one (the test script starts one for the whole run).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running S3-compatible server.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
}

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools")
}

fn works(moto: &Path) -> bool {
    Command::new(moto)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Finds moto's server, installing it into `.tools/moto` (a venv) when it is nowhere.
pub fn moto_server() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WALVAULT_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = tools_dir().join("moto");
    let local = venv.join("bin/moto_server");
    if works(&local) {
        return Some(local);
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v moto_server"]).output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && works(&p) {
            return Some(p);
        }
    }
    // Install once; concurrent test processes wait on the lock.
    std::fs::create_dir_all(tools_dir()).ok()?;
    let lock = std::fs::File::create(tools_dir().join("moto.lock")).ok()?;
    lock.lock().ok()?;
    if !works(&local) {
        eprintln!("installing moto's server into {} ...", venv.display());
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "moto[server]==5.2.5"])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("could not install moto[server] (python3-venv and PyPI are needed)");
        }
    }
    works(&local).then_some(local)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP request without a body; returns the status code.
pub fn http(endpoint: &str, method: &str, path: &str) -> std::io::Result<u16> {
    let host = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))
}

impl S3Server {
    /// The shared server of this test run, or a new moto server; `None` if moto is unavailable.
    pub fn start() -> Option<S3Server> {
        if let Ok(endpoint) = std::env::var("WALVAULT_TEST_S3_ENDPOINT") {
            return Some(S3Server { endpoint, child: None });
        }
        let moto = moto_server()?;
        let port = free_port();
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = S3Server { endpoint: format!("http://127.0.0.1:{port}"), child: Some(child) };
        let start = Instant::now();
        while http(&server.endpoint, "GET", "/").is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                panic!("moto server did not come up on {}", server.endpoint);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// A server some test started and stops itself (not stopped when this is dropped).
    pub fn at(endpoint: &str) -> S3Server {
        S3Server { endpoint: endpoint.to_string(), child: None }
    }

    /// Creates a bucket (a plain PUT; moto does not check signatures).
    pub fn create_bucket(&self, name: &str) {
        let status = http(&self.endpoint, "PUT", &format!("/{name}")).unwrap();
        assert!(status == 200, "creating bucket {name}: HTTP {status}");
    }
}

/// walvault TOML for an S3 repository at `endpoint` (moto accepts any credentials).
pub fn s3_toml(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!(
        "repo = \"s3://{bucket}/{prefix}\"\n[storage]\naws_endpoint = \"{endpoint}\"\naws_allow_http = \"true\"\n\
         aws_access_key_id = \"walvault-test\"\naws_secret_access_key = \"walvault-test-secret\"\naws_region = \"us-east-1\"\n"
    )
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP server that accepts connections and never answers (a black hole for timeout tests).
pub fn silent_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    format!("http://{addr}")
}
