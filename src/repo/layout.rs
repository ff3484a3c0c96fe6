//! Every object key of the repository, built and parsed here and nowhere else (DESIGN §2):
//!
//! ```text
//! walvault.json                                identity
//! wal/<TLI+LOG, 16 hex>/<segment>              segments, `.partial` segments, `.backup` labels
//! wal/history/<TLI>.history                    timeline histories
//! backups/<id>.json                            a backup's descriptor (written last)
//! backups/<id>/<archive>.<NNNNN>               its parts (`base.tar.00001`, `16384.tar.00002`)
//! backups/<id>/backup_manifest                 PostgreSQL's manifest
//! backups/<id>.started                         a backup being taken (removed once it is done)
//! backups/<id>.keep                            `walvault mark --keep`: no policy deletes it
//! backups/<id>.deleting                        a deletion under way (removed when it is done)
//! verify/wal/<TLI+LOG>.json                    what `walvault verify` checked of a WAL folder
//! verify/backups/<id>.json                     what it checked of a backup
//! dumps/<id>.json                              a logical dump's descriptor (written last)
//! dumps/<id>/<NNN>.dump                        database NNN's pg_dump custom-format output
//! dumps/<id>/globals.sql                       pg_dumpall --globals-only (with --all-databases)
//! dumps/<id>.started|.keep|.deleting           the same markers as a backup's
//! verify/dumps/<id>.json                       what verify checked of a dump
//! tmp/<WAL file>.<16 hex>                      a large segment being uploaded (wal_push::large)
//! ```
//!
//! The markers sit beside the descriptors, so one listing of `backups/` shows every backup, its
//! state and its marks without listing the parts.
//!
//! Keys are fixed by what they hold (one GET per WAL fetch, no probing), and backup ids sort by
//! time (`20261123T104501Z`), never by WAL position.

use object_store::path::Path;

use crate::wal::{TimelineId, WalFileName};

/// The identity object's key.
pub const IDENTITY: &str = "walvault.json";
/// The folder of all archived WAL.
pub const WAL: &str = "wal";
/// The folder of timeline history files, inside [`WAL`].
const HISTORY: &str = "history";
/// The folder of uploads not yet in place (never read by wal-fetch, restore or verify).
pub const TMP: &str = "tmp";
/// The folder of all backups.
pub const BACKUPS: &str = "backups";
/// The manifest's name inside a backup's folder.
const MANIFEST: &str = "backup_manifest";

/// `walvault.json`.
pub fn identity() -> Path {
    Path::from(IDENTITY)
}

/// The key of a WAL file: `wal/<timeline+log>/<name>`, histories under `wal/history/`.
pub fn wal(name: &WalFileName) -> Path {
    match name.segment() {
        Some(seg) => Path::from(format!("{WAL}/{:08X}{:08X}/{name}", seg.timeline.get(), seg.log)),
        None => Path::from(format!("{WAL}/{HISTORY}/{name}")),
    }
}

/// `tmp/<name>.<suffix, 16 hex>`: where a WAL file too large to hold in memory is uploaded
/// before a create-only copy puts it at [`wal`]`(name)`; removed after the copy (a kill may
/// leave one behind: it is never taken for archived WAL).
pub fn wal_upload(name: &WalFileName, suffix: u64) -> Path {
    Path::from(format!("{TMP}/{name}.{suffix:016x}"))
}

/// `wal/`, holding one folder per timeline and log, and `history/`.
pub fn wal_root() -> Path {
    Path::from(WAL)
}

/// One folder under `wal/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalDir {
    /// `wal/<TLI+LOG>/`: the segments of one timeline whose LSNs share the high 32 bits.
    Segments {
        /// The timeline.
        timeline: TimelineId,
        /// The high 32 bits of the segments' LSNs.
        log: u32,
    },
    /// `wal/history/`: timeline history files.
    History,
}

impl WalDir {
    /// The folder's key.
    pub fn key(self) -> Path {
        match self {
            WalDir::Segments { timeline, log } => {
                Path::from(format!("{WAL}/{:08X}{log:08X}", timeline.get()))
            }
            WalDir::History => Path::from(format!("{WAL}/{HISTORY}")),
        }
    }

