//! The programs a dump command runs (pg_dump, pg_dumpall, pg_restore): the end of what they
//! print on stderr, kept bounded, their death with walvault's, and pg_dump's output written in
//! large pieces.
//!
//! pg_dump writes its archive through stdio, which glibc buffers in pieces of the pipe's
//! `st_blksize`: 4 KiB. Each of those writes wakes the thread reading the pipe, and the wake-ups,
//! not the bytes, are most of what a dump costs the kernel (125 000 writes for a 513 MB dump). Run
//! through coreutils' `stdbuf`, which only sets the buffer of the program's stdout before `main`
//! (LD_PRELOAD of its `libstdbuf.so`, then exec: same pid, same bytes, same exit status), pg_dump
//! writes [`STDOUT_BUFFER`] at a time. Where `stdbuf` is missing or does not work, the program
//! runs as it is.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The last bytes of a program's stderr kept for the error message.
const STDERR_TAIL: usize = 2000;

/// The last [`STDERR_TAIL`] bytes of a program's stderr (read to its end, kept bounded).
pub async fn stderr_tail(mut stderr: impl AsyncRead + Unpin) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    let text = String::from_utf8_lossy(&tail).into_owned();
    let start = text.len().saturating_sub(STDERR_TAIL);
    text[text.floor_char_boundary(start)..].trim().to_string()
}

/// The child is killed when walvault dies (even by SIGKILL), instead of running on until its
/// next write into a closed pipe.
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The stdout buffer a program run by [`with_large_writes`] gets (bytes): a
/// quarter of the pipe walvault makes (1 MiB, `pipe`); larger pieces measured slower (the writer
/// then waits for a drained pipe, and its buffer no longer stays in cache).
pub const STDOUT_BUFFER: usize = 256 * 1024;

/// A command running `program` with its stdout buffered in [`STDOUT_BUFFER`] pieces, through
/// `stdbuf` when this machine has a working one; else `program` plainly.
pub fn with_large_writes(program: &Path) -> tokio::process::Command {
    match stdbuf() {
        Some(stdbuf) => {
            let mut cmd = tokio::process::Command::new(stdbuf);
            cmd.arg(format!("--output={STDOUT_BUFFER}")).arg(program);
            cmd
        }
        None => tokio::process::Command::new(program),
    }
}

/// `stdbuf` from PATH, once checked to run a program (it fails when its library is missing).
fn stdbuf() -> Option<&'static Path> {
    static STDBUF: OnceLock<Option<PathBuf>> = OnceLock::new();
    STDBUF
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            let stdbuf = std::env::split_paths(&path).map(|dir| dir.join("stdbuf")).find(|p| p.is_file())?;
            let works = std::process::Command::new(&stdbuf)
                .arg(format!("--output={STDOUT_BUFFER}"))
                .arg("true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !works {
                tracing::debug!(
                    "{} does not work here: pg_dump writes in stdio's own pieces",
                    stdbuf.display()
                );
            }
            works.then_some(stdbuf)
        })
        .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The program runs under stdbuf with walvault's buffer size (stdbuf passes it to its
    /// library in `_STDBUF_O`), and its own arguments and output come through unchanged.
    #[tokio::test]
    async fn a_program_run_with_large_writes_gets_a_large_stdout_buffer() {
        let env = Path::new("/usr/bin/env");
        let out = with_large_writes(env).arg("WALVAULT_PROBE=1").output().await.expect("env runs");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).expect("utf-8");
        assert!(text.lines().any(|l| l == "WALVAULT_PROBE=1"), "the program's own arguments: {text}");
        assert!(
            text.lines().any(|l| l == format!("_STDBUF_O={STDOUT_BUFFER}")),
            "not run through stdbuf (coreutils has it on every Debian machine): {text}"
        );
    }
}
