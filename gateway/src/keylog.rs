//! The IKE key log: lines for Wireshark's `ikev2_decryption_table`, appended to a file
//! that only the daemon's user can read (it holds every IKE SA's keys).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An open key log file.
#[derive(Debug)]
pub struct KeyLog {
    path: PathBuf,
    file: File,
}

impl KeyLog {
    /// Opens (creating, mode 0600) `path` for appending; an existing file is narrowed to
    /// 0600 as well.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one line.
    pub fn append(&mut self, line: &str) -> std::io::Result<()> {
        // The line holds keys: wipe the copy.
        let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(line.len() + 1));
        buf.extend_from_slice(line.trim_end_matches('\n').as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
