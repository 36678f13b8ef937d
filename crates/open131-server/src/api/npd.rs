//! The self-employed (NPD) methods: `npd/check` and
//! `npd/taxpayer/check_personal_info` store a request with the tax service's
//! answer worked out at once ([`open131_domain::npd::answer`]), and
//! `npd/request/status` shows it once [`NPD_REQUEST_PENDING_S`] have passed
//! (`pending` before, as the docs say to ask again). And the one way a link
//! changes ([`change_link`]), shared by the linking widget, the operator's
//! admin endpoint and the CLI.

use open131_domain::dates::moscow_today;
use open131_domain::fiscal::{self, LATE_REGISTRATION_DAYS_MAX};
use open131_domain::ident::Inn;
use open131_domain::npd::{self, Taxpayer, NPD_REQUEST_PENDING_S};
use open131_domain::npd_link::{self, LinkEvent, LinkState, WrongLinkState};
use open131_domain::payout::Money;
use open131_domain::payout_flow::{FailureCode, PayoutState};
use open131_domain::personal::Personal;
use open131_domain::receipt::CancelReason;
use open131_domain::FieldError;
use open131_store::{NpdLinkRecord, NpdRequestKind, NpdRequestRecord, StoreError};
use open131_wire::answers::NpdRequestResponse;
use open131_wire::api::ApiErrorCode;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::engine::{self, Apply, EngineError, ReceiptChange};
use super::{detail, from_domain, ApiReply, Ctx};
use crate::app::App;

impl Ctx<'_> {
    /// `npd/check` (`kind` check) and `npd/taxpayer/check_personal_info`.
    pub(super) async fn npd_ask(&self, body: &Map<String, Value>, kind: NpdRequestKind) -> Result<ApiReply, ApiReply> {
        let ask = match kind {
            NpdRequestKind::Check => npd::parse_check(body),
            NpdRequestKind::PersonalInfo => npd::parse_personal_info(body),
        };
        let ask = ask.map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let store = self.app.store.as_ref();
        let taxpayer = taxpayer(self.app, ask.inn()).await.map_err(|e| ApiReply::internal(&e))?;
        let (link, _) = link(self.app, self.project_id, ask.inn()).await.map_err(|e| ApiReply::internal(&e))?;
        let linked = link == LinkState::Linked;
        let now = self.now;
        let request = NpdRequestRecord {
            project_id: self.project_id.to_string(),
            id: super::engine::new_id("npd_"),
            inn: ask.inn().expose().to_string(),
            kind,
            answer: npd::answer(&ask, &taxpayer, linked),
            created_at: now,
            ready_at: now + time::Duration::seconds(NPD_REQUEST_PENDING_S),
        };
        let id = request.id.clone();
        store.insert_npd_request(request).await.map_err(|e| ApiReply::internal(&e))?;
        Ok(ApiReply::ok(&NpdRequestResponse { status: "ok".into(), request_id: id }))
    }

    /// `fiscalization`: the receipt of a session's succeeded payout that went
    /// without one, registered within [`LATE_REGISTRATION_DAYS_MAX`] calendar
    /// days (Moscow's) of it; the tax service's refusals as the bank's codes.
    pub(super) async fn fiscalize(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        super::only_fields(body, &["session_id", "fiscalization_details", "amount_details"], &FISCALIZE_REFUSED)?;
        let record = self.load(body).await?;
        let Some(payout) = record.payout().filter(|p| p.state == PayoutState::Succeeded) else {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        };
        if payout.fiscalization.is_some() {
            return Err(ApiReply::invalid(vec![detail("session_id", "its payout has a receipt already")]));
        }
        let fiscal = fiscal::parse_details(body).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let money = Money::new(payout.amount, &payout.currency).map_err(|e| ApiReply::internal(&e))?;
        let mut wrong: Vec<FieldError> = fiscal::check_against(&fiscal, &money).into_iter().collect();
        if let Some(a) = body.get("amount_details").filter(|a| !a.is_null()) {
            let same = a.get("amount").and_then(Value::as_i64) == Some(payout.amount)
                && a.get("currency").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref()
                    == Some(payout.currency.as_str());
            if !same {
                wrong.push(FieldError::new("amount_details", "must be the payout's own amount, if sent"));
            }
        }
        if !wrong.is_empty() {
            return Err(ApiReply::invalid(from_domain(wrong)));
        }
        let finished = payout.finished_at.or(record.finished_at).unwrap_or(payout.created_at);
        let days = (moscow_today(self.now) - moscow_today(finished)).whole_days();
        if days > LATE_REGISTRATION_DAYS_MAX {
            let why = format!("a receipt is registered within {LATE_REGISTRATION_DAYS_MAX} days of its payout; this one is {days} days old");
            return Err(ApiReply::invalid(vec![detail("session_id", why)]));
        }
        if let Some(code) = self.taxpayer_refusal(&fiscal.tax_reference, payout.amount).await? {
            return Err(ApiReply::error(refusal_code(code), None, Vec::new()));
        }
        let how = Apply { new_fiscalization: Some(Personal::new(fiscal.wire(None).to_string())), ..Apply::default() };
        let done = engine::apply_receipt(self.app, record, ReceiptChange::Try, how).await.map_err(receipt_error)?;
        Ok(self.reply(&done))
    }

    /// `fiscalization/cancel` `[INF]`: `{session_id, reason}` cancels the
    /// registered receipt of the session's payout; its income no longer
    /// counts in the person's yearly sum.
    pub(super) async fn cancel_receipt(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        super::only_fields(body, &["session_id", "reason"], &[])?;
        let reason = match body.get("reason") {
            Some(Value::String(r)) => CancelReason::parse(r.trim()),
            _ => None,
        };
        let Some(reason) = reason else {
            return Err(ApiReply::invalid(vec![detail("reason", "is required: mistake or refund")]));
        };
        let record = self.load(body).await?;
        let change = ReceiptChange::Cancel(reason);
        let done = engine::apply_receipt(self.app, record, change, Apply::default()).await.map_err(receipt_error)?;
        Ok(self.reply(&done))
    }

    /// `npd/request/status`: `pending` until the answer is ready, then the answer.
    pub(super) async fn npd_status(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let id = npd::parse_request_status(body).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let found = self.app.store.npd_request(self.project_id, &id).await.map_err(|e| ApiReply::internal(&e))?;
        // Another project's request is indistinguishable from none.
        let found = found.ok_or_else(|| ApiReply::invalid(vec![detail("request_id", "no such request")]))?;
        if self.now < found.ready_at {
            return Ok(ApiReply::ok(&json!({"status": "pending", "request_id": id})));
        }
        let (status, mut fields) = found.answer.wire();
        fields.insert("status".into(), json!(status));
        fields.insert("request_id".into(), json!(id));
        Ok(ApiReply::ok(&Value::Object(fields)))
    }
}

