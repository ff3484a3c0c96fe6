//! `walvault base-backup`: takes a base backup over the replication protocol and streams every
//! archive through the compress/encrypt pipeline into the repository as parts, then PostgreSQL's
//! `backup_manifest`, then the descriptor, last. Any failure removes what was written.
//!
//! - [`descriptor`]: the backup descriptor (`backups/<id>.json`) and backup ids.
//! - [`tarsplit`]: tar member boundaries, so parts hold whole members.
//! - [`parts`]: one stream into encoded, uploaded parts.
//! - [`progress`]: the progress line on a terminal.

pub mod descriptor;
pub mod parts;
pub mod progress;
pub mod tarsplit;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use object_store::PutPayload;
use object_store::path::Path;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::identity::{self, Identity, IdentityError, REPO_FORMAT};
use crate::replication::{
    BackupEvent, BaseBackupOptions, ConnectOptions, ReplicationClient, ReplicationError,
};
use crate::storage::{Storage, StorageError};
use descriptor::{Archive, DESCRIPTOR_FORMAT, Descriptor, Part, StoredFile, backup_id};

/// What the command line asks of `base-backup`.
#[derive(Clone, Debug, Default)]
pub struct BackupRequest {
    /// libpq connection string or URI (`-d`); `PG*` variables fill in the rest.
    pub conninfo: Option<String>,
    /// The label; defaults to `walvault <id>`.
    pub label: Option<String>,
    /// Ask for an immediate checkpoint.
    pub fast_checkpoint: bool,
    /// Show progress on stderr.
    pub progress: bool,
}

/// Why a base backup failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The server connection or the backup stream failed.
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The repository identity could not be read or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The server is not the cluster the repository belongs to.
    #[error(
        "the server has system identifier {server}, but repository {repo} belongs to system identifier {repo_id}: \
         give this cluster its own repo"
    )]
    OtherCluster {
        /// The server's system identifier.
        server: u64,
        /// The repository's.
        repo_id: String,
        /// The repository URL.
        repo: String,
    },
    /// The server sent something that is not a tar stream.
    #[error("the server's archive is not a valid tar stream: {0}")]
    Tar(#[from] tarsplit::TarError),
    /// Encoding failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The stream ended in an order the protocol does not allow.
    #[error("unexpected {0} in the backup stream")]
    Unexpected(&'static str),
    /// A stage stopped because another failed.
    #[error("stopped because another part of the backup failed")]
    Aborted,
    /// The backup was interrupted (SIGINT or SIGTERM).
    #[error("interrupted; nothing of this backup was kept")]
    Interrupted,
}

/// The storing tasks of one backup, so a failed or interrupted backup can stop them and wait
/// for them before removing what they wrote.
#[derive(Default, Clone)]
struct Tasks {
    inner: Arc<Mutex<Vec<Abortable>>>,
}

/// A spawned storing task.
type StoreTask = JoinHandle<Result<Vec<Part>, BackupError>>;
/// A storing task and the flag that tells it to stop.
type Abortable = (Arc<AtomicBool>, StoreTask);

impl Tasks {
    /// Tells every task to stop (aborting its upload) and waits for all of them.
    async fn abort_all(&self) {
        let tasks = std::mem::take(&mut *self.inner.lock().expect("not poisoned"));
        for (abort, _) in &tasks {
            abort.store(true, Ordering::SeqCst);
        }
        for (_, task) in tasks {
            let _ = task.await;
        }
    }
}

/// One stream being stored.
struct Storing {
    tx: mpsc::Sender<Bytes>,
    abort: Arc<AtomicBool>,
    task: Option<StoreTask>,
    tasks: Tasks,
}

impl Storing {
    fn start(cfg: &Config, storage: &Storage, plan: parts::Plan, tasks: &Tasks) -> Storing {
        let (tx, rx) = mpsc::channel(parts::INPUT_QUEUE);
        let (cfg, storage) = (cfg.clone(), storage.clone());
        let abort = Arc::new(AtomicBool::new(false));
        let flag = abort.clone();
        let task = tokio::spawn(async move { parts::store(&cfg, &storage, plan, rx, flag).await });
        Storing { tx, abort, task: Some(task), tasks: tasks.clone() }
    }

    async fn send(&mut self, bytes: Bytes) -> Result<(), BackupError> {
        if self.tx.send(bytes).await.is_err() {
            // The storing task ended early: its error says why.
            return Err(self.finish_err().await);
        }
        Ok(())
    }

    async fn finish_err(&mut self) -> BackupError {
        let Some(task) = self.task.take() else { return BackupError::Aborted };
        match task.await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => BackupError::Aborted,
            Err(e) => BackupError::Encode(e.to_string()),
        }
    }

    /// Ends the stream normally and waits for its parts.
    async fn finish(mut self) -> Result<Vec<Part>, BackupError> {
        let task = self.task.take().expect("finished once");
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        task.await.map_err(|e| BackupError::Encode(e.to_string()))?
    }
}

