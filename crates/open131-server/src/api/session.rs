//! The session methods: `session/create`, `session/init/payout`,
//! `session/start/payout`, `session/confirm`, `session/cancel` and
//! `session/status`. Every change goes through the engine (one transition, one
//! atomic store write); a state error is 400 `session_wrong_state`.

use std::borrow::Cow;

use open131_domain::books::{self, Shape};
use open131_domain::dates::moscow_today;
use open131_domain::fps_verification::parse_verification;
use open131_domain::fx::{CONVERTIBLE, FUNDING_CURRENCY};
use open131_domain::ident::Inn;
use open131_domain::ledger::Book;
use open131_domain::npd::TaxStatus;
use open131_domain::npd_link::LinkState;
use open131_domain::payment;
use open131_domain::payout::{self, PayoutCall, PayoutParts, PayoutRequest, SandboxPlan};
use open131_domain::payout_flow::FailureCode;
use open131_domain::payout_flow::PayoutEvent;
use open131_domain::payout_flow::PayoutState;
use open131_domain::personal::Personal;
use open131_domain::session::{Event, SessionState};
use open131_domain::FieldError;
use open131_store::PayoutRecord;
use open131_wire::api::{ApiErrorCode, SessionResponse};
use serde_json::{Map, Value};

use open131_domain::payment_flow::PaymentEvent;

use super::engine::{self, Apply, EngineError};

/// What `session/confirm` and `session/cancel` ask of a session's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Confirm,
    Cancel,
}

/// The event a change is for the session's operation: a payment's
/// confirmation goes on to 3-D Secure when its card asks for it.
fn event_of(record: &open131_store::SessionRecord, change: Change) -> Event {
    match (change, record.running_payment()) {
        (Change::Cancel, _) => Event::Cancel,
        (Change::Confirm, Some(p)) => Event::Payment(PaymentEvent::Confirm { three_ds: p.plan.three_ds }),
        (Change::Confirm, None) => Event::Payout(PayoutEvent::Confirm),
    }
}
use super::{detail, from_domain, only_fields, render, ApiReply, Ctx};

