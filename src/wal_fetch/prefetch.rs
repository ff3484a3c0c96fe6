//! wal-fetch's prefetcher: a detached background process that keeps the next `prefetch`
//! segments of the timeline recovery is on downloaded and verified in a spool directory beside
//! `%p` (`pg_wal/.walvault/prefetch/`), so that later wal-fetch calls answer from local disk.
//!
//! - A call records the segment it was asked for in `want`; the prefetcher works on the segments
//!   after it, at most `prefetch` ahead, and stops at the first one the repository does not have.
//! - A spooled segment is `<name>` plus `<name>.meta` (length, SHA-256, XXH3-128, repository); it
//!   appears (by rename) only after its download decoded and verified. A call re-hashes it before
//!   moving it to `%p` (XXH3-128 of the bytes the prefetcher wrote, the same bytes whose SHA-256
//!   verified: as sure a sign of a change on disk, at a tenth of the CPU; see wal_push for why a
//!   non-cryptographic hash is enough there; metadata of earlier versions: SHA-256); moving it out
//!   means it cannot be served twice.
//! - One prefetcher per spool: it holds an exclusive `flock` on `prefetch.lock` (never deleted).
//! - It exits after [`IDLE_EXIT`] without a new request and removes what was not taken; killed, it
//!   leaves only `.part` files, which the next prefetcher removes. It logs to `prefetch.log`.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::format::DecodeError;
use crate::object::encode::{Recorded, still_holds, xxh3_hex};
use crate::object::read::{ObjectSink, ReadError, read_object};
use crate::repo::{Storage, StorageError, identity, layout};
use crate::state::daemon::Launcher;
use crate::state::stats::{Outcome, StatsFile};
use crate::state::{STATE_DIR, write_atomic};
use crate::units::UtcTime;
use crate::wal::lsn::WalSegSize;
use crate::wal::name::{SegmentName, WalFileName};

/// The prefetcher exits after this long without a new request.
pub const IDLE_EXIT: Duration = Duration::from_secs(60);
/// Downloads the prefetcher runs at once.
const MAX_DOWNLOADS: usize = 8;
/// The prefetcher's log, in the spool.
pub const LOG_FILE: &str = "prefetch.log";
/// A `.part` file untouched for this long belongs to a download that died.
const STALE_PART: Duration = Duration::from_secs(30);
/// How often the prefetcher looks for a new request while it has nothing to do.
const POLL: Duration = Duration::from_millis(50);

/// What the prefetcher knows about a spooled segment.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Meta {
    len: u64,
    sha256: String,
    /// XXH3-128 (hex) of the bytes the prefetcher wrote, the ones whose SHA-256 verified: what
    /// the call re-checking the spooled copy compares (metadata without it: the SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    xxh3: Option<String>,
    repo: String,
}

