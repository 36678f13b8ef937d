//! Card payment requests (`session/init/payment`, `session/start/payment`):
//! the fields parsed once at the edge (every bad field named at once, every
//! field not acted on refused), and the sandbox outcome table of payments.
//!
//! Served: `payment_details` of type `card` with `bank_card` (number, expiry,
//! security code; Luhn and expiry checked), `amount_details`, `customer`
//! (required: the bank identifies the payer), `payment_options.return_url`,
//! `participant_details`, `metadata`, `revenue_split_info` ([`crate::split`]).
//! Refused with a reason: other payment methods, subscription options,
//! routing and fiscal fields (README, acquiring).

use serde_json::{Map, Value};
use time::Date;

use crate::fields::{join, present, Fields, Refused};
use crate::ident::{CardExpiry, CardNumber};
use crate::payment_flow::PaymentFailure;
use crate::payout::{parse_amount, parse_customer, strip_nulls, strip_nulls_map, Money, PayoutMethod};
use crate::payout_method::{parse_bank_card, CardUse};
use crate::split::{self, Split};
use crate::subscription::Period;
use crate::FieldError;

/// Longest `payment_options.return_url`, in bytes.
pub const RETURN_URL_MAX_BYTES: usize = 2_048;

/// Which request a payment body comes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentCall {
    /// `session/init/payment`: a whole payment.
    Init,
    /// `session/start/payment`: a whole payment for a created session.
    Start,
    /// `session/create` for a payment: every field optional, each checked
    /// as the start will check it; the session keeps them as its draft.
    Create,
}

/// A whole card payment, as the session keeps it (the card masked).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRequest {
    /// `{type: card, card: {brand, last4, bin}}`: never the number.
    pub method_masked: Value,
    /// What the sandbox will do with it (from the card and the amount).
    pub plan: PaymentPlan,
    /// Paid by this recurrent token (`payment_details.type: recurrent`): the
    /// caller checks it is the project's and still active.
    pub token: Option<String>,
    /// `payment_options.recurrent`: save the card, a token is issued on success.
    pub save_card: bool,
    pub amount: Money,
    pub customer: Value,
    pub participant_details: Option<Value>,
    pub metadata: Option<Value>,
    pub return_url: Option<String>,
    /// `revenue_split_info`: the caller checks its contractors are the project's.
    pub split: Option<Split>,
    /// `payment_options.subscription.period`: charge the card every period once it succeeds.
    pub subscription: Option<Period>,
    /// The card's expiry (card payments): a subscription's charges check it.
    pub card_expiry: Option<CardExpiry>,
}

const PAYMENT_KEYS: [&str; 7] = [
    "payment_details",
    "amount_details",
    "customer",
    "payment_options",
    "participant_details",
    "metadata",
    "revenue_split_info",
];

const REFUSED_KEYS: [Refused; 4] = [
    ("custom_routing", "routing tags are not served: open131 has one route per payment method"),
    ("fiscalization_details", "fiscal receipts belong to the self-employed flows, which are not served yet"),
    ("payment_metadata", "is not served yet (device fingerprints of anti-fraud)"),
    ("payment_method", "a payment's method is payment_details (payment_method names a payout's, in v1)"),
];

const OPTION_REFUSED: [Refused; 1] = [("platform_details", "is not served yet")];

/// What `payment_options` asks for.
#[derive(Default)]
struct Options {
    return_url: Option<String>,
    save_card: bool,
    subscription: Option<Period>,
}

/// Parses a whole card payment, every bad or missing field named at once.
pub fn parse_payment(
    body: &Map<String, Value>,
    call: PaymentCall,
    today: Date,
) -> Result<PaymentRequest, Vec<FieldError>> {
    parse_payment_with(body, call, today, &SavedCards::new())
}

/// A card of the project's vault, opened by the caller for one payment by
/// `tokenized_card` (the customer gave its details to the bank's widget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCard {
    pub number: CardNumber,
    pub expiry: Option<CardExpiry>,
}

/// The vault cards a request may name, by token (`number_hash`).
pub type SavedCards = std::collections::HashMap<String, SavedCard>;

