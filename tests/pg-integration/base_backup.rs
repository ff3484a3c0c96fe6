//! `walvault base-backup` against a real PostgreSQL 15: archives (a user tablespace included)
//! stored as parts of whole tar members, the manifest byte for byte, the descriptor last and equal
//! to `--json`; SCRAM over TLS with verify-full; and every failure (connection refused,
//! authentication, no REPLICATION privilege, no free WAL sender, an error mid-stream, the
//! repository failing, SIGTERM, another cluster) ends non-zero with no descriptor and no parts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use walvault::config::{Config, ConfigArgs};
use walvault::object::read::{ObjectSink, read_object};
use walvault::repo::descriptor::Descriptor;
use walvault::repo::{OpenMode, Storage};

use crate::on_backends;
use crate::skip_or_fail;
use crate::support::certs::{TestCa, have_openssl};
use crate::support::datadir::{extra, keygen};
use crate::support::pg::{Cluster, pg_bin};
use crate::support::repo::{Backend, Repo};
use crate::support::s3::free_port;
use crate::support::{Run, Scratch, as_pg_user, bins, chown_to_pg};

/// A PostgreSQL 15 cluster archiving into `cfg` through wal-push (a base backup waits for that).
fn archiving_cluster(scratch: &Scratch, cfg: &Path, settings: &[(&str, &str)]) -> Option<Cluster> {
    let Some(bin) = pg_bin() else {
        if crate::support::in_ci() {
            panic!("PostgreSQL 15 not found under CI=true");
        }
        eprintln!("SKIPPED: PostgreSQL 15 not found");
        return None;
    };
    let c = Cluster::init(scratch, "pg", &bin, &[]);
    c.configure(&[
        ("wal_level", "replica"),
        ("archive_mode", "on"),
        ("archive_command", &format!("{} --config {} %p", bins().push.display(), cfg.display())),
        ("fsync", "off"),
    ]);
    c.configure(settings);
    Some(c)
}

/// `walvault base-backup --config CFG -d CONNINFO --fast-checkpoint`.
fn base_backup_command(cfg: &Path, conninfo: &str) -> Command {
    let mut cmd = Command::new(&bins().walvault);
    cmd.arg("base-backup").arg("--config").arg(cfg).args(["-d", conninfo, "--fast-checkpoint"]);
    cmd
}

fn base_backup(cfg: &Path, conninfo: &str, extra_args: &[&str]) -> Run {
    Run::of(base_backup_command(cfg, conninfo).args(extra_args))
}

/// A sink that keeps everything (tests only; objects here are small).
struct Keep(Vec<u8>);

impl ObjectSink for Keep {
    fn reset(&mut self) -> std::io::Result<()> {
        self.0.clear();
        Ok(())
    }
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(b);
        Ok(())
    }
}

/// Decodes one stored object with the library, as restore would.
fn decode(cfg: &Path, key: &str) -> Vec<u8> {
    let config =
        Config::resolve(&ConfigArgs { config: Some(cfg.to_path_buf()), ..Default::default() }).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let storage = Storage::open(&config, OpenMode::MustExist).unwrap();
        let mut keep = Keep(Vec::new());
        read_object(&storage, &object_store::path::Path::from(key), &config.keys, &mut keep).await.unwrap();
        keep.0
    })
}