/// The spool directory beside a restore destination.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool for restore destinations in `dest`'s directory (`pg_wal`).
    pub fn beside(dest: &Path) -> Spool {
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Spool { dir: dir.join(STATE_DIR).join("prefetch") }
    }

    /// The spool at `dir` (the prefetcher is told its spool directly).
    pub fn at(dir: &Path) -> Spool {
        Spool { dir: dir.to_path_buf() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Records that recovery has asked for `name`. The spool is created inside the destination's
    /// directory (`pg_wal`), never that directory itself.
    pub fn set_want(&self, name: SegmentName) -> std::io::Result<()> {
        let wal_dir = self.dir.parent().and_then(Path::parent).unwrap_or(Path::new("."));
        if !wal_dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", wal_dir.display()),
            ));
        }
        write_atomic(&self.dir, "want", name.to_string().as_bytes())
    }

    /// The segment recovery asked for last.
    pub fn want(&self) -> Option<SegmentName> {
        match std::fs::read_to_string(self.dir.join("want")).ok()?.trim().parse().ok()? {
            WalFileName::Segment(s) => Some(s),
            _ => None,
        }
    }

    /// Moves a verified spooled copy of `name` to `dest`; `None` if there is none (or it no longer
    /// verifies, or came from another repository: then it is removed).
    pub fn take(&self, name: SegmentName, dest: &Path, repo: &str) -> Option<Taken> {
        let data = self.dir.join(name.to_string());
        let meta_path = self.dir.join(format!("{name}.meta"));
        if !data.exists() {
            return None;
        }
        let meta: Meta = serde_json::from_slice(&std::fs::read(&meta_path).ok()?).ok()?;
        let earlier = Recorded { len: meta.len, sha256: &meta.sha256, xxh3: meta.xxh3.as_deref() };
        let checked_by = still_holds(&data, earlier).ok().flatten();
        let good = meta.repo == repo
            && checked_by.is_some()
            && File::open(&data)
                .is_ok_and(|mut f| super::segment_check::mismatch(name, &mut f).is_ok_and(|m| m.is_none()));
        if !good {
            tracing::warn!("discarding prefetched {name}: it does not verify");
            let _ = std::fs::remove_file(&data);
            let _ = std::fs::remove_file(&meta_path);
            return None;
        }
        std::fs::rename(&data, dest).ok()?;
        let _ = std::fs::remove_file(&meta_path);
        Some(Taken { len: meta.len, checked_by: checked_by? })
    }

    /// Whether a download of `name` (by the prefetcher or a call) is under way: its `.part`
    /// claim exists and is fresh.
    pub fn in_flight(&self, name: SegmentName) -> bool {
        std::fs::metadata(self.dir.join(format!("{name}.part")))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < STALE_PART)
    }

    /// Claims `name` for a download by this call (the prefetcher then leaves it alone); `None`
    /// if someone else is downloading it. The claim is released when dropped.
    pub fn claim(&self, name: SegmentName) -> Option<Claim> {
        let path = self.dir.join(format!("{name}.part"));
        std::fs::OpenOptions::new().write(true).create_new(true).open(&path).ok()?;
        Some(Claim { path })
    }

    /// After a look in the spool found no `name`: claims it for this call's own download, or,
    /// when someone else is downloading it, waits (up to `limit`) for it and takes it. Claimed,
    /// the spool is looked at once more: the prefetcher may have finished `name` between that
    /// look and the claim (its `.part` renamed, so the claim succeeds), and the call would
    /// download it a second time.
    pub fn claim_or_take(&self, name: SegmentName, dest: &Path, repo: &str, limit: Duration) -> ClaimOrTaken {
        match self.claim(name) {
            Some(claim) => match self.take(name, dest, repo) {
                Some(t) => ClaimOrTaken::Taken(t),
                None => ClaimOrTaken::Claimed(claim),
            },
            None => match self.take_when_ready(name, dest, repo, limit) {
                Some(t) => ClaimOrTaken::Taken(t),
                None => ClaimOrTaken::Neither,
            },
        }
    }

    /// Waits (up to `limit`) while `name` is being downloaded, then tries to take it.
    pub fn take_when_ready(
        &self,
        name: SegmentName,
        dest: &Path,
        repo: &str,
        limit: Duration,
    ) -> Option<Taken> {
        let start = Instant::now();
        while self.in_flight(name) && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.take(name, dest, repo)
    }

    /// Whether a prefetcher holds the lock.
    pub fn prefetcher_running(&self) -> bool {
        crate::state::daemon::is_locked(&self.lock_path())
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("prefetch.lock")
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes spooled segments (and their metadata and partial files) matching `drop`.
    fn remove_where(&self, drop: impl Fn(&str) -> bool) {
        for f in self.entries() {
            let base = f.trim_end_matches(".meta").trim_end_matches(".part");
            if base.len() == 24 && base.parse::<WalFileName>().is_ok() && drop(base) {
                let _ = std::fs::remove_file(self.dir.join(&f));
            }
        }
    }
}

/// A call's claim on a segment it downloads itself.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
}

