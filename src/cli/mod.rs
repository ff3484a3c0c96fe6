//! Command-line front ends: argument definitions for `wal-push`, `wal-fetch` and `walvault`, the
//! functions the thin binaries call, and [`run`], the one helper every command runs through
//! (logger, current-thread runtime, configuration, repository, exit code).

pub mod alloc;
pub mod exit;
pub mod generate;
pub mod help;
pub mod logging;
pub mod record;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, ConfigArgs, RetentionTable, Table};
use crate::notify::{Event, Origin};
use crate::ops::retention::DeleteRequest;
use crate::ops::status::StatusRequest;
use crate::ops::status::scan::Cache;
use crate::ops::verify::drill::DrillRequest;
use crate::ops::verify::{VerifyError, VerifyRequest};
use crate::replication::ConnectOptions;
use crate::repo::{OpenMode, Storage};
use crate::restore::target::{self, Timestamp};
use crate::restore::{RecoveryTarget, TargetAction, TargetTimeline};
use crate::state::daemon::Launcher;
use crate::state::stats::Outcome;
use crate::units::UtcTime;
use crate::wal::lsn::Lsn;
use crate::wal_fetch::FetchError;
use crate::wal_push::Pushed;
use exit::{Command, CommandError};
use logging::LogArgs;

/// `--version`: the package version and the git revision it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("WALVAULT_GIT_REV"), ")");

/// Archive one WAL file into the repository (PostgreSQL's archive_command: `wal-push %p`).
#[derive(Parser, Debug)]
#[command(name = "wal-push", version = VERSION, after_help = help::WAL_PUSH)]
pub struct PushArgs {
    #[command(flatten)]
    push: Push,
    #[command(flatten)]
    log: LogArgs,
}

/// wal-push's own arguments (also `walvault wal-push`, where the logging flags are global).
#[derive(clap::Args, Debug)]
pub struct Push {
    #[command(flatten)]
    config: ConfigArgs,
    /// The WAL file, as PostgreSQL passes it (%p, e.g. pg_wal/000000010000000A000000FF).
    #[arg(required_unless_present_any = ["pusher_daemon", "send_alerts"])]
    path: Option<PathBuf>,
    /// Internal: run as the background pusher for this pg_wal directory.
    #[arg(long, hide = true, value_name = "PG_WAL", conflicts_with = "path")]
    pusher_daemon: Option<PathBuf>,
    /// Internal: post the pending alerts in this directory (started detached by a call).
    #[arg(long, hide = true, value_name = "DIR", conflicts_with_all = ["path", "pusher_daemon"])]
    send_alerts: Option<PathBuf>,
}

/// Restore one WAL file from the repository (PostgreSQL's restore_command: `wal-fetch %f %p`).
#[derive(Parser, Debug)]
#[command(name = "wal-fetch", version = VERSION, after_help = help::WAL_FETCH)]
pub struct FetchArgs {
    #[command(flatten)]
    fetch: Fetch,
    #[command(flatten)]
    log: LogArgs,
}

/// wal-fetch's own arguments (also `walvault wal-fetch`).
#[derive(clap::Args, Debug)]
pub struct Fetch {
    #[command(flatten)]
    config: ConfigArgs,
    /// The WAL file name PostgreSQL wants (%f).
    #[arg(required_unless_present = "prefetch_daemon")]
    name: Option<String>,
    /// Where to write it (%p, e.g. pg_wal/RECOVERYXLOG).
    #[arg(required_unless_present = "prefetch_daemon")]
    destination: Option<PathBuf>,
    /// Internal: run as the background prefetcher for this spool directory.
    #[arg(long, hide = true, value_name = "SPOOL", conflicts_with_all = ["name", "destination"])]
    prefetch_daemon: Option<PathBuf>,
}

/// PostgreSQL backups to object storage.
#[derive(Parser, Debug)]
#[command(name = "walvault", version = VERSION, after_help = help::WALVAULT)]
pub struct WalvaultArgs {
    #[command(subcommand)]
    command: WalvaultCommand,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand, Debug)]
