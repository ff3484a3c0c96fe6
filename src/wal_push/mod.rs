//! `wal-push`: archive one WAL file, as PostgreSQL's `archive_command`. A file an earlier
//! upload already recorded is confirmed (the whole local file hashed again and compared with the
//! record) and answered at once; otherwise the call claims it and uploads it itself through the
//! engine in [`upload`].
//!
//! The confirming hash is XXH3-128 where the record has one (every upload of a file up to
//! 64 MiB), else SHA-256. Both are computed by the upload from the same bytes it archived, so a
//! file that differs from them by a single bit is never confirmed (XXH3-128 misses a change with
//! probability 2^-128). XXH3 is not collision-resistant, and need not be: whoever can write a
//! chosen file into `pg_wal` can as well rewrite the record in `pg_wal/.walvault` it is compared
//! with, so SHA-256 there would add no defence, only about 9 ms of CPU per 16 MiB segment. The
//! SHA-256 in the record still describes the archived object (and is logged).
//! A backlog of segments PostgreSQL has already marked ready is handed to the background pusher
//! ([`pusher`]), so it drains at the speed of the network while PostgreSQL's calls only confirm
//! what was pushed. Segments above 64 MiB stream through a temporary object ([`large`]).
//! The call exits 0 only once the object is durable.

pub mod large;
pub mod pusher;
pub mod upload;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::object::encode::Recorded;
use crate::repo::{Storage, StorageError, layout};
use crate::state::archive_status;
use crate::state::claims::Claims;
use crate::state::daemon::Launcher;
use crate::state::{RECORD_TRUST, now_secs};
use crate::wal::name::WalFileName;
use upload::{Ctx, Digests, record, upload};
pub use upload::{PushError, Pushed};

/// How long a call waits for the background pusher to finish a segment it is uploading before
/// uploading it too (create-only, so the second upload only verifies the first).
const CLAIM_WAIT: Duration = Duration::from_secs(120);

/// The directory `%p` is in (`pg_wal`).
pub fn wal_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Archives the WAL file at `path` into `storage`. With `upload_concurrency` above 1, a backlog
/// of files PostgreSQL has marked ready is handed to the background pusher (started through
/// `launcher`), and a file it already pushed is answered at once (after checking its SHA-256
/// against the record of that upload).
pub async fn push(
    cfg: &Config,
    storage: &Storage,
    path: &Path,
    launcher: Option<&Launcher>,
) -> Result<Pushed, PushError> {
    let started = Instant::now();
    let name = parse_name(path)?;
    let pg_wal = wal_dir(path);
    let ctx = Ctx::new(cfg, storage, pg_wal);
    if cfg.upload_concurrency == 1 {
        return push_itself(&ctx, path, name, started).await.map(|(p, _)| p);
    }
    if let Some(done) = confirm_pushed_ahead(&ctx, path, name).await? {
        return Ok(done);
    }
    ctx.state.prune(pg_wal);
    let claims = Claims::in_state_dir(ctx.state.path());
    let claim = match claims.try_claim(&name) {
        Ok(Some(c)) => Some(c),
        // The background pusher is uploading it: wait for it (or for its death).
        Ok(None) => claims.claim_waiting(&name, CLAIM_WAIT).unwrap_or(None),
        Err(e) => {
            tracing::warn!("cannot claim {name} in {}: {e}", ctx.state.path().display());
            None
        }
    };
    if let Some(launcher) = launcher {
        pusher::start_if_backlog(&ctx.state, &claims, pg_wal, name, launcher);
    }
    // Look again: the pusher may have recorded it between our first look and the claim.
    if let Some(done) = confirm_pushed_ahead(&ctx, path, name).await? {
        return Ok(done);
    }
    let (pushed, digests) = push_itself(&ctx, path, name, started).await?;
    // The pusher must not take it up again before PostgreSQL marks it done (nothing to guard
    // when PostgreSQL has not marked it ready: an operator's own call).
    if archive_status::is_ready(pg_wal, &name.to_string()) {
        record(&ctx, name, &digests);
    }
    drop(claim);
    Ok(pushed)
}

/// Uploads the file PostgreSQL asked for, and logs it.
async fn push_itself(
    ctx: &Ctx<'_>,
    path: &Path,
    name: WalFileName,
    started: Instant,
) -> Result<(Pushed, Digests), PushError> {
    let r = upload(ctx, path, name).await;
    if let Ok((Pushed::Archived { len, stored }, _)) = &r {
        tracing::info!(
            "archived {name} ({len} → {stored} bytes, {}, {}) in {} ms",
            ctx.cfg.compression,
            if ctx.cfg.keys.write_key().is_some() { "encrypted" } else { "not encrypted" },
            started.elapsed().as_millis()
        );
    }
    r
}

fn parse_name(path: &Path) -> Result<WalFileName, PushError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    file_name.parse().map_err(|e: crate::wal::name::NameError| PushError::Refused {
        path: path.into(),
        why: e.to_string(),
    })
}

/// Answers for a file an earlier call pushed ahead: the record must be for this repository and
/// its SHA-256 must equal the local file's (an old record is checked against the repository).
async fn confirm_pushed_ahead(
    ctx: &Ctx<'_>,
    path: &Path,
    name: WalFileName,
) -> Result<Option<Pushed>, PushError> {
    let Some(record) = ctx.state.pushed(&name) else { return Ok(None) };
    let untrusted = |why: &str| {
        tracing::info!("not trusting the record of {name} pushed ahead ({why}); pushing it");
        ctx.state.forget(&name);
        Ok(None)
    };
    if record.repo != ctx.storage.url() {
        return untrusted("it was for another repository");
    }
    // The upload's XXH3-128 of the bytes it archived, where it has one (from the same read as
    // their SHA-256): as sure a sign of any change as the SHA-256, at a tenth of the CPU (see
    // the module doc); else the SHA-256.
    let (p, rec) = (path.to_path_buf(), record.clone());
    let checked_by = tokio::task::spawn_blocking(move || {
        let earlier = Recorded { len: rec.len, sha256: &rec.sha256, xxh3: rec.xxh3.as_deref() };
        crate::object::encode::still_holds(&p, earlier)
    })
    .await
    .map_err(|e| PushError::Panicked(e.to_string()))?
    .map_err(|e| PushError::Read { path: path.into(), source: e })?;
    let Some(by) = checked_by else {
        return untrusted("the local file has changed since");
    };
    if now_secs().saturating_sub(record.pushed_at) > RECORD_TRUST.as_secs() {
        match ctx.storage.head(&layout::wal(&name)).await {
            Ok(_) => {}
            Err(StorageError::NotFound { .. }) => {
                return untrusted("the object is no longer in the repository");
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(
        "{name} was pushed ahead; the local file matches the upload (by {by}; SHA-256 {})",
        record.sha256
    );
    Ok(Some(Pushed::ConfirmedAhead))
}
