//! Where a restore writes: the target directory and one directory per tablespace, each empty
//! or created (mode 0700) before anything is extracted, and emptied or removed again if the
//! restore fails. Also the `pg_tblspc/<oid>` links, the `tablespace_map`, and the final fsync
//! of everything written.

use std::fs::{DirBuilder, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// A directory the restore writes into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// The directory (absolute).
    pub path: PathBuf,
    /// Created by this restore (removed on failure) rather than found empty (emptied on failure).
    pub created: bool,
    /// The permission bits a found directory had before it was given mode 0700 (given back
    /// on failure).
    pub found_mode: Option<u32>,
}

/// Why a directory cannot be restored into.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// It has something in it.
    #[error("{0} is not empty")]
    NotEmpty(PathBuf),
    /// It is not a directory.
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// It could not be inspected or created.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// `p` made absolute and without `.`/`..` components (lexically; nothing is resolved).
pub fn normalize(p: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(p)?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Checks that `path` is an empty directory (then gives it mode 0700, as PostgreSQL wants its
/// data directory) or absent (then creates it, parents as needed, itself with mode 0700).
pub fn prepare(path: &Path) -> Result<Root, DirError> {
    let io = |source| DirError::Io { path: path.to_path_buf(), source };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            if std::fs::read_dir(path).map_err(io)?.next().is_some() {
                return Err(DirError::NotEmpty(path.to_path_buf()));
            }
            std::fs::set_permissions(path, PermissionsExt::from_mode(0o700)).map_err(io)?;
            Ok(Root {
                path: path.to_path_buf(),
                created: false,
                found_mode: Some(m.permissions().mode() & 0o7777),
            })
        }
        Ok(_) => Err(DirError::NotADirectory(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            DirBuilder::new().mode(0o700).create(path).map_err(io)?;
            // The mode is given at creation but the umask applies; make it exact.
            std::fs::set_permissions(path, PermissionsExt::from_mode(0o700)).map_err(io)?;
            Ok(Root { path: path.to_path_buf(), created: true, found_mode: None })
        }
        Err(e) => Err(io(e)),
    }
}

/// Undoes [`prepare`] and everything written since: removes a created directory, empties a
/// found one and gives it its mode back. Best effort; what cannot be removed is logged.
pub fn remove(root: &Root) {
    let result = if root.created {
        std::fs::remove_dir_all(&root.path)
    } else {
        std::fs::read_dir(&root.path).and_then(|entries| {
            for e in entries {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() { std::fs::remove_dir_all(&p)? } else { std::fs::remove_file(&p)? }
            }
            if let Some(mode) = root.found_mode {
                std::fs::set_permissions(&root.path, PermissionsExt::from_mode(mode))?;
            }
            Ok(())
        })
    };
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("could not remove what was restored into {}: {e}", root.path.display()),
    }
}

/// Makes `data/pg_tblspc/<oid>` a symbolic link to `dir`.
pub fn link_tablespace(data: &Path, oid: u32, dir: &Path) -> std::io::Result<()> {
    let tblspc = data.join("pg_tblspc");
    DirBuilder::new().recursive(true).mode(0o700).create(&tblspc)?;
    std::os::unix::fs::symlink(dir, tblspc.join(oid.to_string()))
}

/// The `tablespace_map` text for `(oid, location)` pairs (locations are checked beforehand to
/// hold no backslash, newline or carriage return, which PostgreSQL versions read differently).
pub fn tablespace_map(entries: &[(u32, String)]) -> String {
    entries.iter().map(|(oid, loc)| format!("{oid} {loc}\n")).collect()
}

/// Writes a small file (mode 0600) and syncs it.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// fsyncs every file and directory below `root` (not following symbolic links), then `root`
/// and its parent.
pub fn sync_tree(root: &Path) -> std::io::Result<()> {
    fn walk(dir: &Path) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                walk(&e.path())?;
            } else if t.is_file() {
                File::open(e.path())?.sync_all()?;
            }
        }
        File::open(dir)?.sync_all()
    }
    walk(root)?;
    sync_dir(root.parent().unwrap_or(Path::new("/")))
}

/// fsyncs a directory (its entries: names created, removed or renamed in it).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_and_remove() {
        let top = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // Absent: created 0700 with its parents, removed on failure.
        let a = top.path().join("x/y/data");
        let root = prepare(&a).unwrap();
        assert!(root.created);
        assert_eq!(mode(&a), 0o700);
        std::fs::write(a.join("f"), b"1").unwrap();
        assert!(matches!(prepare(&a), Err(DirError::NotEmpty(_))));
        remove(&root);
        assert!(!a.exists() && top.path().join("x/y").exists());
        // Empty: kept, emptied on failure.
        let b = top.path().join("b");
        std::fs::create_dir(&b).unwrap();
        std::fs::set_permissions(&b, PermissionsExt::from_mode(0o755)).unwrap();
        let root = prepare(&b).unwrap();
        assert!(!root.created);
        assert_eq!(mode(&b), 0o700);
        std::fs::create_dir_all(b.join("d/e")).unwrap();
        std::fs::write(b.join("d/e/f"), b"1").unwrap();
        std::os::unix::fs::symlink("/", b.join("l")).unwrap();
        remove(&root);
        assert!(b.exists() && std::fs::read_dir(&b).unwrap().next().is_none());
        assert_eq!(mode(&b), 0o755, "a found directory gets its mode back");
        // A file.
        std::fs::write(top.path().join("file"), b"").unwrap();
        assert!(matches!(prepare(&top.path().join("file")), Err(DirError::NotADirectory(_))));
    }

    #[test]
    fn normalizing() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")).unwrap(), PathBuf::from("/a/c"));
        assert!(normalize(Path::new("rel")).unwrap().is_absolute());
    }

    #[test]
    fn links_map_and_sync() {
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("data");
        std::fs::create_dir(&data).unwrap();
        link_tablespace(&data, 16384, Path::new("/srv/ts")).unwrap();
        assert_eq!(std::fs::read_link(data.join("pg_tblspc/16384")).unwrap(), PathBuf::from("/srv/ts"));
        assert_eq!(tablespace_map(&[(1, "/a".into()), (2, "/b c".into())]), "1 /a\n2 /b c\n");
        write_file(&data.join("f"), b"x").unwrap();
        sync_tree(&data).unwrap();
    }
}
