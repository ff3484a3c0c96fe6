//! `walvault verify`: proof that what is stored restores, short of restoring it (and, with
//! `--restore-test`, by restoring it: [`drill`]).
//!
//! - Every object of the chosen backups is read, decrypted and decompressed, and its length and
//!   SHA-256 compared with the descriptor's (an object in another part's place, or a truncated
//!   or flipped one, fails); with `--wal`, every archived WAL file too, and a segment's first page
//!   must be the segment its name says, of this repository's cluster.
//! - Without reading WAL: every backup's WAL from start to stop is archived, and the WAL chain
//!   from each backup to the newest archived segment, following the timeline history files, has
//!   no gap ([`chain`]); a gap is named by its first and last missing segment.
//! - Every object of the chosen logical dumps (`walvault dump`; default all, `--dump ID` one) is
//!   read the same way and compared with the dump's descriptor; a dump descriptor that does not
//!   parse is a problem of that dump. With `--restore-test`, a dump is restored into a temporary
//!   cluster and each table's row count compared with the descriptor's ([`dump_drill`]).
//! - Incremental ([`state`]): an object found sound is not read again until it changes or its
//!   check is older than `reverify_after`; `--full` reads everything.
//!
//! The result is a [`Report`] (`--json` prints it): one entry per backup, per dump and per WAL
//! range, each with its problems. Exit 0 only when everything checked is sound, 3 when problems were found,
//! 1 when something could not be read (after retries, or without its key).

pub mod chain;
pub mod drill;
pub mod dump_drill;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use object_store::ObjectMeta;
use object_store::path::Path;
use serde::Serialize;
use thiserror::Error;

use crate::config::Config;
use crate::format::{DecodeError, Trailer};
use crate::object::read::{ObjectSink, ReadError, read_object};
use crate::repo::descriptor::{Descriptor, StoredFile};
use crate::repo::dumps::{self, DumpDescriptor};
use crate::repo::identity::{self, Identity, IdentityError};
use crate::repo::inventory::{self, TimelineWal, WalObject, WalRanges, object_tag};
use crate::repo::layout::{self, WalDir};
use crate::repo::{Storage, StorageError};
use crate::units::{UtcTime, human};
use crate::wal::header::{LONG_HEADER_LEN, SegmentHeader};
use crate::wal::history::History;
use crate::wal::{WalFileName, WalSegSize};
use chain::{Archived, Gap};
use state::Checked;

/// What `walvault verify` is asked to do.
#[derive(Clone, Debug, Default)]
pub struct VerifyRequest {
    /// Only this backup (default: all).
    pub backup: Option<String>,
    /// Only this dump (default: all).
    pub dump: Option<String>,
    /// Also read every archived WAL file.
    pub wal: bool,
    /// Read everything, whatever was verified before.
    pub full: bool,
    /// Show progress on stderr.
    pub progress: bool,
    /// Also restore and start the backup, and restore the dump: the restore drills. What is
    /// named (`backup`, `dump`) is drilled; with neither, the newest backup and the newest dump.
    pub drill: Option<drill::DrillRequest>,
}

/// What kind of problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An object the descriptor lists is not in the repository.
    MissingObject,
    /// An object has another size than the descriptor records.
    WrongSize,
    /// An object does not decode and verify (flipped byte, truncated, bad authentication).
    Corrupt,
    /// An object verifies but holds other bytes than the descriptor lists (swapped).
    Mismatch,
    /// A WAL object holds another segment than its name says, or another cluster's.
    NotItsSegment,
    /// WAL a backup needs to be consistent is not archived.
    MissingWal,
    /// The WAL chain from a backup to the newest segment has a gap.
    WalGap,
    /// A descriptor or history file does not parse.
    Unparsable,
    /// Something could not be read (the repository failed after retries, or no key for it).
    Unreadable,
    /// The restore drill failed.
    Drill,
    /// A table restored from a dump has another row count than the dump's descriptor records.
    RowCount,
}

