//! The card vault's keys: card numbers are sealed with AES-256-GCM before
//! they reach the database, and named by `number_hash`, an HMAC-SHA-256 of
//! the project and the number under a key of its own. Both keys live in
//! `vault.key` in the data directory ([`open131_store::DataDir::vault_key`]),
//! never in the database: a copy of the database alone reveals no number
//! (the hash key is not there either, so the six hidden digits cannot be
//! found by trying them against a hash).
//!
//! The file (text, 0600): a header line, `hash <64 hex>`, then one or more
//! `key <8 hex id> <64 hex>` lines, the first the key new cards are sealed
//! with. A sealed card records its key's id, so older keys keep opening the
//! cards they sealed. One data directory on SQLite makes its file on first
//! use; nodes sharing a PostgreSQL database must share one file (copy it to
//! each node before the vault is used), so there a missing file is an error.
//!
//! Invariant: no card number leaves this module but sealed, or opened for
//! the one request that pays with it; `Debug` prints no key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{digest, hmac};
use open131_store::layout::{write_atomic, DataDir, FileMode};
use open131_wire::sign::hex;

const HEADER: &str = "open131 vault keys v1";
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the vault key file {0} is missing: copy the same vault.key to every node sharing the database")]
    Missing(String),
    #[error("the vault key file {0} is not one open131 wrote")]
    Malformed(String),
    #[error("the vault key file could not be read or written: {0}")]
    Io(#[from] std::io::Error),
    #[error("no random bytes: {0}")]
    Random(String),
    #[error("a card sealed with key {0}, which vault.key does not hold")]
    UnknownKey(String),
    #[error("a sealed card does not open (its key, project or hash differs)")]
    Corrupt,
    #[error("no staged key: on nodes sharing a database, stage one (keys vault-stage), copy vault.key to every node, then rotate")]
    NothingStaged,
}

/// A card number sealed for one project's `number_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Every stored row that holds a sealed secret carries the same three
/// columns; these name them once.
macro_rules! sealed_from_row {
    ($($row:ty),*) => {$(
        impl From<&$row> for Sealed {
            fn from(row: &$row) -> Self {
                Sealed { key_id: row.key_id.clone(), nonce: row.nonce.clone(), ciphertext: row.ciphertext.clone() }
            }
        }
    )*};
}
sealed_from_row!(open131_store::VaultCardRecord, open131_store::VaultAccountRecord, open131_store::SealedItem);

pub struct Vault {
    hash_key: hmac::Key,
    /// The id new cards are sealed with (the file's first key).
    current: String,
    keys: HashMap<String, LessSafeKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("current", &self.current).field("keys", &"***").finish()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|e| VaultError::Random(e.to_string()))?;
    Ok(bytes)
}

/// A key's id: the first four bytes of its SHA-256, hex.
fn key_id(key: &[u8]) -> String {
    hex(&digest::digest(&digest::SHA256, key).as_ref()[..4])
}

