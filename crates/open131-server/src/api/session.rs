//! The session methods: `session/create`, `session/init/payout`,
//! `session/start/payout`, `session/confirm`, `session/cancel` and
//! `session/status`. Every change goes through the engine (one transition, one
//! atomic store write); a state error is 400 `session_wrong_state`.

use open131_domain::dates::moscow_today;
use open131_domain::fps_verification::parse_verification;
use open131_domain::payout::{self, PayoutCall, PayoutParts, PayoutRequest, SandboxPlan};
use open131_domain::payout_flow::PayoutState;
use open131_domain::personal::Personal;
use open131_domain::session::{ApiVersion, Event, SessionState};
use open131_store::PayoutRecord;
use open131_wire::api::{ApiErrorCode, SessionResponse};
use serde_json::{Map, Value};

use super::engine::{self, Apply, EngineError};
use super::{detail, from_domain, only_fields, render, ApiReply, Ctx};

impl Ctx<'_> {
    pub(super) fn reply(&self, record: &open131_store::SessionRecord) -> ApiReply {
        ApiReply::ok(&SessionResponse { status: "ok".into(), session: render::session(record, self.version) })
    }

    fn engine_error(e: EngineError) -> ApiReply {
        match e {
            EngineError::WrongState(w) => {
                ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()).with_log(&w)
            }
            EngineError::Idempotency => ApiReply::error(ApiErrorCode::IdempotencyKeyAlreadyExists, None, Vec::new()),
            EngineError::NoSuchSession => ApiReply::invalid(vec![detail("session_id", "no such session")]),
            other => ApiReply::internal(&other),
        }
    }

    async fn load(&self, body: &Map<String, Value>) -> Result<open131_store::SessionRecord, ApiReply> {
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
    fn new_record(&self) -> open131_store::SessionRecord {
        let mut record = engine::unsaved(self.project_id, self.version, self.app.clock.now());
        record.submerchant = self.submerchant.clone();
        record
    }

    /// Moscow's calendar day on the server's clock (card expiry is judged by it).
    fn today(&self) -> time::Date {
        moscow_today(self.app.clock.now())
    }

    fn parts(&self, body: &Map<String, Value>, call: PayoutCall) -> Result<PayoutParts, ApiReply> {
        payout::parse_parts(body, call, self.today()).map_err(|e| ApiReply::invalid(from_domain(e)))
    }

    /// `session/create`: the payout fields it carries (any, or none) are kept
    /// as the session's draft for `session/start/payout`.
    pub(super) async fn create(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let parts = self.parts(body, PayoutCall::Create)?;
        let mut record = self.new_record();
        if !parts.is_empty() {
            record.draft = Some(Personal::new(parts.to_draft().to_string()));
        }
        // Creating is storing the `Created` phase as is: no transition, no effects.
        let write = open131_store::SessionWrite {
            expected_version: None,
            record: record.clone(),
            idempotency: self.idempotency.clone(),
            movements: Vec::new(),
            webhooks: Vec::new(),
            timers: Vec::new(),
            consumed_timer: None,
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

    fn payout(&self, request: PayoutRequest) -> PayoutRecord {
        let plan = payout::sandbox_plan(&request.method, &request.amount);
        let money = (request.amount.amount(), request.amount.currency());
        let echo = (&request.participant_details, &request.customer, &request.metadata);
        self.item(money, &request.method.masked, echo, plan)
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
            id: engine::new_payout_id(),
            amount,
            currency: currency.to_string(),
            method_masked: method_masked.to_string(),
            participant_details: Personal::new(participant.to_string()),
            customer: text(customer),
            metadata: text(metadata),
            plan,
            state: PayoutState::Preparing,
            created_at: self.app.clock.now(),
        }
    }

    /// The version's name of the payout method, for "is required".
    fn method_name(&self) -> &'static str {
        match self.version {
            ApiVersion::V1 => "payment_method",
            ApiVersion::V2 => "payout_details",
        }
    }

    pub(super) async fn init_payout(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let today = moscow_today(self.app.clock.now());
        let request =
            payout::parse_payout(body, today, self.method_name()).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let payout = self.payout(request);
        let how = Apply { idempotency: self.idempotency.clone(), new_payout: Some(payout), ..Apply::default() };
        let done =
            engine::apply(self.app, self.new_record(), Event::StartPayout, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    /// `session/start/payout`: the request's fields over the draft of `session/create`.
    pub(super) async fn start_payout(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let mut record = self.load(body).await?;
        // The state error comes before any complaint about the body.
        if record.state != SessionState::Created {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        }
        let draft = match record.draft.take() {
            Some(text) => serde_json::from_str(text.expose())
                .ok()
                .and_then(|d| PayoutParts::from_draft(&d))
                .ok_or_else(|| ApiReply::internal(&format!("unreadable draft of session {}", record.id)))?,
            None => PayoutParts::default(),
        };
        let parts = draft.overlaid_with(self.parts(body, PayoutCall::Start)?);
        let request = parts.complete(self.method_name()).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let how =
            Apply { idempotency: self.idempotency.clone(), new_payout: Some(self.payout(request)), ..Apply::default() };
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

    pub(super) async fn event(&self, body: &Map<String, Value>, event: Event) -> Result<ApiReply, ApiReply> {
        only_session_id(body)?;
        let record = self.load(body).await?;
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

/// Confirm, cancel and status take `session_id` alone; `confirm_information`
/// belongs to nominal-account (escrow) sessions, which are not served yet.
fn only_session_id(body: &Map<String, Value>) -> Result<(), ApiReply> {
    let refused = [(
        "confirm_information",
        "is for nominal-account (escrow) sessions, which open131 does not serve yet; confirm with session_id alone",
    )];
    only_fields(body, &["session_id"], &refused)
}