impl Drop for Storing {
    /// A stream dropped before [`Storing::finish`] (the backup failed or was interrupted) must
    /// not complete its last part: it is told to abort, and the backup waits for it (see
    /// [`Tasks::abort_all`]) before removing what was written.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.abort.store(true, Ordering::SeqCst);
            self.tasks.inner.lock().expect("not poisoned").push((self.abort.clone(), task));
        }
    }
}

/// Takes a base backup into `storage`; returns its descriptor. On failure or interruption every
/// object written for it is removed.
pub async fn base_backup(
    cfg: &Config,
    storage: &Storage,
    req: &BackupRequest,
) -> Result<Descriptor, BackupError> {
    let conn = ConnectOptions::from_env_and_conninfo(req.conninfo.as_deref())?;
    let mut client = ReplicationClient::connect(&conn).await?;
    let system = client.identify_system().await?;
    let version = client.server_version_num();
    let seg_size = parse_pg_size(&client.show("wal_segment_size").await?)
        .ok_or(BackupError::Unexpected("wal_segment_size value"))?;
    let proposed = Identity {
        format: REPO_FORMAT,
        system_identifier: system.system_id.to_string(),
        pg_version: Some(version / 10_000),
        wal_segment_size: seg_size,
        created: identity::now_rfc3339(),
        created_by: format!("walvault {}", env!("CARGO_PKG_VERSION")),
    };
    let id = identity::ensure(storage, &proposed).await?;
    if id.system_identifier != proposed.system_identifier {
        return Err(BackupError::OtherCluster {
            server: system.system_id,
            repo_id: id.system_identifier,
            repo: storage.url().into(),
        });
    }
    let backup = free_backup_id(storage).await?;
    let _span = tracing::info_span!("base-backup", id = %backup).entered();
    let tasks = Tasks::default();
    let run = take(cfg, storage, req, &mut client, &backup, version, seg_size, system.system_id, &tasks);
    let outcome = tokio::select! {
        r = run => r,
        _ = shutdown_signal() => Err(BackupError::Interrupted),
    };
    if outcome.is_err() {
        tasks.abort_all().await;
        remove_backup_objects(storage, &backup).await;
    }
    outcome
}

