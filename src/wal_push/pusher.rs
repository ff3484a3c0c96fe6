//! wal-push's background pusher: a detached process, one per `pg_wal`, that uploads every file
//! PostgreSQL has marked ready, oldest first, while PostgreSQL's own (serial) wal-push calls only
//! confirm what it pushed. It is what lets a backlog drain with every core busy: without it,
//! nothing would encode while a call confirms.
//!
//! - Started by a wal-push call that sees other ready files nobody has pushed or claimed; a
//!   second pusher for the same `pg_wal` exits at once (`flock` on `.walvault/pusher.lock`, which
//!   holds the pusher's pid).
//! - Each file is claimed first ([`crate::state::claims`]), so a call never encodes it at the same time;
//!   a call asking for a file the pusher holds waits for the claim, then confirms the record.
//! - A record is written only after the create-only upload succeeded (as for every push), so a
//!   kill at any moment leaves no record of a file that is not durable. It never tries a file
//!   twice in one run: a failure is left for PostgreSQL's own call, which reports it.
//! - It exits after [`IDLE_EXIT`] with nothing to push, logging to `.walvault/pusher.log`.
//! - It keeps PostgreSQL's order where it matters: the archiver takes timeline history files
//!   first and never goes past one it cannot archive, so while a `.history` file is ready,
//!   nothing else is pushed ahead ([`pushable_ahead`]). A history refused as a conflict (a
//!   second primary promoted onto the same timeline number: split brain) therefore keeps that
//!   primary's segments out of the repository, where they would take names the rightful
//!   timeline needs.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::upload::{Ctx, push_ahead};
use crate::config::Config;
use crate::repo::Storage;
use crate::state::StateDir;
use crate::state::archive_status::{is_ready, ready_files};
use crate::state::claims::Claims;
use crate::state::daemon::{Launcher, is_locked, try_lock};
use crate::wal::name::WalFileName;

/// The pusher exits after this long with nothing to push.
pub const IDLE_EXIT: Duration = Duration::from_secs(2);
/// The pusher's lock (and pid) file, in the state directory.
pub const LOCK_FILE: &str = "pusher.lock";
/// The pusher's log, in the state directory.
pub const LOG_FILE: &str = "pusher.log";
/// How often the pusher looks for newly ready files while it has a free upload slot.
const POLL: Duration = Duration::from_millis(20);
/// Records of archived files are dropped at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Starts the pusher for `pg_wal` if another file than `current` is ready with neither a record
/// nor a claim, and none is running.
pub fn start_if_backlog(
    state: &StateDir,
    claims: &Claims,
    pg_wal: &Path,
    current: WalFileName,
    launcher: &Launcher,
) {
    let backlog = pushable_ahead(ready_files(pg_wal))
        .into_iter()
        .any(|n| n != current && state.pushed(&n).is_none() && !claims.is_claimed(&n));
    let lock = state.path().join(LOCK_FILE);
    if !backlog || is_locked(&lock) {
        return;
    }
    let dir = std::path::absolute(pg_wal).unwrap_or_else(|_| pg_wal.to_path_buf());
    if let Err(e) = launcher.spawn("--pusher-daemon", &dir, &state.path().join(LOG_FILE)) {
        tracing::warn!("cannot start the background pusher: {e}");
    }
}

/// Of the ready files (in the archiver's order, history files first), those that may be pushed
/// ahead: only the history files while any is ready, as PostgreSQL's archiver archives nothing
/// else until they are archived; else all of them.
pub fn pushable_ahead(ready: Vec<WalFileName>) -> Vec<WalFileName> {
    if ready.iter().any(|n| matches!(n, WalFileName::History(_))) {
        ready.into_iter().filter(|n| matches!(n, WalFileName::History(_))).collect()
    } else {
        ready
    }
}

/// The pusher's main loop for `pg_wal`. Returns when idle, or at once if another pusher runs.
pub async fn run(cfg: &Config, storage: &Storage, pg_wal: &Path) -> std::io::Result<()> {
    let ctx = Ctx::new(cfg, storage, pg_wal);
    crate::state::make_dir(ctx.state.path())?;
    // The call that started us may be looking at the lock at this moment: try a few times.
    let lock_path = ctx.state.path().join(LOCK_FILE);
    let mut lock = None;
    for _ in 0..20 {
        if let Some(f) = try_lock(&lock_path)? {
            lock = Some(f);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Some(mut lock) = lock else { return Ok(()) };
    lock.set_len(0)?;
    writeln!(lock, "{}", std::process::id())?;
    tracing::info!("background pusher started for {}", pg_wal.display());

    let claims = Claims::in_state_dir(ctx.state.path());
    let slots = cfg.upload_concurrency as usize;
    let ctx = &ctx;
    // Files claimed (or found claimed by a call) in this run: none is tried twice.
    let mut seen: HashSet<WalFileName> = HashSet::new();
    let mut running = FuturesUnordered::new();
    let (mut idle_since, mut pruned) = (Instant::now(), Instant::now());
    let mut pushed = 0usize;
    loop {
        if pruned.elapsed() >= PRUNE_EVERY {
            ctx.state.prune(pg_wal);
            pruned = Instant::now();
        }
        if running.len() < slots {
            for name in pushable_ahead(ready_files(pg_wal)) {
                if running.len() >= slots {
                    break;
                }
                if seen.contains(&name) || ctx.state.pushed(&name).is_some() {
                    continue;
                }
                let Some(claim) = claims.try_claim(&name)? else {
                    seen.insert(name);
                    continue;
                };
                seen.insert(name);
                // Look again now that it is ours: a call may have pushed it, or PostgreSQL
                // archived it, between the listing and the claim.
                if ctx.state.pushed(&name).is_some() || !is_ready(pg_wal, &name.to_string()) {
                    continue;
                }
                let path = pg_wal.join(name.to_string());
                running.push(async move {
                    let ok = push_ahead(ctx, &path, name).await;
                    drop(claim);
                    ok
                });
            }
        }
        if running.is_empty() {
            if idle_since.elapsed() >= IDLE_EXIT || !pg_wal.is_dir() {
                break;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        tokio::select! {
            Some(ok) = running.next() => {
                pushed += usize::from(ok);
                idle_since = Instant::now();
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    ctx.state.prune(pg_wal);
    tracing::info!("background pusher idle after pushing {pushed} files; exiting");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<WalFileName> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn nothing_goes_ahead_of_a_ready_history_file() {
        let segments = ["000000010000000000000003", "00000001000000000000000E.partial"];
        assert_eq!(pushable_ahead(names(&segments)), names(&segments));
        let with_history =
            ["00000002.history", "00000001000000000000000E.partial", "00000002000000000000000E"];
        assert_eq!(pushable_ahead(names(&with_history)), names(&["00000002.history"]));
        let two = ["00000002.history", "00000003.history", "000000030000000000000001"];
        assert_eq!(pushable_ahead(names(&two)), names(&["00000002.history", "00000003.history"]));
        assert_eq!(pushable_ahead(Vec::new()), Vec::new());
    }
}
