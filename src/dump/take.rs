//! `walvault dump`: each database through `pg_dump -Fc` (its own compression off) streamed into
//! the compress / encrypt pipeline and stored as one object, never staged on disk; with
//! `--all-databases` also `pg_dumpall --globals-only`. Every pg_dump runs in a snapshot exported
//! by a session of walvault's, which counts each table's rows in that same snapshot: the counts
//! a restore must give back, recorded in the descriptor.
//!
//! Crash story: the `.started` marker is written first (create-only: it claims the id), then
//! each database's object, then the globals, then the descriptor (`dumps/<id>.json`), last; then
//! the marker is removed. A dump exists only once its descriptor does. On any failure (pg_dump
//! exiting non-zero, the connection lost, the repository failing, SIGINT/SIGTERM) everything
//! written for the dump is removed; a kill -9 leaves objects and the marker but no descriptor,
//! which `list` shows as a dump without descriptor and `delete` removes as a leftover.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bytes::BytesMut;
use object_store::PutPayload;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::error::DumpError;
use crate::config::Config;
use crate::object::stream::{self, Keys, Plan};
use crate::replication::{ConnectOptions, ReplicationClient, ReplicationError};
use crate::repo::descriptor::StoredFile;
use crate::repo::dumps::{DUMP_FORMAT, DumpDescriptor, DumpedDatabase, TableRows};
use crate::repo::identity::{self, Identity, REPO_FORMAT};
use crate::repo::layout::{self, Marker};
use crate::repo::{Storage, StorageError};
use crate::units::{UtcTime, human, parse_pg_size};

/// Bytes read from pg_dump at a time.
const READ_CHUNK: usize = 256 * 1024;
/// The last bytes of a program's stderr kept for the error message.
const STDERR_TAIL: usize = 2000;

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
    let _span = tracing::info_span!("dump", id = %dump_id).entered();
    let run = take(cfg, storage, req, &opts, &server, &bin, pg_dump_version, &dump_id);
    let outcome = tokio::select! {
        r = run => r,
        _ = crate::shutdown::signal() => Err(DumpError::Interrupted),
    };
    if outcome.is_err() {
        remove_dump_objects(storage, &dump_id).await;
    }
    outcome
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
        row[0].parse().map_err(|_| DumpError::Usage(format!("unexpected server_version_num {}", row[0])))?;
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
    let row = rows.into_iter().next().ok_or(DumpError::Usage("the server returned no row".into()))?;
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
    let started = Instant::now();
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
            )
            .await?,
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
    let mut json = serde_json::to_vec_pretty(&descriptor).expect("descriptor serialises");
    json.push(b'\n');
    storage.put_if_absent(&layout::dump_descriptor(dump_id), PutPayload::from(json)).await?;
    if let Err(e) = storage.delete(&layout::dump_marker(dump_id, Marker::Started)).await {
        tracing::warn!("dump {dump_id} is complete, but its .started marker could not be removed: {e}");
    }
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        "dump {dump_id} complete: {} database(s), {} → {} in {secs:.1} s ({}/s)",
        descriptor.databases.len(),
        human(raw_bytes),
        human(stored_bytes),
        human((raw_bytes as f64 / secs.max(0.001)) as u64),
    );
    Ok(descriptor)
}

/// One database: a session exports a snapshot, pg_dump dumps in it while the session counts
/// every table's rows in it, and the dump streams into `dumps/<id>/<NNN>.dump`.
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
    let mut session = ReplicationClient::connect(&session_opts).await?;
    session.query("begin isolation level repeatable read read only").await?;
    let snapshot = first_row(session.query("select pg_export_snapshot()").await?)?.remove(0);
    tracing::info!("dumping database {name:?} (snapshot {snapshot})");

    let mut cmd = tokio::process::Command::new(bin.join("pg_dump"));
    cmd.args(["--format=custom", "--compress=0", "--no-password"])
        .arg(format!("--snapshot={snapshot}"))
        .envs(opts.libpq_env())
        // The database by variable, never as -d: a name with `=` would be read as a conninfo.
        .env("PGDATABASE", name);
    let key = layout::dump_database(dump_id, index);
    let what = format!("of database {name:?}");
    let dumping = store_program(cfg, storage, cmd, "pg_dump", what, &key, req.progress);
    let counting = count_rows(&mut session);
    let (object, tables) = tokio::join!(dumping, counting);
    let object = object?;
    let tables = tables?;
    let _ = session.query("commit").await;
    session.close().await;
    Ok(DumpedDatabase { name: name.to_string(), object, tables })
}

