//! The password file (`~/.pgpass` or `PGPASSFILE`) with libpq's rules: lines
//! `hostname:port:database:username:password`, `*` matches anything, `\` escapes `:` and `\`,
//! `#` starts a comment line, the first matching line wins, and a file readable by group or
//! others is ignored with a warning.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What a connection is matched on.
#[derive(Debug, Clone, Copy)]
pub struct PassKey<'a> {
    /// Host name, or `localhost` for the default socket directory, or the socket directory.
    pub host: &'a str,
    /// Port, as digits.
    pub port: &'a str,
    /// Database (`replication` for a physical replication connection without a dbname).
    pub database: &'a str,
    /// User name.
    pub user: &'a str,
}

/// One field of a line: its unescaped text, and whether it was a bare `*` (an escaped `\*` is
/// the literal text `*`, as in libpq).
struct Field {
    text: String,
    wildcard: bool,
}

impl Field {
    fn matches(&self, want: &str) -> bool {
        self.wildcard || self.text == want
    }
}

/// Splits one line into its fields; the password keeps everything after the 4th `:`.
fn fields(line: &str) -> Option<[Field; 5]> {
    let mut out: Vec<(String, String)> = Vec::new();
    let (mut raw, mut text) = (String::new(), String::new());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw.push(c);
                if let Some(e) = chars.next() {
                    raw.push(e);
                    text.push(e);
                }
            }
            ':' if out.len() < 4 => out.push((std::mem::take(&mut raw), std::mem::take(&mut text))),
            c => {
                raw.push(c);
                text.push(c);
            }
        }
    }
    out.push((raw, text));
    let fields: Vec<Field> =
        out.into_iter().map(|(raw, text)| Field { wildcard: raw == "*", text }).collect();
    fields.try_into().ok()
}

/// The password of the first line of `contents` that matches `key`.
pub fn find_password(contents: &str, key: PassKey<'_>) -> Option<String> {
    contents
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(fields)
        .find(|[h, p, d, u, _]| {
            h.matches(key.host) && p.matches(key.port) && d.matches(key.database) && u.matches(key.user)
        })
        .map(|[.., pw]| pw.text)
        .filter(|pw| !pw.is_empty())
}

/// Reads `path` and looks `key` up; a missing file, a non-regular file or one readable by group
/// or others (warned about) gives `None`, as in libpq.
pub fn lookup(path: &Path, key: PassKey<'_>) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!("password file {} is not a plain file", path.display());
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let contents = std::fs::read_to_string(path).ok()?;
    find_password(&contents, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: PassKey<'static> = PassKey { host: "db1", port: "5432", database: "replication", user: "bob" };

    #[test]
    fn first_match_wins_with_wildcards() {
        let file = "# comment\n\
                    db2:5432:*:bob:wrong-host\n\
                    db1:5433:*:bob:wrong-port\n\
                    db1:*:postgres:bob:wrong-db\n\
                    *:*:*:alice:wrong-user\n\
                    db1:5432:replication:bob:right\n\
                    *:*:*:*:fallback\n";
        assert_eq!(find_password(file, KEY).as_deref(), Some("right"));
        assert_eq!(
            find_password(file, PassKey { user: "carol", ..KEY }).as_deref(),
            Some("fallback"),
            "a later wildcard line"
        );
        assert_eq!(find_password("", KEY), None);
        assert_eq!(find_password("db1:5432:replication:bob\n", KEY), None, "too few fields");
        assert_eq!(find_password("db1:5432:replication:bob:\n", KEY), None, "empty password");
    }

    #[test]
    fn escapes_and_colons_in_passwords() {
        let file = "h\\:x:5432:*:bob:pw\r\n*:*:*:bob:a\\:b:c\\\\d\n";
        assert_eq!(find_password(file, PassKey { host: "h:x", ..KEY }).as_deref(), Some("pw"));
        assert_eq!(find_password(file, KEY).as_deref(), Some("a:b:c\\d"));
        // An escaped star is the literal text `*`, not a wildcard.
        assert_eq!(find_password("\\*:*:*:*:x\n", KEY), None);
        assert_eq!(find_password("\\*:*:*:*:x\n", PassKey { host: "*", ..KEY }).as_deref(), Some("x"));
    }

    #[test]
    fn permissive_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgpass");
        std::fs::write(&p, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&p, KEY), None);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&p, KEY).as_deref(), Some("secret"));
        assert_eq!(lookup(&dir.path().join("missing"), KEY), None);
        assert_eq!(lookup(dir.path(), KEY), None);
    }
}
