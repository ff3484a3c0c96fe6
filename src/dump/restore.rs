//! `walvault dump-restore` and `walvault dump-fetch`: a dump's object decoded and verified on
//! its way into `pg_restore`, or into a plain custom-format file.
//!
//! What reaches pg_restore: streamed (one job, no `--create`), the restore runs as one
//! transaction (`--single-transaction`) and its input is closed only after the object's
//! SHA-256 and length matched the descriptor: on a mismatch pg_restore is killed before it sees
//! the end of its input, so the transaction never commits and nothing is restored. With
//! `--jobs N` > 1 or `--create` (which pg_restore runs outside one transaction) the object is
//! first written to a temporary file, verified, then restored from it; the file is removed
//! afterwards, also on failure. `dump-fetch` writes `FILE.partial`, verifies, fsyncs and renames:
//! FILE exists only complete and verified.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::error::DumpError;
use crate::config::Config;
use crate::format::Decoder;
use crate::object::download::download;
use crate::replication::ConnectOptions;
use crate::repo::Storage;
use crate::repo::descriptor::StoredFile;
use crate::repo::dumps::{self, DumpDescriptor};

/// What to restore, and where.
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    /// The dump id, or `latest`.
    pub id: String,
    /// The database of the dump (needed when it holds several).
    pub database: Option<String>,
    /// Where to connect (libpq's variables fill in the rest); the database restored into, or
    /// with `create` the one to connect to first.
    pub conninfo: Option<String>,
    /// `pg_restore --create`.
    pub create: bool,
    /// `pg_restore --clean --if-exists`.
    pub clean: bool,
    /// `pg_restore --jobs`.
    pub jobs: u16,
    /// PostgreSQL's programs.
    pub pg_bin: Option<PathBuf>,
    /// Where the temporary file goes when one is needed.
    pub work_dir: PathBuf,
}

/// The dump `id` (or `latest`), or the one line saying there is none.
pub async fn find(storage: &Storage, id: &str) -> Result<DumpDescriptor, DumpError> {
    dumps::find(storage, id).await?.ok_or_else(|| {
        DumpError::UnknownDump(if id == "latest" {
            format!("repository {} has no dumps: take one with walvault dump", storage.url())
        } else {
            format!("no dump {id} in repository {} (see walvault list)", storage.url())
        })
    })
}

/// The database of `d` that `name` names, or its only one.
fn pick<'a>(
    d: &'a DumpDescriptor,
    name: Option<&str>,
) -> Result<&'a crate::repo::dumps::DumpedDatabase, DumpError> {
    match name {
        Some(n) => d.database(n).ok_or_else(|| {
            let names: Vec<&str> = d.databases.iter().map(|x| x.name.as_str()).collect();
            DumpError::Usage(format!("dump {} has no database {n:?}; it has {names:?}", d.id))
        }),
        None if d.databases.len() == 1 => Ok(&d.databases[0]),
        None => {
            let names: Vec<&str> = d.databases.iter().map(|x| x.name.as_str()).collect();
            Err(DumpError::Usage(format!("dump {} holds {names:?}: choose one with --database", d.id)))
        }
    }
}

