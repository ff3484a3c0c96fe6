//! Whole restores from backups built in memory: parts encoded as base-backup stores them, a
//! descriptor, and `restore` run against an in-memory repository. Checks what lands on disk,
//! and that every failure (corrupt, swapped or unsafe part, busy directory, missing key, early
//! target) leaves the directories as they were found.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::PutPayload;
use object_store::memory::InMemory;
use object_store::path::Path as Key;

use super::extract::ExtractError;
use super::*;
use crate::config::ConfigArgs;
use crate::format::Compression;
use crate::keys::{KeyRing, MasterKey};
use crate::repo::descriptor::{Archive, Part, StoredFile};
use crate::repo::retry::RetryPolicy;
use crate::wal::lsn::Lsn;

/// One tar member: header (mode, kind, link target) and data, padded.
fn member(name: &str, kind: u8, mode: u32, data: &[u8], link: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(format!("{:011o}", 1_700_000_000u64).as_bytes());
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    member(name, b'0', 0o600, data, "")
}

fn dir(name: &str) -> Vec<u8> {
    member(name, b'5', 0o700, b"", "")
}

const END: [u8; 1024] = [0; 1024];

/// An archive to store: name, tablespace OID, location, and its parts' tar bytes.
type FakeArchive<'a> = (&'a str, Option<u32>, Option<&'a str>, Vec<Vec<u8>>);

struct Repo {
    storage: Storage,
    cfg: Config,
    key: Option<MasterKey>,
}

impl Repo {
    fn new(with_key: bool) -> Repo {
        let store = Arc::new(InMemory::new());
        let storage = Storage::from_store(store, RetryPolicy::new(1, Duration::from_secs(5)), "memory://");
        let args = ConfigArgs { repo: Some("file:///unused".into()), ..Default::default() };
        let mut cfg = Config::resolve(&args).unwrap();
        let key = with_key.then(|| MasterKey::from_bytes([7; 32]));
        cfg.keys = KeyRing::new(key.clone(), Vec::new());
        Repo { storage, cfg, key }
    }

    /// Stores `bytes` encoded at `key`; returns its record.
    fn put(&self, key: &str, bytes: &[u8]) -> Part {
        let enc =
            crate::object::encode::encode_reader(bytes, Compression::None, self.key.as_ref(), 4096, None)
                .unwrap();
        let payload: Vec<u8> = enc.pieces.iter().flat_map(|p| p.iter().copied()).collect();
        block_on(self.storage.put_if_absent(&Key::from(key), PutPayload::from(payload))).unwrap();
        Part {
            key: key.into(),
            raw_bytes: enc.trailer.len,
            stored_bytes: enc.stored,
            sha256: hex::encode(enc.trailer.sha256),
        }
    }

    /// A backup of `archives` (name, tablespace OID and location, parts' tar bytes).
    fn backup(&self, id: &str, archives: Vec<FakeArchive<'_>>) -> Descriptor {
        let mut out = Vec::new();
        for (name, oid, location, parts) in archives {
            let parts = parts
                .iter()
                .enumerate()
                .map(|(i, p)| self.put(&format!("backups/{id}/{name}.{:05}", i + 1), p))
                .collect();
            out.push(Archive {
                name: name.into(),
                tablespace_oid: oid,
                location: location.map(Into::into),
                parts,
            });
        }
        let m = self.put(&format!("backups/{id}/backup_manifest"), b"{ \"manifest\": 1 }\n");
        let desc = Descriptor {
            format: 1,
            id: id.into(),
            label: "test".into(),
            system_identifier: "1".into(),
            server_version: 150000,
            timeline: crate::wal::TimelineId::new(1).unwrap(),
            start_lsn: "0/2000028".parse().unwrap(),
            stop_lsn: "0/2000100".parse().unwrap(),
            start_time: "2026-11-23T10:00:00Z".parse().unwrap(),
            stop_time: "2026-11-23T10:00:05Z".parse().unwrap(),
            wal_segment_size: 16 << 20,
            compression: "none".into(),
            key_id: self.key.as_ref().map(|k| k.id().to_string()),
            walvault_version: "0".into(),
            archives: out,
            manifest: StoredFile {
                key: m.key,
                raw_bytes: m.raw_bytes,
                stored_bytes: m.stored_bytes,
                sha256: m.sha256,
            },
            raw_bytes: 0,
            stored_bytes: 0,
        };
        let json = serde_json::to_vec(&desc).unwrap();
        block_on(self.storage.put_if_absent(&crate::repo::layout::descriptor(id), PutPayload::from(json)))
            .unwrap();
        desc
    }

