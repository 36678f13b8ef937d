//! A store that fails on demand, wrapping a real one: the faults tests'
//! failing, panicking and hanging store, and the simulation's writes that
//! fail before they commit or are cut off after (the change committed, its
//! answer lost). Only the calls of checks, sessions and webhook attempts
//! trip; the rest pass through.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use open131_domain::fx::FxRate;
use open131_domain::ledger::Book;
use open131_domain::lifecycle::Timer;
use open131_store::*;
use time::OffsetDateTime;

/// What the wrapped store does to `insert_check` and `check`.
pub const PASS: u8 = 0;
pub const FAIL: u8 = 1;
pub const PANIC: u8 = 2;
pub const HANG: u8 = 3;
/// Writes commit, then answer an error (the answer lost after the change):
/// reads pass.
pub const FAIL_AFTER: u8 = 4;

pub struct Faulty {
    pub inner: Arc<dyn Store>,
    pub mode: Arc<AtomicU8>,
}

/// The error a tripped call answers (a path that must never reach a client).
fn io_error() -> StoreError {
    StoreError::Io { path: "/secret/path/open131.sqlite3".into(), source: std::io::Error::other("disk I/O error") }
}

impl Faulty {
    async fn trip(&self) -> Result<()> {
        match self.mode.load(Ordering::SeqCst) {
            HANG => std::future::pending().await,
            FAIL => Err(io_error()),
            PANIC => panic!("store exploded"),
            _ => Ok(()),
        }
    }

    /// A write's answer after it ran: lost in [`FAIL_AFTER`] mode.
    fn cut<T>(&self, done: Result<T>) -> Result<T> {
        match (self.mode.load(Ordering::SeqCst), done) {
            (FAIL_AFTER, Ok(_)) => Err(io_error()),
            (_, done) => done,
        }
    }
}

/// Only the calls of a check or a session fail; the rest pass through.
impl Store for Faulty {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    fn commits(&self) -> &open131_store::CommitWatch {
        self.inner.commits()
    }
}

#[async_trait]
impl open131_store::SubscriptionStore for Faulty {
    async fn subscription(&self, p: &str, id: &str) -> Result<Option<open131_store::SubscriptionRecord>> {
        self.inner.subscription(p, id).await
    }
    async fn write_subscription(
        &self,
        w: open131_store::SubscriptionWrite,
        now: OffsetDateTime,
    ) -> Result<open131_store::WriteOutcome> {
        self.inner.write_subscription(w, now).await
    }
    async fn claim_due_subscriptions(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<open131_store::SubscriptionRecord>> {
        self.inner.claim_due_subscriptions(now, lease_until, limit).await
    }
    async fn claim_project_due_subscriptions(
        &self,
        p: &str,
        own: open131_store::OwnClaim,
        limit: usize,
    ) -> Result<Vec<open131_store::SubscriptionRecord>> {
        self.inner.claim_project_due_subscriptions(p, own, limit).await
    }
}

#[async_trait]
impl open131_store::WidgetStore for Faulty {
    async fn insert_public_token(&self, t: open131_store::PublicTokenRecord) -> Result<()> {
        self.inner.insert_public_token(t).await
    }
    async fn public_token(&self, p: &str, token: &str) -> Result<Option<open131_store::PublicTokenRecord>> {
        self.inner.public_token(p, token).await
    }
    async fn public_token_by_value(&self, token: &str) -> Result<Option<open131_store::PublicTokenRecord>> {
        self.inner.public_token_by_value(token).await
    }
    async fn use_public_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<open131_store::PublicTokenRecord>> {
        self.inner.use_public_token(token, now).await
    }
    async fn put_card(&self, c: open131_store::VaultCardRecord) -> Result<()> {
        self.inner.put_card(c).await
    }
    async fn vault_card(&self, p: &str, h: &str) -> Result<Option<open131_store::VaultCardRecord>> {
        self.inner.vault_card(p, h).await
    }
    async fn sealed_items(&self, k: &str, limit: usize) -> Result<Vec<open131_store::SealedItem>> {
        self.inner.sealed_items(k, limit).await
    }
    async fn reseal(&self, item: open131_store::SealedItem) -> Result<()> {
        self.inner.reseal(item).await
    }
    async fn put_account(&self, a: open131_store::VaultAccountRecord) -> Result<bool> {
        self.inner.put_account(a).await
    }
    async fn vault_account(&self, p: &str, t: &str) -> Result<Option<open131_store::VaultAccountRecord>> {
        self.inner.vault_account(p, t).await
    }
}

#[async_trait]
impl open131_store::NpdStore for Faulty {
    async fn npd_link(&self, p: &str, inn: &str) -> Result<Option<open131_store::NpdLinkRecord>> {
        self.inner.npd_link(p, inn).await
    }
    async fn save_npd_link(&self, l: open131_store::NpdLinkRecord, expected: Option<i64>) -> Result<bool> {
        self.inner.save_npd_link(l, expected).await
    }
    async fn insert_npd_request(&self, q: open131_store::NpdRequestRecord) -> Result<()> {
        self.inner.insert_npd_request(q).await
    }
    async fn npd_request(&self, p: &str, id: &str) -> Result<Option<open131_store::NpdRequestRecord>> {
        self.inner.npd_request(p, id).await
    }
    async fn fiscal_income(&self, p: &str, inn: &str, from: OffsetDateTime, to: OffsetDateTime) -> Result<i64> {
        self.inner.fiscal_income(p, inn, from, to).await
    }
    async fn npd_taxpayer(&self, inn: &str) -> Result<Option<open131_domain::npd::Taxpayer>> {
        self.inner.npd_taxpayer(inn).await
    }
    async fn set_npd_taxpayer(&self, inn: &str, t: &open131_domain::npd::Taxpayer, now: OffsetDateTime) -> Result<()> {
        self.inner.set_npd_taxpayer(inn, t, now).await
    }
}

#[async_trait]
impl open131_store::InstanceStore for Faulty {
    fn instance_id(&self) -> &str {
        self.inner.instance_id()
    }
    async fn heartbeat(&self, now: OffsetDateTime) -> Result<()> {
        self.inner.heartbeat(now).await
    }
    async fn heartbeats(&self) -> Result<Vec<(String, i64)>> {
        self.inner.heartbeats().await
    }
    async fn release_leases(&self, now: OffsetDateTime, owner: Option<&str>) -> Result<usize> {
        self.inner.release_leases(now, owner).await
    }
}

#[async_trait]
impl ProjectStore for Faulty {
    async fn move_clock(
        &self,
        p: &str,
        from: open131_domain::settings::ClockOffset,
        to: open131_domain::settings::ClockOffset,
    ) -> Result<bool> {
        self.inner.move_clock(p, from, to).await
    }
    async fn clocked_projects(&self) -> Result<Vec<(String, open131_domain::settings::ClockOffset)>> {
        self.inner.clocked_projects().await
    }
    async fn create_project(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        self.inner.create_project(id, now).await
    }
    async fn add_project_key(&self, p: &str, f: &str, d: &[u8], now: OffsetDateTime) -> Result<bool> {
        self.inner.add_project_key(p, f, d, now).await
    }
    async fn project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        self.inner.project(id).await
    }
    async fn projects(&self) -> Result<Vec<ProjectRecord>> {
        self.inner.projects().await
    }
    async fn set_project_settings(&self, p: &str, c: SettingsChange, now: OffsetDateTime) -> Result<()> {
        self.inner.set_project_settings(p, c, now).await
    }
}

