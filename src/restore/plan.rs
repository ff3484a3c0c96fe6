//! Where each archive of a backup is restored: the data directory and every tablespace, from
//! the descriptor and `--tablespace-map`, checked before anything is written (known OIDs,
//! absolute and distinct directories, none inside another or inside the data directory).

use std::path::{Path, PathBuf};

use super::conf;
use super::error::{RestoreError, local};
use super::layout;
use crate::repo::descriptor::Descriptor;
use crate::repo::layout as keys;

/// One directory tree to fill from one archive.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The archive's index in the descriptor.
    pub archive: usize,
    /// `None` for the data directory.
    pub oid: Option<u32>,
    /// Where it goes (absolute).
    pub dir: PathBuf,
    /// The tablespace's location when the backup was taken.
    pub original: Option<String>,
}

/// Where each archive goes, with the tablespace map checked: known OIDs, absolute and
/// distinct directories, none inside another or inside the data directory.
pub fn destinations(
    desc: &Descriptor,
    target_dir: &Path,
    tablespace_map: &[(u32, PathBuf)],
) -> Result<Vec<Destination>, RestoreError> {
    let usage = |m: String| RestoreError::Usage(m);
    let norm = |p: &Path| layout::normalize(p).map_err(local(p));
    let data = norm(target_dir)?;
    let known: Vec<u32> = desc.archives.iter().filter_map(|a| a.tablespace_oid).collect();
    for (i, (oid, dir)) in tablespace_map.iter().enumerate() {
        if !known.contains(oid) {
            let list = known.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            return Err(usage(format!(
                "--tablespace-map {oid}=…: backup {} has no tablespace {oid} (its tablespaces: {})",
                desc.id,
                if list.is_empty() { "none".into() } else { list }
            )));
        }
        if tablespace_map[..i].iter().any(|(o, _)| o == oid) {
            return Err(usage(format!("--tablespace-map gives tablespace {oid} twice")));
        }
        if !dir.is_absolute() {
            return Err(usage(format!(
                "--tablespace-map {oid}={}: the directory must be an absolute path",
                dir.display()
            )));
        }
    }
    let mut out = vec![Destination { archive: 0, oid: None, dir: data.clone(), original: None }];
    for (i, a) in desc.archives.iter().enumerate().skip(1) {
        let Some(oid) = a.tablespace_oid else {
            return Err(RestoreError::Descriptor {
                key: keys::descriptor(&desc.id).to_string(),
                message: format!("archive {} is neither base.tar nor a tablespace", a.name),
            });
        };
        let dir = match tablespace_map.iter().find(|(o, _)| *o == oid) {
            Some((_, dir)) => norm(dir)?,
            None => match &a.location {
                Some(loc) if Path::new(loc).is_absolute() => norm(Path::new(loc))?,
                _ => {
                    return Err(usage(format!(
                        "tablespace {oid} has no recorded location; give --tablespace-map {oid}=DIR"
                    )));
                }
            },
        };
        out.push(Destination { archive: i, oid: Some(oid), dir, original: a.location.clone() });
    }
    for (i, a) in out.iter().enumerate() {
        for b in &out[i + 1..] {
            if a.dir.starts_with(&b.dir) || b.dir.starts_with(&a.dir) {
                let name = |d: &Destination| match d.oid {
                    None => format!("the target directory {}", d.dir.display()),
                    Some(oid) => format!("tablespace {oid}'s directory {}", d.dir.display()),
                };
                return Err(usage(format!(
                    "{} and {} overlap; give each tablespace its own directory outside the data directory \
                     (--tablespace-map OID=DIR)",
                    name(a),
                    name(b)
                )));
            }
        }
    }
    Ok(out)
}

/// Whether a tablespace goes elsewhere than its original location, so `tablespace_map` must be
/// written anew.
pub fn map_rewritten(dests: &[Destination]) -> bool {
    dests.iter().any(|d| d.oid.is_some() && d.original.as_deref().map(Path::new) != Some(&d.dir))
}

/// When `tablespace_map` is rewritten, every location in it must be writable there unambiguously:
/// UTF-8, no backslash, newline or carriage return (PostgreSQL 14 and 15+ read escapes in this
/// file differently).
pub fn check_map_paths(dests: &[Destination]) -> Result<(), RestoreError> {
    if !map_rewritten(dests) {
        return Ok(());
    }
    for d in dests {
        if let Some(oid) = d.oid
            && conf::path_text(&d.dir).is_none_or(|t| t.contains('\\'))
        {
            return Err(RestoreError::Usage(format!(
                "tablespace {oid}'s directory {} must be UTF-8 without backslashes or line breaks when \
                 tablespace_map is rewritten; give --tablespace-map {oid}=DIR",
                d.dir.display()
            )));
        }
    }
    Ok(())
}
