//! A full disk (issue 14, point 3), on size-limited tmpfs mounts: `wal-fetch` into a full
//! `pg_wal` fails with exit 203 and one clear line naming the file and the cause, leaving
//! nothing at `%p` and no temporary file; `walvault restore` of a real base backup into a
//! filesystem too small for it fails with one clear line and removes everything it wrote,
//! leaving the directory as it was found.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::backups::{archiving, base_backup, configure, walvault};
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra};
use crate::support::faults::{kill_helpers_under, names_in};
use crate::support::pg::{Cluster, pg_bin};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, bins, fake_segment};
use crate::{require_tmpfs, skip_or_fail};

/// wal-fetch as PostgreSQL's restore_command runs it, in `data` with `%p` = `pg_wal/RECOVERYXLOG`.
fn fetch(data: &std::path::Path, cfg: &std::path::Path, name: &str) -> Run {
    Run::of(
        Command::new(&bins().fetch)
            .current_dir(data)
            .arg("--config")
            .arg(cfg)
            .args([name, "pg_wal/RECOVERYXLOG"]),
    )
}

#[test]
fn wal_fetch_into_a_full_pg_wal_fails_cleanly() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &format!("prefetch = 0\n{}", extra("zstd", None)));
    let cfg_prefetch = repo.config(&scratch, "p.toml", &format!("prefetch = 4\n{}", extra("zstd", None)));
    let source = DataDir::new(&scratch);
    let mut segments = Vec::new();
    for i in 1..=6u32 {
        let name = format!("0000000100000000000000{i:02X}");
        let bytes = fake_segment(&name, SYSID, SEG_1M, u64::from(i));
        source.push(&cfg, &source.wal(&name, &bytes)).expect(0);
        segments.push((name, bytes));
    }
    let fs = require_tmpfs!("3m");
    let data = fs.path.join("data");
    let pg_wal = data.join("pg_wal");
    std::fs::create_dir_all(&pg_wal).unwrap();
    let (name, bytes) = &segments[0];
    // Full, nearly full, and one page short of a whole segment.
    for leave in [0, 64 << 10, u64::from(SEG_1M) - 4096] {
        let filler = fs.fill("filler", leave);
        let free = fs.free();
        let run = fetch(&data, &cfg, name);
        run.expect(203);
        let errors = run.error_lines();
        assert_eq!(errors.len(), 1, "one ERROR line:\n{}", run.stderr);
        assert!(
            errors[0].contains("RECOVERYXLOG") && errors[0].contains("No space left on device"),
            "the message names the file and the cause: {}",
            errors[0]
        );
        // Nothing but walvault's own state directory (its failure counts for `walvault status`).
        let left: Vec<String> = names_in(&pg_wal).into_iter().filter(|n| n != ".walvault").collect();
        assert_eq!(left, Vec::<String>::new(), "a failed fetch (free {free}) left files");
        eprintln!("wal-fetch into a pg_wal with {free} bytes free: exit 203, {}", errors[0]);
        // No bytes of the segment stay behind anywhere (the state directory holds small files).
        let big = Command::new("find").arg(&pg_wal).args(["-type", "f", "-size", "+8k"]).output().unwrap();
        assert!(big.stdout.is_empty(), "partial data left: {}", String::from_utf8_lossy(&big.stdout));
        std::fs::remove_file(filler).unwrap();
    }
    // With the prefetcher on, it fails on the full disk as well; the call still fails cleanly,
    // and the spool holds nothing that could be served.
    let filler = fs.fill("filler", 64 << 10);
    let run = fetch(&data, &cfg_prefetch, name);
    run.expect(203);
    assert!(!pg_wal.join("RECOVERYXLOG").exists());
    assert!(names_in(&pg_wal).iter().all(|n| n == ".walvault"), "{:?}", names_in(&pg_wal));
    let spool = pg_wal.join(".walvault/prefetch");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let spooled: Vec<String> =
        names_in(&spool).into_iter().filter(|n| segments.iter().any(|(s, _)| s == n)).collect();
    for s in &spooled {
        assert!(spool.join(format!("{s}.meta")).exists(), "{s} is spooled without its metadata");
    }
    kill_helpers_under(&fs.path);
    kill_helpers_under(scratch.path());
    std::fs::remove_file(filler).unwrap();
    // Space again: the same call succeeds with the exact bytes.
    let run = fetch(&data, &cfg, name);
    run.expect(0);
    assert!(std::fs::read(pg_wal.join("RECOVERYXLOG")).unwrap() == *bytes);
}

#[test]
fn pg_restore_into_a_small_filesystem_fails_cleanly() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &format!("part_size = \"1MiB\"\n{}", extra("zstd", None)));
    let mut c = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize", "1"]);
    configure(&c, &archiving(&cfg));
    c.start();
    c.sql("create table t (i int, v text)");
    c.sql("insert into t select g, md5(g::text) from generate_series(1, 50000) g");
    let id = base_backup(&cfg, &c);
    c.stop();
    let fs = require_tmpfs!("8m");
    let empty = fs.free();
    // Into the mount point itself (found empty: emptied again, its mode given back), and into
    // a directory the restore creates on it (removed again).
    std::fs::set_permissions(&fs.path, PermissionsExt::from_mode(0o755)).unwrap();
    for (dir, created) in [(fs.path.clone(), false), (fs.path.join("restored"), true)] {
        let run =
            Run::of(walvault(&cfg).arg("restore").arg("--target-dir").arg(&dir).args(["--backup", &id]));
        run.expect(1);
        let errors = run.error_lines();
        assert_eq!(errors.len(), 1, "one ERROR line:\n{}", run.stderr);
        assert!(errors[0].contains("No space left on device"), "the message says why: {}", errors[0]);
        assert!(errors[0].contains(&*fs.path.to_string_lossy()), "the message names where: {}", errors[0]);
        assert_eq!(names_in(&fs.path), Vec::<String>::new(), "the failed restore left files");
        assert_eq!(dir.exists(), !created, "a directory the restore created is removed again");
        let mode = std::fs::metadata(&fs.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "the directory's mode is not given back");
        assert_eq!(fs.free(), empty, "the failed restore did not give its space back");
        eprintln!("restore into {} ({} free): {}", dir.display(), empty, errors[0]);
    }
}
