//! Records of the payout side: sessions, timers, wallets, the webhook outbox.

use open131_domain::allowlist::IpAllowlist;
use open131_domain::books::Shape;
use open131_domain::fx::FxRate;
use open131_domain::ident::CardExpiry;
use open131_domain::ledger::{Book, Funding, Leg};
use open131_domain::lifecycle::Timer;
use open131_domain::payment::PaymentPlan;
use open131_domain::payment_flow::PaymentState;
use open131_domain::payout::SandboxPlan;
use open131_domain::payout_flow::PayoutState;
use open131_domain::personal::Personal;
use open131_domain::refund_flow::RefundState;
use open131_domain::session::{ApiVersion, SessionState};
use open131_domain::settings::{CaptureMode, ClockOffset, FeeRate, KycMode, MethodSet, NameSet, WebhookNaming};
use open131_domain::split::{Split, Taken};
use open131_domain::subscription::{Period, Schedule};
use open131_domain::webhook_faults::WebhookFaults;
use open131_domain::widget::WidgetGrant;
use time::OffsetDateTime;

/// A project's settings, parsed once when the project is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    pub webhook_url: Option<String>,
    pub auto_confirm: bool,
    pub confirm_timeout_s: i64,
    /// The main-API methods the project may call.
    pub methods: MethodSet,
    pub kyc_mode: KycMode,
    /// The addresses/networks the project's requests may come from.
    pub allowed_ips: IpAllowlist,
    /// The API version that names sessions in webhooks.
    pub webhook_naming: WebhookNaming,
    /// The `X-PARTNER-SUBMERCHANT` values the project may send.
    pub submerchants: NameSet,
    /// Whether authorized card payments are captured at once or held.
    pub capture: CaptureMode,
    /// How long a hold waits for `session/capture`.
    pub capture_timeout_s: i64,
    /// The bank's fee on captured card payments.
    pub payment_fee: FeeRate,
    /// The `contractor_alias`es its split payments may pay (`revenue_split_info`).
    pub contractors: NameSet,
    /// The origins whose pages may show its widgets (`*`: any).
    pub widget_origins: NameSet,
    /// What its webhook deliveries suffer (a test stand's faults; none by default).
    pub webhook_faults: WebhookFaults,
    /// How far its clock runs ahead of the real one (virtual time; none by default).
    pub clock_offset: ClockOffset,
}

/// A change to project settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    /// `Some(None)` removes the URL.
    pub webhook_url: Option<Option<String>>,
    pub auto_confirm: Option<bool>,
    pub confirm_timeout_s: Option<i64>,
    pub methods: Option<MethodSet>,
    pub kyc_mode: Option<KycMode>,
    pub allowed_ips: Option<IpAllowlist>,
    pub webhook_naming: Option<WebhookNaming>,
    pub submerchants: Option<NameSet>,
    pub capture: Option<CaptureMode>,
    pub capture_timeout_s: Option<i64>,
    pub payment_fee: Option<FeeRate>,
    pub contractors: Option<NameSet>,
    pub widget_origins: Option<NameSet>,
    pub webhook_faults: Option<WebhookFaults>,
    pub clock_offset: Option<ClockOffset>,
}

impl SettingsChange {
    /// The change as the text columns store it (`Display` of each type, which
    /// its `parse` reads back).
    pub(crate) fn stored(&self) -> StoredSettingsChange {
        StoredSettingsChange {
            set_webhook_url: self.webhook_url.is_some(),
            webhook_url: self.webhook_url.clone().flatten(),
            auto_confirm: self.auto_confirm,
            confirm_timeout_s: self.confirm_timeout_s,
            methods: self.methods.as_ref().map(ToString::to_string),
            kyc_mode: self.kyc_mode.map(|m| m.as_str().to_string()),
            allowed_ips: self.allowed_ips.as_ref().map(ToString::to_string),
            webhook_naming: self.webhook_naming.map(|n| n.as_str().to_string()),
            submerchants: self.submerchants.as_ref().map(ToString::to_string),
            capture_mode: self.capture.map(|m| m.as_str().to_string()),
            capture_timeout_s: self.capture_timeout_s,
            payment_fee_bp: self.payment_fee.map(|f| i64::from(f.bp())),
            contractors: self.contractors.as_ref().map(ToString::to_string),
            widget_origins: self.widget_origins.as_ref().map(ToString::to_string),
            webhook_faults: self.webhook_faults.as_ref().map(ToString::to_string),
            clock_offset_us: self.clock_offset.map(ClockOffset::us),
        }
    }
}

