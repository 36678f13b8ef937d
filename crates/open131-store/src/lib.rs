//! Storage for open131: one trait per aggregate (projects, checks, sessions,
//! ledger, outbox, meta) and [`Store`], the one handle on all of them. Two
//! backends implement every trait: the embedded SQLite ([`sqlite::SqliteStore`],
//! the default) and PostgreSQL ([`postgres::PgStore`]) for several nodes on one
//! database. [`open`] picks one from a [`Location`]. Only the backend modules
//! know SQL; records and their decoding from rows live once ([`rows`]).
//!
//! Invariant: a method that returns `Ok` from a write has committed it durably.
#![forbid(unsafe_code)]

pub mod bench;
pub mod error;
pub mod layout;
pub mod observe;
pub mod payouts;
pub mod postgres;
mod rows;
pub mod sqlite;
pub mod testing;

use async_trait::async_trait;
use open131_domain::fx::FxRate;
use open131_domain::kyc::{CheckState, KycApplication, Outcome};
use open131_domain::ledger::Book;
use open131_domain::lifecycle::Timer;
use open131_domain::personal::Personal;
use time::OffsetDateTime;

pub use error::{with_retries, BackendError, Corrupt, StoreError, RETRYABLE_ATTEMPTS_MAX};
pub use observe::{CommitObserver, CommitWatch};
pub use payouts::*;
pub use postgres::PgStore;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A PostgreSQL connection URL. It may carry a password, so `Debug` and
/// `Display` print only its scheme.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts `postgres://…` and `postgresql://…` URLs.
    pub fn parse(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self(url.to_string()))
        } else {
            Err(StoreError::BadLocation("a database URL starts with postgres:// or postgresql://"))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("postgres://***")
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("postgres://***")
    }
}

/// Where a store keeps its data.
#[derive(Debug, Clone)]
pub enum Location {
    /// The embedded SQLite database in a data directory.
    Sqlite(layout::DataDir),
    /// A PostgreSQL database shared by any number of nodes.
    Postgres(DatabaseUrl),
}