/// One problem.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: Kind,
    /// The object (or segment range) concerned.
    pub object: String,
    /// What is wrong, in words.
    pub message: String,
}

/// One backup's result.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The backup id.
    pub id: String,
    /// No problems.
    pub ok: bool,
    /// Objects of the backup (parts and manifest).
    pub objects: u64,
    /// Of them, read now.
    pub read: u64,
    /// Of them, not read: found sound before and unchanged.
    pub skipped: u64,
    /// The timeline a recovery from it follows to the newest WAL.
    pub recovery_timeline: u32,
    /// What is wrong.
    pub problems: Vec<Problem>,
}

/// One dump's result.
#[derive(Clone, Debug, Serialize)]
pub struct DumpReport {
    /// The dump id.
    pub id: String,
    /// No problems.
    pub ok: bool,
    /// Objects of the dump (one per database, and the globals).
    pub objects: u64,
    /// Of them, read now.
    pub read: u64,
    /// Of them, not read: found sound before and unchanged.
    pub skipped: u64,
    /// What is wrong.
    pub problems: Vec<Problem>,
}

/// One range of archived WAL (consecutive segments of a timeline), or a gap.
#[derive(Clone, Debug, Serialize)]
pub struct WalReport {
    /// The timeline.
    pub timeline: u32,
    /// The first segment.
    pub first: String,
    /// The last segment.
    pub last: String,
    /// Segments in it.
    pub segments: u64,
    /// No problems.
    pub ok: bool,
    /// WAL objects read now (with `--wal`).
    pub read: u64,
    /// WAL objects not read: found sound before and unchanged (with `--wal`).
    pub skipped: u64,
    /// What is wrong.
    pub problems: Vec<Problem>,
}

/// Totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Object bodies read.
    pub objects_read: u64,
    /// Stored bytes read.
    pub bytes_read: u64,
    /// Objects not read: found sound before and unchanged.
    pub objects_skipped: u64,
    /// Seconds the run took.
    pub seconds: f64,
    /// Stored bytes read per second.
    pub bytes_per_second: f64,
    /// Objects read per second.
    pub objects_per_second: f64,
    /// Problems found (not counting what could not be read).
    pub problems: u64,
    /// Things that could not be read.
    pub unreadable: u64,
}

/// Everything `verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The repository.
    pub repo: String,
    /// Per backup.
    pub backups: Vec<BackupReport>,
    /// Per logical dump.
    pub dumps: Vec<DumpReport>,
    /// Per range of archived WAL, then gaps between ranges.
    pub wal: Vec<WalReport>,
    /// Restore drills of backups.
    pub drills: Vec<drill::DrillReport>,
    /// Restore drills of dumps.
    pub dump_drills: Vec<dump_drill::DumpDrillReport>,
    /// Totals.
    pub summary: Summary,
}

impl Report {
    /// Everything checked is sound.
    pub fn sound(&self) -> bool {
        self.summary.problems == 0 && self.summary.unreadable == 0
    }
}

/// Why `verify` could not run at all.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The repository failed where nothing could be checked without it.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Its identity is unreadable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// `--backup` names a backup the repository does not have.
    #[error("backup {0} is not in the repository (see walvault list)")]
    UnknownBackup(String),
    /// `--dump` names a dump the repository does not have.
    #[error("dump {0} is not in the repository (see walvault list)")]
    UnknownDump(String),
    /// The restore drill could not be set up.
    #[error(transparent)]
    Drill(#[from] drill::DrillError),
    /// The run ended with problems (the report was printed).
    #[error(
        "verify found {problems} problem(s) and could not read {unreadable} object(s); see the report above"
    )]
    Failed {
        /// Problems found.
        problems: u64,
        /// Things that could not be read.
        unreadable: u64,
    },
}

/// A sink that keeps the first bytes of an object (a WAL segment's long page header).
struct Head(Vec<u8>);

