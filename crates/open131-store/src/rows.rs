//! Raw rows as both backends read them, and their one decoding into records.
//! A backend fills these structs from its driver's row type; everything that can
//! be wrong with stored data is found here, once.

use open131_domain::allowlist::IpAllowlist;
use open131_domain::books::Shape;
use open131_domain::fx::FxRate;
use open131_domain::ident::CardExpiry;
use open131_domain::ident::PassportNumber;
use open131_domain::kyc::{CheckState, KycApplication, KycVersion, Outcome, RfPassport};
use open131_domain::ledger::{Account, Book, Posting};
use open131_domain::lifecycle::Timer;
use open131_domain::payment::PaymentPlan;
use open131_domain::payment_flow;
use open131_domain::payout::SandboxPlan;
use open131_domain::payout_flow;
use open131_domain::personal::Personal;
use open131_domain::receipt::{CancelReason, Receipt, ReceiptState};
use open131_domain::refund_flow;
use open131_domain::session::{self, ApiVersion};
use open131_domain::settings::ClockOffset;
use open131_domain::settings::{CaptureMode, FeeRate, KycMode, MethodSet, NameSet, WebhookNaming};
use open131_domain::split::{Split, Taken};
use open131_domain::subscription::{Period, Schedule, SubscriptionState};
use open131_domain::webhook_faults::WebhookFaults;
use open131_domain::widget::WidgetGrant;
use time::{Date, OffsetDateTime};

use crate::{
    CheckRecord, ContractorWalletRecord, DueTimer, Exchange, NpdLinkRecord, NpdRequestKind, NpdRequestRecord,
    PaymentRecord, PaymentRefundRecord, PaymentSubscription, PayoutRecord, PostingRecord, ProjectSettings,
    PublicTokenRecord, RecurrentToken, RefundRecord, Result, SealedItem, SessionPostingRecord, SessionRecord,
    StoreError, SubjectKind, SubscriptionRecord, VaultAccountRecord, VaultCardRecord, VaultKind, WalletRecord,
    WebhookRecord, WebhookState,
};

/// A result row of either driver, read by column position: each row struct
/// below reads itself through this once, so a table's column order is written
/// in one place for both backends (SQLite stores booleans as integers; its
/// implementation reads them so).
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> std::result::Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> std::result::Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> std::result::Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> std::result::Result<Option<i64>, Self::Error>;
    fn bytes(&self, i: usize) -> std::result::Result<Vec<u8>, Self::Error>;
    fn flag(&self, i: usize) -> std::result::Result<bool, Self::Error>;
}

pub(crate) const PROJECT_COLUMNS: &str =
    "id, created_at_us, kyc_mode, webhook_url, auto_confirm, confirm_timeout_s, methods, allowed_ips, webhook_naming, \
     submerchants, capture_mode, capture_timeout_s, payment_fee_bp, contractors, widget_origins, \
     webhook_faults, clock_offset_us";

/// A row of `projects`, in [`PROJECT_COLUMNS`] order (without its keys).
pub(crate) struct ProjectRow {
    pub id: String,
    pub created_at_us: i64,
    pub kyc_mode: String,
    pub webhook_url: Option<String>,
    pub auto_confirm: bool,
    pub confirm_timeout_s: i64,
    pub methods: String,
    pub allowed_ips: String,
    pub webhook_naming: String,
    pub submerchants: String,
    pub capture_mode: String,
    pub capture_timeout_s: i64,
    pub payment_fee_bp: i64,
    pub contractors: String,
    pub widget_origins: String,
    pub webhook_faults: String,
    pub clock_offset_us: i64,
}

impl ProjectRow {
    /// The row in [`PROJECT_COLUMNS`] order.
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            id: r.text(0)?,
            created_at_us: r.int(1)?,
            kyc_mode: r.text(2)?,
            webhook_url: r.opt_text(3)?,
            auto_confirm: r.flag(4)?,
            confirm_timeout_s: r.int(5)?,
            methods: r.text(6)?,
            allowed_ips: r.text(7)?,
            webhook_naming: r.text(8)?,
            submerchants: r.text(9)?,
            capture_mode: r.text(10)?,
            capture_timeout_s: r.int(11)?,
            payment_fee_bp: r.int(12)?,
            contractors: r.text(13)?,
            widget_origins: r.text(14)?,
            webhook_faults: r.text(15)?,
            clock_offset_us: r.int(16)?,
        })
    }

    /// The id, creation time and parsed settings.
    pub(crate) fn decode(self) -> Result<(String, OffsetDateTime, ProjectSettings)> {
        let what = format!("project {}", self.id);
        let settings = ProjectSettings {
            kyc_mode: KycMode::parse(&self.kyc_mode).ok_or_else(|| StoreError::corrupt(&what, "kyc_mode"))?,
            webhook_url: self.webhook_url,
            auto_confirm: self.auto_confirm,
            confirm_timeout_s: self.confirm_timeout_s,
            methods: MethodSet::parse(&self.methods).map_err(|_| StoreError::corrupt(&what, "methods"))?,
            allowed_ips: IpAllowlist::parse(&self.allowed_ips)
                .map_err(|_| StoreError::corrupt(&what, "allowed_ips"))?,
            webhook_naming: WebhookNaming::parse(&self.webhook_naming)
                .ok_or_else(|| StoreError::corrupt(&what, "webhook_naming"))?,
            submerchants: NameSet::parse(&self.submerchants).map_err(|_| StoreError::corrupt(&what, "submerchants"))?,
            capture: CaptureMode::parse(&self.capture_mode)
                .ok_or_else(|| StoreError::corrupt(&what, "capture_mode"))?,
            capture_timeout_s: self.capture_timeout_s,
            payment_fee: FeeRate::from_bp(self.payment_fee_bp)
                .ok_or_else(|| StoreError::corrupt(&what, "payment_fee_bp"))?,
            contractors: NameSet::parse(&self.contractors).map_err(|_| StoreError::corrupt(&what, "contractors"))?,
            widget_origins: NameSet::parse(&self.widget_origins)
                .map_err(|_| StoreError::corrupt(&what, "widget_origins"))?,
            webhook_faults: WebhookFaults::parse(&self.webhook_faults)
                .map_err(|_| StoreError::corrupt(&what, "webhook_faults"))?,
            clock_offset: ClockOffset::from_us(self.clock_offset_us)
                .ok_or_else(|| StoreError::corrupt(&what, "clock_offset_us"))?,
        };
        Ok((self.id, from_us(self.created_at_us)?, settings))
    }
}

/// Times are stored as microseconds since the Unix epoch (UTC).
pub(crate) fn to_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_us(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|_| StoreError::corrupt(format!("timestamp {us}"), "out of range"))
}

use open131_domain::dates::ISO_DATE_FORMAT as DATE_FORMAT;

pub(crate) fn parse_date(s: &str) -> Result<Date> {
    Date::parse(s, DATE_FORMAT).map_err(|_| StoreError::corrupt(format!("date {s:?}"), "not YYYY-MM-DD"))
}

pub(crate) fn format_date(d: Date) -> Result<String> {
    d.format(DATE_FORMAT).map_err(|_| StoreError::corrupt(format!("date {d}"), "cannot be formatted"))
}

pub(crate) const CHECK_COLUMNS: &str = "project_id, id, api_version, passport_number, inn, agent_contract_number, \
     birthday, issuer_date, outcome, created_at_us, finished_at_us";

/// A row of `kyc_checks`, in [`CHECK_COLUMNS`] order.
pub(crate) struct CheckRow {
    pub project_id: String,
    pub id: i64,
    pub api_version: String,
    pub passport_number: String,
    pub inn: String,
    pub agent_contract_number: String,
    pub birthday: String,
    pub issuer_date: Option<String>,
    pub outcome: Option<String>,
    pub created_at_us: i64,
    pub finished_at_us: Option<i64>,
}

impl CheckRow {
    /// The row in [`CHECK_COLUMNS`] order.
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            project_id: r.text(0)?,
            id: r.int(1)?,
            api_version: r.text(2)?,
            passport_number: r.text(3)?,
            inn: r.text(4)?,
            agent_contract_number: r.text(5)?,
            birthday: r.text(6)?,
            issuer_date: r.opt_text(7)?,
            outcome: r.opt_text(8)?,
            created_at_us: r.int(9)?,
            finished_at_us: r.opt_int(10)?,
        })
    }

    pub(crate) fn decode(self) -> Result<CheckRecord> {
        let what = format!("check {}/{}", self.project_id, self.id);
        let state = match &self.outcome {
            None => CheckState::Pending,
            Some(s) => CheckState::Finished(Outcome::parse(s).ok_or_else(|| StoreError::corrupt(&what, "outcome"))?),
        };
        // A Russian passport is stored with its issue date; a non-resident's document has none.
        let rf_passport = match &self.issuer_date {
            Some(d) => Some(RfPassport {
                number: PassportNumber::parse(&self.passport_number)
                    .map_err(|_| StoreError::corrupt(&what, "passport_number"))?,
                issue_date: parse_date(d)?,
            }),
            None => None,
        };
        let application = KycApplication {
            version: KycVersion::parse(&self.api_version).ok_or_else(|| StoreError::corrupt(&what, "api_version"))?,
            rf_passport,
            document_key: Personal::new(self.passport_number),
            inn: Personal::new(self.inn),
            agent_contract_number: Personal::new(self.agent_contract_number),
            birthday: parse_date(&self.birthday)?,
        };
        Ok(CheckRecord {
            state,
            application,
            created_at: from_us(self.created_at_us)?,
            finished_at: self.finished_at_us.map(from_us).transpose()?,
            project_id: self.project_id,
            id: self.id,
        })
    }
}