impl Vault {
    /// Reads the data directory's key file; `create` makes one when there is
    /// none (a single node's data directory).
    pub fn open_or_create(dir: &DataDir, create: bool) -> Result<Self, VaultError> {
        let path = dir.vault_key();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).ok_or_else(|| VaultError::Malformed(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => Self::create(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(VaultError::Missing(path.display().to_string())),
            Err(e) => Err(e.into()),
        }
    }

    fn create(path: &Path) -> Result<Self, VaultError> {
        let (hash, key) = (random::<KEY_BYTES>()?, random::<KEY_BYTES>()?);
        let text = format!("{HEADER}\nhash {}\nkey {} {}\n", hex(&hash), key_id(&key), hex(&key));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Written beside it, then linked in place only if no file is there yet:
        // of two makers at once (a server and `keys vault-init`), both end up
        // with the first one's keys.
        let staged = path.with_extension(format!("new-{}", std::process::id()));
        write_atomic(&staged, text.as_bytes(), FileMode::Private)?;
        let linked = std::fs::hard_link(&staged, path);
        let _ = std::fs::remove_file(&staged);
        let malformed = || VaultError::Malformed(path.display().to_string());
        match linked {
            Ok(()) => Self::parse(&text).ok_or_else(malformed),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::parse(&std::fs::read_to_string(path)?).ok_or_else(malformed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The file's text, or `None` if it is not one this module writes.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next()? != HEADER {
            return None;
        }
        let hash = unhex(lines.next()?.strip_prefix("hash ")?).filter(|h| h.len() == KEY_BYTES)?;
        let (mut keys, mut current) = (HashMap::new(), None);
        for line in lines {
            // A staged key opens what it sealed but seals nothing until promoted.
            let (staged, rest) = match line.strip_prefix("staged ") {
                Some(rest) => (true, rest),
                None => (false, line.strip_prefix("key ")?),
            };
            let mut parts = rest.split(' ');
            let (id, key) = (parts.next()?, unhex(parts.next()?).filter(|k| k.len() == KEY_BYTES)?);
            if parts.next().is_some() || key_id(&key) != id {
                return None;
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &key).ok()?;
            keys.insert(id.to_string(), LessSafeKey::new(unbound));
            if !staged {
                current.get_or_insert_with(|| id.to_string());
            }
        }
        Some(Self { hash_key: hmac::Key::new(hmac::HMAC_SHA256, &hash), current: current?, keys })
    }

    /// Adds a staged key at the end of the key file: it opens what it seals
    /// but seals nothing yet. Nodes sharing a database get the file before
    /// [`Vault::rotate`] promotes it, so each can open what it will seal.
    pub fn stage_key(dir: &DataDir) -> Result<Self, VaultError> {
        let (path, text) = Self::file(dir)?;
        let key = random::<KEY_BYTES>()?;
        let staged = format!("{}\nstaged {} {}\n", text.trim_end(), key_id(&key), hex(&key));
        Self::replace(&path, &staged)
    }

    /// Makes the newest staged key the one new items are sealed with (with
    /// none staged and `may_make`, a new key: a single node's data directory)
    /// and returns the vault the file now holds; the older keys stay, so what
    /// they sealed still opens. [`reseal_all`] then moves every item to it.
    pub fn rotate(dir: &DataDir, may_make: bool) -> Result<Self, VaultError> {
        let (path, text) = Self::file(dir)?;
        let mut lines: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        let promoted = match lines.iter().rposition(|l| l.starts_with("staged ")) {
            Some(at) => lines.remove(at).replacen("staged ", "key ", 1),
            None if may_make => {
                let key = random::<KEY_BYTES>()?;
                format!("key {} {}", key_id(&key), hex(&key))
            }
            None => return Err(VaultError::NothingStaged),
        };
        lines.insert(2.min(lines.len()), promoted);
        Self::replace(&path, &format!("{}\n", lines.join("\n")))
    }

    fn file(dir: &DataDir) -> Result<(std::path::PathBuf, String), VaultError> {
        let path = dir.vault_key();
        let text = std::fs::read_to_string(&path)?;
        Self::parse(&text).ok_or_else(|| VaultError::Malformed(path.display().to_string()))?;
        Ok((path, text))
    }

    fn replace(path: &Path, text: &str) -> Result<Self, VaultError> {
        let vault = Self::parse(text).ok_or_else(|| VaultError::Malformed(path.display().to_string()))?;
        write_atomic(path, text.as_bytes(), FileMode::Private)?;
        Ok(vault)
    }

    /// The id of the key new items are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// The card's name within `project`: stable, and meaningless to another project.
    pub fn number_hash(&self, project: &str, number: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.hash_key);
        ctx.update(project.as_bytes());
        ctx.update(&[0]);
        ctx.update(number.as_bytes());
        hex(ctx.sign().as_ref())
    }

    /// Seals `number` for `project`'s `number_hash` (both bound as associated data).
    pub fn seal(&self, project: &str, number_hash: &str, number: &str) -> Result<Sealed, VaultError> {
        let key = self.keys.get(&self.current).ok_or_else(|| VaultError::UnknownKey(self.current.clone()))?;
        let nonce: [u8; NONCE_LEN] = random()?;
        let mut data = number.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad(project, number_hash), &mut data)
            .map_err(|_| VaultError::Corrupt)?;
        Ok(Sealed { key_id: self.current.clone(), nonce: nonce.to_vec(), ciphertext: data })
    }

    /// Opens what [`Vault::seal`] sealed for the same project and hash.
    pub fn open(&self, project: &str, number_hash: &str, sealed: &Sealed) -> Result<String, VaultError> {
        let key = self.keys.get(&sealed.key_id).ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| VaultError::Corrupt)?;
        let mut data = sealed.ciphertext.clone();
        let plain = key.open_in_place(nonce, aad(project, number_hash), &mut data).map_err(|_| VaultError::Corrupt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Corrupt)
    }
}

fn aad(project: &str, number_hash: &str) -> Aad<Vec<u8>> {
    Aad::from([project.as_bytes(), &[0], number_hash.as_bytes()].concat())
}

