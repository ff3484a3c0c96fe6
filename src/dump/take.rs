//! `walvault dump`: each database through `pg_dump -Fc` (its own compression off) streamed into
//! the compress / encrypt pipeline and stored as one object, never staged on disk; with
//! `--all-databases` also `pg_dumpall --globals-only`. Every pg_dump runs in a snapshot exported
//! by a session of walvault's, and each table's rows in that snapshot are counted in pg_dump's
//! output as it streams past (`rows`, `tables`): the counts a restore must give back, recorded in
//! the descriptor.
//!
//! Crash story: the `.started` marker is written first (create-only: it claims the id), then
//! each database's object, then the globals, then the descriptor (`dumps/<id>.json`), last; then
//! the marker is removed. A dump exists only once its descriptor does. On any failure (pg_dump
//! exiting non-zero, the connection lost, the repository failing, SIGINT/SIGTERM) everything
//! written for the dump is removed; a kill -9 leaves objects and the marker but no descriptor,
//! which `list` shows as a dump without descriptor and `delete` removes as a leftover. A dump
//! that `delete` took for leftovers while it ran notices before its descriptor and writes none
//! (`repo::seal`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use object_store::PutPayload;
use tokio::sync::mpsc;

use super::error::DumpError;
use super::rows::RowCounter;
use super::tables::Catalog;
use crate::config::Config;
use crate::object::stream::{self, Keys, Plan};
use crate::replication::{ConnectOptions, ReplicationClient, quote_ident};
use crate::repo::descriptor::StoredFile;
use crate::repo::dumps::{DUMP_FORMAT, DumpDescriptor, DumpedDatabase, TableRows};
use crate::repo::identity::{self, Identity, REPO_FORMAT};
use crate::repo::layout::{self, Marker};
use crate::repo::{Storage, StorageError, seal};
use crate::units::{UtcTime, human, parse_pg_size};

/// What to dump.
#[derive(Clone, Debug, Default)]
pub struct DumpRequest {
    /// Connection string or URI (libpq's variables fill in the rest).
    pub conninfo: Option<String>,
    /// The databases (default: the one the connection opens).
    pub databases: Vec<String>,
    /// Every database that accepts connections, and the globals.
    pub all_databases: bool,
    /// A label for the dump.
    pub label: Option<String>,
    /// PostgreSQL's programs (default: those of the server's major version).
    pub pg_bin: Option<PathBuf>,
    /// Show progress on stderr.
    pub progress: bool,
}

/// What the server says about itself.
struct Server {
    version: u32,
    system_identifier: String,
    wal_segment_size: u32,
    databases: Vec<String>,
}

/// Takes a dump as `req` says and returns its descriptor (written last).
pub async fn dump(cfg: &Config, storage: &Storage, req: &DumpRequest) -> Result<DumpDescriptor, DumpError> {
    if req.all_databases && !req.databases.is_empty() {
        return Err(DumpError::Usage("give --database or --all-databases, not both".into()));
    }
    let opts = ConnectOptions::from_env_and_conninfo(req.conninfo.as_deref())?;
    let server = ask_server(&opts, req).await?;
    let major = server.version / 10_000;
    let mut programs = vec!["pg_dump"];
    if req.all_databases {
        programs.push("pg_dumpall");
    }
    let bin =
        crate::pgbin::find_at_least(req.pg_bin.as_deref(), major, &programs).map_err(DumpError::NoProgram)?;
    let pg_dump_version =
        crate::pgbin::version_line(&bin.join("pg_dump")).unwrap_or_else(|| "unknown".into());

    let proposed = Identity {
        format: REPO_FORMAT,
        system_identifier: server.system_identifier.clone(),
        pg_version: Some(major),
        wal_segment_size: server.wal_segment_size,
        created: UtcTime::now(),
        created_by: format!("walvault {}", env!("CARGO_PKG_VERSION")),
    };
    let id = identity::ensure(storage, &proposed).await?;
    if id.system_identifier != server.system_identifier {
        return Err(DumpError::OtherCluster {
            server: server.system_identifier,
            repo_id: id.system_identifier,
            repo: storage.url().into(),
        });
    }
    let dump_id = claim_id(storage).await?;
    let started = Instant::now();
    let run = tracing::Instrument::instrument(
        take(cfg, storage, req, &opts, &server, &bin, pg_dump_version, &dump_id),
        tracing::info_span!("dump", id = %dump_id),
    );
    let taken = tokio::select! {
        r = run => r,
        _ = crate::shutdown::signal() => Err(DumpError::Interrupted),
    };
    // The descriptor is written outside the select: once its PUT starts, a signal does not cut
    // it short, so a descriptor never outlives the cleanup of its objects.
    let outcome = match taken {
        Ok(d) => write_descriptor(storage, d, started).await,
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        remove_dump_objects(storage, &dump_id).await;
    }
    outcome
}