/// A session with its payouts in one statement: the session's columns
/// ([`SessionRow`], `0..PAYOUT_OFFSET`), then one payout's ([`PayoutRow`],
/// from [`PAYOUT_OFFSET`], all NULL for a session without payouts), one row
/// per payout, oldest first. One statement instead of two: a status read and
/// every timer's firing read a session.
pub(crate) const SELECT_SESSION: &str = "SELECT s.project_id, s.id, s.api_version, s.phase, s.version, s.refund_id, \
     s.refunded_at_us, s.created_at_us, s.updated_at_us, s.finished_at_us, s.draft, s.submerchant, s.book, s.shape, \
     p.id, p.amount, p.currency, p.method_masked, p.participant_details, p.customer, p.metadata, p.plan, p.state, \
     p.created_at_us, p.charged_amount, p.charged_currency, p.fx_rate_millionths, p.confirm_information, \
     p.finished_at_us, \
     q.id, q.amount, q.currency, q.method_masked, q.customer, q.participant_details, q.metadata, q.return_url, \
     q.plan, q.state, q.captured_amount, q.created_at_us, q.fee_amount, q.three_ds_attempts, q.recurrent, \
     q.recurrent_token, q.recurrent_created_at_us, q.recurrent_finished_at_us, q.recurrent_active, q.finished_at_us, \
     q.revenue_split, q.subscription_period, q.subscription_id, q.subscription_initial, q.card_expiry, \
     u.state, u.next_point_us, u.failures, u.charges, u.anchor_us, \
     r.id, r.payment_id, r.amount, r.state, r.is_chargeback, r.metadata, r.created_at_us, r.finished_at_us, \
     r.revenue_split, p.fiscalization, p.receipt \
     FROM sessions s LEFT JOIN payouts p ON p.project_id = s.project_id AND p.session_id = s.id \
     LEFT JOIN payments q ON q.project_id = s.project_id AND q.session_id = s.id \
     LEFT JOIN subscriptions u ON u.project_id = q.project_id AND u.id = q.subscription_id \
     LEFT JOIN payment_refunds r ON r.project_id = q.project_id AND r.payment_id = q.id \
     WHERE s.project_id = $1 AND s.id = $2 \
     ORDER BY p.created_at_us, p.id, q.created_at_us, q.id, r.seq";

/// Where a payout's columns start in a [`SELECT_SESSION`] row.
pub(crate) const PAYOUT_OFFSET: usize = 14;
/// Where a payment's columns start in a [`SELECT_SESSION`] row.
pub(crate) const PAYMENT_OFFSET: usize = PAYOUT_OFFSET + 15;
/// Where a payment refund's columns start in a [`SELECT_SESSION`] row.
pub(crate) const REFUND_OFFSET: usize = PAYMENT_OFFSET + 30;
/// A payout's `fiscalization`, last in a [`SELECT_SESSION`] row (added after the refunds' columns).
pub(crate) const PAYOUT_FISCAL_COLUMN: usize = REFUND_OFFSET + 9;
/// A payout's `receipt`, after its `fiscalization`.
pub(crate) const PAYOUT_RECEIPT_COLUMN: usize = PAYOUT_FISCAL_COLUMN + 1;

/// One row of [`SELECT_SESSION`]: the session, and one payout and one payment
/// (either or both absent).
pub(crate) struct SessionRows {
    head: Option<SessionRow>,
    payouts: Vec<PayoutRow>,
    payments: Vec<PaymentRow>,
    refunds: Vec<RefundRow>,
}

impl SessionRows {
    pub(crate) fn new() -> Self {
        Self { head: None, payouts: Vec::new(), payments: Vec::new(), refunds: Vec::new() }
    }

    /// Adds one result row; a payout or payment seen in an earlier row (the
    /// join repeats them when a session has both) is kept once.
    pub(crate) fn push<C: Columns>(&mut self, r: &C) -> std::result::Result<(), C::Error> {
        if self.head.is_none() {
            self.head = Some(SessionRow::read(r)?);
        }
        if let Some(p) = PayoutRow::read(r)? {
            if !self.payouts.iter().any(|seen| seen.id == p.id) {
                self.payouts.push(p);
            }
        }
        if let Some(p) = PaymentRow::read(r)? {
            if !self.payments.iter().any(|seen| seen.id == p.id) {
                self.payments.push(p);
            }
        }
        if let Some(refund) = RefundRow::read(r)? {
            if !self.refunds.iter().any(|seen| seen.id == refund.id) {
                self.refunds.push(refund);
            }
        }
        Ok(())
    }

    /// The session, or `None` when no row was pushed.
    pub(crate) fn decode(self) -> Result<Option<SessionRecord>> {
        let Some(head) = self.head else { return Ok(None) };
        head.decode(self.payouts, self.payments, self.refunds).map(Some)
    }
}

/// The values a session change writes (SQLite's INSERT and UPDATE take them
/// in this order, `?1..?8` then what only one statement needs; PostgreSQL's
/// one-statement change names each): the one mapping from a record to its
/// columns.
pub(crate) struct SessionValues<'a> {
    pub project_id: &'a str,
    pub id: &'a str,
    pub phase: &'static str,
    pub refund_id: Option<&'a str>,
    pub refunded_at_us: Option<i64>,
    pub updated_at_us: i64,
    pub finished_at_us: Option<i64>,
    pub draft: Option<&'a str>,
    /// INSERT only.
    pub api_version: &'static str,
    /// INSERT only.
    pub created_at_us: i64,
    /// INSERT only.
    pub submerchant: Option<&'a str>,
    /// INSERT only.
    pub book: &'static str,
    /// INSERT only.
    pub shape: &'static str,
}

impl<'a> SessionValues<'a> {
    pub(crate) fn of(r: &'a SessionRecord) -> Self {
        Self {
            project_id: &r.project_id,
            id: &r.id,
            phase: session::state_name(r.state),
            refund_id: r.refund.as_ref().map(|f| f.id.as_str()),
            refunded_at_us: r.refund.as_ref().map(|f| to_us(f.created_at)),
            updated_at_us: to_us(r.updated_at),
            finished_at_us: r.finished_at.map(to_us),
            draft: r.draft.as_ref().map(|d| d.expose().as_str()),
            api_version: r.api_version.as_str(),
            created_at_us: to_us(r.created_at),
            submerchant: r.submerchant.as_deref(),
            book: r.book.as_str(),
            shape: r.shape.as_str(),
        }
    }
}

/// A row of `sessions`, in [`SELECT_SESSION`] order.
pub(crate) struct SessionRow {
    pub project_id: String,
    pub id: String,
    pub api_version: String,
    pub phase: String,
    pub version: i64,
    pub refund_id: Option<String>,
    pub refunded_at_us: Option<i64>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub finished_at_us: Option<i64>,
    pub draft: Option<String>,
    pub submerchant: Option<String>,
    pub book: String,
    pub shape: String,
}

impl SessionRow {
    /// The session's columns of a [`SELECT_SESSION`] row.
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            project_id: r.text(0)?,
            id: r.text(1)?,
            api_version: r.text(2)?,
            phase: r.text(3)?,
            version: r.int(4)?,
            refund_id: r.opt_text(5)?,
            refunded_at_us: r.opt_int(6)?,
            created_at_us: r.int(7)?,
            updated_at_us: r.int(8)?,
            finished_at_us: r.opt_int(9)?,
            draft: r.opt_text(10)?,
            submerchant: r.opt_text(11)?,
            book: r.text(12)?,
            shape: r.text(13)?,
        })
    }

    /// The session with its payouts and payments (oldest first).
    fn decode(
        self,
        payouts: Vec<PayoutRow>,
        payments: Vec<PaymentRow>,
        refunds: Vec<RefundRow>,
    ) -> Result<SessionRecord> {
        let what = format!("session {}/{}", self.project_id, self.id);
        let state = session::parse_state(&self.phase).ok_or_else(|| StoreError::corrupt(&what, "phase"))?;
        let api_version =
            ApiVersion::parse(&self.api_version).ok_or_else(|| StoreError::corrupt(&what, "api_version"))?;
        let book = Book::parse(&self.book).ok_or_else(|| StoreError::corrupt(&what, "book"))?;
        let shape = Shape::parse(&self.shape).ok_or_else(|| StoreError::corrupt(&what, "shape"))?;
        let refund = match (self.refund_id, self.refunded_at_us) {
            (Some(id), Some(at)) => Some(RefundRecord { id, created_at: from_us(at)? }),
            _ => None,
        };
        Ok(SessionRecord {
            payouts: payouts.into_iter().map(|p| p.decode(&what)).collect::<Result<_>>()?,
            payments: payments.into_iter().map(|p| p.decode(&what, &refunds)).collect::<Result<_>>()?,
            project_id: self.project_id,
            id: self.id,
            api_version,
            state,
            version: self.version,
            refund,
            created_at: from_us(self.created_at_us)?,
            updated_at: from_us(self.updated_at_us)?,
            finished_at: self.finished_at_us.map(from_us).transpose()?,
            draft: self.draft.map(Personal::new),
            submerchant: self.submerchant,
            book,
            shape,
        })
    }
}

