//! Session records → wire shapes, in the naming of an API version: the
//! request path's for answers, the project's webhook setting for webhooks.

use open131_domain::payment;
use open131_domain::payment_flow::{self, PaymentState};
use open131_domain::payout_flow::{self, PayoutState};
use open131_domain::refund_flow;
use open131_domain::session::{self, ApiVersion};
use open131_domain::subscription::SubscriptionState;
use open131_store::{PaymentRecord, PaymentSubscription, PayoutRecord, RecurrentToken, SessionRecord};
use open131_wire::api::{
    timestamp, AcquiringPaymentWire, Amount, Amounts, ApiError, CustomerInteraction, Fee, Inform, PayoutWire, Qr,
    RecurrentWire, Redirect, RefundWire, SessionWire,
};
use serde_json::{json, Value};

/// The path of a session's 3-D Secure page, under the server's public URL.
pub fn three_ds_path(project_id: &str, session_id: &str) -> String {
    format!("/3ds/{project_id}/{session_id}")
}

/// The path of the sandbox's stand-in for Sber's app, where a SberPay payment is paid.
pub fn app_pay_path(project_id: &str, session_id: &str) -> String {
    format!("/sberpay/pay/{project_id}/{session_id}")
}

fn json(text: &Option<String>) -> Option<Value> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

/// A failed payout's error (also the session's: the failure cancelled it).
fn error_of(state: Option<PayoutState>) -> Option<ApiError> {
    match state? {
        PayoutState::Failed(code) => Some(ApiError {
            code: code.as_str().to_string(),
            description: code.description().to_string(),
            details: Vec::new(),
        }),
        _ => None,
    }
}

/// A failed payment's error (also the session's).
fn payment_error(state: PaymentState) -> Option<ApiError> {
    match state {
        PaymentState::Failed(code) => Some(ApiError {
            code: code.as_str().to_string(),
            description: code.description().to_string(),
            details: Vec::new(),
        }),
        _ => None,
    }
}

/// Whether a payment is paid by FPS (a QR code), not by card.
pub fn is_fps(p: &PaymentRecord) -> bool {
    payment::plan_is_fps(&method(p))
}

/// A payment's method as stored (masked); `null` should it not read back.
pub fn method(p: &PaymentRecord) -> Value {
    serde_json::from_str(&p.method_masked).unwrap_or(Value::Null)
}

/// Whether a payment is paid in the customer's bank app (an FPS QR code or
/// SberPay), which the sandbox's bank-app page and the operator pay.
pub fn paid_in_app(p: &PaymentRecord) -> bool {
    let m = method(p);
    payment::plan_is_fps(&m) || payment::sberpay_channel(&m).is_some()
}

/// What the customer must do: pay the FPS QR code, or pass 3-D Secure on
/// this server's page.
fn customer_step(record: &SessionRecord, p: &PaymentRecord, public_url: &str) -> Option<CustomerInteraction> {
    let method = method(p);
    if let Some(channel) = payment::sberpay_channel(&method) {
        // Sent to Sber's app (here, the sandbox's stand-in for it); from a
        // desktop browser the customer pays after a push instead.
        if channel == payment::SberChannel::Web {
            return None;
        }
        let url = format!("{public_url}{}", app_pay_path(&record.project_id, &record.id));
        let redirect = Redirect { url: url.clone(), base_url: url, method: "GET".into(), ..Redirect::default() };
        return Some(CustomerInteraction { kind: "redirect".into(), redirect: Some(redirect), inform: None });
    }
    if payment::plan_is_fps(&method) {
        let content = payment::fps_link(&p.id, p.amount);
        // A link always fits a QR code; should it not, the link alone still pays.
        let img = crate::qr::png_base64(&content).unwrap_or_default();
        let inform = Inform { kind: "qr".into(), qr: Qr { content, img } };
        return Some(CustomerInteraction { kind: "inform".into(), redirect: None, inform: Some(inform) });
    }
    let url = format!("{public_url}{}", three_ds_path(&record.project_id, &record.id));
    let redirect = Redirect { url: url.clone(), base_url: url, method: "GET".into(), ..Redirect::default() };
    Some(CustomerInteraction { kind: "redirect".into(), redirect: Some(redirect), inform: None })
}