enum WalvaultCommand {
    /// Archive one WAL file (same as the wal-push binary).
    #[command(after_help = help::WAL_PUSH)]
    WalPush(Push),
    /// Restore one WAL file (same as the wal-fetch binary).
    #[command(after_help = help::WAL_FETCH)]
    WalFetch(Fetch),
    /// Take a base backup over the replication protocol into the repository.
    #[command(after_help = help::BASE_BACKUP)]
    BaseBackup(BaseBackupArgs),
    /// List the backups, the logical dumps and, per timeline, the archived WAL with its gaps.
    #[command(after_help = help::LIST)]
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Restore a base backup into an empty directory, set up to recover to a target through wal-fetch.
    #[command(after_help = help::RESTORE)]
    Restore(Box<RestoreArgs>),
    /// Print the resolved configuration, secrets redacted.
    #[command(after_help = help::CONFIG)]
    Config {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Apply the retention policy: print which backups and WAL go and why (a dry run), or delete
    /// them with --confirm.
    #[command(after_help = help::DELETE)]
    Delete(DeleteArgs),
    /// Check that backups and WAL restore: read and verify every object, find WAL gaps, and with
    /// --restore-test restore and start a backup.
    #[command(after_help = help::VERIFY)]
    Verify(VerifyArgs),
    /// Show whether archiving works now and backups are fresh: backups, the newest archived WAL, the
    /// RPO, this host's counters; exit non-zero when a [status] threshold is crossed.
    #[command(after_help = help::STATUS)]
    Status(StatusArgs),
    /// Prove that archiving works now: the server's settings, the repository, the key, and a WAL
    /// switch that must reach the repository.
    #[command(after_help = help::CHECK)]
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Connection string or URI of the server to check (libpq's PG* variables fill in the rest).
        #[arg(short = 'd', long = "dbname", value_name = "CONNINFO")]
        conninfo: Option<String>,
        /// How long to wait for the switched segment to be archived.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = |s: &str| crate::units::parse_duration(s))]
        wait: std::time::Duration,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark a backup or dump kept (no retention policy deletes it) or not.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["keep", "unkeep"])))]
    #[command(after_help = help::MARK)]
    Mark {
        #[command(flatten)]
        config: ConfigArgs,
        /// The backup or dump id (see walvault list).
        id: String,
        /// Keep it: no policy deletes it.
        #[arg(long)]
        keep: bool,
        /// Let the policy apply to it again.
        #[arg(long)]
        unkeep: bool,
        /// ID is a base backup (when a dump has the same id).
        #[arg(long, conflicts_with = "dump")]
        backup: bool,
        /// ID is a logical dump (when a backup has the same id).
        #[arg(long)]
        dump: bool,
    },
    /// Take a logical dump (pg_dump -Fc) of one or more databases into the repository.
    #[command(after_help = help::DUMP)]
    Dump(DumpArgs),
    /// Restore one database of a dump with pg_restore (streamed and verified).
    #[command(after_help = help::DUMP_RESTORE)]
    DumpRestore(DumpRestoreArgs),
    /// Write one database of a dump (or its globals) to a file, verified, for pg_restore --list
    /// or a table-level restore.
    #[command(after_help = help::DUMP_FETCH)]
    DumpFetch(DumpFetchArgs),
    /// Write a new random 32-byte key to FILE (mode 0600; never overwrites).
    #[command(after_help = help::KEYGEN)]
    Keygen {
        /// The key file to create.
        file: PathBuf,
    },
    /// Print a shell completion script for SHELL on stdout.
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write manual pages (walvault.1, walvault-<command>.1, wal-push.1, wal-fetch.1) into DIR.
    #[command(after_help = help::MAN)]
    Man {
        /// The directory to write them into (created if missing).
        dir: PathBuf,
    },
}

/// `walvault base-backup`.
#[derive(clap::Args, Debug)]
pub struct BaseBackupArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Connection string or URI, as libpq takes it (PGHOST, PGPORT, PGUSER, PGPASSWORD, … fill in the rest).
    #[arg(short = 'd', long = "dbname", value_name = "CONNINFO")]
    conninfo: Option<String>,
    /// Backup label (default: walvault <backup id>).
    #[arg(long)]
    label: Option<String>,
    /// Ask the server for an immediate checkpoint instead of a spread one.
    #[arg(long)]
    fast_checkpoint: bool,
    /// Print the backup's descriptor (JSON) on stdout when done.
    #[arg(long)]
    json: bool,
}

/// `walvault dump`.
#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Connection string or URI (libpq's PG* variables fill in the rest); its database is the
    /// one dumped when no --database is given.
    #[arg(short = 'd', long = "dbname", value_name = "CONNINFO")]
    conninfo: Option<String>,
    /// A database to dump (repeatable).
    #[arg(long = "database", value_name = "DB", conflicts_with = "all_databases")]
    databases: Vec<String>,
    /// Every database that accepts connections, and the roles and tablespaces (pg_dumpall
    /// --globals-only).
    #[arg(long)]
    all_databases: bool,
    /// A label for the dump.
    #[arg(long)]
    label: Option<String>,
    /// PostgreSQL's programs (default: those of the server's major version in
    /// /usr/lib/postgresql/N/bin or /usr/pgsql-N/bin, else PATH).
    #[arg(long, value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// Print the dump's descriptor (JSON) on stdout when done.
    #[arg(long)]
    json: bool,
}

/// `walvault dump-restore`.
#[derive(clap::Args, Debug)]
pub struct DumpRestoreArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The dump id (see walvault list), or `latest`.
    id: String,
    /// The database of the dump to restore (needed when it holds several).
    #[arg(long, value_name = "DB")]
    database: Option<String>,
    /// Where to restore: the database to restore into (with --create: the one to connect to first).
    #[arg(short = 'd', long = "dbname", value_name = "CONNINFO")]
    conninfo: Option<String>,
    /// Create the database first (pg_restore --create).
    #[arg(long)]
    create: bool,
    /// Drop objects before recreating them (pg_restore --clean --if-exists).
    #[arg(long)]
    clean: bool,
    /// Parallel restore jobs (more than 1 fetches the dump to a temporary file first).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// PostgreSQL's programs (default: those of the dump's pg_dump major version).
    #[arg(long, value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// Where a temporary file goes when one is needed.
    #[arg(long, value_name = "DIR", default_value = "/tmp")]
    work_dir: PathBuf,
}

/// `walvault dump-fetch`.
#[derive(clap::Args, Debug)]
pub struct DumpFetchArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The dump id (see walvault list), or `latest`.
    id: String,
    /// The database of the dump (needed when it holds several).
    #[arg(long, value_name = "DB", conflicts_with = "globals")]
    database: Option<String>,
    /// The roles and tablespaces (SQL) instead of a database.
    #[arg(long)]
    globals: bool,
    /// The file to write (must not exist).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
}