/// Writes the descriptor (create-only: the dump exists from here on), then removes the marker.
async fn write_descriptor(
    storage: &Storage,
    descriptor: DumpDescriptor,
    started: Instant,
) -> Result<DumpDescriptor, DumpError> {
    let id = &descriptor.id;
    let mut json = serde_json::to_vec_pretty(&descriptor).expect("descriptor serialises");
    json.push(b'\n');
    let sealed = seal::Sealed {
        descriptor: layout::dump_descriptor(id),
        marker: &|m| layout::dump_marker(id, m),
        folder: layout::dump_dir(id),
        objects: descriptor.objects().map(|o| (o.key.as_str(), o.stored_bytes)).collect(),
    };
    seal::seal(storage, &sealed, json).await.map_err(|e| match e {
        seal::SealError::Storage(e) => DumpError::Storage(e),
        seal::SealError::NotWhole(why) => DumpError::TakenForLeftovers { id: id.clone(), why },
    })?;
    if let Err(e) = storage.delete(&layout::dump_marker(id, Marker::Started)).await {
        tracing::warn!("dump {id} is complete, but its .started marker could not be removed: {e}");
    }
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        "dump {id} complete: {} database(s), {} → {} in {secs:.1} s ({}/s)",
        descriptor.databases.len(),
        human(descriptor.raw_bytes),
        human(descriptor.stored_bytes),
        human((descriptor.raw_bytes as f64 / secs.max(0.001)) as u64),
    );
    Ok(descriptor)
}

async fn ask_server(opts: &ConnectOptions, req: &DumpRequest) -> Result<Server, DumpError> {
    let mut client = ReplicationClient::connect(&opts.clone().sql_session()).await?;
    let row = first_row(
        client
            .query(
                "select current_setting('server_version_num'), \
                 (select system_identifier::text from pg_control_system()), \
                 current_setting('wal_segment_size'), current_database()",
            )
            .await?,
    )?;
    let version =
        row[0].parse().map_err(|_| DumpError::Unexpected(format!("server_version_num {}", row[0])))?;
    let wal_segment_size = parse_pg_size(&row[2]).unwrap_or(16 << 20);
    let databases = if req.all_databases {
        client
            .query(
                "select datname from pg_database where datallowconn and not datistemplate order by datname",
            )
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect()
    } else if req.databases.is_empty() {
        vec![row[3].clone()]
    } else {
        req.databases.clone()
    };
    client.close().await;
    Ok(Server { version, system_identifier: row[1].clone(), wal_segment_size, databases })
}

fn first_row(rows: Vec<Vec<Option<String>>>) -> Result<Vec<String>, DumpError> {
    let row = rows.into_iter().next().ok_or(DumpError::Unexpected("the server returned no row".into()))?;
    Ok(row.into_iter().map(Option::unwrap_or_default).collect())
}

