//! PostgreSQL's own recovery tests with walvault in place of `cp`: the TAP files of PostgreSQL
//! 15.18's `src/test/recovery` that archive or restore, from Debian's source package of the
//! installed server (`scripts/install-deps.sh` puts `src/test/perl` and `src/test/recovery` into
//! `.tools/pg15-tap`), run by `prove` against the installed binaries, as PostgreSQL's user.
//!
//! `tap/WalvaultTap.pm`, loaded into each test script, redefines `PostgreSQL::Test::Cluster`'s
//! `enable_archiving` and `enable_restoring` so every archive_command is `wal-push` and every
//! restore_command is `wal-fetch`, each node's `archive_dir` a `file://` repository. The few
//! lines of a test that read or write the archive directory as flat `cp` files are adapted by
//! `tap/recovery.patch`, applied to a copy of the tests; nothing else of upstream is changed.
//! Every object is encrypted (`WALVAULT_ENCRYPTION_KEY_FILE` reaches the commands through the
//! server's environment) and zstd-compressed, with the default look-ahead push and prefetch.
//! Each test runs one TAP file and asserts that prove passes, showing the TAP output and the
//! tails of the test's logs when it does not, and that walvault really ran (the override
//! announced itself; wal-push and wal-fetch lines in the servers' logs, none unencrypted).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::skip_or_fail;
use crate::support::datadir::keygen;
use crate::support::pg::{PG15_BIN, tail};
use crate::support::{Run, Scratch, as_pg_user, bins, chown_to_pg};

/// Where install-deps.sh puts PostgreSQL's test sources.
fn tap_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/pg15-tap/src/test")
}

/// This repository's Perl module and patch.
fn our_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg-integration/tap")
}