/// [`SettingsChange`] in column form, shared by both backends' UPDATE.
pub(crate) struct StoredSettingsChange {
    pub set_webhook_url: bool,
    pub webhook_url: Option<String>,
    pub auto_confirm: Option<bool>,
    pub confirm_timeout_s: Option<i64>,
    pub methods: Option<String>,
    pub kyc_mode: Option<String>,
    pub allowed_ips: Option<String>,
    pub webhook_naming: Option<String>,
    pub submerchants: Option<String>,
    pub capture_mode: Option<String>,
    pub capture_timeout_s: Option<i64>,
    pub payment_fee_bp: Option<i64>,
    pub contractors: Option<String>,
    pub widget_origins: Option<String>,
    pub webhook_faults: Option<String>,
    pub clock_offset_us: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRecord {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// JSON of the masked method (version-neutral; the server names it per version).
    pub method_masked: String,
    /// The recipient's JSON as sent: personal data, so `Debug` prints `***`.
    pub participant_details: Personal<String>,
    pub customer: Option<String>,
    pub metadata: Option<String>,
    /// What the sandbox provider will do with it.
    pub plan: SandboxPlan,
    /// Where its own lifecycle stands.
    pub state: PayoutState,
    pub created_at: OffsetDateTime,
    /// When it settled (a multi-session's operations settle at their own times).
    pub finished_at: Option<OffsetDateTime>,
    /// A foreign-currency payout funded in roubles: what it costs, at which rate.
    pub exchange: Option<Exchange>,
    /// What the partner confirms (JSON, `books::confirm_information`): names
    /// and accounts, so `Debug` prints `***`.
    pub confirm_information: Option<Personal<String>>,
    /// A self-employed person's `fiscalization_details` (JSON,
    /// `fiscal::Fiscalization::wire` without a receipt): the INN, so `***`.
    pub fiscalization: Option<Personal<String>>,
    /// The tax service's receipt of a succeeded payout with fiscalization.
    pub receipt: Option<open131_domain::receipt::Receipt>,
}

/// The conversion of a foreign-currency payout, fixed when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// What the payout costs, in minor units of `charged_currency`.
    pub charged_amount: i64,
    pub charged_currency: String,
    pub rate: FxRate,
}

impl PayoutRecord {
    /// How its money moves: from `book`, converted or not.
    pub fn funding(&self, book: Book) -> Funding {
        Funding {
            book,
            paid: (self.amount, self.currency.clone()),
            charged: self.exchange.as_ref().map(|e| (e.charged_amount, e.charged_currency.clone())),
        }
    }
}

/// An acquiring card payment of a session (issue 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// JSON of the masked card (`{type: card, card: {brand, last4, bin}}`).
    pub method_masked: String,
    /// The payer as the partner names it: personal data, so `Debug` prints `***`.
    pub customer: Personal<String>,
    pub participant_details: Option<Personal<String>>,
    pub metadata: Option<String>,
    pub return_url: Option<String>,
    /// What the sandbox issuer will do with it.
    pub plan: PaymentPlan,
    pub state: PaymentState,
    /// What `session/capture` took, when it took less than the whole.
    pub captured_amount: Option<i64>,
    /// The bank's fee, set when the payment is captured (0 without a fee rate).
    pub fee_amount: i64,
    /// Wrong one-time codes entered on its 3-D Secure page.
    pub three_ds_attempts: u8,
    pub created_at: OffsetDateTime,
    /// Its refunds (and chargebacks), oldest first.
    pub refunds: Vec<PaymentRefundRecord>,
    /// Asked to save the card (`payment_options.recurrent`): a token is
    /// issued when it succeeds.
    pub recurrent: bool,
    /// The token it issued.
    pub recurrent_token: Option<RecurrentToken>,
    /// When it settled (a multi-session's operations settle at their own times).
    pub finished_at: Option<OffsetDateTime>,
    /// A split payment's parts (`revenue_split_info`), their amounts set at capture.
    pub split: Option<Split>,
    /// A subscription's first payment, or one of its charges.
    pub subscription: Option<PaymentSubscription>,
    /// The card's expiry (card payments; a subscription's charges check it).
    pub card_expiry: Option<CardExpiry>,
}