#[allow(clippy::too_many_arguments)]
async fn take(
    cfg: &Config,
    storage: &Storage,
    req: &DumpRequest,
    opts: &ConnectOptions,
    server: &Server,
    bin: &Path,
    pg_dump_version: String,
    dump_id: &str,
) -> Result<DumpDescriptor, DumpError> {
    let start_time = UtcTime::now();
    let mut databases = Vec::new();
    for (index, name) in server.databases.iter().enumerate() {
        databases.push(dump_database(cfg, storage, req, opts, bin, dump_id, index, name).await?);
    }
    let globals = if req.all_databases {
        let mut cmd = tokio::process::Command::new(bin.join("pg_dumpall"));
        cmd.args(["--globals-only", "--no-password"]).envs(opts.libpq_env());
        Some(
            store_program(
                cfg,
                storage,
                cmd,
                "pg_dumpall",
                "--globals-only".into(),
                &layout::dump_globals(dump_id),
                req.progress,
                None,
            )
            .await?
            .0,
        )
    } else {
        None
    };
    let raw_bytes = databases.iter().map(|d| d.object.raw_bytes).sum::<u64>()
        + globals.as_ref().map_or(0, |g| g.raw_bytes);
    let stored_bytes = databases.iter().map(|d| d.object.stored_bytes).sum::<u64>()
        + globals.as_ref().map_or(0, |g| g.stored_bytes);
    let descriptor = DumpDescriptor {
        format: DUMP_FORMAT,
        id: dump_id.to_string(),
        label: req.label.clone().unwrap_or_else(|| format!("walvault dump {dump_id}")),
        system_identifier: server.system_identifier.clone(),
        server_version: server.version,
        pg_dump_version,
        start_time,
        stop_time: UtcTime::now(),
        compression: cfg.compression.to_string(),
        key_id: cfg.keys.write_key().map(|k| k.id().to_string()),
        walvault_version: env!("CARGO_PKG_VERSION").to_string(),
        databases,
        globals,
        raw_bytes,
        stored_bytes,
    };
    Ok(descriptor)
}

/// One database: a session exports a snapshot and reads the catalog, pg_dump dumps in that
/// snapshot into `dumps/<id>/<NNN>.dump`, and the rows are counted in pg_dump's output on the
/// way (`rows`, `tables`); a table those counts miss is counted with `count(*)` in the same
/// snapshot once pg_dump is done.
#[allow(clippy::too_many_arguments)]
async fn dump_database(
    cfg: &Config,
    storage: &Storage,
    req: &DumpRequest,
    opts: &ConnectOptions,
    bin: &Path,
    dump_id: &str,
    index: usize,
    name: &str,
) -> Result<DumpedDatabase, DumpError> {
    let mut session_opts = opts.clone().sql_session();
    session_opts.dbname = Some(name.to_string());
    // The session exporting the snapshot reads only the catalogs (it locks none of the user's
    // tables); it stays open until pg_dump is done, which keeps the snapshot importable.
    let mut exporter = ReplicationClient::connect(&session_opts).await?;
    exporter.query("begin isolation level repeatable read read only").await?;
    let snapshot = first_row(exporter.query("select pg_export_snapshot()").await?)?.remove(0);
    if snapshot.is_empty() || !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(DumpError::Unexpected(format!("the server exported a snapshot named {snapshot:?}")));
    }
    let catalog = Catalog::read(&mut exporter).await?;
    tracing::info!("dumping database {name:?} (snapshot {snapshot})");

    let mut cmd = super::child::with_large_writes(&bin.join("pg_dump"));
    cmd.args(["--format=custom", "--compress=0", "--no-password"])
        .arg(format!("--snapshot={snapshot}"))
        .envs(opts.libpq_env())
        // The database by variable, never as -d: a name with `=` would be read as a conninfo.
        .env("PGDATABASE", name);
    let key = layout::dump_database(dump_id, index);
    let what = format!("of database {name:?}");
    let counter = Some(RowCounter::default());
    let (object, counter) =
        store_program(cfg, storage, cmd, "pg_dump", what, &key, req.progress, counter).await?;
    let counted = counter.expect("given back").finish().unwrap_or_else(|why| {
        tracing::warn!("database {name:?}: rows counted with count(*), not in pg_dump's output: {why}");
        Default::default()
    });
    let mut tables = catalog.totals(&counted);
    let missed: Vec<&mut TableRows> = tables.iter_mut().filter(|(_, known)| !known).map(|(t, _)| t).collect();
    if !missed.is_empty() {
        count_rows(&session_opts, &snapshot, missed).await?;
    }
    let tables = tables.into_iter().map(|(t, _)| t).collect();
    let _ = exporter.query("commit").await;
    exporter.close().await;
    Ok(DumpedDatabase { name: name.to_string(), object, tables })
}

