//! Logical dumps in the repository: the dump descriptor (`dumps/<id>.json`, plain JSON written
//! last, so a dump exists if and only if its descriptor does) and the inventory of dumps, read
//! without any key, as `list`, retention and verify need it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::descriptor::StoredFile;
use super::error::StorageError;
use super::layout::{self, Marker};
use super::{DirListing, Storage};
use crate::units::UtcTime;

/// The dump descriptor format this build writes.
pub const DUMP_FORMAT: u32 = 1;

/// Everything about one finished logical dump.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpDescriptor {
    /// Descriptor format version.
    pub format: u32,
    /// The dump id (UTC start time, `20261201T020000Z`): sorts by time.
    pub id: String,
    /// A label (`--label`, default `walvault dump <id>`).
    pub label: String,
    /// The cluster's system identifier.
    pub system_identifier: String,
    /// The server's `server_version_num`.
    pub server_version: u32,
    /// `pg_dump --version` of the pg_dump that wrote it.
    pub pg_dump_version: String,
    /// When the dump started (before the snapshot was taken).
    pub start_time: UtcTime,
    /// When the last object was stored.
    pub stop_time: UtcTime,
    /// The codec of every object.
    pub compression: String,
    /// The key the objects are encrypted with, if any.
    pub key_id: Option<String>,
    /// The walvault version that wrote it.
    pub walvault_version: String,
    /// The databases, in the order they were dumped.
    pub databases: Vec<DumpedDatabase>,
    /// Roles and tablespaces (`pg_dumpall --globals-only`), with `--all-databases`.
    pub globals: Option<StoredFile>,
    /// Bytes pg_dump wrote, all objects together.
    pub raw_bytes: u64,
    /// Bytes stored, all objects together.
    pub stored_bytes: u64,
}

/// One database of a dump.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpedDatabase {
    /// The database's name.
    pub name: String,
    /// Its custom-format dump.
    pub object: StoredFile,
    /// Each table's row count in the snapshot pg_dump dumped (what a restore must give back).
    pub tables: Vec<TableRows>,
}

/// A table's row count at dump time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRows {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub table: String,
    /// `count(*)` in the dump's snapshot.
    pub rows: u64,
}

impl DumpDescriptor {
    /// Every object of the dump, globals first.
    pub fn objects(&self) -> impl Iterator<Item = &StoredFile> {
        self.globals.iter().chain(self.databases.iter().map(|d| &d.object))
    }

    /// The database called `name`.
    pub fn database(&self, name: &str) -> Option<&DumpedDatabase> {
        self.databases.iter().find(|d| d.name == name)
    }
}

/// The dumps of a repository.
#[derive(Clone, Debug, Default)]
pub struct Dumps {
    /// Every dump whose descriptor parses, oldest first.
    pub dumps: Vec<Dump>,
    /// Dump ids with objects or markers but no readable descriptor: one being taken, or the
    /// leftovers of one that failed and could not clean up.
    pub without_descriptor: Vec<DumpFolder>,
}

/// A dump with its descriptor and its marks.
#[derive(Clone, Debug)]
pub struct Dump {
    /// Its descriptor.
    pub descriptor: DumpDescriptor,
    /// `walvault mark --keep` keeps it.
    pub kept: bool,
    /// A deletion of it started and did not finish.
    pub deleting: bool,
}

/// A dump id without a readable descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpFolder {
    /// The dump id.
    pub id: String,
    /// It has a `.started` marker (a dump being taken, or one killed).
    pub has_started: bool,
    /// It has a `.deleting` marker.
    pub deleting: bool,
    /// It has a `.sealing` marker (a dump checking its folder, or one killed doing so).
    pub sealing: bool,
    /// It has a `.keep` marker.
    pub kept: bool,
    /// Its folder holds objects.
    pub has_objects: bool,
    /// It has a descriptor that does not parse.
    pub unreadable_descriptor: bool,
    /// When the store last wrote any of its objects or markers (a dump being taken keeps writing).
    pub last_written: Option<UtcTime>,
}