    /// The folder `key` (as listed, `wal/<16 hex>` or `wal/history`) names, if it is one.
    pub fn parse(key: &Path) -> Option<WalDir> {
        let rest = key.as_ref().strip_prefix(WAL)?.strip_prefix('/')?.trim_end_matches('/');
        if rest == HISTORY {
            return Some(WalDir::History);
        }
        if rest.len() != 16 || !rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()) {
            return None;
        }
        let tli = u32::from_str_radix(&rest[..8], 16).ok()?;
        let log = u32::from_str_radix(&rest[8..], 16).ok()?;
        Some(WalDir::Segments { timeline: TimelineId::new(tli).ok()?, log })
    }
}

/// The WAL file a key under `wal/` holds, read from its last segment (`None` for anything else).
pub fn wal_name(key: &Path) -> Option<WalFileName> {
    key.filename()?.parse().ok()
}

/// `backups/`, holding every descriptor and one folder per backup.
pub fn backups_root() -> Path {
    Path::from(BACKUPS)
}

/// `backups/<id>.json`: the backup's descriptor, written last.
pub fn descriptor(id: &str) -> Path {
    Path::from(format!("{BACKUPS}/{id}.json"))
}

/// `backups/<id>`: the folder of the backup's parts and manifest.
pub fn backup_dir(id: &str) -> Path {
    Path::from(format!("{BACKUPS}/{id}"))
}

/// `backups/<id>/<archive>.<NNNNN>`: part `index` (from 0) of an archive (`base.tar`, `<oid>.tar`).
pub fn part(id: &str, archive: &str, index: usize) -> Path {
    Path::from(format!("{BACKUPS}/{id}/{archive}.{:05}", index + 1))
}

/// `backups/<id>/backup_manifest`.
pub fn manifest(id: &str) -> Path {
    Path::from(format!("{BACKUPS}/{id}/{MANIFEST}"))
}

/// A marker beside a backup's descriptor (`backups/<id>.<kind>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Marker {
    /// `.started`: base-backup is taking it (written first, removed after the descriptor).
    Started,
    /// `.keep`: kept by `walvault mark --keep`.
    Keep,
    /// `.deleting`: `walvault delete` decided to delete it and has not finished.
    Deleting,
    /// `.sealing`: base-backup (or dump) is checking its folder is whole before it writes the
    /// descriptor (`repo::seal`); removed after the descriptor.
    Sealing,
}

impl Marker {
    /// Every marker.
    pub const ALL: [Marker; 4] = [Marker::Started, Marker::Keep, Marker::Deleting, Marker::Sealing];

    fn suffix(self) -> &'static str {
        match self {
            Marker::Started => "started",
            Marker::Keep => "keep",
            Marker::Deleting => "deleting",
            Marker::Sealing => "sealing",
        }
    }
}

/// `backups/<id>.<marker>`.
pub fn marker(id: &str, m: Marker) -> Path {
    Path::from(format!("{BACKUPS}/{id}.{}", m.suffix()))
}

/// The backup id and marker of a marker key, if it is one.
pub fn marker_of(key: &Path) -> Option<(&str, Marker)> {
    let rest = key.as_ref().strip_prefix(BACKUPS)?.strip_prefix('/')?;
    let (id, suffix) = rest.split_once('.')?;
    let m = Marker::ALL.into_iter().find(|m| m.suffix() == suffix)?;
    is_backup_id(id).then_some((id, m))
}

/// The folder of `walvault verify`'s records.
const VERIFY: &str = "verify";

/// `verify/wal/<TLI+LOG>.json` (or `verify/wal/history.json`): what verify checked of a WAL folder.
pub fn verify_wal(dir: WalDir) -> Path {
    let name = dir.key().filename().unwrap_or("history").to_string();
    Path::from(format!("{VERIFY}/{WAL}/{name}.json"))
}

/// `verify/backups/<id>.json`: what verify checked of a backup.
pub fn verify_backup(id: &str) -> Path {
    Path::from(format!("{VERIFY}/{BACKUPS}/{id}.json"))
}

