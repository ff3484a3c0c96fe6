//! wal-push and wal-fetch run as PostgreSQL runs them, on `file://` and on the S3-compatible
//! server: round trips for every codec with and without a key, duplicates, conflicts, other
//! clusters, history and backup files, key rotation, and 8 concurrent pushes of one segment.

use std::process::Command;

use crate::on_backends;
use crate::support::datadir::{DataDir, SEG_1M, SYSID, extra, keygen};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch, bins, fake_segment};

fn round_trips(backend: Backend) {
    let scratch = Scratch::new();
    let key = keygen(&scratch, "key");
    let data = DataDir::new(&scratch);
    for (i, compression) in ["zstd", "zstd:9", "lz4", "none"].iter().enumerate() {
        for with_key in [false, true] {
            let repo = crate::repo_on!(backend, &scratch);
            let cfg = repo.config(
                &scratch,
                &format!("c{i}{with_key}.toml"),
                &extra(compression, with_key.then_some(&*key)),
            );
            let name = "00000001000000030000002A";
            let seg = fake_segment(name, SYSID, SEG_1M, i as u64);
            let rel = data.wal(name, &seg);
            data.push(&cfg, &rel).expect(0).says(&["archived 00000001000000030000002A"]);
            let listing = repo.listing();
            let keys: Vec<&String> = listing.keys().collect();
            assert_eq!(keys, ["wal/0000000100000003/00000001000000030000002A", "walvault.json"]);
            let stored = repo.get("wal/0000000100000003/00000001000000030000002A");
            assert_eq!(&stored[..4], b"WVLT");
            if with_key {
                assert!(!stored.windows(64).any(|w| seg.windows(64).next() == Some(w)), "plaintext visible");
            }
            let identity: serde_json::Value = serde_json::from_slice(&repo.get("walvault.json")).unwrap();
            assert_eq!(identity["system_identifier"], SYSID.to_string());
            assert_eq!(identity["wal_segment_size"], SEG_1M);

            let (run, got) = data.fetch(&cfg, name);
            run.expect(0);
            assert!(got.as_deref() == Some(&seg[..]), "fetched bytes differ ({compression}, key {with_key})");
            // Pushed again: success without a second write.
            data.push(&cfg, &rel).expect(0).says(&["already archived with the same contents"]);
            assert_eq!(repo.listing(), listing);
        }
    }
}

on_backends!(round_trips, round_trips, [file, s3, azure]);

fn refusals(backend: Backend) {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = crate::repo_on!(backend, &scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let name = "000000010000000000000005";
    let first = fake_segment(name, SYSID, SEG_1M, 1);
    data.push(&cfg, &data.wal(name, &first)).expect(0);
    let before = repo.listing();

    // Same name, different bytes: a split brain. Refused, naming both checksums.
    let second = fake_segment(name, SYSID, SEG_1M, 2);
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    let run = data.push(&cfg, &data.wal(name, &second));
    run.expect(3).says(&[
        "already archived with different contents",
        "refusing to overwrite",
        &sha(&first),
        &sha(&second),
    ]);
    // A segment of another cluster.
    let other = "000000010000000000000006";
    data.push(&cfg, &data.wal(other, &fake_segment(other, SYSID + 1, SEG_1M, 3))).expect(3).says(&[
        &SYSID.to_string(),
        &(SYSID + 1).to_string(),
        "refusing to mix clusters",
    ]);
    assert_eq!(repo.listing(), before, "a refused push changed the repository");
}

on_backends!(refusals, refusals, [file, s3, azure]);

fn history_and_backup_files(backend: Backend) {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = crate::repo_on!(backend, &scratch);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "c.toml", &extra("lz4", Some(&key)));
    let seg = "00000002000000000000000A";
    let files: [(&str, Vec<u8>, &str); 4] = [
        (
            "00000002.history",
            b"1\t0/A000060\tno recovery target specified\n".to_vec(),
            "wal/history/00000002.history",
        ),
        (
            "00000001000000000000000A.00000028.backup",
            b"START WAL LOCATION: 0/A000028 (file 00000001000000000000000A)\n".to_vec(),
            "wal/0000000100000000/00000001000000000000000A.00000028.backup",
        ),
        (
            "00000001000000000000000A.partial",
            fake_segment("00000001000000000000000A", SYSID, SEG_1M, 5),
            "wal/0000000100000000/00000001000000000000000A.partial",
        ),
        (seg, fake_segment(seg, SYSID, SEG_1M, 6), "wal/0000000200000000/00000002000000000000000A"),
    ];
    for (name, bytes, key) in &files {
        data.push(&cfg, &data.wal(name, bytes)).expect(0);
        assert!(repo.listing().contains_key(*key), "{key} missing");
        let (run, got) = data.fetch(&cfg, name);
        run.expect(0);
        assert!(got.as_deref() == Some(&bytes[..]), "{name} differs");
    }
    // History files that never existed are the normal "no" of recovery: exit 1, fast.
    let (run, got) = data.fetch(&cfg, "00000003.history");
    run.expect(1);
    assert!(got.is_none());
}

