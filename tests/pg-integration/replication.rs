//! The replication client against real servers: IDENTIFY_SYSTEM and SHOW; full base backups
//! (with a user tablespace, so two archives) written to tar files, extracted and verified with
//! `pg_verifybackup` and against the manifest; authentication (trust, SCRAM-SHA-256, md5, a
//! wrong password, a passfile); errors (no REPLICATION, `max_wal_senders` zero or exhausted, a
//! server error in the middle of the stream, connection refused); TLS for every sslmode; and
//! PostgreSQL 14 (the old BASE_BACKUP form, tar trailers added by the client), 16, 17 and 18.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;
use walvault::replication::{
    BackupEvent, BaseBackupOptions, ConnectOptions, ManifestChecksums, ReplicationClient, ReplicationError,
    Tablespace,
};

use crate::skip_or_fail;
use crate::support::certs::{TestCa, have_openssl};
use crate::support::pg::{Cluster, PG15_BIN, pg_bin_for};
use crate::support::{Run, Scratch, chown_to_pg};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn opts(conninfo: &str) -> ConnectOptions {
    ConnectOptions::from_env_and_conninfo(Some(conninfo)).unwrap()
}

/// Connects (in a runtime that ends with the call, so the client is only good for errors and
/// `is_tls`; use [`connect_and_identify`] to talk to the server).
fn connect(conninfo: &str) -> Result<ReplicationClient, ReplicationError> {
    rt().block_on(ReplicationClient::connect(&opts(conninfo)))
}

/// Connects and runs IDENTIFY_SYSTEM; returns whether TLS is in use.
fn connect_and_identify(conninfo: &str) -> Result<bool, ReplicationError> {
    rt().block_on(async {
        let mut client = ReplicationClient::connect(&opts(conninfo)).await?;
        client.identify_system().await?;
        let tls = client.is_tls();
        client.close().await;
        Ok(tls)
    })
}

/// A conninfo for the cluster's Unix socket (trust for every local connection after initdb).
fn socket(c: &Cluster, user: &str) -> String {
    format!("host={} port={} user={user} sslmode=disable", c.sock.display(), c.port)
}

/// A started cluster of `major`, or a loud skip (a failure under CI).
macro_rules! cluster_or_skip {
    ($scratch:expr, $major:expr, $tcp:expr, $settings:expr) => {{
        let Some(bin) = pg_bin_for($major) else {
            skip_or_fail!("PostgreSQL {} server binaries not found (run scripts/install-deps.sh)", $major);
        };
        let mut c = Cluster::init($scratch, "pg", &bin, &[]);
        if $tcp {
            c.listen_on_tcp();
        }
        c.configure($settings);
        c.start();
        c
    }};
}

// ---------------------------------------------------------------------------------------------
// Base backups written to disk and verified.

/// One archive written to disk.
struct Archive {
    name: String,
    oid: Option<u32>,
    path: PathBuf,
}

/// A base backup as files.
struct Written {
    archives: Vec<Archive>,
    manifest: Vec<u8>,
    tablespaces: Vec<Tablespace>,
    progress_events: usize,
    start: walvault::wal::lsn::Lsn,
    stop: walvault::wal::lsn::Lsn,
}

/// Streams a base backup into `dir/<archive name>` files, checking the order of events.
async fn write_backup(
    client: &mut ReplicationClient,
    opts: &BaseBackupOptions,
    dir: &Path,
) -> Result<Written, ReplicationError> {
    std::fs::create_dir_all(dir).unwrap();
    let mut stream = client.base_backup(opts).await?;
    let mut w = Written {
        archives: Vec::new(),
        manifest: Vec::new(),
        tablespaces: Vec::new(),
        progress_events: 0,
        start: Default::default(),
        stop: Default::default(),
    };
    let mut file: Option<std::fs::File> = None;
    let (mut started, mut in_manifest, mut finished) = (false, false, false);
    while let Some(ev) = stream.next().await? {
        assert!(!finished, "event after Finished: {ev:?}");
        match ev {
            BackupEvent::Started { start_lsn, tablespaces, .. } => {
                assert!(!started);
                started = true;
                w.start = start_lsn;
                w.tablespaces = tablespaces;
            }
            BackupEvent::ArchiveStart { name, tablespace_oid } => {
                assert!(started && file.is_none() && !in_manifest, "ArchiveStart out of order");
                let path = dir.join(&name);
                file = Some(std::fs::File::create(&path).unwrap());
                w.archives.push(Archive { name, oid: tablespace_oid, path });
            }
            BackupEvent::ArchiveData(b) => {
                file.as_mut().expect("data inside an archive").write_all(&b).unwrap()
            }
            BackupEvent::ArchiveEnd => file.take().expect("an open archive").sync_all().unwrap(),
            BackupEvent::ManifestStart => {
                assert!(file.is_none() && !in_manifest);
                in_manifest = true;
            }
            BackupEvent::ManifestData(b) => {
                assert!(in_manifest);
                w.manifest.extend_from_slice(&b);
            }
            BackupEvent::ManifestEnd => in_manifest = false,
            BackupEvent::Progress { .. } => w.progress_events += 1,
            BackupEvent::Finished { stop_lsn, .. } => {
                finished = true;
                w.stop = stop_lsn;
            }
        }
    }
    assert!(finished && file.is_none() && !in_manifest);
    std::fs::write(dir.join("backup_manifest"), &w.manifest).unwrap();
    Ok(w)
}