/// A payment's part in a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSubscription {
    pub period: Period,
    /// The subscription's id: set when the first payment succeeds (it makes
    /// the subscription), and on every charge.
    pub id: Option<String>,
    /// The first payment (else a charge of the bank's).
    pub initial: bool,
    /// The subscription as it stood when the session was read (answers show
    /// its next point); `None` before it exists.
    pub schedule: Option<Schedule>,
}

/// A subscription: the bank charges its card every period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub project_id: String,
    pub id: String,
    /// Every change names the version it was computed from.
    pub version: i64,
    pub schedule: Schedule,
    pub amount: i64,
    pub currency: String,
    /// The card, masked, as the first payment showed it.
    pub method_masked: String,
    pub card_expiry: Option<CardExpiry>,
    /// The payer: personal data, so `Debug` prints `***`.
    pub customer: Personal<String>,
    pub metadata: Option<String>,
    /// The naming of its charges' sessions (the first payment's).
    pub api_version: ApiVersion,
    pub first_session_id: String,
    /// The sub-merchant of the first payment's session, and of its charges'.
    pub submerchant: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A subscription written with a session change (its creation, a charge, a
/// charge's outcome) or alone (cancel, restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionWrite {
    /// `None` creates it (its id must be new).
    pub expected_version: Option<i64>,
    pub record: SubscriptionRecord,
}

/// A recurrent token: later payments of the project pay with the saved card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrentToken {
    pub token: String,
    pub created_at: OffsetDateTime,
    /// Informative (the bank does not expire tokens by it).
    pub finished_at: OffsetDateTime,
    /// `false` once `recurrent/disable` was called: payments by it then fail.
    pub is_active: bool,
}

/// A refund of a card payment (or a chargeback, `is_chargeback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRefundRecord {
    pub id: String,
    pub amount: i64,
    pub state: RefundState,
    pub is_chargeback: bool,
    pub metadata: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// What it took back from the contractors of a split payment (empty otherwise).
    pub split: Taken,
}

impl PaymentRecord {
    /// The amount a capture moves into the available balance.
    pub fn captured(&self) -> i64 {
        self.captured_amount.unwrap_or(self.amount)
    }

    /// What may still be refunded: the captured amount less every refund
    /// asked for and not refused.
    pub fn refundable(&self) -> i64 {
        let asked: i64 =
            self.refunds.iter().filter(|r| open131_domain::refund_flow::counts(r.state)).map(|r| r.amount).sum();
        self.captured() - asked
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub project_id: String,
    pub id: String,
    /// The naming of its responses and webhooks.
    pub api_version: ApiVersion,
    /// The session's own lifecycle state (each payout keeps its own).
    pub state: SessionState,
    pub version: i64,
    /// The session's payouts, oldest first (a child table: a session holds
    /// a list of operations; today's sessions hold at most one payout).
    pub payouts: Vec<PayoutRecord>,
    /// Its acquiring payments (a child table too; at most one today).
    pub payments: Vec<PaymentRecord>,
    pub refund: Option<RefundRecord>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// What `session/create` was given for the payout that `session/start/payout`
    /// will run (JSON, masked: never a clear card number). Cleared when it starts.
    pub draft: Option<Personal<String>>,
    /// The `X-PARTNER-SUBMERCHANT` the session was made for.
    pub submerchant: Option<String>,
    /// The account its payouts are paid from (`…/nominal`, `…/rko` methods).
    pub book: Book,
    /// Made by a card method of `session/multi/…` or a payout method: it is
    /// started by a method of the same shape.
    pub shape: Shape,
}

impl SessionRecord {
    /// The payout that runs or ran last: the session's one payout, or in a
    /// multi-session the last that has begun (the others wait their turn).
    pub fn payout(&self) -> Option<&PayoutRecord> {
        self.payouts.iter().rev().find(|p| p.state != PayoutState::Waiting)
    }

