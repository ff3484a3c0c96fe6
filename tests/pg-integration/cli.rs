//! The command line as an operator meets it: `--version` names the git revision, `completions`
//! and `man` come from the clap definitions, `-v`/`-q`/`WALVAULT_LOG` pick the level (a bad
//! value is one clear line), `--log-format json` gives one JSON object per line, and
//! `base-backup` says what it waits for and reports its rate without the checkpoint.

use std::process::Command;

use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra, keygen};
use crate::support::pg::{Cluster, pg_bin};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, as_pg_user, bins, fake_segment};

fn walvault(args: &[&str]) -> Run {
    Run::of(Command::new(&bins().walvault).args(args))
}

#[test]
fn version_names_the_git_revision() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    for bin in [&bins().walvault, &bins().push, &bins().fetch] {
        let run = Run::of(Command::new(bin).arg("--version"));
        run.expect(0);
        let want = match &rev {
            Some(r) => format!("{} (git {r})", env!("CARGO_PKG_VERSION")),
            // A build outside a clone (a source tarball) says so rather than inventing one.
            None => format!("{} (git unknown)", env!("CARGO_PKG_VERSION")),
        };
        assert!(run.stdout.contains(&want), "{}: {:?}, wanted {want:?}", bin.display(), run.stdout);
    }
}

#[test]
fn completions_and_man_pages_are_generated() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = walvault(&["completions", shell]);
        run.expect(0);
        assert!(run.stdout.contains("base-backup") && run.stdout.contains("--target-time"), "{shell}");
    }
    let bad = walvault(&["completions", "tcsh"]);
    bad.expect(2).says(&["tcsh"]);
    assert_eq!(bad.error_lines().len(), 1, "{}", bad.stderr);

    // The bash script is valid bash (a syntax error would break every interactive shell).
    let scratch = Scratch::new();
    let script = scratch.file("walvault.bash", walvault(&["completions", "bash"]).stdout);
    Run::of(Command::new("bash").arg("-n").arg(&script)).expect(0);

    let dir = scratch.path().join("man1");
    walvault(&["man", dir.to_str().unwrap()]).expect(0);
    for page in ["walvault.1", "walvault-restore.1", "walvault-base-backup.1", "wal-push.1", "wal-fetch.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.contains(".TH") && text.contains("Examples"),
            "{page} is not a manual page with examples"
        );
    }
}

#[test]
fn every_help_has_an_example() {
    let top = walvault(&["--help"]);
    top.expect(0);
    let subcommands: Vec<String> = top
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.len() >= 14, "{subcommands:?}");
    for sub in &subcommands {
        let run = walvault(&[sub, "--help"]);
        run.expect(0);
        assert!(run.stdout.contains("Examples"), "walvault {sub} --help has no example");
    }
    for bin in [&bins().push, &bins().fetch] {
        assert!(Run::of(Command::new(bin).arg("--help")).expect(0).stdout.contains("Examples"));
    }
}

