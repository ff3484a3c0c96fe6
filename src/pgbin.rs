//! PostgreSQL's client and server programs of one major version (`pg_dump`, `pg_restore`,
//! `postgres`, `pg_ctl`, `psql`, …): an explicit `--pg-bin DIR`, else Debian's and Red Hat's
//! places, else PATH (where the first program's `--version` must name that major version).

use std::path::{Path, PathBuf};

/// The directory holding every one of `programs` for major version `major`, or the one line
/// saying where they were looked for and what to do.
pub fn find(dir: Option<&Path>, major: u32, programs: &[&str]) -> Result<PathBuf, String> {
    let has = |d: &Path| programs.iter().all(|p| d.join(p).is_file());
    let names = programs.join(", ");
    if let Some(d) = dir {
        return if has(d) {
            Ok(d.to_path_buf())
        } else {
            Err(format!("--pg-bin {}: not all of {names} are there", d.display()))
        };
    }
    let candidates = [
        PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
        PathBuf::from(format!("/usr/pgsql-{major}/bin")),
    ];
    if let Some(d) = candidates.iter().find(|d| has(d)) {
        return Ok(d.clone());
    }
    for d in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has(&d) && programs.first().is_some_and(|p| major_version(&d.join(p)) == Some(major)) {
            return Ok(d);
        }
    }
    Err(format!(
        "no PostgreSQL {major} programs ({names}) in /usr/lib/postgresql/{major}/bin, /usr/pgsql-{major}/bin \
         or PATH: give --pg-bin DIR"
    ))
}

/// [`find`], else the closest newer major version's programs in Debian's or Red Hat's places:
/// for clients that read older servers (`pg_dump` dumps any older server; `pg_restore` reads
/// the archives of any older `pg_dump`).
pub fn find_at_least(dir: Option<&Path>, major: u32, programs: &[&str]) -> Result<PathBuf, String> {
    let exact = find(dir, major, programs);
    if exact.is_ok() || dir.is_some() {
        return exact;
    }
    let has = |d: &Path| programs.iter().all(|p| d.join(p).is_file());
    for newer in major + 1..major + 20 {
        for d in [format!("/usr/lib/postgresql/{newer}/bin"), format!("/usr/pgsql-{newer}/bin")] {
            let d = PathBuf::from(d);
            if has(&d) {
                tracing::info!(
                    "using PostgreSQL {newer}'s {} for a PostgreSQL {major} server",
                    programs.join(", ")
                );
                return Ok(d);
            }
        }
    }
    exact
}

/// What `program --version` prints (`pg_dump (PostgreSQL) 15.18`), trimmed.
pub fn version_line(program: &Path) -> Option<String> {
    let out = std::process::Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The major version `program --version` reports.
pub fn major_version(program: &Path) -> Option<u32> {
    major_of_version_line(&version_line(program)?)
}

/// The major version in a `--version` line: the word after `(PostgreSQL)`
/// (`pg_dump (PostgreSQL) 15.18 (Debian 15.18-1)` → 15, `… 17devel` → 17).
pub fn major_of_version_line(line: &str) -> Option<u32> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "(PostgreSQL)")?;
    let v = words.next()?;
    let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions_come_from_the_word_after_postgresql() {
        assert_eq!(major_of_version_line("pg_dump (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)"), Some(15));
        assert_eq!(major_of_version_line("postgres (PostgreSQL) 17devel"), Some(17));
        assert_eq!(major_of_version_line("pg_restore (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(major_of_version_line("something else 15.1"), None);
    }

    #[test]
    fn an_explicit_directory_must_hold_every_program() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg_dump"), "").unwrap();
        assert!(find(Some(dir.path()), 15, &["pg_dump"]).is_ok());
        let e = find(Some(dir.path()), 15, &["pg_dump", "pg_restore"]).unwrap_err();
        assert!(e.contains("--pg-bin") && e.contains("pg_restore"), "{e}");
        let e = find(None, 4, &["no-such-program-here"]).unwrap_err();
        assert!(e.contains("PostgreSQL 4") && e.contains("give --pg-bin DIR"), "{e}");
    }
}
