//! `walvault base-backup`: takes a base backup over the replication protocol and streams every
//! archive through the compress/encrypt pipeline into the repository as parts, then PostgreSQL's
//! `backup_manifest`, then the descriptor, last. Any failure removes what was written.
//!
//! - [`error`]: why a base backup failed.
//! - [`progress`]: the progress line on a terminal.
//!
//! Crash story: parts and the manifest are uploaded first, the descriptor (`backups/<id>.json`)
//! last and create-only, so a kill at any moment leaves either a complete backup or a folder
//! without a descriptor, which nothing takes for a backup (retention removes it once old); a
//! backup that `delete` took for such leftovers while it ran notices before its descriptor
//! (`repo::seal`: a `.sealing` marker, then the checks), writes none and fails.

pub mod error;
pub mod progress;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use object_store::PutPayload;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::object::stream::{self, StreamError};
use crate::replication::{BackupEvent, BaseBackupOptions, ConnectOptions, ReplicationClient};
use crate::repo::descriptor::{Archive, DESCRIPTOR_FORMAT, Descriptor, Part, Started, StoredFile};
use crate::repo::identity::{self, Identity, REPO_FORMAT};
use crate::repo::layout::Marker;
use crate::repo::{Storage, StorageError, layout, seal};
use crate::units::{UtcTime, human, parse_pg_size};
use crate::wal::{Lsn, TimelineId};
pub use error::BackupError;

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

/// The storing tasks of one backup, so a failed or interrupted backup can stop them and wait
/// for them before removing what they wrote, and hear at once when one of them fails.
#[derive(Default, Clone)]
struct Tasks {
    inner: Arc<Mutex<Vec<Abortable>>>,
    /// Notified (a permit is kept until someone waits) when a storing task ends in an error.
    /// The backup must not wait for the server's next message to learn that: on PostgreSQL 15+
    /// the end of the last archive is only known when the manifest starts, which the server
    /// sends after waiting for WAL archiving, and with the repository down that wait is endless.
    failed: Arc<tokio::sync::Notify>,
}

