//! What wal-fetch answers for a file the archive does not have, by what the repository shows
//! (the table at the top of `src/wal_fetch/mod.rs`), running the built binary as PostgreSQL's
//! restore_command does: "not in the archive" (1) only for a repository that is really there,
//! including one that so far holds only a timeline history file (a promoted standby's first
//! archived file: PostgreSQL's 025_stuck_on_old_timeline); a stop (202) for an empty, wrong or
//! missing one; and, for a `file://` directory that disappears after it was read, 1 after an
//! ERROR line in standby mode, 202 otherwise (PostgreSQL's 043_no_contrecord_switch).

use crate::on_backends;
use crate::support::Scratch;
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra};
use crate::support::fake_segment;
use crate::support::repo::{Backend, Repo};

const HISTORY: &[u8] = b"1\t0/3000060\tno recovery target specified\n";

fn history_only(backend: Backend) {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = crate::repo_on!(backend, &scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    data.push(&cfg, &data.wal("00000002.history", HISTORY)).expect(0);
    assert_eq!(repo.keys(), ["wal/history/00000002.history"], "a history file creates no walvault.json");

    let (run, got) = data.fetch(&cfg, "00000002.history");
    run.expect(0);
    assert_eq!(got.as_deref(), Some(HISTORY));
    // The next timeline's history and the first segment of timeline 2: not in the archive yet.
    data.fetch(&cfg, "00000003.history").0.expect(1).says(&["holds timeline history files"]);
    let (run, got) = data.fetch(&cfg, "000000020000000000000003");
    run.expect(1).says(&["is not in the archive"]);
    assert!(got.is_none());
    // Once the first segment comes, the repository has its identity and serves it.
    let seg = "000000020000000000000003";
    data.push(&cfg, &data.wal(seg, &fake_segment(seg, SYSID, SEG_1M, 3))).expect(0);
    assert!(repo.keys().contains(&"walvault.json".to_string()), "{:?}", repo.keys());
    data.fetch(&cfg, seg).0.expect(0);
}

on_backends!(history_only_repository_answers_not_in_the_archive, history_only, [file, s3]);

fn empty(backend: Backend) {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = crate::repo_on!(backend, &scratch);
    let cfg = repo.config(&scratch, "c.toml", "");
    for name in ["00000002.history", "000000010000000000000001"] {
        let run = data.fetch(&cfg, name).0;
        run.expect(202).says(&["has no walvault.json"]);
        assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    }
    assert!(!data.path.join("pg_wal/.walvault/fetch-repo-verified").exists());
}

on_backends!(empty_repository_stops_recovery, empty, [file, s3]);

/// A flat `cp` archive (what upstream's tests and many setups have) and a directory that does
/// not exist are not walvault repositories: recovery stops, whatever is asked for.
#[test]
fn cp_archive_or_missing_directory_stops_recovery() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let cp_archive = scratch.subdir("cp-archive");
    std::fs::write(cp_archive.join("00000002.history"), HISTORY).unwrap();
    std::fs::write(
        cp_archive.join("000000010000000000000001"),
        fake_segment("000000010000000000000001", SYSID, SEG_1M, 1),
    )
    .unwrap();
    let cfg = scratch.file("cp.toml", format!("repo = \"file://{}\"\n", cp_archive.display()));
    data.fetch(&cfg, "00000003.history").0.expect(202).says(&["has no walvault.json"]);
    data.fetch(&cfg, "000000010000000000000001").0.expect(202).says(&["has no walvault.json"]);

    let missing = scratch.path().join("no-such-repository");
    let cfg = scratch.file("missing.toml", format!("repo = \"file://{}\"\n", missing.display()));
    let run = data.fetch(&cfg, "000000010000000000000001").0;
    run.expect(202).says(&["does not exist: check repo"]);
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    assert!(!missing.exists(), "wal-fetch never creates a repository");
    assert!(!data.path.join("pg_wal/.walvault/fetch-repo-verified").exists());
}

/// The repository directory disappears after this data directory read from it: a standby keeps
/// going on "not in the archive" (after an ERROR line each time); archive recovery stops.
#[test]
fn vanished_directory_under_a_standby_or_a_recovery() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", "");
    let seg = "000000010000000000000001";
    data.push(&cfg, &data.wal(seg, &fake_segment(seg, SYSID, SEG_1M, 1))).expect(0);
    data.fetch(&cfg, seg).0.expect(0);
    data.fetch(&cfg, "000000010000000000000002").0.expect(1);
    std::fs::remove_dir_all(repo.dir().unwrap()).unwrap();

    std::fs::write(data.path.join("standby.signal"), "").unwrap();
    for name in ["000000010000000000000002", "00000002.history", seg] {
        let (run, got) = data.fetch(&cfg, name);
        run.expect(1).says(&["has disappeared", "keeps streaming", "is not in the archive"]);
        assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
        assert!(got.is_none());
    }

    std::fs::remove_file(data.path.join("standby.signal")).unwrap();
    std::fs::write(data.path.join("recovery.signal"), "").unwrap();
    let run = data.fetch(&cfg, "000000010000000000000002").0;
    run.expect(202).says(&["has disappeared", "recovery stops"]);
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
}
