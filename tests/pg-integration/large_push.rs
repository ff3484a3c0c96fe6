//! wal-push of a segment too large to hold encoded in memory (issue 14.6; the module
//! `wal_push::large`): streamed through a temporary object under `tmp/` and a create-only copy
//! to its final key. The path is taken above 64 MiB; here the test-only variable
//! `WALVAULT_TEST_LARGE_PUSH_MIN` (read only by `test-tools` builds) lowers that to 1 MiB so a
//! 16 MiB segment takes it. A push onto a different archived object is refused (exit 3) and
//! leaves it untouched, onto an identical one exits 0, and no `tmp/` object is left after
//! either. On Azure the copy may finish after it answers, so the in-memory PUT stays (checked).
//! The 1 GiB segment's peak RSS: `limits::pg_limits_one_gib_segments`.

use crate::on_backends;
use crate::support::datadir::{DataDir, SYSID, extra, keygen};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch, fake_segment};

const SEG_16M: u32 = 16 << 20;
/// The test-only threshold variable (`wal_push::large::TEST_THRESHOLD_VAR`).
const THRESHOLD_VAR: &str = "WALVAULT_TEST_LARGE_PUSH_MIN";

fn push(data: &DataDir, cfg: &std::path::Path, rel: &str) -> Run {
    Run::of(data.push_cmd(cfg, &[rel]).env(THRESHOLD_VAR, (1u32 << 20).to_string()))
}

fn temporaries(repo: &Repo) -> Vec<String> {
    repo.keys().into_iter().filter(|k| k.starts_with("tmp/")).collect()
}

fn large_push(backend: Backend) {
    let streams = !matches!(backend, Backend::Azure);
    let scratch = Scratch::new();
    let key = keygen(&scratch, "key");
    let data = DataDir::new(&scratch);
    let repo = crate::repo_on!(backend, &scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", Some(&key)));
    let name = "000000010000000000000007";
    let first = fake_segment(name, SYSID, SEG_16M, 1);
    let rel = data.wal(name, &first);
    let run = push(&data, &cfg, &rel);
    run.expect(0).says(&[&format!("archived {name}")]);
    assert_eq!(run.stderr.contains("streaming it through tmp/"), streams, "{}", run.stderr);
    assert_eq!(temporaries(&repo), Vec::<String>::new(), "a temporary object left after success");
    let (fetched, got) = data.fetch(&cfg, name);
    fetched.expect(0);
    assert!(got.as_deref() == Some(&first[..]), "the fetched segment differs");
    let archived = repo.listing();

    // The same bytes again: verified against the archived copy, exit 0, nothing changed.
    push(&data, &cfg, &rel).expect(0).says(&["already archived with the same contents"]);
    assert_eq!(temporaries(&repo), Vec::<String>::new(), "a temporary object left after a duplicate");
    assert_eq!(repo.listing(), archived);

    // Different bytes under the same name: refused, the archived object untouched.
    let second = fake_segment(name, SYSID, SEG_16M, 2);
    let run = push(&data, &cfg, &data.wal(name, &second));
    run.expect(3).says(&["already archived with different contents", "refusing to overwrite"]);
    assert_eq!(run.stderr.contains("streaming it through tmp/"), streams);
    assert_eq!(temporaries(&repo), Vec::<String>::new(), "a temporary object left after a refusal");
    assert_eq!(repo.listing(), archived, "a refused push changed the repository");
    let (fetched, got) = data.fetch(&cfg, name);
    fetched.expect(0);
    assert!(got.as_deref() == Some(&first[..]), "the archived segment changed");
}

on_backends!(large_push, large_push, [file, s3, azure]);
