//! Finds tar member boundaries in a stream of tar bytes (no IO), so an archive can be cut into
//! parts that each hold whole members and can be extracted on their own. A metadata member (pax
//! `x`/`g`, GNU long name `L`/`K`) stays in the same part as the member it describes.

use thiserror::Error;

/// A tar block.
pub const BLOCK: usize = 512;

/// Why the bytes are not a tar stream.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TarError {
    /// A header block's checksum is wrong.
    #[error("tar header at byte {0} is corrupt (bad checksum)")]
    BadChecksum(u64),
    /// A header's size field is unreadable.
    #[error("tar header at byte {0} has an unreadable size")]
    BadSize(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Collecting a header block (`filled` bytes so far).
    Header { filled: usize },
    /// Inside a member's data (padded to whole blocks).
    Data { remaining: u64 },
    /// After the end-of-archive marker: nothing but padding follows.
    End,
}

/// Tracks member boundaries across any split of the input.
#[derive(Debug)]
pub struct TarSplitter {
    state: State,
    header: [u8; BLOCK],
    /// The current member describes the next one (pax or GNU long name).
    meta: bool,
    offset: u64,
}

impl Default for TarSplitter {
    fn default() -> Self {
        TarSplitter { state: State::Header { filled: 0 }, header: [0; BLOCK], meta: false, offset: 0 }
    }
}

/// A tar number field: octal text, or base-256 when the high bit of the first byte is set.
pub fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7F);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field.iter().copied().filter(|b| *b != 0 && *b != b' ').collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

impl TarSplitter {
    /// A tracker at the start of an archive (a boundary).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the bytes consumed so far end exactly at a member boundary where a part may be cut.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { filled: 0 }) && !self.meta
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Consumes from `input` up to the next member boundary (or all of it if none comes);
    /// returns how many bytes were consumed. At least one byte is consumed from non-empty input.
    pub fn advance(&mut self, input: &[u8]) -> Result<usize, TarError> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match self.state {
                State::End => {
                    used = input.len();
                }
                State::Header { filled } => {
                    let take = (BLOCK - filled).min(rest.len());
                    self.header[filled..filled + take].copy_from_slice(&rest[..take]);
                    used += take;
                    if filled + take < BLOCK {
                        self.state = State::Header { filled: filled + take };
                        continue;
                    }
                    let at = self.offset + used as u64 - BLOCK as u64;
                    if self.header.iter().all(|b| *b == 0) {
                        self.state = State::End;
                        continue;
                    }
                    self.check_header(at)?;
                    let size = parse_number(&self.header[124..136]).ok_or(TarError::BadSize(at))?;
                    let padded = size.checked_next_multiple_of(BLOCK as u64).ok_or(TarError::BadSize(at))?;
                    let was_meta = self.meta;
                    self.meta = matches!(self.header[156], b'x' | b'g' | b'L' | b'K');
                    let _ = was_meta;
                    if padded == 0 {
                        self.state = State::Header { filled: 0 };
                        if self.at_boundary() {
                            break;
                        }
                    } else {
                        self.state = State::Data { remaining: padded };
                    }
                }
                State::Data { remaining } => {
                    let take = remaining.min(rest.len() as u64) as usize;
                    used += take;
                    let left = remaining - take as u64;
                    if left > 0 {
                        self.state = State::Data { remaining: left };
                        continue;
                    }
                    self.state = State::Header { filled: 0 };
                    if self.at_boundary() {
                        break;
                    }
                }
            }
        }
        self.offset += used as u64;
        Ok(used)
    }

    fn check_header(&self, at: u64) -> Result<(), TarError> {
        let stored = parse_number(&self.header[148..156]).ok_or(TarError::BadChecksum(at))?;
        let sum: u64 = self
            .header
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(*b) })
            .sum();
        if sum == stored { Ok(()) } else { Err(TarError::BadChecksum(at)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::testutil::archive;

    fn boundaries_seen(data: &[u8], piece: usize) -> Vec<usize> {
        let mut t = TarSplitter::new();
        let mut seen = vec![0];
        for chunk in data.chunks(piece) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = t.advance(rest).unwrap();
                assert!(n > 0);
                rest = &rest[n..];
                if t.at_boundary() && *seen.last().unwrap() != t.offset() as usize {
                    seen.push(t.offset() as usize);
                }
            }
        }
        seen
    }

    #[test]
    fn finds_every_member_boundary_at_any_split() {
        let (data, want) = archive(
            &[
                ("a", 0, b'0'),
                ("b", 1, b'0'),
                ("c", 512, b'0'),
                ("d", 513, b'0'),
                ("dir/", 0, b'5'),
                ("e", 5000, b'0'),
            ],
            true,
        );
        for piece in [1, 7, 511, 512, 513, 4096, data.len()] {
            assert_eq!(boundaries_seen(&data, piece), want, "piece {piece}");
        }
    }

    #[test]
    fn metadata_members_stay_with_their_member() {
        let (data, want) = archive(
            &[
                ("a", 10, b'0'),
                ("././@LongLink", 200, b'L'),
                ("long", 20, b'0'),
                ("pax", 30, b'x'),
                ("b", 0, b'0'),
            ],
            false,
        );
        assert_eq!(boundaries_seen(&data, 100), want);
    }

    #[test]
    fn corrupt_headers_are_caught() {
        let (mut data, _) = archive(&[("a", 10, b'0')], false);
        data[3] ^= 1;
        assert_eq!(TarSplitter::new().advance(&data), Err(TarError::BadChecksum(0)));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"00000001750\0"), Some(1000));
        assert_eq!(parse_number(b"     17 \0"), Some(15));
        assert_eq!(parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]), Some(2 << 32));
        assert_eq!(parse_number(b"9"), None);
    }
}