impl ObjectSink for Head {
    fn reset(&mut self) -> std::io::Result<()> {
        self.0.clear();
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let room = LONG_HEADER_LEN.saturating_sub(self.0.len());
        self.0.extend_from_slice(&bytes[..room.min(bytes.len())]);
        Ok(())
    }
}

/// A sink that keeps a small object whole (a history file).
struct Whole(Vec<u8>);

impl ObjectSink for Whole {
    fn reset(&mut self) -> std::io::Result<()> {
        self.0.clear();
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.0.len() + bytes.len() > 1 << 20 {
            return Err(std::io::Error::other("a history file larger than 1 MiB"));
        }
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// The run's counters and progress line.
struct Run<'a> {
    cfg: &'a Config,
    storage: &'a Storage,
    req: &'a VerifyRequest,
    now: UtcTime,
    started: Instant,
    summary: Summary,
    last_progress: Instant,
}

impl Run<'_> {
    fn fresh(&self, checked: &Checked, key: &str, size: u64, tag: &str) -> bool {
        !self.req.full && checked.fresh(key, size, tag, self.now, self.cfg.verify.reverify_after)
    }

    fn read_done(&mut self, bytes: u64) {
        self.summary.objects_read += 1;
        self.summary.bytes_read += bytes;
        if self.req.progress && self.last_progress.elapsed() >= Duration::from_millis(500) {
            self.last_progress = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[Kverify: {} objects, {} read ({}/s)",
                self.summary.objects_read,
                human(self.summary.bytes_read),
                human((self.summary.bytes_read as f64 / secs) as u64)
            );
            let _ = err.flush();
        }
    }

    /// Reads `key` through the decoder; the problem if it is not sound.
    async fn read(&mut self, key: &Path, size: u64, sink: &mut dyn ObjectSink) -> Result<Trailer, Problem> {
        let r = read_object(self.storage, key, &self.cfg.keys, sink).await;
        self.read_done(size);
        r.map_err(|e| read_problem(key, e))
    }
}

fn problem(kind: Kind, object: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { kind, object: object.into(), message: message.into() }
}

fn read_problem(key: &Path, e: ReadError) -> Problem {
    match e {
        ReadError::Storage(StorageError::NotFound { .. }) => {
            problem(Kind::MissingObject, key.as_ref(), "not in the repository")
        }
        ReadError::Storage(e) => problem(Kind::Unreadable, key.as_ref(), e.to_string()),
        ReadError::Decode {
            source: e @ (DecodeError::MissingKey(_) | DecodeError::WrongKey { .. }), ..
        } => problem(Kind::Unreadable, key.as_ref(), e.to_string()),
        ReadError::Decode { source, .. } => problem(Kind::Corrupt, key.as_ref(), source.to_string()),
    }
}