/// The folder of logical dumps (`walvault dump`).
pub const DUMPS: &str = "dumps";

/// `dumps/`, holding every dump descriptor and one folder per dump.
pub fn dumps_root() -> Path {
    Path::from(DUMPS)
}

/// `dumps/<id>.json`: the dump's descriptor, written last.
pub fn dump_descriptor(id: &str) -> Path {
    Path::from(format!("{DUMPS}/{id}.json"))
}

/// `dumps/<id>`: the folder of the dump's objects.
pub fn dump_dir(id: &str) -> Path {
    Path::from(format!("{DUMPS}/{id}"))
}

/// `dumps/<id>/<NNN>.dump`: database `index` (from 0, its place in the descriptor; database
/// names can hold any character, so they are not keys).
pub fn dump_database(id: &str, index: usize) -> Path {
    Path::from(format!("{DUMPS}/{id}/{:03}.dump", index + 1))
}

/// `dumps/<id>/globals.sql`: roles and tablespaces.
pub fn dump_globals(id: &str) -> Path {
    Path::from(format!("{DUMPS}/{id}/globals.sql"))
}

/// `dumps/<id>.<marker>`.
pub fn dump_marker(id: &str, m: Marker) -> Path {
    Path::from(format!("{DUMPS}/{id}.{}", m.suffix()))
}

/// The dump id and marker of a dump marker key, if it is one.
pub fn dump_marker_of(key: &Path) -> Option<(&str, Marker)> {
    let rest = key.as_ref().strip_prefix(DUMPS)?.strip_prefix('/')?;
    let (id, suffix) = rest.split_once('.')?;
    let m = Marker::ALL.into_iter().find(|m| m.suffix() == suffix)?;
    is_backup_id(id).then_some((id, m))
}

/// The dump id of a dump descriptor key (`dumps/<id>.json`), if it is one.
pub fn dump_descriptor_id(key: &Path) -> Option<&str> {
    let id = key.as_ref().strip_prefix(DUMPS)?.strip_prefix('/')?.strip_suffix(".json")?;
    is_backup_id(id).then_some(id)
}

/// The dump id of a dump folder (`dumps/<id>`, as listed), if it is one.
pub fn dump_dir_id(key: &Path) -> Option<&str> {
    let id = key.as_ref().strip_prefix(DUMPS)?.strip_prefix('/')?.trim_end_matches('/');
    is_backup_id(id).then_some(id)
}

/// `verify/dumps/<id>.json`: what verify checked of a dump.
pub fn verify_dump(id: &str) -> Path {
    Path::from(format!("{VERIFY}/{DUMPS}/{id}.json"))
}

/// The backup id of a descriptor key (`backups/<id>.json`), if it is one.
pub fn descriptor_id(key: &Path) -> Option<&str> {
    let id = key.as_ref().strip_prefix(BACKUPS)?.strip_prefix('/')?.strip_suffix(".json")?;
    is_backup_id(id).then_some(id)
}

/// The backup id of a backup folder (`backups/<id>`, as listed), if it is one.
pub fn backup_dir_id(key: &Path) -> Option<&str> {
    let id = key.as_ref().strip_prefix(BACKUPS)?.strip_prefix('/')?.trim_end_matches('/');
    is_backup_id(id).then_some(id)
}

/// A new backup id for `now`: `YYYYMMDDTHHMMSSZ`.
pub fn backup_id(now: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.to_offset(time::UtcOffset::UTC).format(&f).expect("formats")
}

