//! The loaded registries (MVD invalid passports, FNS taxpayers, the
//! self-employed register) and their hot swap.
//!
//! `open131 registry import` / `open131 taxpayers import` / `open131 npd
//! import` write a new index file next to the old one and rename it over
//! `registry/passports.idx` / `registry/taxpayers.idx` / `registry/npd.idx`
//! (atomic). The server looks at the files' identity
//! (inode, size, mtime) every second, or at once on `POST /admin/v1/registry/reload`;
//! a changed file is loaded on a blocking thread and swapped in with one atomic
//! pointer store. Lookups never wait: they hold the index they started with, and
//! the old index is freed when the last of them finishes. A new file that does
//! not load (corrupt, truncated) is refused with a log line and the old index
//! stays in use. At start, a corrupt file stops the server (README).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use open131_registry::{NpdRegister, PassportIndex, TaxpayerIndex};
use open131_store::layout::DataDir;

/// How often the server looks for a new index file, in ms.
pub const REGISTRY_WATCH_INTERVAL_MS: u64 = 1_000;

/// Identity of a file on disk: a rename over it changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Some(Stamp { inode, len: meta.len(), modified_ns })
}

/// The MVD index file of a data directory (its place is named in [`DataDir`]).
pub fn passports_path(data_dir: &Path) -> PathBuf {
    DataDir::new(data_dir).passports_index()
}

/// The taxpayer index file of a data directory.
pub fn taxpayers_path(data_dir: &Path) -> PathBuf {
    DataDir::new(data_dir).taxpayers_index()
}