/// Extracts the archives as a restore would lay them out for pg_verifybackup: base.tar into
/// `into`, each `<oid>.tar` into `into/pg_tblspc/<oid>`, and the manifest at the top.
fn extract(w: &Written, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    for a in &w.archives {
        let dest = match a.oid {
            None => into.to_path_buf(),
            Some(oid) => into.join("pg_tblspc").join(oid.to_string()),
        };
        std::fs::create_dir_all(&dest).unwrap();
        let run = Run::of(Command::new("tar").arg("-xf").arg(&a.path).arg("-C").arg(&dest));
        assert_eq!(run.code, 0, "tar -xf {}: {}", a.name, run.stderr);
        assert!(run.stderr.is_empty(), "tar complained about {}: {}", a.name, run.stderr);
    }
    std::fs::write(into.join("backup_manifest"), &w.manifest).unwrap();
}

/// Checks the manifest ourselves: its own SHA-256, and for every file listed that it exists in
/// `dir` with the listed size (and SHA-256 checksum when the manifest has them). Returns the
/// number of files checked.
fn check_manifest(dir: &Path, manifest: &[u8]) -> usize {
    let text = std::str::from_utf8(manifest).unwrap();
    let at = text.rfind("\"Manifest-Checksum\"").expect("a Manifest-Checksum line");
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    let want = json["Manifest-Checksum"].as_str().unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&manifest[..at])), want, "the manifest's own checksum");
    let files = json["Files"].as_array().unwrap();
    for f in files {
        let path = f["Path"].as_str().expect("plain UTF-8 paths in a test cluster");
        let size = f["Size"].as_u64().unwrap();
        let on_disk = dir.join(path);
        let bytes = std::fs::read(&on_disk).unwrap_or_else(|e| panic!("{path} listed in the manifest: {e}"));
        assert_eq!(bytes.len() as u64, size, "size of {path}");
        if f["Checksum-Algorithm"] == "SHA256" {
            assert_eq!(
                hex::encode(sha2::Sha256::digest(&bytes)),
                f["Checksum"].as_str().unwrap(),
                "SHA-256 of {path}"
            );
        }
    }
    files.len()
}

/// `pg_verifybackup -n` (PostgreSQL 15's) on an extracted backup.
fn pg_verifybackup(dir: &Path) -> Run {
    Run::of(Command::new(Path::new(PG15_BIN).join("pg_verifybackup")).arg("-n").arg(dir))
}