on_backends!(history_and_backup_files, history_and_backup_files, [file, s3, azure]);

#[test]
fn key_rotation_and_wrong_keys() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let old = keygen(&scratch, "old.key");
    let new = keygen(&scratch, "new.key");
    let name = "000000010000000000000007";
    let seg = fake_segment(name, SYSID, SEG_1M, 7);
    let cfg_old = repo.config(&scratch, "old.toml", &extra("zstd", Some(&old)));
    data.push(&cfg_old, &data.wal(name, &seg)).expect(0);

    let rotated = repo.config(
        &scratch,
        "rotated.toml",
        &format!("{}decryption_key_files = [\"{}\"]\n", extra("zstd", Some(&new)), old.display()),
    );
    let (run, got) = data.fetch(&rotated, name);
    run.expect(0);
    assert!(got.as_deref() == Some(&seg[..]));

    let only_new = repo.config(&scratch, "new.toml", &extra("zstd", Some(&new)));
    let (run, got) = data.fetch(&only_new, name);
    run.expect(202).says(&["was written with key", "configured keys are"]);
    assert!(got.is_none(), "wal-fetch wrote a file it could not verify");

    let no_key = repo.config(&scratch, "nokey.toml", &extra("zstd", None));
    let (run, got) = data.fetch(&no_key, name);
    run.expect(202).says(&["no key is configured"]);
    assert!(got.is_none());
}

fn concurrent_pushes(backend: Backend) {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = crate::repo_on!(backend, &scratch);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", Some(&key)));
    let name = "00000001000000000000000B";
    let seg = fake_segment(name, SYSID, 16 << 20, 11);
    let rel = data.wal(name, &seg);
    // Eight archivers at once (say, a restarted archiver racing a manual run): all succeed,
    // exactly one object is written, and it is the segment.
    let children: Vec<_> = (0..8)
        .map(|_| {
            data.push_cmd(&cfg, &[&rel])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut archived = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        crate::support::logs::output(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        if err.contains(&format!("archived {name} (")) {
            archived += 1;
        }
    }
    assert_eq!(archived, 1, "more than one push wrote the object");
    let keys: Vec<String> = repo.listing().into_keys().collect();
    assert_eq!(keys, [format!("wal/0000000100000000/{name}"), "walvault.json".to_string()]);
    let (run, got) = data.fetch(&cfg, name);
    run.expect(0);
    assert!(got.as_deref() == Some(&seg[..]));
}

on_backends!(concurrent_pushes, concurrent_pushes, [file, s3, azure]);

#[test]
fn list_shows_archived_ranges_and_gaps() {
    let scratch = Scratch::new();
    let data = DataDir::new(&scratch);
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("lz4", None));
    for i in [1u32, 2, 3, 6, 7] {
        let name = format!("0000000100000000{i:08X}");
        data.push(&cfg, &data.wal(&name, &fake_segment(&name, SYSID, SEG_1M, u64::from(i)))).expect(0);
    }
    data.push(&cfg, &data.wal("00000002.history", b"1\t0/7000000\tno recovery target specified\n")).expect(0);
    let run = Run::of(Command::new(&bins().walvault).arg("list").arg("--config").arg(&cfg));
    run.expect(0);
    for line in [
        "000000010000000000000001 - 000000010000000000000003  3 segments",
        "GAP 000000010000000000000004 - 000000010000000000000005  2 missing",
        "000000010000000000000006 - 000000010000000000000007  2 segments",
        "backups: 0",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in:\n{}", run.stdout);
    }
    let run = Run::of(Command::new(&bins().walvault).args(["list", "--json", "--config"]).arg(&cfg));
    let v: serde_json::Value = serde_json::from_str(&run.expect(0).stdout).unwrap();
    assert_eq!(v["system_identifier"], SYSID.to_string());
    assert_eq!(v["wal"][0]["gaps"][0]["segments"], 2);
    assert_eq!(v["wal"][1]["timeline"], 2);
    assert_eq!(v["wal"][1]["history"], true);
}