/// Seals every item of the vault (every project's) under `vault`'s current
/// key, in rounds of at most `RESEAL_BATCH_MAX`; returns how many moved.
pub async fn reseal_all(store: &dyn open131_store::Store, vault: &Vault) -> anyhow::Result<usize> {
    let mut moved = 0;
    loop {
        let items = store.sealed_items(vault.current_key_id(), RESEAL_BATCH_MAX).await?;
        if items.is_empty() {
            return Ok(moved);
        }
        for item in items {
            let clear = vault.open(&item.project_id, &item.name, &Sealed::from(&item))?;
            let again = vault.seal(&item.project_id, &item.name, &clear)?;
            let item = open131_store::SealedItem {
                key_id: again.key_id,
                nonce: again.nonce,
                ciphertext: again.ciphertext,
                ..item
            };
            store.reseal(item).await?;
            moved += 1;
        }
    }
}

/// Items re-sealed per round of [`reseal_all`].
pub const RESEAL_BATCH_MAX: usize = 256;

/// The vault of a running server, read (or made) on first use and read again
/// whenever its file changes (an operator rotated the keys: new items are
/// sealed under the new key at once). A failure is not kept: a node given
/// its key file later reads it at the next request.
#[derive(Debug, Default)]
pub struct VaultCell(Mutex<Option<(Arc<Vault>, Option<std::time::SystemTime>)>>);

fn modified(dir: &DataDir) -> Option<std::time::SystemTime> {
    std::fs::metadata(dir.vault_key()).and_then(|m| m.modified()).ok()
}

impl VaultCell {
    pub fn get(&self, dir: &DataDir, create: bool) -> Result<Arc<Vault>, String> {
        let mut slot = self.0.lock().map_err(|_| "the vault's lock was poisoned".to_string())?;
        let seen = modified(dir);
        if let Some((vault, at)) = slot.as_ref() {
            // Unchanged, or gone (never replaced by a new key file while this
            // node holds the keys: that would lose every sealed item).
            if seen.is_none() || *at == seen {
                return Ok(vault.clone());
            }
        }
        let vault = Arc::new(Vault::open_or_create(dir, create && slot.is_none()).map_err(|e| e.to_string())?);
        // The time seen before reading: a change since is read next time.
        *slot = Some((vault.clone(), seen));
        Ok(vault)
    }

    /// Reads the key file again, whatever its time says (a copy may keep an
    /// older modification time).
    pub fn reload(&self, dir: &DataDir) -> Result<Arc<Vault>, String> {
        let seen = modified(dir);
        let vault = Arc::new(Vault::open_or_create(dir, false).map_err(|e| e.to_string())?);
        let mut slot = self.0.lock().map_err(|_| "the vault's lock was poisoned".to_string())?;
        *slot = Some((vault.clone(), seen));
        Ok(vault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_seal_and_open_per_project_and_hashes_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        assert!(matches!(Vault::open_or_create(&data, false), Err(VaultError::Missing(_))));
        let vault = Vault::open_or_create(&data, true).unwrap();
        let again = Vault::open_or_create(&data, false).unwrap();
        let number = "4242424242424242";
        let hash = vault.number_hash("alpha", number);
        assert_eq!(hash, again.number_hash("alpha", number), "stable across restarts");
        assert_ne!(hash, vault.number_hash("beta", number), "meaningless to another project");
        assert_eq!(hash.len(), 64);
        let sealed = vault.seal("alpha", &hash, number).unwrap();
        assert!(!sealed.ciphertext.windows(number.len()).any(|w| w == number.as_bytes()));
        assert_eq!(again.open("alpha", &hash, &sealed).unwrap(), number);
        assert!(matches!(vault.open("beta", &hash, &sealed), Err(VaultError::Corrupt)), "bound to its project");
        let text = std::fs::read_to_string(data.vault_key()).unwrap();
        assert!(!format!("{vault:?}").contains(&text[30..50]), "Debug shows no key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.vault_key()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // An older key still opens what it sealed once a newer one leads.
        let newer = [7u8; KEY_BYTES];
        let hash_line = text.lines().nth(1).unwrap();
        let old_key_line = text.lines().nth(2).unwrap();
        let rotated = format!("{HEADER}\n{hash_line}\nkey {} {}\n{old_key_line}\n", key_id(&newer), hex(&newer));
        let rotated = Vault::parse(&rotated).unwrap();
        assert_eq!(rotated.open("alpha", &hash, &sealed).unwrap(), number);
        assert_eq!(rotated.seal("alpha", &hash, number).unwrap().key_id, key_id(&newer));
        assert!(Vault::parse("open131 vault keys v1\nhash 00\n").is_none());
    }
}
