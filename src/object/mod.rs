//! One object between local bytes and the repository: [`encode`] turns a local file (or any
//! reader) into an encoded object ready to upload; [`read`] streams a stored object through the
//! decoder into a sink, verified; [`download`] streams a large object's bytes, resuming a cut
//! stream with a ranged GET; [`stream`] stores a stream of bytes (a backup's archive, a dump)
//! as one object or as parts, with bounded memory.

pub mod download;
pub mod encode;
pub mod read;
pub mod stream;