    fn restore(&self, req: &RestoreRequest) -> Result<Restored, RestoreError> {
        block_on(restore(&self.cfg, &self.storage, req))
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn request(target_dir: &Path) -> RestoreRequest {
    RestoreRequest {
        target_dir: target_dir.to_path_buf(),
        backup: None,
        target: None,
        action: None,
        timeline: None,
        tablespace_map: Vec::new(),
        concurrency: 4,
        sync: true,
        fetch_exe: PathBuf::from("/usr/local/bin/walvault"),
        fetch_args: vec!["--config".into(), "/etc/walvault/w.toml".into()],
    }
}

/// base.tar in two parts (the first without the end marker) and tablespace 16385 in one.
fn standard(repo: &Repo, id: &str) -> Descriptor {
    let part1 = [
        file("backup_label", b"START WAL LOCATION: 0/2000028\n"),
        file("tablespace_map", b"16385 /original/ts\n"),
        dir("global/"),
        file("global/pg_control", &[9u8; 8192]),
        file("postgresql.auto.conf", b"# Do not edit\nrestore_command = 'false'\n"),
        file("standby.signal", b""),
        dir("pg_tblspc/"),
    ]
    .concat();
    let part2 =
        [dir("pg_wal/"), dir("./pg_wal/archive_status/"), file("base/1/1259", &[1u8; 20000]), END.to_vec()]
            .concat();
    let ts =
        [dir("PG_15_202209061/"), file("PG_15_202209061/16384/16386", &[3u8; 777]), END.to_vec()].concat();
    repo.backup(
        id,
        vec![
            ("base.tar", None, None, vec![part1, part2]),
            ("16385.tar", Some(16385), Some("/original/ts"), vec![ts]),
        ],
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn restores_files_links_manifest_and_settings() {
    for with_key in [false, true] {
        let repo = Repo::new(with_key);
        standard(&repo, "20261123T100000Z");
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("data");
        let ts = top.path().join("ts");
        let mut req = request(&data);
        req.tablespace_map = vec![(16385, ts.clone())];
        req.target = Some(RecoveryTarget::Lsn(Lsn(0x3000000)));
        req.action = Some(TargetAction::Promote);
        let done = repo.restore(&req).unwrap();
        assert_eq!(done.backup, "20261123T100000Z");
        assert_eq!(done.stats.files, 7);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(std::fs::read(data.join("global/pg_control")).unwrap(), vec![9u8; 8192]);
        assert_eq!(std::fs::read(data.join("base/1/1259")).unwrap(), vec![1u8; 20000]);
        assert_eq!(mode(&data.join("base/1/1259")), 0o600);
        assert!(data.join("pg_wal/archive_status").is_dir());
        assert_eq!(std::fs::read(ts.join("PG_15_202209061/16384/16386")).unwrap(), vec![3u8; 777]);
        assert_eq!(mode(&ts), 0o700);
        assert_eq!(std::fs::read_link(data.join("pg_tblspc/16385")).unwrap(), ts);
        // Through the link, as pg_verifybackup and PostgreSQL see it.
        assert!(data.join("pg_tblspc/16385/PG_15_202209061/16384/16386").is_file());
        assert_eq!(
            std::fs::read_to_string(data.join("tablespace_map")).unwrap(),
            format!("16385 {}\n", ts.display())
        );
        assert_eq!(std::fs::read(data.join("backup_manifest")).unwrap(), b"{ \"manifest\": 1 }\n");
        assert_eq!(std::fs::read(data.join("recovery.signal")).unwrap(), b"");
        assert!(!data.join("standby.signal").exists(), "a backup of a standby is restored for recovery");
        let auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        assert!(auto.contains("# replaced by walvault restore: restore_command = 'false'\n"), "{auto}");
        assert!(
            auto.contains(
                "restore_command = '/usr/local/bin/walvault wal-fetch --config /etc/walvault/w.toml %f %p'\n"
            ),
            "{auto}"
        );
        assert!(auto.contains("recovery_target_name = ''\n"), "{auto}");
        assert!(
            auto.ends_with("recovery_target_lsn = '0/3000000'\nrecovery_target_action = 'promote'\n"),
            "{auto}"
        );
    }
}

#[test]
fn original_tablespace_location_keeps_the_map() {
    let repo = Repo::new(false);
    let top = tempfile::tempdir().unwrap();
    let loc = top.path().join("ts-original");
    let loc_text = loc.to_str().unwrap().to_string();
    let map = format!("16385 {loc_text}\n");
    let base = [file("tablespace_map", map.as_bytes()), dir("pg_tblspc/"), END.to_vec()].concat();
    let ts = [file("PG_15_202209061/x", b"x"), END.to_vec()].concat();
    repo.backup(
        "20261123T100000Z",
        vec![("base.tar", None, None, vec![base]), ("16385.tar", Some(16385), Some(&loc_text), vec![ts])],
    );
    let data = top.path().join("data");
    repo.restore(&request(&data)).unwrap();
    assert_eq!(std::fs::read_link(data.join("pg_tblspc/16385")).unwrap(), loc);
    assert_eq!(std::fs::read_to_string(data.join("tablespace_map")).unwrap(), map);
    assert_eq!(std::fs::read(loc.join("PG_15_202209061/x")).unwrap(), b"x");
}

/// Everything as it was before: no target directory (it was absent), an empty tablespace
/// directory (it existed, empty), nothing else in `top`.
fn assert_clean(top: &Path, data: &Path, ts: &Path) {
    assert!(!data.exists(), "{} left behind", data.display());
    assert!(std::fs::read_dir(ts).unwrap().next().is_none(), "{} not emptied", ts.display());
    let names: Vec<_> = std::fs::read_dir(top).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

fn failing(repo: &Repo) -> (tempfile::TempDir, PathBuf, PathBuf, RestoreError) {
    let top = tempfile::tempdir().unwrap();
    let data = top.path().join("data");
    let ts = top.path().join("ts");
    std::fs::create_dir(&ts).unwrap();
    let mut req = request(&data);
    req.tablespace_map = vec![(16385, ts.clone())];
    let err = repo.restore(&req).unwrap_err();
    (top, data, ts, err)
}

fn exit_code(e: RestoreError) -> u8 {
    crate::cli::exit::code(crate::cli::exit::Command::Other, &crate::cli::exit::CommandError::Restore(e))
}

#[test]
fn a_corrupt_part_fails_and_removes_everything() {
    for with_key in [false, true] {
        let repo = Repo::new(with_key);
        let desc = standard(&repo, "20261123T100000Z");
        let key = Key::from(desc.archives[0].parts[1].key.as_str());
        let mut bytes = block_on(repo.storage.get_bytes(&key)).unwrap().to_vec();
        let at = bytes.len() - 100;
        bytes[at] ^= 1;
        block_on(repo.storage.delete(&key)).unwrap();
        block_on(repo.storage.put_if_absent(&key, PutPayload::from(bytes))).unwrap();
        let (top, data, ts, err) = failing(&repo);
        assert!(matches!(err, RestoreError::Part { source: PartError::Decode(_), .. }), "{err}");
        assert!(err.to_string().contains(&desc.archives[0].parts[1].key), "{err}");
        assert_clean(top.path(), &data, &ts);
        assert_eq!(exit_code(err), 3);
    }
}

#[test]
fn a_valid_part_in_the_wrong_place_fails() {
    let repo = Repo::new(false);
    // Two tablespace parts of the same size: swapped, each still decodes and verifies.
    let a = [file("PG_15_202209061/a", &[1u8; 100])].concat();
    let b = [file("PG_15_202209061/b", &[2u8; 100]), END.to_vec()].concat();
    let a_end = [a.clone(), END.to_vec()].concat();
    assert_eq!(a_end.len(), b.len());
    let desc = repo.backup(
        "20261123T100000Z",
        vec![
            ("base.tar", None, None, vec![[dir("pg_tblspc/"), END.to_vec()].concat()]),
            ("16385.tar", Some(16385), Some("/original/ts"), vec![a, b]),
        ],
    );
    // Replace part 2 with a valid object holding other (same-sized) bytes.
    let key = Key::from(desc.archives[1].parts[1].key.as_str());
    block_on(repo.storage.delete(&key)).unwrap();
    let other = repo.put("elsewhere", &a_end);
    let moved = block_on(repo.storage.get_bytes(&Key::from(other.key.as_str()))).unwrap();
    block_on(repo.storage.put_if_absent(&key, PutPayload::from(moved))).unwrap();
    let (top, data, ts, err) = failing(&repo);
    assert!(matches!(err, RestoreError::Part { source: PartError::Mismatch { .. }, .. }), "{err}");
    assert!(err.to_string().contains("but the descriptor lists"), "{err}");
    assert_clean(top.path(), &data, &ts);
    assert_eq!(exit_code(err), 3);
}

#[test]
fn a_missing_part_fails() {
    let repo = Repo::new(false);
    let desc = standard(&repo, "20261123T100000Z");
    block_on(repo.storage.delete(&Key::from(desc.archives[1].parts[0].key.as_str()))).unwrap();
    let (top, data, ts, err) = failing(&repo);
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_clean(top.path(), &data, &ts);
    assert_eq!(exit_code(err), 3);
}

#[test]
fn unsafe_members_fail_and_write_nothing_outside() {
    for bad in [
        file("../escape", b"x"),
        file("/tmp/walvault-escape", b"x"),
        member("pg_wal", b'2', 0o777, b"", "/var/lib/elsewhere"),
        member("link", b'2', 0o777, b"", "../.."),
        member("hard", b'1', 0o600, b"", "global/pg_control"),
    ] {
        let repo = Repo::new(false);
        let base = [file("ok", b"1"), bad, END.to_vec()].concat();
        let ts = [file("PG_15_202209061/x", b"x"), END.to_vec()].concat();
        repo.backup(
            "20261123T100000Z",
            vec![("base.tar", None, None, vec![base]), ("16385.tar", Some(16385), Some("/o"), vec![ts])],
        );
        let (top, data, ts, err) = failing(&repo);
        assert!(
            matches!(err, RestoreError::Part { source: PartError::Extract(ExtractError::Unsafe { .. }), .. }),
            "{err}"
        );
        assert_clean(top.path(), &data, &ts);
        assert!(!Path::new("/tmp/walvault-escape").exists());
        assert_eq!(exit_code(err), 3);
    }
}

#[test]
fn refusals_before_anything_is_written() {
    let repo = Repo::new(false);
    standard(&repo, "20261123T100000Z");
    let top = tempfile::tempdir().unwrap();
    let data = top.path().join("data");
    // A non-empty target directory is left alone.
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("keep"), b"1").unwrap();
    let err = repo.restore(&request(&data)).unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
    assert_eq!(std::fs::read(data.join("keep")).unwrap(), b"1");
    assert_eq!(exit_code(err), 2);
    std::fs::remove_dir_all(&data).unwrap();
    // A non-empty tablespace directory: the target directory made for it is removed again.
    let ts = top.path().join("ts");
    std::fs::create_dir(&ts).unwrap();
    std::fs::write(ts.join("keep"), b"1").unwrap();
    let mut req = request(&data);
    req.tablespace_map = vec![(16385, ts.clone())];
    let err = repo.restore(&req).unwrap_err();
    assert!(err.to_string().contains("tablespace 16385"), "{err}");
    assert!(!data.exists());
    assert_eq!(exit_code(err), 2);
    // Tablespace map mistakes.
    for (map, says) in [
        (vec![(1, PathBuf::from("/x"))], "has no tablespace 1"),
        (vec![(16385, PathBuf::from("relative"))], "absolute"),
        (vec![(16385, data.join("inside"))], "overlap"),
        (vec![(16385, PathBuf::from("/x")), (16385, PathBuf::from("/y"))], "twice"),
        (vec![(16385, PathBuf::from("/x\\y"))], "without backslashes"),
    ] {
        let mut req = request(&data);
        req.tablespace_map = map;
        let err = repo.restore(&req).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(exit_code(err), 2);
        assert!(!data.exists());
    }
    // A target before the backup, an unknown backup, a bad id.
    let mut req = request(&data);
    req.target = Some(RecoveryTarget::Lsn(Lsn(0x1000)));
    let err = repo.restore(&req).unwrap_err();
    assert!(matches!(err, RestoreError::Target(TargetError::NoBackupBefore { .. })), "{err}");
    req.backup = Some("20261123T100000Z".into());
    let err = repo.restore(&req).unwrap_err();
    assert!(matches!(err, RestoreError::Target(TargetError::BeforeBackup { .. })), "{err}");
    assert_eq!(exit_code(err), 2);
    req.backup = Some("20261123T100001Z".into());
    assert!(matches!(repo.restore(&req), Err(RestoreError::UnknownBackup(_))));
    req.backup = Some("../x".into());
    assert!(matches!(repo.restore(&req), Err(RestoreError::Usage(_))));
    assert!(!data.exists());
    // An empty repository.
    let empty = Repo::new(false);
    let err = empty.restore(&request(&data)).unwrap_err();
    assert!(matches!(err, RestoreError::Target(TargetError::NoBackups)), "{err}");
}

#[test]
fn a_missing_key_is_reported_before_anything_is_written() {
    let repo = Repo::new(true);
    standard(&repo, "20261123T100000Z");
    let mut other = Repo::new(false);
    other.storage = repo.storage.clone();
    let top = tempfile::tempdir().unwrap();
    let data = top.path().join("data");
    let err = other.restore(&request(&data)).unwrap_err();
    assert!(matches!(err, RestoreError::Key { .. }), "{err}");
    assert!(err.to_string().contains("configured: none"), "{err}");
    assert!(!data.exists());
    assert_eq!(exit_code(err), 2);
}

#[test]
fn chooses_the_newest_backup_before_the_target() {
    let repo = Repo::new(false);
    standard(&repo, "20261123T100000Z");
    // A second, newer backup that finished at 11:00:05, WAL up to 0/5000100.
    let mut d = standard(&repo, "20261123T110000Z");
    d.stop_lsn = "0/5000100".parse().unwrap();
    d.stop_time = "2026-11-23T11:00:05Z".parse().unwrap();
    block_on(repo.storage.delete(&crate::repo::layout::descriptor(&d.id))).unwrap();
    block_on(repo.storage.put_if_absent(
        &crate::repo::layout::descriptor(&d.id),
        PutPayload::from(serde_json::to_vec(&d).unwrap()),
    ))
    .unwrap();
    let top = tempfile::tempdir().unwrap();
    let chosen = |target: Option<RecoveryTarget>, backup: Option<&str>, n: &str| {
        let data = top.path().join(n);
        let mut req = request(&data);
        req.target = target;
        req.backup = backup.map(Into::into);
        req.tablespace_map = vec![(16385, top.path().join(format!("{n}-ts")))];
        repo.restore(&req).map(|r| r.backup)
    };
    assert_eq!(chosen(None, None, "a").unwrap(), "20261123T110000Z");
    assert_eq!(chosen(Some(RecoveryTarget::Lsn(Lsn(0x5000100))), None, "b").unwrap(), "20261123T110000Z");
    assert_eq!(chosen(Some(RecoveryTarget::Lsn(Lsn(0x50000FF))), None, "c").unwrap(), "20261123T100000Z");
    let t = |s: &str| Some(RecoveryTarget::Time(s.parse().unwrap()));
    assert_eq!(chosen(t("2026-11-23 11:00:05.5+00"), None, "d").unwrap(), "20261123T100000Z");
    assert_eq!(chosen(t("2026-11-23 11:00:06+00"), None, "e").unwrap(), "20261123T110000Z");
    assert_eq!(chosen(None, Some("latest"), "f").unwrap(), "20261123T110000Z");
    assert_eq!(chosen(None, Some("20261123T100000Z"), "g").unwrap(), "20261123T100000Z");
}
