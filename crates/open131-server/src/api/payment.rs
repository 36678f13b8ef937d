//! The acquiring methods: `session/init/payment` (and its `/sync` form),
//! `session/start/payment` and `session/capture`. Confirm, cancel and status
//! are the session methods ([`super::session`]), which route by the session's
//! operation. Every change goes through the engine.

use open131_domain::books::Shape;
use open131_domain::ledger::Book;
use open131_domain::lifecycle::Timer;
use open131_domain::payment::{self, PaymentCall, PaymentRequest, Verdict};
use open131_domain::payment_flow::{PaymentEvent, PaymentFailure, PaymentState};
use open131_domain::payout::Money;
use open131_domain::personal::Personal;
use open131_domain::refund_flow::{RefundEvent, RefundState};
use open131_domain::session::{Event, SessionState};
use open131_domain::split::Taken;
use open131_store::{PaymentRecord, PaymentRefundRecord, PaymentSubscription, SessionRecord};
use open131_wire::api::{ApiErrorCode, RecurrentResponse};
use serde_json::{Map, Value};

use super::engine::{self, Apply, EngineError};
use super::{detail, from_domain, processor, render, ApiReply, Ctx};

impl Ctx<'_> {
    /// The payment record of a whole request, its state set by the machine when it starts.
    fn payment_record(&self, r: PaymentRequest) -> PaymentRecord {
        let text = |v: Option<Value>| v.map(|v| v.to_string());
        PaymentRecord {
            id: engine::new_payment_id(),
            amount: r.amount.amount(),
            currency: r.amount.currency().to_string(),
            method_masked: r.method_masked.to_string(),
            customer: Personal::new(r.customer.to_string()),
            participant_details: text(r.participant_details).map(Personal::new),
            metadata: text(r.metadata),
            return_url: r.return_url,
            plan: r.plan,
            state: PaymentState::Preparing,
            captured_amount: None,
            created_at: self.now,
            fee_amount: 0,
            three_ds_attempts: 0,
            refunds: Vec::new(),
            recurrent: r.save_card,
            recurrent_token: None,
            finished_at: None,
            split: r.split,
            subscription: r.subscription.map(|period| PaymentSubscription {
                period,
                id: None,
                initial: true,
                schedule: None,
            }),
            card_expiry: r.card_expiry,
        }
    }

    /// `session/init/payment`; `sync` (`session/init/payment/sync`) also
    /// prepares it before answering, so the answer already says what comes
    /// next (confirmation, or the customer's 3-D Secure redirect).
    pub(super) async fn init_payment(&self, body: &Map<String, Value>, sync: bool) -> Result<ApiReply, ApiReply> {
        let done = self.begin(self.new_record(), body, PaymentCall::Init).await?;
        let done = if sync { self.prepare_now(done).await? } else { done };
        Ok(self.reply(&done))
    }

    /// Parses the whole payment `body` and starts it in `record`.
    async fn begin(
        &self,
        record: SessionRecord,
        body: &Map<String, Value>,
        call: PaymentCall,
    ) -> Result<SessionRecord, ApiReply> {
        let saved = self.saved_cards(body.get("payment_details")).await?;
        let request = payment::parse_payment_with(body, call, self.today(), &saved);
        let request = request.map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let how = Apply {
            idempotency: self.idempotency.clone(),
            new_payment: Some(self.checked_payment(request, &|field| field.to_string()).await?),
            ..Apply::default()
        };
        engine::apply(self.app, record, Event::StartPayment, how).await.map_err(Self::engine_error)
    }

    /// The record of a parsed payment, its recurrent token (if any) checked:
    /// one of this project's, and a payment by a disabled one is declined;
    /// a split's contractors must be the project's. `name` names a field as
    /// the partner sent it (a multi-session's payment is inside a list).
    pub(super) async fn checked_payment(
        &self,
        mut request: PaymentRequest,
        name: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<PaymentRecord, ApiReply> {
        if let Some(split) = &request.split {
            self.check_contractors(split, name).await?;
        }
        if let Some(token) = &request.token {
            let token_field = name("payment_details.recurrent.token");
            let token_field = token_field.as_str();
            let saved = self.app.store.recurrent_token(self.project_id, token).await;
            match saved.map_err(|e| ApiReply::internal(&e))? {
                // Another project's token is indistinguishable from none.
                None => {
                    let why = "no such recurrent token for this project";
                    return Err(ApiReply::invalid(vec![detail(token_field, why)]));
                }
                Some(t) if !t.is_active => {
                    request.plan.verdict = Verdict::Decline(PaymentFailure::BindingIsDeactivated);
                }
                Some(_) => {}
            }
        }
        Ok(self.payment_record(request))
    }

    /// Refuses a split whose contractors are not all the project's, each named.
    pub(super) async fn check_contractors(
        &self,
        split: &open131_domain::split::Split,
        name: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<(), ApiReply> {
        let project = self.app.projects.get(self.project_id).await.map_err(|e| ApiReply::internal(&e))?;
        let project = project.ok_or_else(|| ApiReply::internal(&"the calling project vanished"))?;
        let strangers: Vec<_> = split
            .contractors()
            .enumerate()
            .filter(|(_, alias)| !project.settings.contractors.allows(alias))
            .map(|(i, _)| {
                let why = "is not a contractor of this project (the operator registers them: `contractors`)";
                detail(&name(&format!("revenue_split_info[{i}].contractor_alias")), why)
            })
            .collect();
        match strangers.is_empty() {
            true => Ok(()),
            false => Err(ApiReply::invalid(strangers)),
        }
    }

    /// Fires the payment's preparation at once (what its timer would do).
    async fn prepare_now(&self, record: SessionRecord) -> Result<SessionRecord, ApiReply> {
        let project = self.app.projects.get(self.project_id).await.map_err(|e| ApiReply::internal(&e))?;
        let project = project.ok_or_else(|| ApiReply::internal(&"the calling project vanished"))?;
        let event = processor::timer_event(&record, Timer::Prepare, &project.settings)
            .ok_or_else(|| ApiReply::internal(&"a payment without a preparation"))?;
        let how = Apply { consumed_timer: Some(Timer::Prepare), ..Apply::default() };
        let (project_id, id) = (record.project_id.clone(), record.id.clone());
        match engine::apply(self.app, record, event, how).await {
            Ok(done) => Ok(done),
            // The timer fired first: answer with what it did.
            Err(EngineError::WrongState(_) | EngineError::TimerRaced) => {
                match self.app.store.session(&project_id, &id).await {
                    Ok(Some(done)) => Ok(done),
                    Ok(None) => Err(ApiReply::internal(&"a session vanished")),
                    Err(e) => Err(ApiReply::internal(&e)),
                }
            }
            Err(e) => Err(Self::engine_error(e)),
        }
    }

    /// `session/start/payment`: a whole payment for a session made by
    /// `session/create`, completed by what the create kept (payout fields excepted).
    pub(super) async fn start_payment(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let record = self.load(body).await?;
        if record.state != SessionState::Created {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        }
        let draft = payment_draft(&record).map_err(|why| ApiReply::invalid(vec![detail("session_id", why)]))?;
        let whole = payment::with_draft(draft.as_ref(), body);
        Ok(self.reply(&self.begin(record, &whole, PaymentCall::Start).await?))
    }

    /// `sberpay/push`: asks Sber to notify the customer of a SberPay payment
    /// that waits for them (a push or SMS; the docs' way for a desktop
    /// browser). The sandbox sends nothing: it checks that the session's
    /// SberPay payment waits for its customer and the phone is one, and says
    /// `ok`; the customer then pays on the Sber app page or the operator pays
    /// for them (`sberpay_pay`).
    pub(super) async fn sberpay_push(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        super::only_fields(body, &["session_id", "phone"], &[])?;
        let phone_ok = match body.get("phone") {
            Some(Value::String(s)) => payment::parse_phone(s).is_some(),
            None | Some(Value::Null) => return Err(ApiReply::invalid(vec![detail("phone", "is required")])),
            Some(_) => false,
        };
        if !phone_ok {
            return Err(ApiReply::invalid(vec![detail("phone", "must be 10 to 15 digits, optionally after a +")]));
        }
        let record = self.load(body).await?;
        let Some(p) = record.payment().filter(|p| payment::sberpay_channel(&render::method(p)).is_some()) else {
            return Err(ApiReply::invalid(vec![detail("session_id", "has no SberPay payment")]));
        };
        if p.state != PaymentState::AwaitingAction {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        }
        Ok(ApiReply::ok(&open131_wire::answers::StatusResponse::ok()))
    }

    /// `session/refund` (`chargeback: false`) and `session/chargeback`: all
    /// that is left of a captured payment, or the part `amount_details` names.
    pub(super) async fn refund(&self, body: &Map<String, Value>, chargeback: bool) -> Result<ApiReply, ApiReply> {
        let record = self.load(body).await?;
        let Some(paid) = record.payment().filter(|p| p.state == PaymentState::Succeeded) else {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        };
        let ask = payment::parse_refund(body, &paid.currency).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        match start_refund(self.app, record, ask, chargeback, self.idempotency.clone()).await {
            Ok(done) => Ok(self.reply(&done)),
            Err(RefundRefusal::WrongState) => Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new())),
            Err(RefundRefusal::TooLarge { left, captured }) => {
                let why = format!("{left} of {captured} captured is left to refund");
                Err(ApiReply::error(ApiErrorCode::RefundAmountTooLarge, Some(&why), Vec::new()))
            }
            Err(RefundRefusal::Engine(e)) => Err(Self::engine_error(e)),
        }
    }

    /// `recurrent/status` and (`disable`) `recurrent/disable`: a token of
    /// the project, as it stands afterwards. Disabling twice is harmless.
    pub(super) async fn recurrent(&self, body: &Map<String, Value>, disable: bool) -> Result<ApiReply, ApiReply> {
        let token = payment::parse_token_request(body).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let store = &self.app.store;
        if disable {
            store.disable_recurrent_token(self.project_id, &token).await.map_err(|e| ApiReply::internal(&e))?;
        }
        let saved = store.recurrent_token(self.project_id, &token).await.map_err(|e| ApiReply::internal(&e))?;
        // Another project's token is indistinguishable from none.
        let saved = saved.ok_or_else(|| ApiReply::invalid(vec![detail("recurrent.token", "no such token")]))?;
        Ok(ApiReply::ok(&RecurrentResponse { status: "ok".into(), recurrent: super::render::recurrent(&saved) }))
    }

    /// `session/capture`: the whole hold, or the part `amount_details` names
    /// (the rest goes back to the customer in the same step).
    pub(super) async fn capture(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let record = self.load(body).await?;
        // The state error comes before any complaint about the body.
        let Some(held) = record.payment().filter(|p| p.state == PaymentState::AwaitingCapture) else {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        };
        let money = Money::new(held.amount, &held.currency).map_err(|e| ApiReply::internal(&e))?;
        let capture_amount = payment::parse_capture(body, &money).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let how = Apply { idempotency: self.idempotency.clone(), capture_amount, ..Apply::default() };
        let event = Event::Payment(PaymentEvent::Capture);
        let done = engine::apply(self.app, record, event, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }
}

