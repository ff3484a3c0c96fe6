//! Master encryption keys: loading key files, key ids, per-object key derivation (HKDF-SHA256)
//! and `walvault keygen`. Key bytes live in `SecretBox` and never reach `Debug` or logs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use thiserror::Error;

/// Bytes of a master key (AES-256).
pub const KEY_LEN: usize = 32;

const KEY_ID_INFO: &[u8] = b"walvault key id v1";
const OBJECT_KEY_INFO: &[u8] = b"walvault object key v1";

/// A public fingerprint of a master key, stored in every object header so a wrong key is
/// named before any decryption is tried.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 32-byte master key (cheap to clone: the secret is shared). Its `Debug` shows only the key id.
#[derive(Clone)]
pub struct MasterKey {
    secret: std::sync::Arc<SecretBox<[u8; KEY_LEN]>>,
    id: KeyId,
}

/// Why a key file could not be used or written.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The key file holds neither 32 raw bytes nor 64 hex digits.
    #[error(
        "key file {path} holds {len} bytes; a key is 32 raw bytes or 64 hex digits \
         (make one with `walvault keygen FILE`)"
    )]
    BadLength {
        /// The key file.
        path: PathBuf,
        /// How many bytes it holds.
        len: usize,
    },
    /// `keygen` will not replace an existing file.
    #[error("{0} already exists; walvault keygen never overwrites a key (remove it first if you mean to)")]
    Exists(PathBuf),
    /// `keygen` could not write the file.
    #[error("cannot write key file {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl MasterKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut id = [0u8; 8];
        Hkdf::<Sha256>::new(Some(b"walvault"), &bytes)
            .expand(KEY_ID_INFO, &mut id)
            .expect("8 bytes is a valid HKDF length");
        MasterKey { secret: std::sync::Arc::new(SecretBox::new(Box::new(bytes))), id: KeyId(id) }
    }

    /// Reads a key file: 32 raw bytes, or 64 hex digits with optional surrounding white space.
    /// A key file that others can read is accepted with a warning (Kubernetes mounts secrets 0644
    /// by default), since refusing would stop archiving.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let read_err = |source| KeyError::Read { path: path.to_path_buf(), source };
        let raw = secrecy::SecretBox::new(Box::new(std::fs::read(path).map_err(read_err)?));
        let raw = raw.expose_secret();
        let mut key = [0u8; KEY_LEN];
        if raw.len() == KEY_LEN {
            key.copy_from_slice(raw);
        } else {
            let text = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
            if text.len() != 2 * KEY_LEN || hex::decode_to_slice(text, &mut key).is_err() {
                return Err(KeyError::BadLength { path: path.to_path_buf(), len: raw.len() });
            }
        }
        warn_if_shared(path);
        let k = MasterKey::from_bytes(key);
        zeroize::Zeroize::zeroize(&mut key);
        Ok(k)
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The AES-256 key for one object: HKDF-SHA256(master key, the object's random salt).
    pub(crate) fn object_key(&self, salt: &[u8]) -> SecretBox<[u8; KEY_LEN]> {
        let mut okm = Box::new([0u8; KEY_LEN]);
        Hkdf::<Sha256>::new(Some(salt), self.secret.expose_secret())
            .expand(OBJECT_KEY_INFO, okm.as_mut())
            .expect("32 bytes is a valid HKDF length");
        SecretBox::new(okm)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {}, secret redacted)", self.id)
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "key file {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path) {}

/// The keys this process may use: one to write with (if any), all to read with.
#[derive(Debug, Default, Clone)]
pub struct KeyRing {
    write: Option<MasterKey>,
    read_only: Vec<MasterKey>,
}

impl KeyRing {
    /// A ring from the write key and older keys still accepted for reading.
    pub fn new(write: Option<MasterKey>, read_only: Vec<MasterKey>) -> Self {
        KeyRing { write, read_only }
    }

    /// The key new objects are sealed with; `None` means objects are stored unencrypted.
    pub fn write_key(&self) -> Option<&MasterKey> {
        self.write.as_ref()
    }

    /// The key with this id, if configured for reading.
    pub fn find(&self, id: KeyId) -> Option<&MasterKey> {
        self.write.iter().chain(&self.read_only).find(|k| k.id == id)
    }

    /// The ids of every key that can read.
    pub fn ids(&self) -> Vec<KeyId> {
        self.write.iter().chain(&self.read_only).map(|k| k.id).collect()
    }
}

/// Writes a new random key to `path` as 64 hex digits, mode 0600, refusing to replace a file.
pub fn keygen(path: &Path) -> Result<KeyId, KeyError> {
    let mut bytes = [0u8; KEY_LEN];
    rand::fill(&mut bytes);
    let key = MasterKey::from_bytes(bytes);
    let mut text = hex::encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    text.push('\n');
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let write_err = |source| KeyError::Write { path: path.to_path_buf(), source };
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            write_err(e)
        }
    })?;
    let res = file.write_all(text.as_bytes()).and_then(|_| file.sync_all());
    zeroize::Zeroize::zeroize(&mut text);
    res.map_err(write_err)?;
    Ok(key.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_loadable_private_key_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let id = keygen(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(MasterKey::load(&path).unwrap().id(), id);
        assert!(matches!(keygen(&path), Err(KeyError::Exists(_))));
        assert_eq!(MasterKey::load(&path).unwrap().id(), id);
    }

    #[test]
    fn raw_and_hex_forms_are_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = [7u8; 32];
        std::fs::write(dir.path().join("raw"), bytes).unwrap();
        std::fs::write(dir.path().join("hex"), format!("  {}\n", hex::encode(bytes))).unwrap();
        let a = MasterKey::load(&dir.path().join("raw")).unwrap();
        let b = MasterKey::load(&dir.path().join("hex")).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), MasterKey::from_bytes([8u8; 32]).id());
    }

    #[test]
    fn wrong_lengths_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for content in [&b""[..], &[1u8; 31], &[1u8; 33], &b"zz".repeat(32)] {
            std::fs::write(dir.path().join("k"), content).unwrap();
            let err = MasterKey::load(&dir.path().join("k")).unwrap_err();
            assert!(matches!(err, KeyError::BadLength { .. }), "{err}");
        }
        assert!(matches!(MasterKey::load(&dir.path().join("none")), Err(KeyError::Read { .. })));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!(
            "{:?} {:?}",
            MasterKey::from_bytes([0xAB; 32]),
            KeyRing::new(Some(MasterKey::from_bytes([0xAB; 32])), vec![])
        );
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    }

    #[test]
    fn object_keys_differ_by_salt() {
        let k = MasterKey::from_bytes([1; 32]);
        assert_ne!(k.object_key(&[0; 32]).expose_secret(), k.object_key(&[1; 32]).expose_secret());
        assert_eq!(k.object_key(&[2; 32]).expose_secret(), k.object_key(&[2; 32]).expose_secret());
    }
}