/// [`parse_payment`] where `payment_details.card` may be a `tokenized_card`
/// naming one of `saved`.
pub fn parse_payment_with(
    body: &Map<String, Value>,
    call: PaymentCall,
    today: Date,
    saved: &SavedCards,
) -> Result<PaymentRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let request = collect(&mut Fields { errors: &mut errors }, body, call, today, saved);
    match request {
        Some(r) if errors.is_empty() => Ok(r),
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

fn collect(
    f: &mut Fields<'_>,
    body: &Map<String, Value>,
    call: PaymentCall,
    today: Date,
    saved: &SavedCards,
) -> Option<PaymentRequest> {
    let mut allowed = PAYMENT_KEYS.to_vec();
    if call == PaymentCall::Start {
        allowed.push("session_id");
    }
    f.only(body, "", &allowed, &REFUSED_KEYS);
    // At `session/create` nothing is required yet; what is sent is checked.
    let field = |f: &mut Fields<'_>, key: &str| match call {
        PaymentCall::Create if !present(body, key) => None,
        _ => required(f, body, key),
    };
    let details = field(f, "payment_details");
    let card = details.filter(|_| !is_kept_card(call, body)).and_then(|d| parse_details(f, d, today, saved));
    let amount = field(f, "amount_details").and_then(|a| parse_amount(f, a));
    let customer = field(f, "customer").and_then(|c| {
        if !present(c, "reference") {
            f.err("customer.reference", "is required: the partner's id of the payer");
        }
        parse_customer(f, c)
    });
    let options = match present(body, "payment_options") {
        true => f.object(body, "payment_options", "payment_options").map(|o| parse_options(f, o)).unwrap_or_default(),
        false => Options::default(),
    };
    let Options { return_url, save_card, subscription } = options;
    let participant_details = match present(body, "participant_details") {
        true => f.object(body, "participant_details", "participant_details").map(|p| {
            f.only(p, "participant_details", &["sender", "recipient"], &[]);
            Value::Object(strip_nulls_map(p))
        }),
        false => None,
    };
    let metadata = body.get("metadata").and_then(strip_nulls);
    // A bad split is named and fails the whole request below.
    let split = body.get("revenue_split_info").filter(|v| !v.is_null());
    let split = split.and_then(|value| split::parse(f, value, "revenue_split_info"));
    // Checked before the method is known: session/create may send neither.
    if subscription.is_some() && split.is_some() {
        f.err(
            "payment_options.subscription",
            "a split payment starts no subscription here (its charges are not split)",
        );
    }
    let (method, amount) = (card?, amount?);
    let (mut expiry, mut is_card) = (None, false);
    let (plan, method_masked, token) = match method {
        Method::Card(card, exp) => {
            (expiry, is_card) = (exp, true);
            (sandbox_plan(&card, &amount), PayoutMethod::Card { number: card }.masked(), None)
        }
        Method::Recurrent { token, masked } => {
            // A saved card pays without its holder: no 3-D Secure.
            (PaymentPlan { three_ds: false, verdict: verdict_for(&amount) }, masked, Some(token))
        }
        Method::Fps => {
            if amount.currency() != "rub" {
                f.err("amount_details.currency", "FPS payments are in roubles (rub)");
            }
            // The customer's step is paying the QR code; no issuer answers after it.
            (PaymentPlan { three_ds: true, verdict: Verdict::Authorize }, fps_masked(), None)
        }
        Method::SberPay { channel, phone } => {
            if amount.currency() != "rub" {
                f.err("amount_details.currency", "SberPay payments are in roubles (rub)");
            }
            // The customer's step is paying in Sber's app, as for an FPS QR code.
            let masked = sberpay_masked(channel, phone.as_deref());
            (PaymentPlan { three_ds: true, verdict: Verdict::Authorize }, masked, None)
        }
    };
    if save_card && (plan_is_fps(&method_masked) || sberpay_channel(&method_masked).is_some()) {
        f.err("payment_options.recurrent", "only a card payment saves a card");
    }
    if token.is_some() && save_card {
        f.err("payment_options.recurrent", "a payment by a recurrent token already has one");
    }
    if subscription.is_some() && !is_card {
        f.err("payment_options.subscription", "only a card payment (payment_details.type card) starts a subscription");
    }
    // The expiry is kept only for a subscription's charges.
    let expiry = expiry.filter(|_| subscription.is_some());
    Some(PaymentRequest {
        plan,
        method_masked,
        token,
        save_card,
        amount,
        customer: customer?,
        participant_details,
        metadata,
        return_url,
        split,
        subscription,
        card_expiry: expiry,
    })
}

fn required<'v>(f: &mut Fields<'_>, body: &'v Map<String, Value>, key: &str) -> Option<&'v Map<String, Value>> {
    if !present(body, key) {
        f.err(key, "is required");
        return None;
    }
    f.object(body, key, key)
}

/// The fields only a payment's `session/create` carries: one of them makes
/// the session a payment's (its draft is then read by `session/start/payment`).
pub const PAYMENT_DRAFT_KEYS: [&str; 3] = ["payment_details", "payment_options", "revenue_split_info"];

/// Why `session/create` keeps no card details: the number would be stored.
const CARD_NOT_KEPT: &str = "session/create keeps no card details: send the card with session/start/payment, \
                             let the customer type it in the payment form (token: acquiring_widget), \
                             or name a vault card (tokenized_card)";

/// Whether a `session/create` body is for a payment (it names a field only a payment has).
pub fn is_payment_create(body: &Map<String, Value>) -> bool {
    PAYMENT_DRAFT_KEYS.iter().any(|k| present(body, k))
}

/// Whether a session's draft (what `session/create` kept) is a payment's.
pub fn is_payment_draft(draft: &Value) -> bool {
    draft.as_object().is_some_and(is_payment_create)
}

/// Whether a session's draft names a payout's method (only a payout starts it).
pub fn is_payout_draft(draft: &Value) -> bool {
    draft.get("method").is_some()
}

/// What a payment's `session/create` keeps: its fields as sent (nulls left
/// out), and its split read (the caller checks the contractors).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentDraft {
    pub fields: Value,
    pub split: Option<Split>,
}