/// Runs `t/<name>.pl` of PostgreSQL's recovery tests under prove and asserts it passes.
fn run_tap(name: &str) {
    let root = tap_root();
    let upstream = root.join("recovery/t");
    if !upstream.join(format!("{name}.pl")).exists() {
        skip_or_fail!("no {}/{name}.pl: run scripts/install-deps.sh", upstream.display());
    }
    let pg_regress = Path::new(PG15_BIN).join("../lib/pgxs/src/test/regress/pg_regress");
    if !Path::new(PG15_BIN).join("initdb").exists() || !pg_regress.exists() {
        skip_or_fail!("no PostgreSQL 15 server and client in {PG15_BIN} (pg_regress included)");
    }
    if Run::of(Command::new("perl").args(["-MIPC::Run", "-e", "1"])).code != 0
        || Command::new("prove").arg("--version").output().is_err()
    {
        skip_or_fail!("no prove or no IPC::Run (libipc-run-perl): run scripts/install-deps.sh");
    }

    // A copy of the tests, with the flat-file lines adapted, in a directory PostgreSQL's user owns.
    let scratch = Scratch::new();
    let dir = scratch.subdir("recovery");
    let copy = Command::new("cp").arg("-r").arg(&upstream).arg(dir.join("t")).status().unwrap();
    assert!(copy.success(), "copying {}", upstream.display());
    let patch = Run::of(
        Command::new("patch")
            .args(["-p1", "--quiet", "--forward", "--no-backup-if-mismatch", "-d"])
            .arg(&dir)
            .arg("-i")
            .arg(our_dir().join("recovery.patch")),
    );
    assert_eq!(patch.code, 0, "recovery.patch does not apply: {}{}", patch.stdout, patch.stderr);
    let ports = scratch.subdir("portlock");
    // Every object encrypted, as a hardened setup has it: the variable reaches archive_command
    // and restore_command through prove, pg_ctl and the server.
    let key = keygen(&scratch, "tap.key");
    chown_to_pg(&dir);

    let bin_dir = bins().push.parent().unwrap().to_path_buf();
    let path = format!("{PG15_BIN}:{}", std::env::var("PATH").unwrap_or_default());
    let exec = format!("perl -I{} -I{} -MWalvaultTap", root.join("perl").display(), our_dir().display());
    let started = Instant::now();
    let run = Run::of(
        as_pg_user("prove")
            .current_dir(&dir)
            .args(["-v", "--exec", &exec])
            .arg(format!("t/{name}.pl"))
            .env("PATH", path)
            .env("PG_REGRESS", &pg_regress)
            .env("TESTDIR", &dir)
            .env("PG_TEST_PORT_DIR", &ports)
            .env("WALVAULT_TAP_BIN", &bin_dir)
            .env("WALVAULT_ENCRYPTION_KEY_FILE", &key)
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .env_remove("PGDATA"),
    );
    eprintln!("{name}: prove exited {} after {:.1} s", run.code, started.elapsed().as_secs_f64());
    if run.code != 0 {
        // What failed first, in a few lines (CI shows the start of a long message).
        let failed: Vec<&str> = run
            .stdout
            .lines()
            .chain(run.stderr.lines())
            .filter(|l| l.starts_with("not ok") || l.contains("Failed test") || l.contains("Bail out"))
            .take(6)
            .collect();
        panic!(
            "PostgreSQL's {name}.pl failed with walvault (prove exit {}): {}\n{}\n{}\n{}",
            run.code,
            failed.join(" | "),
            tail(&run.stdout, 40),
            tail(&run.stderr, 20),
            logs_tail(&dir.join("tmp_check/log"), name)
        );
    }
    assert!(run.stdout.contains("Result: PASS"), "prove did not report PASS:\n{}", run.stdout);
    // The test really ran walvault: the override announced itself, and the servers' logs show
    // wal-push archiving and wal-fetch restoring (their log lines go to the server's log).
    let logs = dir.join("tmp_check/log");
    let regress = std::fs::read_to_string(logs.join(format!("regress_log_{name}"))).unwrap_or_default();
    assert!(
        regress.contains("(walvault) for node"),
        "WalvaultTap's methods were not used:\n{}",
        tail(&regress, 40)
    );
    let (mut archived, mut restored, mut misses, mut plain) = (0, 0, 0, 0);
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            // Uploaded by the call, or by the background pusher and confirmed by the call.
            archived += usize::from(
                line.contains(" wal-push{")
                    && (line.contains(": archived ") || line.contains("was pushed ahead")),
            );
            plain += usize::from(line.contains(" wal-push{") && line.contains("not encrypted"));
            restored += usize::from(line.contains(" wal-fetch{") && line.contains(": restored "));
            misses += usize::from(line.contains(" wal-fetch{") && line.contains("is not in the archive"));
        }
    }
    eprintln!(
        "{name}: wal-push archived (or confirmed) {archived} files; wal-fetch restored {restored} and \
         answered {misses} misses"
    );
    assert!(archived + restored > 0, "no wal-push or wal-fetch line in the server logs of {name}");
    assert_eq!(plain, 0, "{name}: wal-push archived without the key");
}

/// The tails of the test's own log and of every server log it left (kept when a test fails).
fn logs_tail(log_dir: &Path, name: &str) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(log_dir) else { return format!("no logs in {}", log_dir.display()) };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let n = if f.ends_with(format!("regress_log_{name}")) { 60 } else { 25 };
        out.push_str(&format!("---- {} (last {n} lines)\n{}\n", f.display(), tail(&text, n)));
    }
    out
}

/// One test per TAP file, named `pg_tap_<file>` (they start clusters: see main.rs).
macro_rules! tap_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_tap($file);
            }
        )*
    };
}

tap_tests! {
    pg_tap_002_archiving => "002_archiving",
    pg_tap_003_recovery_targets => "003_recovery_targets",
    pg_tap_004_timeline_switch => "004_timeline_switch",
    pg_tap_010_logical_decoding_timelines => "010_logical_decoding_timelines",
    pg_tap_020_archive_status => "020_archive_status",
    pg_tap_023_pitr_prepared_xact => "023_pitr_prepared_xact",
    pg_tap_024_archive_recovery => "024_archive_recovery",
    pg_tap_025_stuck_on_old_timeline => "025_stuck_on_old_timeline",
    pg_tap_028_pitr_timelines => "028_pitr_timelines",
    pg_tap_043_no_contrecord_switch => "043_no_contrecord_switch",
    pg_tap_045_archive_restartpoint => "045_archive_restartpoint",
}