/// A row of `payouts` (a session's operations), in [`SELECT_SESSION`] order from [`PAYOUT_OFFSET`].
pub(crate) struct PayoutRow {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub method_masked: String,
    pub participant_details: String,
    pub customer: Option<String>,
    pub metadata: Option<String>,
    pub plan: String,
    pub state: String,
    pub created_at_us: i64,
    pub charged_amount: Option<i64>,
    pub charged_currency: Option<String>,
    pub fx_rate_millionths: Option<i64>,
    pub confirm_information: Option<String>,
    pub finished_at_us: Option<i64>,
    pub fiscalization: Option<String>,
    pub receipt: Option<String>,
}

impl PayoutRow {
    /// The payout's columns of a [`SELECT_SESSION`] row (from
    /// [`PAYOUT_OFFSET`]); `None` for a session without payouts.
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Option<Self>, C::Error> {
        let at = |i: usize| PAYOUT_OFFSET + i;
        let Some(id) = r.opt_text(at(0))? else { return Ok(None) };
        Ok(Some(Self {
            id,
            amount: r.int(at(1))?,
            currency: r.text(at(2))?,
            method_masked: r.text(at(3))?,
            participant_details: r.text(at(4))?,
            customer: r.opt_text(at(5))?,
            metadata: r.opt_text(at(6))?,
            plan: r.text(at(7))?,
            state: r.text(at(8))?,
            created_at_us: r.int(at(9))?,
            charged_amount: r.opt_int(at(10))?,
            charged_currency: r.opt_text(at(11))?,
            fx_rate_millionths: r.opt_int(at(12))?,
            confirm_information: r.opt_text(at(13))?,
            finished_at_us: r.opt_int(at(14))?,
            fiscalization: r.opt_text(PAYOUT_FISCAL_COLUMN)?,
            receipt: r.opt_text(PAYOUT_RECEIPT_COLUMN)?,
        }))
    }

    fn decode(self, session: &str) -> Result<PayoutRecord> {
        let what = || format!("{session} payout {}", self.id);
        let plan = SandboxPlan::parse_stored(&self.plan).ok_or_else(|| StoreError::corrupt(what(), "plan"))?;
        let state = payout_flow::parse_state(&self.state).ok_or_else(|| StoreError::corrupt(what(), "state"))?;
        let exchange = match (self.charged_amount, self.charged_currency, self.fx_rate_millionths) {
            (None, None, None) => None,
            (Some(charged_amount), Some(charged_currency), Some(rate)) => Some(Exchange {
                charged_amount,
                charged_currency,
                rate: FxRate::from_millionths(rate).ok_or_else(|| StoreError::corrupt(what(), "fx_rate_millionths"))?,
            }),
            _ => return Err(StoreError::corrupt(what(), "charged_amount")),
        };
        Ok(PayoutRecord {
            id: self.id,
            amount: self.amount,
            currency: self.currency,
            method_masked: self.method_masked,
            participant_details: Personal::new(self.participant_details),
            customer: self.customer,
            metadata: self.metadata,
            plan,
            state,
            created_at: from_us(self.created_at_us)?,
            finished_at: self.finished_at_us.map(from_us).transpose()?,
            exchange,
            confirm_information: self.confirm_information.map(Personal::new),
            fiscalization: self.fiscalization.map(Personal::new),
            receipt: self.receipt.as_deref().map(parse_receipt).transpose()?,
        })
    }
}

/// A row of `payments`, in [`SELECT_SESSION`] order from [`PAYMENT_OFFSET`].
pub(crate) struct PaymentRow {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub method_masked: String,
    pub customer: String,
    pub participant_details: Option<String>,
    pub metadata: Option<String>,
    pub return_url: Option<String>,
    pub plan: String,
    pub state: String,
    pub captured_amount: Option<i64>,
    pub created_at_us: i64,
    pub fee_amount: i64,
    pub three_ds_attempts: i64,
    pub recurrent: bool,
    pub token: Option<TokenRow>,
    pub finished_at_us: Option<i64>,
    pub revenue_split: Option<String>,
    pub subscription: Option<SubscriptionColumns>,
    pub card_expiry: Option<String>,
}

/// A payment's subscription columns, with the subscription's as it stands.
pub(crate) struct SubscriptionColumns {
    period: String,
    id: Option<String>,
    initial: bool,
    /// state, next point, failures, charges, anchor (absent before it exists).
    now: Option<(String, i64, i64, i64, i64)>,
}

impl SubscriptionColumns {
    /// From column `at` of a [`SELECT_SESSION`] row; `None` for a payment without one.
    fn read<C: Columns>(r: &C, at: usize) -> std::result::Result<Option<Self>, C::Error> {
        let Some(period) = r.opt_text(at)? else { return Ok(None) };
        let now = match r.opt_text(at + 4)? {
            Some(state) => Some((state, r.int(at + 5)?, r.int(at + 6)?, r.int(at + 7)?, r.int(at + 8)?)),
            None => None,
        };
        Ok(Some(Self { period, id: r.opt_text(at + 1)?, initial: r.flag(at + 2)?, now }))
    }

    fn decode(self, what: &dyn Fn() -> String) -> Result<PaymentSubscription> {
        let period = Period::parse(&self.period).ok_or_else(|| StoreError::corrupt(what(), "subscription_period"))?;
        let schedule = match self.now {
            None => None,
            Some((state, next_point_us, failures, charges, anchor_us)) => Some(Schedule {
                state: SubscriptionState::parse(&state).ok_or_else(|| StoreError::corrupt(what(), "subscription"))?,
                period,
                anchor: from_us(anchor_us)?,
                next_point: from_us(next_point_us)?,
                failures: u8::try_from(failures).map_err(|_| StoreError::corrupt(what(), "failures"))?,
                charges: u32::try_from(charges).map_err(|_| StoreError::corrupt(what(), "charges"))?,
            }),
        };
        Ok(PaymentSubscription { period, id: self.id, initial: self.initial, schedule })
    }
}

/// The recurrent token columns of a payment row.
pub(crate) struct TokenRow {
    pub token: String,
    pub created_at_us: i64,
    pub finished_at_us: i64,
    pub is_active: bool,
}

impl TokenRow {
    /// `token, created_at_us, finished_at_us, is_active` from column `at`; `None` without a token.
    pub(crate) fn read<C: Columns>(r: &C, at: usize) -> std::result::Result<Option<Self>, C::Error> {
        let Some(token) = r.opt_text(at)? else { return Ok(None) };
        Ok(Some(Self {
            token,
            created_at_us: r.opt_int(at + 1)?.unwrap_or_default(),
            finished_at_us: r.opt_int(at + 2)?.unwrap_or_default(),
            is_active: r.flag(at + 3)?,
        }))
    }

    pub(crate) fn decode(self) -> Result<RecurrentToken> {
        Ok(RecurrentToken {
            token: self.token,
            created_at: from_us(self.created_at_us)?,
            finished_at: from_us(self.finished_at_us)?,
            is_active: self.is_active,
        })
    }
}

/// Deletes a claimed timer, unless it was set again since its claim (its due
/// time is no longer the lease the claim gave it).
pub(crate) const DROP_CLAIMED_TIMER: &str =
    "DELETE FROM session_timers WHERE project_id = $1 AND session_id = $2 AND timer = $3 AND due_at_us = $4";

/// The columns [`TokenRow::read`] reads, for a lookup by token.
pub(crate) const SELECT_TOKEN: &str = "SELECT recurrent_token, recurrent_created_at_us, recurrent_finished_at_us, \
     recurrent_active FROM payments WHERE project_id = $1 AND recurrent_token = $2";

/// Disables a token; the number of rows changed (0: no such token).
pub(crate) const DISABLE_TOKEN: &str =
    "UPDATE payments SET recurrent_active = FALSE WHERE project_id = $1 AND recurrent_token = $2";

impl PaymentRow {
    /// The payment's columns of a [`SELECT_SESSION`] row; `None` when absent.
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Option<Self>, C::Error> {
        let at = |i: usize| PAYMENT_OFFSET + i;
        let Some(id) = r.opt_text(at(0))? else { return Ok(None) };
        Ok(Some(Self {
            id,
            amount: r.int(at(1))?,
            currency: r.text(at(2))?,
            method_masked: r.text(at(3))?,
            customer: r.text(at(4))?,
            participant_details: r.opt_text(at(5))?,
            metadata: r.opt_text(at(6))?,
            return_url: r.opt_text(at(7))?,
            plan: r.text(at(8))?,
            state: r.text(at(9))?,
            captured_amount: r.opt_int(at(10))?,
            created_at_us: r.int(at(11))?,
            fee_amount: r.int(at(12))?,
            three_ds_attempts: r.int(at(13))?,
            recurrent: r.flag(at(14))?,
            token: TokenRow::read(r, at(15))?,
            finished_at_us: r.opt_int(at(19))?,
            revenue_split: r.opt_text(at(20))?,
            subscription: SubscriptionColumns::read(r, at(21))?,
            card_expiry: r.opt_text(at(24))?,
        }))
    }