/// Parses a payment's `session/create`: every field optional, each checked
/// as `session/start/payment` will check it, a card's details refused (they
/// would be kept). The draft is the fields as sent, nulls left out.
pub fn parse_payment_draft(
    body: &Map<String, Value>,
    today: Date,
    saved: &SavedCards,
) -> Result<PaymentDraft, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    if is_kept_card(PaymentCall::Create, body) {
        f.err("payment_details.card.type", CARD_NOT_KEPT);
    }
    collect(f, body, PaymentCall::Create, today, saved);
    if errors.is_empty() {
        // Read once more for the caller's check of its contractors (it parsed above).
        let split = body.get("revenue_split_info").filter(|v| !v.is_null());
        let split = split.and_then(|value| split::parse(&mut Fields { errors: &mut Vec::new() }, value, ""));
        let fields = Value::Object(strip_nulls_map(body));
        Ok(PaymentDraft { fields, split })
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        errors.dedup_by(|a, b| a.field == b.field);
        Err(errors)
    }
}

/// A `session/start/payment` body completed by the session's draft: what
/// the start sends wins, field by field at the top level (a null is absent,
/// as everywhere else, and leaves the draft's field).
pub fn with_draft(draft: Option<&Value>, body: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = draft.and_then(Value::as_object).cloned().unwrap_or_default();
    for (key, value) in body.iter().filter(|(_, v)| !v.is_null()) {
        merged.insert(key.clone(), value.clone());
    }
    merged
}

/// A card's details sent to `session/create`, refused there by
/// [`parse_payment_draft`] (and not read twice).
fn is_kept_card(call: PaymentCall, body: &Map<String, Value>) -> bool {
    let card_type = body.get("payment_details").and_then(|d| d.get("card")).and_then(|c| c.get("type"));
    call == PaymentCall::Create && card_type.and_then(Value::as_str) == Some("bank_card")
}

/// How a payment is paid: a card, or a saved card's recurrent token.
enum Method {
    /// A card and its expiry (required to pay; `None` only when it was bad).
    Card(CardNumber, Option<CardExpiry>),
    Recurrent {
        token: String,
        masked: Value,
    },
    /// FPS: the customer pays a QR code in their bank's app.
    Fps,
    /// SberPay (`internet_banking.sber_pay`): the customer pays in Sber's app.
    SberPay {
        channel: SberChannel,
        phone: Option<String>,
    },
}

/// Where a SberPay customer pays from (the docs' `channel`): Sber's mobile
/// app, a mobile browser (both sent to the app by a redirect), or a desktop
/// browser (no redirect: the customer pays after a push or SMS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SberChannel {
    App,
    MobileWeb,
    Web,
}

impl SberChannel {
    const ALL: [SberChannel; 3] = [Self::App, Self::MobileWeb, Self::Web];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::MobileWeb => "mobile_web",
            Self::Web => "web",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A phone as SberPay and `sberpay/push` take it: 10 to 15 digits, an
/// optional leading `+` `[INF]` (the docs show `79261234567`, the SDK's test
/// `89876543210`).
pub fn parse_phone(s: &str) -> Option<String> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    let ok = (10..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.to_string())
}

fn parse_sberpay(f: &mut Fields<'_>, d: &Map<String, Value>) -> Option<Method> {
    let p = "payment_details.internet_banking";
    f.only(d, "payment_details", &["type", "internet_banking"], &[]);
    let ib = f.object(d, "internet_banking", p)?;
    let kind = f.string(ib, "type", &join(p, "type"))?;
    if kind != "sber_pay" {
        f.err(&join(p, "type"), "only sber_pay is served among internet banking methods");
        return None;
    }
    f.only(ib, p, &["type", "sber_pay"], &[]);
    let sp = join(p, "sber_pay");
    let sber = f.object(ib, "sber_pay", &sp)?;
    f.only(sber, &sp, &["channel", "phone"], &[]);
    let channel = match f.string(sber, "channel", &join(&sp, "channel")) {
        Some(c) => match SberChannel::parse(&c) {
            Some(channel) => Some(channel),
            None => {
                f.err(&join(&sp, "channel"), "must be app, mobile_web or web");
                None
            }
        },
        None => None,
    };
    let phone = match f.optional_string(sber, "phone", &join(&sp, "phone")) {
        Some(raw) => match parse_phone(&raw) {
            Some(phone) => Some(phone),
            None => {
                f.err(&join(&sp, "phone"), "must be 10 to 15 digits, optionally after a +");
                return None;
            }
        },
        None => None,
    };
    Some(Method::SberPay { channel: channel?, phone })
}

/// Longest recurrent token read, in bytes.
pub const RECURRENT_TOKEN_MAX_BYTES: usize = 128;

fn parse_recurrent(f: &mut Fields<'_>, d: &Map<String, Value>) -> Option<Method> {
    let p = "payment_details.recurrent";
    f.only(d, "payment_details", &["type", "recurrent"], &[]);
    let r = f.object(d, "recurrent", p)?;
    let refused = [("security_code", "a saved card pays without its security code here: send the token alone")];
    f.only(r, p, &["token", "initiator"], &refused);
    let token = match r.get("token") {
        Some(Value::String(t)) if !t.is_empty() && t.len() <= RECURRENT_TOKEN_MAX_BYTES => Some(t.clone()),
        None | Some(Value::Null) => {
            f.err(&join(p, "token"), "is required");
            None
        }
        Some(_) => {
            f.err(&join(p, "token"), format!("must be a string of 1 to {RECURRENT_TOKEN_MAX_BYTES} bytes"));
            None
        }
    };
    let initiator = f.optional_string(r, "initiator", &join(p, "initiator"));
    if initiator.as_deref().is_some_and(|i| i != "merchant" && i != "client") {
        f.err(&join(p, "initiator"), "must be merchant or client");
    }
    let token = token?;
    // Shown as the SDK reads it back; the security code never is.
    let mut masked = serde_json::json!({"type": "recurrent", "recurrent": {"token": token}});
    if let Some(i) = initiator {
        masked["recurrent"]["initiator"] = Value::String(i);
    }
    Some(Method::Recurrent { token, masked })
}