fn tar_list(bytes: &[u8], scratch: &Scratch) -> Vec<String> {
    let p = scratch.path().join(crate::support::unique("t"));
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("tar").arg("-tf").arg(&p).output().unwrap();
    assert!(out.status.success(), "not a valid tar: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn backup_objects(repo: &Repo) -> Vec<String> {
    repo.listing().into_keys().filter(|k| k.starts_with("backups/")).collect()
}

fn stores_a_complete_backup(backend: Backend) {
    let scratch = Scratch::new();
    let repo = crate::repo_on!(backend, &scratch);
    let key = keygen(&scratch, "key");
    let cfg =
        repo.config(&scratch, "c.toml", &format!("{}part_size = \"1MiB\"\n", extra("zstd", Some(&key))));
    let Some(mut pg) = archiving_cluster(&scratch, &cfg, &[]) else { return };
    pg.start();
    let ts_dir = scratch.subdir("tblspc");
    pg.sql(&format!("create tablespace extra location '{}'", ts_dir.display()));
    for t in 0..4 {
        pg.sql(&format!(
            "create table t{t} tablespace extra as select g, md5(g::text) from generate_series(1, 40000) g"
        ));
    }
    Run::of(pg.client("pgbench").args(["-i", "-s", "2", "-q", "postgres"])).expect(0);
    let oid = pg.sql("select oid from pg_tablespace where spcname = 'extra'");

    let run = base_backup(&cfg, &format!("host={} user=postgres", pg.sock.display()), &["--json"]);
    run.expect(0).says(&["complete"]);
    let printed: Descriptor = serde_json::from_str(&run.stdout).unwrap();
    let stored: Descriptor =
        serde_json::from_slice(&repo.get(&format!("backups/{}.json", printed.id))).unwrap();
    assert_eq!(printed, stored, "--json differs from the stored descriptor");
    let d = stored;
    assert_eq!(d.system_identifier, pg.sql("select system_identifier from pg_control_system()"));
    assert_eq!(d.server_version.to_string(), pg.sql("show server_version_num"));
    assert!(d.key_id.is_some());
    assert!(d.start_lsn <= d.stop_lsn);

    let names: Vec<(&str, Option<u32>)> =
        d.archives.iter().map(|a| (a.name.as_str(), a.tablespace_oid)).collect();
    assert_eq!(names, [("base.tar", None), (&*format!("{oid}.tar"), Some(oid.parse().unwrap()))]);
    assert_eq!(d.archives[1].location.as_deref(), Some(ts_dir.to_str().unwrap()));
    let listing = repo.listing();
    for archive in &d.archives {
        assert!(archive.parts.len() >= 2, "{} was not cut into parts", archive.name);
        let mut whole = Vec::new();
        for (i, part) in archive.parts.iter().enumerate() {
            let (size, _) = listing.get(&part.key).unwrap_or_else(|| panic!("{} missing", part.key));
            assert_eq!(*size, part.stored_bytes);
            let bytes = decode(&cfg, &part.key);
            assert_eq!(bytes.len() as u64, part.raw_bytes);
            assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)), part.sha256);
            // Every part is whole tar members on its own (never just the end-of-archive blocks),
            // cut once it held part_size bytes.
            assert!(!tar_list(&bytes, &scratch).is_empty(), "part {} has no member", part.key);
            if i + 1 < archive.parts.len() {
                assert!(part.raw_bytes >= 1 << 20, "part {} cut early ({} bytes)", part.key, part.raw_bytes);
            }
            whole.extend_from_slice(&bytes);
        }
        let members = tar_list(&whole, &scratch);
        if archive.tablespace_oid.is_none() {
            for must in ["PG_VERSION", "backup_label", "tablespace_map", "global/pg_control"] {
                assert!(members.iter().any(|m| m == must), "{must} not in base.tar");
            }
        }
    }
    let manifest = decode(&cfg, &d.manifest.key);
    assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&manifest)), d.manifest.sha256);
    let json: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert!(json["PostgreSQL-Backup-Manifest-Version"].is_number());
    assert!(json["Files"].as_array().unwrap().iter().any(|f| f["Path"] == "PG_VERSION"));

    let run = Run::of(Command::new(&bins().walvault).arg("list").arg("--config").arg(&cfg));
    run.expect(0);
    assert!(run.stdout.contains(&d.id) && run.stdout.contains(&d.stop_lsn.to_string()), "{}", run.stdout);
    let run = Run::of(Command::new(&bins().walvault).arg("list").arg("--json").arg("--config").arg(&cfg));
    let l: serde_json::Value = serde_json::from_str(&run.expect(0).stdout).unwrap();
    assert_eq!(l["backups"][0]["id"], d.id);
    assert!(!l["wal"][0]["ranges"].as_array().unwrap().is_empty());
}

on_backends!(pg_base_backup_stores_a_complete_backup, stores_a_complete_backup, [file, s3, azure]);

