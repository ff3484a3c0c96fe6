//! `walvault check -d CONNINFO`: proof that archiving works now. The server's settings
//! (`wal_level`, `archive_mode`, an `archive_command` that runs walvault's wal-push with this
//! repository), the repository (reachable, of this server's cluster, its newest object readable
//! with the configured keys), then a WAL switch: the segment it completes must be in the
//! repository, and decode, within `--wait` (default 60 s). One finding per line, each failure
//! with what to fix.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Config, ConfigArgs};
use crate::object::read::{Discard, read_object};
use crate::replication::{ConnectOptions, ReplicationClient};
use crate::repo::identity;
use crate::repo::inventory;
use crate::repo::layout::{self, WalDir};
use crate::repo::{Storage, StorageError};
use crate::wal::WalFileName;

/// One finding.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// What was checked.
    pub check: String,
    /// Whether it is as it must be.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do about it, when it is not.
    pub fix: Option<String>,
}

/// `check` found something wrong (after printing the findings).
#[derive(Debug, thiserror::Error)]
#[error("check failed: {0} finding(s) need fixing")]
pub struct CheckFailed(pub usize);

/// Every finding.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// Everything passed.
    pub ok: bool,
    /// The findings, in the order they were made.
    pub findings: Vec<Finding>,
}

struct Findings(Vec<Finding>);

impl Findings {
    fn ok(&mut self, check: &str, detail: impl Into<String>) {
        self.0.push(Finding { check: check.into(), ok: true, detail: detail.into(), fix: None });
    }
    fn fail(&mut self, check: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Finding { check: check.into(), ok: false, detail: detail.into(), fix: Some(fix.into()) });
    }
}

