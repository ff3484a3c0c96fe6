//! Secrets never reach a log: every command run at the most verbose level (`WALVAULT_LOG=trace`)
//! in both log formats, on success and failure paths, with every kind of secret configured: an
//! encryption key (looked for as hex in either case and as base64), an S3 secret access key
//! (against moto), a webhook URL with a token in its path and a token header (pointing at a dead
//! port, so alerts fail and their errors are logged), and a password in a conninfo and in
//! `PGPASSWORD`. Nothing of them may appear on stdout or stderr, or in the logs the background
//! helpers leave in the data directory. The whole suite's logs are grepped for the same
//! secrets by `scripts/test.sh` (see `support::logs`).

use std::path::Path;
use std::process::Command;

use crate::require_s3;
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra, keygen};
use crate::support::repo::Repo;
use crate::support::s3::free_port;
use crate::support::{Run, Scratch, bins, fake_segment};

const PASSWORD: &str = "wv-conninfo-password";

/// The forms a key may leak in.
fn key_forms(path: &Path) -> Vec<String> {
    use base64::Engine;
    let raw = hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
    let hex = hex::encode(&raw);
    vec![
        hex.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(&raw),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
        // Half of the hex: a key cut in a message is still a leak.
        hex[..32].to_string(),
        hex,
    ]
}

#[test]
fn no_secret_in_any_log_at_trace_level() {
    let s3 = require_s3!();
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::s3(&s3);
    let key = keygen(&scratch, "master.key");
    let other_key = keygen(&scratch, "other.key");
    let dead = free_port();
    let notify = format!(
        "\n[notify]\nwebhook = \"http://127.0.0.1:{dead}/services/T0/B0/SECRET-PATH\"\nrepeat_after = \"1s\"\n\
         timeout = \"1s\"\n[notify.headers]\nAuthorization = \"Bearer TOKEN-XYZ\"\n"
    );
    let cfg = repo.config(
        &scratch,
        "c.toml",
        &format!("timeout = \"5s\"\nretries = 1\n{}{notify}", extra("zstd", Some(&key))),
    );
    let wrong_key = repo.config(&scratch, "wrong.toml", &extra("zstd", Some(&other_key)));
    let mut secrets: Vec<String> = ["walvault-test-secret", "SECRET-PATH", "TOKEN-XYZ", PASSWORD]
        .iter()
        .map(|s| s.to_string())
        .collect();
    secrets.extend(key_forms(&key));
    secrets.extend(key_forms(&other_key));
    let conninfo = format!("host=127.0.0.1 port={dead} user=backup password={PASSWORD} connect_timeout=2");

    let name = "000000010000000000000001";
    let rel = data.wal(name, &fake_segment(name, SYSID, SEG_1M, 1));
    let not_wal = data.wal("000000010000000000000002", &vec![b'x'; SEG_1M as usize]);
    let target = scratch.path().join("restored");
    let out = scratch.path().join("dump.out");
    let c = cfg.to_str().unwrap();
    let wv: Vec<Vec<String>> = [
        vec!["config", "--config", c],
        vec!["list", "--config", c],
        vec!["list", "--json", "--config", c],
        vec!["verify", "--config", c],
        vec!["status", "--config", c],
        vec!["delete", "--retain-full", "1", "--config", c],
        vec!["check", "--config", c, "-d", &conninfo, "--wait", "2s"],
        vec!["base-backup", "--config", c, "-d", &conninfo],
        vec!["base-backup", "--config", c],
        vec!["restore", "--config", c, "--target-dir", target.to_str().unwrap()],
        vec!["dump", "--config", c, "-d", &conninfo, "--database", "postgres"],
        vec!["dump-restore", "--config", c, "-d", &conninfo, "20200101T000000Z"],
        vec!["dump-fetch", "--config", c, "--output", out.to_str().unwrap(), "20200101T000000Z"],
        vec!["mark", "20200101T000000Z", "--keep", "--config", c],
    ]
    .iter()
    .map(|a| a.iter().map(|s| s.to_string()).collect())
    .collect();

    let mut runs = 0;
    let mut leaks = Vec::new();
    let mut check = |what: &str, run: &Run| {
        runs += 1;
        for s in &secrets {
            if run.stdout.contains(s.as_str()) || run.stderr.contains(s.as_str()) {
                leaks.push(format!("{what}: a secret ({} chars) in its output", s.len()));
            }
        }
        assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
    };
    for format in ["text", "json"] {
        let env = |cmd: &mut Command| {
            cmd.env("WALVAULT_LOG", "trace").env("WALVAULT_LOG_FORMAT", format).env("PGPASSWORD", PASSWORD);
        };
        let push = |cfg: &Path, rel: &str| {
            let mut cmd = data.push_cmd(cfg, &[rel]);
            env(&mut cmd);
            Run::of(&mut cmd)
        };
        let fetch = |cfg: &Path, name: &str| {
            let mut cmd = Command::new(&bins().fetch);
            cmd.current_dir(&data.path).arg("--config").arg(cfg).args([name, "pg_wal/RECOVERYXLOG"]);
            env(&mut cmd);
            Run::of(&mut cmd)
        };
        let r = push(&cfg, &rel);
        assert!(r.code == 0, "{}", r.stderr);
        assert!(
            r.stderr.contains("TRACE") || r.stderr.contains("\"TRACE\"") || r.stderr.contains("DEBUG"),
            "not verbose: {}",
            r.stderr
        );
        check("wal-push", &r);
        check("wal-push (again)", &push(&cfg, &rel));
        check("wal-push (not WAL)", &push(&cfg, &not_wal));
        check("wal-push (missing)", &push(&cfg, "pg_wal/000000010000000000000009"));
        check("wal-fetch", &fetch(&cfg, name));
        check("wal-fetch (not archived)", &fetch(&cfg, "000000010000000000000007"));
        check("wal-fetch (wrong key)", &fetch(&wrong_key, name));
        for args in &wv {
            let mut cmd = Command::new(&bins().walvault);
            cmd.args(args);
            env(&mut cmd);
            let run = Run::of(&mut cmd);
            check(&format!("walvault {}", args[0]), &run);
        }
    }
    // The detached helpers (pusher, alert sender) log into the data directory.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut helper_logs = 0;
    for entry in walk(&data.path) {
        if entry.extension().is_some_and(|x| x == "log") || entry.to_string_lossy().contains("alert") {
            let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned();
            helper_logs += 1;
            for s in &secrets {
                if text.contains(s.as_str()) {
                    leaks.push(format!("{}: a secret ({} chars)", entry.display(), s.len()));
                }
            }
        }
    }
    eprintln!(
        "secrets: {runs} runs at trace level, {helper_logs} helper files, {} secrets looked for",
        secrets.len()
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