    fn decode(self, session: &str, refunds: &[RefundRow]) -> Result<PaymentRecord> {
        let what = || format!("{session} payment {}", self.id);
        let refunds =
            refunds.iter().filter(|r| r.payment_id == self.id).map(|r| r.decode(&what())).collect::<Result<_>>()?;
        let plan = PaymentPlan::parse_stored(&self.plan).ok_or_else(|| StoreError::corrupt(what(), "plan"))?;
        let state = payment_flow::parse_state(&self.state).ok_or_else(|| StoreError::corrupt(what(), "state"))?;
        let three_ds_attempts =
            u8::try_from(self.three_ds_attempts).map_err(|_| StoreError::corrupt(what(), "three_ds_attempts"))?;
        let split = match &self.revenue_split {
            None => None,
            Some(s) => Some(Split::parse_stored(s).ok_or_else(|| StoreError::corrupt(what(), "revenue_split"))?),
        };
        let subscription = self.subscription.map(|s| s.decode(&what)).transpose()?;
        let card_expiry = match &self.card_expiry {
            None => None,
            Some(e) => Some(CardExpiry::parse_stored(e).ok_or_else(|| StoreError::corrupt(what(), "card_expiry"))?),
        };
        Ok(PaymentRecord {
            id: self.id,
            amount: self.amount,
            currency: self.currency,
            method_masked: self.method_masked,
            customer: Personal::new(self.customer),
            participant_details: self.participant_details.map(Personal::new),
            metadata: self.metadata,
            return_url: self.return_url,
            plan,
            state,
            captured_amount: self.captured_amount,
            created_at: from_us(self.created_at_us)?,
            fee_amount: self.fee_amount,
            three_ds_attempts,
            refunds,
            recurrent: self.recurrent,
            recurrent_token: self.token.map(TokenRow::decode).transpose()?,
            finished_at: self.finished_at_us.map(from_us).transpose()?,
            split,
            subscription,
            card_expiry,
        })
    }
}

/// A row of `payment_refunds`, in [`SELECT_SESSION`] order from [`REFUND_OFFSET`].
pub(crate) struct RefundRow {
    id: String,
    payment_id: String,
    amount: i64,
    state: String,
    is_chargeback: bool,
    metadata: Option<String>,
    created_at_us: i64,
    finished_at_us: Option<i64>,
    revenue_split: Option<String>,
}

impl RefundRow {
    /// The refund's columns of a [`SELECT_SESSION`] row; `None` when absent.
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Option<Self>, C::Error> {
        let at = |i: usize| REFUND_OFFSET + i;
        let Some(id) = r.opt_text(at(0))? else { return Ok(None) };
        Ok(Some(Self {
            id,
            payment_id: r.text(at(1))?,
            amount: r.int(at(2))?,
            state: r.text(at(3))?,
            is_chargeback: r.flag(at(4))?,
            metadata: r.opt_text(at(5))?,
            created_at_us: r.int(at(6))?,
            finished_at_us: r.opt_int(at(7))?,
            revenue_split: r.opt_text(at(8))?,
        }))
    }

    fn decode(&self, payment: &str) -> Result<PaymentRefundRecord> {
        let what = || format!("{payment} refund {}", self.id);
        let state = refund_flow::parse_state(&self.state).ok_or_else(|| StoreError::corrupt(what(), "state"))?;
        Ok(PaymentRefundRecord {
            id: self.id.clone(),
            amount: self.amount,
            state,
            is_chargeback: self.is_chargeback,
            metadata: self.metadata.clone(),
            created_at: from_us(self.created_at_us)?,
            finished_at: self.finished_at_us.map(from_us).transpose()?,
            split: match &self.revenue_split {
                None => Taken::default(),
                Some(s) => Taken::parse_stored(s).ok_or_else(|| StoreError::corrupt(what(), "revenue_split"))?,
            },
        })
    }
}

/// Inserts a refund of a payment, or moves a stored one to its new state
/// (and finish time): the only things about a refund that change. `$1..$12`:
/// project, session, payment, id, amount, state, is_chargeback, metadata,
/// created, finished, seq, revenue_split.
pub(crate) const UPSERT_REFUND: &str = "INSERT INTO payment_refunds (project_id, session_id, payment_id, id, amount, \
     state, is_chargeback, metadata, created_at_us, finished_at_us, seq, revenue_split) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (project_id, id) DO UPDATE SET state = excluded.state, finished_at_us = excluded.finished_at_us, \
     revenue_split = excluded.revenue_split";

/// The values of a refund row, in [`UPSERT_REFUND`]'s order after the project and session ids.
pub(crate) struct RefundValues<'a> {
    pub payment_id: &'a str,
    pub id: &'a str,
    pub amount: i64,
    pub state: String,
    pub is_chargeback: bool,
    pub metadata: Option<&'a str>,
    pub created_at_us: i64,
    pub finished_at_us: Option<i64>,
    pub seq: i64,
    pub revenue_split: Option<String>,
}

impl<'a> RefundValues<'a> {
    /// Every refund of the session's payments.
    pub(crate) fn of(record: &'a SessionRecord) -> Vec<Self> {
        let each = |p: &'a PaymentRecord| {
            p.refunds.iter().zip(0..).map(move |(r, seq)| Self {
                payment_id: &p.id,
                id: &r.id,
                amount: r.amount,
                state: refund_flow::state_name(r.state),
                is_chargeback: r.is_chargeback,
                metadata: r.metadata.as_deref(),
                created_at_us: to_us(r.created_at),
                finished_at_us: r.finished_at.map(to_us),
                seq,
                revenue_split: (!r.split.0.is_empty()).then(|| r.split.stored()),
            })
        };
        record.payments.iter().flat_map(each).collect()
    }
}

/// The values of a payment row, in [`UPSERT_PAYMENT`]'s order (after the project and session ids).
pub(crate) struct PaymentValues<'a> {
    pub id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub method_masked: &'a str,
    pub customer: &'a str,
    pub participant_details: Option<&'a str>,
    pub metadata: Option<&'a str>,
    pub return_url: Option<&'a str>,
    pub plan: String,
    pub state: String,
    pub captured_amount: Option<i64>,
    pub created_at_us: i64,
    pub fee_amount: i64,
    pub three_ds_attempts: i64,
    pub recurrent: bool,
    pub recurrent_token: Option<&'a str>,
    pub recurrent_created_at_us: Option<i64>,
    pub recurrent_finished_at_us: Option<i64>,
    pub finished_at_us: Option<i64>,
    pub revenue_split: Option<String>,
    pub subscription_period: Option<&'static str>,
    pub subscription_id: Option<&'a str>,
    pub subscription_initial: bool,
    pub card_expiry: Option<String>,
}

impl<'a> PaymentValues<'a> {
    pub(crate) fn of(p: &'a PaymentRecord) -> Self {
        Self {
            id: &p.id,
            amount: p.amount,
            currency: &p.currency,
            method_masked: &p.method_masked,
            customer: p.customer.expose(),
            participant_details: p.participant_details.as_ref().map(|d| d.expose().as_str()),
            metadata: p.metadata.as_deref(),
            return_url: p.return_url.as_deref(),
            plan: p.plan.as_stored(),
            state: payment_flow::state_name(p.state),
            captured_amount: p.captured_amount,
            created_at_us: to_us(p.created_at),
            fee_amount: p.fee_amount,
            three_ds_attempts: i64::from(p.three_ds_attempts),
            recurrent: p.recurrent,
            recurrent_token: p.recurrent_token.as_ref().map(|t| t.token.as_str()),
            recurrent_created_at_us: p.recurrent_token.as_ref().map(|t| to_us(t.created_at)),
            recurrent_finished_at_us: p.recurrent_token.as_ref().map(|t| to_us(t.finished_at)),
            finished_at_us: p.finished_at.map(to_us),
            revenue_split: p.split.as_ref().map(Split::stored),
            subscription_period: p.subscription.as_ref().map(|s| s.period.as_str()),
            subscription_id: p.subscription.as_ref().and_then(|s| s.id.as_deref()),
            subscription_initial: p.subscription.as_ref().is_none_or(|s| s.initial),
            card_expiry: p.card_expiry.as_ref().map(CardExpiry::stored),
        }
    }
}

/// Inserts a payment of a session, or moves a stored one to its new state
/// (with what its capture took, its fee, the 3-D Secure codes tried and the
/// token it issued): the only things about a payment that change. A token's
/// activity is never written here: only `recurrent/disable` changes it.
pub(crate) const UPSERT_PAYMENT: &str = "INSERT INTO payments (project_id, session_id, id, amount, currency, \
     method_masked, customer, participant_details, metadata, return_url, plan, state, captured_amount, created_at_us, \
     fee_amount, three_ds_attempts, recurrent, recurrent_token, recurrent_created_at_us, recurrent_finished_at_us, \
     finished_at_us, revenue_split, subscription_period, subscription_id, subscription_initial, card_expiry) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
     $23, $24, $25, $26) \
     ON CONFLICT (project_id, id) DO UPDATE SET state = excluded.state, captured_amount = excluded.captured_amount, \
     fee_amount = excluded.fee_amount, three_ds_attempts = excluded.three_ds_attempts, \
     recurrent_token = excluded.recurrent_token, recurrent_created_at_us = excluded.recurrent_created_at_us, \
     recurrent_finished_at_us = excluded.recurrent_finished_at_us, finished_at_us = excluded.finished_at_us, \
     revenue_split = excluded.revenue_split, subscription_id = excluded.subscription_id";

/// The values of a new payout row, in the INSERT's order (after the project
/// and session ids).
pub(crate) struct PayoutValues<'a> {
    pub id: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub method_masked: &'a str,
    pub participant_details: &'a str,
    pub customer: Option<&'a str>,
    pub metadata: Option<&'a str>,
    pub plan: String,
    pub state: String,
    pub created_at_us: i64,
    pub charged_amount: Option<i64>,
    pub charged_currency: Option<&'a str>,
    pub fx_rate_millionths: Option<i64>,
    pub confirm_information: Option<&'a str>,
    pub finished_at_us: Option<i64>,
    pub fiscalization: Option<&'a str>,
    /// The self-employed person's INN, alone (the yearly income is summed by it).
    pub fiscal_inn: Option<String>,
    pub receipt: Option<String>,
}