/// `walvault delete`: the policy from `[retention]`, each flag overriding its key.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("one").args(["backup", "dump"])))]
pub struct DeleteArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Keep the N newest backups (by stop time).
    #[arg(long, value_name = "N")]
    retain_full: Option<u32>,
    /// Keep every moment of this window restorable (e.g. 7d, 36h).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// Backup folders without a descriptor older than this are a failed backup's leftovers (default 24h).
    #[arg(long, value_name = "DURATION")]
    older_than: Option<String>,
    /// Delete this one backup instead of applying the policy (WAL is left for the policy).
    #[arg(long, value_name = "ID", conflicts_with_all = ["retain_full", "keep_within", "keep_daily", "keep_weekly", "keep_monthly"])]
    backup: Option<String>,
    /// Delete this one logical dump instead of applying the policy.
    #[arg(long, value_name = "ID", conflicts_with_all = ["retain_full", "keep_within", "keep_daily", "keep_weekly", "keep_monthly"])]
    dump: Option<String>,
    /// With --backup or --dump: delete it even if it is marked keep.
    #[arg(long, requires = "one")]
    force: bool,
    /// Carry the plan out (without it nothing is deleted).
    #[arg(long)]
    confirm: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

impl DeleteArgs {
    /// The flags as a `[retention]` table, to merge over the file's.
    fn table(&self) -> RetentionTable {
        RetentionTable {
            retain_full: self.retain_full,
            keep_within: self.keep_within.clone(),
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            older_than: self.older_than.clone(),
            auto: None,
            dumps: None,
        }
    }
}

/// `walvault verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Only this backup (default: all of them).
    #[arg(long, value_name = "ID")]
    backup: Option<String>,
    /// Only this logical dump (default: all of them); with --restore-test, drill this dump (and
    /// the backup only if --backup names one).
    #[arg(long, value_name = "ID")]
    dump: Option<String>,
    /// Also read and verify every archived WAL file.
    #[arg(long)]
    wal: bool,
    /// Read everything again, whatever was verified before.
    #[arg(long)]
    full: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also restore the backup (default: the newest) into a temporary directory, start
    /// PostgreSQL on it, let it recover and check it (pg_amcheck --all), then remove it; and the
    /// dump (default: the newest) into a temporary cluster, comparing every table's row count.
    /// With --backup or --dump only what is named is drilled.
    #[arg(long)]
    restore_test: bool,
    /// With --restore-test: recover to this time instead of the end of the archive (repeatable:
    /// one drill per time).
    #[arg(long, value_name = "TIMESTAMP", requires = "restore_test",
          value_parser = |s: &str| s.parse::<Timestamp>().map(|t| t.to_string()).map_err(|e| e.to_string()))]
    target_time: Vec<String>,
    /// With --restore-test: PostgreSQL's binaries (default: those of the backup's major version
    /// in /usr/lib/postgresql/N/bin or /usr/pgsql-N/bin, else PATH).
    #[arg(long, value_name = "DIR", requires = "restore_test")]
    pg_bin: Option<PathBuf>,
    /// With --restore-test: where the temporary directory goes (default /tmp; keep the path short).
    #[arg(long, value_name = "DIR", requires = "restore_test", default_value = "/tmp")]
    work_dir: PathBuf,
    /// With --restore-test: how long recovery may take.
    #[arg(long, value_name = "DURATION", requires = "restore_test", default_value = "1h",
          value_parser = |s: &str| crate::units::parse_duration(s))]
    drill_timeout: std::time::Duration,
}

/// `walvault status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Print Prometheus's text exposition format.
    #[arg(long)]
    prometheus: bool,
    /// Also ask this server (an ordinary SQL session): WAL position, pg_stat_archiver, the RPO now.
    #[arg(short = 'd', long = "dbname", value_name = "CONNINFO")]
    conninfo: Option<String>,
    /// The data directory whose pg_wal/.walvault holds this host's counters.
    #[arg(long, env = "PGDATA", value_name = "DIR")]
    pgdata: Option<PathBuf>,
    /// Serve /metrics and /health on this address (e.g. 127.0.0.1:9187) instead of printing once.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["json", "prometheus"], value_parser = parse_listen)]
    listen: Option<String>,
    /// With --listen: how often the status is refreshed.
    #[arg(long, value_name = "DURATION", default_value = "60s", requires = "listen",
          value_parser = |s: &str| crate::units::parse_duration(s))]
    refresh: std::time::Duration,
    /// The cache of what the repository held last time (default: in $XDG_CACHE_HOME/walvault).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
}

/// `walvault restore`.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("target")
        .multiple(false)
        .args(["target_time", "target_lsn", "target_xid", "target_name", "target_immediate"])
))]
pub struct RestoreArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The data directory to restore into: empty or absent (it is created with mode 0700).
    #[arg(long, value_name = "DIR")]
    target_dir: PathBuf,
    /// The backup to restore: an id, or `latest`. Default: the newest backup that finished before
    /// the target (for --target-time and --target-lsn), else the newest.
    #[arg(long, value_name = "ID|latest")]
    backup: Option<String>,
    /// Recover up to this time (with its UTC offset): the last commit at or before it is kept.
    #[arg(long, value_name = "TIMESTAMP", value_parser = |s: &str| s.parse::<Timestamp>().map_err(|e| e.to_string()))]
    target_time: Option<Timestamp>,
    /// Recover up to this WAL position (e.g. 0/3000060).
    #[arg(long, value_name = "LSN", value_parser = |s: &str| target::parse_lsn(s).map_err(|e| e.to_string()))]
    target_lsn: Option<Lsn>,
    /// Recover up to and including the commit of this transaction.
    #[arg(long, value_name = "XID", value_parser = |s: &str| target::parse_xid(s).map_err(|e| e.to_string()))]
    target_xid: Option<u64>,
    /// Recover up to this restore point (pg_create_restore_point).
    #[arg(long, value_name = "NAME", value_parser = |s: &str| target::parse_name(s).map_err(|e| e.to_string()))]
    target_name: Option<String>,
    /// Recover only until the backup is consistent.
    #[arg(long)]
    target_immediate: bool,
    /// What the server does at the target (default: pause, PostgreSQL's default).
    #[arg(long, value_enum, requires = "target", value_name = "ACTION")]
    target_action: Option<TargetAction>,
    /// The timeline to recover along: latest (PostgreSQL's default), current, or a number.
    #[arg(long, value_name = "TIMELINE", value_parser = |s: &str| s.parse::<TargetTimeline>().map_err(|e| e.to_string()))]
    target_timeline: Option<TargetTimeline>,
    /// Restore tablespace OID into DIR instead of its original location (repeatable).
    #[arg(long = "tablespace-map", value_name = "OID=DIR", value_parser = parse_tablespace_map)]
    tablespace_map: Vec<(u32, PathBuf)>,
    /// Parts downloaded and unpacked at once.
    #[arg(long, value_name = "N", default_value_t = crate::restore::DEFAULT_CONCURRENCY as u16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Do not fsync the restored files (faster; a crash of this machine can then lose them).
    #[arg(long)]
    no_sync: bool,
}