/// Runs verify (and the drill, if asked) and returns the report; problems are in it, not errors.
pub async fn verify(cfg: &Config, storage: &Storage, req: &VerifyRequest) -> Result<Report, VerifyError> {
    let mut run = Run {
        cfg,
        storage,
        req,
        now: UtcTime::now(),
        started: Instant::now(),
        summary: Summary::default(),
        last_progress: Instant::now(),
    };
    let identity = identity::read(storage).await?;
    let seg_size = identity
        .as_ref()
        .and_then(|i| WalSegSize::new(u64::from(i.wal_segment_size)).ok())
        .unwrap_or(WalSegSize::DEFAULT);
    let all = inventory::backups(storage).await?;
    let chosen: Vec<&Descriptor> = match &req.backup {
        Some(id) => {
            let d = all
                .backups
                .iter()
                .find(|b| b.descriptor.id == *id)
                .ok_or_else(|| VerifyError::UnknownBackup(id.clone()))?;
            vec![&d.descriptor]
        }
        None => all.backups.iter().map(|b| &b.descriptor).collect(),
    };

    let all_dumps = dumps::dumps(storage).await?;
    if let Some(id) = &req.dump
        && !all_dumps.dumps.iter().any(|d| d.descriptor.id == *id)
    {
        return Err(VerifyError::UnknownDump(id.clone()));
    }

    // WAL, a folder at a time: the ranges for the chain, the histories, and with --wal every body.
    let mut ranges = WalRanges::new(seg_size);
    let mut histories = Vec::new();
    let mut wal_problems: Vec<(WalFileName, Problem)> = Vec::new();
    let mut wal_counts: BTreeMap<u32, Vec<(u64, bool)>> = BTreeMap::new();
    let mut other_problems = Vec::new();
    for dir in inventory::wal_dirs(storage).await? {
        let objects = inventory::wal_dir(storage, dir).await?;
        objects.iter().for_each(|o| ranges.add(o.name));
        let record = layout::verify_wal(dir);
        let mut checked = Checked::load(storage, &record).await?;
        let mut changed = false;
        if dir == WalDir::History {
            for o in &objects {
                match history(&mut run, &mut checked, o).await {
                    Ok((h, fresh)) => {
                        changed |= !fresh;
                        histories.push(h);
                    }
                    Err(p) => other_problems.push(p),
                }
            }
        } else if req.wal {
            for o in &objects {
                let key = layout::wal(&o.name);
                let seg = o.name.segment().map(|s| s.segno(seg_size));
                if run.fresh(&checked, key.as_ref(), o.size, &o.tag) {
                    run.summary.objects_skipped += 1;
                    if let (Some(n), WalFileName::Segment(s)) = (seg, o.name) {
                        wal_counts.entry(s.timeline.get()).or_default().push((n, false));
                    }
                    continue;
                }
                let r = check_wal(&mut run, o, identity.as_ref(), seg_size).await;
                if let (Some(n), WalFileName::Segment(s)) = (seg, o.name) {
                    wal_counts.entry(s.timeline.get()).or_default().push((n, true));
                }
                match r {
                    Ok(()) => {
                        checked.record(key.as_ref(), o.size, &o.tag, run.now);
                        changed = true;
                    }
                    Err(p) => wal_problems.push((o.name, p)),
                }
            }
        }
        let keys: BTreeSet<String> = objects.iter().map(|o| layout::wal(&o.name).to_string()).collect();
        let before = checked.objects.len();
        checked.retain(&keys);
        if changed || checked.objects.len() != before {
            save(storage, &checked, &record).await;
        }
    }
    let wal = ranges.finish();
    let archived = Archived::new(&wal, seg_size);

    let mut backups = Vec::new();
    for d in chosen {
        backups.push(check_backup(&mut run, d, &archived, &histories).await?);
    }
    for f in all.without_descriptor.iter().filter(|f| f.unreadable_descriptor) {
        other_problems.push(problem(
            Kind::Unparsable,
            layout::descriptor(&f.id).to_string(),
            "the descriptor does not parse: this backup cannot be restored",
        ));
    }
    let wal_reports = wal_report(&wal, &wal_problems, &wal_counts, seg_size, other_problems);

    let wanted = |id: &str| req.dump.as_deref().is_none_or(|d| d == id);
    let mut dump_reports = Vec::new();
    for d in all_dumps.dumps.iter().map(|d| &d.descriptor).filter(|d| wanted(&d.id)) {
        dump_reports.push(check_dump(&mut run, d).await?);
    }
    for f in all_dumps.without_descriptor.iter().filter(|f| f.unreadable_descriptor && wanted(&f.id)) {
        dump_reports.push(DumpReport {
            id: f.id.clone(),
            ok: false,
            objects: 0,
            read: 0,
            skipped: 0,
            problems: vec![problem(
                Kind::Unparsable,
                layout::dump_descriptor(&f.id).to_string(),
                "the dump descriptor does not parse: this dump cannot be restored",
            )],
        });
    }
    dump_reports.sort_by(|a, b| a.id.cmp(&b.id));

    // The drills: what is named is drilled; with nothing named, the newest backup and the
    // newest dump.
    let mut drills = Vec::new();
    let mut dump_drills = Vec::new();
    if let Some(d) = &req.drill {
        let backup = match (&req.backup, &req.dump) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(_)) => None,
            (None, None) => all
                .backups
                .iter()
                .max_by_key(|b| (b.descriptor.stop_time, b.descriptor.id.clone()))
                .map(|b| b.descriptor.id.clone()),
        };
        let dump = match (&req.backup, &req.dump) {
            (_, Some(id)) => all_dumps.dumps.iter().find(|d| d.descriptor.id == *id),
            (Some(_), None) => None,
            (None, None) => all_dumps.dumps.last(),
        };
        if backup.is_none() && dump.is_none() {
            return Err(drill::DrillError::NoBackup.into());
        }
        if let Some(backup) = backup {
            let server_version =
                all.backups.iter().find(|b| b.descriptor.id == backup).map(|b| b.descriptor.server_version);
            drills = drill::run(d, &backup, server_version.unwrap_or(0)).await?;
        }
        if let Some(dump) = dump {
            dump_drills.push(dump_drill::run(d, storage, &cfg.keys, &dump.descriptor).await?);
        }
    }
    if req.progress {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
    }
    let problems: Vec<&Problem> = backups
        .iter()
        .flat_map(|b| &b.problems)
        .chain(dump_reports.iter().flat_map(|d| &d.problems))
        .chain(wal_reports.iter().flat_map(|w| &w.problems))
        .collect();
    run.summary.unreadable = problems.iter().filter(|p| p.kind == Kind::Unreadable).count() as u64;
    let failed_drills = drills.iter().filter(|d| !d.ok).count() as u64
        + dump_drills.iter().map(|d| d.problems()).sum::<u64>();
    run.summary.problems = problems.len() as u64 - run.summary.unreadable + failed_drills;
    let secs = run.started.elapsed().as_secs_f64();
    run.summary.seconds = secs;
    run.summary.bytes_per_second = run.summary.bytes_read as f64 / secs.max(0.001);
    run.summary.objects_per_second = run.summary.objects_read as f64 / secs.max(0.001);
    Ok(Report {
        repo: storage.url().to_string(),
        backups,
        dumps: dump_reports,
        wal: wal_reports,
        drills,
        dump_drills,
        summary: run.summary,
    })
}

