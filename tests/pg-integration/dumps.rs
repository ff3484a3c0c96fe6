//! `walvault dump`, `dump-restore` and `dump-fetch` against real PostgreSQL servers (15 from
//! Debian, and 14 from the test matrix dumped by Debian's pg_dump 15) and the storage servers: a
//! dump restored into another cluster gives the same schema (`pg_dump --schema-only` of both)
//! and the row counts recorded at dump time; `--jobs 2` and `--create`; globals with
//! `--all-databases`; a failed, interrupted or killed dump leaves no descriptor; a tampered
//! object is refused and nothing of it is restored; a dump several times the pipeline's buffers
//! keeps peak RSS under 128 MB.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use walvault::repo::dumps::DumpDescriptor;

use crate::on_backends;
use crate::support::datadir::{extra, keygen};
use crate::support::pg::{Cluster, pg_bin, pg_bin_for};
use crate::support::repo::{Backend, Repo};
use crate::support::{Run, Scratch, as_pg_user, bins};

fn walvault(cfg: &Path, args: &[&str]) -> Run {
    Run::of(Command::new(&bins().walvault).arg(args[0]).arg("--config").arg(cfg).args(&args[1..]))
}

fn conninfo(c: &Cluster, db: &str) -> String {
    format!("host={} port={} user=postgres dbname={db}", c.sock.display(), c.port)
}

/// `select ... ` in database `db`.
fn sql_in(c: &Cluster, db: &str, sql: &str) -> String {
    let run = Run::of(c.client("psql").args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]));
    run.expect(0);
    run.stdout.trim().to_string()
}

