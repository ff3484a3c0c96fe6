//! Dump drills (`walvault verify --restore-test` on a logical dump): a temporary cluster of the
//! dump's major version (`initdb`, then started like the backup drill's server: unix socket in
//! the temporary directory, no TCP, local connections trusted), the globals restored first if the
//! dump has them (`psql -f -`; the bootstrap superuser's "already exists" is expected), then a
//! scratch database per dumped database (`wvdrill_001`, … in the descriptor's order) into which
//! the decoded dump object is streamed on `pg_restore`'s stdin: nothing is staged on disk. Then
//! each table's `count(*)` must be the row count the descriptor recorded at dump time.
//!
//! The object is verified while it streams (the trailer's SHA-256, then the descriptor's): a
//! restore from a damaged object fails the drill even where pg_restore took it. The server is
//! stopped and the directory removed afterwards, also on failure and on SIGINT/SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

use super::drill::{Drill, DrillError, DrillRequest, Scratch, why};
use crate::format::Decoder;
use crate::keys::KeyRing;
use crate::object::download::download;
use crate::replication::quote_ident;
use crate::repo::Storage;
use crate::repo::descriptor::StoredFile;
use crate::repo::dumps::{DumpDescriptor, DumpedDatabase};

/// The programs a dump drill runs.
const PROGRAMS: [&str; 5] = ["pg_restore", "initdb", "postgres", "pg_ctl", "psql"];

/// The bootstrap superuser of the drill's cluster.
const SUPERUSER: &str = "postgres";

/// Decoded-object pieces queued between the download and the decoder.
const QUEUE: usize = 8;

/// Tables counted per query.
const COUNT_BATCH: usize = 100;

/// One dump drill's result.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DumpDrillReport {
    /// The dump restored.
    pub dump: String,
    /// It restored and every table's row count is the descriptor's.
    pub ok: bool,
    /// Seconds from `initdb` to the last table counted.
    pub seconds: f64,
    /// Each database: where it was restored and how many tables were counted.
    pub databases: Vec<DatabaseDrill>,
    /// Tables whose row count differs from the descriptor's (or that could not be counted).
    pub mismatches: Vec<RowMismatch>,
    /// What happened, or why it failed.
    pub message: String,
}

impl DumpDrillReport {
    /// Problems for verify's summary: each mismatch, or one for a drill that failed otherwise.
    pub fn problems(&self) -> u64 {
        if self.ok { 0 } else { (self.mismatches.len() as u64).max(1) }
    }
}

/// One database of a dump drill.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DatabaseDrill {
    /// The dumped database.
    pub name: String,
    /// The scratch database it was restored into.
    pub scratch: String,
    /// Tables whose row count was compared.
    pub tables: u64,
}

/// A table restored with another row count than the descriptor records.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RowMismatch {
    /// The dumped database.
    pub database: String,
    /// The table's schema.
    pub schema: String,
    /// The table.
    pub table: String,
    /// The descriptor's row count.
    pub expected: u64,
    /// The restored table's (none: it could not be counted).
    pub restored: Option<u64>,
    /// In words.
    pub message: String,
}

/// Restores dump `d` into a temporary cluster of its major version and compares row counts.
pub async fn run(
    req: &DrillRequest,
    storage: &Storage,
    keys: &KeyRing,
    d: &DumpDescriptor,
) -> Result<DumpDrillReport, DrillError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Err(DrillError::AsRoot);
    }
    // pg_restore reads what the same or an older pg_dump wrote, and a newer server takes an
    // older one's dump: the programs of the dump's pg_dump version, or the closest newer.
    let major = crate::pgbin::major_of_version_line(&d.pg_dump_version).unwrap_or(d.server_version / 10_000);
    let bin =
        crate::pgbin::find_at_least(req.pg_bin.as_deref(), major.max(d.server_version / 10_000), &PROGRAMS)
            .map_err(DrillError::NoBinaries)?;
    let dir = Scratch::new(&req.work_dir)?;
    let server = Drill::new(req, &bin, &dir, &d.id);
    let drill = DumpDrill { server: &server, bin: &bin, dir: &dir, storage, keys, d };
    let report = tokio::select! {
        r = drill.run() => r,
        _ = crate::shutdown::signal() => {
            server.stop_server().await;
            return Err(DrillError::Interrupted);
        }
    };
    server.stop_server().await;
    tracing::info!("{}", render(&report));
    Ok(report)
}