/// `HOST:PORT` that resolves (`127.0.0.1:9187`, `[::1]:9187`, `localhost:9187`).
fn parse_listen(s: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    match s.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(s.to_string()),
        _ => Err(format!("`{s}` is not an address to listen on: write HOST:PORT, e.g. 127.0.0.1:9187")),
    }
}

fn parse_tablespace_map(s: &str) -> Result<(u32, PathBuf), String> {
    let (oid, dir) = s.split_once('=').ok_or("expected OID=DIR")?;
    let oid = oid.trim().parse::<u32>().map_err(|_| format!("`{oid}` is not a tablespace OID"))?;
    if dir.is_empty() {
        return Err("the directory is empty".into());
    }
    Ok((oid, PathBuf::from(dir)))
}

/// `main` of the wal-push binary.
pub fn wal_push_main() -> ExitCode {
    alloc::return_large_buffers();
    match PushArgs::try_parse() {
        Ok(args) => start(&args.log, Command::WalPush).unwrap_or_else(|| run_push(args.push, Vec::new())),
        Err(e) => usage(e, Command::WalPush),
    }
}

/// `main` of the wal-fetch binary.
pub fn wal_fetch_main() -> ExitCode {
    alloc::return_large_buffers();
    match FetchArgs::try_parse() {
        Ok(args) => start(&args.log, Command::WalFetch).unwrap_or_else(|| run_fetch(args.fetch, Vec::new())),
        Err(e) => usage(e, Command::WalFetch),
    }
}

/// Applies the logging flags; a bad `WALVAULT_LOG` ends the program here (exit code for `cmd`).
fn start(log: &LogArgs, cmd: Command) -> Option<ExitCode> {
    let configured = logging::configure(log);
    // Installed now, before any span is entered: a span made without a logger is never shown.
    logging::init();
    let refused = configured.err()?;
    Some(exit::finish(cmd, Err(CommandError::Usage(refused))))
}

/// `main` of the walvault binary.
pub fn walvault_main() -> ExitCode {
    // Parsing starts no thread: the allocator is tuned for the command before any does.
    let args = match WalvaultArgs::try_parse() {
        Ok(a) => a,
        Err(e) => return usage(e, Command::Other),
    };
    let cmd = match &args.command {
        WalvaultCommand::WalPush(_) => Command::WalPush,
        WalvaultCommand::WalFetch(_) => Command::WalFetch,
        _ => Command::Other,
    };
    match cmd {
        Command::WalPush | Command::WalFetch => alloc::return_large_buffers(),
        _ => alloc::tune_for_streams(),
    }
    if let Some(code) = start(&args.log, cmd) {
        return code;
    }
    match args.command {
        WalvaultCommand::WalPush(a) => run_push(a, vec!["wal-push".into()]),
        WalvaultCommand::WalFetch(a) => run_fetch(a, vec!["wal-fetch".into()]),
        WalvaultCommand::BaseBackup(a) => run_base_backup(a),
        WalvaultCommand::List { config, json } => {
            run(Command::Other, &config, OpenMode::MustExist, |cfg, storage| async move {
                let listing = crate::ops::list::listing(&storage, &cfg.retention).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&listing).expect("listing serialises"));
                } else {
                    print!("{}", crate::ops::list::render(&listing));
                }
                Ok(())
            })
        }
        WalvaultCommand::Restore(a) => run_restore(*a),
        WalvaultCommand::Config { config } => run_local(Command::Other, || {
            print!("{}", Config::resolve(&config)?.describe());
            Ok(())
        }),
        WalvaultCommand::Delete(a) => run_delete(a),
        WalvaultCommand::Verify(a) => run_verify(a),
        WalvaultCommand::Status(a) => run_status(a),
        WalvaultCommand::Check { config, conninfo, wait: timeout, json } => {
            run(Command::Other, &config, OpenMode::MustExist, |cfg, storage| async move {
                let opts = ConnectOptions::from_env_and_conninfo(conninfo.as_deref())
                    .map_err(|e| CommandError::Usage(e.to_string()))?;
                let report = crate::ops::check::check(&cfg, &storage, &opts, timeout).await;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report).expect("findings serialise"));
                } else {
                    print!("{}", crate::ops::check::render(&report));
                }
                if report.ok {
                    Ok(())
                } else {
                    Err(crate::ops::check::CheckFailed(report.findings.iter().filter(|f| !f.ok).count())
                        .into())
                }
            })
        }
        WalvaultCommand::Mark { config, id, keep, unkeep: _, backup, dump } => {
            use crate::ops::mark::Target;
            let target = (backup || dump).then_some(if dump { Target::Dump } else { Target::Backup });
            run(Command::Other, &config, OpenMode::MustExist, |_, storage| async move {
                crate::ops::mark::mark(&storage, &id, keep, target).await?;
                Ok(())
            })
        }
        WalvaultCommand::Dump(a) => run_dump(a),
        WalvaultCommand::DumpRestore(a) => {
            run(Command::Other, &a.config, OpenMode::MustExist, |cfg, storage| async move {
                let req = crate::dump::restore::RestoreRequest {
                    id: a.id.clone(),
                    database: a.database.clone(),
                    conninfo: a.conninfo.clone(),
                    create: a.create,
                    clean: a.clean,
                    jobs: a.jobs,
                    pg_bin: a.pg_bin.clone(),
                    work_dir: a.work_dir.clone(),
                };
                crate::dump::restore::restore(&cfg, &storage, &req).await?;
                Ok(())
            })
        }
        WalvaultCommand::DumpFetch(a) => {
            run(Command::Other, &a.config, OpenMode::MustExist, |cfg, storage| async move {
                crate::dump::restore::fetch(
                    &cfg,
                    &storage,
                    &a.id,
                    a.database.as_deref(),
                    a.globals,
                    &a.output,
                )
                .await?;
                Ok(())
            })
        }
        WalvaultCommand::Completions { shell } => run_local(Command::Other, || {
            generate::completions(WalvaultArgs::command(), shell, &mut std::io::stdout().lock()).map_err(
                |source| CommandError::Local { what: "writing the completion script".into(), source },
            )
        }),
        WalvaultCommand::Man { dir } => run_local(Command::Other, || {
            let programs = generate::Programs {
                walvault: WalvaultArgs::command(),
                wal_push: PushArgs::command(),
                wal_fetch: FetchArgs::command(),
            };
            let written = generate::man_pages(programs, &dir).map_err(|source| CommandError::Local {
                what: format!("writing man pages into {}", dir.display()),
                source,
            })?;
            println!("wrote {written} manual pages into {}", dir.display());
            Ok(())
        }),
        WalvaultCommand::Keygen { file } => run_local(Command::Other, || {
            let id = crate::keys::keygen(&file)?;
            println!(
                "wrote a new key to {} (key id {id}); keep a copy somewhere safe: \
                 without it, encrypted backups cannot be restored",
                file.display()
            );
            Ok(())
        }),
    }
}

