//! Every log of the suite in one directory, for the secret grep in `scripts/test.sh`: the output
//! of each command [`super::Run`] runs, and the `*.log` files a scratch directory holds when it
//! is removed (PostgreSQL server logs, hence archive_command's and restore_command's stderr,
//! and the logs of wal-push's pusher and wal-fetch's prefetcher). Known test secrets are listed
//! beside them (`secrets.txt`): the fixed ones the fixtures use, and every key a test generates.
//! Command lines are not written (a test may pass a secret as an argument; what matters is
//! whether walvault prints it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Secrets the fixtures use: the S3 secret key of `s3_toml`, the webhook path and header token
/// of the alert tests, the passwords of the replication and base-backup tests.
pub const FIXED_SECRETS: &[&str] = &[
    "walvault-test-secret",
    "SECRET-PATH",
    "TOKEN-XYZ",
    "md5-pass",
    "tls-pass",
    "scr\u{e4}m pass",
    "correct horse",
    "wv-conninfo-password",
];

/// The directory (`WALVAULT_TEST_LOGS`, else `target/test-logs`), created with `secrets.txt`.
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("WALVAULT_TEST_LOGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-logs"));
    let secrets = dir.join("secrets.txt");
    if !secrets.exists() {
        let _ = std::fs::create_dir_all(&dir);
        // Test processes run in parallel: the first one writes the list, nobody truncates it.
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).create_new(true).open(&secrets) {
            let _ = f.write_all((FIXED_SECRETS.join("\n") + "\n").as_bytes());
        }
    }
    dir
}

/// Adds secrets to the list the grep looks for.
pub fn add_secrets(secrets: &[String]) {
    let path = dir().join("secrets.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(path) {
        for s in secrets {
            let _ = writeln!(f, "{s}");
        }
    }
}

/// Adds a key file's key in every form it could leak in: hex (either case) and base64.
pub fn add_key_file(path: &Path) {
    use base64::Engine;
    let Ok(bytes) = std::fs::read(path) else { return };
    let raw = match std::str::from_utf8(&bytes).ok().map(str::trim).and_then(|t| hex::decode(t).ok()) {
        Some(raw) => raw,
        None => bytes,
    };
    let hex = hex::encode(&raw);
    add_secrets(&[
        hex.clone(),
        hex.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(&raw),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
    ]);
}

/// The current test's name (libtest names its thread after the test), for file names.
fn test_name() -> String {
    let name = std::thread::current().name().unwrap_or("unnamed").to_string();
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn next_file(what: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let d = dir().join(test_name());
    let _ = std::fs::create_dir_all(&d);
    let what: String =
        what.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    d.join(format!("{}-{n:05}-{what}.log", std::process::id()))
}

/// Records one finished command's output.
pub fn command(program: &std::ffi::OsStr, code: i32, stdout: &[u8], stderr: &[u8]) {
    let name = Path::new(program).file_name().unwrap_or(program).to_string_lossy().into_owned();
    if let Ok(mut f) = std::fs::File::create(next_file(&name)) {
        let _ = write!(f, "# {name}, exit {code}\n# stdout\n");
        let _ = f.write_all(stdout);
        let _ = f.write_all(b"\n# stderr\n");
        let _ = f.write_all(stderr);
    }
}

/// Records the output of a command a test ran itself (one it had to signal or time).
pub fn output(out: &std::process::Output) {
    command("spawned".as_ref(), out.status.code().unwrap_or(-1), &out.stdout, &out.stderr);
}

/// Copies every `*.log` file under `root` (at most 64 MiB each) before the directory goes.
pub fn keep_logs_under(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && p.extension().is_some_and(|x| x == "log") && meta.len() <= 64 << 20 {
                let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().replace('/', "_");
                let _ = std::fs::copy(&p, next_file(&rel));
            }
        }
    }
}
