//! Streams an object of a `file://` repository in large blocks. object_store hands a local
//! object over as an open file and its own stream reads it 8 KiB at a time, one hop to the
//! blocking pool per block: restoring gigabytes that way costs more than the disk does. Here
//! each hop reads [`BLOCK`] bytes.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};

/// Bytes read per hop to the blocking pool.
pub const BLOCK: usize = 256 * 1024;

/// The bytes `range` of `file`, in blocks of up to [`BLOCK`] bytes. A file shorter than the
/// range ends the stream with an `UnexpectedEof` error.
pub fn stream(file: File, range: Range<u64>) -> BoxStream<'static, io::Result<Bytes>> {
    stream::try_unfold((file, range.start), move |(file, at)| async move {
        if at >= range.end {
            return Ok(None);
        }
        let want = (range.end - at).min(BLOCK as u64) as usize;
        let (file, block) = tokio::task::spawn_blocking(move || -> io::Result<(File, Vec<u8>)> {
            let mut block = vec![0u8; want];
            let mut filled = 0;
            while filled < want {
                match file.read_at(&mut block[filled..], at + filled as u64) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the file ends at byte {}, before the {} bytes expected",
                                at + filled as u64,
                                range.end
                            ),
                        ));
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((file, block))
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Some((Bytes::from(block), (file, at + want as u64))))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn reads_exactly_the_range_in_blocks() {
        let data: Vec<u8> = (0..(2 * BLOCK + 777)).map(|i| (i % 251) as u8).collect();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &data).unwrap();
        for range in [0..data.len() as u64, 5..(BLOCK as u64 + 9), 100..100, 3..data.len() as u64] {
            let blocks: Vec<Bytes> =
                stream(File::open(f.path()).unwrap(), range.clone()).try_collect().await.unwrap();
            assert!(blocks.iter().all(|b| b.len() <= BLOCK));
            assert_eq!(blocks.concat(), &data[range.start as usize..range.end as usize]);
        }
        let short = stream(File::open(f.path()).unwrap(), 0..data.len() as u64 + 1);
        let err = short.try_collect::<Vec<_>>().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
