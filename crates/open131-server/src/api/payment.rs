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
            created_at: self.app.clock.now(),
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
            if !strangers.is_empty() {
                return Err(ApiReply::invalid(strangers));
            }
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
    /// `session/create` without payout fields.
    pub(super) async fn start_payment(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let record = self.load(body).await?;
        if record.state != SessionState::Created {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        }
        if record.draft.is_some() || (record.book, record.shape) != (Book::Main, Shape::Payout) {
            let why = "was created for a payout (with payout fields, or for an account's payouts): \
                       start it with the payout method of its kind, or create a new session without payout fields";
            return Err(ApiReply::invalid(vec![detail("session_id", why)]));
        }
        Ok(self.reply(&self.begin(record, body, PaymentCall::Start).await?))
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
        Ok(ApiReply::ok(&serde_json::json!({"status": "ok"})))
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
        created_at: app.clock.now(),
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