impl Ctx<'_> {
    pub(super) fn reply(&self, record: &open131_store::SessionRecord) -> ApiReply {
        ApiReply::ok(&SessionResponse {
            status: "ok".into(),
            session: render::session(record, self.version, self.app.public_url()),
        })
    }

    pub(super) fn engine_error(e: EngineError) -> ApiReply {
        match e {
            EngineError::WrongState(w) => {
                ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()).with_log(&w)
            }
            EngineError::Idempotency => ApiReply::error(ApiErrorCode::IdempotencyKeyAlreadyExists, None, Vec::new()),
            EngineError::RefundWrongState(w) => {
                ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()).with_log(&w)
            }
            EngineError::RefundTooLarge => ApiReply::error(ApiErrorCode::RefundAmountTooLarge, None, Vec::new()),
            EngineError::NoSuchSession => ApiReply::invalid(vec![detail("session_id", "no such session")]),
            other => ApiReply::internal(&other),
        }
    }

    pub(super) async fn load(&self, body: &Map<String, Value>) -> Result<open131_store::SessionRecord, ApiReply> {
        let id = match body.get("session_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            None | Some(Value::Null) => return Err(ApiReply::invalid(vec![detail("session_id", "is required")])),
            Some(_) => return Err(ApiReply::invalid(vec![detail("session_id", "must be a string")])),
        };
        match self.app.store.session(self.project_id, &id).await {
            Ok(Some(s)) => Ok(s),
            // Another project's session is indistinguishable from none.
            Ok(None) => Err(ApiReply::invalid(vec![detail("session_id", "no such session")])),
            Err(e) => Err(ApiReply::internal(&e)),
        }
    }

    /// The session record this request starts (not yet stored).
    pub(super) fn new_record(&self) -> open131_store::SessionRecord {
        let mut record = engine::unsaved(self.project_id, self.version, self.now);
        record.submerchant = self.submerchant.clone();
        record
    }

    /// Moscow's calendar day on the server's clock (card expiry is judged by it).
    pub(super) fn today(&self) -> time::Date {
        moscow_today(self.now)
    }

    /// The body without a card method's `payment_details`, and that transfer's
    /// description (`session/multi/…` takes it at init and start only).
    fn split_transfer<'b>(
        &self,
        body: &'b Map<String, Value>,
        book: Book,
        shape: Shape,
        call: PayoutCall,
        errors: &mut Vec<FieldError>,
    ) -> (Cow<'b, Map<String, Value>>, Option<String>) {
        // Only the card forms carry a transfer: every other payout reads the body as it is.
        if shape != Shape::MultiCard {
            return (Cow::Borrowed(body), None);
        }
        let mut rest = body.clone();
        if call == PayoutCall::Create {
            if rest.remove("payment_details").is_some_and(|v| !v.is_null()) {
                errors.push(FieldError::new("payment_details", "is sent with session/multi/start/payment/…"));
            }
            return (Cow::Owned(rest), None);
        }
        let description = books::parse_payment_details(body, book, errors);
        rest.remove("payment_details");
        (Cow::Owned(rest), description)
    }

    /// `session/create` (and its nominal, settlement and card forms): the
    /// payout fields it carries (any, or none), or a payment's (a field only
    /// a payment has makes it one's), are kept as the session's draft.
    pub(super) async fn create(
        &self,
        body: &Map<String, Value>,
        book: Book,
        shape: Shape,
    ) -> Result<ApiReply, ApiReply> {
        let mut record = self.new_record();
        (record.book, record.shape) = (book, shape);
        let draft = if payment::is_payment_create(body) && (book, shape) == (Book::Main, Shape::Payout) {
            let saved = self.saved_cards(body.get("payment_details")).await?;
            let draft = payment::parse_payment_draft(body, self.today(), &saved);
            let draft = draft.map_err(|e| ApiReply::invalid(from_domain(e)))?;
            if let Some(split) = &draft.split {
                self.check_contractors(split, &|field| field.to_string()).await?;
            }
            // `to_string` rather than `Display`: the same text, written straight into its buffer.
            Some(serde_json::to_string(&draft.fields))
        } else {
            let mut errors = Vec::new();
            let (rest, _) = self.split_transfer(body, book, shape, PayoutCall::Create, &mut errors);
            let parts = every_error(errors, payout::parse_parts(&rest, PayoutCall::Create, self.today()))?;
            if parts.fiscalization.is_some() && book != Book::Main {
                return Err(ApiReply::invalid(vec![detail("fiscalization_details", NOT_OFF_MAIN)]));
            }
            (!parts.is_empty()).then(|| parts.draft_json())
        };
        let draft = draft.transpose().map_err(|e| ApiReply::internal(&e))?;
        record.draft = draft.map(Personal::new);
        // Creating is storing the `Created` phase as is: no transition, no effects.
        let write = open131_store::SessionWrite {
            expected_version: None,
            record: record.clone(),
            idempotency: self.idempotency.clone(),
            movements: Vec::new(),
            webhooks: Vec::new(),
            timers: Vec::new(),
            consumed_timer: None,
            subscription: None,
        };
        match self.app.store.write_session(write, record.created_at).await {
            Ok(open131_store::WriteOutcome::Applied(version)) => {
                Ok(self.reply(&open131_store::SessionRecord { version, ..record }))
            }
            Ok(open131_store::WriteOutcome::IdempotencyConflict) => Err(Self::engine_error(EngineError::Idempotency)),
            Ok(other) => Err(ApiReply::internal(&format!("unexpected outcome {other:?} creating a session"))),
            Err(e) => Err(ApiReply::internal(&e)),
        }
    }

    /// The payout record of a whole request from `book`: the book's rules
    /// checked, a foreign currency converted at the operator's rate (when one
    /// is set), and what the partner will be asked to confirm.
    async fn payout(
        &self,
        request: PayoutRequest,
        book: Book,
        shape: Shape,
        purpose: Option<String>,
    ) -> Result<PayoutRecord, ApiReply> {
        self.payout_named(request, (book, shape), purpose, &|field: &str| field.to_string()).await
    }

    /// [`Self::payout`], its errors' fields named by `name` (a multi-session
    /// names them as the partner sent them).
    pub(super) async fn payout_named(
        &self,
        request: PayoutRequest,
        (book, shape): (Book, Shape),
        purpose: Option<String>,
        name: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<PayoutRecord, ApiReply> {
        let named = |errors: Vec<FieldError>| {
            let errors = errors.into_iter().map(|e| FieldError::new(name(&e.field), e.message)).collect();
            ApiReply::invalid(from_domain(errors))
        };
        let errors = books::check_request(&request, book, shape, self.project_id, self.method_name());
        if !errors.is_empty() {
            return Err(named(errors));
        }
        let conversion = self.conversion(&request).await?.map_err(|e| named(vec![e]))?;
        let plan = payout::sandbox_plan(&request.method, &request.amount);
        let money = (request.amount.amount(), request.amount.currency());
        let echo = (&request.participant_details, &request.customer, &request.metadata);
        let mut record = self.item(money, &request.method.masked, echo, plan);
        let input = books::ConfirmInput {
            project_id: self.project_id,
            book,
            request: &request,
            purpose: purpose.as_deref(),
            conversion,
            exchange_id: &format!("ex_{}", record.id.trim_start_matches("po_")),
        };
        record.confirm_information = books::confirm_information(&input).map(|v| Personal::new(v.to_string()));
        record.exchange = conversion.map(|c| open131_store::Exchange {
            charged_amount: c.cost_minor,
            charged_currency: FUNDING_CURRENCY.to_string(),
            rate: c.rate,
        });
        if let Some(fiscal) = &request.fiscalization {
            if book != Book::Main {
                return Err(named(vec![FieldError::new("fiscalization_details", NOT_OFF_MAIN)]));
            }
            record.fiscalization = Some(Personal::new(fiscal.wire(None).to_string()));
            if let Some(code) = self.taxpayer_refusal(&fiscal.tax_reference, request.amount.amount()).await? {
                record.plan = SandboxPlan::Fail(code);
            }
        }
        Ok(record)
    }

    /// Why the tax service will not take the income of `inn` (the payout then
    /// fails with it, as the bank's does): not self-employed (or unknown), not
    /// linked to the bank for this project, its service failing, or `amount`
    /// taking the person's income this year (from this project `[INF]`) past
    /// the limit. The sum is read, not locked: overlapping requests (or two
    /// nodes) may each pass it; the README says so.
    pub(super) async fn taxpayer_refusal(&self, inn: &Inn, amount: i64) -> Result<Option<FailureCode>, ApiReply> {
        let store = self.app.store.as_ref();
        let taxpayer = super::npd::taxpayer(self.app, inn).await.map_err(|e| ApiReply::internal(&e))?;
        let link = super::npd::link(self.app, self.project_id, inn).await.map_err(|e| ApiReply::internal(&e))?;
        let linked = link.0 == LinkState::Linked;
        let refusal = if taxpayer.service_error {
            Some(FailureCode::NpdServiceInternalError)
        } else if taxpayer.status != TaxStatus::SelfEmployed {
            Some(FailureCode::TaxpayerUnknown)
        } else if !linked {
            Some(FailureCode::TaxpayerNotBound)
        } else {
            let (from, to) = open131_domain::fiscal::income_year(self.now);
            let income = store.fiscal_income(self.project_id, inn.expose(), from, to).await;
            let income = income.map_err(|e| ApiReply::internal(&e))?;
            let over = income.saturating_add(amount) > open131_domain::fiscal::YEARLY_INCOME_MAX_MINOR;
            over.then_some(FailureCode::TaxpayerIncomeExceedsAmountLimit)
        };
        Ok(refusal)
    }

    /// A payout in a foreign currency the operator has set a rate for is
    /// funded in roubles at that rate; without a rate, from the wallet in its
    /// own currency (README, foreign-currency payouts).
    /// The conversion, or the field it refuses; the outer error is the store's.
    async fn conversion(
        &self,
        request: &PayoutRequest,
    ) -> Result<Result<Option<books::Conversion>, FieldError>, ApiReply> {
        let currency = request.amount.currency();
        if !CONVERTIBLE.contains(&currency) {
            return Ok(Ok(None));
        }
        let rates = self.app.store.rates().await.map_err(|e| ApiReply::internal(&e))?;
        let Some((_, rate)) = rates.into_iter().find(|(c, _)| c == currency) else { return Ok(Ok(None)) };
        let cost_minor = rate.cost_minor(request.amount.amount());
        if cost_minor > payout::PAYOUT_AMOUNT_MAX_MINOR {
            let why = format!(
                "costs {cost_minor} kopecks at {rate} rub/{currency}: at most {}",
                payout::PAYOUT_AMOUNT_MAX_MINOR
            );
            return Ok(Err(FieldError::new("amount_details.amount", why)));
        }
        Ok(Ok(Some(books::Conversion { rate, cost_minor })))
    }

    /// A new item of the session (a payout, or a verification), its state
    /// set by the payout machine when it starts; the partner's echo fields
    /// (participant details, customer, metadata) kept as sent.
    fn item(
        &self,
        (amount, currency): (i64, &str),
        method_masked: &Value,
        (participant, customer, metadata): (&Value, &Option<Value>, &Option<Value>),
        plan: SandboxPlan,
    ) -> PayoutRecord {
        let text = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        PayoutRecord {
            receipt: None,
            fiscalization: None,
            id: engine::new_payout_id(),
            amount,
            currency: currency.to_string(),
            method_masked: method_masked.to_string(),
            participant_details: Personal::new(participant.to_string()),
            customer: text(customer),
            metadata: text(metadata),
            plan,
            state: PayoutState::Preparing,
            created_at: self.now,
            finished_at: None,
            exchange: None,
            confirm_information: None,
        }
    }

    /// The version's name of the payout method, for "is required".
    pub(super) fn method_name(&self) -> &'static str {
        self.version.method_key()
    }

    pub(super) async fn init_payout(
        &self,
        body: &Map<String, Value>,
        book: Book,
        shape: Shape,
    ) -> Result<ApiReply, ApiReply> {
        let mut errors = Vec::new();
        let (rest, purpose) = self.split_transfer(body, book, shape, PayoutCall::Init, &mut errors);
        let request = payout::parse_payout_named(&rest, self.today(), self.method_name(), book != Book::Main);
        let request = every_error(errors, request)?;
        let payout = self.payout(request, book, shape, purpose).await?;
        let mut record = self.new_record();
        (record.book, record.shape) = (book, shape);
        let how = Apply { idempotency: self.idempotency.clone(), new_payout: Some(payout), ..Apply::default() };
        let done = engine::apply(self.app, record, Event::StartPayout, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    /// `session/start/payout` (and its book and card forms): the request's
    /// fields over the draft of `session/create`.
    pub(super) async fn start_payout(
        &self,
        body: &Map<String, Value>,
        book: Book,
        shape: Shape,
    ) -> Result<ApiReply, ApiReply> {
        let mut record = self.load(body).await?;
        // The state error comes before any complaint about the body.
        if record.state != SessionState::Created {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        }
        if (record.book, record.shape) != (book, shape) {
            let kind = if record.shape == Shape::MultiCard { "card payouts (session/multi/…)" } else { "payouts" };
            let why = format!(
                "was created for {kind} from the {} account: start it with the method of that kind",
                books::book_title(record.book)
            );
            return Err(ApiReply::invalid(vec![detail("session_id", why)]));
        }
        let draft = match record.draft.take().map(|text| serde_json::from_str::<Value>(text.expose())) {
            Some(Ok(d)) if payment::is_payment_draft(&d) => {
                let why = "was created for a payment (with payment fields): start it with session/start/payment";
                return Err(ApiReply::invalid(vec![detail("session_id", why)]));
            }
            Some(d) => d
                .ok()
                .and_then(|d| PayoutParts::from_draft(&d))
                .ok_or_else(|| ApiReply::internal(&format!("unreadable draft of session {}", record.id)))?,
            None => PayoutParts::default(),
        };
        let mut errors = Vec::new();
        let (rest, purpose) = self.split_transfer(body, book, shape, PayoutCall::Start, &mut errors);
        let parts = every_error(errors, payout::parse_parts(&rest, PayoutCall::Start, self.today()))?;
        let request = draft
            .overlaid_with(parts)
            .complete_named(self.method_name(), book != Book::Main)
            .map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let payout = self.payout(request, book, shape, purpose).await?;
        let how = Apply { idempotency: self.idempotency.clone(), new_payout: Some(payout), ..Apply::default() };
        let done = engine::apply(self.app, record, Event::StartPayout, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    /// `fps/customer_verification`: a session (new, or the created one named
    /// by `session_id`) whose one item asks the phone's bank for the name.
    pub(super) async fn verify_recipient(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let request = parse_verification(body).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let record = match body.get("session_id") {
            Some(v) if !v.is_null() => {
                let record = self.load(body).await?;
                if record.state != SessionState::Created {
                    return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
                }
                record
            }
            _ => self.new_record(),
        };
        let echo = (&request.participant_details, &request.customer, &request.metadata);
        // No money moves: the amount is 0 and is not shown.
        let item = self.item((0, "rub"), &request.masked_method(), echo, request.plan());
        let how = Apply { idempotency: self.idempotency.clone(), new_payout: Some(item), ..Apply::default() };
        let done = engine::apply(self.app, record, Event::StartVerification, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    /// `session/confirm` and `session/cancel`. A payout with
    /// `confirm_information` (nominal, settlement, converted) takes it back:
    /// required to confirm from a nominal or settlement account, and when sent
    /// it must be the object of the `ready_to_confirm` webhook.
    pub(super) async fn event(&self, body: &Map<String, Value>, change: Change) -> Result<ApiReply, ApiReply> {
        only_fields(body, &["session_id", "confirm_information"], &[])?;
        let record = self.load(body).await?;
        let stored = engine::stored_confirm_information(&record).map_err(|e| ApiReply::internal(&e))?;
        let sent = body.get("confirm_information").filter(|v| !v.is_null());
        // Only a payout waiting for confirmation is checked against its object;
        // in any other state the engine answers (a state error first).
        let awaiting = record.payout().map(|p| p.state) == Some(PayoutState::AwaitingConfirm);
        if awaiting || (stored.is_none() && sent.is_some()) {
            check_confirm_information(stored.as_ref(), sent, record.book, change == Change::Confirm)?;
        }
        let event = event_of(&record, change);
        let how = Apply { idempotency: self.idempotency.clone(), ..Apply::default() };
        let done = engine::apply(self.app, record, event, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    pub(super) async fn status(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        only_session_id(body)?;
        let record = self.load(body).await?;
        Ok(self.reply(&record))
    }
}

/// `result`, unless it or an earlier reading (`errors`) found bad fields:
/// then one 400 naming every one of them.
fn every_error<T>(mut errors: Vec<FieldError>, result: Result<T, Vec<FieldError>>) -> Result<T, ApiReply> {
    match result {
        Ok(value) if errors.is_empty() => return Ok(value),
        Ok(_) => {}
        Err(more) => errors.extend(more),
    }
    errors.sort_by(|a, b| a.field.cmp(&b.field));
    Err(ApiReply::invalid(from_domain(errors)))
}

const NO_CONFIRM_INFORMATION: &str =
    "this session has none: only payouts from a nominal or settlement account and converted payouts do";

/// What `session/confirm` or `session/cancel` sent back against what the
/// payout was given: required to confirm from a nominal or settlement account,
/// checked when sent ([`books::conflicts`]), refused where there is none.
fn check_confirm_information(
    stored: Option<&Value>,
    sent: Option<&Value>,
    book: Book,
    confirming: bool,
) -> Result<(), ApiReply> {
    let field = "confirm_information";
    match (stored, sent) {
        (None, Some(_)) => Err(ApiReply::invalid(vec![detail(field, NO_CONFIRM_INFORMATION)])),
        (Some(stored), Some(sent)) => match books::conflicts(stored, sent) {
            None => Ok(()),
            Some(at) => {
                let why = format!("{at} differs from the ready_to_confirm webhook's confirm_information");
                Err(ApiReply::invalid(vec![detail(field, why)]))
            }
        },
        (Some(_), None) if book != Book::Main && confirming => {
            let why = "is required to confirm a payout from a nominal or settlement account: send back the \
                       ready_to_confirm webhook's";
            Err(ApiReply::invalid(vec![detail(field, why)]))
        }
        _ => Ok(()),
    }
}

/// Status takes `session_id` alone.
fn only_session_id(body: &Map<String, Value>) -> Result<(), ApiReply> {
    let refused = [("confirm_information", "is sent with session/confirm or session/cancel")];
    only_fields(body, &["session_id"], &refused)
}

/// Why a payout off the main wallet carries no fiscalization.
const NOT_OFF_MAIN: &str = "registers a self-employed person's income: only payouts from the main wallet carry it";