/// Saves a record; a failure only costs reads next time.
async fn save(storage: &Storage, checked: &Checked, key: &Path) {
    if let Err(e) = checked.save(storage, key).await {
        tracing::warn!("cannot record what was verified in {key} ({e}): the next run reads it again");
    }
}

/// A history file, read (or, unchanged since last time, taken from the record) and parsed.
async fn history(
    run: &mut Run<'_>,
    checked: &mut Checked,
    o: &WalObject,
) -> Result<(History, bool), Problem> {
    let WalFileName::History(tli) = o.name else {
        return Err(problem(Kind::Unparsable, layout::wal(&o.name).as_ref(), "not a history file"));
    };
    let key = layout::wal(&o.name);
    let cached =
        checked.texts.get(key.as_ref()).filter(|_| run.fresh(checked, key.as_ref(), o.size, &o.tag)).cloned();
    let (text, fresh) = match cached {
        Some(t) => {
            run.summary.objects_skipped += 1;
            (t, true)
        }
        None => {
            let mut sink = Whole(Vec::new());
            run.read(&key, o.size, &mut sink).await?;
            let text = String::from_utf8_lossy(&sink.0).into_owned();
            checked.record(key.as_ref(), o.size, &o.tag, run.now);
            checked.texts.insert(key.to_string(), text.clone());
            (text, false)
        }
    };
    let h = History::parse(tli, &text).map_err(|e| problem(Kind::Unparsable, key.as_ref(), e.to_string()))?;
    Ok((h, fresh))
}

