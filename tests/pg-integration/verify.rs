//! `walvault verify` against a real PostgreSQL 15 and the S3-compatible server: a clean
//! repository verifies (and a second run reads no bodies); a deleted part, a flipped byte, a
//! truncated part, a part replaced by another object, a missing WAL segment and a WAL object
//! swapped with another segment's are each named, with exit 3; a restore drill passes on a good
//! backup and fails, with the reason, on a damaged one.

use std::path::Path;

use crate::skip_or_fail;
use crate::support::backups::{archive_everything, archiving, base_backup, configure, step, walvault};
use crate::support::datadir::extra;
use crate::support::pg::{Cluster, pg_bin};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch};

fn verify(cfg: &Path, args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let run = Run::of(walvault(cfg).args(&all));
    let json = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run, json)
}

/// Every problem's (kind, object).
fn problems(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for section in ["backups", "wal"] {
        for entry in report[section].as_array().into_iter().flatten() {
            for p in entry["problems"].as_array().into_iter().flatten() {
                out.push((
                    p["kind"].as_str().unwrap().to_string(),
                    p["object"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// A primary with two backups on S3, everything archived.
fn two_backups(scratch: &Scratch, repo: &Repo, bin: &Path) -> (std::path::PathBuf, Vec<String>, String) {
    let cfg =
        repo.config(scratch, "walvault.toml", &format!("{}part_size = \"1MiB\"\n", extra("zstd", None)));
    let mut p = Cluster::init(scratch, "primary", bin, &[]);
    configure(&p, &archiving(&cfg));
    p.start();
    p.sql("create table t (i int primary key, v text)");
    Run::of(p.client("pgbench").args(["-i", "-s", "1", "-q", "postgres"])).expect(0);
    let b1 = base_backup(&cfg, &p);
    step(&p, 1, false);
    let b2 = base_backup(&cfg, &p);
    let m2 = step(&p, 2, false);
    // A commit after the moment, so recovery to it knows when to stop.
    step(&p, 3, false);
    archive_everything(&p);
    p.stop();
    (cfg, vec![b1, b2], m2.time)
}

#[test]
fn pg_verify_names_every_kind_of_damage() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(Backend::S3, &scratch);
    let (cfg, ids, _) = two_backups(&scratch, &repo, &bin);
    let (run, first) = verify(&cfg, &["--wal"]);
    run.expect(0);
    assert!(first["summary"]["objects_read"].as_u64().unwrap() > 10, "{first:#}");
    let (run, second) = verify(&cfg, &["--wal"]);
    run.expect(0);
    assert_eq!(second["summary"]["objects_read"], 0, "the second run read bodies: {second:#}");
    assert!(second["summary"]["objects_skipped"].as_u64().unwrap() > 10);
    let text = Run::of(walvault(&cfg).args(["verify"])).expect(0).stdout.clone();
    assert!(text.contains("everything checked is sound") && text.contains("/s"), "{text}");

    let desc: serde_json::Value =
        serde_json::from_slice(&repo.get(&format!("backups/{}.json", ids[0]))).unwrap();
    let parts = repo.part_keys(&ids[0]);
    assert!(parts.len() >= 2, "{parts:?}");
    let (p1, p2) = (&parts[0], &parts[1]);
    let good = repo.get(p1);
    let damaged = |what: &str, kinds: &[&str], object: &str| {
        let (run, report) = verify(&cfg, &[]);
        assert_eq!(run.code, 3, "{what}: exit {} (wanted 3)\n{}\n{}", run.code, run.stdout, run.stderr);
        let found = problems(&report);
        assert!(
            found.iter().any(|(k, o)| kinds.contains(&k.as_str()) && o == object),
            "{what}: no {kinds:?} problem naming {object}: {found:?}"
        );
        assert!(run.stderr.contains("problem"), "{what}: {}", run.stderr);
    };
    repo.delete(p1);
    damaged("a deleted part", &["missing_object"], p1);
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x20;
    repo.overwrite(p1, flipped);
    damaged("a flipped byte", &["corrupt"], p1);
    repo.overwrite(p1, good[..good.len() - 100].to_vec());
    damaged("a truncated part", &["wrong_size"], p1);
    repo.overwrite(p1, repo.get(p2));
    damaged("another part in its place", &["mismatch", "wrong_size"], p1);
    repo.overwrite(p1, good);
    verify(&cfg, &[]).0.expect(0);

    // A WAL segment the first backup needs, then one swapped with another (found with --wal).
    let start: walvault::wal::Lsn = desc["start_lsn"].as_str().unwrap().parse().unwrap();
    let tli = walvault::wal::TimelineId::new(1).unwrap();
    let seg = walvault::wal::SegmentName::containing(tli, start, walvault::wal::WalSegSize::DEFAULT);
    let key = format!("wal/{}/{seg}", &seg.to_string()[..16]);
    let seg_bytes = repo.get(&key);
    repo.delete(&key);
    damaged("a missing WAL segment", &["missing_wal", "wal_gap"], &seg.to_string());
    let newest =
        repo.keys().into_iter().filter(|k| k.starts_with("wal/0") && !k.ends_with(".backup")).max().unwrap();
    repo.overwrite(&key, repo.get(&newest));
    let (run, report) = verify(&cfg, &["--wal"]);
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert!(
        problems(&report).contains(&("not_its_segment".to_string(), key.clone())),
        "{:?}",
        problems(&report)
    );
    repo.overwrite(&key, seg_bytes);
    verify(&cfg, &["--wal"]).0.expect(0);
}

#[test]
fn pg_verify_restore_drill_passes_and_fails_on_damage() {
    let Some(bin) = pg_bin() else { skip_or_fail!("PostgreSQL 15 server binaries not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(Backend::S3, &scratch);
    let (cfg, ids, later) = two_backups(&scratch, &repo, &bin);
    let before: Vec<String> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wvdrill-"))
        .collect();
    let (run, report) = verify(&cfg, &["--restore-test"]);
    run.expect(0);
    let drill = &report["drills"][0];
    assert_eq!(drill["ok"], true, "{report:#}");
    assert_eq!(drill["backup"], ids[1].as_str());
    assert_eq!(drill["check"], "pg_amcheck --all");
    assert!(
        drill["restore_seconds"].as_f64().unwrap() > 0.0 && drill["recovery_seconds"].as_f64().unwrap() > 0.0
    );
    // A drill to a time after the second backup, of the older backup.
    let (run, report) = verify(&cfg, &["--restore-test", "--backup", &ids[0], "--target-time", &later]);
    run.expect(0);
    assert_eq!(report["drills"][0]["ok"], true, "{report:#}");

    // Damaged: a part of the newest backup flipped. The drill fails and says why.
    let part = repo.part_keys(&ids[1])[0].clone();
    let mut bytes = repo.get(&part);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    repo.overwrite(&part, bytes);
    let (run, report) = verify(&cfg, &["--restore-test", "--backup", &ids[1]]);
    assert_eq!(run.code, 3, "{}", run.stdout);
    let drill = &report["drills"][0];
    assert_eq!(drill["ok"], false);
    let why = drill["message"].as_str().unwrap();
    assert!(why.contains("walvault restore failed") && why.contains(&part), "{why}");
    // Nothing of the drills is left behind.
    let after: Vec<String> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wvdrill-") && !before.contains(n))
        .collect();
    assert!(after.is_empty(), "left behind: {after:?}");
}