#[test]
fn log_level_and_format() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", Some(&key)));
    let name = |i: u32| format!("0000000100000000000000{i:02X}");
    let push = |i: u32, args: &[&str], env: &[(&str, &str)]| {
        let rel = data.wal(&name(i), &fake_segment(&name(i), SYSID, SEG_1M, i as u64));
        let mut cmd = data.push_cmd(&cfg, args);
        cmd.arg(&rel).env_remove("WALVAULT_LOG").env_remove("WALVAULT_LOG_FORMAT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::of(&mut cmd)
    };

    let default = push(1, &[], &[]);
    default.expect(0);
    assert!(default.stderr.contains(" INFO ") && !default.stderr.contains("DEBUG"), "{}", default.stderr);
    let quiet = push(2, &["-q"], &[]);
    quiet.expect(0);
    assert!(quiet.stderr.trim().is_empty(), "-q still logs: {}", quiet.stderr);
    let verbose = push(3, &["-v"], &[]);
    verbose.expect(0);
    assert!(verbose.stderr.contains("DEBUG"), "-v shows no debug line: {}", verbose.stderr);
    let env_quiet = push(4, &[], &[("WALVAULT_LOG", "warn")]);
    env_quiet.expect(0);
    assert!(env_quiet.stderr.trim().is_empty(), "WALVAULT_LOG=warn still logs: {}", env_quiet.stderr);

    for (args, env) in
        [(&["--log-format", "json"][..], &[][..]), (&[][..], &[("WALVAULT_LOG_FORMAT", "json")][..])]
    {
        let i = if args.is_empty() { 5 } else { 6 };
        let run = push(i, args, env);
        run.expect(0);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert!(!lines.is_empty());
        for line in &lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
        }
        // The segment the call is about is a field, for collectors to filter on.
        assert!(run.stderr.contains(&format!("\"file\":\"pg_wal/{}\"", name(i))), "{}", run.stderr);
    }

    // A bad level is the one line to fix, and nothing is archived: archive_command fails loudly
    // rather than running with a setting the operator did not mean.
    let before = repo.listing();
    let bad = push(7, &[], &[("WALVAULT_LOG", "loud")]);
    bad.expect(2).says(&["WALVAULT_LOG=`loud`", "debug"]);
    assert_eq!(bad.error_lines().len(), 1, "{}", bad.stderr);
    assert_eq!(repo.listing(), before, "a refused call changed the repository");
    let fetch = Run::of(
        Command::new(&bins().fetch)
            .current_dir(&data.path)
            .env("WALVAULT_LOG", "loud")
            .arg("--config")
            .arg(&cfg)
            .args([&name(1), "pg_wal/RECOVERYXLOG"]),
    );
    fetch.expect(202).says(&["WALVAULT_LOG"]);
    let bad_format = push(8, &["--log-format", "xml"], &[]);
    bad_format.expect(2).says(&["xml", "--log-format"]);
    // The variable is named when it is the bad one, and the error line is JSON when the
    // variable asks for JSON.
    let bad_env = push(9, &[], &[("WALVAULT_LOG_FORMAT", "xml")]);
    bad_env.expect(2).says(&["WALVAULT_LOG_FORMAT=`xml`"]);
    let usage = Run::of(
        Command::new(&bins().walvault).env("WALVAULT_LOG_FORMAT", "json").args(["list", "--no-such-flag"]),
    );
    usage.expect(2);
    let line = usage.stderr.lines().next().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert!(v["message"].as_str().unwrap().contains("--no-such-flag"), "{line}");
    // An address that is not one is bad usage (2), not a failure to retry (1).
    let listen = walvault(&["status", "--repo", "file:///nonexistent", "--listen", "nonsense"]);
    listen.expect(2).says(&["nonsense"]);
}

#[test]
fn pg_base_backup_says_it_waits_for_the_checkpoint() {
    let Some(bin) = pg_bin() else {
        assert!(!crate::support::in_ci(), "PostgreSQL 15 not found under CI=true");
        eprintln!("SKIPPED: PostgreSQL 15 not found");
        return;
    };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let mut pg = Cluster::init(&scratch, "pg", &bin, &[]);
    pg.configure(&[
        ("wal_level", "replica"),
        ("archive_mode", "on"),
        ("archive_command", &format!("{} --config {} %p", bins().push.display(), cfg.display())),
        ("fsync", "off"),
        ("checkpoint_timeout", "30s"),
        ("checkpoint_completion_target", "0.1"),
    ]);
    pg.start();
    let conninfo = format!("host={} user=postgres", pg.sock.display());
    // As PostgreSQL's user, like the systemd unit and the CronJob: the repository it creates
    // must stay writable by the archive_command.
    let backup = |extra: &[&str]| {
        Run::of(
            as_pg_user(&bins().walvault)
                .args(["base-backup", "--config", cfg.to_str().unwrap(), "-d", &conninfo])
                .args(extra),
        )
    };
    let spread = backup(&[]);
    spread.expect(0).says(&[
        "waiting for the server's spread checkpoint (up to about 3 s: checkpoint_timeout 30s",
        "--fast-checkpoint asks for an immediate one",
        "checkpoint done after",
    ]);
    // The rate is over the transfer alone, and the wait is reported beside it.
    assert!(
        spread
            .stderr
            .lines()
            .any(|l| l.contains("complete:") && l.contains("checkpoint") && l.contains("/s for")),
        "{}",
        spread.stderr
    );
    let fast = backup(&["--fast-checkpoint"]);
    fast.expect(0).says(&["asking the server for an immediate checkpoint", "checkpoint done after"]);
    assert!(!fast.stderr.contains("spread checkpoint"), "{}", fast.stderr);
}