#[test]
fn pg_base_backup_scram_over_tls_verify_full() {
    if !have_openssl() {
        skip_or_fail!("openssl not found");
    }
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("lz4", None));
    let certs = scratch.subdir("certs");
    let ca = TestCa::new(&certs, "ca");
    let cert = ca.server_cert("server", "IP:127.0.0.1,DNS:localhost", "sha256");
    chown_to_pg(&certs);
    std::fs::set_permissions(&cert.key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let Some(mut pg) = archiving_cluster(
        &scratch,
        &cfg,
        &[
            ("ssl", "on"),
            ("ssl_cert_file", cert.cert.to_str().unwrap()),
            ("ssl_key_file", cert.key.to_str().unwrap()),
            ("password_encryption", "scram-sha-256"),
        ],
    ) else {
        return;
    };
    let port = pg.listen_on_tcp();
    pg.write_hba(
        "local all all trust\nlocal replication all trust\nhostssl replication backup 127.0.0.1/32 scram-sha-256\n",
    );
    pg.start();
    pg.sql("create role backup login replication password 'correct horse'");
    let conninfo = format!(
        "host=localhost port={port} user=backup sslmode=verify-full sslrootcert={}",
        ca.cert.display()
    );
    // Run as PostgreSQL's user, as in production: the repository is shared with archive_command.
    let run = Run::of(
        as_pg_user(&bins().walvault)
            .args(["base-backup", "--config"])
            .arg(&cfg)
            .args(["-d", &conninfo, "--fast-checkpoint"])
            .env("PGPASSWORD", "correct horse"),
    );
    run.expect(0);
    assert!(!run.stderr.contains("correct horse"), "the password reached the log");
    assert_eq!(backup_objects(&repo).iter().filter(|k| k.ends_with(".json")).count(), 1);
    // The same with a wrong password: refused, exit 2, nothing stored.
    let before = backup_objects(&repo);
    let run = Run::of(
        as_pg_user(&bins().walvault)
            .args(["base-backup", "--config"])
            .arg(&cfg)
            .args(["-d", &conninfo])
            .env("PGPASSWORD", "wrong"),
    );
    run.expect(2).says(&["28P01"]);
    assert_eq!(backup_objects(&repo), before);
}