    /// The payouts that have begun, oldest first (those waiting their turn are
    /// not shown).
    pub fn begun_payouts(&self) -> impl Iterator<Item = &PayoutRecord> {
        self.payouts.iter().filter(|p| p.state != PayoutState::Waiting)
    }

    /// The payment of a payment session (or of a multi-session, which holds one).
    pub fn payment(&self) -> Option<&PaymentRecord> {
        self.payments.first()
    }

    /// Whether the operation that runs (or ran last) is a payout rather than
    /// the payment: a multi-session's payouts begin only after its payment.
    pub fn runs_payout(&self) -> bool {
        self.payout().is_some()
    }

    /// The payment, while it is the operation that runs (a multi-session's
    /// payouts begin after it).
    pub fn running_payment(&self) -> Option<&PaymentRecord> {
        self.payment().filter(|_| !self.runs_payout())
    }

    /// Whether a payout waits its turn (a multi-session).
    pub fn has_waiting(&self) -> bool {
        self.payouts.iter().any(|p| p.state == PayoutState::Waiting)
    }
}

/// A webhook to enqueue with a state change.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub kind: String,
    pub body: Vec<u8>,
}

/// One atomic change of a session: the new record and everything that must
/// commit with it or not at all.
#[derive(Debug, Clone)]
pub struct SessionWrite {
    /// `None` creates the session (its id must be new).
    pub expected_version: Option<i64>,
    /// The new state; its `version` is ignored (the store sets it).
    pub record: SessionRecord,
    pub idempotency: Option<(String, String)>,
    /// Ledger movements, each on one wallet of the session's project.
    pub movements: Vec<Leg>,
    pub webhooks: Vec<NewWebhook>,
    pub timers: Vec<(Timer, OffsetDateTime)>,
    /// A timer that fired and is consumed by this change.
    pub consumed_timer: Option<Timer>,
    /// A subscription changed in the same transaction; a stale version
    /// refuses the whole write (`VersionConflict`).
    pub subscription: Option<SubscriptionWrite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Committed; the session's new version.
    Applied(i64),
    /// The idempotency key was used before: nothing changed.
    IdempotencyConflict,
    /// Someone changed the session since it was read: nothing changed; re-read and retry.
    VersionConflict,
    /// The wallet cannot cover a reservation: nothing changed.
    Insufficient,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRecord {
    pub book: Book,
    pub currency: String,
    pub available: i64,
    pub reserved: i64,
    pub payouts: i64,
    pub funding: i64,
    pub exchange: i64,
    /// Card payments authorized, not captured (acquiring, issue 9).
    pub held: i64,
    pub acquiring: i64,
    /// The bank's fees on captured card payments.
    pub fees: i64,
    /// Split payments' parts passed on to contractors: the sum of their wallets.
    pub contractors: i64,
}

/// A wallet of one of a project's contractors: its parts of split payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractorWalletRecord {
    pub book: Book,
    pub currency: String,
    pub alias: String,
    pub balance: i64,
}

/// A wallet's statement for a period: per-account sums of the postings before
/// it (its opening balances) and its postings, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRecord {
    pub opening: Vec<(String, i64)>,
    pub postings: Vec<PostingRecord>,
}

/// One posting of the ledger, as a statement lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingRecord {
    pub id: i64,
    pub movement: String,
    pub account: String,
    pub amount: i64,
    pub session_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A posting with the wallet it belongs to, as a session's postings list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPostingRecord {
    pub book: Book,
    pub currency: String,
    pub posting: PostingRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub project_id: String,
    pub session_id: String,
    pub timer: Timer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    Pending,
    Delivered,
    Failed,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// What a webhook is about: the kind of object and its id. Sessions send them
