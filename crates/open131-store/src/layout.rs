//! The data directory: the one place that names its files. On SQLite it holds
//! the database; on every backend it holds what is per node (the registry
//! indexes, the demo key a newcomer signs with, the serve lock).
//!
//! ```text
//! <data dir>/
//!   open131.sqlite3 (+ -wal, -shm)   the embedded database (SQLite only)
//!   serve.lock                      held by the one server of an SQLite data dir
//!   demo.key.pem                    the demo project's private key (0600)
//!   bank.key.pem                    legacy: the bank key before it moved into the database
//!   admin.token                     a copy of the admin token for the operator (SQLite only)
//!   vault.key                       the card vault's keys (0600; the same file on every node)
//!   registry/passports.idx          the MVD invalid-passport index (per node)
//!   registry/taxpayers.idx          the taxpayer index (per node)
//!   registry/npd.idx                the imported self-employed register (per node)
//! ```
//!
//! Invariant: every file that holds a secret or an index is written with
//! [`write_atomic`]: a temporary file, fsync, rename, so a crash leaves the
//! old file or the new one, never half of one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The files of one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (and its parents) if missing.
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("open131.sqlite3")
    }

    pub fn serve_lock(&self) -> PathBuf {
        self.root.join("serve.lock")
    }

    pub fn demo_key(&self) -> PathBuf {
        self.root.join("demo.key.pem")
    }

    /// Where the bank key lived before it moved into the database; read once to
    /// keep an existing installation's webhook signatures.
    pub fn legacy_bank_key(&self) -> PathBuf {
        self.root.join("bank.key.pem")
    }

    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// The card vault's keys (0600): outside the database, so a copy of the
    /// database alone reveals no card number.
    pub fn vault_key(&self) -> PathBuf {
        self.root.join("vault.key")
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    pub fn passports_index(&self) -> PathBuf {
        self.registry_dir().join("passports.idx")
    }

    /// The self-employed register `open131 npd import` writes.
    pub fn npd_register(&self) -> PathBuf {
        self.registry_dir().join("npd.idx")
    }

    pub fn taxpayers_index(&self) -> PathBuf {
        self.registry_dir().join("taxpayers.idx")
    }
}

/// Who may read a file written by [`write_atomic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// The owner only (0600): keys and tokens.
    Private,
    /// The process's umask decides.
    Default,
}

/// Writes `bytes` to `path` atomically (an [`AtomicFile`] written whole).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: FileMode) -> std::io::Result<()> {
    let mut file = AtomicFile::create(path, mode)?;
    file.file().write_all(bytes)?;
    file.commit()
}

/// A file written in full or not at all: a temporary file beside `path`
/// until [`AtomicFile::commit`] (fsync, rename, then, best effort, fsync of
/// the directory so the rename is durable); dropped uncommitted, it is removed.
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    file: std::fs::File,
}

impl AtomicFile {
    pub fn create(path: &Path, mode: FileMode) -> std::io::Result<Self> {
        let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if mode == FileMode::Private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&tmp)?;
        Ok(Self { tmp, path: path.to_path_buf(), file })
    }

    /// The temporary file, to write to.
    pub fn file(&mut self) -> &mut std::fs::File {
        &mut self.file
    }

    /// Makes the written file `path`'s content.
    pub fn commit(self) -> std::io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a commit the temporary name is gone and this does nothing.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomic(&path, b"one", FileMode::Private).unwrap();
        write_atomic(&path, b"two", FileMode::Private).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
