//! A push-based tar reader (no IO): bytes in, in any split, member events out. It understands
//! what PostgreSQL writes (ustar headers, base-256 sizes) and the common extensions (ustar
//! prefixes, pax `path`/`linkpath`/`size`, GNU long names), checks every header's checksum,
//! and reports whether the input ended at a member boundary or after the end-of-archive marker.

use thiserror::Error;

use crate::tar::split::{BLOCK, parse_number};

/// The longest GNU long name or pax header accepted (bounds memory on hostile input).
const MAX_META: u64 = 1 << 20;

/// Why the bytes are not a tar stream this reader accepts.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TarError {
    /// A header block's checksum is wrong.
    #[error("tar header at byte {0} is corrupt (bad checksum)")]
    BadChecksum(u64),
    /// A header field could not be read.
    #[error("tar header at byte {at} has an unreadable {field}")]
    BadField {
        /// Offset of the header.
        at: u64,
        /// The field.
        field: &'static str,
    },
    /// A long-name or pax member is larger than [`MAX_META`].
    #[error("tar metadata member at byte {0} is too large")]
    MetaTooLarge(u64),
    /// Something other than zeros follows the end-of-archive marker.
    #[error("data after the end of the tar archive at byte {0}")]
    AfterEnd(u64),
    /// The input ended inside a member (a part must hold whole members).
    #[error("the tar data ends in the middle of a member (at byte {0})")]
    Truncated(u64),
    /// The input ended at a member boundary, but the end-of-archive marker was expected.
    #[error("the tar archive has no end-of-archive marker")]
    NoEndMarker,
    /// An end-of-archive marker came where more members were expected.
    #[error("unexpected end-of-archive marker at byte {0} (this part is not the last one)")]
    UnexpectedEnd(u64),
}

/// What a member is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (its bytes follow as [`Event::Data`]).
    File,
    /// A directory.
    Dir,
    /// A symbolic link to the target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier member.
    Hardlink(Vec<u8>),
    /// Anything else (devices, FIFOs, …), with its type flag.
    Other(u8),
}

/// One member's header, with long names and pax overrides applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The path as stored (raw bytes; not yet checked).
    pub path: Vec<u8>,
    /// The kind.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Bytes of data.
    pub size: u64,
    /// Modification time (seconds since the epoch).
    pub mtime: u64,
}

/// What the reader found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A member starts.
    Member(Member),
    /// Bytes of the current member's data.
    Data(&'a [u8]),
    /// The current member is complete.
    MemberEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Collecting a header block.
    Header { filled: usize },
    /// Inside a member's data; then `padding` bytes to the next block.
    Data { remaining: u64, padding: u64 },
    /// Inside a metadata member (long name, pax): collected, not emitted.
    Meta { typeflag: u8, remaining: u64, padding: u64 },
    /// After the first all-zero block: only zeros may follow.
    End,
}

/// Extensions collected from metadata members for the next member.
#[derive(Debug, Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
    pax_mtime: Option<u64>,
}

/// The reader.
#[derive(Debug)]
pub struct TarReader {
    state: State,
    header: [u8; BLOCK],
    meta: Vec<u8>,
    pending: Pending,
    offset: u64,
}

impl Default for TarReader {
    fn default() -> Self {
        TarReader {
            state: State::Header { filled: 0 },
            header: [0; BLOCK],
            meta: Vec::new(),
            pending: Pending::default(),
            offset: 0,
        }
    }
}

/// A NUL-terminated field.
fn field(b: &[u8]) -> &[u8] {
    b.iter().position(|c| *c == 0).map_or(b, |n| &b[..n])
}

/// Bytes after `size` bytes of data up to the next block (sizes are checked by
/// [`padded_size_fits`] first).
fn padding(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64 - size
}

/// Whether `size` rounded up to whole blocks is a number (a base-256 or pax size may be
/// anything up to `u64::MAX`).
fn padded_size_fits(size: u64) -> bool {
    size.checked_next_multiple_of(BLOCK as u64).is_some()
}

