//! `walvault restore`: point-in-time restore from a base backup plus archived WAL. Chooses the
//! backup for the target, prepares empty directories (data directory and tablespaces), streams
//! every part (GET → decoder → tar reader → files) with bounded concurrency, checks each part's
//! trailer SHA-256 against the descriptor, writes `backup_manifest`, the tablespace links and map,
//! the recovery settings and, last, `recovery.signal`. A failure or interruption removes
//! everything it wrote; the repository is only read.
//!
//! - [`target`]: recovery targets, choosing the backup, the `recovery_target_*` settings.
//! - [`plan`]: where each archive goes (data directory, tablespaces), checked before writing.
//! - [`extract`]: tar members to files, refusing anything that leads outside.
//! - [`part`]: one part from GET to files, verified; all parts with bounded concurrency.
//! - [`error`]: why a restore, or one part of it, failed.
//! - [`layout`]: the directories restored into, links, fsync, cleanup.
//! - [`conf`]: quoting for `postgresql.conf` and the shell; `postgresql.auto.conf` edits.

pub mod conf;
pub mod error;
pub mod extract;
pub mod layout;
pub mod part;
pub mod plan;
pub mod target;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tracing::Instrument;

use crate::config::Config;
use crate::format::DecodeError;
use crate::object::download::DownloadError;
use crate::object::read::{ObjectSink, ReadError, read_object};
use crate::repo::descriptor::{DESCRIPTOR_FORMAT, Descriptor};
use crate::repo::inventory::list_backups;
use crate::repo::layout::{self as keys, is_backup_id};
use crate::repo::{Storage, StorageError};
use crate::units::{UtcTime, human};
use error::local;
pub use error::{PartError, RestoreError};
use extract::Stats;
use layout::Root;
use part::{compare, restore_parts};
use plan::{Destination, check_map_paths, destinations, map_rewritten};
pub use target::{RecoveryTarget, TargetAction, TargetError, TargetTimeline};

/// Parts restored at once unless asked otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// What the command line asks of `restore`.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    /// The data directory to restore into (empty or absent).
    pub target_dir: PathBuf,
    /// A backup id; `None` or `latest` chooses one for the target.
    pub backup: Option<String>,
    /// Where recovery stops (`None`: the end of the archive).
    pub target: Option<RecoveryTarget>,
    /// What happens at the target.
    pub action: Option<TargetAction>,
    /// Which timeline recovery follows.
    pub timeline: Option<TargetTimeline>,
    /// Tablespaces restored somewhere else than their original location: OID → directory.
    pub tablespace_map: Vec<(u32, PathBuf)>,
    /// Parts restored at once.
    pub concurrency: usize,
    /// fsync what was written before finishing.
    pub sync: bool,
    /// The executable `restore_command` runs (`<exe> wal-fetch …`).
    pub fetch_exe: PathBuf,
    /// The configuration arguments `restore_command` passes to `wal-fetch` (absolute paths).
    pub fetch_args: Vec<OsString>,
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The backup restored.
    pub backup: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Each tablespace's OID and directory.
    pub tablespaces: Vec<(u32, PathBuf)>,
    /// Files, directories and bytes written from the archives.
    pub stats: Stats,
    /// The settings written to `postgresql.auto.conf`.
    pub settings: Vec<(&'static str, String)>,
}

/// Restores a backup as `req` says. On failure (or SIGINT/SIGTERM) everything written is
/// removed and the directories are left as they were found.
pub async fn restore(
    cfg: &Config,
    storage: &Storage,
    req: &RestoreRequest,
) -> Result<Restored, RestoreError> {
    let desc = choose_backup(storage, req).await?;
    let span = tracing::info_span!("restore", backup = %desc.id);
    restore_backup(cfg, storage, req, desc).instrument(span).await
}