/// Reads one WAL object: it must decode, and a segment's first page must be the segment its name
/// says, of this repository's cluster.
async fn check_wal(
    run: &mut Run<'_>,
    o: &WalObject,
    identity: Option<&Identity>,
    seg_size: WalSegSize,
) -> Result<(), Problem> {
    let key = layout::wal(&o.name);
    let mut head = Head(Vec::new());
    run.read(&key, o.size, &mut head).await?;
    let Some(seg) = o.name.segment().filter(|_| o.name.has_segment_header()) else { return Ok(()) };
    let h = SegmentHeader::parse(&head.0)
        .map_err(|e| problem(Kind::NotItsSegment, key.as_ref(), format!("it is not a WAL segment: {e}")))?;
    let expected = seg.start_lsn(seg_size);
    if h.page_addr != expected {
        return Err(problem(
            Kind::NotItsSegment,
            key.as_ref(),
            format!("it holds the segment at {} but its name means {expected}", h.page_addr),
        ));
    }
    if let Some(id) = identity
        && id.system_identifier != h.system_id.to_string()
    {
        return Err(problem(
            Kind::NotItsSegment,
            key.as_ref(),
            format!(
                "it is WAL of system identifier {}, the repository's is {}",
                h.system_id, id.system_identifier
            ),
        ));
    }
    Ok(())
}

/// One object a descriptor lists.
struct Listed<'a> {
    key: &'a str,
    stored: u64,
    raw: u64,
    sha256: &'a str,
}

impl<'a> From<&'a StoredFile> for Listed<'a> {
    fn from(f: &'a StoredFile) -> Self {
        Listed { key: &f.key, stored: f.stored_bytes, raw: f.raw_bytes, sha256: &f.sha256 }
    }
}

/// What [`check_objects`] found.
struct Objects {
    problems: Vec<Problem>,
    read: u64,
    skipped: u64,
}