impl<'a> PayoutValues<'a> {
    pub(crate) fn of(p: &'a PayoutRecord) -> Self {
        Self {
            id: &p.id,
            amount: p.amount,
            currency: &p.currency,
            method_masked: &p.method_masked,
            participant_details: p.participant_details.expose(),
            customer: p.customer.as_deref(),
            metadata: p.metadata.as_deref(),
            plan: p.plan.as_stored(),
            state: payout_flow::state_name(p.state),
            created_at_us: to_us(p.created_at),
            charged_amount: p.exchange.as_ref().map(|e| e.charged_amount),
            charged_currency: p.exchange.as_ref().map(|e| e.charged_currency.as_str()),
            fx_rate_millionths: p.exchange.as_ref().map(|e| e.rate.millionths()),
            confirm_information: p.confirm_information.as_ref().map(|c| c.expose().as_str()),
            finished_at_us: p.finished_at.map(to_us),
            fiscalization: p.fiscalization.as_ref().map(|f| f.expose().as_str()),
            fiscal_inn: p
                .fiscalization
                .as_ref()
                .and_then(|f| open131_domain::fiscal::Fiscalization::parse_stored(f.expose()))
                .map(|f| f.tax_reference.expose().to_string()),
            receipt: p.receipt.as_ref().map(receipt_text),
        }
    }
}

/// Inserts a payout of a session, or moves a stored one on: its state, and
/// its fiscalization and receipt (registered later, or tried again). SQLite's; PostgreSQL writes payouts
/// inside its one-statement session change.
pub(crate) const INSERT_PAYOUT: &str = "INSERT INTO payouts (project_id, session_id, id, amount, currency, \
     method_masked, participant_details, customer, metadata, plan, created_at_us, state, charged_amount, \
     charged_currency, fx_rate_millionths, confirm_information, finished_at_us, fiscalization, fiscal_inn, receipt) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
     ON CONFLICT (project_id, id) DO UPDATE SET state = excluded.state, finished_at_us = excluded.finished_at_us, \
     fiscalization = excluded.fiscalization, fiscal_inn = excluded.fiscal_inn, receipt = excluded.receipt";

/// A receipt as stored: `<state> <attempts> <changed_at_us>[ <cancel reason>]`.
pub(crate) fn receipt_text(r: &Receipt) -> String {
    let reason = r.cancel_reason.map(|c| format!(" {}", c.as_str())).unwrap_or_default();
    format!("{} {} {}{reason}", r.state.as_str(), r.attempts, to_us(r.changed_at))
}

/// Reads back [`receipt_text`].
fn parse_receipt(text: &str) -> Result<Receipt> {
    let corrupt = || StoreError::corrupt("a payout's receipt", "receipt");
    let mut parts = text.split(' ');
    let state = parts.next().and_then(ReceiptState::parse).ok_or_else(corrupt)?;
    let attempts = parts.next().and_then(|a| a.parse().ok()).ok_or_else(corrupt)?;
    let changed_at = parts.next().and_then(|a| a.parse().ok()).ok_or_else(corrupt)?;
    let cancel_reason = match parts.next() {
        None => None,
        Some(reason) => Some(CancelReason::parse(reason).ok_or_else(corrupt)?),
    };
    Ok(Receipt { state, attempts, changed_at: from_us(changed_at)?, cancel_reason })
}

pub(crate) const WALLET_COLUMNS: &str =
    "book, currency, available, reserved, payouts, funding, exchange, held, acquiring, fees, contractors";

/// Creates a project's wallet in a book and currency (`$1..$3`), empty, if
/// it is not there yet.
pub(crate) const WALLET_CREATE: &str = "INSERT INTO wallets (project_id, book, currency) VALUES ($1, $2, $3) \
     ON CONFLICT (project_id, book, currency) DO NOTHING";

/// One movement's change of a wallet, both backends' text: `$1..$9` one delta
/// per account in [`Account::ALL`] order ([`wallet_deltas`]), then the
/// project, book and currency; guarded so no account that must stay
/// non-negative goes below zero (none changes then). Placeholders first appear
/// in numeric order: SQLite numbers `$N` parameters by first appearance.
pub(crate) const WALLET_UPDATE: &str = "UPDATE wallets SET available = available + $1, reserved = reserved + $2, \
     funding = funding + $3, payouts = payouts + $4, exchange = exchange + $5, held = held + $6, \
     acquiring = acquiring + $7, fees = fees + $8, contractors = contractors + $9 \
     WHERE project_id = $10 AND book = $11 AND currency = $12 \
       AND available + $1 >= 0 AND reserved + $2 >= 0 AND payouts + $4 >= 0 AND held + $6 >= 0 \
       AND contractors + $9 >= 0";

/// Makes sure a contractor's wallet exists (`$1..$4`: project, book,
/// currency, alias), so the update below finds it.
pub(crate) const CONTRACTOR_WALLET_CREATE: &str = "INSERT INTO contractor_wallets (project_id, book, currency, alias) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, book, currency, alias) DO NOTHING";

/// A split movement's change of its contractor's wallet (`$1` the delta,
/// then project, book, currency, alias), guarded so it never goes below zero.
pub(crate) const CONTRACTOR_WALLET_UPDATE: &str = "UPDATE contractor_wallets SET balance = balance + $1 \
     WHERE project_id = $2 AND book = $3 AND currency = $4 AND alias = $5 AND balance + $1 >= 0";

/// A project's contractors' wallets, by book, currency and alias.
pub(crate) const CONTRACTOR_WALLETS: &str = "SELECT book, currency, alias, balance FROM contractor_wallets \
     WHERE project_id = $1 ORDER BY book, currency, alias";

/// The per-account sums of a movement's postings, in [`Account::ALL`] order
/// (the order of [`WALLET_UPDATE`]'s deltas).
pub(crate) fn wallet_deltas(pair: &[Posting]) -> [i64; 9] {
    Account::ALL.map(|account| pair.iter().filter(|p| p.account == account).map(|p| p.amount).sum())
}

/// A row of `wallets`, in [`WALLET_COLUMNS`] order.
pub(crate) struct WalletRow {
    book: String,
    record: WalletRecord,
}

impl WalletRow {
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            book: r.text(0)?,
            record: WalletRecord {
                book: Book::Main,
                currency: r.text(1)?,
                available: r.int(2)?,
                reserved: r.int(3)?,
                payouts: r.int(4)?,
                funding: r.int(5)?,
                exchange: r.int(6)?,
                held: r.int(7)?,
                acquiring: r.int(8)?,
                fees: r.int(9)?,
                contractors: r.int(10)?,
            },
        })
    }

    pub(crate) fn decode(self) -> Result<WalletRecord> {
        let what = || format!("wallet {}/{}", self.book, self.record.currency);
        let book = Book::parse(&self.book).ok_or_else(|| StoreError::corrupt(what(), "book"))?;
        Ok(WalletRecord { book, ..self.record })
    }
}

/// A row of [`CONTRACTOR_WALLETS`].
pub(crate) fn contractor_wallet<C: Columns>(r: &C) -> std::result::Result<Result<ContractorWalletRecord>, C::Error> {
    let book = r.text(0)?;
    let (currency, alias, balance) = (r.text(1)?, r.text(2)?, r.int(3)?);
    Ok(match Book::parse(&book) {
        Some(book) => Ok(ContractorWalletRecord { book, currency, alias, balance }),
        None => Err(StoreError::corrupt(format!("contractor wallet {alias}"), "book")),
    })
}

pub(crate) const POSTING_COLUMNS: &str = "id, movement, account, amount, session_id, created_at_us";

/// A register's postings of one wallet and day, with their operations' facts
/// (`$1` project, `$2` book, `$3` currency, `$4`..`$5` the day, `$6`/`$7`
/// the time and id after which to read, `$8` the page's size); the same
/// text serves both backends. The page's start is written as a range on the
/// time (which the wallet index serves) and a filter on the id, so every
/// page seeks rather than scanning the day from its start.
pub(crate) fn register_sql(register: open131_domain::reports::Register) -> String {
    let pairs = register.postings();
    let quoted = |names: Vec<&str>| names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let movements = quoted(pairs.iter().map(|(m, _)| m.as_str()).collect());
    let accounts = quoted(pairs.iter().map(|(_, a)| *a).collect());
    format!(
        "SELECT lp.id, lp.movement, lp.amount, lp.session_id, lp.operation_id, lp.created_at_us,
                COALESCE(po.created_at_us, pm.created_at_us), COALESCE(po.method_masked, pm.method_masked),
                COALESCE(rf.metadata, po.metadata, pm.metadata), COALESCE(pm.fee_amount, 0),
                pm.captured_amount IS NOT NULL, (pm.subscription_id IS NOT NULL AND NOT pm.subscription_initial),
                rf.payment_id
         FROM ledger_postings lp
         LEFT JOIN payouts po ON po.project_id = lp.project_id AND po.id = lp.operation_id
         LEFT JOIN payment_refunds rf ON rf.project_id = lp.project_id AND rf.id = lp.operation_id
         LEFT JOIN payments pm ON pm.project_id = lp.project_id AND pm.id = COALESCE(rf.payment_id, lp.operation_id)
         WHERE lp.project_id = $1 AND lp.book = $2 AND lp.currency = $3
           AND lp.created_at_us >= $4 AND lp.created_at_us < $5
           AND lp.created_at_us >= $6 AND (lp.created_at_us > $6 OR lp.id > $7)
           AND lp.movement IN ({movements}) AND lp.account IN ({accounts})
         ORDER BY lp.created_at_us, lp.id LIMIT $8"
    )
}