struct DumpDrill<'a> {
    server: &'a Drill<'a>,
    bin: &'a Path,
    dir: &'a Scratch,
    storage: &'a Storage,
    keys: &'a KeyRing,
    d: &'a DumpDescriptor,
}

impl DumpDrill<'_> {
    async fn run(&self) -> DumpDrillReport {
        let started = Instant::now();
        let mut report = DumpDrillReport {
            dump: self.d.id.clone(),
            ok: false,
            seconds: 0.0,
            databases: Vec::new(),
            mismatches: Vec::new(),
            message: String::new(),
        };
        let result = self.go(&mut report).await;
        report.seconds = started.elapsed().as_secs_f64();
        match result {
            Err(m) => report.message = m,
            Ok(()) if !report.mismatches.is_empty() => {
                report.message = format!(
                    "{} table(s) restored with another row count than the dump recorded",
                    report.mismatches.len()
                );
            }
            Ok(()) => {
                report.ok = true;
                report.message = format!(
                    "{} database(s) restored, the row counts of {} table(s) match, in {:.1} s",
                    report.databases.len(),
                    report.databases.iter().map(|d| d.tables).sum::<u64>(),
                    report.seconds
                );
            }
        }
        report
    }

    async fn go(&self, report: &mut DumpDrillReport) -> Result<(), String> {
        let out = Command::new(self.bin.join("initdb"))
            .arg("-D")
            .arg(self.server.data())
            .args(["-U", SUPERUSER, "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed ({}): {}", out.status, why(&out.stderr)));
        }
        self.server.start().await?;
        if let Some(g) = &self.d.globals {
            self.globals(g).await?;
        }
        for (i, db) in self.d.databases.iter().enumerate() {
            let scratch = format!("wvdrill_{:03}", i + 1);
            self.restore(db, &scratch).await?;
            let tables = self.count(db, &scratch, &mut report.mismatches).await?;
            report.databases.push(DatabaseDrill { name: db.name.clone(), scratch, tables });
        }
        Ok(())
    }

    /// A file in the drill's directory for a program's stderr.
    fn stderr_file(&self, name: &str) -> Result<(std::path::PathBuf, Stdio), String> {
        let path = self.dir.0.join(name);
        let f = std::fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok((path, Stdio::from(f)))
    }

    /// Roles and tablespaces, through `psql -f -`; every error but the bootstrap superuser's
    /// "already exists" fails the drill.
    async fn globals(&self, g: &StoredFile) -> Result<(), String> {
        let (err_path, err) = self.stderr_file("globals.err")?;
        let mut child = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir.0)
            .args(["-p", "5432", "-U", SUPERUSER, "-d", "postgres", "-X", "-q", "-w", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let streamed = match roles_sql(self.storage, self.keys, g).await {
            Ok(sql) => stdin.write_all(sql.as_bytes()).await.map_err(|e| Streamed::Gone(e.to_string())),
            Err(e) => Err(Streamed::Bad(e)),
        };
        drop(stdin);
        let status = child.wait().await.map_err(|e| format!("psql: {e}"))?;
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        match streamed {
            Err(Streamed::Bad(e)) => return Err(format!("the globals {}: {e}", g.key)),
            Err(Streamed::Gone(e)) if status.success() => return Err(format!("psql: {e}")),
            _ => {}
        }
        let expected = format!("role \"{SUPERUSER}\" already exists");
        let errors: Vec<&str> =
            stderr.lines().filter(|l| l.contains("ERROR:") && !l.contains(&expected)).collect();
        if !status.success() || !errors.is_empty() {
            return Err(format!(
                "restoring the globals failed ({status}): {}",
                errors.first().copied().unwrap_or_else(|| stderr.lines().last().unwrap_or("no output"))
            ));
        }
        Ok(())
    }

    /// Creates `scratch` and streams database `db`'s dump into `pg_restore -d scratch`. Without
    /// globals the dump's roles do not exist here: owners and privileges are left out.
    async fn restore(&self, db: &DumpedDatabase, scratch: &str) -> Result<(), String> {
        self.server
            .psql_as("postgres", SUPERUSER, &format!("create database {scratch} template template0"))
            .await
            .map_err(|e| format!("cannot create the scratch database {scratch}: {e}"))?;
        let (err_path, err) = self.stderr_file(&format!("{scratch}.err"))?;
        let mut cmd = Command::new(self.bin.join("pg_restore"));
        cmd.arg("-h").arg(&self.dir.0).args(["-p", "5432", "-U", SUPERUSER, "-w", "-d", scratch]);
        cmd.arg("--no-tablespaces");
        if self.d.globals.is_none() {
            cmd.args(["--no-owner", "--no-privileges"]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run pg_restore: {e}"))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let streamed = stream(self.storage, self.keys, &db.object, stdin).await;
        if let Err(Streamed::Bad(_)) = streamed {
            let _ = child.start_kill();
        }
        let status = child.wait().await.map_err(|e| format!("pg_restore: {e}"))?;
        match streamed {
            Err(Streamed::Bad(e)) => {
                return Err(format!("the dump of database {} ({}): {e}", db.name, db.object.key));
            }
            Err(Streamed::Gone(e)) if status.success() => return Err(format!("pg_restore: {e}")),
            _ => {}
        }
        if !status.success() {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            let first = stderr
                .lines()
                .find(|l| l.contains("ERROR") || l.contains("error:"))
                .unwrap_or_else(|| stderr.lines().last().unwrap_or("no output"));
            return Err(format!(
                "pg_restore of database {} into {scratch} failed ({status}): {}",
                db.name,
                first.trim()
            ));
        }
        Ok(())
    }

    /// Compares each table's `count(*)` in `scratch` with the descriptor's; returns how many
    /// tables were compared.
    async fn count(
        &self,
        db: &DumpedDatabase,
        scratch: &str,
        mismatches: &mut Vec<RowMismatch>,
    ) -> Result<u64, String> {
        for batch in db.tables.chunks(COUNT_BATCH) {
            let sql = batch
                .iter()
                .map(|t| format!("select count(*) from {}.{}", quote_ident(&t.schema), quote_ident(&t.table)))
                .collect::<Vec<_>>()
                .join(" union all ");
            // One query per batch; where it fails (a table missing), one per table of it.
            let counts: Vec<Result<u64, String>> = match self.counts(scratch, &sql, batch.len()).await {
                Some(c) => c.into_iter().map(Ok).collect(),
                None => {
                    let mut one = Vec::new();
                    for t in batch {
                        let sql = format!(
                            "select count(*) from {}.{}",
                            quote_ident(&t.schema),
                            quote_ident(&t.table)
                        );
                        one.push(match self.server.psql_as(scratch, SUPERUSER, &sql).await {
                            Ok(v) => v.trim().parse::<u64>().map_err(|_| format!("count(*) said {v:?}")),
                            Err(e) => Err(e),
                        });
                    }
                    one
                }
            };
            for (t, c) in batch.iter().zip(counts) {
                let (restored, message) = match c {
                    Ok(n) if n == t.rows => continue,
                    Ok(n) => (Some(n), format!("{n} rows restored, {} at dump time", t.rows)),
                    Err(e) => (None, format!("cannot count its rows: {e}")),
                };
                mismatches.push(RowMismatch {
                    database: db.name.clone(),
                    schema: t.schema.clone(),
                    table: t.table.clone(),
                    expected: t.rows,
                    restored,
                    message,
                });
            }
        }
        Ok(db.tables.len() as u64)
    }

    /// `union all` of counts, in order; none when the query fails or answers otherwise.
    async fn counts(&self, scratch: &str, sql: &str, n: usize) -> Option<Vec<u64>> {
        let out = self.server.psql_as(scratch, SUPERUSER, sql).await.ok()?;
        let v: Vec<u64> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse().ok())
            .collect::<Option<_>>()?;
        (v.len() == n).then_some(v)
    }
}

/// Why an object could not be streamed into a program.
/// The globals' SQL, read whole (roles and tablespaces are small) and verified, without the
/// tablespace statements: the drill's cluster has none of their directories.
async fn roles_sql(storage: &Storage, keys: &KeyRing, g: &StoredFile) -> Result<String, String> {
    struct Keep(Vec<u8>);
    impl crate::object::read::ObjectSink for Keep {
        fn reset(&mut self) -> std::io::Result<()> {
            self.0.clear();
            Ok(())
        }
        fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
            self.0.extend_from_slice(b);
            Ok(())
        }
    }
    let mut keep = Keep(Vec::new());
    let key = object_store::path::Path::from(g.key.as_str());
    let t =
        crate::object::read::read_object(storage, &key, keys, &mut keep).await.map_err(|e| e.to_string())?;
    if t.len != g.raw_bytes || hex::encode(t.sha256) != g.sha256 {
        return Err("it is not the object the dump's descriptor names".into());
    }
    let text = String::from_utf8_lossy(&keep.0);
    let tablespace = |l: &str| {
        let l = l.trim_start();
        l.starts_with("CREATE TABLESPACE ")
            || l.starts_with("ALTER TABLESPACE ")
            || l.contains(" ON TABLESPACE ")
    };
    Ok(text.lines().filter(|l| !tablespace(l)).map(|l| format!("{l}\n")).collect())
}