/// [`restore`] once the backup is chosen.
async fn restore_backup(
    cfg: &Config,
    storage: &Storage,
    req: &RestoreRequest,
    desc: Descriptor,
) -> Result<Restored, RestoreError> {
    let started = Instant::now();
    target::check(&desc, req.target.as_ref())?;
    check_key(cfg, &desc)?;
    let dests = destinations(&desc, &req.target_dir, &req.tablespace_map)?;
    check_map_paths(&dests)?;
    let restore_command = conf::restore_command(&req.fetch_exe, &req.fetch_args).ok_or_else(|| {
        RestoreError::Usage("the walvault executable's path or a configuration path is not UTF-8".into())
    })?;
    let mut settings = vec![("restore_command", restore_command)];
    settings.extend(target::settings(req.target.as_ref(), req.action, req.timeline));
    let mut roots: Vec<Root> = Vec::new();
    for d in &dests {
        match layout::prepare(&d.dir) {
            Ok(r) => roots.push(r),
            Err(source) => {
                roots.iter().rev().for_each(layout::remove);
                let what = match d.oid {
                    None => "the target directory".to_string(),
                    Some(oid) => format!("tablespace {oid}'s directory"),
                };
                return Err(RestoreError::Directory { what, source });
            }
        }
    }
    tracing::info!(
        "restoring backup {} (taken {} to {}, WAL {} to {}, {} parts) into {}",
        desc.id,
        desc.start_time,
        desc.stop_time,
        desc.start_lsn,
        desc.stop_lsn,
        desc.archives.iter().map(|a| a.parts.len()).sum::<usize>(),
        dests[0].dir.display()
    );
    let abort = Arc::new(AtomicBool::new(false));
    let run = fill(cfg, storage, req, &desc, &dests, settings, abort.clone());
    tokio::pin!(run);
    let outcome = tokio::select! {
        r = &mut run => r,
        _ = crate::shutdown::signal() => {
            tracing::warn!("interrupted: stopping and removing what was restored");
            abort.store(true, Ordering::Relaxed);
            let _ = run.await;
            Err(RestoreError::Interrupted)
        }
    };
    match outcome {
        Ok(restored) => {
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                "restored backup {} into {}: {} files, {} in {secs:.1} s; start the server to recover{}",
                desc.id,
                restored.data_dir.display(),
                restored.stats.files,
                human(restored.stats.bytes),
                match &req.target {
                    Some(t) => format!(" to {t}"),
                    None => " to the end of the archive".to_string(),
                }
            );
            Ok(restored)
        }
        Err(e) => {
            roots.iter().rev().for_each(layout::remove);
            Err(e)
        }
    }
}

/// The backup `req` names, or the one chosen for its target.
async fn choose_backup(storage: &Storage, req: &RestoreRequest) -> Result<Descriptor, RestoreError> {
    let desc = match req.backup.as_deref() {
        Some(id) if id != "latest" => {
            if !is_backup_id(id) {
                return Err(RestoreError::Usage(format!(
                    "--backup {id:?} is not a backup id (like 20261123T104501Z) or `latest`"
                )));
            }
            let key = keys::descriptor(id);
            let bytes = match storage.get_bytes(&key).await {
                Err(StorageError::NotFound { .. }) => return Err(RestoreError::UnknownBackup(id.into())),
                r => r?,
            };
            serde_json::from_slice::<Descriptor>(&bytes)
                .map_err(|e| RestoreError::Descriptor { key: key.to_string(), message: e.to_string() })?
        }
        Some(_) => target::choose(&list_backups(storage).await?, None)?.clone(),
        None => target::choose(&list_backups(storage).await?, req.target.as_ref())?.clone(),
    };
    let key = keys::descriptor(&desc.id).to_string();
    let bad = |message: String| RestoreError::Descriptor { key: key.clone(), message };
    if desc.format != DESCRIPTOR_FORMAT {
        return Err(bad(format!(
            "descriptor format {} is not the one this walvault reads ({DESCRIPTOR_FORMAT}); use a matching walvault",
            desc.format
        )));
    }
    match desc.archives.first() {
        Some(a) if a.tablespace_oid.is_none() && a.name == "base.tar" => {}
        _ => return Err(bad("its first archive is not base.tar".into())),
    }
    if desc.archives.iter().any(|a| a.parts.is_empty()) {
        return Err(bad("an archive has no parts".into()));
    }
    Ok(desc)
}

/// Refuses early when the backup needs a key that is not configured.
fn check_key(cfg: &Config, desc: &Descriptor) -> Result<(), RestoreError> {
    let Some(key_id) = &desc.key_id else { return Ok(()) };
    let ids: Vec<String> = cfg.keys.ids().iter().map(|k| k.to_string()).collect();
    if ids.iter().any(|i| i == key_id) {
        return Ok(());
    }
    Err(RestoreError::Key {
        backup: desc.id.clone(),
        key_id: key_id.clone(),
        configured: if ids.is_empty() { "none".into() } else { ids.join(", ") },
    })
}