/// Checks the objects a descriptor lists in `dir` (sizes from one listing, bodies unless found
/// sound before) and keeps the record at `record` up to date.
async fn check_objects(
    run: &mut Run<'_>,
    dir: &Path,
    record: &Path,
    objects: &[Listed<'_>],
) -> Result<Objects, VerifyError> {
    let listed: BTreeMap<String, ObjectMeta> =
        run.storage.list(dir).await?.into_iter().map(|m| (m.location.to_string(), m)).collect();
    let mut checked = Checked::load(run.storage, record).await?;
    let mut problems = Vec::new();
    let (mut read, mut skipped, mut changed) = (0, 0, false);
    for &Listed { key, stored, raw, sha256: sha } in objects {
        let Some(meta) = listed.get(key) else {
            problems.push(problem(
                Kind::MissingObject,
                key,
                "listed in the descriptor but not in the repository",
            ));
            continue;
        };
        if meta.size != stored {
            problems.push(problem(
                Kind::WrongSize,
                key,
                format!("{} bytes in the repository, {stored} in the descriptor", meta.size),
            ));
            continue;
        }
        let tag = object_tag(meta);
        if run.fresh(&checked, key, meta.size, &tag) {
            skipped += 1;
            run.summary.objects_skipped += 1;
            continue;
        }
        read += 1;
        match run.read(&meta.location, meta.size, &mut crate::object::read::Discard).await {
            Ok(t) if hex::encode(t.sha256).eq_ignore_ascii_case(sha) && t.len == raw => {
                checked.record(key, meta.size, &tag, run.now);
                changed = true;
            }
            Ok(t) => problems.push(problem(
                Kind::Mismatch,
                key,
                format!(
                    "it holds {} bytes with SHA-256 {}, the descriptor lists {raw} bytes with SHA-256 {sha}: another object is in its place",
                    t.len,
                    hex::encode(t.sha256)
                ),
            )),
            Err(p) => problems.push(p),
        }
    }
    let keys: BTreeSet<String> = objects.iter().map(|o| o.key.to_string()).collect();
    let before = checked.objects.len();
    checked.retain(&keys);
    if changed || before != checked.objects.len() {
        save(run.storage, &checked, record).await;
    }
    Ok(Objects { problems, read, skipped })
}

/// Checks one dump's objects (the globals and one dump per database).
async fn check_dump(run: &mut Run<'_>, d: &DumpDescriptor) -> Result<DumpReport, VerifyError> {
    let objects: Vec<Listed> = d.objects().map(Listed::from).collect();
    let found = check_objects(run, &layout::dump_dir(&d.id), &layout::verify_dump(&d.id), &objects).await?;
    Ok(DumpReport {
        id: d.id.clone(),
        ok: found.problems.is_empty(),
        objects: objects.len() as u64,
        read: found.read,
        skipped: found.skipped,
        problems: found.problems,
    })
}

/// Checks one backup: its objects, its WAL from start to stop, and the chain to the newest WAL.
async fn check_backup(
    run: &mut Run<'_>,
    d: &Descriptor,
    archived: &Archived,
    histories: &[History],
) -> Result<BackupReport, VerifyError> {
    let objects: Vec<Listed> = d
        .archives
        .iter()
        .flat_map(|a| &a.parts)
        .map(|p| Listed { key: &p.key, stored: p.stored_bytes, raw: p.raw_bytes, sha256: &p.sha256 })
        .chain(std::iter::once(Listed::from(&d.manifest)))
        .collect();
    let Objects { mut problems, read, skipped } =
        check_objects(run, &layout::backup_dir(&d.id), &layout::verify_backup(&d.id), &objects).await?;
    for g in archived.consistency_gaps(d.timeline, d.start_lsn, d.stop_lsn) {
        problems.push(gap_problem(
            Kind::MissingWal,
            &g,
            &format!("the WAL backup {} needs to be consistent", d.id),
        ));
    }
    let (target, gaps) = archived.chain_gaps(histories, d.timeline, d.start_lsn);
    for g in gaps {
        if !problems.iter().any(|p| p.kind == Kind::MissingWal && p.object == gap_name(&g)) {
            problems.push(gap_problem(
                Kind::WalGap,
                &g,
                &format!("the WAL from backup {} to the newest archived segment", d.id),
            ));
        }
    }
    Ok(BackupReport {
        id: d.id.clone(),
        ok: problems.is_empty(),
        objects: objects.len() as u64,
        read,
        skipped,
        recovery_timeline: target.get(),
        problems,
    })
}

fn gap_name(g: &Gap) -> String {
    if g.first == g.last { g.first.clone() } else { format!("{} - {}", g.first, g.last) }
}

fn gap_problem(kind: Kind, g: &Gap, what: &str) -> Problem {
    problem(
        kind,
        gap_name(g),
        format!("{} missing segment(s) of {what}, timeline {}", g.segments, g.timeline),
    )
}

/// One entry per archived range (with the problems of the WAL objects in it), and the gaps
/// between ranges.
fn wal_report(
    wal: &[TimelineWal],
    found: &[(WalFileName, Problem)],
    counts: &BTreeMap<u32, Vec<(u64, bool)>>,
    seg_size: WalSegSize,
    other: Vec<Problem>,
) -> Vec<WalReport> {
    let segno = |name: &str| -> u64 {
        name.parse::<WalFileName>().ok().and_then(|n| n.segment()).map_or(0, |s| s.segno(seg_size))
    };
    let mut out = Vec::new();
    for t in wal {
        for r in &t.ranges {
            let (a, b) = (segno(&r.first), segno(&r.last));
            let problems: Vec<Problem> = found
                .iter()
                .filter(|(n, _)| {
                    n.timeline().get() == t.timeline
                        && n.segment().is_some_and(|s| (a..=b).contains(&s.segno(seg_size)))
                })
                .map(|(_, p)| p.clone())
                .collect();
            let seen: Vec<&(u64, bool)> =
                counts.get(&t.timeline).into_iter().flatten().filter(|(n, _)| (a..=b).contains(n)).collect();
            out.push(WalReport {
                timeline: t.timeline,
                first: r.first.clone(),
                last: r.last.clone(),
                segments: r.segments,
                ok: problems.is_empty(),
                read: seen.iter().filter(|s| s.1).count() as u64,
                skipped: seen.iter().filter(|s| !s.1).count() as u64,
                problems,
            });
        }
        for g in &t.gaps {
            out.push(WalReport {
                timeline: t.timeline,
                first: g.first.clone(),
                last: g.last.clone(),
                segments: g.segments,
                ok: true,
                read: 0,
                skipped: 0,
                problems: Vec::new(),
            });
        }
    }
    // Problems of objects outside any range (history files, .partial names), and others.
    let placed = |n: &WalFileName| {
        out.iter().any(|w| w.problems.iter().any(|p| p.object == layout::wal(n).to_string()))
    };
    let mut rest: Vec<Problem> = found.iter().filter(|(n, _)| !placed(n)).map(|(_, p)| p.clone()).collect();
    rest.extend(other);
    if !rest.is_empty() {
        out.push(WalReport {
            timeline: 0,
            first: String::new(),
            last: String::new(),
            segments: 0,
            ok: false,
            read: 0,
            skipped: 0,
            problems: rest,
        });
    }
    out.sort_by(|a, b| (a.timeline, &a.first).cmp(&(b.timeline, &b.first)));
    out
}

/// `ok` or `PROBLEM`, padded alike.
fn verdict(ok: bool) -> &'static str {
    if ok { "ok     " } else { "PROBLEM" }
}

