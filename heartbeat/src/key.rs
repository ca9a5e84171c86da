//! The cluster key and the keys derived from it.
//!
//! # Key file format
//!
//! `[cluster] key_file` names a text file holding the 32-byte cluster key as 64
//! hexadecimal digits. Blank lines, surrounding whitespace and lines starting with `#`
//! are ignored, so the file may carry a comment:
//!
//! ```text
//! # baton cluster key (generated 2026-11-21); identical on every node, mode 0600
//! 3f1c0e9a5b7d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6
//! ```
//!
//! [`ClusterKey::generate`] makes a new key from the OS random source and
//! [`ClusterKey::write_new_file`] writes it with mode 0600 (refusing to overwrite), which
//! is what `ikectl` / `batond` use to create one.
//!
//! The key itself is never used directly: each use gets its own key derived as
//! `HMAC-SHA256(cluster_key, label)` with a distinct label (domain separation), so the
//! heartbeat MAC key and the replication channel's Noise PSK are independent.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use hmac::{KeyInit, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of the cluster key in bytes.
pub const CLUSTER_KEY_LEN: usize = 32;

/// Label for the heartbeat MAC key.
pub const LABEL_HEARTBEAT: &[u8] = b"baton heartbeat v1";

/// The shared 32-byte cluster secret. Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ClusterKey([u8; CLUSTER_KEY_LEN]);

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("{path}: line {line}: {what}")]
    Format {
        /// The file.
        path: String,
        /// 1-based line number of the offending line (0 when the file has no key line).
        line: usize,
        /// What is wrong.
        what: String,
    },
}

impl ClusterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; CLUSTER_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A new random key from the OS random source.
    pub fn generate() -> Self {
        let mut k = [0u8; CLUSTER_KEY_LEN];
        rand::fill(&mut k[..]);
        Self(k)
    }

    /// Parses the text of a key file (see the module docs). `path` is only used in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, KeyFileError> {
        let mut found: Option<(usize, &str)> = None;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if found.is_some() {
                return Err(KeyFileError::Format {
                    path: path.to_owned(),
                    line: i + 1,
                    what: "more than one key line".into(),
                });
            }
            found = Some((i + 1, t));
        }
        let Some((line, hexkey)) = found else {
            return Err(KeyFileError::Format {
                path: path.to_owned(),
                line: 0,
                what: "no key found (expected 64 hex digits)".into(),
            });
        };
        let mut k = [0u8; CLUSTER_KEY_LEN];
        if hexkey.len() != 2 * CLUSTER_KEY_LEN || hex::decode_to_slice(hexkey, &mut k).is_err() {
            k.zeroize();
            return Err(KeyFileError::Format {
                path: path.to_owned(),
                line,
                what: format!(
                    "expected 64 hex digits (32 bytes), found {} characters",
                    hexkey.len()
                ),
            });
        }
        Ok(Self(k))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let p = path.display().to_string();
        let mut text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: p.clone(),
            source,
        })?;
        let r = Self::parse(&text, &p);
        text.zeroize();
        r
    }

    /// The key file text for this key.
    pub fn to_file_contents(&self) -> String {
        format!(
            "# baton cluster key: identical on every node, keep secret (mode 0600)\n{}\n",
            hex::encode(self.0)
        )
    }

    /// Writes this key to a new file with mode 0600; fails if the file exists.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyFileError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let p = path.display().to_string();
        let io = |source| KeyFileError::Io {
            path: p.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let mut text = self.to_file_contents();
        let r = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
        text.zeroize();
        r.map_err(io)
    }

    /// `HMAC-SHA256(cluster_key, label)`: a 32-byte key for one purpose.
    pub fn derive(&self, label: &[u8]) -> DerivedKey {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0) {
            mac.update(label);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        DerivedKey(out)
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// A 32-byte key derived from the cluster key for one purpose. Zeroized, redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DerivedKey([u8; 32]);

impl DerivedKey {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let k = ClusterKey::generate();
        let text = k.to_file_contents();
        assert_eq!(ClusterKey::parse(&text, "f").unwrap(), k);
        assert!(format!("{k:?}").contains("redacted"));
        let e = ClusterKey::parse("# c\nabcd\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(ClusterKey::parse("", "f").is_err());
        assert!(ClusterKey::parse(&"zz".repeat(32), "f").is_err());
        assert_ne!(k.derive(b"a").as_bytes(), k.derive(b"b").as_bytes());
    }

    #[test]
    fn file_is_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("baton-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cluster.key");
        let _ = std::fs::remove_file(&p);
        let k = ClusterKey::generate();
        k.write_new_file(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ClusterKey::load(&p).unwrap(), k);
        assert!(k.write_new_file(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