/// Whether `s` looks like a backup id (so stray objects are not taken for backups).
pub fn is_backup_id(s: &str) -> bool {
    s.len() == 16
        && s.as_bytes()[8] == b'T'
        && s.ends_with('Z')
        && s[..8].bytes().chain(s[9..15].bytes()).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_keys() {
        let k = |s: &str| wal(&s.parse().unwrap()).to_string();
        assert_eq!(k("00000001000000020000003A"), "wal/0000000100000002/00000001000000020000003A");
        assert_eq!(
            k("00000001000000020000003A.partial"),
            "wal/0000000100000002/00000001000000020000003A.partial"
        );
        assert_eq!(
            k("00000001000000020000003A.00000028.backup"),
            "wal/0000000100000002/00000001000000020000003A.00000028.backup"
        );
        assert_eq!(k("00000002.history"), "wal/history/00000002.history");
        let name = "00000001000000020000003A".parse().unwrap();
        let tmp = wal_upload(&name, 0xAB);
        assert_eq!(tmp.to_string(), "tmp/00000001000000020000003A.00000000000000ab");
        assert_eq!(WalDir::parse(&tmp), None);
    }

    #[test]
    fn wal_dirs_round_trip() {
        let tli = TimelineId::new(3).unwrap();
        let d = WalDir::Segments { timeline: tli, log: 0xA };
        assert_eq!(d.key().to_string(), "wal/000000030000000A");
        assert_eq!(WalDir::parse(&d.key()), Some(d));
        assert_eq!(WalDir::parse(&Path::from("wal/history")), Some(WalDir::History));
        for bad in ["wal/000000030000000a", "wal/0000000300000A", "wal", "backups/x", "wal/00000000000000AA"]
        {
            assert_eq!(WalDir::parse(&Path::from(bad)), None, "{bad}");
        }
        let name: WalFileName = "000000030000000A000000FF".parse().unwrap();
        assert!(wal(&name).as_ref().starts_with(d.key().as_ref()));
        assert_eq!(wal_name(&wal(&name)), Some(name));
    }

    #[test]
    fn backup_keys() {
        let id = "20261123T104501Z";
        assert_eq!(descriptor(id).to_string(), "backups/20261123T104501Z.json");
        assert_eq!(backup_dir(id).to_string(), "backups/20261123T104501Z");
        assert_eq!(part(id, "base.tar", 0).to_string(), "backups/20261123T104501Z/base.tar.00001");
        assert_eq!(part(id, "16384.tar", 11).to_string(), "backups/20261123T104501Z/16384.tar.00012");
        assert_eq!(manifest(id).to_string(), "backups/20261123T104501Z/backup_manifest");
        assert_eq!(descriptor_id(&descriptor(id)), Some(id));
        assert_eq!(backup_dir_id(&backup_dir(id)), Some(id));
        assert_eq!(descriptor_id(&Path::from("backups/notanid.json")), None);
        assert_eq!(descriptor_id(&part(id, "base.tar", 0)), None);
        assert_eq!(identity().to_string(), "walvault.json");
        for m in [Marker::Started, Marker::Keep, Marker::Deleting] {
            assert_eq!(marker_of(&marker(id, m)), Some((id, m)));
            assert_eq!(descriptor_id(&marker(id, m)), None);
        }
        assert_eq!(marker(id, Marker::Keep).to_string(), "backups/20261123T104501Z.keep");
        assert_eq!(marker_of(&descriptor(id)), None);
        assert_eq!(marker_of(&Path::from("backups/x.keep")), None);
        let d = WalDir::Segments { timeline: TimelineId::new(1).unwrap(), log: 2 };
        assert_eq!(verify_wal(d).to_string(), "verify/wal/0000000100000002.json");
        assert_eq!(verify_wal(WalDir::History).to_string(), "verify/wal/history.json");
        assert_eq!(verify_backup(id).to_string(), "verify/backups/20261123T104501Z.json");
    }

    #[test]
    fn ids_sort_by_time() {
        let a = backup_id(time::macros::datetime!(2026-11-23 10:45:01 UTC));
        let b = backup_id(time::macros::datetime!(2026-11-23 10:45:02 UTC));
        let c = backup_id(time::macros::datetime!(2027-01-01 00:00:00 UTC));
        assert_eq!(a, "20261123T104501Z");
        assert!(a < b && b < c);
        assert!(is_backup_id(&a));
        for bad in ["20261123T104501", "2026112XT104501Z", "x", "20261123T104501Z.json"] {
            assert!(!is_backup_id(bad), "{bad}");
        }
    }
}