#[async_trait]
impl CheckStore for Faulty {
    async fn insert_check(&self, check: NewCheck) -> Result<InsertCheck> {
        self.trip().await?;
        self.cut(self.inner.insert_check(check).await)
    }
    async fn check(&self, project_id: &str, id: i64) -> Result<Option<CheckRecord>> {
        self.trip().await?;
        self.inner.check(project_id, id).await
    }
    async fn recent_checks(&self, p: &str, limit: usize) -> Result<Vec<open131_store::CheckRecord>> {
        self.inner.recent_checks(p, limit).await
    }
    async fn claim_project_due_checks(
        &self,
        p: &str,
        up_to: OffsetDateTime,
        n: OffsetDateTime,
        l: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<open131_store::CheckRecord>> {
        self.inner.claim_project_due_checks(p, up_to, n, l, limit).await
    }
    async fn claim_due_checks(
        &self,
        up_to: OffsetDateTime,
        now: OffsetDateTime,
        lease: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CheckRecord>> {
        self.inner.claim_due_checks(up_to, now, lease, limit).await
    }
    async fn postpone_checks(&self, checks: Vec<(String, i64)>, until: OffsetDateTime) -> Result<()> {
        self.inner.postpone_checks(checks, until).await
    }
    async fn release_postponed_checks(&self) -> Result<usize> {
        self.inner.release_postponed_checks().await
    }
    async fn oldest_pending(&self, now: OffsetDateTime) -> Result<Option<OffsetDateTime>> {
        self.inner.oldest_pending(now).await
    }
    async fn finish_checks(&self, d: Vec<Decision>, now: OffsetDateTime) -> Result<Vec<bool>> {
        self.cut(self.inner.finish_checks(d, now).await)
    }
}

#[async_trait]
impl SessionStore for Faulty {
    async fn write_session(&self, w: SessionWrite, now: OffsetDateTime) -> Result<WriteOutcome> {
        self.trip().await?;
        self.cut(self.inner.write_session(w, now).await)
    }
    async fn idempotency_key_used(&self, p: &str, k: &str) -> Result<bool> {
        self.inner.idempotency_key_used(p, k).await
    }
    async fn session(&self, p: &str, id: &str) -> Result<Option<SessionRecord>> {
        self.trip().await?;
        self.inner.session(p, id).await
    }
    async fn recurrent_token(&self, p: &str, token: &str) -> Result<Option<open131_store::RecurrentToken>> {
        self.trip().await?;
        self.inner.recurrent_token(p, token).await
    }
    async fn disable_recurrent_token(&self, p: &str, token: &str) -> Result<bool> {
        self.trip().await?;
        self.inner.disable_recurrent_token(p, token).await
    }
    async fn recent_sessions(&self, p: &str, limit: usize) -> Result<Vec<open131_store::SessionRecord>> {
        self.inner.recent_sessions(p, limit).await
    }
    async fn claim_project_due_timers(
        &self,
        p: &str,
        n: OffsetDateTime,
        l: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<open131_store::DueTimer>> {
        self.inner.claim_project_due_timers(p, n, l, limit).await
    }
    async fn claim_due_timers(
        &self,
        now: OffsetDateTime,
        lease: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        self.inner.claim_due_timers(now, lease, limit).await
    }
    async fn drop_timer(&self, p: &str, s: &str, t: Timer, claimed_until: time::OffsetDateTime) -> Result<()> {
        self.inner.drop_timer(p, s, t, claimed_until).await
    }
}

#[async_trait]
impl LedgerStore for Faulty {
    async fn topup_book(&self, p: &str, b: Book, c: &str, a: i64, now: OffsetDateTime) -> Result<()> {
        self.inner.topup_book(p, b, c, a, now).await
    }
    async fn wallets(&self, p: &str) -> Result<Vec<WalletRecord>> {
        self.inner.wallets(p).await
    }
    async fn contractor_wallets(&self, p: &str) -> Result<Vec<open131_store::ContractorWalletRecord>> {
        self.inner.contractor_wallets(p).await
    }
    async fn statement(
        &self,
        p: &str,
        b: Book,
        c: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<StatementRecord> {
        self.inner.statement(p, b, c, from, to, limit).await
    }
    async fn register_page(
        &self,
        p: &str,
        r: open131_domain::reports::Register,
        b: Book,
        c: &str,
        day: (OffsetDateTime, OffsetDateTime),
        after: Option<(OffsetDateTime, i64)>,
        limit: usize,
    ) -> Result<Vec<open131_domain::reports::RegisterPosting>> {
        self.inner.register_page(p, r, b, c, day, after, limit).await
    }
    async fn session_postings(
        &self,
        p: &str,
        s: &str,
        limit: usize,
    ) -> Result<Vec<open131_store::SessionPostingRecord>> {
        self.inner.session_postings(p, s, limit).await
    }
    async fn set_rate(&self, c: &str, rate: Option<FxRate>, now: OffsetDateTime) -> Result<bool> {
        self.inner.set_rate(c, rate, now).await
    }
    async fn rates(&self) -> Result<Vec<(String, FxRate)>> {
        self.inner.rates().await
    }
}

#[async_trait]
impl OutboxStore for Faulty {
    async fn claim_webhooks(
        &self,
        n: OffsetDateTime,
        l: OffsetDateTime,
        limit: usize,
        skip: Vec<String>,
    ) -> Result<Vec<WebhookRecord>> {
        self.inner.claim_webhooks(n, l, limit, skip).await
    }
    async fn claim_project_webhooks(
        &self,
        p: &str,
        own: open131_store::OwnClaim,
        limit: usize,
    ) -> Result<Vec<WebhookRecord>> {
        self.inner.claim_project_webhooks(p, own, limit).await
    }
    async fn record_attempts(&self, r: Vec<AttemptResult>) -> Result<()> {
        self.cut(self.inner.record_attempts(r).await)
    }
    async fn webhooks(&self, f: WebhookFilter) -> Result<Vec<WebhookRecord>> {
        self.inner.webhooks(f).await
    }
    async fn webhook_attempts(&self, id: i64) -> Result<Vec<AttemptRecord>> {
        self.inner.webhook_attempts(id).await
    }
    async fn resend_webhook(&self, id: i64, now: OffsetDateTime) -> Result<bool> {
        self.inner.resend_webhook(id, now).await
    }
    async fn release_webhooks(&self, ids: Vec<i64>, at: OffsetDateTime) -> Result<()> {
        self.inner.release_webhooks(ids, at).await
    }
    async fn resend_pending(&self, p: Option<&str>, now: OffsetDateTime) -> Result<usize> {
        self.inner.resend_pending(p, now).await
    }
    async fn next_webhook_at(&self) -> Result<Option<OffsetDateTime>> {
        self.inner.next_webhook_at().await
    }
}

#[async_trait]
impl MetaStore for Faulty {
    async fn claim_report(&self, p: &str, r: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<bool> {
        self.inner.claim_report(p, r, now, until).await
    }
    async fn finish_report(&self, p: &str, r: &str) -> Result<()> {
        self.inner.finish_report(p, r).await
    }
    async fn backlog(&self, now: OffsetDateTime) -> Result<open131_store::Backlog> {
        self.inner.backlog(now).await
    }
    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta_get(key).await
    }
    async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.meta_init(key, value).await
    }
}