/// Gives the cluster a user tablespace with a table in it, and some data in the main one.
fn add_tablespace_and_data(c: &Cluster, scratch: &Scratch) -> PathBuf {
    let ts = scratch.subdir("ts1");
    c.sql(&format!("CREATE TABLESPACE ts1 LOCATION '{}'", ts.display()));
    c.sql("CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
    c.sql("CREATE TABLE in_base AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 20000) g");
    ts
}

/// Takes a full backup of `c` and checks it end to end; returns the files and where they went.
fn backup_and_check(c: &Cluster, scratch: &Scratch, checksums: ManifestChecksums) -> (Written, PathBuf) {
    let ts = add_tablespace_and_data(c, scratch);
    let out = scratch.path().join("backup");
    let w = rt()
        .block_on(async {
            let mut client = ReplicationClient::connect(&opts(&socket(c, "postgres"))).await?;
            let opts = BaseBackupOptions {
                label: "walvault's test".into(),
                fast_checkpoint: true,
                max_rate_kb: None,
                manifest_checksums: checksums,
            };
            let w = write_backup(&mut client, &opts, &out).await?;
            // The connection is usable after the backup.
            client.identify_system().await?;
            Ok::<_, ReplicationError>(w)
        })
        .unwrap();

    let names: Vec<&str> = w.archives.iter().map(|a| a.name.as_str()).collect();
    let oid: u32 = c.sql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'").parse().unwrap();
    assert_eq!(names, [format!("{oid}.tar").as_str(), "base.tar"]);
    assert_eq!(w.archives[0].oid, Some(oid));
    assert_eq!(w.tablespaces.len(), 2);
    assert_eq!(w.tablespaces[0].oid, Some(oid));
    assert_eq!(w.tablespaces[0].location.as_deref(), Some(ts.to_str().unwrap()));
    assert_eq!((w.tablespaces[1].oid, w.tablespaces[1].location.as_deref()), (None, None));
    assert!(w.tablespaces.iter().all(|t| t.size_bytes.is_some()), "PROGRESS gives sizes");
    assert!(w.stop > w.start, "stop {} after start {}", w.stop, w.start);
    for a in &w.archives {
        let bytes = std::fs::read(&a.path).unwrap();
        assert_eq!(bytes.len() % 512, 0, "{} is whole tar blocks", a.name);
        assert!(
            bytes.len() >= 2048 && bytes[bytes.len() - 1024..].iter().all(|b| *b == 0),
            "{} has a trailer",
            a.name
        );
    }

    let restored = scratch.path().join("restored");
    extract(&w, &restored);
    let label = std::fs::read_to_string(restored.join("backup_label")).unwrap();
    assert!(label.contains("LABEL: walvault's test"), "{label}");
    assert!(label.contains(&format!("START WAL LOCATION: {}", w.start)), "{label}");
    let map = std::fs::read_to_string(restored.join("tablespace_map")).unwrap();
    assert_eq!(map, format!("{oid} {}\n", ts.display()));
    let n = check_manifest(&restored, &w.manifest);
    assert!(n > 500, "only {n} files in the manifest");
    (w, restored)
}

#[test]
fn pg_replication_identify_system_and_show() {
    let scratch = Scratch::new();
    let c = cluster_or_skip!(&scratch, 15, false, &[]);
    let (id, segsize, version) = rt()
        .block_on(async {
            let mut client = ReplicationClient::connect(&opts(&socket(&c, "postgres"))).await?;
            assert!(client.server_version_num() >= 150_000 && client.server_version_num() < 160_000);
            assert!(!client.in_hot_standby());
            assert!(!client.is_tls());
            let id = client.identify_system().await?;
            let seg = client.show("wal_segment_size").await?;
            let v = client.show("server_version_num").await?;
            // A bad setting name is a server error, and the connection stays usable.
            let e = client.show("no_such_setting").await.unwrap_err();
            assert!(matches!(&e, ReplicationError::Server { code, .. } if code == "42704"), "{e}");
            assert!(matches!(client.show("x; DROP").await, Err(ReplicationError::InvalidArgument(_))));
            let again = client.identify_system().await?;
            assert_eq!(again.system_id, id.system_id);
            client.close().await;
            Ok::<_, ReplicationError>((id, seg, v))
        })
        .unwrap();
    let controldata =
        Run::of(crate::support::as_pg_user(c.bin.join("pg_controldata")).arg("-D").arg(&c.data))
            .expect(0)
            .stdout
            .clone();
    let sysid: u64 = controldata
        .lines()
        .find_map(|l| l.strip_prefix("Database system identifier:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(id.system_id, sysid);
    assert_eq!(id.timeline.get(), 1);
    assert_eq!(id.dbname, None);
    let current: walvault::wal::lsn::Lsn = c.sql("SELECT pg_current_wal_flush_lsn()").parse().unwrap();
    assert!(id.xlogpos <= current);
    assert_eq!(segsize, "16MB");
    assert_eq!(version, c.sql("SHOW server_version_num"));
}

#[test]
fn pg_replication_base_backup_pg15_verifies() {
    let scratch = Scratch::new();
    let c = cluster_or_skip!(&scratch, 15, false, &[]);
    let (w, restored) = backup_and_check(&c, &scratch, ManifestChecksums::Crc32c);
    assert!(w.progress_events >= 2, "PostgreSQL 15 sends progress at each archive end");
    let run = pg_verifybackup(&restored);
    assert_eq!(run.code, 0, "pg_verifybackup: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("successfully verified"), "{}", run.stdout);
}

#[test]
fn pg_replication_error_mid_stream_is_typed_and_the_client_recovers() {
    if !crate::support::is_root() {
        skip_or_fail!("needs root to make a file PostgreSQL's user cannot read");
    }
    let scratch = Scratch::new();
    let c = cluster_or_skip!(&scratch, 15, false, &[]);
    // A file the server cannot read: it fails in the middle of base.tar.
    let bad = c.data.join("unreadable");
    std::fs::write(&bad, b"x").unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    rt().block_on(async {
        let mut client = ReplicationClient::connect(&opts(&socket(&c, "postgres"))).await.unwrap();
        let opts = BaseBackupOptions { label: "broken".into(), fast_checkpoint: true, ..Default::default() };
        let mut stream = client.base_backup(&opts).await.unwrap();
        let mut saw_data = false;
        let err = loop {
            match stream.next().await {
                Ok(Some(BackupEvent::ArchiveData(_))) => saw_data = true,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the backup finished despite an unreadable file"),
                Err(e) => break e,
            }
        };
        assert!(saw_data, "the error came after archive data");
        assert!(matches!(stream.next().await, Ok(None)));
        let ReplicationError::Server { severity, message, .. } = &err else { panic!("{err:?}") };
        assert_eq!(severity, "ERROR");
        assert!(message.contains("unreadable"), "{err}");
        assert!(!err.to_string().contains('\n'));
        // Drained to ReadyForQuery: the connection still works.
        client.identify_system().await.unwrap();
    });
}

#[test]
fn pg_replication_base_backup_waits_for_wal_archiving() {
    let scratch = Scratch::new();
    let archive = scratch.subdir("archive");
    let gate = scratch.path().join("gate");
    let command = format!("test -f {} && cp %p {}/%f", gate.display(), archive.display());
    let c = cluster_or_skip!(&scratch, 15, false, &[("archive_mode", "on"), ("archive_command", &command)]);
    let opened = std::time::Instant::now();
    let gate_for_thread = gate.clone();
    // Archiving works only after 3 s: the server must hold the backup open until then.
    let opener = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        std::fs::write(&gate_for_thread, b"").unwrap();
    });
    // The client logs the server's notices; capture them.
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || LogSink(sink.clone()))
        .with_max_level(tracing::Level::INFO)
        .finish();
    let (w, tli) = tracing::subscriber::with_default(subscriber, || {
        rt().block_on(async {
            let mut client = ReplicationClient::connect(&opts(&socket(&c, "postgres"))).await?;
            let tli = client.identify_system().await?.timeline;
            let o = BaseBackupOptions { label: "waits".into(), fast_checkpoint: true, ..Default::default() };
            let w = write_backup(&mut client, &o, &scratch.path().join("backup")).await?;
            Ok::<_, ReplicationError>((w, tli))
        })
    })
    .unwrap();
    opener.join().unwrap();
    assert!(opened.elapsed() >= std::time::Duration::from_secs(3), "finished before archiving could work");
    // When Finished arrives, the last segment the backup needs is in the archive.
    let last = walvault::wal::name::SegmentName::containing(
        tli,
        walvault::wal::lsn::Lsn(w.stop.0 - 1),
        walvault::wal::lsn::WalSegSize::DEFAULT,
    );
    assert!(archive.join(last.to_string()).exists(), "{last} not archived at Finished");
    assert!(c.log_text().contains("archive command failed"), "archiving failed before the gate opened");
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("all required WAL segments have been archived"),
        "the server's NOTICE in the middle of the COPY was logged: {logs}"
    );
}

