//! docs/TUTORIAL.md, run as written: every ```sh block in order, in one bash, from the
//! repository root, so the document cannot drift from the product. It installs into
//! /usr/local/bin and works under /srv/walvault-tutorial as root, so outside CI it runs only
//! with WALVAULT_TEST_TUTORIAL=1; under CI=true it always runs (and fails if not root).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{in_ci, is_root};

/// The fenced blocks whose info string is exactly `sh`, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block in the tutorial");
    blocks
}

/// Runs `script` with bash from the repository root; (exit code, stdout + stderr).
fn bash(script: &str, limit: Duration) -> (i32, String) {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // The reader's shell has none of the test run's settings (cargo's and nextest's
        // variables would also make the tutorial's build rebuild everything).
        .env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| {
            [
                "PATH",
                "HOME",
                "USER",
                "LANG",
                "LC_ALL",
                "TERM",
                "CI",
                "RUSTUP_HOME",
                "CARGO_HOME",
                "RUSTUP_TOOLCHAIN",
            ]
            .iter()
            .any(|keep| k == keep)
        }))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if started.elapsed() > limit {
            // SAFETY: signals the process group this test started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break -2;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (code, format!("{}\n--- stderr ---\n{}", reader.join().unwrap(), err_reader.join().unwrap()))
}

#[test]
fn pg_the_tutorial_runs_as_written() {
    if !in_ci() && std::env::var_os("WALVAULT_TEST_TUTORIAL").is_none() {
        eprintln!(
            "SKIPPED: the tutorial installs into /usr/local/bin; set WALVAULT_TEST_TUTORIAL=1 to run it"
        );
        return;
    }
    assert!(is_root(), "the tutorial's commands run as root (runuser, install into /usr/local/bin)");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/TUTORIAL.md")).unwrap();
    let blocks = sh_blocks(&text);
    assert!(blocks.len() >= 10, "only {} sh blocks in the tutorial", blocks.len());
    let cleanup = blocks.last().unwrap().clone();
    assert!(cleanup.contains("rm -rf /srv/walvault-tutorial"), "the last block is not the clean-up");

    // Leftovers of an earlier, interrupted run would make `keygen` or `initdb` refuse.
    let (_, _) = bash(
        &format!("T=/srv/walvault-tutorial PGBIN=/usr/lib/postgresql/15/bin\n{cleanup}"),
        Duration::from_secs(60),
    );
    let script = format!("set -euxo pipefail\n{}", blocks.concat());
    let (code, output) = bash(&script, Duration::from_secs(600));
    if code != 0 {
        let logs = bash(
            "tail -n 30 /srv/walvault-tutorial/pg.log /srv/walvault-tutorial/restored.log 2>/dev/null; true",
            Duration::from_secs(10),
        )
        .1;
        bash(
            &format!("T=/srv/walvault-tutorial PGBIN=/usr/lib/postgresql/15/bin\n{cleanup}"),
            Duration::from_secs(60),
        );
        panic!("the tutorial failed (exit {code}):\n{output}\n--- server logs ---\n{logs}");
    }
    // What the reader is told to expect, seen in the output (the `test` lines already failed
    // the script otherwise).
    for want in ["(git ", "archived", "complete:", "orders", "1000"] {
        assert!(output.contains(want), "the tutorial's output lacks {want:?}:\n{output}");
    }
    assert!(!std::path::Path::new("/srv/walvault-tutorial").exists(), "the clean-up left files behind");
}