/// `pg_dump --schema-only` of `db`, without the lines that differ between any two runs.
fn schema(c: &Cluster, db: &str) -> String {
    let run = Run::of(c.client("pg_dump").args(["--schema-only", "-d", db]));
    run.expect(0);
    run.stdout
        .lines()
        .filter(|l| {
            !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict") && !l.starts_with("-- Dumped ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A cluster with data worth dumping: pgbench's tables in `postgres`, and `app` with awkward
/// names, a view, an index, a sequence and a role that owns things.
fn source(scratch: &Scratch, bin: &Path) -> Cluster {
    let mut c = Cluster::init(scratch, "src", bin, &[]);
    c.configure(&[("fsync", "off")]);
    c.start();
    Run::of(c.client("pgbench").args(["-i", "-s", "1", "-q", "postgres"])).expect(0);
    c.sql("create role app_owner");
    c.sql("create database app owner app_owner");
    sql_in(
        &c,
        "app",
        "create schema \"Sales Dept\"; \
         create table \"Sales Dept\".\"Order Items\" (id bigserial primary key, what text not null, qty int check (qty > 0)); \
         insert into \"Sales Dept\".\"Order Items\" (what, qty) select 'item ' || g, 1 + g % 7 from generate_series(1, 5000) g; \
         create index on \"Sales Dept\".\"Order Items\" (what); \
         create view \"Sales Dept\".big as select * from \"Sales Dept\".\"Order Items\" where qty > 5; \
         create table public.empty_one (x int); \
         alter table \"Sales Dept\".\"Order Items\" owner to app_owner",
    );
    c
}

fn dump_json(cfg: &Path, args: &[&str]) -> DumpDescriptor {
    let mut all = vec!["dump"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = walvault(cfg, &all);
    run.expect(0).says(&["complete"]);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("--json: {e}: {}", run.stdout))
}

fn round_trip(backend: Backend) {
    let Some(bin) = pg_bin() else { crate::skip_or_fail!("PostgreSQL 15 not found") };
    let scratch = Scratch::new();
    let repo = crate::repo_on!(backend, &scratch);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", Some(&key)));
    let src = source(&scratch, &bin);

    let d = dump_json(
        &cfg,
        &[
            "-d",
            &conninfo(&src, "postgres"),
            "--database",
            "postgres",
            "--database",
            "app",
            "--label",
            "nightly",
        ],
    );
    let stored: DumpDescriptor = serde_json::from_slice(&repo.get(&format!("dumps/{}.json", d.id))).unwrap();
    assert_eq!(d, stored, "--json differs from the stored descriptor");
    assert_eq!(d.label, "nightly");
    assert_eq!(d.system_identifier, src.sql("select system_identifier from pg_control_system()"));
    assert_eq!(d.server_version.to_string(), src.sql("show server_version_num"));
    assert!(d.pg_dump_version.starts_with("pg_dump (PostgreSQL) 15"), "{}", d.pg_dump_version);
    assert!(d.key_id.is_some() && d.globals.is_none());
    let names: Vec<&str> = d.databases.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["postgres", "app"]);
    let rows = |db: &str, table: &str| {
        d.database(db).unwrap().tables.iter().find(|t| t.table == table).map(|t| t.rows)
    };
    assert_eq!(rows("postgres", "pgbench_accounts"), Some(100_000));
    assert_eq!(rows("app", "Order Items"), Some(5000));
    assert_eq!(rows("app", "empty_one"), Some(0));
    let listing = repo.listing();
    for db in &d.databases {
        let (size, _) = listing.get(&db.object.key).unwrap_or_else(|| panic!("{} missing", db.object.key));
        assert_eq!(*size, db.object.stored_bytes);
        assert!(db.object.stored_bytes < db.object.raw_bytes, "{} was not compressed", db.object.key);
    }
    assert!(!listing.keys().any(|k| k.ends_with(".started")), "the .started marker was left: {listing:?}");

    // Into another cluster: the same schema and the recorded row counts.
    let mut dst = Cluster::init(&scratch, "dst", &bin, &[]);
    dst.configure(&[("fsync", "off")]);
    dst.start();
    dst.sql("create role app_owner");
    dst.sql("create database app owner app_owner");
    let restored =
        walvault(&cfg, &["dump-restore", &d.id, "--database", "app", "-d", &conninfo(&dst, "app")]);
    restored.expect(0).says(&["one transaction", "restored"]);
    assert_eq!(schema(&src, "app"), schema(&dst, "app"), "schemas differ after dump-restore");
    for t in &d.database("app").unwrap().tables {
        let n = sql_in(&dst, "app", &format!("select count(*) from \"{}\".\"{}\"", t.schema, t.table));
        assert_eq!(n, t.rows.to_string(), "{}.{}", t.schema, t.table);
    }

    // --jobs 2 (through a temporary file, removed afterwards) into a new database.
    let work = scratch.subdir("work");
    dst.sql("create database pgcopy");
    walvault(
        &cfg,
        &[
            "dump-restore",
            "latest",
            "--database",
            "postgres",
            "-d",
            &conninfo(&dst, "pgcopy"),
            "--jobs",
            "2",
            "--work-dir",
            work.to_str().unwrap(),
        ],
    )
    .expect(0)
    .says(&["2 job(s)"]);
    assert_eq!(sql_in(&dst, "pgcopy", "select count(*) from pgbench_accounts"), "100000");
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "the temporary file was left in {}",
        work.display()
    );

    // --create: the database comes from the dump itself.
    dst.sql("drop database app");
    walvault(
        &cfg,
        &["dump-restore", &d.id, "--database", "app", "-d", &conninfo(&dst, "postgres"), "--create"],
    )
    .expect(0);
    assert_eq!(schema(&src, "app"), schema(&dst, "app"), "schemas differ after --create");

    // dump-fetch: the custom-format file, verified, for pg_restore --list; never overwritten.
    let out = scratch.path().join("app.dump");
    walvault(&cfg, &["dump-fetch", &d.id, "--database", "app", "-o", out.to_str().unwrap()]).expect(0);
    let list = Run::of(Command::new(bin.join("pg_restore")).arg("--list").arg(&out));
    assert!(list.expect(0).stdout.contains("Order Items"), "{}", list.stdout);
    let again = walvault(&cfg, &["dump-fetch", &d.id, "--database", "app", "-o", out.to_str().unwrap()]);
    again.expect(2).says(&["exists"]);

    // Bad requests: one line each, exit 2.
    walvault(&cfg, &["dump-restore", &d.id, "-d", &conninfo(&dst, "app")]).expect(2).says(&["--database"]);
    walvault(&cfg, &["dump-restore", "20200101T000000Z", "--database", "app", "-d", &conninfo(&dst, "app")])
        .expect(2)
        .says(&["no dump 20200101T000000Z"]);
    walvault(&cfg, &["dump-fetch", &d.id, "--database", "nope", "-o", "/tmp/x"])
        .expect(2)
        .says(&["no database \"nope\""]);
}

on_backends!(pg_dump_round_trip, round_trip, [file, s3]);

#[test]
fn pg_dump_all_databases_with_globals() {
    let Some(bin) = pg_bin() else { crate::skip_or_fail!("PostgreSQL 15 not found") };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("lz4", None));
    let src = source(&scratch, &bin);
    let d = dump_json(&cfg, &["-d", &conninfo(&src, "postgres"), "--all-databases"]);
    let mut names: Vec<&str> = d.databases.iter().map(|x| x.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["app", "postgres"], "templates are not dumped");
    assert!(d.globals.is_some());
    let out = scratch.path().join("globals.sql");
    walvault(&cfg, &["dump-fetch", "latest", "--globals", "-o", out.to_str().unwrap()]).expect(0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("CREATE ROLE app_owner"), "{text}");
    walvault(&cfg, &["dump", "-d", &conninfo(&src, "postgres"), "--all-databases", "--database", "app"])
        .expect(2);

    // The operations see real dumps: list, verify (objects, then a restore drill in a
    // temporary cluster comparing row counts), mark, and [retention.dumps].
    let list = walvault(&cfg, &["list", "--json"]);
    let l: serde_json::Value = serde_json::from_str(&list.expect(0).stdout).unwrap();
    assert_eq!(l["dumps"][0]["id"], d.id.as_str());
    walvault(&cfg, &["verify", "--dump", &d.id]).expect(0);
    // The drill runs PostgreSQL, so as its user (the repository, written as root here, handed over).
    let work = scratch.subdir("drill");
    Run::of(Command::new("chown").arg("-R").arg("postgres:").arg(repo.dir().unwrap()).arg(&work)).expect(0);
    let drill = Run::of(as_pg_user(&bins().walvault).arg("verify").arg("--config").arg(&cfg).args([
        "--dump",
        &d.id,
        "--restore-test",
        "--work-dir",
        work.to_str().unwrap(),
    ]));
    drill.expect(0);
    std::thread::sleep(Duration::from_millis(1100));
    let newer = dump_json(&cfg, &["-d", &conninfo(&src, "postgres"), "--all-databases"]);
    let policy = scratch.file(
        "policy.toml",
        format!("{}\n[retention.dumps]\nretain = 1\n", std::fs::read_to_string(&cfg).unwrap()),
    );
    let plan = walvault(&policy, &["delete"]);
    plan.expect(0);
    assert!(plan.stdout.contains(&d.id), "the dry run does not name the older dump:\n{}", plan.stdout);
    assert!(repo.listing().contains_key(&format!("dumps/{}.json", d.id)), "a dry run deleted");
    walvault(&policy, &["mark", &d.id, "--keep"]).expect(0);
    walvault(&policy, &["delete", "--confirm"]).expect(0);
    assert!(repo.listing().contains_key(&format!("dumps/{}.json", d.id)), "a kept dump was deleted");
    walvault(&policy, &["mark", &d.id, "--unkeep"]).expect(0);
    walvault(&policy, &["delete", "--confirm"]).expect(0);
    let left: Vec<String> = dump_keys(&repo).into_iter().filter(|k| k.contains(&d.id)).collect();
    assert!(left.is_empty(), "the deleted dump left {left:?}");
    assert!(repo.listing().contains_key(&format!("dumps/{}.json", newer.id)));
    walvault(&policy, &["verify", "--full"]).expect(0);

    // [retention] auto = true: each dump applies the dump rules (and only those) itself.
    let auto = scratch.file(
        "auto.toml",
        format!(
            "{}\n[retention]\nauto = true\n[retention.dumps]\nretain = 1\n",
            std::fs::read_to_string(&cfg).unwrap()
        ),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let run = walvault(&auto, &["dump", "-d", &conninfo(&src, "postgres"), "--all-databases", "--json"]);
    run.expect(0).says(&["applying the dump retention policy"]);
    let newest: DumpDescriptor = serde_json::from_str(&run.stdout).unwrap();
    let ids: std::collections::BTreeSet<String> = dump_keys(&repo)
        .iter()
        .filter_map(|k| k.strip_prefix("dumps/")?.strip_suffix(".json").map(String::from))
        .collect();
    assert_eq!(ids, [newest.id.clone()].into(), "auto retention kept {ids:?}");
}

#[test]
fn pg_dump_of_an_older_server_by_a_newer_pg_dump() {
    let (Some(bin15), Some(bin14)) = (pg_bin(), pg_bin_for(14)) else {
        crate::skip_or_fail!("PostgreSQL 15 and 14 (.tools/pg/14) not both found")
    };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let src = source(&scratch, &bin14);
    // No pg_dump 14 is installed: the closest newer one (Debian's 15) dumps the 14 server.
    let d = dump_json(&cfg, &["-d", &conninfo(&src, "app")]);
    assert_eq!(d.server_version / 10_000, 14);
    assert!(d.pg_dump_version.contains(" 15."), "{}", d.pg_dump_version);
    let mut dst = Cluster::init(&scratch, "dst", &bin14, &[]);
    dst.start();
    dst.sql("create role app_owner");
    dst.sql("create database app owner app_owner");
    walvault(
        &cfg,
        &["dump-restore", "latest", "-d", &conninfo(&dst, "app"), "--pg-bin", bin15.to_str().unwrap()],
    )
    .expect(0);
    assert_eq!(schema(&src, "app"), schema(&dst, "app"));
    assert_eq!(sql_in(&dst, "app", "select count(*) from \"Sales Dept\".\"Order Items\""), "5000");
}

/// Objects and markers under `dumps/`.
fn dump_keys(repo: &Repo) -> Vec<String> {
    repo.listing().into_keys().filter(|k| k.starts_with("dumps/")).collect()
}

#[test]
fn pg_dump_failures_leave_nothing_that_looks_like_a_dump() {
    let Some(bin) = pg_bin() else { crate::skip_or_fail!("PostgreSQL 15 not found") };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", None));
    let src = source(&scratch, &bin);
    // Enough data that a dump takes a while.
    src.sql("create table big as select g, md5(g::text) || md5((g + 1)::text) as pad from generate_series(1, 2000000) g");

    // pg_dump fails (no such database): non-zero, named, and nothing left.
    let run = walvault(
        &cfg,
        &["dump", "-d", &conninfo(&src, "postgres"), "--database", "postgres", "--database", "nosuchdb"],
    );
    run.expect(2).says(&["nosuchdb"]);
    assert_eq!(dump_keys(&repo), Vec::<String>::new(), "a failed dump left objects");

    // pg_dump itself failing half-way (a wrapper that passes on 1 MB of its output, then exits
    // 1): exit 1, pg_dump's message, and nothing under dumps/, not even a completed object.
    let fake = scratch.subdir("fake-bin");
    let script = format!(
        "#!/bin/sh\n{} \"$@\" | head -c 1000000\necho 'pg_dump: error: the wrapper failed on purpose' >&2\nexit 1\n",
        bin.join("pg_dump").display()
    );
    std::fs::write(fake.join("pg_dump"), script).unwrap();
    std::fs::set_permissions(fake.join("pg_dump"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let run =
        walvault(&cfg, &["dump", "-d", &conninfo(&src, "postgres"), "--pg-bin", fake.to_str().unwrap()]);
    run.expect(1).says(&["pg_dump", "failed on purpose"]);
    assert_eq!(dump_keys(&repo), Vec::<String>::new(), "a failed pg_dump left objects");

    // SIGTERM mid-dump: everything it wrote is removed.
    let mut child = Command::new(&bins().walvault)
        .args(["dump", "--config", cfg.to_str().unwrap(), "-d", &conninfo(&src, "postgres")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_started(&repo, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(dump_keys(&repo), Vec::<String>::new(), "an interrupted dump left objects");

    // SIGKILL mid-dump: no descriptor (objects or the marker may stay, as leftovers).
    let mut child = Command::new(&bins().walvault)
        .args(["dump", "--config", cfg.to_str().unwrap(), "-d", &conninfo(&src, "postgres")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_started(&repo, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let children = children_of(child.id());
    assert!(!children.is_empty(), "walvault dump runs pg_dump as its child");
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    while children.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "pg_dump {children:?} outlived the killed walvault"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let keys = dump_keys(&repo);
    assert!(keys.iter().any(|k| k.ends_with(".started")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(".json")), "a killed dump has a descriptor: {keys:?}");
    // A new dump still works.
    let d = dump_json(&cfg, &["-d", &conninfo(&src, "postgres")]);
    assert!(d.database("postgres").unwrap().tables.iter().any(|t| t.table == "big" && t.rows == 2_000_000));
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so split after its closing parenthesis.
        let ppid =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn wait_for_started(repo: &Repo, limit: Duration) {
    let start = Instant::now();
    while !dump_keys(repo).iter().any(|k| k.ends_with(".started")) {
        assert!(start.elapsed() < limit, "the dump never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `walvault ARGS` bounded in time: a hang is a failure (exit 124), not a stuck test.
fn bounded(cfg: &Path, args: &[&str]) -> Run {
    Run::of(
        Command::new("timeout")
            .arg("120")
            .arg(&bins().walvault)
            .arg(args[0])
            .arg("--config")
            .arg(cfg)
            .args(&args[1..]),
    )
}

fn tampered(with_key: bool) {
    let Some(bin) = pg_bin() else { crate::skip_or_fail!("PostgreSQL 15 not found") };
    let scratch = Scratch::new();
    let repo = Repo::file(&scratch);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", with_key.then_some(key.as_path())));
    let src = source(&scratch, &bin);
    // Several MB that do not compress much: the object is many chunks and many reads.
    sql_in(
        &src,
        "app",
        "create table noise as select g, md5(g::text) || md5((g * 7)::text) as h from generate_series(1, 150000) g",
    );
    let mut dst = Cluster::init(&scratch, "dst", &bin, &[]);
    dst.start();
    dst.sql("create role app_owner");
    dst.sql("create database app owner app_owner");

    // Near the start (the rest of the object must not be left waiting on a full queue) and
    // near the end (pg_restore has had nearly all of it and must still not commit).
    for (where_, fraction) in [("near the start", 0.05), ("near the end", 0.97)] {
        let d = dump_json(&cfg, &["-d", &conninfo(&src, "app")]);
        let o = &d.databases[0].object;
        assert!(o.stored_bytes > 4 << 20, "the object is only {} bytes", o.stored_bytes);
        let path = repo.dir().unwrap().join(&o.key);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (bytes.len() as f64 * fraction) as usize;
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let run = bounded(&cfg, &["dump-restore", &d.id, "-d", &conninfo(&dst, "app")]);
        run.expect(3).says(&[&o.key]);
        assert_eq!(run.error_lines().len(), 1, "{where_}: {}", run.stderr);
        // pg_restore never saw the end of its input: its one transaction did not commit.
        let tables = sql_in(
            &dst,
            "app",
            "select count(*) from pg_tables where schemaname in ('Sales Dept', 'public')",
        );
        assert_eq!(tables, "0", "{where_}: a refused restore left tables");

        let out = scratch.path().join("app.dump");
        bounded(&cfg, &["dump-fetch", &d.id, "-o", out.to_str().unwrap()]).expect(3);
        assert!(
            !out.exists() && !scratch.path().join("app.dump.partial").exists(),
            "a refused fetch left a file"
        );
        bounded(
            &cfg,
            &[
                "dump-restore",
                &d.id,
                "-d",
                &conninfo(&dst, "app"),
                "--jobs",
                "2",
                "--work-dir",
                scratch.path().to_str().unwrap(),
            ],
        )
        .expect(3);
        let v = bounded(&cfg, &["verify", "--dump", &d.id]);
        v.expect(3);
        assert!(v.stdout.contains(&o.key), "verify does not name {}:\n{}", o.key, v.stdout);
        std::thread::sleep(Duration::from_millis(1100));
    }
}

#[test]
fn pg_dump_tampered_object_is_refused_encrypted() {
    tampered(true);
}

#[test]
fn pg_dump_tampered_object_is_refused_unencrypted() {
    tampered(false);
}

/// A dump of a database whose pg_dump output is several times the pipeline's buffers (at most
/// about 72 MiB: 64 input chunks of 256 KiB, 16 MiB of encoded output, 4 multipart chunks of
/// 8 MiB, the pipe's reading buffers), to S3 with a key: walvault's peak RSS, and its children's
/// (`/usr/bin/time`'s %M: the largest process of the tree), stays under 128 MB, whatever the
/// dump's size. A dump held in memory, or queues without bounds, would pass 300 MB.
#[test]
fn pg_dump_larger_than_the_pipeline_keeps_peak_rss_bounded() {
    let Some(bin) = pg_bin() else { crate::skip_or_fail!("PostgreSQL 15 not found") };
    let server = crate::require_s3!();
    if !Path::new("/usr/bin/time").exists() {
        crate::skip_or_fail!("/usr/bin/time (Debian package time) is not installed");
    }
    let scratch = Scratch::new();
    let repo = Repo::s3(&server);
    let key = keygen(&scratch, "key");
    let cfg = repo.config(&scratch, "c.toml", &extra("zstd", Some(&key)));
    let mut src = Cluster::init(&scratch, "src", &bin, &[]);
    src.configure(&[("fsync", "off"), ("wal_level", "minimal"), ("max_wal_senders", "0")]);
    src.start();
    // About 105 bytes of COPY text per row, a third of them varying: 3 million rows, 315 MB.
    src.sql(
        "create table big as select g, repeat(md5(g::text), 3) as pad from generate_series(1, 3000000) g",
    );

    let peak = scratch.path().join("peak");
    let run = Run::of(
        Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&peak)
            .arg(&bins().walvault)
            .args(["dump", "--config"])
            .arg(&cfg)
            .args(["-d", &conninfo(&src, "postgres"), "--json"]),
    );
    run.expect(0);
    let d: DumpDescriptor = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("--json: {e}"));
    let raw = d.database("postgres").unwrap().object.raw_bytes;
    let kib: u64 = std::fs::read_to_string(&peak).unwrap().trim().parse().unwrap();
    eprintln!("dump of {} MB of pg_dump output: peak RSS {} MB", raw / 1_000_000, kib * 1024 / 1_000_000);
    assert!(raw > 300_000_000, "the dump is smaller than meant: {raw} bytes");
    assert!(kib * 1024 < 128_000_000, "peak RSS {kib} KiB for a dump of {raw} bytes");
    assert!(d.database("postgres").unwrap().tables.iter().any(|t| t.table == "big" && t.rows == 3_000_000));
}