/// The one run helper of every command that uses the repository: the logger, the runtime, the
/// configuration resolved from `config`, the repository opened for `mode`, then `body`; its
/// result becomes the exit code for `cmd` (logged once, in [`exit::finish`]).
fn run<F, Fut>(cmd: Command, config: &ConfigArgs, mode: OpenMode, body: F) -> ExitCode
where
    F: FnOnce(Config, Storage) -> Fut,
    Fut: Future<Output = Result<(), CommandError>>,
{
    run_observed(cmd, config, mode, body, |_, _| {})
}

/// [`run`], then `observe` sees the result (and the configuration, if it resolved) before it
/// becomes the exit code: wal-push and wal-fetch count their failures there, including those
/// before the command ran (a bad configuration, a repository that will not open).
fn run_observed<F, Fut, O>(cmd: Command, config: &ConfigArgs, mode: OpenMode, body: F, observe: O) -> ExitCode
where
    F: FnOnce(Config, Storage) -> Fut,
    Fut: Future<Output = Result<(), CommandError>>,
    O: FnOnce(&Result<(), CommandError>, Option<&Config>),
{
    logging::init();
    let started = std::time::Instant::now();
    let (result, cfg) = runtime().block_on(async {
        let cfg = match Config::resolve(config) {
            Ok(c) => c,
            Err(e) => return (Err(e.into()), None),
        };
        tracing::debug!(
            "configuration: repository {}, compression {}, {}",
            cfg.repo,
            cfg.compression,
            match cfg.keys.write_key() {
                Some(k) => format!("encrypting with key {}", k.id()),
                None => "not encrypting".into(),
            }
        );
        let storage = match Storage::open(&cfg, mode) {
            Ok(s) => s,
            Err(e) => return (Err(e.into()), Some(cfg)),
        };
        (body(cfg.clone(), storage).await, Some(cfg))
    });
    observe(&result, cfg.as_ref());
    tracing::debug!("done in {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    exit::finish(cmd, result)
}

/// [`run`] for commands that need neither the runtime nor the repository.
fn run_local(cmd: Command, body: impl FnOnce() -> Result<(), CommandError>) -> ExitCode {
    logging::init();
    exit::finish(cmd, body())
}

/// `subcommand` is what precedes wal-push's own arguments when this executable is started
/// again as the background pusher (`wal-push` under the walvault binary).
fn run_push(args: Push, subcommand: Vec<std::ffi::OsString>) -> ExitCode {
    if let Some(pg_wal) = &args.pusher_daemon {
        let _g = tracing::info_span!("wal-push pusher").entered();
        return run(Command::Other, &args.config, OpenMode::Create, |cfg, storage| async move {
            crate::wal_push::pusher::run(&cfg, &storage, pg_wal).await.map_err(|source| CommandError::Local {
                what: format!("background pusher for {}", pg_wal.display()),
                source,
            })
        });
    }
    if let Some(alerts) = &args.send_alerts {
        return run(Command::Other, &args.config, OpenMode::MustExist, |cfg, _| async move {
            record::send_pending(&cfg, alerts).await.map_err(|source| CommandError::Local {
                what: format!("alerts in {}", alerts.display()),
                source,
            })
        });
    }
    let Some(path) = &args.path else { unreachable!("clap requires PATH without --pusher-daemon") };
    let _g = tracing::info_span!("wal-push", file = %path.display()).entered();
    let launcher = Launcher::current(subcommand.into_iter().chain(args.config.to_args()).collect());
    let started = std::time::Instant::now();
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let pushed = std::cell::Cell::new(None);
    let (pushed, launcher) = (&pushed, &launcher);
    run_observed(
        Command::WalPush,
        &args.config,
        OpenMode::Create,
        |cfg, storage| async move {
            pushed.set(Some(crate::wal_push::push(&cfg, &storage, path, launcher.as_ref()).await?));
            Ok(())
        },
        |result, cfg| {
            let outcome = match (result, pushed.get()) {
                (Err(e), _) => record::failed(e),
                (Ok(()), Some(Pushed::Archived { len, stored })) => Outcome::Moved { raw: len, stored },
                (Ok(()), Some(Pushed::AlreadyArchived)) => Outcome::Already,
                (Ok(()), _) => Outcome::Ahead { raw: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) },
            };
            let secs = started.elapsed().as_secs_f64();
            record::call(record::Which::Push, path, &file, outcome, secs, cfg, launcher.as_ref());
        },
    )
}