impl TarReader {
    /// A reader at the start of an archive (or of a part that starts at a member boundary).
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds `input`; member events go to `on`. An error from `on` stops the reader and is
    /// returned as is.
    pub fn feed<E: From<TarError>>(
        &mut self,
        mut input: &[u8],
        on: &mut impl FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !input.is_empty() {
            match self.state {
                State::End => {
                    if let Some(i) = input.iter().position(|b| *b != 0) {
                        return Err(TarError::AfterEnd(self.offset + i as u64).into());
                    }
                    self.offset += input.len() as u64;
                    input = &[];
                }
                State::Header { filled } => {
                    let take = (BLOCK - filled).min(input.len());
                    self.header[filled..filled + take].copy_from_slice(&input[..take]);
                    input = &input[take..];
                    self.offset += take as u64;
                    if filled + take < BLOCK {
                        self.state = State::Header { filled: filled + take };
                        continue;
                    }
                    self.state = State::Header { filled: 0 };
                    if let Some(member) = self.parse_header()? {
                        let (size, pad) = (member.size, padding(member.size));
                        on(Event::Member(member))?;
                        if size == 0 {
                            on(Event::MemberEnd)?;
                        }
                        self.state = State::Data { remaining: size, padding: pad };
                        if size == 0 && pad == 0 {
                            self.state = State::Header { filled: 0 };
                        }
                    }
                }
                State::Data { remaining, padding } => {
                    if remaining > 0 {
                        let take = remaining.min(input.len() as u64) as usize;
                        let (now, later) = input.split_at(take);
                        input = later;
                        self.offset += take as u64;
                        let left = remaining - take as u64;
                        self.state = match (left, padding) {
                            (0, 0) => State::Header { filled: 0 },
                            (left, padding) => State::Data { remaining: left, padding },
                        };
                        on(Event::Data(now))?;
                        if left == 0 {
                            on(Event::MemberEnd)?;
                        }
                    } else {
                        let take = padding.min(input.len() as u64);
                        input = &input[take as usize..];
                        self.offset += take;
                        self.state = if take == padding {
                            State::Header { filled: 0 }
                        } else {
                            State::Data { remaining: 0, padding: padding - take }
                        };
                    }
                }
                State::Meta { typeflag, remaining, padding } => {
                    let take = (remaining + padding).min(input.len() as u64);
                    let data = take.min(remaining) as usize;
                    self.meta.extend_from_slice(&input[..data]);
                    input = &input[take as usize..];
                    self.offset += take;
                    let (remaining, padding) = (remaining - data as u64, padding - (take - data as u64));
                    if remaining == 0 && padding == 0 {
                        self.state = State::Header { filled: 0 };
                        self.apply_meta(typeflag)?;
                    } else {
                        self.state = State::Meta { typeflag, remaining, padding };
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks how the input ended: `last` parts must end after the end-of-archive marker, other
    /// parts exactly at a member boundary.
    pub fn finish(&self, last: bool) -> Result<(), TarError> {
        match self.state {
            State::End if last => Ok(()),
            State::End => Err(TarError::UnexpectedEnd(self.offset)),
            State::Header { filled: 0 }
                if self.pending.long_name.is_none()
                    && self.pending.long_link.is_none()
                    && self.pending.pax_path.is_none()
                    && self.pending.pax_size.is_none() =>
            {
                if last {
                    Err(TarError::NoEndMarker)
                } else {
                    Ok(())
                }
            }
            _ => Err(TarError::Truncated(self.offset)),
        }
    }

    /// Parses the complete header block; `None` for metadata members and the end marker.
    fn parse_header(&mut self) -> Result<Option<Member>, TarError> {
        let at = self.offset - BLOCK as u64;
        let h = &self.header;
        if h.iter().all(|b| *b == 0) {
            self.state = State::End;
            return Ok(None);
        }
        let stored = parse_number(&h[148..156]).ok_or(TarError::BadChecksum(at))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(*b) })
            .sum();
        if sum != stored {
            return Err(TarError::BadChecksum(at));
        }
        let bad = |field| TarError::BadField { at, field };
        let typeflag = h[156];
        let size = parse_number(&h[124..136]).ok_or(bad("size"))?;
        if matches!(typeflag, b'x' | b'g' | b'L' | b'K') {
            if size > MAX_META {
                return Err(TarError::MetaTooLarge(at));
            }
            self.meta.clear();
            self.state = State::Meta { typeflag, remaining: size, padding: padding(size) };
            if size == 0 {
                self.state = State::Header { filled: 0 };
                self.apply_meta(typeflag)?;
            }
            return Ok(None);
        }
        let mode = parse_number(&h[100..108]).ok_or(bad("mode"))?;
        let mtime = parse_number(&h[136..148]).ok_or(bad("mtime"))?;
        let mut path = field(&h[0..100]).to_vec();
        // POSIX ustar (not the GNU "ustar  " variant) may put a directory prefix in 345..500.
        if &h[257..263] == b"ustar\0" {
            let prefix = field(&h[345..500]);
            if !prefix.is_empty() {
                let mut p = prefix.to_vec();
                p.push(b'/');
                p.extend_from_slice(&path);
                path = p;
            }
        }
        let mut link = field(&h[157..257]).to_vec();
        let pending = std::mem::take(&mut self.pending);
        if let Some(p) = pending.long_name {
            path = p;
        }
        if let Some(p) = pending.pax_path {
            path = p;
        }
        if let Some(l) = pending.long_link {
            link = l;
        }
        if let Some(l) = pending.pax_link {
            link = l;
        }
        let kind = match typeflag {
            b'0' | 0 | b'7' if path.ends_with(b"/") => Kind::Dir,
            b'0' | 0 | b'7' => Kind::File,
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink(link),
            b'1' => Kind::Hardlink(link),
            other => Kind::Other(other),
        };
        let size = pending.pax_size.unwrap_or(size);
        if !padded_size_fits(size) {
            return Err(bad("size"));
        }
        // Directories and links carry no data (PostgreSQL never writes any for them).
        if size != 0 && matches!(kind, Kind::Dir | Kind::Symlink(_) | Kind::Hardlink(_)) {
            return Err(bad("size"));
        }
        Ok(Some(Member {
            path,
            kind,
            mode: (mode & 0o7777) as u32,
            size,
            mtime: pending.pax_mtime.unwrap_or(mtime),
        }))
    }

    /// Records what a finished metadata member says about the next member.
    fn apply_meta(&mut self, typeflag: u8) -> Result<(), TarError> {
        let data = std::mem::take(&mut self.meta);
        match typeflag {
            b'L' => self.pending.long_name = Some(field(&data).to_vec()),
            b'K' => self.pending.long_link = Some(field(&data).to_vec()),
            b'x' => self.apply_pax(&data)?,
            _ => {} // 'g': global pax settings; nothing walvault uses.
        }
        Ok(())
    }

    /// pax records: `<len> <key>=<value>\n`.
    fn apply_pax(&mut self, mut data: &[u8]) -> Result<(), TarError> {
        let at = self.offset;
        let bad = || TarError::BadField { at, field: "pax record" };
        while !data.is_empty() {
            let space = data.iter().position(|b| *b == b' ').ok_or_else(bad)?;
            let len: usize =
                std::str::from_utf8(&data[..space]).ok().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err(bad());
            }
            let record = &data[space + 1..len - 1];
            let eq = record.iter().position(|b| *b == b'=').ok_or_else(bad)?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            let number = || -> Result<u64, TarError> {
                let text = std::str::from_utf8(value).map_err(|_| bad())?;
                // mtime may carry a fraction; whole seconds are enough.
                text.split('.').next().unwrap_or("").parse().map_err(|_| bad())
            };
            match key {
                b"path" => self.pending.pax_path = Some(value.to_vec()),
                b"linkpath" => self.pending.pax_link = Some(value.to_vec()),
                b"size" => self.pending.pax_size = Some(number()?),
                b"mtime" => self.pending.pax_mtime = Some(number()?),
                _ => {}
            }
            data = &data[len..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::testutil::{archive, header};

    /// Events as owned values, with data of a member joined.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Member(Member),
        Data(Vec<u8>),
        End,
    }

    fn read(data: &[u8], piece: usize) -> Result<(Vec<Owned>, TarReader), TarError> {
        let mut r = TarReader::new();
        let mut out: Vec<Owned> = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            r.feed(chunk, &mut |e: Event<'_>| {
                match e {
                    Event::Member(m) => out.push(Owned::Member(m)),
                    Event::Data(d) => match out.last_mut() {
                        Some(Owned::Data(v)) => v.extend_from_slice(d),
                        _ => out.push(Owned::Data(d.to_vec())),
                    },
                    Event::MemberEnd => out.push(Owned::End),
                }
                Ok::<_, TarError>(())
            })?;
        }
        Ok((out, r))
    }

    fn with_checksum(mut h: [u8; BLOCK]) -> [u8; BLOCK] {
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    #[test]
    fn members_and_data_at_every_split() {
        let (data, _) = archive(
            &[("a", 0, b'0'), ("dir/", 0, b'5'), ("dir/b", 513, b'0'), ("c", 512, b'0'), ("d", 1, b'0')],
            true,
        );
        let (want, _) = read(&data, data.len()).unwrap();
        assert_eq!(want.iter().filter(|e| matches!(e, Owned::Member(_))).count(), 5);
        assert_eq!(want.iter().filter(|e| matches!(e, Owned::End)).count(), 5);
        let Owned::Member(m) = &want[4] else { panic!() };
        assert_eq!((m.path.as_slice(), &m.kind, m.mode, m.size), (&b"dir/b"[..], &Kind::File, 0o600, 513));
        let Owned::Data(d) = &want[5] else { panic!() };
        assert_eq!(d.len(), 513);
        assert_eq!(d[..3], [14, 15, 16]); // archive(): byte j of member i is i*7+j
        for piece in [1, 7, 511, 512, 513, 1024, 4096] {
            let (got, r) = read(&data, piece).unwrap();
            assert_eq!(got, want, "piece {piece}");
            assert_eq!(r.finish(true), Ok(()));
            assert_eq!(r.finish(false), Err(TarError::UnexpectedEnd(data.len() as u64)));
        }
    }

    #[test]
    fn how_the_input_ended() {
        let (data, _) = archive(&[("a", 10, b'0')], false);
        let (_, r) = read(&data, 100).unwrap();
        assert_eq!(r.finish(false), Ok(()));
        // A member of whole blocks (no padding) at the end of a part.
        for size in [512, 8192] {
            let (data, _) = archive(&[("a", 10, b'0'), ("b", size, b'0')], false);
            for piece in [1, 512, data.len()] {
                let (_, r) = read(&data, piece).unwrap();
                assert_eq!(r.finish(false), Ok(()), "size {size}, piece {piece}");
            }
        }
        assert_eq!(r.finish(true), Err(TarError::NoEndMarker));
        let (_, r) = read(&data[..data.len() - 1], 100).unwrap();
        assert!(matches!(r.finish(false), Err(TarError::Truncated(_))));
        let (_, r) = read(&data[..300], 100).unwrap();
        assert!(matches!(r.finish(false), Err(TarError::Truncated(_))));
        // Something after the end marker.
        let (mut data, _) = archive(&[("a", 10, b'0')], true);
        data.extend_from_slice(&[0; 512]);
        assert!(read(&data, 7).is_ok());
        let at = data.len() - 3;
        data[at] = 1;
        assert_eq!(read(&data, 7).err(), Some(TarError::AfterEnd(data.len() as u64 - 3)));
    }

    #[test]
    fn corrupt_header() {
        let (mut data, _) = archive(&[("a", 10, b'0'), ("b", 10, b'0')], true);
        data[512 * 2 + 1] ^= 1;
        assert_eq!(read(&data, 1).err(), Some(TarError::BadChecksum(1024)));
    }

    #[test]
    fn long_names_pax_prefix_and_links() {
        let long = "d/".repeat(80) + "file";
        let mut data = Vec::new();
        // GNU long name.
        data.extend_from_slice(&header("././@LongLink", long.len() as u64 + 1, b'L'));
        let mut name = long.clone().into_bytes();
        name.push(0);
        name.resize(name.len().div_ceil(512) * 512, 0);
        data.extend_from_slice(&name);
        data.extend_from_slice(&header("truncated", 3, b'0'));
        data.extend_from_slice(b"xyz");
        data.resize(data.len().div_ceil(512) * 512, 0);
        // pax path and size.
        let rec = |k: &str, v: &str| {
            let body = format!(" {k}={v}\n");
            let mut total = body.len() + 1;
            while total != body.len() + total.to_string().len() {
                total = body.len() + total.to_string().len();
            }
            format!("{total}{body}")
        };
        let pax = rec("path", "pax/name") + &rec("size", "2");
        data.extend_from_slice(&header("PaxHeader", pax.len() as u64, b'x'));
        let mut p = pax.into_bytes();
        p.resize(512, 0);
        data.extend_from_slice(&p);
        data.extend_from_slice(&header("ignored", 0, b'0'));
        // A header size of 0 but pax says 2: two bytes of data follow.
        data.extend_from_slice(&[1, 2]);
        data.resize(data.len().div_ceil(512) * 512, 0);
        // ustar prefix.
        let mut h = header("leaf", 0, b'0');
        h[345..351].copy_from_slice(b"prefix");
        data.extend_from_slice(&with_checksum(h));
        // Symlink and hard link.
        let mut s = header("ln", 0, b'2');
        s[157..163].copy_from_slice(b"target");
        data.extend_from_slice(&with_checksum(s));
        let mut s = header("hard", 0, b'1');
        s[157..160].copy_from_slice(b"ln2");
        data.extend_from_slice(&with_checksum(s));
        data.extend_from_slice(&[0; 1024]);
        for piece in [1, 100, 512, 100_000] {
            let (ev, r) = read(&data, piece).unwrap();
            r.finish(true).unwrap();
            let members: Vec<&Member> =
                ev.iter().filter_map(|e| if let Owned::Member(m) = e { Some(m) } else { None }).collect();
            assert_eq!(members[0].path, long.as_bytes());
            assert_eq!(members[1].path, b"pax/name");
            assert_eq!(members[1].size, 2);
            assert_eq!(members[2].path, b"prefix/leaf");
            assert_eq!(members[3].kind, Kind::Symlink(b"target".to_vec()));
            assert_eq!(members[4].kind, Kind::Hardlink(b"ln2".to_vec()));
            assert_eq!(members.len(), 5);
            assert!(ev.contains(&Owned::Data(b"xyz".to_vec())));
            assert!(ev.contains(&Owned::Data(vec![1, 2])));
        }
    }

    #[test]
    fn hostile_metadata_is_bounded() {
        let data = header("x", MAX_META + 1, b'x');
        assert_eq!(read(&data, 512).err(), Some(TarError::MetaTooLarge(0)));
    }
}