/// `payment_details.card` of type `tokenized_card`: `{token}` naming a card of
/// the project's vault (no security code: the widget took it).
fn parse_tokenized(f: &mut Fields<'_>, d: &Map<String, Value>, saved: &SavedCards, today: Date) -> Option<Method> {
    let p = "payment_details.card";
    f.only(d, "payment_details", &["type", "card"], &[]);
    let card = f.object(d, "card", p)?;
    f.only(card, p, &["type", "tokenized_card"], &[]);
    let tp = join(p, "tokenized_card");
    let inner = f.object(card, "tokenized_card", &tp)?;
    f.only(inner, &tp, &["token"], &[]);
    let token = f.string(inner, "token", &join(&tp, "token"))?;
    let Some(saved) = saved.get(&token) else {
        f.err(&join(&tp, "token"), "no such card in this project's vault");
        return None;
    };
    match &saved.expiry {
        Some(e) if e.is_expired_on(today) => {
            f.err(&join(&tp, "token"), "the vault's card has expired");
            return None;
        }
        Some(_) => {}
        None => {
            f.err(&join(&tp, "token"), "the vault's card has no expiry: tokenize it again with its expiry");
            return None;
        }
    }
    Some(Method::Card(saved.number.clone(), saved.expiry))
}

fn parse_details(f: &mut Fields<'_>, d: &Map<String, Value>, today: Date, saved: &SavedCards) -> Option<Method> {
    let p = "payment_details";
    let kind = f.string(d, "type", &join(p, "type"))?;
    let card_type = d.get("card").and_then(|c| c.get("type")).and_then(Value::as_str);
    if kind == "card" && card_type == Some("tokenized_card") {
        return parse_tokenized(f, d, saved, today);
    }
    if kind == "recurrent" {
        return parse_recurrent(f, d);
    }
    if kind == "internet_banking" {
        return parse_sberpay(f, d);
    }
    if kind == "faster_payment_system" {
        f.only(d, p, &["type", "faster_payment_system"], &[]);
        if let Some(Some(fps)) = f.optional_object(d, "faster_payment_system", &join(p, "faster_payment_system")) {
            f.only(fps, &join(p, "faster_payment_system"), &[], &[]);
        }
        return Some(Method::Fps);
    }
    if kind != "card" {
        let why = match kind.as_str() {
            "faster_payment_system_binding" => "FPS bindings (subscriptions by FPS) are not served yet",
            // QIWI, the one wallet the bank's docs took payments from, closed in
            // 2024; today's docs name no wallet payments (wallets are payout methods).
            "wallet" => "the bank takes no payments from wallets (QIWI closed): wallets are payout methods",
            "secured_card" => {
                "not served yet: card, faster_payment_system, internet_banking (sber_pay) and recurrent are"
            }
            "internal_transfer" => "internal transfers are the card payouts of the nominal and settlement accounts",
            _ => "is not a payment method (card, faster_payment_system, recurrent, internet_banking, wallet)",
        };
        f.err(&join(p, "type"), why);
        return None;
    }
    f.only(d, p, &["type", "card"], &[]);
    let card = f.object(d, "card", &join(p, "card"))?;
    parse_bank_card(f, card, &join(p, "card"), today, CardUse::Payment)
        .map(|(number, expiry)| Method::Card(number, expiry))
}

/// `payment_options`: the return URL (absolute http(s)) and whether to save the card.
fn parse_options(f: &mut Fields<'_>, o: &Map<String, Value>) -> Options {
    f.only(o, "payment_options", &["return_url", "recurrent", "subscription"], &OPTION_REFUSED);
    let save_card = match o.get("recurrent") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            f.err("payment_options.recurrent", "must be true or false");
            false
        }
    };
    let subscription = match f.optional_object(o, "subscription", "payment_options.subscription") {
        Some(Some(s)) => parse_subscription(f, s),
        _ => None,
    };
    Options { return_url: parse_return_url(f, o), save_card, subscription }
}

/// `payment_options.subscription`: `{period}`; the rest is the bank's answer.
fn parse_subscription(f: &mut Fields<'_>, s: &Map<String, Value>) -> Option<Period> {
    let p = "payment_options.subscription";
    let answers = "is the bank's answer about a subscription, not part of the request";
    let refused: Vec<Refused> =
        ["id", "initial", "next_point", "retries_exceeded", "unsubscribe_url", "provider_subscription_id"]
            .into_iter()
            .map(|k| (k, answers))
            .collect();
    f.only(s, p, &["period"], &refused);
    let period = f.string(s, "period", &join(p, "period"))?;
    Period::parse(&period).or_else(|| {
        f.err(&join(p, "period"), "must be day, week, month or year");
        None
    })
}

fn parse_return_url(f: &mut Fields<'_>, o: &Map<String, Value>) -> Option<String> {
    optional_url(f, o, "return_url", "payment_options.return_url")
}