/// `subcommand` is what precedes wal-fetch's own arguments when this executable is started
/// again as the prefetcher (`wal-fetch` under the walvault binary).
fn run_fetch(args: Fetch, subcommand: Vec<std::ffi::OsString>) -> ExitCode {
    if let Some(spool) = &args.prefetch_daemon {
        let _g = tracing::info_span!("wal-fetch prefetcher").entered();
        return run(Command::Other, &args.config, OpenMode::MustExist, |cfg, storage| async move {
            let spool = crate::wal_fetch::prefetch::Spool::at(spool);
            crate::wal_fetch::prefetch::run(&cfg, &storage, &spool).await?;
            Ok(())
        });
    }
    let (Some(name), Some(destination)) = (&args.name, &args.destination) else {
        unreachable!("clap requires NAME and DESTINATION without --prefetch-daemon")
    };
    let _g = tracing::info_span!("wal-fetch", file = %name).entered();
    let launcher = Launcher::current(subcommand.into_iter().chain(args.config.to_args()).collect());
    let started = std::time::Instant::now();
    let fetched = std::cell::Cell::new(None);
    let (fetched, launcher) = (&fetched, &launcher);
    run_observed(
        Command::WalFetch,
        &args.config,
        // A missing file:// directory is wal-fetch's to judge (see wal_fetch's table).
        OpenMode::Unchecked,
        |cfg, storage| async move {
            fetched.set(Some(
                crate::wal_fetch::fetch(&cfg, &storage, name, destination, launcher.as_ref()).await?,
            ));
            Ok(())
        },
        |result, cfg| {
            let outcome = match (result, fetched.get()) {
                (Err(CommandError::Fetch(FetchError::NotFound(_))), _) => Outcome::Already,
                (Err(e), _) => record::failed(e),
                (Ok(()), Some(f)) if f.from_spool => Outcome::Ahead { raw: f.len },
                (Ok(()), Some(f)) => Outcome::Moved { raw: f.len, stored: f.len },
                (Ok(()), None) => return,
            };
            let secs = started.elapsed().as_secs_f64();
            record::call(record::Which::Fetch, destination, name, outcome, secs, cfg, None);
        },
    )
}

fn run_base_backup(args: BaseBackupArgs) -> ExitCode {
    let args = &args;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    run(Command::Other, &args.config, OpenMode::Create, |cfg, storage| async move {
        let req = crate::backup::BackupRequest {
            conninfo: args.conninfo.clone(),
            label: args.label.clone(),
            fast_checkpoint: args.fast_checkpoint,
            progress,
        };
        let taken = crate::backup::base_backup(&cfg, &storage, &req).await;
        let event = match &taken {
            Ok(d) => Event::BackupSucceeded {
                id: d.id.clone(),
                stored_bytes: d.stored_bytes,
                seconds: (d.stop_time.datetime() - d.start_time.datetime()).as_seconds_f64(),
            },
            Err(e) => Event::BackupFailed { message: e.to_string() },
        };
        alert(&cfg, &event).await;
        let descriptor = taken?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&descriptor).expect("descriptor serialises"));
        }
        if cfg.retention.auto && cfg.retention.has_rules() {
            // [retention] auto = true: one CronJob line takes the backup and applies the policy.
            tracing::info!("applying the retention policy ({})", cfg.retention.describe());
            let req = DeleteRequest { policy: cfg.retention.clone(), confirm: true, ..Default::default() };
            let outcome =
                deleted(&cfg, crate::ops::retention::delete(&storage, &req, UtcTime::now()).await).await?;
            for line in crate::ops::retention::render(&outcome).lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!("{line}");
            }
        }
        Ok(())
    })
}