/// An acquiring payment on the wire. `public_url` is where the customer's
/// browser reaches this server (the 3-D Secure redirect).
fn payment(record: &SessionRecord, p: &PaymentRecord, public_url: &str) -> AcquiringPaymentWire {
    let money = |amount| Amount { amount, currency: p.currency.clone() };
    // What the payment is worth to the project: what was captured (nothing
    // before the capture or when it failed), less the fee.
    let gross = if p.state == PaymentState::Succeeded { p.captured() } else { 0 };
    let fee = (p.fee_amount > 0).then(|| Fee { merchant_fee: money(p.fee_amount) });
    let customer_interaction =
        (p.state == PaymentState::AwaitingAction).then(|| customer_step(record, p, public_url)).flatten();
    AcquiringPaymentWire {
        id: p.id.clone(),
        status: payment_flow::wire_status(p.state).to_string(),
        created_at: timestamp(p.created_at),
        updated_at: timestamp(record.updated_at),
        // Its own finish time (rows from before it was kept: the session's).
        finished_at: payment_flow::settled(p.state).and(p.finished_at.or(record.finished_at).map(timestamp)),
        customer: serde_json::from_str(p.customer.expose()).unwrap_or(Value::Null),
        payment_details: serde_json::from_str(&p.method_masked).unwrap_or(Value::Null),
        amount_details: money(p.amount),
        amounts: Amounts { gross: money(gross), net: money(gross - p.fee_amount), fee },
        participant_details: p.participant_details.as_ref().and_then(|d| serde_json::from_str(d.expose()).ok()),
        payment_options: payment_options(p),
        recurrent: p.recurrent_token.as_ref().map(recurrent),
        refunds: p
            .refunds
            .iter()
            .map(|r| RefundWire {
                id: r.id.clone(),
                status: refund_flow::wire_status(r.state).to_string(),
                created_at: timestamp(r.created_at),
                finished_at: r.finished_at.map(timestamp),
                amount_details: money(r.amount),
                amounts: Amounts { gross: money(r.amount), net: money(r.amount), fee: None },
                is_chargeback: r.is_chargeback,
                metadata: json(&r.metadata),
                // What it took back, while it counts (a declined one gave it back).
                revenue_split_info: (!r.split.0.is_empty() && refund_flow::counts(r.state))
                    .then(|| r.split.wire(&p.currency)),
            })
            .collect(),
        customer_interaction,
        metadata: json(&p.metadata),
        revenue_split_info: p.split.as_ref().map(|s| s.wire(&p.currency)),
        subscription: p.subscription.as_ref().map(subscription),
        error: payment_error(p.state),
    }
}

/// A payment's subscription as the SDK's `Subscription` reads it: the id
/// once it exists, the period, whether this is the first payment, and while
/// it is active its next charge; `retries_exceeded` once declines stopped it.
fn subscription(s: &PaymentSubscription) -> Value {
    let mut wire = serde_json::json!({"period": s.period.as_str(), "initial": s.initial});
    if let Some(id) = &s.id {
        wire["id"] = Value::String(id.clone());
    }
    if let Some(schedule) = &s.schedule {
        if schedule.state == SubscriptionState::Active {
            wire["next_point"] = Value::String(timestamp(schedule.next_point));
        }
        wire["retries_exceeded"] = Value::Bool(schedule.state == SubscriptionState::RetriesExceeded);
    }
    wire
}

/// The options the payment was asked with, as sent.
fn payment_options(p: &PaymentRecord) -> Option<Value> {
    let mut options = serde_json::Map::new();
    if let Some(url) = &p.return_url {
        options.insert("return_url".into(), Value::String(url.clone()));
    }
    if p.recurrent {
        options.insert("recurrent".into(), Value::Bool(true));
    }
    if let Some(s) = p.subscription.as_ref().filter(|s| s.initial) {
        options.insert("subscription".into(), serde_json::json!({"period": s.period.as_str()}));
    }
    (!options.is_empty()).then_some(Value::Object(options))
}

pub fn recurrent(t: &RecurrentToken) -> RecurrentWire {
    RecurrentWire {
        token: t.token.clone(),
        created_at: timestamp(t.created_at),
        finished_at: timestamp(t.finished_at),
        is_active: t.is_active,
    }
}

pub fn session(record: &SessionRecord, naming: ApiVersion, public_url: &str) -> SessionWire {
    let v2 = naming == ApiVersion::V2;
    let payout_state = record.payout().map(|p| p.state);
    let begun: Vec<PayoutWire> = record.begun_payouts().map(|p| payout(record, p, v2, public_url)).collect();
    let payouts = (!begun.is_empty()).then_some(begun);
    let payments: Option<Vec<AcquiringPaymentWire>> = record.payment().map(|p| vec![payment(record, p, public_url)]);
    let payment_state = record.payment().map(|p| p.state);
    let next_action = match (payout_state, payment_state) {
        (Some(PayoutState::AwaitingConfirm), _) => Some("confirm".to_string()),
        (_, Some(state)) => payment_flow::next_action(state).map(str::to_string),
        _ => None,
    };
    // Each list goes under one name of the two (moved, not copied).
    let (payments_v1, payout_list) = if v2 { (None, payouts) } else { (payouts, None) };
    let (acquiring_payments, payment_list) = if v2 { (None, payments) } else { (payments, None) };
    SessionWire {
        id: record.id.clone(),
        status: session::wire_status(record.state).to_string(),
        created_at: timestamp(record.created_at),
        updated_at: timestamp(record.updated_at),
        finished_at: record.finished_at.map(timestamp),
        next_action,
        payments: payments_v1,
        payout_list,
        acquiring_payments,
        payment_list,
        error: error_of(payout_state).or_else(|| payment_state.and_then(payment_error)),
        submerchant: record.submerchant.clone(),
    }
}

