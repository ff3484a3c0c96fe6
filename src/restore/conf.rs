//! The recovery configuration a restore leaves in the data directory: values quoted for
//! `postgresql.conf`, a `restore_command` quoted for the shell PostgreSQL runs it with, and
//! `postgresql.auto.conf` edited so that recovery settings from the backed-up cluster (for
//! example from an earlier restore) are commented out and ours come last.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Settings that belong to one recovery and are replaced, not kept, when restoring.
const RECOVERY_SETTINGS: [&str; 11] = [
    "restore_command",
    "recovery_end_command",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_inclusive",
    "recovery_target_action",
    "recovery_target_timeline",
    "recovery_min_apply_delay",
];

/// A value as a `postgresql.conf` string: single quotes, with `'` doubled and backslashes,
/// newlines and carriage returns escaped (PostgreSQL's configuration scanner undoes these).
pub fn quote_conf(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// One argument for `/bin/sh`: bare when it holds only safe characters, else single-quoted.
fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:=,@".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// The `restore_command`: `exe wal-fetch ARGS %f %p`, each word quoted for the shell and `%`
/// doubled (PostgreSQL expands `%f`, `%p` and `%%` in the command). `None` if a word is not
/// UTF-8 (it could not be written to the configuration file faithfully).
pub fn restore_command<S: AsRef<OsStr>>(exe: &Path, args: &[S]) -> Option<String> {
    let mut words = vec![shell_quote(exe.to_str()?), "wal-fetch".to_string()];
    for a in args {
        words.push(shell_quote(a.as_ref().to_str()?));
    }
    let quoted: Vec<String> = words.iter().map(|w| w.replace('%', "%%")).collect();
    Some(format!("{} %f %p", quoted.join(" ")))
}

/// The setting a configuration line assigns, lower-cased (`None` for comments and blanks).
fn setting_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let end = t.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(t.len());
    Some(t[..end].to_ascii_lowercase())
}

/// `postgresql.auto.conf` with every recovery setting already there commented out, then a
/// comment line `note`, then `settings` (in order).
pub fn edit_auto_conf(existing: &[u8], note: &str, settings: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(existing.len() + 1024);
    for line in existing.split_inclusive(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if setting_of(&text).is_some_and(|k| RECOVERY_SETTINGS.contains(&k.as_str())) {
            out.extend_from_slice(b"# replaced by walvault restore: ");
        }
        out.extend_from_slice(line);
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("# {note}\n").as_bytes());
    for (k, v) in settings {
        out.extend_from_slice(format!("{k} = {}\n", quote_conf(v)).as_bytes());
    }
    out
}

/// Bytes of a path for messages and the tablespace map, if it can be written faithfully.
pub fn path_text(p: &Path) -> Option<&str> {
    let s = std::str::from_utf8(p.as_os_str().as_bytes()).ok()?;
    (!s.contains(['\n', '\r'])).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_quoting() {
        assert_eq!(quote_conf("plain"), "'plain'");
        assert_eq!(quote_conf("it's"), "'it''s'");
        assert_eq!(quote_conf(r"a\b"), r"'a\\b'");
        assert_eq!(quote_conf("a\nb"), r"'a\nb'");
        assert_eq!(quote_conf(""), "''");
    }

    #[test]
    fn restore_commands() {
        let c = restore_command(Path::new("/usr/bin/walvault"), &["--config", "/etc/wv/w.toml"]).unwrap();
        assert_eq!(c, "/usr/bin/walvault wal-fetch --config /etc/wv/w.toml %f %p");
        let c = restore_command(Path::new("/opt/my tools/walvault"), &["--config", "/etc/50%/it's.toml"])
            .unwrap();
        assert_eq!(c, r#"'/opt/my tools/walvault' wal-fetch --config '/etc/50%%/it'\''s.toml' %f %p"#);
        // Through the configuration file's quoting and back, the shell gets the same words.
        assert_eq!(
            quote_conf(&c),
            r#"'''/opt/my tools/walvault'' wal-fetch --config ''/etc/50%%/it''\\''''s.toml'' %f %p'"#
        );
        let bad = std::ffi::OsStr::from_bytes(b"/x\xff");
        assert!(restore_command(Path::new("/bin/w"), &[bad]).is_none());
    }

    #[test]
    fn auto_conf() {
        let old = b"# Do not edit this file manually!\narchive_mode = 'on'\nrestore_command = 'cp %p x'\n  Recovery_Target_Name='old'\nrecovery_target_timeline = 2";
        let s = vec![("recovery_target_lsn", "0/10".to_string())];
        let got = String::from_utf8(edit_auto_conf(old, "written by walvault", &s)).unwrap();
        assert_eq!(
            got,
            "# Do not edit this file manually!\narchive_mode = 'on'\n\
             # replaced by walvault restore: restore_command = 'cp %p x'\n\
             # replaced by walvault restore:   Recovery_Target_Name='old'\n\
             # replaced by walvault restore: recovery_target_timeline = 2\n\
             # written by walvault\nrecovery_target_lsn = '0/10'\n"
        );
        assert_eq!(String::from_utf8(edit_auto_conf(b"", "n", &[])).unwrap(), "# n\n");
    }
}