/// A row of [`register_sql`].
pub(crate) struct RegisterRow {
    id: i64,
    movement: String,
    amount: i64,
    session_id: Option<String>,
    operation_id: Option<String>,
    at_us: i64,
    created_at_us: Option<i64>,
    method_masked: Option<String>,
    metadata: Option<String>,
    fee_amount: i64,
    partial: bool,
    recurrent: bool,
    payment_id: Option<String>,
}

impl RegisterRow {
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            id: r.int(0)?,
            movement: r.text(1)?,
            amount: r.int(2)?,
            session_id: r.opt_text(3)?,
            operation_id: r.opt_text(4)?,
            at_us: r.int(5)?,
            created_at_us: r.opt_int(6)?,
            method_masked: r.opt_text(7)?,
            metadata: r.opt_text(8)?,
            fee_amount: r.int(9)?,
            partial: r.flag(10)?,
            recurrent: r.flag(11)?,
            payment_id: r.opt_text(12)?,
        })
    }

    pub(crate) fn decode(self, book: Book, currency: &str) -> Result<open131_domain::reports::RegisterPosting> {
        let what = || format!("posting {}", self.id);
        let movement = open131_domain::ledger::Movement::parse(&self.movement)
            .ok_or_else(|| StoreError::corrupt(what(), "movement"))?;
        let operation = match (self.created_at_us, self.method_masked) {
            (Some(created), Some(method_masked)) => Some(open131_domain::reports::OperationFacts {
                created_at: Some(from_us(created)?),
                method_masked,
                metadata: self.metadata,
                fee_amount: self.fee_amount,
                partial: self.partial,
                recurrent: self.recurrent,
                payment_id: self.payment_id,
            }),
            _ => None,
        };
        Ok(open131_domain::reports::RegisterPosting {
            posting_id: self.id,
            book,
            currency: currency.to_string(),
            movement,
            amount: self.amount,
            at: from_us(self.at_us)?,
            session_id: self.session_id,
            operation_id: self.operation_id,
            operation,
        })
    }
}

/// A posting with its wallet: [`POSTING_COLUMNS`], then book and currency.
pub(crate) const SESSION_POSTING_COLUMNS: &str =
    "id, movement, account, amount, session_id, created_at_us, book, currency";

/// A row of `ledger_postings` in [`SESSION_POSTING_COLUMNS`] order.
pub(crate) struct SessionPostingRow {
    posting: PostingRow,
    book: String,
    currency: String,
}

impl SessionPostingRow {
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self { posting: PostingRow::read(r)?, book: r.text(6)?, currency: r.text(7)? })
    }

    pub(crate) fn decode(self) -> Result<SessionPostingRecord> {
        let book = Book::parse(&self.book)
            .ok_or_else(|| StoreError::corrupt(format!("posting {}", self.posting.id), "book"))?;
        Ok(SessionPostingRecord { book, currency: self.currency, posting: self.posting.decode()? })
    }
}

/// A row of `ledger_postings`, in [`POSTING_COLUMNS`] order.
pub(crate) struct PostingRow {
    id: i64,
    movement: String,
    account: String,
    amount: i64,
    session_id: Option<String>,
    created_at_us: i64,
}

impl PostingRow {
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            id: r.int(0)?,
            movement: r.text(1)?,
            account: r.text(2)?,
            amount: r.int(3)?,
            session_id: r.opt_text(4)?,
            created_at_us: r.int(5)?,
        })
    }

    pub(crate) fn decode(self) -> Result<PostingRecord> {
        Ok(PostingRecord {
            id: self.id,
            movement: self.movement,
            account: self.account,
            amount: self.amount,
            session_id: self.session_id,
            created_at: from_us(self.created_at_us)?,
        })
    }
}

pub(crate) const RATE_COLUMNS: &str = "currency, rate_millionths";

pub(crate) fn decode_rate(currency: String, millionths: i64) -> Result<(String, FxRate)> {
    let rate = FxRate::from_millionths(millionths)
        .ok_or_else(|| StoreError::corrupt(format!("rate of {currency}"), "rate_millionths"))?;
    Ok((currency, rate))
}

pub(crate) fn due_timer(project_id: String, session_id: String, timer: &str) -> Result<DueTimer> {
    let timer = Timer::parse(timer).ok_or_else(|| StoreError::corrupt(format!("timer {timer:?}"), "unknown"))?;
    Ok(DueTimer { project_id, session_id, timer })
}

pub(crate) const WEBHOOK_COLUMNS: &str = "id, project_id, subject_id, type, body, created_at_us, state, attempts, \
     next_attempt_at_us, last_status, last_error, delivered_at_us, attempts_base, subject_kind";

/// A row of `webhooks`, in [`WEBHOOK_COLUMNS`] order.
pub(crate) struct WebhookRow {
    pub id: i64,
    pub project_id: String,
    pub subject_id: String,
    pub kind: String,
    pub body: Vec<u8>,
    pub created_at_us: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at_us: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at_us: Option<i64>,
    pub attempts_base: i64,
    pub subject_kind: String,
}

impl WebhookRow {
    /// The row in [`WEBHOOK_COLUMNS`] order.
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            id: r.int(0)?,
            project_id: r.text(1)?,
            subject_id: r.text(2)?,
            kind: r.text(3)?,
            body: r.bytes(4)?,
            created_at_us: r.int(5)?,
            state: r.text(6)?,
            attempts: r.int(7)?,
            next_attempt_at_us: r.int(8)?,
            last_status: r.opt_int(9)?,
            last_error: r.opt_text(10)?,
            delivered_at_us: r.opt_int(11)?,
            attempts_base: r.int(12)?,
            subject_kind: r.text(13)?,
        })
    }

    pub(crate) fn decode(self) -> Result<WebhookRecord> {
        let state = match self.state.as_str() {
            "pending" => WebhookState::Pending,
            "delivered" => WebhookState::Delivered,
            "failed" => WebhookState::Failed,
            _ => return Err(StoreError::corrupt(format!("webhook {}", self.id), "state")),
        };
        let subject_kind = SubjectKind::parse(&self.subject_kind)
            .ok_or_else(|| StoreError::corrupt(format!("webhook {}", self.id), "subject_kind"))?;
        Ok(WebhookRecord {
            id: self.id,
            project_id: self.project_id,
            subject_kind,
            subject_id: self.subject_id,
            kind: self.kind,
            body: self.body,
            created_at: from_us(self.created_at_us)?,
            state,
            attempts: self.attempts,
            attempts_base: self.attempts_base,
            next_attempt_at: from_us(self.next_attempt_at_us)?,
            last_status: self.last_status,
            last_error: self.last_error,
            delivered_at: self.delivered_at_us.map(from_us).transpose()?,
        })
    }
}

/// How a recorded attempt leaves its webhook: state, next attempt, delivery time.
pub(crate) fn attempt_outcome(a: &crate::AttemptResult) -> (&'static str, i64, Option<i64>) {
    match (a.next_attempt_at, a.gave_up) {
        (Some(next), _) => ("pending", to_us(next), None),
        (None, true) => ("failed", to_us(a.at), None),
        (None, false) => ("delivered", to_us(a.at), Some(to_us(a.at))),
    }
}

/// One attempt's result, in one statement: the attempt counted and the
/// webhook settled (`$3` state, `$4` next attempt, `$5` status, `$6` error,
/// `$7` delivery time), only if no other claim recorded a result since this
/// one's (`$2`, the attempts it was claimed at); returns the attempt's number.
pub(crate) const SETTLE_ATTEMPT: &str = "UPDATE webhooks SET attempts = attempts + 1, state = $3, \
     next_attempt_at_us = $4, last_status = $5, last_error = $6, delivered_at_us = COALESCE($7, delivered_at_us), \
     leased_until_us = NULL WHERE id = $1 AND attempts = $2 RETURNING attempts";

/// Whether webhook `$1`'s project has a URL now (parking reads it in its own
/// write transaction; PostgreSQL adds a share lock on the project row).
pub(crate) const WEBHOOK_PROJECT_HAS_URL: &str = "SELECT p.webhook_url IS NOT NULL FROM projects p \
     JOIN webhooks w ON w.project_id = p.id WHERE w.id = $1";

/// How parking leaves a webhook (next attempt, error), given whether its
/// project has a URL by now: one set since the claim released every parked
/// webhook but this leased one, so it is made due at once instead of waiting
/// for the hourly re-check.
pub(crate) fn parking(a: &crate::AttemptResult, project_has_url: bool) -> (i64, Option<&str>) {
    if project_has_url {
        (to_us(a.at), None)
    } else {
        (a.next_attempt_at.map_or(to_us(a.at), to_us), a.error.as_deref())
    }
}

/// A subscription's columns, in order (the INSERT's and the reads').
pub(crate) const SUBSCRIPTION_COLUMNS: &str = "project_id, id, version, state, period, next_point_us, failures, \
     charges, amount, currency, method_masked, card_expiry, customer, metadata, api_version, first_session_id, \
     created_at_us, updated_at_us, anchor_us, submerchant";

