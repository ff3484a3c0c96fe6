//! Bad configuration, swept: every setting of the TOML file and every `WALVAULT_*` variable,
//! given missing, malformed and hostile values (huge and negative numbers, wrong types, unicode
//! and control characters, very long strings, paths that do not exist, unknown keys), through
//! the built `wal-push`, `wal-fetch` and `walvault list`. Each case must end with exit 2 (202
//! for wal-fetch, whose usage code stays clear of 1), exactly one line on stderr, an ERROR line
//! naming the setting, and no panic or backtrace.

use std::process::Command;

use crate::support::datadir::{DataDir, SEG_1M, SYSID};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, bins, fake_segment};

/// How a case gives its bad value.
enum Given {
    /// Lines of the TOML file (after `repo = …`, which a case may override).
    Toml(String),
    /// A whole TOML file (no `repo` line added).
    File(String),
    /// An environment variable over a good file.
    Env(&'static str, String),
}

use Given::{Env, File, Toml};

fn t(s: &str) -> Given {
    Toml(s.to_string())
}

/// Every case: what is given, and what the one line must mention.
fn cases(scratch: &Scratch) -> Vec<(Given, &'static str)> {
    let long = "x".repeat(100_000);
    let missing = "/nonexistent/walvault.key";
    let dir = scratch.path().display().to_string();
    let short = scratch.file("short.key", [7u8; 20]).display().to_string();
    let mut c: Vec<(Given, &'static str)> = vec![
        // The file itself.
        (Env("WALVAULT_CONFIG", "/nonexistent/walvault.toml".into()), "cannot read config file"),
        (Env("WALVAULT_CONFIG", dir.clone()), "cannot read config file"),
        (File("repo = \"file:///tmp/x\"\nnot toml at all [[[\n".into()), "line 2"),
        (File("\u{feff}\u{0}\u{1}garbage".into()), "config file"),
        (File(String::new()), "no repository configured"),
        (File("compression = \"lz4\"\n".into()), "no repository configured"),
        (t("bogus = 1"), "unknown field `bogus`"),
        (t("Repo = \"file:///tmp\""), "unknown field `Repo`"),
        (t("[nosuchtable]\na = 1"), "unknown field `nosuchtable`"),
        // repo
        (File("repo = \"ftp://host/dir\"\n".into()), "unknown scheme `ftp`"),
        (File("repo = \"relative/dir\"\n".into()), "repo `relative/dir`"),
        (File("repo = \"s3:///nobucket\"\n".into()), "no bucket"),
        (File("repo = 5\n".into()), "line 1 (repo)"),
        (File(format!("repo = \"file:///{long}\"\n")), "repo"),
        (File("repo = \"s3://b\u{7}\u{1b}[2J/p\"\n".into()), "line 1 (repo)"),
        (Env("WALVAULT_REPO", "gopher://x".into()), "unknown scheme `gopher`"),
        (Env("WALVAULT_REPO", "file://relative".into()), "absolute path"),
        // compression
        (t("compression = \"gzip\""), "compression `gzip`"),
        (t("compression = \"zstd:99\""), "compression `zstd:99`"),
        (t("compression = \"zstd:-99999999999999999999\""), "compression"),
        (t("compression = \"zstd:③\""), "compression"),
        (t("compression = \"zstd\\n\\rERROR forged\""), "compression `zstd\\n\\rERROR forged`"),
        (t("compression = 3"), "line 2 (compression)"),
        (Env("WALVAULT_COMPRESSION", "LZ4".into()), "compression `LZ4`"),
        // encryption_key_file / decryption_key_files
        (
            t(&format!("encryption_key_file = \"{missing}\"")),
            "cannot read key file /nonexistent/walvault.key",
        ),
        (t(&format!("encryption_key_file = \"{dir}\"")), "cannot read key file"),
        (t(&format!("encryption_key_file = \"{short}\"")), "holds 20 bytes"),
        (t("encryption_key_file = 7"), "line 2 (encryption_key_file)"),
        (t(&format!("decryption_key_files = [\"{missing}\"]")), "cannot read key file"),
        (t(&format!("decryption_key_files = \"{missing}\"")), "line 2 (decryption_key_files)"),
        (Env("WALVAULT_ENCRYPTION_KEY_FILE", missing.into()), "cannot read key file"),
        (Env("WALVAULT_DECRYPTION_KEY_FILES", format!("{short},{missing}")), "key file"),
        // timeout
        (t("timeout = \"soon\""), "timeout"),
        (t("timeout = \"0s\""), "timeout: must be more than zero"),
        (t("timeout = 0"), "timeout: must be more than zero"),
        (t("timeout = -5"), "line 2 (timeout)"),
        (t("timeout = \"99999999999999999999d\""), "timeout"),
        (t("timeout = [1]"), "line 2 (timeout)"),
        (Env("WALVAULT_TIMEOUT", "1 hour".into()), "timeout"),
        (Env("WALVAULT_TIMEOUT", long.clone()), "timeout"),
        // retries
        (t("retries = 101"), "retries: 101 is more than 100"),
        (t("retries = -1"), "line 2 (retries)"),
        (t("retries = 99999999999999999999"), "line 2 (retries)"),
        (t("retries = \"3\""), "line 2 (retries)"),
        (Env("WALVAULT_RETRIES", "-1".into()), "retries"),
        (Env("WALVAULT_RETRIES", "4294967296".into()), "retries"),
        // upload_concurrency
        (t("upload_concurrency = 0"), "upload_concurrency: 0 is not between 1 and 64"),
        (t("upload_concurrency = 65"), "upload_concurrency"),
        (t("upload_concurrency = 1.5"), "line 2 (upload_concurrency)"),
        (Env("WALVAULT_UPLOAD_CONCURRENCY", "many".into()), "upload-concurrency"),
        // prefetch
        (t("prefetch = 257"), "prefetch: 257 is more than 256"),
        (t("prefetch = true"), "line 2 (prefetch)"),
        (Env("WALVAULT_PREFETCH", "１６".into()), "prefetch"),
        // part_size
        (t("part_size = \"1KiB\""), "part_size"),
        (t("part_size = \"huge\""), "part_size"),
        (t("part_size = \"99999999999TiB\""), "part_size"),
        (t("part_size = -1"), "line 2 (part_size)"),
        (Env("WALVAULT_PART_SIZE", "0".into()), "part_size"),
        // [storage]
        (t("[storage]\naws_region = [\"us-east-1\"]"), "option `aws_region` must be a string"),
        (t("[storage]\nno_such_option = \"x\""), "no_such_option"),
        (t("[storage]\nsub = { a = 1 }"), "option `sub` must be a string"),
        // [retention]
        (t("[retention]\nretain_full = 0"), "retention.retain_full: must be at least 1"),
        (t("[retention]\nretain_full = 100001"), "retention.retain_full"),
        (t("[retention]\nkeep_within = \"forever\""), "retention.keep_within"),
        (t("[retention]\nkeep_within = \"0d\""), "retention.keep_within"),
        (t("[retention]\nkeep_daily = -3"), "line 3 (retention.keep_daily)"),
        (t("[retention]\nkeep_weekly = 0"), "retention.keep_weekly"),
        (t("[retention]\nkeep_monthly = \"12\""), "line 3 (retention.keep_monthly)"),
        (t("[retention]\nolder_than = \"\u{0}\""), "line 3 (retention.older_than)"),
        (t("[retention]\nauto = \"yes\""), "line 3 (retention.auto)"),
        (t("[retention]\nkeep_yearly = 1"), "unknown field `keep_yearly`"),
        (t("[retention.dumps]"), "retention.dumps: no rule"),
        (t("[retention.dumps]\nretain = 0"), "retention.dumps.retain"),
        (t("[retention.dumps]\nkeep_within = \"1y\""), "retention.dumps.keep_within"),
        (t("[retention.dumps]\nretain = 1\nolder_than = \"-1d\""), "retention.dumps.older_than"),
        (t("[retention.dumps]\nretain = 1\nkeep_hourly = 1"), "unknown field `keep_hourly`"),
        // [verify]
        (t("[verify]\nreverify_after = \"often\""), "verify.reverify_after"),
        (t("[verify]\nreverify = \"7d\""), "unknown field `reverify`"),
        // [notify]
        (t("[notify]\nwebhook = \"ftp://hooks.example/T0/SECRET-PATH\""), "notify.webhook"),
        (t("[notify]\nwebhook = \"not a url\""), "notify.webhook"),
        (t("[notify]\nwebhook = \"https://h.example/x\"\nformat = \"xml\""), "notify.format"),
        (t("[notify]\nwebhook = \"https://h.example/x\"\nrepeat_after = \"0s\""), "notify.repeat_after"),
        (t("[notify]\nwebhook = \"https://h.example/x\"\ntimeout = \"never\""), "notify.timeout"),
        (
            t("[notify]\nwebhook = \"https://h.example/x\"\n[notify.headers]\n\"bad header\" = \"v\""),
            "notify.headers",
        ),
        (
            t("[notify]\n[notify.headers]\nAuthorization = \"Bearer TOKEN-XYZ\""),
            "notify.headers: given without a webhook",
        ),
        (t("[notify]\nhook = \"https://h.example\""), "unknown field `hook`"),
        // [status]
        (t("[status]\nmax_backup_age = \"old\""), "status.max_backup_age"),
        (t("[status]\nmax_wal_age = \"\u{202e}15m\""), "status.max_wal_age"),
        (t("[status]\nmin_backups = -1"), "line 3 (status.min_backups)"),
        (t("[status]\nmax_age = \"1h\""), "unknown field `max_age`"),
        // Logging.
        (Env("WALVAULT_LOG", "loud".into()), "WALVAULT_LOG"),
        (Env("WALVAULT_LOG_FORMAT", "xml".into()), "WALVAULT_LOG_FORMAT"),
    ];
    c.shrink_to_fit();
    c
}

#[test]
fn every_bad_setting_is_one_clear_line_and_exit_2() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let good = repo.config(&scratch, "good.toml", "");
    let name = "000000010000000000000001";
    let rel = data.wal(name, &fake_segment(name, SYSID, SEG_1M, 1));
    let all = cases(&scratch);
    let mut runs = 0;
    let mut failures = Vec::new();
    for (i, (given, needle)) in all.iter().enumerate() {
        let (config, env) = match given {
            Toml(lines) => (repo.config(&scratch, &format!("case{i}.toml"), lines), None),
            File(text) => (scratch.file(&format!("case{i}.toml"), text), None),
            Env(var, value) => (good.clone(), Some((*var, value.as_str()))),
        };
        let commands: [(&str, Command, i32); 3] = [
            ("wal-push", data.push_cmd(&config, &[&rel]), 2),
            (
                "wal-fetch",
                {
                    let mut c = Command::new(&bins().fetch);
                    c.current_dir(&data.path)
                        .arg("--config")
                        .arg(&config)
                        .args([name, "pg_wal/RECOVERYXLOG"]);
                    c
                },
                202,
            ),
            (
                "walvault list",
                {
                    let mut c = Command::new(&bins().walvault);
                    c.arg("list").arg("--config").arg(&config);
                    c
                },
                2,
            ),
        ];
        for (what, mut cmd, code) in commands {
            if let Some((var, value)) = env {
                if var == "WALVAULT_CONFIG" {
                    cmd = {
                        // The variable stands for the file: drop the flag.
                        let mut c = Command::new(cmd.get_program());
                        c.current_dir(cmd.get_current_dir().unwrap_or(scratch.path()));
                        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
                        let mut skip = false;
                        for a in args {
                            if skip {
                                skip = false;
                            } else if a == "--config" {
                                skip = true;
                            } else {
                                c.arg(a);
                            }
                        }
                        c
                    };
                }
                cmd.env(var, value);
            }
            let run = Run::of(cmd.env("RUST_BACKTRACE", "1"));
            runs += 1;
            let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let ok = run.code == code
                && lines.len() == 1
                && lines[0].contains("ERROR")
                && lines[0].contains(needle)
                && !run.stderr.contains("panicked")
                && !run.stderr.contains("backtrace")
                && !run.stderr.contains("SECRET-PATH")
                && !run.stderr.contains("TOKEN-XYZ")
                && run.stdout.is_empty();
            if !ok {
                let shown: String = run.stderr.chars().take(600).collect();
                failures.push(format!(
                    "case {i} ({needle}) via {what}: exit {} (wanted {code}), stderr: {shown:?}",
                    run.code
                ));
            }
        }
    }
    eprintln!("config sweep: {} cases, {runs} runs, {} failed", all.len(), failures.len());
    assert!(failures.is_empty(), "{} of {runs} runs failed:\n{}", failures.len(), failures.join("\n"));
}
