//! Per-project check ids, taken from `id_sequences` in blocks.
//!
//! Why blocks: incrementing the sequence row inside each insert's transaction
//! would hold its row lock until COMMIT and so serialize every insert of a
//! project behind one commit latency. Instead a node reserves
//! [`ID_BLOCK_SIZE`](super::ID_BLOCK_SIZE) ids with one short autocommit and
//! hands them out from memory, smallest first. A duplicate gives its id back,
//! so one node keeps a project's ids dense; ids stay unique across nodes, and a
//! restart or a second node leaves gaps (unused ids of a block are lost).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use deadpool_postgres::GenericClient;

use super::ID_BLOCK_SIZE;
use crate::Result;

/// The `id_sequences.kind` of check ids.
const KIND_KYC_CHECK: &str = "kyc_check";

/// Ids reserved by this node and not yet used, per project.
#[derive(Default)]
pub(super) struct IdBlocks {
    // A std Mutex: it is never held across an await, only for a set operation.
    free: Mutex<HashMap<String, BTreeSet<i64>>>,
    // One reservation at a time per node: without it, every insert that finds
    // the set empty at once would reserve its own block, and a burst would
    // leave most of those ids unused (gaps, and ids far above the count).
    refill: tokio::sync::Mutex<()>,
}

impl IdBlocks {
    /// The smallest free id of `project`, reserving a new block when none is left.
    pub(super) async fn take(&self, client: &impl GenericClient, project: &str) -> Result<i64> {
        loop {
            if let Some(id) = self.pop(project) {
                return Ok(id);
            }
            let _refilling = self.refill.lock().await;
            // Whoever held the lock before may have refilled this project.
            if let Some(id) = self.pop(project) {
                return Ok(id);
            }
            let last: i64 = client
                .query_one(
                    "INSERT INTO id_sequences (project_id, kind, last) VALUES ($1, $2, $3)
                     ON CONFLICT (project_id, kind) DO UPDATE SET last = id_sequences.last + $3 RETURNING last",
                    &[&project, &KIND_KYC_CHECK, &ID_BLOCK_SIZE],
                )
                .await?
                .try_get(0)?;
            // Another task may take some of these before we look again: then loop.
            self.lock().entry(project.to_string()).or_default().extend(last - ID_BLOCK_SIZE + 1..=last);
        }
    }

    /// Returns an id that was not used (its check was a duplicate).
    pub(super) fn give_back(&self, project: &str, id: i64) {
        self.lock().entry(project.to_string()).or_default().insert(id);
    }

    /// The smallest free id of `project` already reserved, if any.
    pub(super) fn pop(&self, project: &str) -> Option<i64> {
        self.lock().get_mut(project)?.pop_first()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<i64>>> {
        // The map stays consistent if a holder panicked: every operation is one set call.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