/// Waits until the first part of a backup appears in a `file://` repository; returns its id.
fn wait_for_first_part(repo_dir: &Path, limit: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(entries) = std::fs::read_dir(repo_dir.join("backups")) {
            for e in entries.flatten() {
                let dir = e.path();
                if dir.is_dir()
                    && std::fs::read_dir(&dir).is_ok_and(|mut d| {
                        d.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".00001")))
                    })
                {
                    return Some(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn repo_dir(cfg_text: &str) -> PathBuf {
    let line = cfg_text.lines().find(|l| l.starts_with("repo = ")).unwrap();
    PathBuf::from(line.trim_start_matches("repo = \"file://").trim_end_matches('"'))
}

#[test]
fn pg_base_backup_failures_leave_nothing_behind() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let key = keygen(&scratch, "key");
    let cfg =
        repo.config(&scratch, "c.toml", &format!("{}part_size = \"1MiB\"\n", extra("zstd", Some(&key))));
    let dir = repo_dir(&std::fs::read_to_string(&cfg).unwrap());
    let Some(mut pg) = archiving_cluster(&scratch, &cfg, &[("max_wal_senders", "2")]) else { return };
    let port = pg.listen_on_tcp();
    pg.write_hba(
        "local all all trust\nlocal replication postgres trust\nlocal replication plain trust\n\
         host replication all 127.0.0.1/32 scram-sha-256\n",
    );
    pg.start();
    pg.sql("create role plain login");
    pg.sql("create role rep login replication password 'secret'");
    Run::of(pg.client("pgbench").args(["-i", "-s", "8", "-q", "postgres"])).expect(0);
    let sock = format!("host={} port={port} user=postgres", pg.sock.display());
    let one_line = |run: &Run, code: i32, needles: &[&str]| {
        run.expect(code).says(needles);
        assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
        assert!(backup_objects(&repo).is_empty(), "objects left behind: {:?}", backup_objects(&repo));
    };

    // Nothing listening.
    one_line(
        &base_backup(&cfg, &format!("host=127.0.0.1 port={} user=postgres", free_port()), &[]),
        1,
        &["refused"],
    );
    // Wrong password; a role without REPLICATION.
    one_line(
        &base_backup(&cfg, &format!("host=127.0.0.1 port={port} user=rep password=nope"), &[]),
        2,
        &["28P01"],
    );
    one_line(
        &base_backup(&cfg, &format!("host={} port={port} user=plain", pg.sock.display()), &[]),
        2,
        &["42501"],
    );

    // Every WAL sender busy: two replication connections hold them.
    let holders: Vec<_> = (0..2)
        .map(|i| {
            let dir = scratch.subdir(&format!("receivewal{i}"));
            Command::new(Path::new(crate::support::pg::PG15_BIN).join("pg_receivewal"))
                .env("PGHOST", &pg.sock)
                .env("PGPORT", port.to_string())
                .args(["-U", "postgres", "-n", "-D"])
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let run = base_backup(&cfg, &sock, &[]);
    for h in holders.into_iter().flatten() {
        let mut h = h;
        let _ = h.kill();
        let _ = h.wait();
    }
    one_line(&run, 1, &["53300"]);

    // An error in the middle of the stream: a file the server cannot read.
    let unreadable = pg.data.join("base/unreadable");
    std::fs::write(&unreadable, b"x").unwrap();
    std::fs::set_permissions(&unreadable, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if crate::support::is_root() {
        // Owned by root, mode 000: the server (running as postgres) cannot read it.
        // SQLSTATE 42501 (insufficient privilege): an operator must act, so exit 2.
        let run = base_backup(&cfg, &sock, &[]);
        one_line(&run, 2, &["unreadable"]);
    }
    std::fs::remove_file(&unreadable).unwrap();

    // SIGTERM half-way (as a CronJob's deadline would): nothing kept.
    let child =
        base_backup_command(&cfg, &sock).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(wait_for_first_part(&dir, Duration::from_secs(60)).is_some(), "no part appeared");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    crate::support::logs::output(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(backup_objects(&repo).is_empty(), "objects left after SIGTERM: {:?}", backup_objects(&repo));

    // The repository fails mid-stream: the backup's directory turns into a file.
    let child =
        base_backup_command(&cfg, &sock).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let id = wait_for_first_part(&dir, Duration::from_secs(60)).expect("no part appeared");
    let backup_dir = dir.join("backups").join(&id);
    // The backup keeps creating its directory; swap it for a file until the swap sticks.
    let mut swapped = false;
    for _ in 0..200 {
        let _ = std::fs::remove_dir_all(&backup_dir);
        if std::fs::write(&backup_dir, b"in the way").is_ok() {
            swapped = true;
            break;
        }
    }
    assert!(swapped, "could not put a file in the backup's way");
    let out = child.wait_with_output().unwrap();
    crate::support::logs::output(&out);
    assert_ne!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(&backup_dir);
    assert!(!dir.join(format!("backups/{id}.json")).exists(), "a descriptor was written");
    assert!(backup_objects(&repo).is_empty(), "objects left behind: {:?}", backup_objects(&repo));

    // And after all that, a backup works.
    base_backup(&cfg, &sock, &[]).expect(0);
}

#[test]
fn pg_base_backup_refuses_another_cluster() {
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("lz4", None));
    // The repository belongs to another cluster.
    let data = crate::support::datadir::DataDir::new(&scratch);
    let name = "000000010000000000000001";
    let seg = crate::support::fake_segment(name, 42, crate::support::datadir::SEG_1M, 1);
    data.push(&cfg, &data.wal(name, &seg)).expect(0);
    let other = repo.config(&scratch, "other.toml", &extra("lz4", None));
    let Some(mut pg) = archiving_cluster(&scratch, &other, &[]) else { return };
    pg.configure(&[("archive_command", "/bin/true")]);
    pg.start();
    let run = base_backup(&cfg, &format!("host={} user=postgres", pg.sock.display()), &[]);
    run.expect(3).says(&["42", "give it its own repository"]);
    assert!(backup_objects(&repo).is_empty());
}
