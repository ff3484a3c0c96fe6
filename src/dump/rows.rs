//! Each table's rows, counted in pg_dump's custom-format output as it streams past, instead of a
//! second scan of every table (`count(*)` in the dump's snapshot, which cost the server about a
//! fifth of the CPU pg_dump's own reading did).
//!
//! The archive (PostgreSQL's `pg_backup_archiver.c` and `pg_backup_custom.c`, versions 1.14 to
//! 1.16: pg_dump 12 to 18): a header, the table of contents, then one block per entry with data,
//! in the order of the contents. Integers are a sign byte and `int size` bytes, least significant
//! first; strings an integer length (-1: none) and the bytes. A `TABLE DATA` block is a series of
//! length-prefixed chunks ending with a zero length; with compression off (walvault runs pg_dump
//! with `--compress=0`) the chunks are the table's COPY text, one line per row (COPY escapes
//! newlines inside values), followed by pg_dump's `\.` line and two empty lines. A large-object
//! block is a series of (oid, chunks) ending with a zero oid.
//!
//! Nothing here can fail the dump: whatever this reader does not understand (another archive
//! version, compression, a block it does not expect, a truncated stream), it says why, and the
//! caller counts with `count(*)` instead, in the same snapshot.

use std::collections::HashMap;

/// The largest entry of the table of contents held while waiting for its end.
const MAX_ENTRY: usize = 64 << 20;
/// Archive versions read (major, minor): 1.14 (pg_dump 12-15), 1.15 (16), 1.16 (17, 18).
const VERSIONS: std::ops::RangeInclusive<(u8, u8)> = (1, 14)..=(1, 16);
/// What every table's data ends with.
const END_OF_COPY: &[u8; 5] = b"\\.\n\n\n";
/// Block types.
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;

/// Rows counted in one table's data block.
#[derive(Debug)]
struct Table {
    schema: String,
    name: String,
    newlines: u64,
    tail: [u8; 5],
    tail_len: usize,
    seen: bool,
}

impl Table {
    fn new(schema: String, name: String) -> Table {
        Table { schema, name, newlines: 0, tail: [0; 5], tail_len: 0, seen: false }
    }

    fn add(&mut self, data: &[u8]) {
        self.newlines += count_newlines(data);
        let n = data.len().min(self.tail.len());
        self.tail.copy_within(n.., 0);
        self.tail[END_OF_COPY.len() - n..].copy_from_slice(&data[data.len() - n..]);
        self.tail_len = (self.tail_len + n).min(END_OF_COPY.len());
    }

    fn rows(&self) -> Result<u64, String> {
        if self.tail_len < END_OF_COPY.len() || &self.tail != END_OF_COPY {
            return Err(format!("the data of {}.{} does not end as COPY text does", self.schema, self.name));
        }
        Ok(self.newlines - 3)
    }
}

/// The newlines in `data`: the one pass over every byte of the dump this module makes, 16 bytes
/// at a time (SSE2, which every x86-64 has), 8 elsewhere.
fn count_newlines(data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // Per-byte counters in a 128-bit register overflow after 255 additions: summed per block.
        let mut blocks = data.chunks_exact(16 * 255);
        let mut total = 0u64;
        for block in &mut blocks {
            // SAFETY: SSE2 is part of x86-64; every load reads 16 bytes inside `block`.
            unsafe {
                let newline = _mm_set1_epi8(b'\n' as i8);
                let mut counts = _mm_setzero_si128();
                for v in block.chunks_exact(16) {
                    let bytes = _mm_loadu_si128(v.as_ptr().cast());
                    counts = _mm_sub_epi8(counts, _mm_cmpeq_epi8(bytes, newline));
                }
                let sums = _mm_sad_epu8(counts, _mm_setzero_si128());
                total += (_mm_cvtsi128_si64(sums) + i64::from(_mm_extract_epi16(sums, 4) as u16)) as u64;
            }
        }
        total + count_newlines_by_word(blocks.remainder())
    }
    #[cfg(not(target_arch = "x86_64"))]
    count_newlines_by_word(data)
}