/// The words of a shell command line (quotes and backslashes as `sh` reads them, no expansion).
pub fn shell_words(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut any) = (Vec::new(), String::new(), false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                any = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                any = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                any = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                any = true;
                cur.push(c);
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The repository `archive_command` archives into, if it says: `--repo URL`, or the `repo` of
/// its `--config FILE` (`Err` when that file cannot be read here).
fn command_repo(words: &[String]) -> Option<Result<String, String>> {
    let value = |flag: &str| {
        words.iter().enumerate().find_map(|(i, w)| {
            w.strip_prefix(&format!("{flag}="))
                .map(str::to_string)
                .or_else(|| (w == flag).then(|| words.get(i + 1).cloned()).flatten())
        })
    };
    if let Some(r) = value("--repo") {
        return Some(crate::config::RepoUrl::parse(&r).map(|u| u.to_string()).map_err(|e| e.to_string()));
    }
    let file = value("--config")?;
    let args = ConfigArgs { config: Some(file.clone().into()), ..Default::default() };
    Some(
        Config::resolve(&args)
            .map(|c| c.repo.to_string())
            .map_err(|e| format!("cannot read its config file {file} here: {e}")),
    )
}

/// Runs every check against the server at `opts`.
pub async fn check(cfg: &Config, storage: &Storage, opts: &ConnectOptions, timeout: Duration) -> CheckReport {
    let mut f = Findings(Vec::new());
    let mut client = match ReplicationClient::connect(&opts.clone().sql_session()).await {
        Ok(c) => {
            f.ok("connect", format!("connected, server version {}", c.server_version_num()));
            c
        }
        Err(e) => {
            f.fail(
                "connect",
                e.to_string(),
                "check the connection string (-d) and that the server accepts it",
            );
            return finish(f);
        }
    };
    let show = |rows: Result<Vec<Vec<Option<String>>>, _>| -> Result<String, String> {
        rows.map_err(|e: crate::replication::ReplicationError| e.to_string())?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .ok_or_else(|| "no value".to_string())
    };
    match show(client.query("show wal_level").await) {
        Ok(v) if v == "replica" || v == "logical" => f.ok("wal_level", v),
        Ok(v) => f.fail("wal_level", v, "set wal_level = replica in postgresql.conf and restart PostgreSQL"),
        Err(e) => f.fail("wal_level", e, "check the role may read settings"),
    }
    match show(client.query("show archive_mode").await) {
        Ok(v) if v == "on" || v == "always" => f.ok("archive_mode", v),
        Ok(v) => f.fail("archive_mode", v, "set archive_mode = on in postgresql.conf and restart PostgreSQL"),
        Err(e) => f.fail("archive_mode", e, "check the role may read settings"),
    }
    let example = format!(
        "archive_command = '/usr/local/bin/wal-push --config /etc/walvault/walvault.toml %p' (repo {})",
        storage.url()
    );
    match show(client.query("show archive_command").await) {
        Ok(cmd) => {
            let words = shell_words(&cmd);
            let runs_walvault = words.iter().any(|w| w.ends_with("wal-push"));
            if !runs_walvault {
                f.fail(
                    "archive_command",
                    format!("`{cmd}` does not run walvault's wal-push"),
                    format!("set {example} and reload"),
                );
            } else {
                match command_repo(&words) {
                    Some(Ok(r)) if r == storage.url() => f.ok("archive_command", format!("`{cmd}` archives into {r}")),
                    Some(Ok(r)) => f.fail(
                        "archive_command",
                        format!("`{cmd}` archives into {r}, not {}", storage.url()),
                        "point archive_command and this check at the same repository",
                    ),
                    Some(Err(e)) => f.ok("archive_command", format!("`{cmd}` runs wal-push; {e}: the archive test below decides")),
                    None => f.ok("archive_command", format!("`{cmd}` runs wal-push (its repository comes from WALVAULT_* variables: the archive test below decides)")),
                }
            }
        }
        Err(e) => f.fail("archive_command", e, "check the role may read settings (pg_read_all_settings)"),
    }
    let server_id = show(client.query("select system_identifier::text from pg_control_system()").await);
    match identity::read(storage).await {
        Ok(Some(id)) => {
            f.ok("repository", format!("{} is reachable", storage.url()));
            match &server_id {
                Ok(s) if *s == id.system_identifier => {
                    f.ok("system_identifier", format!("{s}, the repository's"))
                }
                Ok(s) => f.fail(
                    "system_identifier",
                    format!("the server is {s}, the repository belongs to {}", id.system_identifier),
                    identity::OTHER_CLUSTER_ADVICE,
                ),
                Err(e) => {
                    f.fail("system_identifier", e.clone(), "check the role may run pg_control_system()")
                }
            }
        }
        Ok(None) => {
            f.ok("repository", format!("{} is reachable and empty: the first push creates it", storage.url()))
        }
        Err(e) => {
            f.fail("repository", e.to_string(), "check repo, the credentials and that the store is reachable")
        }
    }
    match newest_object(storage).await {
        Ok(Some(key)) => match read_object(storage, &key, &cfg.keys, &mut Discard).await {
            Ok(_) => f.ok("key", format!("the newest object, {key}, decodes with the configured keys")),
            Err(e) => f.fail(
                "key",
                format!("{key}: {e}"),
                "configure the key it was written with (encryption_key_file, decryption_key_files)",
            ),
        },
        Ok(None) => f.ok("key", "no WAL archived yet to read"),
        Err(e) => f.fail("key", e.to_string(), "check the repository is reachable"),
    }
    archive_test(&mut f, &mut client, cfg, storage, timeout).await;
    client.close().await;
    finish(f)
}

/// The newest archived WAL segment's key.
async fn newest_object(storage: &Storage) -> Result<Option<object_store::path::Path>, StorageError> {
    let dirs = inventory::wal_dirs(storage).await?;
    for d in dirs.iter().rev().filter(|d| **d != WalDir::History) {
        let objects = inventory::wal_dir(storage, *d).await?;
        if let Some(o) = objects.iter().rev().find(|o| matches!(o.name, WalFileName::Segment(_))) {
            return Ok(Some(layout::wal(&o.name)));
        }
    }
    Ok(None)
}

/// Forces a WAL switch and waits for the segment it completes to be archived and readable.
async fn archive_test(
    f: &mut Findings,
    client: &mut ReplicationClient,
    cfg: &Config,
    storage: &Storage,
    timeout: Duration,
) {
    let first = |r: Result<Vec<Vec<Option<String>>>, crate::replication::ReplicationError>| {
        r.map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .ok_or_else(|| "no value".to_string())
    };
    if first(client.query("select pg_is_in_recovery()::text").await).as_deref() == Ok("true") {
        f.fail(
            "archiving",
            "the server is in recovery: a WAL switch is not possible there",
            "run walvault check against the primary",
        );
        return;
    }
    // Something to switch away from, as pgBackRest's check does it.
    let _ = client.query("select pg_create_restore_point('walvault check')").await;
    let name = match first(client.query("select pg_walfile_name(pg_switch_wal())").await) {
        Ok(n) => n,
        Err(e) => {
            f.fail(
                "archiving",
                format!("cannot switch WAL: {e}"),
                "run walvault check as a superuser (or a role that may run pg_switch_wal())",
            );
            return;
        }
    };
    let Ok(wal) = name.parse::<WalFileName>() else {
        f.fail(
            "archiving",
            format!("the server named the segment `{name}`"),
            "report this: it is not a WAL file name",
        );
        return;
    };
    let key = layout::wal(&wal);
    let started = Instant::now();
    tracing::info!(
        "switched to a new WAL segment; waiting up to {} for archive_command to archive {name}",
        crate::units::format_span(timeout)
    );
    loop {
        match read_object(storage, &key, &cfg.keys, &mut Discard).await {
            Ok(t) => {
                f.ok(
                    "archiving",
                    format!(
                        "{name} (switched just now) archived and readable ({} bytes) after {:.1} s",
                        t.len,
                        started.elapsed().as_secs_f64()
                    ),
                );
                return;
            }
            Err(crate::object::read::ReadError::Storage(StorageError::NotFound { .. }))
                if started.elapsed() < timeout =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(crate::object::read::ReadError::Storage(StorageError::NotFound { .. })) => {
                let why = first(client.query("select coalesce(last_failed_wal || ' failed at ' || last_failed_time, 'no failure recorded') from pg_stat_archiver").await)
                    .unwrap_or_default();
                f.fail(
                    "archiving",
                    format!(
                        "{name} was not archived within {} s (pg_stat_archiver: {why})",
                        timeout.as_secs()
                    ),
                    "look at PostgreSQL's log for archive_command's errors (wal-push logs to it)",
                );
                return;
            }
            Err(e) => {
                f.fail(
                    "archiving",
                    format!("{name} is in the repository but: {e}"),
                    "check the keys and the repository",
                );
                return;
            }
        }
    }
}

fn finish(f: Findings) -> CheckReport {
    CheckReport { ok: f.0.iter().all(|x| x.ok), findings: f.0 }
}

/// The report, a line per finding.
pub fn render(r: &CheckReport) -> String {
    let mut s = String::new();
    for x in &r.findings {
        s.push_str(&format!("{} {:<17} {}\n", if x.ok { "ok  " } else { "FAIL" }, x.check, x.detail));
        if let Some(fix) = &x.fix {
            s.push_str(&format!("     {:<17} fix: {fix}\n", ""));
        }
    }
    s.push_str(if r.ok { "archiving works\n" } else { "archiving does NOT work: see the fixes above\n" });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_sh_reads_them() {
        assert_eq!(
            shell_words("/usr/bin/wal-push --config '/etc/wal vault.toml' %p"),
            ["/usr/bin/wal-push", "--config", "/etc/wal vault.toml", "%p"]
        );
        assert_eq!(shell_words(r#"a "b \"c\"" d\ e ''"#), ["a", "b \"c\"", "d e", ""]);
        let w = shell_words("walvault wal-push --repo=file:///r %p");
        assert_eq!(command_repo(&w).unwrap().unwrap(), "file:///r");
        assert!(command_repo(&shell_words("wal-push %p")).is_none());
        assert!(command_repo(&shell_words("wal-push --config /nonexistent/x.toml %p")).unwrap().is_err());
    }
}
