//! Command-line front ends: argument definitions for `wal-push`, `wal-fetch` and `walvault`, and
//! the functions the thin binaries call (parse, log, run on a current-thread runtime, exit).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigArgs};
use crate::exit::{self, Command, CommandError};
use crate::storage::{OpenMode, Storage};

/// Archive one WAL file into the repository (PostgreSQL's archive_command: `wal-push %p`).
#[derive(Parser, Debug)]
#[command(name = "wal-push", version)]
pub struct PushArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The WAL file, as PostgreSQL passes it (%p, e.g. pg_wal/000000010000000A000000FF).
    path: PathBuf,
}

/// Restore one WAL file from the repository (PostgreSQL's restore_command: `wal-fetch %f %p`).
#[derive(Parser, Debug)]
#[command(name = "wal-fetch", version)]
pub struct FetchArgs {
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
#[command(name = "walvault", version)]
pub struct WalvaultArgs {
    #[command(subcommand)]
    command: WalvaultCommand,
}

#[derive(Subcommand, Debug)]
enum WalvaultCommand {
    /// Archive one WAL file (same as the wal-push binary).
    WalPush(PushArgs),
    /// Restore one WAL file (same as the wal-fetch binary).
    WalFetch(FetchArgs),
    /// Take a base backup over the replication protocol into the repository.
    BaseBackup(BaseBackupArgs),
    /// List the backups and, per timeline, the archived WAL with its gaps.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the resolved configuration, secrets redacted.
    Config {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Write a new random 32-byte key to FILE (mode 0600; never overwrites).
    Keygen {
        /// The key file to create.
        file: PathBuf,
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

/// `main` of the wal-push binary.
pub fn wal_push_main() -> ExitCode {
    match PushArgs::try_parse() {
        Ok(args) => run_push(args),
        Err(e) => usage(e, Command::WalPush),
    }
}

/// `main` of the wal-fetch binary.
pub fn wal_fetch_main() -> ExitCode {
    match FetchArgs::try_parse() {
        Ok(args) => run_fetch(args, Vec::new()),
        Err(e) => usage(e, Command::WalFetch),
    }
}

/// `main` of the walvault binary.
pub fn walvault_main() -> ExitCode {
    let args = match WalvaultArgs::try_parse() {
        Ok(a) => a,
        Err(e) => return usage(e, Command::Other),
    };
    match args.command {
        WalvaultCommand::WalPush(a) => run_push(a),
        WalvaultCommand::WalFetch(a) => run_fetch(a, vec!["wal-fetch".into()]),
        WalvaultCommand::BaseBackup(a) => run_base_backup(a),
        WalvaultCommand::List { config, json } => {
            crate::logging::init();
            let result = runtime().block_on(async {
                let cfg = Config::resolve(&config)?;
                let storage = Storage::open(&cfg, OpenMode::MustExist)?;
                let listing = crate::list::listing(&storage).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&listing).expect("listing serialises"));
                } else {
                    print!("{}", crate::list::render(&listing));
                }
                Ok::<_, CommandError>(())
            });
            exit::finish(Command::Other, result)
        }
        WalvaultCommand::Config { config } => {
            crate::logging::init();
            exit::finish(
                Command::Other,
                Config::resolve(&config).map(|c| print!("{}", c.describe())).map_err(Into::into),
            )
        }
        WalvaultCommand::Keygen { file } => {
            crate::logging::init();
            exit::finish(
                Command::Other,
                crate::keys::keygen(&file)
                    .map(|id| {
                        println!(
                            "wrote a new key to {} (key id {id}); keep a copy somewhere safe: \
                             without it, encrypted backups cannot be restored",
                            file.display()
                        )
                    })
                    .map_err(Into::into),
            )
        }
    }
}

fn run_push(args: PushArgs) -> ExitCode {
    crate::logging::init();
    let span = tracing::info_span!("wal-push", file = %args.path.display());
    let _g = span.enter();
    let result = runtime().block_on(async {
        let cfg = Config::resolve(&args.config)?;
        let storage = Storage::open(&cfg, OpenMode::Create)?;
        crate::push::push(&cfg, &storage, &args.path).await?;
        Ok::<_, CommandError>(())
    });
    exit::finish(Command::WalPush, result)
}

/// `subcommand` is what precedes wal-fetch's own arguments when this executable is started
/// again as the prefetcher (`wal-fetch` under the walvault binary).
fn run_fetch(args: FetchArgs, subcommand: Vec<std::ffi::OsString>) -> ExitCode {
    crate::logging::init();
    if let Some(spool) = &args.prefetch_daemon {
        let _g = tracing::info_span!("wal-fetch prefetcher").entered();
        let result = runtime().block_on(async {
            let cfg = Config::resolve(&args.config)?;
            let storage = Storage::open(&cfg, OpenMode::MustExist)?;
            crate::prefetch::run(&cfg, &storage, &crate::prefetch::Spool::at(spool)).await?;
            Ok::<_, CommandError>(())
        });
        return exit::finish(Command::Other, result);
    }
    let (Some(name), Some(destination)) = (&args.name, &args.destination) else {
        unreachable!("clap requires NAME and DESTINATION without --prefetch-daemon")
    };
    let span = tracing::info_span!("wal-fetch", file = %name);
    let _g = span.enter();
    let launcher = std::env::current_exe().ok().map(|exe| crate::prefetch::Launcher {
        exe,
        args: subcommand.into_iter().chain(args.config.to_args()).collect(),
    });
    let result = runtime().block_on(async {
        let cfg = Config::resolve(&args.config)?;
        let storage = Storage::open(&cfg, OpenMode::MustExist)?;
        crate::fetch::fetch(&cfg, &storage, name, destination, launcher.as_ref()).await?;
        Ok::<_, CommandError>(())
    });
    exit::finish(Command::WalFetch, result)
}

fn run_base_backup(args: BaseBackupArgs) -> ExitCode {
    crate::logging::init();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = runtime().block_on(async {
        let cfg = Config::resolve(&args.config)?;
        let storage = Storage::open(&cfg, OpenMode::Create)?;
        let req = crate::backup::BackupRequest {
            conninfo: args.conninfo.clone(),
            label: args.label.clone(),
            fast_checkpoint: args.fast_checkpoint,
            progress,
        };
        let descriptor = crate::backup::base_backup(&cfg, &storage, &req).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&descriptor).expect("descriptor serialises"));
        }
        Ok::<_, CommandError>(())
    });
    exit::finish(Command::Other, result)
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
    crate::logging::init();
    // clap's rendering is several lines; the first names the problem.
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ").to_string();
    exit::finish(cmd, Err(CommandError::Usage(format!("{first} (see --help)"))))
}