/// A `tracing` writer into a shared buffer.
struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Restores a backup of a PostgreSQL `major` primary (taken by this client) as a standby of
/// it, checks the data, then takes a backup from the standby.
fn restore_as_standby(major: u32) {
    let scratch = Scratch::new();
    let primary = cluster_or_skip!(&scratch, major, false, &[]);
    let (w, restored) = backup_and_check(&primary, &scratch, ManifestChecksums::Crc32c);
    // Tablespace data goes to a new directory, named in tablespace_map.
    let ts_oid = w.archives[0].oid.unwrap().to_string();
    let new_ts = scratch.subdir("ts-restored");
    std::fs::rename(restored.join("pg_tblspc").join(&ts_oid), &new_ts).unwrap_or_else(|_| {
        let run = Run::of(
            Command::new("cp").arg("-a").arg(restored.join("pg_tblspc").join(&ts_oid).join(".")).arg(&new_ts),
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        std::fs::remove_dir_all(restored.join("pg_tblspc").join(&ts_oid)).unwrap();
    });
    std::fs::write(restored.join("tablespace_map"), format!("{ts_oid} {}\n", new_ts.display())).unwrap();
    std::fs::remove_file(restored.join("backup_manifest")).unwrap();
    std::fs::write(restored.join("standby.signal"), b"").unwrap();
    std::fs::set_permissions(&restored, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    chown_to_pg(&restored);
    chown_to_pg(&new_ts);
    let sock = scratch.subdir("standby-sock");
    let mut standby = Cluster::at(&primary.bin, restored, sock, scratch.path().join("standby.log"));
    standby.configure(&[(
        "primary_conninfo",
        &format!("host={} port={} user=postgres", primary.sock.display(), primary.port),
    )]);
    standby.start();
    standby.wait_for("SELECT pg_is_in_recovery()", "t", std::time::Duration::from_secs(60));
    assert_eq!(standby.sql("SELECT count(*) FROM in_ts"), "20000");
    assert_eq!(standby.sql("SELECT count(*) FROM in_base"), "20000");
    primary.sql("CREATE TABLE later AS SELECT 1 AS x");
    standby.wait_for("SELECT count(*) FROM later", "1", std::time::Duration::from_secs(60));

    let backup = rt()
        .block_on(async {
            let mut client = ReplicationClient::connect(&opts(&socket(&standby, "postgres"))).await?;
            assert!(client.in_hot_standby(), "in_hot_standby on a standby");
            let o = BaseBackupOptions {
                label: "from standby".into(),
                fast_checkpoint: true,
                ..Default::default()
            };
            write_backup(&mut client, &o, &scratch.path().join("standby-backup")).await
        })
        .unwrap();
    let from_standby = scratch.path().join("standby-restored");
    extract(&backup, &from_standby);
    assert!(
        std::fs::read_to_string(from_standby.join("backup_label")).unwrap().contains("BACKUP FROM: standby")
    );
    assert!(from_standby.join("standby.signal").exists());
    check_manifest(&from_standby, &backup.manifest);
}

#[test]
fn pg_replication_restored_backup_runs_as_standby() {
    restore_as_standby(15);
}

#[test]
fn pg_replication_v14_restored_backup_runs_as_standby() {
    restore_as_standby(14);
}

// ---------------------------------------------------------------------------------------------
// Other server versions.

fn other_version(major: u32) {
    let scratch = Scratch::new();
    let c = cluster_or_skip!(&scratch, major, false, &[]);
    let want_sysid: u64 = c.sql("SELECT system_identifier FROM pg_control_system()").parse().unwrap();
    let (id, version) = rt()
        .block_on(async {
            let mut client = ReplicationClient::connect(&opts(&socket(&c, "postgres"))).await?;
            Ok::<_, ReplicationError>((client.identify_system().await?, client.server_version_num()))
        })
        .unwrap();
    assert_eq!(id.system_id, want_sysid);
    assert_eq!(version / 10_000, major);
    assert_eq!(version.to_string(), c.sql("SHOW server_version_num"));

    // SHA-256 manifest checksums, so that check_manifest verifies every file's contents.
    let (w, restored) = backup_and_check(&c, &scratch, ManifestChecksums::Sha256);
    if major < 15 {
        assert_eq!(w.progress_events, 0, "no progress messages before 15");
    }
    let run = pg_verifybackup(&restored);
    eprintln!(
        "pg_verifybackup 15 on a PostgreSQL {major} backup: exit {}\n{}{}",
        run.code, run.stdout, run.stderr
    );
    if major <= 16 {
        assert_eq!(run.code, 0, "pg_verifybackup: {}{}", run.stdout, run.stderr);
    }
}

#[test]
fn pg_replication_v13_old_syntax() {
    other_version(13);
}

#[test]
fn pg_replication_v14_old_syntax_with_trailers() {
    other_version(14);
}

#[test]
fn pg_replication_v16() {
    other_version(16);
}

#[test]
fn pg_replication_v17() {
    other_version(17);
}

#[test]
fn pg_replication_v18() {
    other_version(18);
}

// ---------------------------------------------------------------------------------------------
// Authentication and connection errors.

/// Roles for the authentication tests, and a pg_hba.conf that makes TCP need passwords.
fn auth_cluster(scratch: &Scratch) -> Option<Cluster> {
    let bin = pg_bin_for(15)?;
    let mut c = Cluster::init(scratch, "pg", &bin, &[]);
    c.listen_on_tcp();
    c.write_hba(
        "local all all trust\n\
         local replication all trust\n\
         host replication md5user 127.0.0.1/32 md5\n\
         host replication all 127.0.0.1/32 scram-sha-256\n",
    );
    // Logs "connection authenticated: identity=... method=...", which shows the method used.
    c.configure(&[("log_connections", "on")]);
    c.start();
    c.sql("CREATE ROLE scram_user LOGIN REPLICATION PASSWORD 'scr\u{e4}m pass'");
    c.sql("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN REPLICATION PASSWORD 'md5-pass'");
    c.sql("CREATE ROLE norepl LOGIN");
    Some(c)
}

#[test]
fn pg_replication_auth_scram_md5_wrong_password_passfile() {
    let scratch = Scratch::new();
    let Some(c) = auth_cluster(&scratch) else { skip_or_fail!("PostgreSQL 15 not found") };
    let tcp = |rest: &str| format!("host=127.0.0.1 port={} sslmode=disable {rest}", c.port);

    // SCRAM-SHA-256 over TCP (a non-ASCII password exercises SASLprep).
    connect_and_identify(&tcp("user=scram_user password='scr\u{e4}m pass'")).unwrap();
    // The same as a URI with percent-encoding.
    let uri = format!("postgresql://scram_user:scr%C3%A4m%20pass@127.0.0.1:{}/?sslmode=disable", c.port);
    connect(&uri).unwrap();

    // md5.
    connect_and_identify(&tcp("user=md5user password=md5-pass")).unwrap();
    let log = c.log_text();
    assert!(log.contains("identity=\"scram_user\" method=scram-sha-256"), "{log}");
    assert!(log.contains("identity=\"md5user\" method=md5"), "{log}");

    // Wrong passwords.
    for (user, pw) in [("scram_user", "wrong"), ("md5user", "wrong")] {
        let e = connect(&tcp(&format!("user={user} password={pw}"))).unwrap_err();
        assert!(matches!(&e, ReplicationError::Auth { code, .. } if code == "28P01"), "{user}: {e:?}");
        assert!(e.is_auth());
        assert!(e.to_string().contains("password authentication failed"), "{e}");
    }
    // No password at all.
    let e = connect(&tcp("user=scram_user passfile=/nonexistent")).unwrap_err();
    assert!(matches!(e, ReplicationError::PasswordRequired { .. }), "{e:?}");

    // The password from a passfile (0600), matched on host, port, "replication" and user.
    let passfile = scratch.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:replication:md5user:md5-pass\n*:*:*:scram_user:scr\u{e4}m pass\n", c.port),
    )
    .unwrap();
    std::fs::set_permissions(&passfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for user in ["md5user", "scram_user"] {
        connect(&tcp(&format!("user={user} passfile={}", passfile.display())))
            .unwrap_or_else(|e| panic!("{user} with a passfile: {e}"));
    }
}

#[test]
fn pg_replication_settings_from_environment() {
    let scratch = Scratch::new();
    let Some(c) = auth_cluster(&scratch) else { skip_or_fail!("PostgreSQL 15 not found") };
    let passfile = scratch.path().join("pgpass");
    std::fs::write(&passfile, format!("127.0.0.1:{}:replication:scram_user:scr\u{e4}m pass\n", c.port))
        .unwrap();
    std::fs::set_permissions(&passfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let vars = [
        ("PGHOST", "127.0.0.1".to_string()),
        ("PGPORT", c.port.to_string()),
        ("PGUSER", "scram_user".to_string()),
        ("PGPASSFILE", passfile.display().to_string()),
        ("PGSSLMODE", "disable".to_string()),
        ("PGAPPNAME", "env-app".to_string()),
    ];
    for (k, v) in &vars {
        // SAFETY: nextest runs each test in its own process, so no other thread reads the
        // environment meanwhile.
        unsafe { std::env::set_var(k, v) };
    }
    let walsender_app = "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'walsender'";
    rt().block_on(async {
        let mut client =
            ReplicationClient::connect(&ConnectOptions::from_env_and_conninfo(None).unwrap()).await.unwrap();
        client.identify_system().await.unwrap();
        assert_eq!(c.sql(walsender_app), "env-app");
        client.close().await;
        // The conninfo overrides the environment.
        let o = ConnectOptions::from_env_and_conninfo(Some("application_name=ci-app")).unwrap();
        let mut client = ReplicationClient::connect(&o).await.unwrap();
        client.identify_system().await.unwrap();
        c.wait_for(walsender_app, "ci-app", std::time::Duration::from_secs(10));
        client.close().await;
    });
    for (k, _) in &vars {
        // SAFETY: as above.
        unsafe { std::env::remove_var(k) };
    }
}

#[test]
fn pg_replication_role_without_replication_is_permission_denied() {
    let scratch = Scratch::new();
    let Some(c) = auth_cluster(&scratch) else { skip_or_fail!("PostgreSQL 15 not found") };
    let e = connect(&socket(&c, "norepl")).unwrap_err();
    assert!(e.is_permission_denied(), "{e:?}");
    let s = e.to_string();
    assert!(s.contains("42501") && s.contains("replication"), "{s}");
    assert!(!s.contains('\n'));
    eprintln!("no REPLICATION: {s}");
}

#[test]
fn pg_replication_max_wal_senders_zero_and_exhausted() {
    let scratch = Scratch::new();
    let c = cluster_or_skip!(&scratch, 15, false, &[("max_wal_senders", "0")]);
    let e = connect(&socket(&c, "postgres")).unwrap_err();
    assert!(e.is_too_many_connections(), "{e:?}");
    assert!(e.to_string().contains("max_wal_senders"), "{e}");
    eprintln!("max_wal_senders=0: {e}");
    drop(c);

    let scratch = Scratch::new();
    let c = cluster_or_skip!(&scratch, 15, false, &[("max_wal_senders", "1")]);
    rt().block_on(async {
        let mut first = ReplicationClient::connect(&opts(&socket(&c, "postgres"))).await.unwrap();
        let e = ReplicationClient::connect(&opts(&socket(&c, "postgres"))).await.unwrap_err();
        assert!(e.is_too_many_connections(), "{e:?}");
        eprintln!("max_wal_senders exhausted: {e}");
        // The first connection is unaffected.
        first.identify_system().await.unwrap();
    });
}

#[test]
fn replication_connect_refused_is_typed() {
    let port = crate::support::s3::free_port();
    let e = connect(&format!("host=127.0.0.1 port={port} user=x sslmode=disable")).unwrap_err();
    assert!(
        matches!(&e, ReplicationError::ConnectRefused { addr } if addr == &format!("127.0.0.1:{port}")),
        "{e:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = connect(&format!("host={} port={port} user=x", dir.path().display())).unwrap_err();
    assert!(matches!(e, ReplicationError::ConnectRefused { .. }), "{e:?}");
    assert!(e.to_string().contains(".s.PGSQL."), "{e}");
}

// ---------------------------------------------------------------------------------------------
// TLS.

#[test]
fn pg_replication_tls_modes() {
    if !have_openssl() {
        skip_or_fail!("openssl not found");
    }
    let scratch = Scratch::new();
    let certs = scratch.subdir("certs");
    let ca = TestCa::new(&certs, "test-ca");
    let good = ca.server_cert("server", "IP:127.0.0.1,DNS:localhost", "sha256");
    // Signed with SHA-384: SCRAM channel binding must then hash the certificate with SHA-384.
    let other = ca.server_cert("other", "DNS:other.example", "sha384");
    let stranger = TestCa::new(&certs, "stranger-ca");
    chown_to_pg(&certs);
    for k in [&good.key, &other.key] {
        std::fs::set_permissions(k, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }

    let Some(bin) = pg_bin_for(15) else { skip_or_fail!("PostgreSQL 15 not found") };
    let mut c = Cluster::init(&scratch, "pg", &bin, &[]);
    let port = c.listen_on_tcp();
    c.write_hba(
        "local all all trust\n\
         local replication all trust\n\
         hostssl replication scram_user 127.0.0.1/32 scram-sha-256\n\
         host replication scram_user 127.0.0.1/32 scram-sha-256\n\
         host replication all 127.0.0.1/32 trust\n",
    );
    let cert_settings = |s: &crate::support::certs::ServerCert| {
        [("ssl_cert_file", s.cert.display().to_string()), ("ssl_key_file", s.key.display().to_string())]
    };
    let good_settings = cert_settings(&good);
    c.configure(&[
        ("ssl", "on"),
        (good_settings[0].0, &good_settings[0].1),
        (good_settings[1].0, &good_settings[1].1),
    ]);
    c.start();
    c.sql("CREATE ROLE scram_user LOGIN REPLICATION PASSWORD 'tls-pass'");

    let root = ca.cert.display().to_string();
    let no_root = scratch.path().join("no-root.crt").display().to_string();
    let conn = |host: &str, rest: &str| format!("host={host} port={port} user=postgres {rest}");
    let ok = |ci: String| connect_and_identify(&ci).unwrap_or_else(|e| panic!("{ci}: {e}"));

    assert!(ok(conn("127.0.0.1", &format!("sslmode=require sslrootcert={no_root}"))));
    assert!(ok(conn("127.0.0.1", &format!("sslmode=prefer sslrootcert={no_root}"))));
    assert!(ok(conn("127.0.0.1", &format!("sslmode=verify-ca sslrootcert={root}"))));
    assert!(ok(conn("127.0.0.1", &format!("sslmode=verify-full sslrootcert={root}"))));
    assert!(ok(conn("localhost", &format!("sslmode=verify-full sslrootcert={root}"))));
    assert!(!ok(conn("127.0.0.1", "sslmode=disable")), "sslmode=disable against ssl=on is plaintext");
    // With a root certificate file present, require checks the chain (as libpq does).
    let e = connect(&conn("127.0.0.1", &format!("sslmode=require sslrootcert={}", stranger.cert.display())))
        .unwrap_err();
    assert!(matches!(e, ReplicationError::Tls(_)), "{e:?}");
    // An untrusted CA, and a missing root file, fail verify-ca.
    let e =
        connect(&conn("127.0.0.1", &format!("sslmode=verify-ca sslrootcert={}", stranger.cert.display())))
            .unwrap_err();
    assert!(matches!(e, ReplicationError::Tls(_)), "{e:?}");
    let e = connect(&conn("127.0.0.1", &format!("sslmode=verify-ca sslrootcert={no_root}"))).unwrap_err();
    assert!(matches!(&e, ReplicationError::Tls(m) if m.contains("does not exist")), "{e:?}");

    // SCRAM over TLS with channel binding (SCRAM-SHA-256-PLUS), and required binding without TLS.
    let scram = |rest: &str| format!("host=127.0.0.1 port={port} user=scram_user password=tls-pass {rest}");
    assert!(ok(scram(&format!("sslmode=verify-full sslrootcert={root} channel_binding=require"))));
    let e = connect(&scram("sslmode=disable channel_binding=require")).unwrap_err();
    assert!(matches!(e, ReplicationError::UnsupportedAuth(_)), "{e:?}");
    assert!(!ok(scram("sslmode=disable")));

    // A certificate for another host name: verify-full fails, verify-ca passes; SCRAM-PLUS
    // works with its SHA-384 signature.
    let other_settings = cert_settings(&other);
    c.configure(&[(other_settings[0].0, &other_settings[0].1), (other_settings[1].0, &other_settings[1].1)]);
    c.sql("SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let e = connect(&conn("127.0.0.1", &format!("sslmode=verify-full sslrootcert={root}"))).unwrap_err();
    assert!(matches!(&e, ReplicationError::Tls(m) if m.contains("handshake")), "{e:?}");
    eprintln!("verify-full against another host's certificate: {e}");
    assert!(ok(conn("127.0.0.1", &format!("sslmode=verify-ca sslrootcert={root}"))));
    assert!(ok(scram(&format!("sslmode=verify-ca sslrootcert={root} channel_binding=require"))));
    assert!(c.sql("SHOW ssl_cert_file").ends_with("other.crt"));
}

#[test]
fn pg_replication_tls_required_but_server_has_none() {
    let scratch = Scratch::new();
    let c = cluster_or_skip!(&scratch, 15, true, &[]);
    let e = connect(&format!("host=127.0.0.1 port={} user=postgres sslmode=require", c.port)).unwrap_err();
    assert!(matches!(&e, ReplicationError::Tls(m) if m.contains("does not support TLS")), "{e:?}");
    // prefer falls back to plaintext.
    let client = connect(&format!("host=127.0.0.1 port={} user=postgres sslmode=prefer", c.port)).unwrap();
    assert!(!client.is_tls());
}