/// Streams the object `file` into `out`, decoded; fails unless it decodes and its length and
/// SHA-256 equal the descriptor's. `out` has received every byte when this returns `Ok`; on any
/// failure it never received the object's last bytes (and, with a key, no tampered byte).
pub async fn decode_into(
    cfg: &Config,
    storage: &Storage,
    file: &StoredFile,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<(), DumpError> {
    let key = object_store::path::Path::from(file.key.as_str());
    let (tx, rx) = mpsc::channel(8);
    let abort = AtomicBool::new(false);
    let fetch = async {
        let r = download(storage, &key, Some(file.stored_bytes), &abort, &tx).await;
        drop(tx);
        r
    };
    let decode = async {
        // Owned here: when decoding stops early the receiver goes with it, and the download,
        // told to stop as well, does not wait on a full channel.
        let mut rx = rx;
        let decoded = decode_stream(cfg, file, &mut rx, out).await;
        if decoded.is_err() {
            abort.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        drop(rx);
        decoded
    };
    let (fetched, decoded) = tokio::join!(fetch, decode);
    decoded?;
    fetched?;
    Ok(())
}

/// The decoding half of [`decode_into`]: pieces from `rx` through the decoder into `out`.
async fn decode_stream(
    cfg: &Config,
    file: &StoredFile,
    rx: &mut mpsc::Receiver<bytes::Bytes>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<(), DumpError> {
    {
        let decode_err = |source| DumpError::Decode { key: file.key.clone(), source };
        let mut dec = Decoder::new(&cfg.keys);
        let mut sha = Sha256::new();
        let mut len = 0u64;
        let mut pending = Vec::new();
        // The newest decoded bytes are held back until the next arrive, and the last of them
        // until the whole object is verified: the reader never sees the end of an object that
        // turns out wrong (for pg_restore's one transaction, it never commits).
        let mut held = Vec::new();
        let mut write_failed = None;
        while let Some(piece) = rx.recv().await {
            dec.update(&piece, &mut |b: &[u8]| {
                pending.extend_from_slice(b);
                Ok(())
            })
            .map_err(decode_err)?;
            if !pending.is_empty() {
                sha.update(&pending);
                len += pending.len() as u64;
                if !held.is_empty() && write_failed.is_none() {
                    // A reader that stopped (pg_restore failing on its own) does not stop the
                    // check: whether the object is sound decides which error is reported.
                    write_failed = write(out, &held).await.err();
                }
                held = std::mem::take(&mut pending);
            }
        }
        let trailer = dec
            .finish(&mut |b: &[u8]| {
                pending.extend_from_slice(b);
                Ok(())
            })
            .map_err(decode_err)?;
        sha.update(&pending);
        len += pending.len() as u64;
        let digest = hex::encode(sha.finalize());
        if len != file.raw_bytes || trailer.len != file.raw_bytes {
            return Err(DumpError::Mismatch {
                key: file.key.clone(),
                why: format!("it holds {len} bytes, the descriptor says {}", file.raw_bytes),
            });
        }
        if digest != file.sha256 || hex::encode(trailer.sha256) != file.sha256 {
            return Err(DumpError::Mismatch { key: file.key.clone(), why: "its SHA-256 differs".into() });
        }
        if let Some(e) = write_failed {
            return Err(e);
        }
        write(out, &held).await?;
        write(out, &pending).await?;
        Ok(())
    }
}

async fn write(out: &mut (dyn AsyncWrite + Unpin + Send), bytes: &[u8]) -> Result<(), DumpError> {
    out.write_all(bytes).await.map_err(|source| DumpError::Local { what: "writing the dump".into(), source })
}

/// `walvault dump-fetch`: the database's custom-format file at `output` (or the globals' SQL),
/// verified.
pub async fn fetch(
    cfg: &Config,
    storage: &Storage,
    id: &str,
    database: Option<&str>,
    globals: bool,
    output: &Path,
) -> Result<(), DumpError> {
    let d = find(storage, id).await?;
    let file = if globals {
        d.globals.clone().ok_or_else(|| {
            DumpError::Usage(format!("dump {} has no globals (it was not taken with --all-databases)", d.id))
        })?
    } else {
        pick(&d, database)?.object.clone()
    };
    if output.exists() {
        return Err(DumpError::Usage(format!("{} exists: give a new file", output.display())));
    }
    let partial = partial_path(output);
    let local =
        |what: &str, p: &Path, source| DumpError::Local { what: format!("{what} {}", p.display()), source };
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .await
        .map_err(|e| local("cannot create", &partial, e))?;
    // From here the partial file is ours, and removed on any failure.
    let result = async {
        decode_into(cfg, storage, &file, &mut f).await?;
        f.sync_all().await.map_err(|e| local("cannot sync", &partial, e))?;
        drop(f);
        // Published without replacing: a link fails if FILE appeared meanwhile.
        std::fs::hard_link(&partial, output).map_err(|e| local("cannot create", output, e))?;
        std::fs::remove_file(&partial).map_err(|e| local("cannot remove", &partial, e))?;
        if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| local("cannot sync", dir, e))?;
        }
        Ok(())
    }
    .await;
    match &result {
        Err(_) => {
            let _ = std::fs::remove_file(&partial);
        }
        Ok(()) => {
            tracing::info!(
                "wrote {} ({} bytes, verified) from dump {}",
                output.display(),
                file.raw_bytes,
                d.id
            )
        }
    }
    result
}

fn partial_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

/// `dbname='…'` for pg_restore's `-d` (the other settings come from the environment).
fn dbname_conninfo(name: &str) -> String {
    format!("dbname='{}'", name.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `walvault dump-restore`.
pub async fn restore(cfg: &Config, storage: &Storage, req: &RestoreRequest) -> Result<(), DumpError> {
    let d = find(storage, &req.id).await?;
    let db = pick(&d, req.database.as_deref())?;
    let opts = ConnectOptions::from_env_and_conninfo(req.conninfo.as_deref())?;
    // pg_restore reads what the same or a newer pg_dump wrote: the dump's own major version.
    let major = crate::pgbin::major_of_version_line(&d.pg_dump_version).unwrap_or(d.server_version / 10_000);
    let bin = crate::pgbin::find_at_least(req.pg_bin.as_deref(), major, &["pg_restore"])
        .map_err(DumpError::NoProgram)?;
    let target =
        opts.dbname.clone().unwrap_or_else(|| if req.create { "postgres".into() } else { opts.user.clone() });
    let mut cmd = tokio::process::Command::new(bin.join("pg_restore"));
    cmd.arg("--no-password").arg("-d").arg(dbname_conninfo(&target)).envs(opts.libpq_env());
    if req.create {
        cmd.arg("--create");
    }
    if req.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    super::child::die_with_parent(&mut cmd);
    let what = format!("of database {:?} from dump {}", db.name, d.id);
    if req.jobs <= 1 && !req.create {
        tracing::info!(
            "restoring database {:?} of dump {} into {target:?} (streamed, one transaction)",
            db.name,
            d.id
        );
        cmd.arg("--single-transaction").arg("--exit-on-error").stdin(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|source| DumpError::Local { what: "cannot start pg_restore".into(), source })?;
        let mut stdin = child.stdin.take().expect("piped");
        let stderr = collect(child.stderr.take().expect("piped"));
        let fed = tokio::select! {
            r = decode_into(cfg, storage, &db.object, &mut stdin) => r,
            _ = crate::shutdown::signal() => Err(DumpError::Interrupted),
        };
        match fed {
            Ok(()) => {
                drop(stdin);
                finish(child, stderr, what).await
            }
            // The object is sound but pg_restore stopped reading: its own failure says why.
            Err(e @ DumpError::Local { .. }) => {
                drop(stdin);
                finish(child, stderr, what).await.and(Err(e))
            }
            Err(e) => {
                // Killed before its input ends: the one transaction never commits.
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(e)
            }
        }
    } else {
        let tmp = tempfile::Builder::new()
            .prefix("walvault-dump-")
            .suffix(".dump")
            .tempfile_in(&req.work_dir)
            .map_err(|source| DumpError::Local {
                what: format!("cannot create a file in {}", req.work_dir.display()),
                source,
            })?;
        tracing::info!(
            "fetching database {:?} of dump {} into {} (pg_restore --jobs and --create need a file)",
            db.name,
            d.id,
            tmp.path().display()
        );
        let mut f =
            tokio::fs::File::from_std(tmp.reopen().map_err(|source| DumpError::Local {
                what: "cannot open the temporary file".into(),
                source,
            })?);
        tokio::select! {
            r = decode_into(cfg, storage, &db.object, &mut f) => r?,
            _ = crate::shutdown::signal() => return Err(DumpError::Interrupted),
        }
        f.flush()
            .await
            .map_err(|source| DumpError::Local { what: "writing the temporary file".into(), source })?;
        drop(f);
        cmd.arg(format!("--jobs={}", req.jobs.max(1))).arg(tmp.path()).stdin(Stdio::null());
        tracing::info!("restoring into {target:?} with {} job(s)", req.jobs.max(1));
        let mut child = cmd
            .spawn()
            .map_err(|source| DumpError::Local { what: "cannot start pg_restore".into(), source })?;
        let stderr = collect(child.stderr.take().expect("piped"));
        let done = tokio::select! {
            r = finish_ref(&mut child) => r,
            _ = crate::shutdown::signal() => { let _ = child.start_kill(); return Err(DumpError::Interrupted) }
        };
        let status = done?;
        // `tmp` is removed when dropped, whatever happened.
        check_status(status, stderr.await.unwrap_or_default(), what)
    }
}

fn collect(stderr: tokio::process::ChildStderr) -> tokio::task::JoinHandle<String> {
    tokio::spawn(super::child::stderr_tail(stderr))
}

async fn finish_ref(child: &mut tokio::process::Child) -> Result<std::process::ExitStatus, DumpError> {
    child.wait().await.map_err(|source| DumpError::Local { what: "waiting for pg_restore".into(), source })
}

async fn finish(
    mut child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
    what: String,
) -> Result<(), DumpError> {
    let status = finish_ref(&mut child).await?;
    check_status(status, stderr.await.unwrap_or_default(), what)
}

fn check_status(status: std::process::ExitStatus, stderr: String, what: String) -> Result<(), DumpError> {
    if status.success() {
        if !stderr.is_empty() {
            tracing::warn!("pg_restore {what}: {stderr}");
        }
        tracing::info!("restored {what}");
        Ok(())
    } else {
        Err(DumpError::Program { program: "pg_restore", what, status: status.to_string(), stderr })
    }
}