/// An optional URL the customer's browser is sent to: absolute http(s), at
/// most [`RETURN_URL_MAX_BYTES`], no white space or control characters.
pub(crate) fn optional_url(f: &mut Fields<'_>, o: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
    let url = f.optional_string(o, key, path)?;
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= RETURN_URL_MAX_BYTES
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        f.err(path, format!("must be an absolute http(s) URL of at most {RETURN_URL_MAX_BYTES} bytes"));
        return None;
    }
    Some(url)
}

/// An FPS payment's method as answers show it.
fn fps_masked() -> Value {
    serde_json::json!({"type": "faster_payment_system", "faster_payment_system": {}})
}

/// Whether a payment's method (as stored) is FPS.
pub fn plan_is_fps(method_masked: &Value) -> bool {
    method_masked["type"] == "faster_payment_system"
}

/// A SberPay payment's method as answers show it: the channel, and the
/// phone's last four digits only.
fn sberpay_masked(channel: SberChannel, phone: Option<&str>) -> Value {
    let mut sber = serde_json::json!({"channel": channel.as_str()});
    if let Some(phone) = phone {
        let last4 = &phone[phone.len().saturating_sub(4)..];
        sber["phone"] = Value::String(format!("{}{last4}", "*".repeat(phone.len().saturating_sub(4))));
    }
    serde_json::json!({"type": "internet_banking", "internet_banking": {"type": "sber_pay", "sber_pay": sber}})
}

/// The channel of a SberPay payment's method (as stored); `None` for any other method.
pub fn sberpay_channel(method_masked: &Value) -> Option<SberChannel> {
    let ib = &method_masked["internet_banking"];
    if method_masked["type"] != "internet_banking" || ib["type"] != "sber_pay" {
        return None;
    }
    ib["sber_pay"]["channel"].as_str().and_then(SberChannel::parse)
}

/// What ends a customer's step not taken in time: an FPS QR code nobody
/// paid, a SberPay payment nobody paid, or 3-D Secure never passed.
pub fn wait_expiry(method_masked: &Value) -> crate::payment_flow::PaymentEvent {
    use crate::payment_flow::PaymentEvent;
    if plan_is_fps(method_masked) {
        PaymentEvent::QrExpired
    } else if sberpay_channel(method_masked).is_some() {
        PaymentEvent::SberPayExpired
    } else {
        PaymentEvent::TimedOut
    }
}

/// Whether the partner hears `action_required` when the customer's step
/// comes: always, except for SberPay in a desktop browser (the docs: no
/// redirect; the customer pays after a push or SMS).
pub fn sends_action_required(method_masked: &Value) -> bool {
    sberpay_channel(method_masked) != Some(SberChannel::Web)
}

/// Bank 131's FPS participant id (the `bank` of its QR links; also in
/// `data/fps_banks.csv`).
pub const BANK_131_FPS_ID: &str = "100000000143";

/// The FPS payment link of a payment, in NSPK's format:
/// `https://qr.nspk.ru/<32-character id>?type=02&bank=<participant>&sum=<kopecks>&cur=RUB&crc=<CRC-16>`
/// (type 02: a one-time dynamic code). The id is derived from the payment id;
/// the check is CRC-16/CCITT-FALSE over the link before `&crc=` `[INF]`.
pub fn fps_link(payment_id: &str, amount_kopecks: i64) -> String {
    let digits: String = payment_id.chars().filter(char::is_ascii_digit).collect();
    let id = format!("AD131{digits:0>27}");
    let id: String = id.chars().take(32).collect();
    let link = format!("https://qr.nspk.ru/{id}?type=02&bank={BANK_131_FPS_ID}&sum={amount_kopecks}&cur=RUB");
    let crc = crc16_ccitt_false(link.as_bytes());
    format!("{link}&crc={crc:04X}")
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), the check of NSPK links.
fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740).checksum(bytes)
}

/// `session/capture`'s body: `session_id` and, for a partial capture,
/// `amount_details` in the payment's currency and at most its amount. Returns
/// what to capture, `None` for the whole.
pub fn parse_capture(body: &Map<String, Value>, held: &Money) -> Result<Option<i64>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["session_id", "amount_details"], &[]);
    let amount = match present(body, "amount_details") {
        true => f.object(body, "amount_details", "amount_details").and_then(|a| parse_amount(f, a)),
        false => None,
    };
    if let Some(a) = &amount {
        if a.currency() != held.currency() {
            f.err("amount_details.currency", format!("must be the payment's currency, {}", held.currency()));
        } else if a.amount() > held.amount() {
            f.err("amount_details.amount", format!("must be at most the amount held, {}", held.amount()));
        }
    }
    if errors.is_empty() {
        Ok(amount.map(|a| a.amount()))
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(errors)
    }
}

/// `session/refund`'s body: `session_id`, `amount_details` for a partial
/// refund (in the payment's currency), `metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundAsk {
    /// `None`: all that is left to refund.
    pub amount: Option<i64>,
    pub metadata: Option<Value>,
}