/// `count(*)` of each table in `snapshot` into its `rows`, by a session of its own that holds
/// its locks only while it counts (pg_dump is done by then).
async fn count_rows(
    session_opts: &ConnectOptions,
    snapshot: &str,
    tables: Vec<&mut TableRows>,
) -> Result<(), DumpError> {
    let mut session = ReplicationClient::connect(session_opts).await?;
    session.query("begin isolation level repeatable read read only").await?;
    session.query(&format!("set transaction snapshot '{snapshot}'")).await?;
    for t in tables {
        let sql = format!("select count(*) from {}.{}", quote_ident(&t.schema), quote_ident(&t.table));
        let rows = session.query(&sql).await?;
        let count = rows.first().and_then(|r| r.first().cloned().flatten());
        let n = count.as_deref().and_then(|s| s.parse().ok()).ok_or_else(|| {
            DumpError::Unexpected(format!("count(*) of {}.{} returned {count:?}", t.schema, t.table))
        })?;
        t.rows = n;
    }
    session.query("commit").await?;
    session.close().await;
    Ok(())
}

/// Runs `cmd`, streaming its stdout into the object `key` (each chunk fed to `counter` on the
/// way, which is given back); fails (the object aborted) if the program exits non-zero.
#[allow(clippy::too_many_arguments)]
async fn store_program(
    cfg: &Config,
    storage: &Storage,
    mut cmd: tokio::process::Command,
    program: &'static str,
    what: String,
    key: &object_store::path::Path,
    progress: bool,
    mut counter: Option<RowCounter>,
) -> Result<(StoredFile, Option<RowCounter>), DumpError> {
    let local = |what: String| move |source| DumpError::Local { what, source };
    let (stdout, child_stdout) =
        super::pipe::for_stdout().map_err(local(format!("cannot make a pipe for {program}")))?;
    cmd.stdin(Stdio::null()).stdout(child_stdout).stderr(Stdio::piped()).kill_on_drop(true);
    super::child::die_with_parent(&mut cmd);
    let spawned = cmd.spawn();
    // The write end's copy in `cmd` is closed here: the pipe ends when the program's does.
    drop(cmd);
    let mut child = spawned.map_err(local(format!("cannot start {program}")))?;
    let stderr_task = tokio::spawn(super::child::stderr_tail(child.stderr.take().expect("piped")));
    let (tx, rx) = mpsc::channel(stream::INPUT_QUEUE);
    let plan = Plan { keys: Keys::One(key.clone()), part_size: 0, workers: stream::Workers::None };
    let storing = StoreTask::start(cfg, storage, plan, rx);
    let label = progress.then(|| key.to_string());
    let reading = tokio::task::spawn_blocking(move || {
        let mut observe = |chunk: &[u8]| {
            if let Some(c) = counter.as_mut() {
                c.feed(chunk);
            }
        };
        let read = super::pipe::read_to_end(stdout, tx, &mut observe, label.as_deref());
        (read, counter)
    });
    let (read, counter) =
        reading.await.map_err(|e| DumpError::Unexpected(format!("the thread reading {program}: {e}")))?;
    let tx = match read {
        Ok((tx, _)) => tx,
        Err(e) => {
            // The store failed (or reading did): stop the program, which would otherwise wait
            // on a full pipe, and report the store's own error.
            let _ = child.start_kill();
            let _ = child.wait().await;
            let e = match e {
                super::pipe::ReadError::Io(source) => {
                    DumpError::Local { what: format!("reading {program}'s output"), source }
                }
                super::pipe::ReadError::Closed => DumpError::Stream(stream::StreamError::Aborted),
            };
            return Err(match storing.abandon(None).await {
                Some(store_error) => store_error.into(),
                None => e,
            });
        }
    };
    let status = child
        .wait()
        .await
        .map_err(|source| DumpError::Local { what: format!("waiting for {program}"), source });
    let stderr_text = stderr_task.await.unwrap_or_default();
    let status = status?;
    if !status.success() {
        // The input stayed open until the store was told to abandon the object: the object of a
        // failed program is never completed.
        storing.abandon(Some(tx)).await;
        return Err(DumpError::Program { program, what, status: status.to_string(), stderr: stderr_text });
    }
    if !stderr_text.is_empty() {
        tracing::warn!("{program} {what}: {stderr_text}");
    }
    drop(tx);
    let mut parts = storing.finish().await?;
    let part = parts.pop().ok_or(DumpError::Unexpected(format!("{program} {what} produced no object")))?;
    let stored = StoredFile {
        key: part.key,
        raw_bytes: part.raw_bytes,
        stored_bytes: part.stored_bytes,
        sha256: part.sha256,
    };
    Ok((stored, counter))
}