impl Location {
    /// PostgreSQL when a database URL is given, else SQLite in `data_dir`.
    pub fn choose(database_url: Option<&str>, data_dir: &std::path::Path) -> Result<Self> {
        match database_url.filter(|u| !u.is_empty()) {
            Some(url) => Ok(Self::Postgres(DatabaseUrl::parse(url)?)),
            None => Ok(Self::Sqlite(layout::DataDir::new(data_dir))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Opens the store at `location`, applying any pending migrations first.
pub async fn open(location: &Location) -> Result<std::sync::Arc<dyn Store>> {
    match location {
        Location::Sqlite(dir) => {
            let dir = dir.clone();
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(dir.root()))
                .await
                .map_err(|_| StoreError::Closed)??;
            Ok(std::sync::Arc::new(store))
        }
        Location::Postgres(url) => Ok(std::sync::Arc::new(postgres::PgStore::connect(url.expose()).await?)),
    }
}

/// A partner project and everything needed to authenticate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub id: String,
    pub created_at: OffsetDateTime,
    pub settings: ProjectSettings,
    pub keys: Vec<ProjectKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectKey {
    pub fingerprint: String,
    pub spki_der: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// A check to insert. `payload` is the JSON object as the partner sent it.
#[derive(Debug, Clone)]
pub struct NewCheck {
    pub project_id: String,
    pub application: KycApplication,
    /// The partner's JSON as sent: personal data, so `Debug` prints `***`.
    pub payload_json: Personal<String>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertCheck {
    Created(i64),
    /// Same project, passport, INN and contract as check `id`.
    Duplicate(i64),
}

#[derive(Debug, Clone)]
pub struct CheckRecord {
    pub project_id: String,
    pub id: i64,
    pub state: CheckState,
    pub application: KycApplication,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// A verdict to record for a pending check.
#[derive(Debug, Clone)]
pub struct Decision {
    pub project_id: String,
    pub id: i64,
    pub outcome: Outcome,
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Partner projects, their keys and settings.
#[async_trait]
pub trait ProjectStore: Send + Sync + 'static {
    /// The projects on a clock of their own, with their offsets (few: a test
    /// stand's), for the workers' claims on each one's time.
    async fn clocked_projects(&self) -> Result<Vec<(String, open131_domain::settings::ClockOffset)>>;
    /// Moves the project's clock from `from` to `to`; `false` when its offset
    /// is no longer `from` (another change came first: read it again) or
    /// there is no such project.
    async fn move_clock(
        &self,
        project_id: &str,
        from: open131_domain::settings::ClockOffset,
        to: open131_domain::settings::ClockOffset,
    ) -> Result<bool>;
    /// Creates a project; `false` if it already existed (nothing changes then).
    async fn create_project(&self, id: &str, now: OffsetDateTime) -> Result<bool>;
    /// Registers a public key; `false` if the project already had it.
    async fn add_project_key(
        &self,
        project_id: &str,
        fingerprint: &str,
        spki_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool>;
    async fn project(&self, id: &str) -> Result<Option<ProjectRecord>>;
    async fn projects(&self) -> Result<Vec<ProjectRecord>>;
    /// Changes settings; setting a webhook URL makes the project's pending webhooks due at `now`.
    async fn set_project_settings(&self, project_id: &str, change: SettingsChange, now: OffsetDateTime) -> Result<()>;
}

/// Passport checks (KYC).
#[async_trait]
pub trait CheckStore: Send + Sync + 'static {
    async fn insert_check(&self, check: NewCheck) -> Result<InsertCheck>;
    /// A check of `project_id`; another project's id is simply absent.
    async fn check(&self, project_id: &str, id: i64) -> Result<Option<CheckRecord>>;
    /// Claims pending checks created at or before `created_up_to` and neither
    /// postponed nor leased past `now`, oldest first, at most `limit`: each is
    /// leased until `lease_until`, so no other node takes it meanwhile and a
    /// dead node's checks are taken again after the lease. (The verifier passes
    /// `now - delay`, so the delay setting governs old checks too.)
    async fn claim_due_checks(
        &self,
        created_up_to: OffsetDateTime,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CheckRecord>>;
    /// As [`CheckStore::claim_due_checks`], of `project_id`'s checks alone, on its own clock.
    async fn claim_project_due_checks(
        &self,
        project_id: &str,
        created_up_to: OffsetDateTime,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CheckRecord>>;
    /// The project's latest checks, newest first, at most `limit` (the inspector).
    async fn recent_checks(&self, project_id: &str, limit: usize) -> Result<Vec<CheckRecord>>;
    /// Leaves pending checks alone until `until` (a verifier that cannot decide yet).
    async fn postpone_checks(&self, checks: Vec<(String, i64)>, until: OffsetDateTime) -> Result<()>;
    /// Makes every postponed pending check due again (a registry was just loaded); returns how many.
    async fn release_postponed_checks(&self) -> Result<usize>;
    /// Creation time of the oldest pending check that is neither postponed nor leased past `now`.
    async fn oldest_pending(&self, now: OffsetDateTime) -> Result<Option<OffsetDateTime>>;
    /// Records verdicts in one commit. Per decision: `true` if it finished the
    /// check, `false` if the check was not pending (the lifecycle forbids a second verdict).
    async fn finish_checks(&self, decisions: Vec<Decision>, now: OffsetDateTime) -> Result<Vec<bool>>;
}

/// Sessions with their operations, idempotency keys and the bank's timers.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn write_session(&self, write: SessionWrite, now: OffsetDateTime) -> Result<WriteOutcome>;
    /// Whether the project has used this idempotency key (to name the right error
    /// when a repeat would also be in the wrong state; the insert still enforces it).
    async fn idempotency_key_used(&self, project_id: &str, key: &str) -> Result<bool>;
    async fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionRecord>>;
    /// The project's latest sessions, newest first, at most `limit` (the inspector).
    async fn recent_sessions(&self, project_id: &str, limit: usize) -> Result<Vec<SessionRecord>>;
    /// The project's recurrent token `token`, if it issued one.
    async fn recurrent_token(&self, project_id: &str, token: &str) -> Result<Option<RecurrentToken>>;
    /// Makes the project's token inactive for good; `false` when it has no such token.
    async fn disable_recurrent_token(&self, project_id: &str, token: &str) -> Result<bool>;
    /// Claims timers due at `now`, oldest first: each is pushed to
    /// `lease_until`, so no other node fires it meanwhile, and one whose firing
    /// never committed (a dead node) fires again then.
    async fn claim_due_timers(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>>;
    /// As [`SessionStore::claim_due_timers`], of `project_id`'s timers alone, on its own clock.
    async fn claim_project_due_timers(
        &self,
        project_id: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>>;
    /// Drops a timer claimed until `claimed_until` that no longer applies (the
    /// session moved on). A timer set again since its claim (its due time
    /// changed) is kept: it now speaks for a newer change.
    async fn drop_timer(
        &self,
        project_id: &str,
        session_id: &str,
        timer: Timer,
        claimed_until: OffsetDateTime,
    ) -> Result<()>;
}

/// Wallets and their double-entry postings, and the operator's exchange rates.
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// Credits a wallet of `book` with money from outside.
    async fn topup_book(
        &self,
        project_id: &str,
        book: Book,
        currency: &str,
        amount: i64,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// Credits the main wallet (the payout balance).
    async fn topup(&self, project_id: &str, currency: &str, amount: i64, now: OffsetDateTime) -> Result<()> {
        self.topup_book(project_id, Book::Main, currency, amount, now).await
    }
    /// Every wallet of the project, of every book, by book then currency.
    async fn wallets(&self, project_id: &str) -> Result<Vec<WalletRecord>>;
    /// The wallets of the project's contractors (their parts of split
    /// payments), by book, currency and alias; per book and currency they sum
    /// to the project's `contractors` account.
    async fn contractor_wallets(&self, project_id: &str) -> Result<Vec<ContractorWalletRecord>>;
    /// Per-account sums of the postings of a main wallet (`account` name → sum).
    async fn posting_sums(&self, project_id: &str, currency: &str) -> Result<Vec<(String, i64)>> {
        // Every posting there is: the last instant the store's microseconds can hold is far beyond any.
        let end = time::macros::datetime!(9999-12-31 0:00 UTC);
        Ok(self.statement(project_id, Book::Main, currency, end, end, 0).await?.opening)
    }
    /// A wallet's statement for `[from, to)`: sums before `from`, and at most
    /// `limit` postings within, oldest first.
    async fn statement(
        &self,
        project_id: &str,
        book: Book,
        currency: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<StatementRecord>;
    /// The postings a session's operations made, in every book and
    /// currency, oldest first, at most `limit`.
    async fn session_postings(
        &self,
        project_id: &str,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<SessionPostingRecord>>;
    /// One page of a register's postings on a wallet in `[from, to)`
    /// (`open131_domain::reports`), oldest first, after `after` (the time and
    /// id of the last one read), at most `limit`: a register streams page by
    /// page, whatever its size.
    #[allow(clippy::too_many_arguments)]
    async fn register_page(
        &self,
        project_id: &str,
        register: open131_domain::reports::Register,
        book: Book,
        currency: &str,
        (from, to): (OffsetDateTime, OffsetDateTime),
        after: Option<(OffsetDateTime, i64)>,
        limit: usize,
    ) -> Result<Vec<open131_domain::reports::RegisterPosting>>;
    /// Sets (`Some`) or removes (`None`) the rate of a currency; `false` when
    /// there was nothing to remove.
    async fn set_rate(&self, currency: &str, rate: Option<FxRate>, now: OffsetDateTime) -> Result<bool>;
    /// Every rate, by currency.
    async fn rates(&self) -> Result<Vec<(String, FxRate)>>;
}

/// The webhook outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Pending webhooks due at `now`, except those of `skip_projects`; each is
    /// leased until `lease_until` (or until its attempt is recorded) so a crash
    /// mid-delivery only delays it and no operator command reschedules it meanwhile.
    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
        skip_projects: Vec<String>,
    ) -> Result<Vec<WebhookRecord>>;
    /// As [`OutboxStore::claim_webhooks`], of `project_id`'s webhooks alone,
    /// due by `own.now` (its own clock): a request delivering its own before
    /// it answers, or a project on virtual time. The lease is kept on the real
    /// clock (`own.real_lease_until`), so moving a project's clock never ends
    /// a delivery's lease early.
    async fn claim_project_webhooks(&self, project_id: &str, own: OwnClaim, limit: usize)
        -> Result<Vec<WebhookRecord>>;
    async fn record_attempts(&self, results: Vec<AttemptResult>) -> Result<()>;
    async fn webhooks(&self, filter: WebhookFilter) -> Result<Vec<WebhookRecord>>;
    async fn webhook_attempts(&self, webhook_id: i64) -> Result<Vec<AttemptRecord>>;
    /// Makes a webhook pending again, due at `now`; false if there is no such
    /// webhook or it is being delivered right now (leased).
    async fn resend_webhook(&self, webhook_id: i64, now: OffsetDateTime) -> Result<bool>;
    /// Gives claimed webhooks back unattempted, due at `at` (their project was busy).
    async fn release_webhooks(&self, ids: Vec<i64>, at: OffsetDateTime) -> Result<()>;
    /// Makes every pending webhook (of one project, or all) due at `now`; returns how many.
    async fn resend_pending(&self, project_id: Option<&str>, now: OffsetDateTime) -> Result<usize>;
    /// Earliest next attempt among pending webhooks.
    async fn next_webhook_at(&self) -> Result<Option<OffsetDateTime>>;
}

/// Values every node must share (the bank key, the admin token), set once.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key` only if unset; returns the value that is stored afterwards
    /// (so of two nodes starting together, both end up with the first one's).
    async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>>;
    /// Claims the scheduled report `report` of `project_id` until
    /// `lease_until`: `true` unless it is done or another claim still holds.
    async fn claim_report(
        &self,
        project_id: &str,
        report: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool>;
    /// Marks a claimed report done: never claimed again.
    async fn finish_report(&self, project_id: &str, report: &str) -> Result<()>;
    /// What waits for the workers at `now` (read for the metrics, on scrape).
    async fn backlog(&self, now: OffsetDateTime) -> Result<Backlog>;
}

/// Work waiting for the background workers, across every project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Checks without a verdict (the verifier's queue).
    pub checks_pending: i64,
    /// Session timers due by `now` and not yet fired.
    pub timers_due: i64,
    /// Per project: webhooks not yet delivered (nor given up).
    pub webhooks_pending: Vec<(String, i64)>,
}

/// A claim on one project's own clock: its now and lease for what is due,
/// the real now and lease for the lease itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnClaim {
    pub now: OffsetDateTime,
    pub lease_until: OffsetDateTime,
    pub real_now: OffsetDateTime,
    pub real_lease_until: OffsetDateTime,
}

impl OwnClaim {
    /// A claim on the real clock (a project without an offset).
    pub fn real(now: OffsetDateTime, lease_until: OffsetDateTime) -> Self {
        Self { now, lease_until, real_now: now, real_lease_until: lease_until }
    }

    /// A claim on a clock `offset` ahead of the real one, whose `now` and
    /// lease end are the real clock's.
    pub fn ahead(
        offset: open131_domain::settings::ClockOffset,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Self {
        Self {
            now: offset.apply(now),
            lease_until: offset.apply(lease_until),
            real_now: now,
            real_lease_until: lease_until,
        }
    }
}

/// What a claim of every project's due work adds: projects on a clock of
/// their own are claimed each on its own time (`claim_project_*`), never on
/// the real one (which would claim their work late, or lease it short).
pub(crate) const NOT_CLOCKED: &str = "project_id NOT IN (SELECT id FROM projects WHERE clock_offset_us <> 0)";

/// How long a webhook of a project without a webhook URL waits before it is
/// looked at again, in seconds. One written while its project has no URL is
/// parked from the start; setting a URL releases the backlog at once.
pub const WEBHOOK_PARK_S: i64 = 3_600;
/// [`WEBHOOK_PARK_S`] in microseconds, the stores' unit: every statement that
/// parks a webhook in its own insert (`CASE WHEN webhook_url IS NULL …`, in
/// `sqlite/payouts.rs`, `postgres/sessions.rs` and `postgres/creations.rs`)
/// adds this.
pub(crate) const WEBHOOK_PARK_US: i64 = WEBHOOK_PARK_S * 1_000_000;
/// The `last_error` of a parked webhook.
pub const WEBHOOK_PARKED_ERROR: &str = "no webhook URL is set for the project";

/// A clock moved only from the offset its mover read (`?1` project, `?2` from, `?3` to).
pub(crate) const MOVE_CLOCK_SQL: &str =
    "UPDATE projects SET clock_offset_us = ?3 WHERE id = ?1 AND clock_offset_us = ?2";

/// The projects on virtual time, with their offsets.
pub(crate) const CLOCKED_PROJECTS_SQL: &str =
    "SELECT id, clock_offset_us FROM projects WHERE clock_offset_us <> 0 ORDER BY id";

/// A clocked project's row, checked.
pub(crate) fn clocked(id: String, us: i64) -> Result<(String, open131_domain::settings::ClockOffset)> {
    let offset = open131_domain::settings::ClockOffset::from_us(us)
        .ok_or_else(|| StoreError::corrupt(format!("project {id}"), "clock_offset_us"))?;
    Ok((id, offset))
}

/// The backlog's queries, the same text on both backends.
/// [`MetaStore::claim_report`], for both backends (`$1` project, `$2` report,
/// `$3` the lease's end, `$4` now); SQLite runs it through `sqlite::numbered`.
pub(crate) const CLAIM_REPORT_SQL: &str = "INSERT INTO report_runs (project_id, report, claimed_until_us)
     VALUES ($1, $2, $3)
     ON CONFLICT (project_id, report) DO UPDATE SET claimed_until_us = excluded.claimed_until_us
     WHERE NOT report_runs.done AND report_runs.claimed_until_us < $4";
pub(crate) const FINISH_REPORT_SQL: &str = "UPDATE report_runs SET done = TRUE WHERE project_id = $1 AND report = $2";

pub(crate) const BACKLOG_CHECKS_SQL: &str = "SELECT COUNT(*) FROM kyc_checks WHERE outcome IS NULL";
/// Timers due at `$1` (real time, microseconds) on each project's own clock.
pub(crate) const BACKLOG_TIMERS_SQL: &str =
    "SELECT COUNT(*) FROM session_timers t JOIN projects p ON p.id = t.project_id
     WHERE t.due_at_us <= $1 + p.clock_offset_us";
pub(crate) const BACKLOG_WEBHOOKS_SQL: &str =
    "SELECT project_id, COUNT(*) FROM webhooks WHERE state = 'pending' GROUP BY project_id ORDER BY project_id";

/// One handle on every aggregate's store.
/// Subscriptions: the bank's charges of a saved card every period.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// A subscription of `project_id`; another project's is simply absent.
    async fn subscription(&self, project_id: &str, id: &str) -> Result<Option<SubscriptionRecord>>;
    /// Changes a subscription alone (cancel, restore): `Applied` with its new
    /// version, or `VersionConflict` when it changed since it was read.
    async fn write_subscription(&self, write: SubscriptionWrite, now: OffsetDateTime) -> Result<WriteOutcome>;
    /// Claims active subscriptions due at `now`, the earliest first: each is
    /// leased until `lease_until` so no other node charges it meanwhile, and
    /// one whose charge never committed (a dead node) is claimed again then.
    async fn claim_due_subscriptions(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>>;
    /// As [`SubscriptionStore::claim_due_subscriptions`], of `project_id`'s
    /// alone, due by its own clock, leased on the real one.
    async fn claim_project_due_subscriptions(
        &self,
        project_id: &str,
        own: OwnClaim,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>>;
}

/// Public tokens of the widgets.
#[async_trait]
pub trait WidgetStore: Send + Sync + 'static {
    /// Stores a new token (its random value must be new).
    async fn insert_public_token(&self, token: PublicTokenRecord) -> Result<()>;
    /// The project's token `token`; another project's is simply absent.
    async fn public_token(&self, project_id: &str, token: &str) -> Result<Option<PublicTokenRecord>>;
    /// A token as a customer's browser brings it (the page knows no project).
    async fn public_token_by_value(&self, token: &str) -> Result<Option<PublicTokenRecord>>;
    /// Uses a token once: marks it used at `now` if it is unused and not
    /// expired, and returns it; `None` when it was not (used, expired, unknown).
    async fn use_public_token(&self, token: &str, now: OffsetDateTime) -> Result<Option<PublicTokenRecord>>;
    /// Puts a card in the vault; the same card again (its hash) is sealed
    /// afresh with its new expiry (a reissued card keeps its number).
    async fn put_card(&self, card: VaultCardRecord) -> Result<()>;
    /// The project's card `number_hash`; another project's is simply absent.
    async fn vault_card(&self, project_id: &str, number_hash: &str) -> Result<Option<VaultCardRecord>>;
    /// Puts a bank account in the vault; `false` when it is already there.
    async fn put_account(&self, account: VaultAccountRecord) -> Result<bool>;
    /// The project's bank account `token`; another project's is simply absent.
    async fn vault_account(&self, project_id: &str, token: &str) -> Result<Option<VaultAccountRecord>>;
    /// Every sealed item of every project whose key is not `key_id` (the
    /// operator's key rotation), at most `limit`.
    async fn sealed_items(&self, not_key_id: &str, limit: usize) -> Result<Vec<SealedItem>>;
    /// Replaces an item's sealed bytes (sealed again under another key).
    async fn reseal(&self, item: SealedItem) -> Result<()>;
}

/// How long an instance may go unheard before its row is forgotten (its
/// leases then count as a dead instance's).
pub const INSTANCE_FORGET_AFTER: time::Duration = time::Duration::days(1);

/// A new instance id: random, so two processes (on two hosts) never share one.
pub fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState` is seeded from the OS's randomness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("i{:016x}", h.finish())
}

/// The processes that claim work, and their leases (issue 15): each claim
/// records this handle's instance id; a process heartbeats while it serves.
#[async_trait]
pub trait InstanceStore: Send + Sync + 'static {
    /// The owner this handle's claims record.
    fn instance_id(&self) -> &str;
    /// This instance is alive at `now`.
    async fn heartbeat(&self, now: OffsetDateTime) -> Result<()>;
    /// Every instance's last heartbeat (its own clock's: compare a value
    /// with its earlier self, never with another clock).
    async fn heartbeats(&self) -> Result<Vec<(String, i64)>>;
    /// Makes due at `now` what `owner` claimed and holds (`None`: every
    /// other instance, as on SQLite at start, where the serve lock proves no
    /// other process holds any); never this instance's own; how many leases
    /// were released.
    async fn release_leases(&self, now: OffsetDateTime, owner: Option<&str>) -> Result<usize>;
}

/// Self-employed people's links to the bank.
#[async_trait]
pub trait NpdStore: Send + Sync + 'static {
    /// The project's link for `inn`; `None` when it was never asked for.
    async fn npd_link(&self, project_id: &str, inn: &str) -> Result<Option<NpdLinkRecord>>;
    /// Saves `link` if its row still stands at `expected_version` (`None`:
    /// no row yet); `false` when another change came first (nothing saved).
    async fn save_npd_link(&self, link: NpdLinkRecord, expected_version: Option<i64>) -> Result<bool>;
    /// Stores a new request (its random id must be new).
    async fn insert_npd_request(&self, request: NpdRequestRecord) -> Result<()>;
    /// The project's request `id`; another project's is simply absent.
    async fn npd_request(&self, project_id: &str, id: &str) -> Result<Option<NpdRequestRecord>>;
    /// What the operator said the tax service knows of `inn`, if anything.
    async fn npd_taxpayer(&self, inn: &str) -> Result<Option<open131_domain::npd::Taxpayer>>;
    /// What the project paid the self-employed `inn` (payouts with
    /// fiscalization, failed ones left out) created in `[from, to)`, in minor units.
    async fn fiscal_income(&self, project_id: &str, inn: &str, from: OffsetDateTime, to: OffsetDateTime)
        -> Result<i64>;
    /// The operator's word on `inn`, replacing any earlier one.
    async fn set_npd_taxpayer(
        &self,
        inn: &str,
        taxpayer: &open131_domain::npd::Taxpayer,
        now: OffsetDateTime,
    ) -> Result<()>;
}

pub trait Store:
    ProjectStore
    + CheckStore
    + SessionStore
    + LedgerStore
    + OutboxStore
    + MetaStore
    + SubscriptionStore
    + WidgetStore
    + NpdStore
    + InstanceStore
{
    fn backend(&self) -> Backend;
    /// Where this store's group commits are reported (the server's metrics).
    fn commits(&self) -> &CommitWatch;
}