/// today; self-employed status requests and refunds will too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Session,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(Self::Session),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: i64,
    pub project_id: String,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    pub kind: String,
    pub body: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub state: WebhookState,
    pub attempts: i64,
    /// `attempts` when the webhook was last revived by a resend.
    pub attempts_base: i64,
    pub next_attempt_at: OffsetDateTime,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<OffsetDateTime>,
}

/// The result of one delivery attempt and what to do next.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub webhook_id: i64,
    /// The webhook's `attempts` when it was claimed: a result is recorded only if
    /// no other claim recorded one since (a stale delivery never overwrites).
    pub claimed_attempts: i64,
    pub at: OffsetDateTime,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The faults injected into this attempt (a test stand's), as the delivery log shows them.
    pub injected: Option<String>,
    /// `None` = delivered (or given up when `gave_up`), else the next attempt time.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub gave_up: bool,
    /// Not an attempt: the project has no webhook URL; wait until `next_attempt_at`.
    pub parked: bool,
}

#[derive(Debug, Clone, Default)]
pub struct WebhookFilter {
    pub project_id: Option<String>,
    /// Webhooks about this subject id (a session id, ...).
    pub subject_id: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub at: OffsetDateTime,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The faults injected into it, if any.
    pub injected: Option<String>,
}

/// A self-employed person's link to the bank for one project (the linking
/// widget drives it; the self-employed methods read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpdLinkRecord {
    pub project_id: String,
    /// The person's INN (12 digits): personal data, masked by every page.
    pub inn: String,
    pub state: open131_domain::npd_link::LinkState,
    /// Guards each change: a save names the version it read.
    pub version: i64,
    pub updated_at: OffsetDateTime,
}

/// A partner's request to the tax service, with the answer it gets once
/// it is no longer pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpdRequestRecord {
    pub project_id: String,
    pub id: String,
    /// The person's INN: personal data.
    pub inn: String,
    /// `check` or `personal_info`.
    pub kind: NpdRequestKind,
    pub answer: open131_domain::npd::NpdAnswer,
    pub created_at: OffsetDateTime,
    /// From when `npd/request/status` shows the answer (before: `pending`).
    pub ready_at: OffsetDateTime,
}

/// Which method made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpdRequestKind {
    Check,
    PersonalInfo,
}

impl NpdRequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::PersonalInfo => "personal_info",
        }
    }

    pub fn parse_stored(s: &str) -> Option<Self> {
        [Self::Check, Self::PersonalInfo].into_iter().find(|k| k.as_str() == s)
    }
}

/// A public token: a customer's browser may open the widgets of `grant` with it, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTokenRecord {
    pub token: String,
    pub project_id: String,
    pub grant: WidgetGrant,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// When a widget was opened with it (it serves once).
    pub used_at: Option<OffsetDateTime>,
}

/// A card in the vault: its number sealed (the key outside the database),
/// named by `number_hash`; only the masked form in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultCardRecord {
    pub project_id: String,
    pub number_hash: String,
    /// The id of the vault key that sealed it.
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub brand: String,
    pub bin: String,
    pub last4: String,
    pub card_expiry: Option<CardExpiry>,
    pub created_at: OffsetDateTime,
}

/// A Russian bank account in the vault: its number sealed, named by `token`
/// (a payout's `bank_account.ru.token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultAccountRecord {
    pub project_id: String,
    pub token: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub bik: String,
    pub masked_account: String,
    pub created_at: OffsetDateTime,
}

/// Which vault table a sealed item is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultKind {
    Card,
    Account,
}

/// One sealed item of the vault, as key rotation reads and re-seals it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedItem {
    pub kind: VaultKind,
    pub project_id: String,
    /// Its `number_hash` (a card) or `token` (an account).
    pub name: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}