enum Streamed {
    /// The program stopped reading: its own error is the cause.
    Gone(String),
    /// The object could not be read, or is not the descriptor's.
    Bad(String),
}

/// Streams object `f` decoded into `stdin` (closed at the end), checking it against the
/// descriptor's length and SHA-256. Memory is bounded by the queue, whatever the object's size.
async fn stream(
    storage: &Storage,
    keys: &KeyRing,
    f: &StoredFile,
    stdin: ChildStdin,
) -> Result<(), Streamed> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let abort = AtomicBool::new(false);
    let key = object_store::path::Path::from(f.key.as_str());
    let fetch = async {
        let tx = tx;
        download(storage, &key, Some(f.stored_bytes), &abort, &tx).await
    };
    let feed = async {
        let mut stdin = stdin;
        let mut dec = Decoder::new(keys);
        let mut out: Vec<u8> = Vec::new();
        let mut gone = None;
        // The bytes pass on as they decode; they are known sound only at the end.
        while let Some(piece) = rx.recv().await {
            out.clear();
            let r = dec.update(&piece, &mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            });
            if let Err(e) = r {
                abort.store(true, Ordering::Relaxed);
                return Err(Streamed::Bad(format!("it does not decode: {e}")));
            }
            if gone.is_none()
                && let Err(e) = stdin.write_all(&out).await
            {
                gone = Some(e);
                abort.store(true, Ordering::Relaxed);
            }
        }
        if let Some(e) = gone {
            return Err(Streamed::Gone(format!("the program stopped reading ({e})")));
        }
        out.clear();
        let trailer = dec
            .finish(&mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            })
            .map_err(|e| Streamed::Bad(format!("it does not decode: {e}")))?;
        let gone = |e: std::io::Error| Streamed::Gone(format!("the program stopped reading ({e})"));
        stdin.write_all(&out).await.map_err(gone)?;
        stdin.shutdown().await.map_err(gone)?;
        drop(stdin);
        if trailer.len != f.raw_bytes || !hex::encode(trailer.sha256).eq_ignore_ascii_case(&f.sha256) {
            return Err(Streamed::Bad(format!(
                "it holds {} bytes with SHA-256 {}, the descriptor lists {} bytes with SHA-256 {}",
                trailer.len,
                hex::encode(trailer.sha256),
                f.raw_bytes,
                f.sha256
            )));
        }
        Ok(())
    };
    let (fetched, fed) = tokio::join!(fetch, feed);
    match (fetched, fed) {
        (Ok(_), r) => r,
        // The feeder stopped first: its error is the cause.
        (Err(crate::object::download::DownloadError::Stopped), Err(e)) => Err(e),
        (Err(e), _) => Err(Streamed::Bad(e.to_string())),
    }
}

/// A dump drill's result, with its mismatches, a line each.
pub fn render(d: &DumpDrillReport) -> String {
    let mut s = if d.ok {
        format!("restore drill of dump {}: ok: {}", d.dump, d.message)
    } else {
        format!("restore drill of dump {}: FAILED: {}", d.dump, d.message)
    };
    for m in &d.mismatches {
        s.push_str(&format!("\n      {}: {}.{}: {}", m.database, m.schema, m.table, m.message));
    }
    s
}
