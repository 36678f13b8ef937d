//! Partner projects and their keys, cached in memory.
//!
//! The admin CLI writes projects and keys straight into the store, possibly
//! while the server runs, so the cache is filled on a miss and re-read when no
//! cached key verifies a signature: a new project or a rotated key is seen on
//! its first request, with no restart and no polling.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use std::time::{Duration, Instant};

use open131_store::{ProjectRecord, ProjectSettings, Store, StoreError};
use open131_wire::sign::VerifyingKey;

/// Most projects kept in the cache; past it the cache is simply cleared.
pub const PROJECT_CACHE_MAX_ENTRIES: usize = 10_000;
/// Cached settings (methods allowed, webhook URL) are re-read after this, in ms:
/// `open131 project set` takes effect within a second on a running server.
pub const PROJECT_CACHE_TTL_MS: u64 = 1_000;

#[derive(Debug)]
pub struct Project {
    pub id: String,
    pub settings: ProjectSettings,
    pub keys: Vec<VerifyingKey>,
    loaded_at: Instant,
}

impl Project {
    fn from_record(record: ProjectRecord) -> Self {
        let keys = record
            .keys
            .iter()
            .filter_map(|k| match VerifyingKey::from_spki_der(&k.spki_der) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::error!(project = %record.id, fingerprint = %k.fingerprint, error = %e, "stored key is unusable; skipped");
                    None
                }
            })
            .collect();
        Self { id: record.id, settings: record.settings, keys, loaded_at: Instant::now() }
    }

    /// True when the project may call main-API `method`.
    pub fn may_call(&self, method: &str) -> bool {
        self.settings.methods.allows(method)
    }

    /// True when a request from `peer` may be served for this project.
    pub fn admits(&self, peer: std::net::IpAddr) -> bool {
        self.settings.allowed_ips.allows(peer)
    }

    fn verifies(&self, message: &[u8], signature_b64: &str) -> bool {
        self.keys.iter().any(|k| k.verify_base64(message, signature_b64))
    }
}

pub struct Projects {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<String, Arc<Project>>>,
}

impl Projects {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, cache: RwLock::new(HashMap::new()) }
    }

    /// The project named `id`, from the cache or the store.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<Project>>, StoreError> {
        if let Some(p) = self.cache.read().ok().and_then(|c| c.get(id).cloned()) {
            if p.loaded_at.elapsed() < Duration::from_millis(PROJECT_CACHE_TTL_MS) {
                return Ok(Some(p));
            }
        }
        self.reload(id).await
    }

    /// The project as the store has it now (a forget-then-get could be
    /// answered from a stale copy another task put back in between).
    pub async fn reload(&self, id: &str) -> Result<Option<Arc<Project>>, StoreError> {
        let Some(record) = self.store.project(id).await? else { return Ok(None) };
        let project = Arc::new(Project::from_record(record));
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= PROJECT_CACHE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(project.id.clone(), project.clone());
        }
        Ok(Some(project))
    }

    /// Drops a cached project so its next use re-reads the store (tests, and
    /// callers in this process that just changed its settings).
    pub fn forget(&self, id: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(id);
        }
    }

    /// True when one of the project's registered keys verifies `signature_b64`
    /// over `message`. Re-reads the keys once if the cached ones all fail.
    pub async fn verify(&self, project: &Project, message: &[u8], signature_b64: &str) -> Result<bool, StoreError> {
        if project.verifies(message, signature_b64) {
            return Ok(true);
        }
        match self.reload(&project.id).await? {
            Some(fresh) if fresh.keys != project.keys => Ok(fresh.verifies(message, signature_b64)),
            _ => Ok(false),
        }
    }
}