/// The API's answer to a receipt change the engine refused.
fn receipt_error(e: EngineError) -> ApiReply {
    match e {
        EngineError::ReceiptExists => ApiReply::invalid(vec![detail("session_id", "its payout has a receipt already")]),
        EngineError::NoReceipt => ApiReply::invalid(vec![detail(
            "session_id",
            "its payout has no receipt (none succeeded with fiscalization)",
        )]),
        EngineError::ReceiptWrongState(w) => {
            let why = format!("its receipt is {}: only a registered receipt is cancelled", w.state.as_str());
            ApiReply::invalid(vec![detail("session_id", why)])
        }
        other => Ctx::engine_error(other),
    }
}

/// Fields of `fiscalization` the spec lists that the payout's own replace.
const FISCALIZE_REFUSED: [open131_domain::fields::Refused; 4] = [
    ("payment_method", "the payout's own method is the receipt's"),
    ("participant_details", "the payout's own recipient is the receipt's seller"),
    ("customer", "the payout's own customer is kept"),
    ("metadata", "the payout's own metadata is kept"),
];

/// The API's code for a payout's NPD failure.
fn refusal_code(code: FailureCode) -> ApiErrorCode {
    match code {
        FailureCode::TaxpayerNotBound => ApiErrorCode::TaxpayerNotBound,
        FailureCode::TaxpayerIncomeExceedsAmountLimit => ApiErrorCode::TaxpayerIncomeExceedsAmountLimit,
        FailureCode::NpdServiceInternalError => ApiErrorCode::NpdServiceInternalError,
        _ => ApiErrorCode::TaxpayerUnknown,
    }
}

/// What the tax service knows of `inn`: the operator's word, else the
/// imported register's, else the sandbox's rules.
pub async fn taxpayer(app: &App, inn: &Inn) -> Result<Taxpayer, StoreError> {
    if let Some(said) = app.store.npd_taxpayer(inn.expose()).await? {
        return Ok(said);
    }
    let registered = app.registries.npd().and_then(|r| r.get(inn).map(|e| e.taxpayer.clone()));
    Ok(registered.unwrap_or_else(|| npd::sandbox_taxpayer(inn)))
}

/// Where `inn`'s link to the bank stands for the project, with its row's
/// version: the project's own link once it has one; before, the imported
/// register's word (linked, or never asked).
pub async fn link(app: &App, project_id: &str, inn: &Inn) -> Result<(LinkState, Option<i64>), StoreError> {
    if let Some(l) = app.store.npd_link(project_id, inn.expose()).await? {
        return Ok((l.state, Some(l.version)));
    }
    let registered = app.registries.npd().and_then(|r| r.get(inn).map(|e| e.linked)).unwrap_or(false);
    Ok((if registered { LinkState::Linked } else { LinkState::NotRequested }, None))
}

/// How a link change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// Saved: the link stands at this state now.
    Changed(LinkState),
    /// The event leaves the link as it was (a second request while it waits).
    Unchanged(LinkState),
    /// The link's state does not take the event.
    Refused(WrongLinkState),
    /// Another change came first; it stands.
    Lost,
}

/// Applies `event` to `project_id`'s link of `inn` ([`link`]): one write
/// guarded by the version read, through [`npd_link::transition`].
pub async fn change_link(
    app: &App,
    (project_id, inn): (&str, &Inn),
    event: LinkEvent,
    now: OffsetDateTime,
) -> Result<LinkChange, StoreError> {
    let (state, version) = link(app, project_id, inn).await?;
    let next = match npd_link::transition(state, event) {
        Ok(next) if next == state => return Ok(LinkChange::Unchanged(state)),
        Ok(next) => next,
        Err(wrong) => return Ok(LinkChange::Refused(wrong)),
    };
    let record = NpdLinkRecord {
        project_id: project_id.to_string(),
        inn: inn.expose().to_string(),
        state: next,
        version: version.map_or(1, |v| v + 1),
        updated_at: now,
    };
    Ok(match app.store.save_npd_link(record, version).await? {
        true => LinkChange::Changed(next),
        false => LinkChange::Lost,
    })
}