pub(crate) const INSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions (project_id, id, version, state, period, \
     next_point_us, failures, charges, amount, currency, method_masked, card_expiry, customer, metadata, api_version, \
     first_session_id, created_at_us, updated_at_us, anchor_us, submerchant) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";

/// A subscription's change (its lease ends with it): `$1` the version it was
/// read at, then state, next point, failures, charges, updated, project, id.
pub(crate) const UPDATE_SUBSCRIPTION: &str = "UPDATE subscriptions SET version = $1 + 1, state = $2, \
     next_point_us = $3, failures = $4, charges = $5, updated_at_us = $6, lease_until_us = NULL \
     WHERE project_id = $7 AND id = $8 AND version = $1";

/// The values of a subscription row, in [`INSERT_SUBSCRIPTION`]'s order.
pub(crate) struct SubscriptionValues<'a> {
    pub project_id: &'a str,
    pub id: &'a str,
    pub state: &'static str,
    pub period: &'static str,
    pub next_point_us: i64,
    pub failures: i64,
    pub charges: i64,
    pub amount: i64,
    pub currency: &'a str,
    pub method_masked: &'a str,
    pub card_expiry: Option<String>,
    pub customer: &'a str,
    pub metadata: Option<&'a str>,
    pub api_version: &'static str,
    pub first_session_id: &'a str,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub anchor_us: i64,
    pub submerchant: Option<&'a str>,
}

impl<'a> SubscriptionValues<'a> {
    pub(crate) fn of(s: &'a SubscriptionRecord) -> Self {
        Self {
            project_id: &s.project_id,
            id: &s.id,
            state: s.schedule.state.as_str(),
            period: s.schedule.period.as_str(),
            next_point_us: to_us(s.schedule.next_point),
            failures: i64::from(s.schedule.failures),
            charges: i64::from(s.schedule.charges),
            amount: s.amount,
            currency: &s.currency,
            method_masked: &s.method_masked,
            card_expiry: s.card_expiry.as_ref().map(CardExpiry::stored),
            customer: s.customer.expose(),
            metadata: s.metadata.as_deref(),
            api_version: s.api_version.as_str(),
            first_session_id: &s.first_session_id,
            created_at_us: to_us(s.created_at),
            updated_at_us: to_us(s.updated_at),
            anchor_us: to_us(s.schedule.anchor),
            submerchant: s.submerchant.as_deref(),
        }
    }
}

/// A row in [`SUBSCRIPTION_COLUMNS`] order.
pub(crate) struct SubscriptionRow {
    project_id: String,
    id: String,
    version: i64,
    state: String,
    period: String,
    next_point_us: i64,
    failures: i64,
    charges: i64,
    amount: i64,
    currency: String,
    method_masked: String,
    card_expiry: Option<String>,
    customer: String,
    metadata: Option<String>,
    api_version: String,
    first_session_id: String,
    created_at_us: i64,
    updated_at_us: i64,
    anchor_us: i64,
    submerchant: Option<String>,
}

impl SubscriptionRow {
    pub(crate) fn read<C: Columns>(r: &C) -> std::result::Result<Self, C::Error> {
        Ok(Self {
            project_id: r.text(0)?,
            id: r.text(1)?,
            version: r.int(2)?,
            state: r.text(3)?,
            period: r.text(4)?,
            next_point_us: r.int(5)?,
            failures: r.int(6)?,
            charges: r.int(7)?,
            amount: r.int(8)?,
            currency: r.text(9)?,
            method_masked: r.text(10)?,
            card_expiry: r.opt_text(11)?,
            customer: r.text(12)?,
            metadata: r.opt_text(13)?,
            api_version: r.text(14)?,
            first_session_id: r.text(15)?,
            created_at_us: r.int(16)?,
            updated_at_us: r.int(17)?,
            anchor_us: r.int(18)?,
            submerchant: r.opt_text(19)?,
        })
    }

    pub(crate) fn decode(self) -> Result<SubscriptionRecord> {
        let what = || format!("subscription {}", self.id);
        let schedule = Schedule {
            state: SubscriptionState::parse(&self.state).ok_or_else(|| StoreError::corrupt(what(), "state"))?,
            period: Period::parse(&self.period).ok_or_else(|| StoreError::corrupt(what(), "period"))?,
            anchor: from_us(self.anchor_us)?,
            next_point: from_us(self.next_point_us)?,
            failures: u8::try_from(self.failures).map_err(|_| StoreError::corrupt(what(), "failures"))?,
            charges: u32::try_from(self.charges).map_err(|_| StoreError::corrupt(what(), "charges"))?,
        };
        let card_expiry = match &self.card_expiry {
            None => None,
            Some(e) => Some(CardExpiry::parse_stored(e).ok_or_else(|| StoreError::corrupt(what(), "card_expiry"))?),
        };
        let api_version =
            ApiVersion::parse(&self.api_version).ok_or_else(|| StoreError::corrupt(what(), "api_version"))?;
        Ok(SubscriptionRecord {
            api_version,
            schedule,
            card_expiry,
            customer: Personal::new(self.customer),
            created_at: from_us(self.created_at_us)?,
            updated_at: from_us(self.updated_at_us)?,
            project_id: self.project_id,
            id: self.id,
            version: self.version,
            amount: self.amount,
            currency: self.currency,
            method_masked: self.method_masked,
            metadata: self.metadata,
            first_session_id: self.first_session_id,
            submerchant: self.submerchant,
        })
    }
}

pub(crate) const INSERT_PUBLIC_TOKEN: &str = "INSERT INTO public_tokens (token, project_id, grant_widgets, \
     created_at_us, expires_at_us, used_at_us) VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const SELECT_PUBLIC_TOKEN: &str = "SELECT token, project_id, grant_widgets, created_at_us, \
     expires_at_us, used_at_us FROM public_tokens WHERE project_id = $1 AND token = $2";

/// A row of [`SELECT_PUBLIC_TOKEN`].
pub(crate) fn public_token<C: Columns>(r: &C) -> std::result::Result<Result<PublicTokenRecord>, C::Error> {
    let (token, project_id, grant) = (r.text(0)?, r.text(1)?, r.text(2)?);
    let (created, expires, used) = (r.int(3)?, r.int(4)?, r.opt_int(5)?);
    let decode = || -> Result<PublicTokenRecord> {
        let grant = WidgetGrant::parse_stored(&grant).ok_or_else(|| StoreError::corrupt("a public token", "grant"))?;
        Ok(PublicTokenRecord {
            token,
            project_id,
            grant,
            created_at: from_us(created)?,
            expires_at: from_us(expires)?,
            used_at: used.map(from_us).transpose()?,
        })
    };
    Ok(decode())
}

pub(crate) const INSERT_VAULT_CARD: &str = "INSERT INTO vault_cards (project_id, number_hash, key_id, nonce, \
     ciphertext, brand, bin, last4, card_expiry, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (project_id, number_hash) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, \
     ciphertext = excluded.ciphertext, card_expiry = excluded.card_expiry";

pub(crate) const SELECT_VAULT_CARD: &str = "SELECT project_id, number_hash, key_id, nonce, ciphertext, brand, bin, \
     last4, card_expiry, created_at_us FROM vault_cards WHERE project_id = $1 AND number_hash = $2";

/// A row of [`SELECT_VAULT_CARD`].
pub(crate) fn vault_card<C: Columns>(r: &C) -> std::result::Result<Result<VaultCardRecord>, C::Error> {
    let (project_id, number_hash, key_id) = (r.text(0)?, r.text(1)?, r.text(2)?);
    let (nonce, ciphertext) = (r.bytes(3)?, r.bytes(4)?);
    let (brand, bin, last4, expiry, created) = (r.text(5)?, r.text(6)?, r.text(7)?, r.opt_text(8)?, r.int(9)?);
    let decode = || -> Result<VaultCardRecord> {
        let card_expiry = match &expiry {
            None => None,
            Some(e) => {
                Some(CardExpiry::parse_stored(e).ok_or_else(|| StoreError::corrupt("a vault card", "card_expiry"))?)
            }
        };
        Ok(VaultCardRecord {
            project_id,
            number_hash,
            key_id,
            nonce,
            ciphertext,
            brand,
            bin,
            last4,
            card_expiry,
            created_at: from_us(created)?,
        })
    };
    Ok(decode())
}

pub(crate) const INSERT_VAULT_ACCOUNT: &str = "INSERT INTO vault_accounts (project_id, token, key_id, nonce, \
     ciphertext, bik, masked_account, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (project_id, token) DO NOTHING";

pub(crate) const SELECT_VAULT_ACCOUNT: &str = "SELECT project_id, token, key_id, nonce, ciphertext, bik, \
     masked_account, created_at_us FROM vault_accounts WHERE project_id = $1 AND token = $2";

/// A row of [`SELECT_VAULT_ACCOUNT`].
pub(crate) fn vault_account<C: Columns>(r: &C) -> std::result::Result<Result<VaultAccountRecord>, C::Error> {
    let (project_id, token, key_id, nonce, ciphertext) = (r.text(0)?, r.text(1)?, r.text(2)?, r.bytes(3)?, r.bytes(4)?);
    let (bik, masked_account, created) = (r.text(5)?, r.text(6)?, r.int(7)?);
    Ok(from_us(created).map(|created_at| VaultAccountRecord {
        project_id,
        token,
        key_id,
        nonce,
        ciphertext,
        bik,
        masked_account,
        created_at,
    }))
}