pub fn parse_refund(body: &Map<String, Value>, currency: &str) -> Result<RefundAsk, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["session_id", "amount_details", "metadata"], &[]);
    let amount = match present(body, "amount_details") {
        true => f.object(body, "amount_details", "amount_details").and_then(|a| parse_amount(f, a)),
        false => None,
    };
    if amount.as_ref().is_some_and(|a| a.currency() != currency) {
        f.err("amount_details.currency", format!("must be the payment's currency, {currency}"));
    }
    let metadata = body.get("metadata").and_then(strip_nulls);
    if errors.is_empty() {
        Ok(RefundAsk { amount: amount.map(|a| a.amount()), metadata })
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(errors)
    }
}

/// `recurrent/status` and `recurrent/disable`: `{"recurrent": {"token"}}`.
pub fn parse_token_request(body: &Map<String, Value>) -> Result<String, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["recurrent"], &[]);
    let token = match present(body, "recurrent") {
        true => f.object(body, "recurrent", "recurrent").and_then(|r| {
            f.only(r, "recurrent", &["token"], &[]);
            f.string(r, "token", "recurrent.token")
        }),
        false => {
            f.err("recurrent.token", "is required");
            None
        }
    };
    match token {
        Some(t) if errors.is_empty() && !t.is_empty() && t.len() <= RECURRENT_TOKEN_MAX_BYTES => Ok(t),
        Some(_) if errors.is_empty() => {
            Err(vec![FieldError::new("recurrent.token", format!("must be 1 to {RECURRENT_TOKEN_MAX_BYTES} bytes"))])
        }
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

/// A refund of exactly this amount (minor units) is declined by the sandbox
/// bank (README, the sandbox table); any other is accepted.
pub const REFUND_DECLINED_AMOUNT: i64 = 13_210;

/// What the sandbox issuer answers to an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Authorize,
    /// Authorizes after the long provider delay.
    AuthorizeSlowly,
    Decline(PaymentFailure),
}

/// What the sandbox will do with a payment: send the customer to 3-D Secure
/// first or not, then the issuer's verdict. Stored under
/// [`PaymentPlan::as_stored`]'s names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentPlan {
    pub three_ds: bool,
    pub verdict: Verdict,
}

impl PaymentPlan {
    pub fn as_stored(self) -> String {
        let verdict = match self.verdict {
            Verdict::Authorize => "ok".into(),
            Verdict::AuthorizeSlowly => "ok:slow".into(),
            Verdict::Decline(code) => format!("fail:{}", code.as_str()),
        };
        if self.three_ds {
            format!("3ds:{verdict}")
        } else {
            verdict
        }
    }

    pub fn parse_stored(s: &str) -> Option<Self> {
        let (three_ds, rest) = match s.strip_prefix("3ds:") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let verdict = match rest {
            "ok" => Verdict::Authorize,
            "ok:slow" => Verdict::AuthorizeSlowly,
            _ => Verdict::Decline(rest.strip_prefix("fail:").and_then(PaymentFailure::parse)?),
        };
        Some(Self { three_ds, verdict })
    }
}

/// The one-time code the sandbox's 3-D Secure page accepts (shown on the
/// page: a tester needs no phone).
pub const THREE_DS_SANDBOX_CODE: &str = "131131";

/// Cards whose number ends in these digits ask the customer for 3-D Secure
/// (README, the sandbox table): `4000000000003220`, `5555555555553220`, ….
pub const THREE_DS_LAST4: &str = "3220";

/// The sandbox outcome table of payments (README): a card ending in
/// [`THREE_DS_LAST4`] goes through 3-D Secure; exact amounts, in minor units,
/// choose the issuer's decline or a slow authorization; any other valid
/// payment is authorized.
pub fn sandbox_plan(card: &CardNumber, amount: &Money) -> PaymentPlan {
    PaymentPlan { three_ds: card.last4() == THREE_DS_LAST4, verdict: verdict_for(amount) }
}

/// The plan of a subscription's charge: the saved card pays without its
/// holder (no 3-D Secure), the amount table decides, and a card past its
/// expiry month on `today` is declined `bank_card_expired`.
pub fn charge_plan(amount: &Money, expiry: Option<&CardExpiry>, today: Date) -> PaymentPlan {
    let verdict = match expiry {
        Some(e) if e.is_expired_on(today) => Verdict::Decline(PaymentFailure::BankCardExpired),
        _ => verdict_for(amount),
    };
    PaymentPlan { three_ds: false, verdict }
}

