//! SHA-256 of a stream's raw bytes on a thread of its own, so that hashing runs beside
//! compression rather than in front of it on the encoding thread. Pieces are handed over by
//! reference count, never copied.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Pieces queued for the hashing thread (they are slices of the chunks already in memory).
const QUEUE: usize = 64;

enum Msg {
    Data(Bytes),
    Digest(SyncSender<[u8; 32]>),
}

/// A SHA-256 computed on a background thread; [`BackgroundSha256::digest`] ends one hash and
/// starts the next.
pub struct BackgroundSha256 {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundSha256 {
    /// Starts the hashing thread.
    pub fn new() -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("walvault-sha256".into())
            .spawn(move || run(rx))
            .expect("cannot start the hashing thread");
        BackgroundSha256 { tx: Some(tx), thread: Some(thread) }
    }

    /// Adds `bytes` to the current hash.
    pub fn update(&self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.send(Msg::Data(bytes));
        }
    }

    /// The SHA-256 of everything added since the last digest.
    pub fn digest(&self) -> [u8; 32] {
        let (tx, rx) = sync_channel(1);
        self.send(Msg::Digest(tx));
        rx.recv().expect("the hashing thread ended")
    }

    fn send(&self, msg: Msg) {
        self.tx.as_ref().expect("sender kept until drop").send(msg).expect("the hashing thread ended");
    }
}

fn run(rx: Receiver<Msg>) {
    let mut sha = Sha256::new();
    for msg in rx {
        match msg {
            Msg::Data(b) => sha.update(&b),
            Msg::Digest(reply) => {
                let _ = reply.send(std::mem::take(&mut sha).finalize().into());
            }
        }
    }
}

impl Drop for BackgroundSha256 {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_sha256_of_what_was_added_since_the_last_one() {
        let h = BackgroundSha256::new();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let bytes = Bytes::from(data.clone());
        h.update(bytes.slice(..1000));
        h.update(bytes.slice(1000..1000));
        h.update(bytes.slice(1000..60_000));
        assert_eq!(h.digest(), <[u8; 32]>::from(Sha256::digest(&data[..60_000])));
        h.update(bytes.slice(60_000..));
        assert_eq!(h.digest(), <[u8; 32]>::from(Sha256::digest(&data[60_000..])));
        assert_eq!(h.digest(), <[u8; 32]>::from(Sha256::digest(b"")));
    }
}