/// Every sealed item under another key than `$1`, cards then accounts, at most `$2`.
pub(crate) const SEALED_ITEMS: &str = "SELECT 'card', project_id, number_hash, key_id, nonce, ciphertext \
     FROM vault_cards WHERE key_id <> $1 \
     UNION ALL SELECT 'account', project_id, token, key_id, nonce, ciphertext FROM vault_accounts WHERE key_id <> $1 \
     LIMIT $2";

pub(crate) const RESEAL_CARD: &str =
    "UPDATE vault_cards SET key_id = $1, nonce = $2, ciphertext = $3 WHERE project_id = $4 AND number_hash = $5";
pub(crate) const RESEAL_ACCOUNT: &str =
    "UPDATE vault_accounts SET key_id = $1, nonce = $2, ciphertext = $3 WHERE project_id = $4 AND token = $5";

/// A row of [`SEALED_ITEMS`].
pub(crate) fn sealed_item<C: Columns>(r: &C) -> std::result::Result<SealedItem, C::Error> {
    let kind = if r.text(0)? == "card" { VaultKind::Card } else { VaultKind::Account };
    Ok(SealedItem {
        kind,
        project_id: r.text(1)?,
        name: r.text(2)?,
        key_id: r.text(3)?,
        nonce: r.bytes(4)?,
        ciphertext: r.bytes(5)?,
    })
}

pub(crate) const SELECT_PUBLIC_TOKEN_BY_VALUE: &str = "SELECT token, project_id, grant_widgets, created_at_us, \
     expires_at_us, used_at_us FROM public_tokens WHERE token = $1";

/// Uses a token once (`$1` now, `$2` the token; SQLite numbers placeholders
/// by first appearance): the one write that decides it.
pub(crate) const USE_PUBLIC_TOKEN: &str = "UPDATE public_tokens SET used_at_us = $1 \
     WHERE token = $2 AND used_at_us IS NULL AND expires_at_us > $1 \
     RETURNING token, project_id, grant_widgets, created_at_us, expires_at_us, used_at_us";

pub(crate) const SELECT_NPD_LINK: &str =
    "SELECT project_id, inn, state, version, updated_at_us FROM npd_links WHERE project_id = $1 AND inn = $2";

/// A new link; a row already there (another change came first) is left as it is.
pub(crate) const INSERT_NPD_LINK: &str = "INSERT INTO npd_links (project_id, inn, state, version, updated_at_us) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, inn) DO NOTHING";

/// A link's change, if its row still stands at the version read (`$6`).
pub(crate) const UPDATE_NPD_LINK: &str = "UPDATE npd_links SET state = $1, version = $2, updated_at_us = $3 \
     WHERE project_id = $4 AND inn = $5 AND version = $6";

/// A row of [`SELECT_NPD_LINK`].
pub(crate) fn npd_link<C: Columns>(r: &C) -> std::result::Result<Result<NpdLinkRecord>, C::Error> {
    let (project_id, inn, state) = (r.text(0)?, r.text(1)?, r.text(2)?);
    let (version, updated) = (r.int(3)?, r.int(4)?);
    let decode = || -> Result<NpdLinkRecord> {
        let state = open131_domain::npd_link::LinkState::parse_stored(&state)
            .ok_or_else(|| StoreError::corrupt("a self-employed link", "state"))?;
        Ok(NpdLinkRecord { project_id, inn, state, version, updated_at: from_us(updated)? })
    };
    Ok(decode())
}

pub(crate) const INSERT_NPD_REQUEST: &str = "INSERT INTO npd_requests (project_id, id, inn, kind, answer, \
     created_at_us, ready_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const SELECT_NPD_REQUEST: &str = "SELECT project_id, id, inn, kind, answer, created_at_us, ready_at_us \
     FROM npd_requests WHERE project_id = $1 AND id = $2";

/// A row of [`SELECT_NPD_REQUEST`].
pub(crate) fn npd_request<C: Columns>(r: &C) -> std::result::Result<Result<NpdRequestRecord>, C::Error> {
    let (project_id, id, inn, kind, answer) = (r.text(0)?, r.text(1)?, r.text(2)?, r.text(3)?, r.text(4)?);
    let (created, ready) = (r.int(5)?, r.int(6)?);
    let decode = || -> Result<NpdRequestRecord> {
        let kind = NpdRequestKind::parse_stored(&kind).ok_or_else(|| StoreError::corrupt("an NPD request", "kind"))?;
        let answer = open131_domain::npd::NpdAnswer::parse_stored(&answer)
            .ok_or_else(|| StoreError::corrupt("an NPD request", "answer"))?;
        Ok(NpdRequestRecord {
            project_id,
            id,
            inn,
            kind,
            answer,
            created_at: from_us(created)?,
            ready_at: from_us(ready)?,
        })
    };
    Ok(decode())
}

pub(crate) const SELECT_NPD_TAXPAYER: &str =
    "SELECT status, full_name, phone, service_error, receipt_refusals FROM npd_taxpayers WHERE inn = $1";

/// The operator's word on a person, replacing any earlier one.
pub(crate) const UPSERT_NPD_TAXPAYER: &str = "INSERT INTO npd_taxpayers (inn, status, full_name, phone, \
     service_error, updated_at_us, receipt_refusals) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (inn) \
     DO UPDATE SET status = excluded.status, full_name = excluded.full_name, phone = excluded.phone, \
     service_error = excluded.service_error, updated_at_us = excluded.updated_at_us, \
     receipt_refusals = excluded.receipt_refusals";

/// A row of [`SELECT_NPD_TAXPAYER`].
pub(crate) fn npd_taxpayer<C: Columns>(r: &C) -> std::result::Result<Result<open131_domain::npd::Taxpayer>, C::Error> {
    let (status, full_name, phone, service_error) = (r.text(0)?, r.opt_text(1)?, r.opt_text(2)?, r.int(3)?);
    let refusals = r.int(4)?;
    let decode = || -> Result<open131_domain::npd::Taxpayer> {
        let status = open131_domain::npd::TaxStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("an NPD taxpayer", "status"))?;
        let receipt_refusals =
            u32::try_from(refusals).map_err(|_| StoreError::corrupt("an NPD taxpayer", "receipt_refusals"))?;
        Ok(open131_domain::npd::Taxpayer {
            status,
            full_name,
            phone,
            service_error: service_error != 0,
            receipt_refusals,
        })
    };
    Ok(decode())
}

/// An instance says it is alive (`$1` its id, `$2` now).
pub(crate) const HEARTBEAT: &str = "INSERT INTO instances (id, started_at_us, heartbeat_at_us) VALUES ($1, $2, $2) \
     ON CONFLICT (id) DO UPDATE SET heartbeat_at_us = excluded.heartbeat_at_us";

/// Instances not heard from for long are forgotten (`$1` the cut-off); a
/// lease one of them still holds then counts as a dead instance's.
pub(crate) const FORGET_INSTANCES: &str = "DELETE FROM instances WHERE heartbeat_at_us < $1";

/// The leases of a dead instance, released (`$1` now, `$2` this instance,
/// `$3` the dead one, or NULL for every other; SQLite numbers placeholders
/// by first appearance, so they appear in that order): what it claimed is
/// due again now. Webhooks and subscriptions are released only while their
/// lease runs, checks only while leased (not postponed), timers while they
/// carry an owner (a timer set again since its claim has none).
pub(crate) const RELEASE_LEASES: [&str; 4] = [
    "UPDATE webhooks SET next_attempt_at_us = $1, leased_until_us = NULL, lease_owner = NULL \
     WHERE state = 'pending' AND leased_until_us > $1 AND lease_owner <> $2 \
     AND (CAST($3 AS TEXT) IS NULL OR lease_owner = CAST($3 AS TEXT))",
    "UPDATE session_timers SET due_at_us = $1, lease_owner = NULL \
     WHERE due_at_us > $1 AND lease_owner <> $2 AND (CAST($3 AS TEXT) IS NULL OR lease_owner = CAST($3 AS TEXT))",
    "UPDATE kyc_checks SET retry_at_us = NULL, lease_owner = NULL \
     WHERE outcome IS NULL AND NOT postponed AND retry_at_us > $1 AND lease_owner <> $2 \
     AND (CAST($3 AS TEXT) IS NULL OR lease_owner = CAST($3 AS TEXT))",
    "UPDATE subscriptions SET lease_until_us = NULL, lease_owner = NULL \
     WHERE lease_until_us > $1 AND lease_owner <> $2 AND (CAST($3 AS TEXT) IS NULL OR lease_owner = CAST($3 AS TEXT))",
];

pub(crate) const SELECT_HEARTBEATS: &str = "SELECT id, heartbeat_at_us FROM instances";

/// What a project has paid a self-employed person (`$2`, the INN) between
/// `$3` and `$4` (microseconds): the income the yearly limit counts. Failed
/// payouts are left out, and so are payouts bound to fail (their plan says
/// so: refused by the tax service, the limit among them, before their
/// result), and those whose receipt was cancelled.
pub(crate) const FISCAL_INCOME: &str = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM payouts \
     WHERE project_id = $1 AND fiscal_inn = $2 AND created_at_us >= $3 AND created_at_us < $4 \
     AND state NOT LIKE 'failed:%' AND plan NOT LIKE 'fail:%' \
     AND (receipt IS NULL OR receipt NOT LIKE 'cancelled %')";