/// The issuer's verdict on an amount (the sandbox table).
fn verdict_for(amount: &Money) -> Verdict {
    use PaymentFailure as F;
    match amount.amount() {
        13_202 => Verdict::Decline(F::DeclinedByIssuerBank),
        13_203 => Verdict::Decline(F::InsufficientFunds),
        13_204 => Verdict::Decline(F::BankCardExpired),
        13_205 => Verdict::Decline(F::ActivityCountExceeded),
        13_206 => Verdict::Decline(F::NotPermittedByIssuerBank),
        13_207 => Verdict::Decline(F::CardNumberDoesNotExist),
        13_208 => Verdict::Decline(F::AmountLessAllowedProvider),
        13_209 => Verdict::AuthorizeSlowly,
        _ => Verdict::Authorize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TODAY: Date = time::macros::date!(2026 - 11 - 30);

    fn card() -> Value {
        json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242",
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}})
    }

    fn fields(body: Value, call: PaymentCall) -> Vec<String> {
        match parse_payment(body.as_object().unwrap(), call, TODAY) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn a_payment_draft_keeps_what_it_is_sent_and_the_start_completes_it() {
        let create = json!({"amount_details": {"amount": 10_000, "currency": "rub"}, "customer": {"reference": "u1"},
            "payment_options": {"recurrent": true, "return_url": "https://shop.example/back"}, "metadata": null});
        let body = create.as_object().unwrap();
        assert!(is_payment_create(body));
        let draft = parse_payment_draft(body, TODAY, &SavedCards::new()).unwrap().fields;
        assert!(is_payment_draft(&draft) && !is_payout_draft(&draft));
        assert!(draft.get("metadata").is_none());
        // The start brings the card; what it sends wins over the draft.
        let start = json!({"session_id": "ps_1", "payment_details": card(),
            "payment_options": {"return_url": "https://shop.example/again"}});
        let whole = with_draft(Some(&draft), start.as_object().unwrap());
        let p = parse_payment(&whole, PaymentCall::Start, TODAY).unwrap();
        assert_eq!(p.amount.amount(), 10_000);
        assert_eq!(p.return_url.as_deref(), Some("https://shop.example/again"));
        assert!(!p.save_card, "the start's payment_options replaces the draft's whole");
        // A null in the start is absent: the draft's field stands.
        let nulls = json!({"session_id": "ps_1", "payment_details": card(), "amount_details": null});
        let p =
            parse_payment(&with_draft(Some(&draft), nulls.as_object().unwrap()), PaymentCall::Start, TODAY).unwrap();
        assert_eq!(p.amount.amount(), 10_000);
        // A split with a subscription is named at create, before any card.
        let both = json!({"payment_options": {"subscription": {"period": "month"}},
            "revenue_split_info": [{"contractor_alias": "a", "remains": true}]});
        let e = parse_payment_draft(both.as_object().unwrap(), TODAY, &SavedCards::new()).unwrap_err();
        assert_eq!(e[0].field, "payment_options.subscription");
        // Nothing is required at create; a card's details are never kept; bad fields are named.
        assert!(parse_payment_draft(&Map::new(), TODAY, &SavedCards::new()).is_ok());
        let bad = json!({"payment_details": card(), "customer": {}, "payment_options": {"recurrent": "yes"},
            "amount_details": {"amount": -1, "currency": "rub"}});
        let fields: Vec<String> = parse_payment_draft(bad.as_object().unwrap(), TODAY, &SavedCards::new())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["amount_details.amount", "customer.reference", "payment_details.card.type", "payment_options.recurrent"]
        );
        assert!(!is_payment_create(json!({"amount_details": {}}).as_object().unwrap()));
    }

    #[test]
    fn a_card_payment_is_parsed_and_masked() {
        let body = json!({"payment_details": card(), "amount_details": {"amount": 10_000, "currency": "RUB"},
            "customer": {"reference": "user-1"}, "payment_options": {"return_url": "https://shop.example/back"},
            "metadata": {"order": 1, "note": null}});
        let p = parse_payment(body.as_object().unwrap(), PaymentCall::Init, TODAY).unwrap();
        assert_eq!(p.method_masked["card"]["last4"], "4242");
        assert!(!p.method_masked.to_string().contains("4242424242424242"));
        assert_eq!((p.amount.amount(), p.amount.currency()), (10_000, "rub"));
        assert_eq!(p.return_url.as_deref(), Some("https://shop.example/back"));
        assert_eq!(p.metadata, Some(json!({"order": 1})));
    }

    #[test]
    fn every_bad_or_unserved_field_is_named() {
        let mut no_cvc = card();
        no_cvc["card"]["bank_card"].as_object_mut().unwrap().remove("security_code");
        let body = json!({"payment_details": no_cvc, "amount_details": {"amount": 0, "currency": "rub"},
            "customer": {"contacts": []}, "payment_options": {"recurrent": "yes", "return_url": "ftp://x"},
            "revenue_split_info": {}, "session_id": "ps_1"});
        assert_eq!(
            fields(body, PaymentCall::Init),
            [
                "amount_details.amount",
                "customer.reference",
                "payment_details.card.bank_card.security_code",
                "payment_options.recurrent",
                "payment_options.return_url",
                "revenue_split_info",
                "session_id"
            ]
        );
        assert_eq!(fields(json!({}), PaymentCall::Start), ["amount_details", "customer", "payment_details"]);
        let banking = json!({"payment_details": {"type": "internet_banking", "internet_banking": {}},
            "amount_details": {"amount": 1, "currency": "rub"}, "customer": {"reference": "u"}});
        assert_eq!(fields(banking, PaymentCall::Init), ["payment_details.internet_banking.type"]);
        let wallet = json!({"payment_details": {"type": "wallet", "wallet": {}},
            "amount_details": {"amount": 1, "currency": "rub"}, "customer": {"reference": "u"}});
        assert_eq!(fields(wallet, PaymentCall::Init), ["payment_details.type"]);
    }

    #[test]
    fn each_customer_step_expires_as_its_method_says() {
        use crate::payment_flow::PaymentEvent;
        assert_eq!(wait_expiry(&fps_masked()), PaymentEvent::QrExpired);
        assert_eq!(wait_expiry(&sberpay_masked(SberChannel::Web, None)), PaymentEvent::SberPayExpired);
        let card = json!({"type": "card", "card": {"brand": "visa", "last4": "3220"}});
        assert_eq!(wait_expiry(&card), PaymentEvent::TimedOut);
    }

    #[test]
    fn a_recurrent_token_pays_without_3ds_and_saving_the_card_is_a_flag() {
        let body = json!({"payment_details": {"type": "recurrent", "recurrent": {"token": "rt_1", "initiator": "merchant"}},
            "amount_details": {"amount": 13_203, "currency": "rub"}, "customer": {"reference": "u"}});
        let p = parse_payment(body.as_object().unwrap(), PaymentCall::Init, TODAY).unwrap();
        assert_eq!(p.token.as_deref(), Some("rt_1"));
        assert_eq!(
            p.method_masked,
            json!({"type": "recurrent", "recurrent": {"token": "rt_1", "initiator": "merchant"}})
        );
        assert_eq!(
            p.plan,
            PaymentPlan { three_ds: false, verdict: Verdict::Decline(PaymentFailure::InsufficientFunds) }
        );
        let save = json!({"payment_details": card(), "amount_details": {"amount": 1, "currency": "rub"},
            "customer": {"reference": "u"}, "payment_options": {"recurrent": true}});
        assert!(parse_payment(save.as_object().unwrap(), PaymentCall::Init, TODAY).unwrap().save_card);
        let bad = json!({"payment_details": {"type": "recurrent", "recurrent": {"token": "", "initiator": "robot",
            "security_code": "12", "card": 1}}, "amount_details": {"amount": 1, "currency": "rub"},
            "customer": {"reference": "u"}, "payment_options": {"recurrent": true}});
        assert_eq!(
            fields(bad, PaymentCall::Init),
            [
                "payment_details.recurrent.card",
                "payment_details.recurrent.initiator",
                "payment_details.recurrent.security_code",
                "payment_details.recurrent.token"
            ]
        );
    }

    #[test]
    fn an_fps_payment_is_roubles_only_and_its_link_has_nspks_shape() {
        let body = |currency: &str, extra: Value| {
            json!({"payment_details": {"type": "faster_payment_system", "faster_payment_system": extra},
                "amount_details": {"amount": 12_345, "currency": currency}, "customer": {"reference": "u"}})
        };
        let p = parse_payment(body("rub", json!({})).as_object().unwrap(), PaymentCall::Init, TODAY).unwrap();
        assert!(plan_is_fps(&p.method_masked) && p.plan.three_ds, "the customer's step is the QR code");
        assert_eq!(fields(body("usd", json!({})), PaymentCall::Init), ["amount_details.currency"]);
        assert_eq!(
            fields(body("rub", json!({"phone": "7926"})), PaymentCall::Init),
            ["payment_details.faster_payment_system.phone"]
        );
        let link = fps_link("pm_8331454750885858", 12_345);
        let (base, crc) = link.split_once("&crc=").unwrap();
        assert_eq!(
            base,
            "https://qr.nspk.ru/AD131000000000008331454750885858?type=02&bank=100000000143&sum=12345&cur=RUB"
        );
        assert_eq!(crc, format!("{:04X}", crc16_ccitt_false(base.as_bytes())));
        // The check's published test vector.
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
    }

    #[test]
    fn a_capture_takes_the_whole_or_a_part_in_the_payments_currency() {
        let held = Money::new(10_000, "rub").unwrap();
        let parse = |body: Value| parse_capture(body.as_object().unwrap(), &held);
        assert_eq!(parse(json!({"session_id": "ps_1"})), Ok(None));
        assert_eq!(
            parse(json!({"session_id": "ps_1", "amount_details": {"amount": 6_000, "currency": "RUB"}})),
            Ok(Some(6_000))
        );
        let named = |body: Value| parse(body).unwrap_err().into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(named(json!({"amount_details": {"amount": 10_001, "currency": "rub"}})), ["amount_details.amount"]);
        assert_eq!(named(json!({"amount_details": {"amount": 1, "currency": "usd"}})), ["amount_details.currency"]);
        assert_eq!(
            named(json!({"amount_details": {"amount": 0, "currency": "rub"}, "extra": 1})),
            ["amount_details.amount", "extra"]
        );
    }

    #[test]
    fn plans_read_back_and_the_table_reaches_every_decline() {
        let mut seen = std::collections::HashSet::new();
        let plain = CardNumber::parse("4242424242424242").unwrap();
        let three_ds = CardNumber::parse("4000000000003220").unwrap();
        for amount in 13_200..13_212 {
            let money = Money::new(amount, "rub").unwrap();
            let plan = sandbox_plan(&plain, &money);
            assert!(!plan.three_ds);
            let with_3ds = sandbox_plan(&three_ds, &money);
            assert_eq!(with_3ds, PaymentPlan { three_ds: true, ..plan });
            for p in [plan, with_3ds] {
                assert_eq!(PaymentPlan::parse_stored(&p.as_stored()), Some(p));
            }
            if let Verdict::Decline(code) = plan.verdict {
                seen.insert(code);
            }
        }
        assert_eq!(PaymentPlan::parse_stored("3ds:fail:nonsense"), None);
        // Every decline but a disabled token's, which a token payment reaches.
        let by_amount = PaymentFailure::DECLINES.iter().filter(|c| **c != PaymentFailure::BindingIsDeactivated);
        assert_eq!(seen.len(), by_amount.clone().count());
        assert!(by_amount.clone().all(|c| seen.contains(c)));
    }
}