/// Why a refund or chargeback was not started.
#[derive(Debug, thiserror::Error)]
pub enum RefundRefusal {
    #[error("only a succeeded payment is refunded")]
    WrongState,
    #[error("{left} of {captured} captured is left to refund")]
    TooLarge { left: i64, captured: i64 },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Starts a refund (or a chargeback) of the session's captured payment: all
/// that is left, or `ask.amount`. Shared by `session/refund`,
/// `session/chargeback` and the operator's forced chargeback.
pub async fn start_refund(
    app: &crate::App,
    record: SessionRecord,
    ask: payment::RefundAsk,
    chargeback: bool,
    idempotency: Option<(String, String)>,
) -> Result<SessionRecord, RefundRefusal> {
    let Some(paid) = record.payment().filter(|p| p.state == PaymentState::Succeeded) else {
        return Err(RefundRefusal::WrongState);
    };
    // A card network charges back card payments; an FPS transfer has none.
    if chargeback && super::render::is_fps(paid) {
        return Err(RefundRefusal::WrongState);
    }
    let (left, captured) = (paid.refundable(), paid.captured());
    let amount = ask.amount.unwrap_or(left);
    if amount <= 0 || amount > left {
        return Err(RefundRefusal::TooLarge { left, captured });
    }
    let refund = PaymentRefundRecord {
        id: engine::new_refund_id(),
        amount,
        state: RefundState::Requested,
        is_chargeback: chargeback,
        metadata: ask.metadata.map(|m| m.to_string()),
        created_at: app.now_for(&record.project_id).await,
        finished_at: None,
        split: Taken::default(),
    };
    let id = refund.id.clone();
    let how = Apply { idempotency, new_refund: Some(refund), refund_rest: ask.amount.is_none(), ..Apply::default() };
    match engine::apply_refund(app, record, &id, RefundEvent::Start, how).await {
        Err(EngineError::RefundTooLarge) => Err(RefundRefusal::TooLarge { left, captured }),
        other => Ok(other?),
    }
}

/// Why a session cannot start a payment (it was made for a payout).
const MADE_FOR_A_PAYOUT: &str = "was created for a payout (with payout fields, or for an account's payouts): \
                                 start it with the payout method of its kind, or create a new session without them";

/// What `session/create` kept for the session's payment (none, or its
/// fields as sent); the refusal when the session was made for a payout.
/// A draft that does not read back (this server wrote it) is logged and
/// refused as no payment's: the payout's start answers it with a 500.
pub fn payment_draft(record: &SessionRecord) -> Result<Option<Value>, &'static str> {
    if (record.book, record.shape) != (Book::Main, Shape::Payout) {
        return Err(MADE_FOR_A_PAYOUT);
    }
    let Some(text) = &record.draft else { return Ok(None) };
    match serde_json::from_str::<Value>(text.expose()) {
        Ok(draft) if payment::is_payout_draft(&draft) => Err(MADE_FOR_A_PAYOUT),
        Ok(draft) => Ok(Some(draft)),
        Err(e) => {
            tracing::error!(session = %record.id, error = %e, "a session's draft does not read back");
            Err(UNREADABLE_DRAFT)
        }
    }
}

