//! AES-256-GCM sealing of one chunk in the STREAM construction: the nonce is the chunk's position
//! plus a last-chunk flag, and the object header is the associated data.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use secrecy::{ExposeSecret, SecretBox};

use super::header::{HEADER_LEN, TAG_LEN};

/// The cipher state of one object.
pub(crate) struct Seal {
    cipher: Aes256Gcm,
    aad: [u8; HEADER_LEN],
}

fn nonce(index: u32, last: bool) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n.into()
}

impl Seal {
    pub(crate) fn new(object_key: &SecretBox<[u8; 32]>, header: [u8; HEADER_LEN]) -> Self {
        let cipher = Aes256Gcm::new_from_slice(object_key.expose_secret()).expect("32-byte key");
        Seal { cipher, aad: header }
    }

    /// Encrypts `buf` in place and returns its tag.
    pub(crate) fn seal(&self, index: u32, last: bool, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce(index, last), &self.aad, buf.into())
            .expect("chunk within AES-GCM limits");
        tag.into()
    }

    /// Decrypts `buf` in place if `tag` authenticates it as chunk `index`; on failure `buf` is
    /// left as it was.
    pub(crate) fn open(&self, index: u32, last: bool, buf: &mut [u8], tag: &[u8]) -> bool {
        let tag = Tag::try_from(tag).expect("16-byte tag");
        self.cipher.decrypt_inout_detached(&nonce(index, last), &self.aad, buf.into(), &tag).is_ok()
    }
}