/// What [`Spool::claim_or_take`] did.
#[derive(Debug)]
pub enum ClaimOrTaken {
    /// The segment came from the spool.
    Taken(Taken),
    /// This call downloads it (the claim is held until dropped).
    Claimed(Claim),
    /// Someone else's download did not bring it in time: this call downloads it, unclaimed.
    Neither,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Makes sure a prefetcher is running for `spool`.
pub fn ensure_running(spool: &Spool, launcher: &Launcher) {
    if !spool.prefetcher_running()
        && let Err(e) = launcher.spawn("--prefetch-daemon", spool.path(), &spool.path().join(LOG_FILE))
    {
        tracing::warn!("cannot start the prefetcher: {e}");
    }
}

/// A download target's file in the spool.
struct SpoolFile {
    part: PathBuf,
    file: File,
    /// XXH3-128 of the bytes written since the last reset.
    xxh3: twox_hash::XxHash3_128,
}

impl ObjectSink for SpoolFile {
    fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        std::io::Seek::rewind(&mut self.file)?;
        self.xxh3 = twox_hash::XxHash3_128::new();
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.xxh3.write(bytes);
        self.file.write_all(bytes)
    }
}

/// A spooled segment moved to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Its bytes.
    pub len: u64,
    /// The hash its re-check compared: "XXH3-128", or "SHA-256" for metadata without one.
    pub checked_by: &'static str,
}

/// What one download of the prefetcher did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefetched {
    /// The segment is in the spool, verified: this many bytes.
    Spooled(u64),
    /// A wal-fetch call claimed it first (its `.part` exists) and fetches it itself.
    ClaimedByCall,
}

/// Downloads `name` into the spool: `.part`, verified, metadata, then rename.
async fn download(
    cfg: &Config,
    storage: &Storage,
    spool: &Spool,
    name: SegmentName,
) -> Result<Prefetched, ReadError> {
    let data = spool.dir.join(name.to_string());
    let part = spool.dir.join(format!("{name}.part"));
    let io = |e: std::io::Error| ReadError::Decode { key: name.to_string(), source: DecodeError::Sink(e) };
    // Exclusive: a `.part` that exists is a download under way (ours or a call's claim).
    let file = match std::fs::OpenOptions::new().write(true).create_new(true).open(&part) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Prefetched::ClaimedByCall),
        Err(e) => return Err(io(e)),
    };
    let mut sink = SpoolFile { part: part.clone(), file, xxh3: twox_hash::XxHash3_128::new() };
    let result = read_object(storage, &layout::wal(&WalFileName::Segment(name)), &cfg.keys, &mut sink).await;
    let trailer = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&sink.part);
            return Err(e);
        }
    };
    let meta = Meta {
        len: trailer.len,
        sha256: hex::encode(trailer.sha256),
        xxh3: Some(xxh3_hex(sink.xxh3.finish_128())),
        repo: storage.url().to_string(),
    };
    let finish =
        write_atomic(&spool.dir, &format!("{name}.meta"), &serde_json::to_vec(&meta).expect("serialises"))
            .and_then(|_| std::fs::rename(&part, &data));
    if let Err(e) = finish {
        let _ = std::fs::remove_file(&part);
        return Err(io(e));
    }
    Ok(Prefetched::Spooled(trailer.len))
}

/// Adds a download's outcome to the host's stats (a segment not in the archive is no failure).
fn count(spool: &Spool, t: SegmentName, result: &Result<Prefetched, ReadError>) {
    let outcome = match result {
        Ok(Prefetched::Spooled(len)) => Outcome::Moved { raw: *len, stored: *len },
        Ok(Prefetched::ClaimedByCall) | Err(ReadError::Storage(StorageError::NotFound { .. })) => return,
        Err(e @ ReadError::Storage(_)) => Outcome::Failed { kind: "storage".into(), message: e.to_string() },
        Err(e) => Outcome::Failed { kind: "corrupt".into(), message: e.to_string() },
    };
    // The spool is `pg_wal/.walvault/prefetch`: the stats sit in its parent.
    if let Some(state) = spool.dir.parent() {
        StatsFile::in_state_dir(state)
            .update(|s| s.prefetch.add(&t.to_string(), &outcome, 0.0, UtcTime::now()));
    }
}