/// Why a session whose draft does not read back cannot start a payment.
const UNREADABLE_DRAFT: &str = "cannot be started: what session/create kept for it does not read back";

/// What the payment form's customer typed, checked by the page (the
/// payment's parser checks it again). `Debug` shows none of it.
pub struct FormCard {
    pub number: String,
    pub expiration_month: String,
    pub expiration_year: String,
    pub security_code: String,
    pub cardholder_name: Option<String>,
}

impl std::fmt::Debug for FormCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormCard(***)")
    }
}

/// Why the payment form did not start its payment.
#[derive(Debug, thiserror::Error)]
pub enum FormRefusal {
    /// The session cannot be paid by the form (started meanwhile, or made for a payout).
    #[error("the session cannot be paid: {0}")]
    CannotPay(&'static str),
    /// The payment's own checks refused it (HTTP status and envelope, for the log).
    #[error("the payment was refused ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("{0}")]
    Internal(String),
}

/// The payment form's step: the session's payment started with the card
/// the customer typed, completed by what `session/create` kept, and
/// prepared at once (the answer says whether 3-D Secure comes next); the
/// customer comes back from 3-D Secure to `return_url` (the form's status
/// page); `save_card` is the customer's answer to "save the card" when the
/// form asked (else the draft's `payment_options.recurrent` stands).
pub async fn pay_by_form(
    app: &crate::App,
    (project_id, session_id): (&str, &str),
    card: &FormCard,
    return_url: &str,
    save_card: Option<bool>,
) -> Result<SessionRecord, FormRefusal> {
    let record = app.store.session(project_id, session_id).await.map_err(|e| FormRefusal::Internal(e.to_string()))?;
    let record = record.ok_or(FormRefusal::CannotPay("no such session"))?;
    let draft = form_can_pay(&record).map_err(FormRefusal::CannotPay)?;
    let mut bank_card = serde_json::json!({"number": card.number, "expiration_month": card.expiration_month,
        "expiration_year": card.expiration_year, "security_code": card.security_code});
    if let Some(holder) = &card.cardholder_name {
        bank_card["cardholder_name"] = Value::String(holder.clone());
    }
    let mut options = draft.get("payment_options").and_then(Value::as_object).cloned().unwrap_or_default();
    options.insert("return_url".into(), Value::String(return_url.to_string()));
    if let Some(save) = save_card {
        options.insert("recurrent".into(), Value::Bool(save));
    }
    let body = serde_json::json!({
        "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": bank_card}},
        "payment_options": options,
    });
    let body = payment::with_draft(Some(&draft), body.as_object().unwrap_or(&Map::new()));
    let ctx = Ctx {
        app,
        project_id,
        now: app.now_for(project_id).await,
        version: record.api_version,
        idempotency: None,
        submerchant: record.submerchant.clone(),
    };
    let refused = |reply: ApiReply| FormRefusal::Refused {
        status: reply.status,
        body: String::from_utf8_lossy(&reply.body).into_owned(),
    };
    let started = ctx.begin(record, &body, PaymentCall::Start).await.map_err(refused)?;
    // As `session/init/payment/sync`: the customer's next step is known at once.
    ctx.prepare_now(started).await.map_err(refused)
}

/// Whether the payment form can pay `session`: made by `session/create` for
/// a payment, not started, and with what the form does not ask the
/// customer (the amount and the customer's reference); else why not.
pub fn form_can_pay(session: &open131_store::SessionRecord) -> Result<Value, &'static str> {
    if session.state != SessionState::Created {
        return Err("is not a session waiting for its payment (made by session/create, not started)");
    }
    let draft = payment_draft(session)?.unwrap_or_else(|| serde_json::json!({}));
    if draft.get("amount_details").is_none() || draft.pointer("/customer/reference").is_none() {
        return Err("was created without amount_details or customer.reference, which the payment form \
                    does not ask the customer: send them with session/create");
    }
    Ok(draft)
}