/// What a reload did, for logs and the admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadEvent {
    Loaded { registry: &'static str, entries: u64, malformed: u64 },
    Refused { registry: &'static str, error: String },
}

#[derive(Default)]
pub struct Registries {
    passports: ArcSwapOption<PassportIndex>,
    taxpayers: ArcSwapOption<TaxpayerIndex>,
    npd: ArcSwapOption<NpdRegister>,
    /// The passports', the taxpayers' and the register's files as last loaded.
    stamps: Mutex<[Option<Stamp>; 3]>,
    /// When each was last loaded (Unix seconds; 0: never), for the metrics.
    loaded_unix_s: [std::sync::atomic::AtomicI64; 3],
}

impl Registries {
    /// Loads whatever index files exist. A file that exists but does not load
    /// is an error: the server refuses to start rather than pass people unchecked
    /// or silently forget a registry.
    pub fn load_at_start(data_dir: &Path) -> Result<Self, String> {
        let registries = Self::default();
        for event in registries.reload_changed(data_dir) {
            match event {
                ReloadEvent::Refused { registry, error } => {
                    return Err(format!("the {registry} index cannot be loaded: {error}"));
                }
                ReloadEvent::Loaded { registry, entries, malformed } => {
                    tracing::info!(registry, entries, malformed, "registry loaded");
                }
            }
        }
        Ok(registries)
    }

    pub fn passports(&self) -> Option<Arc<PassportIndex>> {
        self.passports.load_full()
    }

    pub fn taxpayers(&self) -> Option<Arc<TaxpayerIndex>> {
        self.taxpayers.load_full()
    }

    /// The imported self-employed register, if one was imported.
    pub fn npd(&self) -> Option<Arc<NpdRegister>> {
        self.npd.load_full()
    }

    /// Installs indexes directly (tests, or a caller that built them in memory).
    pub fn install(&self, passports: Option<PassportIndex>, taxpayers: Option<TaxpayerIndex>) {
        if let Some(p) = passports {
            self.passports.store(Some(Arc::new(p)));
        }
        if let Some(t) = taxpayers {
            self.taxpayers.store(Some(Arc::new(t)));
        }
    }

    /// Installs a self-employed register directly (tests, or a caller that built it in memory).
    pub fn install_npd(&self, register: NpdRegister) {
        self.npd.store(Some(Arc::new(register)));
    }

    /// Loads the index files whose identity changed since the last look. Blocking:
    /// call it from a blocking thread.
    pub fn reload_changed(&self, data_dir: &Path) -> Vec<ReloadEvent> {
        let mut events = Vec::new();
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        let dir = DataDir::new(data_dir);
        let [passports, taxpayers, npd] = &mut *stamps;
        events.extend(load_changed(&dir.passports_index(), passports, "passports", |path| {
            let index = PassportIndex::load(path)?;
            let counts = (index.len(), index.malformed_len() as u64);
            self.passports.store(Some(Arc::new(index)));
            self.mark_loaded(0);
            Ok(counts)
        }));
        events.extend(load_changed(&dir.taxpayers_index(), taxpayers, "taxpayers", |path| {
            let index = TaxpayerIndex::load(path)?;
            let counts = (index.len(), index.malformed_len() as u64);
            self.taxpayers.store(Some(Arc::new(index)));
            self.mark_loaded(1);
            Ok(counts)
        }));
        events.extend(load_changed(&dir.npd_register(), npd, "npd", |path| {
            let register = NpdRegister::load(path)?;
            let counts = (register.len(), 0);
            self.npd.store(Some(Arc::new(register)));
            self.mark_loaded(2);
            Ok(counts)
        }));
        events
    }

    fn mark_loaded(&self, slot: usize) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.loaded_unix_s[slot].store(i64::try_from(now).unwrap_or(i64::MAX), std::sync::atomic::Ordering::Relaxed);
    }

    /// Per registry: its name, its entries when one is loaded, and when a
    /// file was last loaded (Unix seconds; none for one installed in memory).
    pub fn figures(&self) -> [(&'static str, Option<u64>, Option<i64>); 3] {
        let at =
            |slot: usize| Some(self.loaded_unix_s[slot].load(std::sync::atomic::Ordering::Relaxed)).filter(|s| *s > 0);
        [
            ("passports", self.passports().map(|p| p.len()), at(0)),
            ("taxpayers", self.taxpayers().map(|t| t.len()), at(1)),
            ("npd", self.npd().map(|n| n.len()), at(2)),
        ]
    }
}

/// Loads the file at `path` with `load` (which swaps it in and gives its
/// entry and malformed counts) if its identity changed since `last`.
fn load_changed(
    path: &Path,
    last: &mut Option<Stamp>,
    registry: &'static str,
    load: impl FnOnce(&Path) -> Result<(u64, u64), open131_registry::IndexFileError>,
) -> Option<ReloadEvent> {
    let now = stamp(path);
    if now.is_none() || now == *last {
        return None;
    }
    *last = now;
    Some(match load(path) {
        Ok((entries, malformed)) => ReloadEvent::Loaded { registry, entries, malformed },
        Err(e) => ReloadEvent::Refused { registry, error: e.to_string() },
    })
}

/// Loads changed index files on a blocking thread and logs what happened.
pub async fn reload(app: &crate::App) -> Vec<ReloadEvent> {
    let (registries, dir) = (app.registries.clone(), app.config.data_dir.clone());
    let events = tokio::task::spawn_blocking(move || registries.reload_changed(&dir)).await.unwrap_or_default();
    // The self-employed register decides no check: only a KYC index wakes them.
    if events.iter().any(|e| matches!(e, ReloadEvent::Loaded { registry, .. } if *registry != "npd")) {
        // Checks that waited for a registry are decided now, not at their next retry.
        match app.store.release_postponed_checks().await {
            Ok(n) if n > 0 => tracing::info!(checks = n, "checks waiting for a registry are due again"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not release waiting checks"),
        }
        app.verifier_wake.notify_one();
    }
    for e in &events {
        match e {
            ReloadEvent::Loaded { registry, entries, malformed } => {
                tracing::info!(registry, entries, malformed, "registry swapped in");
            }
            ReloadEvent::Refused { registry, error } => {
                tracing::error!(registry, %error, "new registry index refused; the previous one stays in use");
            }
        }
    }
    events
}

/// The watcher: looks for new index files every [`REGISTRY_WATCH_INTERVAL_MS`]
/// (the admin endpoint reloads at once without it).
pub async fn run_watcher(app: crate::App, stop: tokio::sync::watch::Receiver<bool>) {
    let interval = std::time::Duration::from_millis(REGISTRY_WATCH_INTERVAL_MS);
    crate::worker::run_loop("registry watcher", stop, None, || async {
        reload(&app).await;
        crate::worker::Pace::Idle(interval)
    })
    .await;
}