/// A spawned storing task.
type StoreTask = JoinHandle<Result<Vec<Part>, StreamError>>;
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
    fn start(cfg: &Config, storage: &Storage, plan: stream::Plan, tasks: &Tasks) -> Storing {
        let (tx, rx) = mpsc::channel(stream::INPUT_QUEUE);
        let (cfg, storage) = (cfg.clone(), storage.clone());
        let abort = Arc::new(AtomicBool::new(false));
        let flag = abort.clone();
        let failed = tasks.failed.clone();
        let task = tokio::spawn(async move {
            let r = stream::store(&cfg, &storage, plan, rx, flag).await;
            if r.is_err() {
                failed.notify_one();
            }
            r
        });
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
            Ok(Err(e)) => e.into(),
            Ok(Ok(_)) => BackupError::Aborted,
            Err(e) => BackupError::Panicked(e.to_string()),
        }
    }

    /// Ends the stream normally and waits for its parts.
    async fn finish(mut self) -> Result<Vec<Part>, BackupError> {
        let task = self.task.take().expect("finished once");
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        Ok(task.await.map_err(|e| BackupError::Panicked(e.to_string()))??)
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
        created: UtcTime::now(),
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
    let backup = claim_backup_id(storage, system.xlogpos, system.timeline).await?;
    let _span = tracing::info_span!("base-backup", id = %backup).entered();
    let tasks = Tasks::default();
    let run = take(cfg, storage, req, &mut client, &backup, version, seg_size, system.system_id, &tasks);
    let taken = tokio::select! {
        r = run => r,
        _ = crate::shutdown::signal() => Err(BackupError::Interrupted),
    };
    // The descriptor is written outside the select: once its PUT starts, a signal does not cut
    // it short, so a descriptor never outlives the cleanup of its objects.
    let outcome = match taken {
        Ok(t) => complete(storage, t).await,
        Err(e) => Err(e),
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
) -> Result<Taken, BackupError> {
    let started = Instant::now();
    let start_time = UtcTime::now();
    let label = req.label.clone().unwrap_or_else(|| format!("walvault {backup}"));
    let opts = BaseBackupOptions {
        label: label.clone(),
        fast_checkpoint: req.fast_checkpoint,
        ..Default::default()
    };
    if req.fast_checkpoint {
        tracing::info!("asking the server for an immediate checkpoint");
    } else {
        let bound = spread_checkpoint_bound(client).await;
        tracing::info!(
            "waiting for the server's spread checkpoint{bound}; no data flows until it ends \
             (--fast-checkpoint asks for an immediate one)"
        );
    }
    let mut stream = client.base_backup(&opts).await?;
    let mut progress = progress::Progress::new(req.progress);
    // The transfer's own clock: it starts when the checkpoint is over and data flows.
    let mut transfer_started = started;
    let (mut start, mut archives, mut manifest, mut finish) = (None, Vec::new(), None, None);
    let mut tablespaces = Vec::new();
    let mut current: Option<(Archive, Storing)> = None;
    let mut storing_manifest: Option<Storing> = None;
    loop {
        let event = tokio::select! {
            e = stream.next() => match e? {
                Some(event) => event,
                None => break,
            },
            () = tasks.failed.notified() => {
                let open = current.as_mut().map(|(_, s)| s).or(storing_manifest.as_mut());
                return Err(storing_failure(open).await);
            }
        };
        match event {
            BackupEvent::Started { start_lsn, timeline, tablespaces: ts } => {
                progress.set_total(ts.iter().filter_map(|t| t.size_bytes).sum());
                progress.restart();
                transfer_started = Instant::now();
                tracing::info!(
                    "checkpoint done after {:.1} s; backup started at {start_lsn} on timeline {timeline}",
                    started.elapsed().as_secs_f64()
                );
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
                let plan = stream::Plan {
                    keys: stream::Keys::Parts { backup: backup.to_string(), archive: name.clone() },
                    part_size: cfg.part_size,
                    workers: stream::Workers::PerCore,
                };
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
                let plan = stream::Plan {
                    keys: stream::Keys::One(layout::manifest(backup)),
                    part_size: 0,
                    workers: stream::Workers::None,
                };
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
        timeline,
        start_lsn,
        stop_lsn,
        start_time,
        stop_time: UtcTime::now(),
        wal_segment_size: seg_size,
        compression: cfg.compression.to_string(),
        key_id: cfg.keys.write_key().map(|k| k.id().to_string()),
        walvault_version: env!("CARGO_PKG_VERSION").to_string(),
        archives,
        manifest,
        raw_bytes: raw,
        stored_bytes: stored,
    };
    Ok(Taken { descriptor, started, transfer_started })
}

/// A backup whose parts and manifest are stored, before its descriptor.
struct Taken {
    descriptor: Descriptor,
    /// When base-backup started, and when data began to flow.
    started: Instant,
    transfer_started: Instant,
}

/// Writes the descriptor after the handshake with a racing `delete` (`repo::seal`): from then on
/// the backup exists.
async fn complete(storage: &Storage, t: Taken) -> Result<Descriptor, BackupError> {
    let Taken { descriptor, started, transfer_started } = t;
    let backup = descriptor.id.as_str();
    let mut json = serde_json::to_vec_pretty(&descriptor).expect("descriptor serialises");
    json.push(b'\n');
    let sealed = seal::Sealed {
        descriptor: layout::descriptor(backup),
        marker: &|m| layout::marker(backup, m),
        folder: layout::backup_dir(backup),
        objects: descriptor
            .archives
            .iter()
            .flat_map(|a| &a.parts)
            .map(|p| (p.key.as_str(), p.stored_bytes))
            .chain([(descriptor.manifest.key.as_str(), descriptor.manifest.stored_bytes)])
            .collect(),
    };
    seal::seal(storage, &sealed, json).await.map_err(|e| match e {
        seal::SealError::Storage(e) => BackupError::Storage(e),
        seal::SealError::NotWhole(why) => BackupError::TakenForLeftovers { id: backup.to_string(), why },
    })?;
    // The backup exists now; the marker only kept `delete` away while it did not.
    if let Err(e) = storage.delete(&layout::marker(backup, Marker::Started)).await {
        tracing::warn!("backup {backup} is complete, but its .started marker could not be removed: {e}");
    }
    let (raw, stored) = (descriptor.raw_bytes, descriptor.stored_bytes);
    let secs = started.elapsed().as_secs_f64();
    let transfer = transfer_started.elapsed().as_secs_f64();
    tracing::info!(
        "backup {backup} complete: {} → {} ({:.1}%) in {secs:.1} s: checkpoint {:.1} s, then {}/s for {transfer:.1} s; \
         WAL {} to {}, timeline {}",
        human(raw),
        human(stored),
        100.0 * descriptor.ratio(),
        secs - transfer,
        human((raw as f64 / transfer.max(0.001)) as u64),
        descriptor.start_lsn,
        descriptor.stop_lsn,
        descriptor.timeline,
    );
    Ok(descriptor)
}

/// The error of the open stream's storing task, which has failed (archives and the manifest
/// come one after another, so at most one stream is open).
async fn storing_failure(open: Option<&mut Storing>) -> BackupError {
    match open {
        Some(s) => s.finish_err().await,
        None => BackupError::Aborted,
    }
}

/// ` (up to about 4.5 min: checkpoint_timeout 5min × checkpoint_completion_target 0.9)`, from
/// the server's settings, or nothing if it will not say.
async fn spread_checkpoint_bound(client: &mut ReplicationClient) -> String {
    let (Ok(timeout), Ok(target)) =
        (client.show("checkpoint_timeout").await, client.show("checkpoint_completion_target").await)
    else {
        return String::new();
    };
    match (crate::units::parse_duration(&timeout), target.parse::<f64>()) {
        (Ok(t), Ok(f)) => {
            let secs = (t.as_secs_f64() * f.clamp(0.0, 1.0)).round();
            let bound = if secs >= 90.0 { format!("{:.1} min", secs / 60.0) } else { format!("{secs:.0} s") };
            format!(
                " (up to about {bound}: checkpoint_timeout {timeout} × checkpoint_completion_target {target})"
            )
        }
        _ => format!(" (checkpoint_timeout {timeout}, checkpoint_completion_target {target})"),
    }
}

/// A backup id nothing in the repository uses yet (waits a second if this one is taken), claimed
/// by writing its `.started` marker create-only: `delete` then keeps the backup's objects and the
/// WAL from `wal_from` on while it runs, and two backups started in the same second never share
/// an id.
async fn claim_backup_id(
    storage: &Storage,
    wal_from: Lsn,
    timeline: TimelineId,
) -> Result<String, BackupError> {
    loop {
        let now = time::OffsetDateTime::now_utc();
        let id = layout::backup_id(now);
        let taken = storage.head(&layout::descriptor(&id)).await.is_ok()
            || !storage.list(&layout::backup_dir(&id)).await?.is_empty();
        if !taken {
            let started =
                Started { id: id.clone(), start_time: UtcTime::from_datetime(now), wal_from, timeline };
            let json = serde_json::to_vec_pretty(&started).expect("marker serialises");
            match storage.put_if_absent(&layout::marker(&id, Marker::Started), PutPayload::from(json)).await {
                Ok(()) => return Ok(id),
                Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }
}

/// Removes every object of a failed backup (best effort; logged).
async fn remove_backup_objects(storage: &Storage, backup: &str) {
    // The descriptor first (normally there is none; a PUT that failed may still have landed):
    // from then on nothing looks complete.
    let _ = storage.delete(&layout::descriptor(backup)).await;
    let prefix = layout::backup_dir(backup);
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
    let _ = storage.delete(&layout::marker(backup, Marker::Sealing)).await;
    let _ = storage.delete(&layout::marker(backup, Marker::Started)).await;
}