fn run_dump(args: DumpArgs) -> ExitCode {
    let args = &args;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json;
    run(Command::Other, &args.config, OpenMode::Create, |cfg, storage| async move {
        let req = crate::dump::take::DumpRequest {
            conninfo: args.conninfo.clone(),
            databases: args.databases.clone(),
            all_databases: args.all_databases,
            label: args.label.clone(),
            pg_bin: args.pg_bin.clone(),
            progress,
        };
        let taken = crate::dump::take::dump(&cfg, &storage, &req).await;
        let event = match &taken {
            Ok(d) => Event::DumpSucceeded {
                id: d.id.clone(),
                databases: d.databases.iter().map(|x| x.name.clone()).collect(),
                stored_bytes: d.stored_bytes,
                seconds: (d.stop_time.datetime() - d.start_time.datetime()).as_seconds_f64(),
            },
            Err(e) => Event::DumpFailed { message: e.to_string() },
        };
        alert(&cfg, &event).await;
        let descriptor = taken?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&descriptor).expect("descriptor serialises"));
        }
        if cfg.retention.auto && cfg.retention.dumps.is_some() {
            // [retention] auto = true: the dump rules (only those) after each dump.
            let policy = crate::config::RetentionPolicy {
                retain_full: None,
                keep_within: None,
                keep_daily: 0,
                keep_weekly: 0,
                keep_monthly: 0,
                older_than: cfg.retention.older_than,
                auto: false,
                dumps: cfg.retention.dumps.clone(),
            };
            tracing::info!("applying the dump retention policy ([retention.dumps])");
            let req = DeleteRequest { policy, confirm: true, ..Default::default() };
            let outcome =
                deleted(&cfg, crate::ops::retention::delete(&storage, &req, UtcTime::now()).await).await?;
            for line in crate::ops::retention::render(&outcome).lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!("{line}");
            }
        }
        Ok(())
    })
}

fn run_verify(args: VerifyArgs) -> ExitCode {
    let args = &args;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json;
    run(Command::Other, &args.config, OpenMode::MustExist, |cfg, storage| async move {
        let drill = if args.restore_test {
            let exe = std::env::current_exe()
                .map_err(|e| CommandError::Usage(format!("cannot find the walvault executable: {e}")))?;
            Some(DrillRequest {
                exe,
                config_args: fetch_config_args(&args.config)
                    .map_err(|e| CommandError::Usage(format!("cannot resolve a configuration path: {e}")))?,
                targets: args.target_time.clone(),
                pg_bin: args.pg_bin.clone(),
                work_dir: args.work_dir.clone(),
                timeout: args.drill_timeout,
            })
        } else {
            None
        };
        let req = VerifyRequest {
            backup: args.backup.clone(),
            dump: args.dump.clone(),
            wal: args.wal,
            full: args.full,
            progress,
            drill,
        };
        let report = crate::ops::verify::verify(&cfg, &storage, &req).await?;
        let m = &report.summary;
        alert(
            &cfg,
            &Event::VerifyDone { sound: report.sound(), problems: m.problems, unreadable: m.unreadable },
        )
        .await;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
        } else {
            print!("{}", crate::ops::verify::render(&report));
        }
        if !report.sound() {
            let m = &report.summary;
            return Err(VerifyError::Failed { problems: m.problems, unreadable: m.unreadable }.into());
        }
        Ok(())
    })
}

fn run_status(args: StatusArgs) -> ExitCode {
    let args = &args;
    run(Command::Other, &args.config, OpenMode::MustExist, |cfg, storage| async move {
        let server = match &args.conninfo {
            Some(c) => Some(
                ConnectOptions::from_env_and_conninfo(Some(c))
                    .map_err(|e| CommandError::Usage(e.to_string()))?,
            ),
            None => None,
        };
        let req = StatusRequest { pgdata: args.pgdata.clone(), server };
        if let Some(addr) = &args.listen {
            return crate::ops::status::listen::listen(&cfg, &storage, &req, addr, args.refresh)
                .await
                .map_err(|source| CommandError::Local { what: "status --listen".into(), source });
        }
        let path = args.cache.clone().or_else(|| crate::ops::status::scan::default_cache(storage.url()));
        let mut cache = path.as_deref().map(|p| Cache::load(p, storage.url())).unwrap_or_default();
        let s = crate::ops::status::status(&cfg, &storage, &req, &mut cache).await;
        if let Some(p) = &path {
            cache.save(p);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&s).expect("status serialises"));
        } else if args.prometheus {
            print!("{}", crate::ops::status::render::prometheus(&s));
        } else {
            print!("{}", crate::ops::status::render::text(&s));
        }
        s.verdict()?;
        Ok(())
    })
}

/// Posts `event` to `[notify]`'s webhook, if any (bounded; a failure is only logged).
async fn alert(cfg: &Config, event: &Event) {
    crate::notify::send::send(&cfg.notify, &Origin::new(&cfg.repo.to_string()), event).await;
}

/// Alerts about a `delete --confirm` that ran (or failed), and passes its result on.
async fn deleted(
    cfg: &Config,
    r: Result<crate::ops::retention::Outcome, crate::ops::retention::RetentionError>,
) -> Result<crate::ops::retention::Outcome, CommandError> {
    let event = match &r {
        Ok(o) => {
            Event::DeleteDone { backups_deleted: o.plan.deleted().count() as u64, bytes_freed: o.bytes_freed }
        }
        Err(e) => Event::DeleteFailed { message: e.to_string() },
    };
    alert(cfg, &event).await;
    Ok(r?)
}

fn run_delete(args: DeleteArgs) -> ExitCode {
    let args = &args;
    run(Command::Other, &args.config, OpenMode::MustExist, |cfg, storage| async move {
        let policy = cfg.retention_table.merged(&args.table()).resolve()?;
        let (backup, dump) = (args.backup.clone(), args.dump.clone());
        let req = DeleteRequest { policy, backup, dump, force: args.force, confirm: args.confirm };
        let outcome = crate::ops::retention::delete(&storage, &req, UtcTime::now()).await;
        let outcome = if args.confirm { deleted(&cfg, outcome).await? } else { outcome? };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&outcome).expect("plan serialises"));
        } else {
            print!("{}", crate::ops::retention::render(&outcome));
        }
        Ok(())
    })
}