/// Every table's row count in the session's snapshot (the tables pg_dump dumps data of:
/// ordinary and partitioned tables outside the system schemas).
async fn count_rows(session: &mut ReplicationClient) -> Result<Vec<TableRows>, ReplicationError> {
    let tables = session
        .query(
            "select n.nspname, c.relname, format('select count(*) from %I.%I', n.nspname, c.relname) \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p') and c.relpersistence <> 't' \
             and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' \
             order by 1, 2",
        )
        .await?;
    let mut out = Vec::with_capacity(tables.len());
    for row in tables {
        let [Some(schema), Some(table), Some(sql)] = <[Option<String>; 3]>::try_from(row).unwrap_or_default()
        else {
            continue;
        };
        let rows = session.query(&sql).await?;
        let n =
            rows.first().and_then(|r| r.first().cloned().flatten()).and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push(TableRows { schema, table, rows: n });
    }
    Ok(out)
}

/// Runs `cmd`, streaming its stdout into the object `key`; fails (the object aborted) if the
/// program exits non-zero.
async fn store_program(
    cfg: &Config,
    storage: &Storage,
    mut cmd: tokio::process::Command,
    program: &'static str,
    what: String,
    key: &object_store::path::Path,
    progress: bool,
) -> Result<StoredFile, DumpError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child =
        cmd.spawn().map_err(|source| DumpError::Local { what: format!("cannot start {program}"), source })?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let stderr_task = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        let text = String::from_utf8_lossy(&all).into_owned();
        let start = text.len().saturating_sub(STDERR_TAIL);
        text[text.floor_char_boundary(start)..].trim().to_string()
    });
    let (tx, rx) = mpsc::channel(stream::INPUT_QUEUE);
    let abort = Arc::new(AtomicBool::new(false));
    let plan = Plan { keys: Keys::One(key.clone()), part_size: 0 };
    let storing = {
        let (cfg, storage, abort) = (cfg.clone(), storage.clone(), abort.clone());
        tokio::spawn(async move { stream::store(&cfg, &storage, plan, rx, abort).await })
    };
    let fed = feed(stdout, tx, progress, key).await;
    if let Err(e) = fed {
        // The store failed (or reading did): stop the program, which would otherwise wait on a
        // full pipe, and report the store's own error.
        let _ = child.start_kill();
        let _ = child.wait().await;
        abort.store(true, std::sync::atomic::Ordering::SeqCst);
        return Err(match storing.await {
            Ok(Err(store_error)) => store_error.into(),
            _ => e,
        });
    }
    let status = child
        .wait()
        .await
        .map_err(|source| DumpError::Local { what: format!("waiting for {program}"), source });
    let stderr_text = stderr_task.await.unwrap_or_default();
    let status = status?;
    if !status.success() {
        abort.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = storing.await;
        return Err(DumpError::Program { program, what, status: status.to_string(), stderr: stderr_text });
    }
    if !stderr_text.is_empty() {
        tracing::warn!("{program} {what}: {stderr_text}");
    }
    let mut parts = storing.await.map_err(|e| DumpError::Local {
        what: "the storing task".into(),
        source: std::io::Error::other(e.to_string()),
    })??;
    let part = parts.pop().ok_or(DumpError::Usage(format!("{program} {what} produced no object")))?;
    Ok(StoredFile {
        key: part.key,
        raw_bytes: part.raw_bytes,
        stored_bytes: part.stored_bytes,
        sha256: part.sha256,
    })
}

/// Reads `from` in chunks into `tx` until it ends (then closes `tx`).
async fn feed(
    mut from: impl AsyncRead + Unpin,
    tx: mpsc::Sender<bytes::Bytes>,
    progress: bool,
    key: &object_store::path::Path,
) -> Result<(), DumpError> {
    let started = Instant::now();
    let mut last = Instant::now();
    let mut total = 0u64;
    loop {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let n = from
            .read_buf(&mut buf)
            .await
            .map_err(|source| DumpError::Local { what: "reading pg_dump's output".into(), source })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if tx.send(buf.freeze()).await.is_err() {
            // The store stopped: its own error says why.
            return Err(DumpError::Stream(stream::StreamError::Aborted));
        }
        if progress && last.elapsed().as_millis() >= 500 {
            last = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprint!("\r\x1b[K{key}: {} at {}/s", human(total), human((total as f64 / secs) as u64));
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    Ok(())
}

/// A dump id nothing uses yet, claimed by writing its `.started` marker create-only.
async fn claim_id(storage: &Storage) -> Result<String, DumpError> {
    loop {
        let now = time::OffsetDateTime::now_utc();
        let id = layout::backup_id(now);
        let taken = storage.head(&layout::dump_descriptor(&id)).await.is_ok()
            || !storage.list(&layout::dump_dir(&id)).await?.is_empty();
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
    let _ = storage.delete(&layout::dump_descriptor(dump_id)).await;
    let _ = storage.delete(&layout::dump_marker(dump_id, Marker::Started)).await;
}