/// The tax service's receipt of a succeeded payout to a self-employed
/// person: its id and the link to its page (served by open131).
pub fn receipt(record: &SessionRecord, p: &PayoutRecord, public_url: &str) -> (String, String) {
    let id = format!("rcpt_{}", p.id.trim_start_matches("po_"));
    let link = format!("{public_url}{}", receipt_path(&record.project_id, &record.id, &p.id));
    (id, link)
}

/// The path of a payout's receipt page (a project id may hold any
/// printable character: each part is percent-encoded).
pub fn receipt_path(project_id: &str, session_id: &str, payout_id: &str) -> String {
    let part = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!("/npd/receipt/{}/{}/{}", part(project_id), part(session_id), part(payout_id))
}

/// A payout's `fiscalization_details`, with the receipt once its payout
/// succeeded: `{id, link}` as the bank's once registered; while it waits,
/// after it failed, or once cancelled, a `status` says so `[INF]`.
fn fiscalization(record: &SessionRecord, p: &PayoutRecord, public_url: &str) -> Option<Value> {
    use open131_domain::receipt::ReceiptState;
    let fiscal = open131_domain::fiscal::Fiscalization::parse_stored(p.fiscalization.as_ref()?.expose())?;
    let wire = p.receipt.map(|r| {
        let (id, link) = receipt(record, p, public_url);
        match r.state {
            ReceiptState::Registered => json!({"id": id, "link": link}),
            ReceiptState::Pending => json!({"status": "pending", "attempts": r.attempts,
                "next_attempt_at": r.retry_at().map(timestamp)}),
            ReceiptState::Failed => json!({"status": "failed", "attempts": r.attempts}),
            ReceiptState::Cancelled => json!({"id": id, "link": link, "status": "cancelled",
                "cancelled_at": timestamp(r.changed_at), "cancel_reason": r.cancel_reason.map(|c| c.as_str())}),
        }
    });
    Some(fiscal.wire(wire))
}

/// One payout of the session as the wire shows it (a returned one with its
/// refund, a self-employed one with its fiscalization and receipt).
fn payout(record: &SessionRecord, p: &PayoutRecord, v2: bool, public_url: &str) -> PayoutWire {
    let method: Option<Value> = serde_json::from_str(&p.method_masked).ok();
    // A converted payout shows what it costs in roubles, as the bank's ready_to_confirm does.
    let money = || match &p.exchange {
        Some(e) => Amount { amount: e.charged_amount, currency: e.charged_currency.clone() },
        None => Amount { amount: p.amount, currency: p.currency.clone() },
    };
    // A session keeps one bank return: the last payout's (only it may be returned).
    let returned = record.payout().is_some_and(|last| last.id == p.id);
    let refunds = record
        .refund
        .iter()
        .filter(|_| returned)
        .map(|r| RefundWire {
            id: r.id.clone(),
            status: "accepted".into(),
            created_at: timestamp(r.created_at),
            finished_at: Some(timestamp(r.created_at)),
            amount_details: money(),
            amounts: Amounts { gross: money(), net: money(), fee: None },
            is_chargeback: false,
            metadata: None,
            revenue_split_info: None,
        })
        .collect();
    // The method goes under one name of the two (moved, not copied).
    let (payment_method, payout_details) = if v2 { (None, method) } else { (method, None) };
    PayoutWire {
        id: p.id.clone(),
        status: payout_flow::wire_status(p.state).to_string(),
        created_at: timestamp(p.created_at),
        finished_at: payout_flow::settled(p.state).and(p.finished_at.or(record.finished_at).map(timestamp)),
        customer: json(&p.customer),
        payment_method,
        payout_details,
        // A verification (amount 0) moves no money and shows none.
        amount_details: (p.amount > 0).then(money),
        participant_details: serde_json::from_str(p.participant_details.expose()).ok(),
        metadata: json(&p.metadata),
        fiscalization_details: fiscalization(record, p, public_url),
        error: error_of(Some(p.state)),
        refunds,
    }
}
