//! Applies tar member events to one directory tree (the data directory, or one tablespace's
//! directory), refusing anything that could write outside it: absolute paths, `..`
//! components, links that lead out, hard links, devices. Files keep their tar modes and
//! modification times. Parts of one archive are extracted concurrently into the same tree, so
//! parent directories are created on demand (0700) and get their own mode when their member
//! comes.

use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use thiserror::Error;

use crate::tar::read::{Event, Kind, Member, TarError};

/// Why a member was not extracted.
#[derive(Debug, Error)]
pub enum ExtractError {
    /// The tar stream itself is malformed.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// A member's path or link target would lead outside the directory, or is unusable.
    #[error("refused tar member {path:?}: {why}")]
    Unsafe {
        /// The path as stored in the archive.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Writing to the local file system failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// What one extraction wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub links: u64,
    /// Bytes of file data.
    pub bytes: u64,
}

/// The file being written.
struct Open {
    file: File,
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

/// Extracts into one root directory.
pub struct Extractor {
    root: PathBuf,
    open: Option<Open>,
    stats: Stats,
}

/// A member path made safe: relative, without `..`, `.` or empty components. `None` for the
/// root itself (`./`).
pub fn safe_relative(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    if raw.is_empty() {
        return Err("empty path");
    }
    if raw.contains(&0) {
        return Err("NUL byte in path");
    }
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` in path"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// A symbolic link target that cannot lead out of the tree: relative, without `..`, so it
/// resolves below the link's own directory (and so does any chain of such links).
fn safe_link_target(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.is_empty() || raw.contains(&0) {
        return Err("empty link target");
    }
    let p = Path::new(OsStr::from_bytes(raw));
    for c in p.components() {
        match c {
            Component::ParentDir => return Err("symbolic link target with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("symbolic link to an absolute path"),
            _ => {}
        }
    }
    Ok(p.to_path_buf())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io { path: path.to_path_buf(), source }
}

/// Creates `dir` and any missing parents with mode 0700 (an existing directory is fine).
fn make_dirs(dir: &Path) -> Result<(), ExtractError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))
}

impl Extractor {
    /// An extractor writing below `root` (which exists).
    pub fn new(root: &Path) -> Extractor {
        Extractor { root: root.to_path_buf(), open: None, stats: Stats::default() }
    }

    /// What was written so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event<'_>) -> Result<(), ExtractError> {
        match event {
            Event::Member(m) => self.member(m),
            Event::Data(d) => {
                let open = self.open.as_mut().ok_or(TarError::Truncated(0))?;
                open.file.write_all(d).map_err(io(&open.path))?;
                self.stats.bytes += d.len() as u64;
                Ok(())
            }
            Event::MemberEnd => match self.open.take() {
                Some(o) => {
                    o.file.set_modified(UNIX_EPOCH + Duration::from_secs(o.mtime)).map_err(io(&o.path))?;
                    // fchmod, so the mode is the archive's whatever the umask.
                    o.file.set_permissions(PermissionsExt::from_mode(o.mode)).map_err(io(&o.path))?;
                    Ok(())
                }
                None => Ok(()),
            },
        }
    }

    fn member(&mut self, m: Member) -> Result<(), ExtractError> {
        let shown = || String::from_utf8_lossy(&m.path).into_owned();
        let unsafe_ = |why| ExtractError::Unsafe { path: shown(), why };
        let rel = safe_relative(&m.path).map_err(unsafe_)?;
        let mode = m.mode & 0o777;
        let Some(rel) = rel else {
            // The root itself: its mode is decided by the restore, not the archive.
            return match m.kind {
                Kind::Dir => Ok(()),
                _ => Err(unsafe_("the archive's root is not a directory")),
            };
        };
        let path = self.root.join(&rel);
        if let Some(parent) = path.parent() {
            make_dirs(parent)?;
        }
        match m.kind {
            Kind::Dir => {
                make_dirs(&path)?;
                std::fs::set_permissions(&path, PermissionsExt::from_mode(mode)).map_err(io(&path))?;
                self.stats.dirs += 1;
            }
            Kind::File => {
                // O_NOFOLLOW: never write through a symbolic link.
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(io(&path))?;
                self.open = Some(Open { file, path, mode, mtime: m.mtime });
                self.stats.files += 1;
            }
            Kind::Symlink(target) => {
                let target = safe_link_target(&target).map_err(unsafe_)?;
                std::os::unix::fs::symlink(&target, &path).map_err(io(&path))?;
                self.stats.links += 1;
            }
            Kind::Hardlink(_) => return Err(unsafe_("hard links are not restored (PostgreSQL writes none)")),
            Kind::Other(_) => {
                return Err(unsafe_("not a file, directory or symbolic link (PostgreSQL writes none)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::read::TarReader;
    use crate::tar::testutil::header;

    fn with_link(mut h: [u8; 512], target: &str) -> [u8; 512] {
        h[157..157 + target.len()].copy_from_slice(target.as_bytes());
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn extract(root: &Path, members: &[[u8; 512]]) -> Result<Stats, ExtractError> {
        let mut data = Vec::new();
        for m in members {
            data.extend_from_slice(m);
        }
        let mut r = TarReader::new();
        let mut x = Extractor::new(root);
        r.feed(&data, &mut |e| x.apply(e))?;
        Ok(x.stats())
    }

    #[test]
    fn paths() {
        let ok = |s: &str| safe_relative(s.as_bytes()).unwrap().map(|p| p.to_string_lossy().into_owned());
        assert_eq!(ok("a/b").as_deref(), Some("a/b"));
        assert_eq!(ok("./pg_wal/archive_status/").as_deref(), Some("pg_wal/archive_status"));
        assert_eq!(ok("a//./b/").as_deref(), Some("a/b"));
        assert_eq!(ok("./"), None);
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", ""] {
            assert!(safe_relative(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(safe_link_target(b"sub/x").is_ok());
        for bad in ["/etc", "../x", "a/../b", ""] {
            assert!(safe_link_target(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_dirs_modes() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = header("d/e/f", 3, b'0').to_vec();
        file.extend_from_slice(b"abc");
        file.resize(1024, 0);
        let mut members = vec![header("./", 0, b'5')];
        members.push(file[..512].try_into().unwrap());
        members.push(file[512..].try_into().unwrap());
        let mut d = header("d/", 0, b'5');
        d[100..107].copy_from_slice(b"0000750");
        members.push(with_link(d, ""));
        members.push(with_link(header("d/link", 0, b'2'), "e/f"));
        let stats = extract(dir.path(), &members).unwrap();
        assert_eq!(stats, Stats { files: 1, dirs: 1, links: 1, bytes: 3 });
        assert_eq!(std::fs::read(dir.path().join("d/e/f")).unwrap(), b"abc");
        assert_eq!(std::fs::read(dir.path().join("d/link")).unwrap(), b"abc");
        let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("d/e/f"), 0o600);
        assert_eq!(mode("d"), 0o750);
        assert_eq!(mode("d/e"), 0o700);
    }

    #[test]
    fn refuses_what_leads_outside() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let cases: Vec<Vec<[u8; 512]>> = vec![
            vec![header("../escape", 0, b'0')],
            vec![header("/tmp/escape", 0, b'0')],
            vec![header("a/../../escape", 0, b'0')],
            vec![with_link(header("l", 0, b'2'), "../")],
            vec![with_link(header("l", 0, b'2'), "/etc")],
            vec![with_link(header("h", 0, b'1'), "x")],
            vec![header("dev", 0, b'3')],
            vec![header("fifo", 0, b'6')],
        ];
        for members in cases {
            let err = extract(&root, &members).unwrap_err();
            assert!(matches!(err, ExtractError::Unsafe { .. }), "{err}");
        }
        assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 1, "nothing written beside the root");
        // A file may not be written through a symbolic link (even one pointing inside).
        let members = vec![with_link(header("l", 0, b'2'), "target"), header("l", 0, b'0')];
        assert!(matches!(extract(&root, &members), Err(ExtractError::Io { .. })));
    }
}