/// Every dump in the repository: one listing of `dumps/`, then one GET per descriptor. A
/// descriptor that does not parse is reported as a folder without one (with a warning), so one
/// damaged descriptor does not hide the others.
pub async fn dumps(storage: &Storage) -> Result<Dumps, StorageError> {
    let DirListing { objects, dirs } = storage.list_dir(&layout::dumps_root()).await?;
    let mut ids: Vec<String> =
        objects.iter().filter_map(|o| layout::dump_descriptor_id(&o.location).map(str::to_string)).collect();
    ids.sort();
    let mut markers: BTreeMap<String, Vec<Marker>> = BTreeMap::new();
    for o in &objects {
        if let Some((id, m)) = layout::dump_marker_of(&o.location) {
            markers.entry(id.to_string()).or_default().push(m);
        }
    }
    let has = |id: &str, m: Marker| markers.get(id).is_some_and(|v| v.contains(&m));
    let mut dumps = Vec::with_capacity(ids.len());
    let mut unreadable = Vec::new();
    for id in &ids {
        let key = layout::dump_descriptor(id);
        match storage.get_bytes(&key).await {
            Ok(bytes) => match serde_json::from_slice::<DumpDescriptor>(&bytes) {
                Ok(d) if d.id == *id => dumps.push(Dump {
                    descriptor: d,
                    kept: has(id, Marker::Keep),
                    deleting: has(id, Marker::Deleting),
                }),
                Ok(d) => {
                    tracing::warn!("skipping {key}: it describes dump {}", d.id);
                    unreadable.push(id.clone());
                }
                Err(e) => {
                    tracing::warn!("skipping {key}: not a dump descriptor: {e}");
                    unreadable.push(id.clone());
                }
            },
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let described: std::collections::BTreeSet<&str> =
        dumps.iter().map(|d| d.descriptor.id.as_str()).collect();
    let mut folders: BTreeMap<String, DumpFolder> = BTreeMap::new();
    fn entry<'a>(folders: &'a mut BTreeMap<String, DumpFolder>, id: &str) -> &'a mut DumpFolder {
        folders
            .entry(id.to_string())
            .or_insert_with(|| DumpFolder { id: id.to_string(), ..Default::default() })
    }
    for id in dirs.iter().filter_map(layout::dump_dir_id) {
        entry(&mut folders, id).has_objects = true;
    }
    for (id, ms) in &markers {
        let f = entry(&mut folders, id);
        f.has_started = ms.contains(&Marker::Started);
        f.deleting = ms.contains(&Marker::Deleting);
        f.sealing = ms.contains(&Marker::Sealing);
        f.kept = ms.contains(&Marker::Keep);
    }
    for id in unreadable {
        entry(&mut folders, &id).unreadable_descriptor = true;
    }
    folders.retain(|id, _| !described.contains(id.as_str()));
    let mut without_descriptor: Vec<DumpFolder> = folders.into_values().collect();
    for f in &mut without_descriptor {
        let marker_times =
            objects.iter().filter(|o| layout::dump_marker_of(&o.location).is_some_and(|(id, _)| id == f.id));
        let object_times =
            if f.has_objects { storage.list(&layout::dump_dir(&f.id)).await? } else { Vec::new() };
        f.last_written = marker_times.chain(object_times.iter()).map(super::inventory::modified).max();
    }
    Ok(Dumps { dumps, without_descriptor })
}

/// The dump called `id`, or `latest`: the newest.
pub async fn find(storage: &Storage, id: &str) -> Result<Option<DumpDescriptor>, StorageError> {
    let all = dumps(storage).await?.dumps;
    Ok(if id == "latest" {
        all.into_iter().last().map(|d| d.descriptor)
    } else {
        all.into_iter().find(|d| d.descriptor.id == id).map(|d| d.descriptor)
    })
}
