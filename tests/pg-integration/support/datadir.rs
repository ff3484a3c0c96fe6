//! A PostgreSQL-like data directory for running wal-push and wal-fetch as PostgreSQL runs them
//! (in the data directory, with `%p` relative to it), and the config lines and keys the tests
//! give them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Run, Scratch, bins};

pub const SEG_1M: u32 = 1 << 20;
pub const SYSID: u64 = 7_300_000_000_000_000_001;

/// A data directory with `pg_wal/`; wal-push runs in it like PostgreSQL runs archive_command.
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    pub fn new(scratch: &Scratch) -> DataDir {
        let path = scratch.subdir(&super::unique("data"));
        std::fs::create_dir_all(path.join("pg_wal")).unwrap();
        DataDir { path }
    }

    /// Writes `pg_wal/<name>` and returns the relative path PostgreSQL would pass (%p).
    pub fn wal(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.path.join("pg_wal").join(name), bytes).unwrap();
        format!("pg_wal/{name}")
    }

    /// wal-push in this data directory with `config` and `args` (`%p`, or the pusher's flag).
    pub fn push_cmd(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&bins().push);
        cmd.current_dir(&self.path).arg("--config").arg(config).args(args);
        cmd
    }

    pub fn push(&self, config: &Path, rel: &str) -> Run {
        Run::of(&mut self.push_cmd(config, &[rel]))
    }

    /// Runs wal-fetch like restore_command: `wal-fetch NAME pg_wal/RECOVERYXLOG`.
    pub fn fetch(&self, config: &Path, name: &str) -> (Run, Option<Vec<u8>>) {
        let dest = self.path.join("pg_wal/RECOVERYXLOG");
        let _ = std::fs::remove_file(&dest);
        let run = Run::of(
            Command::new(&bins().fetch)
                .current_dir(&self.path)
                .arg("--config")
                .arg(config)
                .args([name, "pg_wal/RECOVERYXLOG"]),
        );
        let got = std::fs::read(&dest).ok();
        (run, got)
    }
}

/// Config lines for a codec and an optional key file.
pub fn extra(compression: &str, key: Option<&Path>) -> String {
    let mut s = format!("compression = \"{compression}\"\n");
    if let Some(k) = key {
        s.push_str(&format!("encryption_key_file = \"{}\"\n", k.display()));
    }
    s
}

pub fn keygen(scratch: &Scratch, name: &str) -> PathBuf {
    let p = scratch.path().join(name);
    Run::of(Command::new(&bins().walvault).arg("keygen").arg(&p)).expect(0);
    super::logs::add_key_file(&p);
    super::chown_to_pg(&p);
    p
}
