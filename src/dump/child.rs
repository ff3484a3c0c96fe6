//! The programs a dump command runs (pg_dump, pg_dumpall, pg_restore): the end of what they
//! print on stderr, kept bounded, and their death with walvault's.

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
