//! Bad input: each case gets one clear ERROR line naming the problem, a non-zero exit, and leaves
//! the repository exactly as it was.

use crate::on_backends;
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra, keygen};
use crate::support::repo::Backend;
use crate::support::s3::{free_port, s3_toml};
use crate::support::{Run, Scratch, fake_segment};

#[track_caller]
fn one_clear_line(run: &Run, code: i32, needles: &[&str]) {
    run.expect(code).says(needles);
    let errors = run.error_lines();
    assert_eq!(errors.len(), 1, "wanted exactly one ERROR line:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

fn bad_input(backend: Backend) {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = crate::repo_on!(backend, &scratch);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "good.toml", &extra("zstd", Some(&key)));
    let name = "000000010000000000000010";
    let seg = fake_segment(name, SYSID, SEG_1M, 1);
    data.push(&cfg, &data.wal(name, &seg)).expect(0);
    let before = repo.listing();
    let unchanged = |what: &str| assert_eq!(repo.listing(), before, "{what} changed the repository");

    one_clear_line(
        &data.push(&cfg, "pg_wal/000000010000000000000011"),
        3,
        &["000000010000000000000011", "no such file"],
    );
    unchanged("a missing file");

    let rel = data.wal("000000010000000000000012", &vec![0xA5; SEG_1M as usize]);
    one_clear_line(&data.push(&cfg, &rel), 3, &["000000010000000000000012", "not a WAL segment"]);
    unchanged("a file that is not WAL");

    let rel = data.wal("some-file.txt", b"hello");
    one_clear_line(&data.push(&cfg, &rel), 3, &["some-file.txt", "is not a WAL file name"]);
    unchanged("a file with a non-WAL name");

    let rel = data.wal("000000010000000000000013", b"");
    one_clear_line(&data.push(&cfg, &rel), 3, &["000000010000000000000013", "empty"]);
    unchanged("an empty file");

    let other = "000000010000000000000014";
    let rel = data.wal(other, &fake_segment(other, SYSID + 7, SEG_1M, 2));
    one_clear_line(&data.push(&cfg, &rel), 3, &[&SYSID.to_string(), &(SYSID + 7).to_string()]);
    unchanged("a segment of another cluster");

    let truncated = "000000010000000000000015";
    let rel = data.wal(truncated, &fake_segment(truncated, SYSID, SEG_1M, 3)[..SEG_1M as usize / 2]);
    one_clear_line(&data.push(&cfg, &rel), 3, &["incomplete copy"]);
    unchanged("a truncated segment");

    let good_rel =
        data.wal("000000010000000000000016", &fake_segment("000000010000000000000016", SYSID, SEG_1M, 4));
    let bad_cfg = |file: &str, extra_lines: &str| repo.config(&scratch, file, extra_lines);

    let c = bad_cfg("unknown-key.toml", "compresion = \"lz4\"");
    one_clear_line(&data.push(&c, &good_rel), 2, &["unknown field `compresion`", "unknown-key.toml"]);
    unchanged("an unknown config key");

    let c = bad_cfg("missing-key.toml", "encryption_key_file = \"/nonexistent/walvault.key\"");
    one_clear_line(&data.push(&c, &good_rel), 2, &["cannot read key file /nonexistent/walvault.key"]);
    let c = bad_cfg("dir-key.toml", &format!("encryption_key_file = \"{}\"", scratch.path().display()));
    one_clear_line(&data.push(&c, &good_rel), 2, &["cannot read key file"]);
    unchanged("an unreadable key file");

    let short = scratch.file("short.key", [7u8; 20]);
    let c = bad_cfg("short-key.toml", &format!("encryption_key_file = \"{}\"", short.display()));
    one_clear_line(&data.push(&c, &good_rel), 2, &["short.key holds 20 bytes", "walvault keygen"]);
    unchanged("a key of the wrong length");

    let c = scratch.file("scheme.toml", "repo = \"ftp://host/dir\"\n");
    one_clear_line(&data.push(&c, &good_rel), 2, &["unknown scheme `ftp`"]);
    one_clear_line(&data.fetch(&c, name).0, 202, &["unknown scheme `ftp`"]);
    unchanged("an unknown URL scheme");

    // A corrupted object: wal-fetch refuses it and writes nothing at %p.
    let key_path = format!("wal/0000000100000000/{name}");
    let mut obj = repo.get(&key_path);
    let at = obj.len() - 100;
    obj[at] ^= 1;
    repo.overwrite(&key_path, obj);
    let (run, got) = data.fetch(&cfg, name);
    one_clear_line(&run, 201, &[name, "corrupt"]);
    assert!(got.is_none(), "a corrupt object reached the destination");
    let leftovers: Vec<_> = std::fs::read_dir(data.path.join("pg_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("walvault") && n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

on_backends!(bad_input, bad_input, [file, s3, azure]);

#[test]
fn unreachable_s3_endpoint_is_one_clear_line() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let name = "000000010000000000000001";
    let rel = data.wal(name, &fake_segment(name, SYSID, SEG_1M, 1));
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let cfg = scratch
        .file("dead.toml", format!("timeout = \"1s\"\nretries = 1\n{}", s3_toml(&endpoint, "bucket", "p")));
    let run = data.push(&cfg, &rel);
    one_clear_line(&run, 1, &["walvault.json"]);
    assert!(!run.stderr.contains("walvault-test-secret"), "a secret reached the log:\n{}", run.stderr);
    let (run, _) = data.fetch(&cfg, name);
    one_clear_line(&run, 200, &[name]);
    assert!(!run.stderr.contains("walvault-test-secret"));
}