fn run_restore(args: RestoreArgs) -> ExitCode {
    let args = &args;
    run(Command::Other, &args.config, OpenMode::MustExist, |cfg, storage| async move {
        let fetch_exe = std::env::current_exe()
            .map_err(|e| CommandError::Usage(format!("cannot find the walvault executable: {e}")))?;
        let target = match (&args.target_time, &args.target_lsn, &args.target_xid, &args.target_name) {
            (Some(t), ..) => Some(RecoveryTarget::Time(*t)),
            (_, Some(l), ..) => Some(RecoveryTarget::Lsn(*l)),
            (_, _, Some(x), _) => Some(RecoveryTarget::Xid(*x)),
            (.., Some(n)) => Some(RecoveryTarget::Name(n.clone())),
            _ if args.target_immediate => Some(RecoveryTarget::Immediate),
            _ => None,
        };
        let req = crate::restore::RestoreRequest {
            target_dir: args.target_dir.clone(),
            backup: args.backup.clone(),
            target,
            action: args.target_action,
            timeline: args.target_timeline,
            tablespace_map: args.tablespace_map.clone(),
            concurrency: usize::from(args.concurrency),
            sync: !args.no_sync,
            fetch_exe,
            fetch_args: fetch_config_args(&args.config)
                .map_err(|e| CommandError::Usage(format!("cannot resolve a configuration path: {e}")))?,
        };
        crate::restore::restore(&cfg, &storage, &req).await?;
        Ok(())
    })
}

/// The configuration arguments `restore_command` passes to `wal-fetch`: the same file and
/// flags as this run, with every path made absolute (PostgreSQL runs the command in the data
/// directory).
fn fetch_config_args(config: &ConfigArgs) -> std::io::Result<Vec<std::ffi::OsString>> {
    let mut c = config.clone();
    let abs = |p: &mut PathBuf| -> std::io::Result<()> {
        *p = std::path::absolute(&*p)?;
        Ok(())
    };
    if let Some(p) = c.config.as_mut() {
        abs(p)?;
    }
    if let Some(p) = c.encryption_key_file.as_mut() {
        abs(p)?;
    }
    for p in c.decryption_key_files.iter_mut().flatten() {
        abs(p)?;
    }
    Ok(c.to_args())
}

fn runtime() -> tokio::runtime::Runtime {
    // Repository files and directories are not world-readable (0640 / 0750), like pgBackRest's.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o027) };
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Prints clap's message; help and version exit 0, anything else is a usage error.
fn usage(e: clap::Error, cmd: Command) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // The flags were not parsed: the environment's choice (a bad WALVAULT_LOG yields to the
    // usage error, which is the one line to fix first).
    let _ = logging::configure(&LogArgs::default());
    logging::init();
    // clap's rendering is several lines; the first names the problem, and indented lines right
    // after it name the arguments concerned (e.g. those that are required).
    let text = e.render().to_string();
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("bad arguments").trim_start_matches("error: ").to_string();
    for more in lines.take_while(|l| l.starts_with("  ") && !l.trim().is_empty()) {
        first.push(' ');
        first.push_str(more.trim());
    }
    exit::finish(cmd, Err(CommandError::Usage(format!("{first} (see --help)"))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_lines_are_well_formed() {
        use clap::CommandFactory;
        super::WalvaultArgs::command().debug_assert();
        super::PushArgs::command().debug_assert();
        super::FetchArgs::command().debug_assert();
    }
}

#[cfg(test)]
mod generated {
    use super::generate::*;
    use super::{FetchArgs, PushArgs, WalvaultArgs};
    use clap::CommandFactory;

    fn programs() -> Programs {
        Programs {
            walvault: WalvaultArgs::command(),
            wal_push: PushArgs::command(),
            wal_fetch: FetchArgs::command(),
        }
    }

    #[test]
    fn every_command_has_an_example_in_its_help_and_its_page() {
        let mut missing = Vec::new();
        let top = WalvaultArgs::command();
        let mut all: Vec<(String, clap::Command)> =
            top.get_subcommands().map(|s| (format!("walvault {}", s.get_name()), s.clone())).collect();
        all.push(("walvault".into(), top.clone()));
        all.push(("wal-push".into(), PushArgs::command()));
        all.push(("wal-fetch".into(), FetchArgs::command()));
        for (name, mut cmd) in all {
            let help = cmd.render_long_help().to_string();
            if !help.contains("Examples") {
                missing.push(name);
            }
        }
        assert!(missing.is_empty(), "no Examples in the help of {missing:?}");

        let dir = tempfile::tempdir().unwrap();
        let n = man_pages(programs(), dir.path()).unwrap();
        assert_eq!(n, top.get_subcommands().count() + 3);
        let page = std::fs::read_to_string(dir.path().join("walvault-restore.1")).unwrap();
        assert!(page.contains(".TH walvault-restore"), "{}", &page[..200]);
        // The global flags are on every subcommand's page, as in its --help.
        assert!(
            page.contains("\\-\\-log\\-format") && page.contains("\\-\\-verbose"),
            "no global flags in the page"
        );
        assert!(
            page.contains("target\\-time") && page.contains("Examples"),
            "restore page lacks its options"
        );
        assert!(std::fs::read_to_string(dir.path().join("wal-push.1")).unwrap().contains("archive_command"));
    }

    #[test]
    fn completion_scripts_name_the_subcommands() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut out = Vec::new();
            completions(WalvaultArgs::command(), shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            for sub in ["base-backup", "restore", "status", "completions"] {
                assert!(text.contains(sub), "{shell} completion lacks {sub}");
            }
        }
    }
}