/// [`count_newlines`], 8 bytes at a time in a `u64`.
fn count_newlines_by_word(data: &[u8]) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let newlines = 0x0101_0101_0101_0101 * u64::from(b'\n');
    let mut words = data.chunks_exact(8);
    let mut total = 0u64;
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ newlines;
        // The high bit of each byte of `nonzero` is set where that byte of x is not zero.
        let nonzero = ((x & !HIGH) + !HIGH) | x;
        total += u64::from((!nonzero & HIGH).count_ones());
    }
    total + words.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

/// Where the reader is in the data blocks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    BlockType,
    BlockId,
    ChunkLen,
    BlobOid,
    Payload(u64),
}

/// The block being read.
#[derive(Clone, Copy, Debug)]
enum Block {
    /// Table data; the index of the table counted, if it is one.
    Data(Option<usize>),
    /// Large objects.
    Blobs,
}

/// The reader of the data blocks, once the table of contents is read.
#[derive(Debug)]
struct Blocks {
    int_size: usize,
    by_id: HashMap<i64, usize>,
    tables: Vec<Table>,
    step: Step,
    block: Block,
    int: [u8; 9],
    int_have: usize,
}

impl Blocks {
    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            match self.step {
                Step::Payload(left) => {
                    let n = left.min(data.len() as u64) as usize;
                    if let Block::Data(Some(i)) = self.block {
                        self.tables[i].add(&data[..n]);
                    }
                    data = &data[n..];
                    self.step =
                        if left == n as u64 { Step::ChunkLen } else { Step::Payload(left - n as u64) };
                }
                Step::BlockType => {
                    self.block = match data[0] {
                        BLK_DATA => Block::Data(None),
                        BLK_BLOBS => Block::Blobs,
                        other => return Err(format!("a block of type {other}, unknown")),
                    };
                    data = &data[1..];
                    self.step = Step::BlockId;
                }
                Step::BlockId | Step::ChunkLen | Step::BlobOid => {
                    let want = self.int_size + 1;
                    let n = (want - self.int_have).min(data.len());
                    self.int[self.int_have..self.int_have + n].copy_from_slice(&data[..n]);
                    self.int_have += n;
                    data = &data[n..];
                    if self.int_have == want {
                        self.int_have = 0;
                        let value = int_value(&self.int[..want])?;
                        self.took_int(value)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn took_int(&mut self, value: i64) -> Result<(), String> {
        self.step = match (self.step, self.block) {
            (Step::BlockId, Block::Data(_)) => {
                let table = self.by_id.get(&value).copied();
                if let Some(i) = table {
                    if self.tables[i].seen {
                        return Err(format!("two data blocks for entry {value}"));
                    }
                    self.tables[i].seen = true;
                }
                self.block = Block::Data(table);
                Step::ChunkLen
            }
            (Step::BlockId, Block::Blobs) => Step::BlobOid,
            (Step::BlobOid, _) if value == 0 => Step::BlockType,
            (Step::BlobOid, _) => Step::ChunkLen,
            (Step::ChunkLen, _) if value < 0 => return Err(format!("a chunk of length {value}")),
            (Step::ChunkLen, Block::Blobs) if value == 0 => Step::BlobOid,
            (Step::ChunkLen, Block::Data(_)) if value == 0 => Step::BlockType,
            (Step::ChunkLen, _) => Step::Payload(value as u64),
            (step, _) => unreachable!("an integer read at {step:?}"),
        };
        Ok(())
    }
}

/// Counts rows in a custom-format archive fed to it in pieces of any size.
#[derive(Debug)]
pub struct RowCounter {
    state: State,
}

#[derive(Debug)]
enum State {
    Toc(Toc),
    Blocks(Blocks),
    Failed(String),
}

/// What the header says about the archive's encoding.
#[derive(Clone, Copy, Debug)]
struct Head {
    version: (u8, u8),
    int_size: usize,
    off_size: usize,
}

/// The header and the table of contents, read one entry at a time: only the bytes of the entry
/// being read are held (a string is skipped by its length, so reading an entry again as more
/// of it arrives costs a few steps, not its bytes).
#[derive(Debug)]
struct Toc {
    pending: Vec<u8>,
    head: Option<Head>,
    entries_left: i64,
    blocks: Blocks,
}

impl Toc {
    /// Takes the next bytes; once the table of contents is whole, the bytes after it.
    fn feed(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.pending.extend_from_slice(data);
        let mut used = 0;
        let whole = loop {
            let int_size = self.head.map_or(4, |h| h.int_size);
            let mut r = Cursor { buf: &self.pending[used..], at: 0, int_size };
            let step = match self.head {
                None => match read_head(&mut r) {
                    Ok((head, entries)) => {
                        self.head = Some(head);
                        self.entries_left = entries;
                        self.blocks.int_size = head.int_size;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Some(_) if self.entries_left <= 0 => break true,
                Some(head) => match read_entry(&mut r, head) {
                    Ok(entry) => {
                        self.entries_left -= 1;
                        if let Some((id, schema, name)) = entry {
                            self.blocks.by_id.insert(id, self.blocks.tables.len());
                            self.blocks.tables.push(Table::new(schema, name));
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            match step {
                Ok(()) => used += r.at,
                Err(Short::More) => break false,
                Err(Short::Bad(why)) => return Err(why),
            }
        };
        self.pending.drain(..used);
        if whole {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        if self.pending.len() > MAX_ENTRY {
            return Err(format!("an entry of its table of contents is larger than {} MiB", MAX_ENTRY >> 20));
        }
        Ok(None)
    }
}

/// Rows per table (schema, name) of the tables whose data the archive holds.
pub type Counts = HashMap<(String, String), u64>;

impl Default for RowCounter {
    fn default() -> Self {
        let blocks = Blocks {
            int_size: 4,
            by_id: HashMap::new(),
            tables: Vec::new(),
            step: Step::BlockType,
            block: Block::Blobs,
            int: [0; 9],
            int_have: 0,
        };
        RowCounter { state: State::Toc(Toc { pending: Vec::new(), head: None, entries_left: 0, blocks }) }
    }
}

impl RowCounter {
    /// Takes the next bytes of the archive.
    pub fn feed(&mut self, data: &[u8]) {
        let result = match &mut self.state {
            State::Failed(_) => return,
            State::Blocks(b) => b.feed(data),
            State::Toc(toc) => match toc.feed(data) {
                Ok(None) => Ok(()),
                Ok(Some(rest)) => {
                    let State::Toc(toc) = std::mem::replace(&mut self.state, State::Failed(String::new()))
                    else {
                        unreachable!("in the table of contents")
                    };
                    let mut blocks = toc.blocks;
                    let r = blocks.feed(&rest);
                    self.state = State::Blocks(blocks);
                    r
                }
                Err(e) => Err(e),
            },
        };
        if let Err(why) = result {
            self.state = State::Failed(why);
        }
    }

    /// The counts, once the archive has ended; or why there are none.
    pub fn finish(self) -> Result<Counts, String> {
        match self.state {
            State::Failed(why) => Err(why),
            State::Toc(_) => Err("the archive ended inside its table of contents".into()),
            State::Blocks(b) if b.step != Step::BlockType || b.int_have != 0 => {
                Err("the archive ended inside a block".into())
            }
            State::Blocks(b) => {
                let mut counts = Counts::new();
                for t in b.tables.iter().filter(|t| t.seen) {
                    counts.insert((t.schema.clone(), t.name.clone()), t.rows()?);
                }
                Ok(counts)
            }
        }
    }
}

/// An integer's value from its sign byte and bytes.
fn int_value(bytes: &[u8]) -> Result<i64, String> {
    let mut v: i64 = 0;
    for (i, b) in bytes[1..].iter().enumerate() {
        if i >= 4 && *b != 0 {
            return Err("an integer larger than 32 bits".into());
        }
        v |= i64::from(*b) << (8 * i);
    }
    Ok(if bytes[0] != 0 { -v } else { v })
}

enum Short {
    /// The bytes so far end before the table of contents does.
    More,
    /// Not an archive this reader understands.
    Bad(String),
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
    int_size: usize,
}

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], Short> {
        let b = self.buf.get(self.at..self.at + n).ok_or(Short::More)?;
        self.at += n;
        Ok(b)
    }
    fn byte(&mut self) -> Result<u8, Short> {
        Ok(self.bytes(1)?[0])
    }
    fn int(&mut self) -> Result<i64, Short> {
        let n = self.int_size + 1;
        int_value(self.bytes(n)?).map_err(Short::Bad)
    }
    fn string(&mut self) -> Result<Option<String>, Short> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.bytes(len as usize)?;
        Ok(Some(String::from_utf8_lossy(b).into_owned()))
    }
    fn skip_string(&mut self) -> Result<(), Short> {
        let len = self.int()?;
        if len > 0 {
            self.bytes(len as usize)?;
        }
        Ok(())
    }
}

/// The header, up to the number of entries of the table of contents.
fn read_head(r: &mut Cursor) -> Result<(Head, i64), Short> {
    if r.bytes(5)? != b"PGDMP" {
        return Err(Short::Bad("it does not start as a pg_dump archive".into()));
    }
    let (major, minor, _rev) = (r.byte()?, r.byte()?, r.byte()?);
    if !VERSIONS.contains(&(major, minor)) {
        return Err(Short::Bad(format!("archive version {major}.{minor} is not one this reader knows")));
    }
    let int_size = r.byte()? as usize;
    if !(4..=8).contains(&int_size) {
        return Err(Short::Bad(format!("integers of {int_size} bytes")));
    }
    r.int_size = int_size;
    let off_size = r.byte()? as usize;
    if r.byte()? != 1 {
        return Err(Short::Bad("not the custom format".into()));
    }
    let compressed = if (major, minor) >= (1, 15) { i64::from(r.byte()?) } else { r.int()? };
    if compressed != 0 {
        return Err(Short::Bad("its data is compressed".into()));
    }
    for _ in 0..7 {
        r.int()?; // the creation time
    }
    for _ in 0..3 {
        r.skip_string()?; // the database, the server's and pg_dump's versions
    }
    let entries = r.int()?;
    Ok((Head { version: (major, minor), int_size, off_size }, entries))
}

/// One entry of the table of contents: its id, schema and name if it is a table's data.
fn read_entry(r: &mut Cursor, head: Head) -> Result<Option<(i64, String, String)>, Short> {
    let id = r.int()?;
    r.int()?; // had a data dumper
    r.skip_string()?; // the catalog's oid
    r.skip_string()?; // the object's oid
    let tag = r.string()?;
    let desc = r.string()?;
    r.int()?; // the section
    for _ in 0..3 {
        r.skip_string()?; // its definition, drop statement, COPY statement
    }
    let namespace = r.string()?;
    r.skip_string()?; // the tablespace
    r.skip_string()?; // the table access method
    if head.version >= (1, 16) {
        r.int()?; // the relkind
    }
    r.skip_string()?; // the owner
    r.skip_string()?; // "with oids"
    // The dependencies: strings until a null one.
    loop {
        let len = r.int()?;
        if len < 0 {
            break;
        }
        r.bytes(len as usize)?;
    }
    r.bytes(1 + head.off_size)?; // the data's offset (unknown: the output is a pipe)
    Ok(match (desc.as_deref(), namespace, tag) {
        (Some("TABLE DATA"), Some(schema), Some(name)) => Some((id, schema, name)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes archives the way pg_dump does (the parts this reader reads).
    struct Writer {
        out: Vec<u8>,
        minor: u8,
    }

    impl Writer {
        fn int(&mut self, v: i64) {
            self.out.push(u8::from(v < 0));
            self.out.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        }
        fn str(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.out.extend_from_slice(s.as_bytes());
                }
            }
        }
        /// An archive of `entries` (id, desc, schema, tag) and `blocks` (type, id, chunks).
        fn archive(minor: u8, entries: &[(i64, &str, &str, &str)]) -> Writer {
            let mut w = Writer { out: b"PGDMP".to_vec(), minor };
            w.out.extend_from_slice(&[1, minor, 0, 4, 8, 1]);
            if minor >= 15 {
                w.out.push(0);
            } else {
                w.int(0);
            }
            for v in [1, 2, 3, 4, 5, 126, 0] {
                w.int(v);
            }
            for s in ["db", "15.8", "15.8"] {
                w.str(Some(s));
            }
            w.int(entries.len() as i64);
            for (id, desc, schema, tag) in entries {
                w.int(*id);
                w.int(1);
                w.str(Some("1259"));
                w.str(Some("16384"));
                w.str(Some(tag));
                w.str(Some(desc));
                w.int(2);
                w.str(Some("CREATE TABLE x (a int);\n"));
                w.str(Some(""));
                w.str(Some("COPY x (a) FROM stdin;\n"));
                w.str(Some(schema));
                w.str(Some(""));
                w.str(Some("heap"));
                if w.minor >= 16 {
                    w.int(114);
                }
                w.str(Some("postgres"));
                w.str(Some("false"));
                w.str(Some("3"));
                w.str(Some("12"));
                w.str(None);
                w.out.push(1);
                w.out.extend_from_slice(&[0; 8]);
            }
            w
        }
        fn data(&mut self, id: i64, chunks: &[&[u8]]) {
            self.out.push(BLK_DATA);
            self.int(id);
            for c in chunks {
                self.int(c.len() as i64);
                self.out.extend_from_slice(c);
            }
            self.int(0);
        }
        fn blobs(&mut self, id: i64, blobs: &[(i64, &[u8])]) {
            self.out.push(BLK_BLOBS);
            self.int(id);
            for (oid, data) in blobs {
                self.int(*oid);
                if !data.is_empty() {
                    self.int(data.len() as i64);
                    self.out.extend_from_slice(data);
                }
                self.int(0);
            }
            self.int(0);
        }
    }

    fn sample(minor: u8) -> Vec<u8> {
        let mut w = Writer::archive(
            minor,
            &[
                (1, "SCHEMA", "", "app"),
                (2, "TABLE", "app", "t"),
                (7, "TABLE DATA", "app", "t"),
                (8, "TABLE DATA", "public", "empty"),
                (9, "BLOBS", "", "BLOBS"),
                (10, "TABLE DATA", "public", "Odd \"name\""),
            ],
        );
        w.data(7, &[b"1\tone\n2\ttwo\\nlines\n", b"3\t\\\\.\n", b"\\.\n\n\n"]);
        w.data(8, &[b"\\.\n\n\n"]);
        w.blobs(9, &[(16500, b"\n\n\nbinary\n"), (16501, b"")]);
        w.data(10, &[b"x\n\\.\n\n\n"]);
        w.out
    }

    fn count(bytes: &[u8], piece: usize) -> Result<Counts, String> {
        let mut c = RowCounter::default();
        for p in bytes.chunks(piece) {
            c.feed(p);
        }
        c.finish()
    }

    fn expected() -> Counts {
        [(("app", "t"), 3), (("public", "empty"), 0), (("public", "Odd \"name\""), 1)]
            .into_iter()
            .map(|((s, t), n)| ((s.to_string(), t.to_string()), n))
            .collect()
    }

    #[test]
    fn newlines_are_counted_at_any_length_and_alignment() {
        let data: Vec<u8> =
            (0..20_000u32).map(|i| if i % 7 == 0 || i % 13 == 0 { b'\n' } else { (i % 250) as u8 }).collect();
        for start in [0, 1, 3, 8, 15] {
            for len in [0, 1, 7, 8, 9, 16, 17, 255 * 16, 255 * 16 + 5, 19_000] {
                let d = &data[start..start + len];
                let want = d.iter().filter(|&&b| b == b'\n').count() as u64;
                assert_eq!(count_newlines(d), want, "from {start}, {len} bytes");
                assert_eq!(count_newlines_by_word(d), want, "by word, from {start}, {len} bytes");
            }
        }
        assert_eq!(count_newlines(&[b'\n'; 255 * 16 * 3]), 255 * 16 * 3, "the per-byte counters are full");
    }

    #[test]
    fn counts_every_tables_rows_whatever_the_pieces() {
        for minor in [14, 15, 16] {
            let bytes = sample(minor);
            for piece in [1, 2, 3, 7, 64, 4096, bytes.len()] {
                assert_eq!(count(&bytes, piece), Ok(expected()), "archive 1.{minor}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn what_it_does_not_understand_gives_no_counts() {
        let good = sample(14);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 3].to_vec(), "ended inside a block"),
            (good[..40].to_vec(), "table of contents"),
            ([b"PGDMX".as_slice(), &good[5..]].concat(), "does not start"),
            (
                {
                    let mut b = good.clone();
                    b[6] = 17;
                    b
                },
                "version 1.17",
            ),
            (
                {
                    let mut b = good.clone();
                    b[11..16].copy_from_slice(&[0, 6, 0, 0, 0]);
                    b
                },
                "compressed",
            ),
            ([good.as_slice(), &[9]].concat(), "type 9"),
        ];
        for (bytes, why) in cases {
            let got = count(&bytes, 100);
            assert!(got.as_ref().is_err_and(|e| e.contains(why)), "{why}: {got:?}");
        }
        // Data that does not end as COPY text does (pg_dump --inserts, say).
        let mut w = Writer::archive(14, &[(3, "TABLE DATA", "public", "t")]);
        w.data(3, &[b"INSERT INTO t VALUES (1);\n"]);
        assert!(count(&w.out, 5).is_err_and(|e| e.contains("public.t does not end as COPY")));
        // Two blocks for one entry.
        let mut w = Writer::archive(14, &[(3, "TABLE DATA", "public", "t")]);
        w.data(3, &[b"\\.\n\n\n"]);
        w.data(3, &[b"\\.\n\n\n"]);
        assert!(count(&w.out, 5).is_err_and(|e| e.contains("two data blocks")));
    }

    #[test]
    fn an_entry_too_large_to_hold_gives_up_and_a_large_table_of_contents_does_not() {
        // 200 000 entries (about 30 MB), fed 256 KiB at a time: only an entry is ever held.
        let entries: Vec<(i64, &str, &str, &str)> =
            (1..=200_000).map(|i| (i, if i == 7 { "TABLE DATA" } else { "INDEX" }, "s", "t")).collect();
        let mut w = Writer::archive(14, &entries);
        w.data(7, &[b"1\n2\n\\.\n\n\n"]);
        let mut c = RowCounter::default();
        let mut most = 0;
        for p in w.out.chunks(256 * 1024) {
            c.feed(p);
            if let State::Toc(t) = &c.state {
                most = most.max(t.pending.capacity());
            }
        }
        assert!(most < 1 << 20, "held {most} bytes of the table of contents");
        assert_eq!(c.finish().unwrap()[&("s".to_string(), "t".to_string())], 2);

        // One entry's string of 100 MiB: given up once 64 MiB of it are held.
        let mut w = Writer::archive(14, &[]);
        w.out.truncate(w.out.len() - 5);
        w.int(1);
        w.int(1);
        w.int(0);
        w.int(100 << 20);
        let mut c = RowCounter::default();
        c.feed(&w.out);
        let junk = vec![0u8; 1 << 20];
        for _ in 0..70 {
            c.feed(&junk);
        }
        assert!(matches!(&c.state, State::Failed(why) if why.contains("larger than 64 MiB")));
    }
}
