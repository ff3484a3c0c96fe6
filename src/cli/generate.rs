//! Shell completions and manual pages, generated from the clap definitions so they cannot drift
//! from the command line: `walvault completions SHELL` and `walvault man DIR`.

use std::io::Write;
use std::path::Path;

/// The three programs' definitions (`clap::CommandFactory::command()` of each).
pub struct Programs {
    /// `walvault`.
    pub walvault: clap::Command,
    /// `wal-push`.
    pub wal_push: clap::Command,
    /// `wal-fetch`.
    pub wal_fetch: clap::Command,
}

/// Writes the completion script of `walvault` for `shell`.
pub fn completions(
    mut walvault: clap::Command,
    shell: clap_complete::Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    clap_complete::generate(shell, &mut walvault, "walvault", out);
    out.flush()
}

/// Writes walvault.1, one walvault-<command>.1 per subcommand, wal-push.1 and wal-fetch.1 into
/// `dir` (created if missing; existing pages are replaced). Returns how many were written.
pub fn man_pages(programs: Programs, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut written = 0;
    // Built first, so the subcommands carry the global flags (-v, -q, --log-format) as
    // their --help does.
    let mut walvault = programs.walvault.name("walvault");
    walvault.build();
    for sub in walvault.get_subcommands().filter(|s| s.get_name() != "help") {
        // The page of `walvault restore` is walvault-restore(1), its title WALVAULT-RESTORE.
        let name = format!("walvault-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).bin_name(format!("walvault {}", sub.get_name()));
        write_page(dir, &name, page)?;
        written += 1;
    }
    write_page(dir, "walvault", walvault)?;
    write_page(dir, "wal-push", programs.wal_push)?;
    write_page(dir, "wal-fetch", programs.wal_fetch)?;
    Ok(written + 3)
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> std::io::Result<()> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut roff)?;
    // Written whole to a temporary name, then renamed: a failure never leaves half a page.
    let tmp = dir.join(format!(".{name}.1.tmp"));
    std::fs::write(&tmp, &roff)?;
    std::fs::rename(&tmp, dir.join(format!("{name}.1")))
}