/// Everything that writes, in order; the caller removes it all on failure.
async fn fill(
    cfg: &Config,
    storage: &Storage,
    req: &RestoreRequest,
    desc: &Descriptor,
    dests: &[Destination],
    settings: Vec<(&'static str, String)>,
    abort: Arc<AtomicBool>,
) -> Result<Restored, RestoreError> {
    let data = dests[0].dir.clone();
    // The manifest first: small, and it proves the key and the credentials before the big reads.
    restore_manifest(cfg, storage, desc, &data.join("backup_manifest")).await?;
    let stats = restore_parts(cfg, storage, desc, dests, req.concurrency.max(1), &abort).await?;
    let tablespaces = dests.iter().filter_map(|d| Some((d.oid?, d.dir.clone()))).collect();
    let (dests, id, sync) = (dests.to_vec(), desc.id.clone(), req.sync);
    let written = settings.clone();
    tokio::task::spawn_blocking(move || finish_dir(&dests[0].dir, &dests, &id, &written, sync))
        .await
        .map_err(|e| RestoreError::Local {
            path: data.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(Restored { backup: desc.id.clone(), data_dir: data, tablespaces, stats, settings })
}

/// Links, map, configuration, sync, and `recovery.signal` last.
fn finish_dir(
    data: &Path,
    dests: &[Destination],
    backup: &str,
    settings: &[(&'static str, String)],
    sync: bool,
) -> Result<(), RestoreError> {
    let mut map = Vec::new();
    for d in dests.iter().filter(|d| d.oid.is_some()) {
        let oid = d.oid.expect("filtered");
        layout::link_tablespace(data, oid, &d.dir).map_err(local(&data.join("pg_tblspc")))?;
        let text = conf::path_text(&d.dir).ok_or_else(|| {
            RestoreError::Usage(format!("tablespace {oid}'s directory {} is not UTF-8", d.dir.display()))
        })?;
        map.push((oid, text.to_string()));
    }
    let map_file = data.join("tablespace_map");
    if !map.is_empty() && (map_rewritten(dests) || !map_file.exists()) {
        // PostgreSQL recreates pg_tblspc/<oid> from this file at startup; it must name the
        // directories the tablespaces were restored to.
        layout::write_file(&map_file, layout::tablespace_map(&map).as_bytes()).map_err(local(&map_file))?;
        tracing::info!("wrote tablespace_map for the new tablespace locations");
    }
    let standby = data.join("standby.signal");
    if standby.exists() {
        // A backup taken from a standby: restore it as a point-in-time recovery, not a standby.
        std::fs::remove_file(&standby).map_err(local(&standby))?;
    }
    let auto = data.join("postgresql.auto.conf");
    let existing = match std::fs::read(&auto) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(local(&auto)(e)),
    };
    let note =
        format!("recovery settings written by walvault restore of backup {backup} at {}", UtcTime::now());
    let edited = conf::edit_auto_conf(&existing, &note, settings);
    layout::write_file(&auto, &edited).map_err(local(&auto))?;
    if sync {
        for d in dests {
            layout::sync_tree(&d.dir).map_err(local(&d.dir))?;
        }
    }
    let signal = data.join("recovery.signal");
    layout::write_file(&signal, b"").map_err(local(&signal))?;
    layout::sync_dir(data).map_err(local(data))?;
    Ok(())
}

/// Writes the backup manifest, verified against the descriptor.
async fn restore_manifest(
    cfg: &Config,
    storage: &Storage,
    desc: &Descriptor,
    path: &Path,
) -> Result<(), RestoreError> {
    let key = object_store::path::Path::from(desc.manifest.key.as_str());
    let err = |source| RestoreError::Manifest { key: desc.manifest.key.clone(), source };
    let mut sink = FileSink(layout_file(path)?);
    let trailer = match read_object(storage, &key, &cfg.keys, &mut sink).await {
        Ok(t) => t,
        Err(ReadError::Storage(e)) => return Err(err(PartError::Download(DownloadError::Storage(e)))),
        Err(ReadError::Decode { source: DecodeError::Sink(e), .. }) => return Err(local(path)(e)),
        Err(ReadError::Decode { source, .. }) => return Err(err(PartError::Decode(source))),
    };
    compare(&trailer, &desc.manifest.sha256, desc.manifest.raw_bytes).map_err(err)?;
    sink.0.sync_all().map_err(local(path))
}

fn layout_file(path: &Path) -> Result<std::fs::File, RestoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(local(path))
}

struct FileSink(std::fs::File);

impl ObjectSink for FileSink {
    fn reset(&mut self) -> std::io::Result<()> {
        self.0.set_len(0)?;
        self.0.rewind().map(|_| ())
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }
}
