//! Corruption and tampering behind walvault's back, in a real archive of PostgreSQL 15 on S3
//! (moto): a flipped byte, a truncated object, another segment's object renamed into a
//! segment's place, a segment's object written with another key, and a backup descriptor edited
//! to point at another part. `wal-fetch` refuses each (an exit above 125, the reason named, no
//! file at `%p`), `restore` refuses the descriptor, `verify` reports each, and a PostgreSQL
//! recovering through a damaged segment stops instead of ending recovery early: with the object
//! put back, the same directory then recovers everything.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::require_s3;
use crate::skip_or_fail;
use crate::support::backups::{archive_everything, archiving, base_backup, configure, restore, walvault};
use crate::support::datadir::{DataDir, extra, keygen};
use crate::support::pg::{Cluster, pg_bin, tail};
use crate::support::repo::Repo;
use crate::support::{Run, Scratch, as_pg_user};

/// `walvault verify ARGS --json`: the run and the kinds of problem it reports, with their objects.
fn problems(cfg: &Path, args: &[&str]) -> (Run, Vec<(String, String)>) {
    let run = Run::of(walvault(cfg).arg("verify").args(args).arg("--json"));
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    let mut found = Vec::new();
    for section in ["backups", "wal", "dumps"] {
        for item in report[section].as_array().into_iter().flatten() {
            for p in item["problems"].as_array().into_iter().flatten() {
                found.push((
                    p["kind"].as_str().unwrap_or_default().to_string(),
                    p["object"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    for p in report["problems"].as_array().into_iter().flatten() {
        found.push((
            p["kind"].as_str().unwrap_or_default().to_string(),
            p["object"].as_str().unwrap_or_default().to_string(),
        ));
    }
    (run, found)
}

/// One way of damaging a segment's object: what `wal-fetch` must exit with and say.
struct Damage {
    what: &'static str,
    bytes: Vec<u8>,
    fetch_code: i32,
    fetch_says: &'static str,
    /// verify's exit and problem kind: 3 for damage; 1 and `unreadable` for an object no
    /// configured key opens (verify cannot tell it from damage, and says it could not check).
    verify: (i32, &'static str),
}

#[test]
fn pg_tampered_objects_are_refused_and_recovery_stops() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let server = require_s3!();
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let key = keygen(&scratch, "walvault.key");
    let cfg = repo.config(
        &scratch,
        "walvault.toml",
        &format!("{}part_size = \"1MiB\"\n", extra("zstd", Some(&key))),
    );
    let mut primary = Cluster::init(&scratch, "primary", &bin, &["--wal-segsize=1"]);
    configure(&primary, &archiving(&cfg));
    primary.start();
    Run::of(primary.client("pgbench").args(["-i", "-s", "1", "-q", "postgres"])).expect(0);
    primary.sql("create table t (i int)");
    let id = base_backup(&cfg, &primary);
    for batch in 0..6 {
        primary.sql(&format!(
            "insert into t select g from generate_series({}, {}) g",
            batch * 20000 + 1,
            (batch + 1) * 20000
        ));
        primary.sql("select pg_switch_wal()");
    }
    let rows = primary.sql("select count(*) from t");
    archive_everything(&primary);
    primary.stop();
    let (run, found) = problems(&cfg, &["--full", "--wal"]);
    assert_eq!(run.code, 0, "verify before any damage: {found:?}\n{}", run.stderr);

    // A segment recovery needs after the backup, and another one to put in its place.
    let mut segments: Vec<String> = repo
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("wal/") && k.rsplit('/').next().is_some_and(|n| n.len() == 24))
        .collect();
    segments.sort();
    let victim = segments[segments.len() - 4].clone();
    let other = segments[segments.len() - 2].clone();
    let name = victim.rsplit('/').next().unwrap().to_string();
    let good = repo.get(&victim);

    // The same segment, written by wal-push with another key into another repository.
    let elsewhere = Repo::s3(&server);
    let other_key = keygen(&scratch, "other.key");
    let other_cfg = elsewhere.config(&scratch, "other.toml", &extra("zstd", Some(&other_key)));
    let data = DataDir::new(&scratch);
    let (run, plain) = data.fetch(&cfg, &name);
    run.expect(0);
    data.push(&other_cfg, &data.wal(&name, &plain.unwrap())).expect(0);
    let other_keyed = elsewhere.get(&victim);

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    let damages = [
        Damage {
            what: "a flipped byte",
            bytes: flipped,
            fetch_code: 201,
            fetch_says: "failed authentication",
            verify: (3, "corrupt"),
        },
        Damage {
            what: "a truncated object",
            bytes: good[..good.len() - 37].to_vec(),
            fetch_code: 201,
            fetch_says: "corrupt",
            verify: (3, "corrupt"),
        },
        Damage {
            what: "another segment's object",
            bytes: repo.get(&other),
            fetch_code: 201,
            fetch_says: "is not that segment",
            verify: (3, "not_its_segment"),
        },
        Damage {
            what: "another key's object",
            bytes: other_keyed,
            fetch_code: 202,
            fetch_says: "was written with key",
            verify: (1, "unreadable"),
        },
    ];
    for d in &damages {
        repo.overwrite(&victim, d.bytes.clone());
        let (run, got) = data.fetch(&cfg, &name);
        assert_eq!(run.code, d.fetch_code, "{}: wal-fetch exit {}: {}", d.what, run.code, run.stderr);
        assert!(
            run.stderr.contains(d.fetch_says),
            "{}: wal-fetch does not say {:?}: {}",
            d.what,
            d.fetch_says,
            run.stderr
        );
        assert!(run.stderr.contains(&name), "{}: the segment is not named: {}", d.what, run.stderr);
        assert!(got.is_none(), "{}: wal-fetch left a file at %p", d.what);
        let (run, found) = problems(&cfg, &["--full", "--wal"]);
        assert_eq!(run.code, d.verify.0, "{}: verify exit {}: {found:?}", d.what, run.code);
        assert!(
            found.iter().any(|(k, o)| k == d.verify.1 && o.contains(&name)),
            "{}: verify does not report {} of {name}: {found:?}",
            d.what,
            d.verify.1
        );
        eprintln!("{}: wal-fetch {} ({}), verify {} {found:?}", d.what, d.fetch_code, d.fetch_says, run.code);
    }

    // PostgreSQL recovering through the flipped segment stops rather than ending recovery there.
    repo.overwrite(&victim, damages[0].bytes.clone());
    let dir = scratch.path().join("restored");
    restore(&cfg, &dir, &["--backup", &id]).expect(0);
    let sock = scratch.subdir("restored-sock");
    let mut restored = Cluster::at(&bin, dir.clone(), sock, scratch.path().join("restored.log"));
    restored.configure(&[("archive_mode", "off")]);
    let opts = format!("-c listen_addresses='' -k {} -p {}", restored.sock.display(), restored.port);
    let pg_ctl = |args: &[&str]| {
        Run::of(
            as_pg_user(bin.join("pg_ctl"))
                .args(["-D"])
                .arg(&dir)
                .arg("-l")
                .arg(restored.log_path())
                .args(["-o", &opts])
                .args(args),
        )
    };
    pg_ctl(&["-W", "start"]).expect(0);
    let began = Instant::now();
    while !restored.log_text().contains("database system is shut down")
        && !restored.log_text().contains("aborting startup due to startup process failure")
    {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "recovery did not stop:\n{}",
            tail(&restored.log_text(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = restored.log_text();
    assert!(
        log.contains("exit code 201"),
        "the server log does not show wal-fetch's 201:\n{}",
        tail(&log, 30)
    );
    assert!(
        !log.contains("selected new timeline ID"),
        "recovery ended at the damaged segment:\n{}",
        tail(&log, 30)
    );
    assert!(dir.join("recovery.signal").exists(), "recovery was given up");

    // Put back, the same directory recovers every row.
    repo.overwrite(&victim, good);
    std::thread::sleep(Duration::from_millis(500));
    restored.start();
    restored.wait_for("select not pg_is_in_recovery()", "t", Duration::from_secs(120));
    assert_eq!(restored.sql("select count(*) from t"), rows);
    restored.stop();
    drop(restored);

    // A descriptor edited to point one part at another part's object.
    let desc_key = format!("backups/{id}.json");
    let desc = repo.get(&desc_key);
    let parts = repo.part_keys(&id);
    assert!(parts.len() >= 3, "{parts:?}");
    let edited = String::from_utf8(desc.clone()).unwrap().replacen(
        &format!("\"{}\"", parts[1]),
        &format!("\"{}\"", parts[2]),
        1,
    );
    repo.overwrite(&desc_key, edited.into_bytes());
    let dir2 = scratch.path().join("restored-2");
    let run = restore(&cfg, &dir2, &["--backup", &id]);
    assert_eq!(run.code, 3, "restore of an edited descriptor: {}", run.stderr);
    assert!(run.stderr.contains(&parts[2]), "the part is not named: {}", run.stderr);
    assert!(!dir2.exists(), "restore left {}", dir2.display());
    let (run, found) = problems(&cfg, &["--full", "--wal"]);
    assert_eq!(run.code, 3, "verify of an edited descriptor: {found:?}");
    assert!(found.iter().any(|(_, o)| o.contains(&parts[2])), "verify does not name {}: {found:?}", parts[2]);
    repo.overwrite(&desc_key, desc);
    let (run, found) = problems(&cfg, &["--full", "--wal"]);
    assert_eq!(run.code, 0, "verify after everything was put back: {found:?}");
}