/// A stream being stored by its own task. Dropped unfinished (an error elsewhere, SIGTERM ending
/// the dump), it tells the store to abandon the object and cancels the task, so no object of a
/// dump that did not finish is completed after its cleanup began.
struct StoreTask {
    abort: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<Result<Vec<crate::repo::descriptor::Part>, stream::StreamError>>>,
}

impl StoreTask {
    fn start(cfg: &Config, storage: &Storage, plan: Plan, rx: mpsc::Receiver<bytes::Bytes>) -> StoreTask {
        let abort = Arc::new(AtomicBool::new(false));
        let (cfg, storage, flag) = (cfg.clone(), storage.clone(), abort.clone());
        let task = tokio::spawn(async move { stream::store(&cfg, &storage, plan, rx, flag).await });
        StoreTask { abort, task: Some(task) }
    }

    /// Abandons the object and waits for the task; its error, if it failed on its own. The
    /// input (`tx`), if still open, is closed only after the store is told to abandon.
    async fn abandon(mut self, tx: Option<mpsc::Sender<bytes::Bytes>>) -> Option<stream::StreamError> {
        self.abort.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(tx);
        match self.task.take()?.await {
            Ok(Err(stream::StreamError::Aborted)) | Ok(Ok(_)) | Err(_) => None,
            Ok(Err(e)) => Some(e),
        }
    }

    /// Waits for the object (the input must be closed).
    async fn finish(mut self) -> Result<Vec<crate::repo::descriptor::Part>, DumpError> {
        let task = self.task.take().expect("finished once");
        Ok(task.await.map_err(|e| DumpError::Unexpected(format!("the storing task: {e}")))??)
    }
}

impl Drop for StoreTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.abort.store(true, std::sync::atomic::Ordering::SeqCst);
            task.abort();
        }
    }
}

/// A dump id nothing uses yet, claimed by writing its `.started` marker create-only.
async fn claim_id(storage: &Storage) -> Result<String, DumpError> {
    loop {
        let now = time::OffsetDateTime::now_utc();
        let id = layout::backup_id(now);
        let described = match storage.head(&layout::dump_descriptor(&id)).await {
            Ok(_) => true,
            Err(StorageError::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        let taken = described || !storage.list(&layout::dump_dir(&id)).await?.is_empty();
        if !taken {
            let json = serde_json::json!({ "id": id, "start_time": UtcTime::from_datetime(now) });
            let payload = PutPayload::from(serde_json::to_vec_pretty(&json).expect("marker serialises"));
            match storage.put_if_absent(&layout::dump_marker(&id, Marker::Started), payload).await {
                Ok(()) => return Ok(id),
                Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Removes every object of a failed dump, then its marker (best effort; logged).
async fn remove_dump_objects(storage: &Storage, dump_id: &str) {
    // The descriptor first (normally there is none): from then on nothing looks complete.
    let _ = storage.delete(&layout::dump_descriptor(dump_id)).await;
    let prefix = layout::dump_dir(dump_id);
    match storage.list(&prefix).await {
        Ok(objects) => {
            for o in objects {
                if let Err(e) = storage.delete(&o.location).await {
                    tracing::warn!("could not remove {} of the failed dump: {e}", o.location);
                }
            }
        }
        Err(e) => tracing::warn!("could not list {prefix} to remove the failed dump: {e}"),
    }
    let _ = storage.delete(&layout::dump_marker(dump_id, Marker::Sealing)).await;
    let _ = storage.delete(&layout::dump_marker(dump_id, Marker::Started)).await;
}