/// The part of the backup that writes objects (cleaned up by the caller on failure).
#[allow(clippy::too_many_arguments)]
async fn take(
    cfg: &Config,
    storage: &Storage,
    req: &BackupRequest,
    client: &mut ReplicationClient,
    backup: &str,
    version: u32,
    seg_size: u32,
    system_id: u64,
    tasks: &Tasks,
) -> Result<Descriptor, BackupError> {
    let started = Instant::now();
    let start_time = identity::now_rfc3339();
    let label = req.label.clone().unwrap_or_else(|| format!("walvault {backup}"));
    let opts = BaseBackupOptions {
        label: label.clone(),
        fast_checkpoint: req.fast_checkpoint,
        ..Default::default()
    };
    let mut stream = client.base_backup(&opts).await?;
    let prefix = Descriptor::prefix(backup);
    let mut progress = progress::Progress::new(req.progress);
    let (mut start, mut archives, mut manifest, mut finish) = (None, Vec::new(), None, None);
    let mut tablespaces = Vec::new();
    let mut current: Option<(Archive, Storing)> = None;
    let mut storing_manifest: Option<Storing> = None;
    while let Some(event) = stream.next().await? {
        match event {
            BackupEvent::Started { start_lsn, timeline, tablespaces: ts } => {
                progress.set_total(ts.iter().filter_map(|t| t.size_bytes).sum());
                tracing::info!("backup started at {start_lsn} on timeline {timeline}");
                start = Some((start_lsn, timeline));
                tablespaces = ts;
            }
            BackupEvent::ArchiveStart { name, tablespace_oid } => {
                if current.is_some() {
                    return Err(BackupError::Unexpected("archive start inside an archive"));
                }
                let location = tablespaces
                    .iter()
                    .find(|t| t.oid == tablespace_oid && t.oid.is_some())
                    .and_then(|t| t.location.clone());
                let plan =
                    parts::Plan { key: format!("{prefix}/{name}"), split: true, part_size: cfg.part_size };
                let archive = Archive { name, tablespace_oid, location, parts: Vec::new() };
                current = Some((archive, Storing::start(cfg, storage, plan, tasks)));
            }
            BackupEvent::ArchiveData(bytes) => {
                let (_, s) =
                    current.as_mut().ok_or(BackupError::Unexpected("archive data outside an archive"))?;
                progress.add(bytes.len() as u64);
                s.send(bytes).await?;
            }
            BackupEvent::ArchiveEnd => {
                let (mut archive, s) = current.take().ok_or(BackupError::Unexpected("archive end"))?;
                archive.parts = s.finish().await?;
                archives.push(archive);
            }
            BackupEvent::ManifestStart => {
                let plan =
                    parts::Plan { key: format!("{prefix}/backup_manifest"), split: false, part_size: 0 };
                storing_manifest = Some(Storing::start(cfg, storage, plan, tasks));
            }
            BackupEvent::ManifestData(bytes) => {
                let s = storing_manifest.as_mut().ok_or(BackupError::Unexpected("manifest data"))?;
                s.send(bytes).await?;
            }
            BackupEvent::ManifestEnd => {
                let s = storing_manifest.take().ok_or(BackupError::Unexpected("manifest end"))?;
                let mut p = s.finish().await?;
                let p = p.pop().ok_or(BackupError::Unexpected("empty manifest"))?;
                manifest = Some(StoredFile {
                    key: p.key,
                    raw_bytes: p.raw_bytes,
                    stored_bytes: p.stored_bytes,
                    sha256: p.sha256,
                });
            }
            BackupEvent::Progress { bytes_done } => progress.server_done(bytes_done),
            BackupEvent::Finished { stop_lsn, timeline } => finish = Some((stop_lsn, timeline)),
        }
        progress.maybe_print();
    }
    progress.clear();
    let ((start_lsn, timeline), (stop_lsn, _), manifest) = match (start, finish, manifest) {
        (Some(s), Some(f), Some(m)) => (s, f, m),
        _ => return Err(BackupError::Unexpected("end of stream before the backup finished")),
    };
    // The main data directory first, as restore wants it.
    archives.sort_by_key(|a| a.tablespace_oid.is_some());
    let raw: u64 =
        archives.iter().flat_map(|a| &a.parts).map(|p| p.raw_bytes).sum::<u64>() + manifest.raw_bytes;
    let stored: u64 =
        archives.iter().flat_map(|a| &a.parts).map(|p| p.stored_bytes).sum::<u64>() + manifest.stored_bytes;
    let descriptor = Descriptor {
        format: DESCRIPTOR_FORMAT,
        id: backup.to_string(),
        label,
        system_identifier: system_id.to_string(),
        server_version: version,
        timeline: timeline.get(),
        start_lsn: start_lsn.to_string(),
        stop_lsn: stop_lsn.to_string(),
        start_time,
        stop_time: identity::now_rfc3339(),
        wal_segment_size: seg_size,
        compression: cfg.compression.to_string(),
        key_id: cfg.keys.write_key().map(|k| k.id().to_string()),
        walvault_version: env!("CARGO_PKG_VERSION").to_string(),
        archives,
        manifest,
        raw_bytes: raw,
        stored_bytes: stored,
    };
    let mut json = serde_json::to_vec_pretty(&descriptor).expect("descriptor serialises");
    json.push(b'\n');
    storage.put_if_absent(&Descriptor::key(backup), PutPayload::from(json)).await?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        "backup {backup} complete: {} → {} ({:.1}%) in {secs:.1} s ({}/s); WAL {start_lsn} to {stop_lsn}, timeline {timeline}",
        progress::human(raw),
        progress::human(stored),
        100.0 * descriptor.ratio(),
        progress::human((raw as f64 / secs.max(0.001)) as u64),
    );
    Ok(descriptor)
}

/// A backup id nothing in the repository uses yet (waits a second if this one is taken).
async fn free_backup_id(storage: &Storage) -> Result<String, BackupError> {
    loop {
        let id = backup_id(time::OffsetDateTime::now_utc());
        let taken = storage.head(&Descriptor::key(&id)).await.is_ok()
            || !storage.list(&Descriptor::prefix(&id)).await?.is_empty();
        if !taken {
            return Ok(id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }
}

/// Removes every object of a failed backup (best effort; logged).
async fn remove_backup_objects(storage: &Storage, backup: &str) {
    let prefix = Descriptor::prefix(backup);
    match storage.list(&prefix).await {
        Ok(objects) => {
            for o in objects {
                if let Err(e) = storage.delete(&o.location).await {
                    tracing::warn!("could not remove {} of the failed backup: {e}", o.location);
                }
            }
        }
        Err(e) => tracing::warn!("could not list {prefix} to remove the failed backup: {e}"),
    }
    let _ = storage.delete(&Path::from(format!("backups/{backup}.json"))).await;
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Parses PostgreSQL's size display (`16MB`, `1GB`, `64kB`).
pub fn parse_pg_size(text: &str) -> Option<u32> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = t[..split].parse().ok()?;
    let mult = match &t[split..] {
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    u32::try_from(n * mult).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pg_sizes() {
        assert_eq!(super::parse_pg_size("16MB"), Some(16 << 20));
        assert_eq!(super::parse_pg_size("1GB"), Some(1 << 30));
        assert_eq!(super::parse_pg_size("16"), None);
    }
}