/// The prefetcher's main loop. Returns when idle (or at once if another prefetcher runs).
pub async fn run(cfg: &Config, storage: &Storage, spool: &Spool) -> Result<(), StorageError> {
    let Ok(Some(_lock)) = crate::state::daemon::try_lock(&spool.lock_path()) else { return Ok(()) };
    // Parts left by a prefetcher that was killed.
    for f in spool.entries().iter().filter(|f| f.ends_with(".part")) {
        let p = spool.dir.join(f);
        if std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() >= STALE_PART)
        {
            let _ = std::fs::remove_file(p);
        }
    }
    let seg_size = match identity::read(storage).await {
        Ok(Some(id)) => WalSegSize::new(u64::from(id.wal_segment_size)).unwrap_or(WalSegSize::DEFAULT),
        Ok(None) => return Ok(()),
        Err(identity::IdentityError::Storage(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let window = cfg.prefetch as u64;
    let mut want = spool.want();
    let mut last_request = Instant::now();
    // Segments already downloaded (or found missing) by this run, so none is fetched twice.
    let mut done: HashSet<SegmentName> = HashSet::new();
    let mut missing: Option<SegmentName> = None;
    let mut running = FuturesUnordered::new();
    let mut in_flight: HashSet<SegmentName> = HashSet::new();
    loop {
        let now_want = spool.want();
        if now_want != want {
            want = now_want;
            last_request = Instant::now();
            missing = None;
        }
        let Some(w) = want else { break };
        // Drop what recovery has gone past (never what it asked for last: that call may be taking it).
        spool.remove_where(|n| {
            n.parse::<WalFileName>()
                .ok()
                .and_then(|f| f.segment())
                .is_some_and(|s| s.timeline == w.timeline && s < w)
        });
        let first = w.segno(seg_size) + 1;
        for segno in first..first + window {
            if running.len() >= MAX_DOWNLOADS {
                break;
            }
            let t = SegmentName::from_segno(w.timeline, segno, seg_size);
            if missing.is_some_and(|m| t >= m) {
                break;
            }
            if done.contains(&t)
                || in_flight.contains(&t)
                || spool.dir.join(t.to_string()).exists()
                || spool.in_flight(t)
            {
                continue;
            }
            in_flight.insert(t);
            running.push(async move { (t, download(cfg, storage, spool, t).await) });
        }
        if running.is_empty() {
            if last_request.elapsed() > IDLE_EXIT {
                break;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        tokio::select! {
            Some((t, result)) = running.next() => {
                in_flight.remove(&t);
                done.insert(t);
                count(spool, t, &result);
                match result {
                    Ok(Prefetched::Spooled(len)) => tracing::info!("prefetched {t} ({len} bytes)"),
                    Ok(Prefetched::ClaimedByCall) => tracing::debug!("{t} is being fetched by wal-fetch itself"),
                    Err(ReadError::Storage(StorageError::NotFound { .. })) => {
                        tracing::debug!("{t} is not in the archive; prefetching stops there");
                        missing = Some(missing.map_or(t, |m| m.min(t)));
                    }
                    Err(e) => {
                        tracing::warn!("could not prefetch {t}: {e}");
                        missing = Some(missing.map_or(t, |m| m.min(t)));
                    }
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    // Nothing is waiting for us: remove what was not taken.
    while running.next().await.is_some() {}
    spool.remove_where(|_| true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(name: &str) -> (SegmentName, Vec<u8>) {
        let WalFileName::Segment(seg) = name.parse::<WalFileName>().unwrap() else { panic!("{name}") };
        // The long page header of the segment's first page: magic, info, timeline, address,
        // system id, segment size, block size.
        let mut b = vec![0u8; 1 << 20];
        b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        b[2..4].copy_from_slice(&0x0006u16.to_le_bytes());
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        let segno = u64::from_str_radix(&name[16..], 16).unwrap();
        b[8..16].copy_from_slice(&(segno << 20).to_le_bytes());
        b[24..32].copy_from_slice(&7u64.to_le_bytes());
        b[32..36].copy_from_slice(&(1u32 << 20).to_le_bytes());
        b[36..40].copy_from_slice(&8192u32.to_le_bytes());
        (seg, b)
    }

    /// What a prefetcher leaves once it has finished `name`.
    fn spooled(spool: &Spool, name: &str, bytes: &[u8], repo: &str) {
        spooled_with(spool, name, bytes, repo, true)
    }

    /// The same; `quick`: with the XXH3-128 a prefetcher of this version records.
    fn spooled_with(spool: &Spool, name: &str, bytes: &[u8], repo: &str, quick: bool) {
        std::fs::create_dir_all(spool.path()).unwrap();
        std::fs::write(spool.path().join(name), bytes).unwrap();
        let t = crate::object::encode::hash_file(&spool.path().join(name)).unwrap();
        let xxh3 = quick.then(|| xxh3_hex(twox_hash::XxHash3_128::oneshot(bytes)));
        let meta = Meta { len: t.len, sha256: hex::encode(t.sha256), xxh3, repo: repo.into() };
        std::fs::write(spool.path().join(format!("{name}.meta")), serde_json::to_vec(&meta).unwrap())
            .unwrap();
    }

    #[test]
    fn a_segment_the_prefetcher_finished_after_the_first_look_is_taken_not_downloaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("RECOVERYXLOG");
        let spool = Spool::beside(&dest);
        let name = "000000010000000000000003";
        let (seg, bytes) = segment(name);
        // The call looked: nothing. The prefetcher then finished it (no `.part` left).
        assert_eq!(spool.take(seg, &dest, "s3://r"), None);
        spooled(&spool, name, &bytes, "s3://r");
        match spool.claim_or_take(seg, &dest, "s3://r", Duration::from_secs(1)) {
            ClaimOrTaken::Taken(t) => assert_eq!(t.len, bytes.len() as u64),
            other => panic!("downloaded again: {other:?}"),
        }
        assert_eq!(std::fs::read(&dest).unwrap(), bytes);
        assert!(!spool.path().join(format!("{name}.part")).exists(), "the claim was left");

        // Not there at all: claimed, and the claim is released when dropped.
        let (seg4, _) = segment("000000010000000000000004");
        match spool.claim_or_take(seg4, &dest, "s3://r", Duration::from_secs(1)) {
            ClaimOrTaken::Claimed(claim) => {
                assert!(spool.in_flight(seg4));
                drop(claim);
                assert!(!spool.in_flight(seg4));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_spooled_copy_with_one_changed_byte_is_discarded_whichever_hash_its_metadata_has() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("RECOVERYXLOG");
        let spool = Spool::beside(&dest);
        for quick in [true, false] {
            for (i, name) in ["000000010000000000000004", "000000010000000000000005"].iter().enumerate() {
                let (seg, bytes) = segment(name);
                spooled_with(&spool, name, &bytes, "s3://r", quick);
                if i == 1 {
                    // One byte changed in place after the prefetcher verified and wrote it.
                    use std::os::unix::fs::FileExt;
                    let f = std::fs::OpenOptions::new().write(true).open(spool.path().join(name)).unwrap();
                    f.write_at(&[bytes[4096] ^ 0x01], 4096).unwrap();
                    assert_eq!(spool.take(seg, &dest, "s3://r"), None, "quick {quick}");
                    assert!(!spool.path().join(name).exists(), "a copy that does not verify is removed");
                } else {
                    let by = if quick { "XXH3-128" } else { "SHA-256" };
                    let taken = Some(Taken { len: bytes.len() as u64, checked_by: by });
                    assert_eq!(spool.take(seg, &dest, "s3://r"), taken, "quick {quick}");
                    assert!(std::fs::read(&dest).unwrap() == bytes);
                }
            }
        }
    }
}
