//! Detached helper processes (wal-fetch's prefetcher, wal-push's background pusher): how one is
//! started from a call PostgreSQL made, and the `flock` that keeps it alone in its directory.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A helper's log is started afresh when it grows past this.
const LOG_LIMIT: u64 = 4 << 20;

/// How to start a helper: this executable with the same configuration flags.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The executable (wal-push, wal-fetch or walvault).
    pub exe: PathBuf,
    /// Arguments before the daemon flag: the subcommand under the walvault binary, then the
    /// configuration flags of the call.
    pub args: Vec<std::ffi::OsString>,
}

impl Launcher {
    /// The running executable, with `args` before the daemon flag; `None` if it cannot be found.
    pub fn current(args: Vec<std::ffi::OsString>) -> Option<Launcher> {
        std::env::current_exe().ok().map(|exe| Launcher { exe, args })
    }

    /// Starts `exe args… FLAG DIR` detached: its own session, no inherited descriptors (a
    /// caller's pipes and locks are never held open), stderr appended to `log`.
    pub fn spawn(&self, flag: &str, dir: &Path, log: &Path) -> std::io::Result<()> {
        use std::os::unix::process::CommandExt;
        if std::fs::metadata(log).is_ok_and(|m| m.len() > LOG_LIMIT) {
            let _ = std::fs::remove_file(log);
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(&self.args)
            .arg(flag)
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        // SAFETY: between fork and exec only async-signal-safe calls: setsid and close.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                // Do not hold PostgreSQL's descriptors open (pipes it waits on), nor our claims.
                for fd in 3..1024 {
                    libc::close(fd);
                }
                Ok(())
            });
        }
        cmd.spawn().map(|_| ())
    }
}

/// Takes the exclusive `flock` on `path` (created if absent, never deleted) if it is free.
pub fn try_lock(path: &Path) -> std::io::Result<Option<File>> {
    if let Some(dir) = path.parent() {
        crate::state::make_dir(dir)?;
    }
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    Ok(lock_nb(&f).then_some(f))
}

/// Takes the exclusive `flock` on `path` (created if absent, never deleted), waiting for it; held
/// until the returned file is closed.
pub fn lock_blocking(path: &Path) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether a helper holds the lock at `path`.
pub fn is_locked(path: &Path) -> bool {
    matches!(try_lock(path), Ok(None))
}

/// Tries the exclusive `flock` on `f` without waiting.
pub fn lock_nb(f: &File) -> bool {
    // SAFETY: flock on a file descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.lock");
        let held = try_lock(&path).unwrap().expect("free at first");
        assert!(try_lock(&path).unwrap().is_none());
        assert!(is_locked(&path));
        drop(held);
        assert!(!is_locked(&path));
        assert!(try_lock(&path).unwrap().is_some());
    }
}