/// One indented line per problem.
fn problems(s: &mut String, problems: &[Problem]) {
    for p in problems {
        let _ = writeln!(s, "      {}: {}", p.object, p.message);
    }
}

/// The report as text for a person.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "repository {}", r.repo);
    let _ = writeln!(s, "\nbackups: {}", r.backups.len());
    for b in &r.backups {
        let _ = writeln!(
            s,
            "  {} {}  {} objects ({} read, {} verified before), recovers along timeline {}",
            verdict(b.ok),
            b.id,
            b.objects,
            b.read,
            b.skipped,
            b.recovery_timeline
        );
        problems(&mut s, &b.problems);
    }
    let _ = writeln!(s, "\nwal:");
    if r.wal.is_empty() {
        let _ = writeln!(s, "  none archived");
    }
    for w in &r.wal {
        if w.timeline == 0 {
            let _ = writeln!(s, "  PROBLEM other objects");
        } else if w.read + w.skipped == 0 && w.problems.is_empty() && w.ok {
            let _ =
                writeln!(s, "  timeline {}: {} - {}  {} segments", w.timeline, w.first, w.last, w.segments);
        } else {
            let _ = writeln!(
                s,
                "  {} timeline {}: {} - {}  {} segments ({} read, {} verified before)",
                verdict(w.ok),
                w.timeline,
                w.first,
                w.last,
                w.segments,
                w.read,
                w.skipped
            );
        }
        problems(&mut s, &w.problems);
    }
    if !r.dumps.is_empty() {
        let _ = writeln!(s, "\ndumps: {}", r.dumps.len());
    }
    for d in &r.dumps {
        let _ = writeln!(
            s,
            "  {} {}  {} objects ({} read, {} verified before)",
            verdict(d.ok),
            d.id,
            d.objects,
            d.read,
            d.skipped
        );
        problems(&mut s, &d.problems);
    }
    for d in &r.drills {
        let _ = writeln!(s, "\n{}", drill::render(d));
    }
    for d in &r.dump_drills {
        let _ = writeln!(s, "\n{}", dump_drill::render(d));
    }
    let m = &r.summary;
    let _ = writeln!(
        s,
        "\nread {} objects, {} in {:.1} s ({}/s, {:.1} objects/s); {} not read (verified before, unchanged)",
        m.objects_read,
        human(m.bytes_read),
        m.seconds,
        human(m.bytes_per_second as u64),
        m.objects_per_second,
        m.objects_skipped
    );
    if r.sound() {
        let _ = writeln!(s, "everything checked is sound");
    } else {
        let _ = writeln!(s, "{} problem(s) found, {} object(s) could not be read", m.problems, m.unreadable);
    }
    s
}
