//! Payout requests: money, the payout fields of `session/create`,
//! `session/init/payout` and `session/start/payout` parsed once at the edge
//! (every bad field named at once, every field the server does not act on
//! refused), the draft a created session keeps, and the sandbox outcome table.
//!
//! The methods themselves are [`crate::payout_method`].

use serde_json::{Map, Value};
use time::Date;

use crate::fields::{join, present, Fields, Refused};
use crate::fiscal::Fiscalization;
use crate::payout_flow::FailureCode;
use crate::payout_method::parse_method;
use crate::FieldError;

pub use crate::payout_method::{PayoutMethod, WalletKind, ACCOUNT_DESCRIPTION_MAX_CHARS};

/// Currencies a wallet may hold and a payout may be made in (lowercase; `tonc`
/// is the bank's code for Toncoin).
pub const CURRENCIES: [&str; 4] = ["rub", "usd", "eur", "tonc"];
/// Largest single payout, in minor units (10 million roubles): a sanity bound.
pub const PAYOUT_AMOUNT_MAX_MINOR: i64 = 1_000_000_000;

/// An amount in minor units with its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    amount: i64,
    currency: String,
}

impl Money {
    pub fn new(amount: i64, currency: &str) -> Result<Self, &'static str> {
        if amount <= 0 {
            return Err("amount must be a positive integer (minor units)");
        }
        let currency = currency.to_ascii_lowercase();
        if !CURRENCIES.contains(&currency.as_str()) {
            return Err("currency must be one of rub, usd, eur, tonc");
        }
        Ok(Self { amount, currency })
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }
}

/// Which request a payout body comes with: each allows its own top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutCall {
    /// `session/create`: every payout field optional, kept as the session's draft.
    Create,
    /// `session/init/payout`: a whole payout.
    Init,
    /// `session/start/payout`: `session_id`, and what the draft lacks.
    Start,
}

/// The payout fields of every call.
const PAYOUT_KEYS: [&str; 7] = [
    "payment_method",
    "payout_details",
    "amount_details",
    "participant_details",
    "customer",
    "metadata",
    "fiscalization_details",
];

/// Known fields open131 does not serve yet, with the reason the partner reads.
const REFUSED_KEYS: [Refused; 6] = [
    ("custom_routing", "routing tags are not served: open131 has one route per payout method"),
    ("payment_details", "is a field of card payments: send it with session/init/payment or session/start/payment"),
    ("payment_options", "is a field of card payments: send it with session/init/payment or session/start/payment"),
    ("payment_metadata", "is a field of card payments (anti-fraud device data), which is not served yet"),
    ("revenue_split_info", "is a field of card payments (session/init/payment, session/start/payment)"),
    ("confirm_information", "belongs to session/confirm of a nominal-account (escrow) session"),
];

/// The fields of a participant (`participant_details.sender|recipient`), as the SDK names them.
pub(crate) const PARTICIPANT_KEYS: [&str; 39] = [
    "full_name",
    "first_name",
    "last_name",
    "middle_name",
    "company_name",
    "reference",
    "tax_reference",
    "country_iso2",
    "country_iso3",
    "city",
    "postal_code",
    "address_line",
    "street",
    "building",
    "flat",
    "state",
    "ipv4",
    "ipv6",
    "document",
    "account",
    "currency",
    "bank_name",
    "registration_number",
    "date_of_incorporation",
    "msisdn",
    "email",
    "code",
    "swift_bic_code",
    "description",
    "identity_document",
    "beneficiary_id",
    "wallet_id",
    "citizenship_country_iso_3",
    "date_of_birth",
    "phone",
    "contacts",
    "birth_date",
    "birth_place",
    "nationality",
];

/// A payout method as the session keeps it: its masked form (never a clear
/// card or account number) and whether the recipient's bank may return it.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodParts {
    pub masked: Value,
    pub returnable: bool,
    /// The holder the method names ([`PayoutMethod::holder`]).
    pub holder: Option<String>,
}

impl From<&PayoutMethod> for MethodParts {
    fn from(m: &PayoutMethod) -> Self {
        Self { masked: m.masked(), returnable: m.returnable(), holder: m.holder().map(str::to_string) }
    }
}

/// The payout fields one request carried, each optional: `session/create`
/// may send any of them and `session/start/payout` completes the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayoutParts {
    pub method: Option<MethodParts>,
    pub amount: Option<Money>,
    pub participant_details: Option<Value>,
    pub customer: Option<Value>,
    pub metadata: Option<Value>,
    /// A self-employed person's receipt to register (`fiscalization_details`).
    pub fiscalization: Option<Fiscalization>,
}

/// A whole payout: method, amount and the partner's echo fields (nulls removed).
#[derive(Debug, Clone, PartialEq)]
pub struct PayoutRequest {
    pub method: MethodParts,
    pub amount: Money,
    pub participant_details: Value,
    pub customer: Option<Value>,
    pub metadata: Option<Value>,
    /// Checked against the amount: the services add up to it, in roubles.
    pub fiscalization: Option<Fiscalization>,
}

impl PayoutParts {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `self` with every field `over` carries replaced (start over create).
    pub fn overlaid_with(self, over: PayoutParts) -> PayoutParts {
        PayoutParts {
            method: over.method.or(self.method),
            amount: over.amount.or(self.amount),
            participant_details: over.participant_details.or(self.participant_details),
            customer: over.customer.or(self.customer),
            metadata: over.metadata.or(self.metadata),
            fiscalization: over.fiscalization.or(self.fiscalization),
        }
    }

    /// The whole payout, or every missing required field named
    /// (`method_key` is the version's name of the method).
    pub fn complete(self, method_key: &str) -> Result<PayoutRequest, Vec<FieldError>> {
        self.complete_named(method_key, false)
    }

    /// [`PayoutParts::complete`]; with `method_may_name`, a bank account that
    /// names its holder (`ru.full_name`) stands for the recipient's name, as
    /// the settlement-account docs send it (`participant_details.sender` only).
    pub fn complete_named(self, method_key: &str, method_may_name: bool) -> Result<PayoutRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let named_by_method = method_may_name && self.method.as_ref().is_some_and(|m| m.holder.is_some());
        if self.method.is_none() {
            errors.push(FieldError::new(method_key, "is required"));
        }
        if self.amount.is_none() {
            errors.push(FieldError::new("amount_details", "is required"));
        }
        match &self.participant_details {
            None => errors.push(FieldError::new("participant_details", "is required")),
            Some(p) if !has_recipient_name(p) && !named_by_method => errors
                .push(FieldError::new("participant_details.recipient", "needs full_name or first_name and last_name")),
            Some(_) => {}
        }
        if let (Some(fiscal), Some(amount)) = (&self.fiscalization, &self.amount) {
            errors.extend(crate::fiscal::check_against(fiscal, amount));
        }
        match (self.method, self.amount, self.participant_details) {
            (Some(method), Some(amount), Some(participant_details)) if errors.is_empty() => Ok(PayoutRequest {
                method,
                amount,
                participant_details,
                customer: self.customer,
                metadata: self.metadata,
                fiscalization: self.fiscalization,
            }),
            _ => Err(errors),
        }
    }

    /// The draft a created session keeps, as JSON text, written from
    /// borrowed parts: building a tree first cloned every echo field (2 % of
    /// the workers under signed `session/create`). The fields come in the
    /// order of their names, as a `serde_json` object writes its keys.
    pub fn draft_json(&self) -> serde_json::Result<String> {
        #[derive(serde::Serialize)]
        struct Amount<'a> {
            amount: i64,
            currency: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Draft<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            amount_details: Option<Amount<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            customer: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            fiscalization_details: Option<Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            holder: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            metadata: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            method: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            participant_details: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            returnable: Option<bool>,
        }
        let method = self.method.as_ref();
        serde_json::to_string(&Draft {
            amount_details: self.amount.as_ref().map(|a| Amount { amount: a.amount(), currency: a.currency() }),
            customer: self.customer.as_ref(),
            fiscalization_details: self.fiscalization.as_ref().map(|f| f.wire(None)),
            holder: method.and_then(|m| m.holder.as_deref()),
            metadata: self.metadata.as_ref(),
            method: method.map(|m| &m.masked),
            participant_details: self.participant_details.as_ref(),
            returnable: method.map(|m| m.returnable),
        })
    }

    /// Reads back [`PayoutParts::draft_json`]; `None` if it is not one.
    pub fn from_draft(draft: &Value) -> Option<PayoutParts> {
        let d = draft.as_object()?;
        let method = match (d.get("method"), d.get("returnable")) {
            (Some(masked), Some(Value::Bool(returnable))) => {
                let holder = match d.get("holder") {
                    Some(h) => Some(h.as_str()?.to_string()),
                    None => None,
                };
                Some(MethodParts { masked: masked.clone(), returnable: *returnable, holder })
            }
            (None, None) => None,
            _ => return None,
        };
        let amount = match d.get("amount_details") {
            Some(a) => Some(Money::new(a.get("amount")?.as_i64()?, a.get("currency")?.as_str()?).ok()?),
            None => None,
        };
        Some(PayoutParts {
            method,
            amount,
            participant_details: d.get("participant_details").cloned(),
            customer: d.get("customer").cloned(),
            metadata: d.get("metadata").cloned(),
            fiscalization: match d.get("fiscalization_details") {
                Some(f) => Some(Fiscalization::parse_stored(&f.to_string())?),
                None => None,
            },
        })
    }
}

fn has_recipient_name(p: &Value) -> bool {
    let has =
        |k: &str| p.pointer(&format!("/recipient/{k}")).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
    has("full_name") || (has("first_name") && has("last_name"))
}

/// Which name the method has in this body: `payout_details` (v2) or
/// `payment_method` (v1); either is accepted on both versions, not both at once.
pub fn method_key(body: &Map<String, Value>) -> &'static str {
    if present(body, "payout_details") {
        "payout_details"
    } else {
        "payment_method"
    }
}

/// [`method_key`], refusing a body that sends the method under both names.
pub(crate) fn method_key_once(f: &mut Fields<'_>, body: &Map<String, Value>) -> &'static str {
    if present(body, "payment_method") && present(body, "payout_details") {
        f.err("payout_details", "send the method once: payment_method (v1) or payout_details (v2)");
    }
    method_key(body)
}

/// Parses the payout fields of a body, refusing every key `call` does not take.
pub fn parse_parts(body: &Map<String, Value>, call: PayoutCall, today: Date) -> Result<PayoutParts, Vec<FieldError>> {
    let (parts, mut errors) = collect_parts(body, call, today);
    if errors.is_empty() {
        Ok(parts)
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(errors)
    }
}

/// Parses a whole payout (`session/init/payout`): every bad field and every
/// missing one named at once. `method_name` names a missing method (the
/// request version's name).
pub fn parse_payout(
    body: &Map<String, Value>,
    today: Date,
    method_name: &str,
) -> Result<PayoutRequest, Vec<FieldError>> {
    parse_payout_named(body, today, method_name, false)
}

/// [`parse_payout`], completed by [`PayoutParts::complete_named`].
pub fn parse_payout_named(
    body: &Map<String, Value>,
    today: Date,
    method_name: &str,
    method_may_name: bool,
) -> Result<PayoutRequest, Vec<FieldError>> {
    let (parts, mut errors) = collect_parts(body, PayoutCall::Init, today);
    let bad = errors.clone();
    let mentioned = |field: &str| bad.iter().any(|e| e.field == field || e.field.starts_with(&format!("{field}.")));
    let method_sent = mentioned("payment_method") || mentioned("payout_details");
    match parts.complete_named(method_name, method_may_name) {
        Ok(request) if errors.is_empty() => return Ok(request),
        Ok(_) => {}
        // A field already named as bad is not also named as missing.
        Err(missing) => errors.extend(missing.into_iter().filter(|e| {
            let already = if e.field == method_name { method_sent } else { mentioned(&e.field) };
            !already
        })),
    }
    errors.sort_by(|a, b| a.field.cmp(&b.field));
    Err(errors)
}

/// The parts a body carries and the errors of its bad fields.
fn collect_parts(body: &Map<String, Value>, call: PayoutCall, today: Date) -> (PayoutParts, Vec<FieldError>) {
    let Some(nested) = unnest(body) else { return collect_flat(body, call, today) };
    let (parts, mut errors) = collect_flat(&nested.flat, call, today);
    // Name each field where the partner sent it.
    for e in &mut errors {
        if let Some(rest) = e.field.strip_prefix("payout_details") {
            e.field = format!("payout_details.payment_method{rest}");
        } else if let Some(key) = e.field.strip_prefix("participant_details.recipient.") {
            let top = key.split(['.', '[']).next().unwrap_or(key);
            if nested.recipient_keys.iter().any(|k| k == top) {
                e.field = format!("payout_details.recipient.{key}");
            }
        }
    }
    errors.extend(nested.errors);
    (parts, errors)
}

/// `payout_details` sent as `{payment_method, recipient}` `[INF]` (the
/// shape of the performance issue's benchmark body), read as the flat form.
struct Nested {
    /// The body with the method under `payout_details`, the recipient's
    /// fields added to `participant_details.recipient`.
    flat: Map<String, Value>,
    /// The recipient's fields that came from `payout_details.recipient`.
    recipient_keys: Vec<String>,
    /// What was wrong with the nesting itself.
    errors: Vec<FieldError>,
}

/// The nested form read flat (a recipient field sent in both places must
/// agree); `None` when the body has the flat (SDK) form.
fn unnest(body: &Map<String, Value>) -> Option<Nested> {
    let Some(Value::Object(nested)) = body.get("payout_details") else { return None };
    if !nested.contains_key("payment_method") || nested.contains_key("type") {
        return None;
    }
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(nested, "payout_details", &["payment_method", "recipient"], &[]);
    // Every field but the nesting copied once: the nesting's own copy would be dropped unread.
    let mut flat: Map<String, Value> =
        body.iter().filter(|(k, _)| *k != "payout_details").map(|(k, v)| (k.clone(), v.clone())).collect();
    flat.insert("payout_details".into(), nested["payment_method"].clone());
    let mut recipient_keys = Vec::new();
    if let Some(Some(recipient)) = f.optional_object(nested, "recipient", "payout_details.recipient") {
        // A null is absent, as everywhere: the recipient's object is made.
        let participants = flat.entry("participant_details").or_insert(Value::Null);
        if participants.is_null() {
            *participants = Value::Object(Map::new());
        }
        if let Some(p) = participants.as_object_mut() {
            let side = p.entry("recipient").or_insert(Value::Null);
            if side.is_null() {
                *side = Value::Object(Map::new());
            }
            recipient_keys = merge_recipient(f, side, recipient);
        }
        // Otherwise the flat reading names participant_details as it is.
    }
    Some(Nested { flat, recipient_keys, errors })
}

/// Adds `from`'s fields to the recipient `into`; a field both name must
/// agree. The fields added, by name.
fn merge_recipient(f: &mut Fields<'_>, into: &mut Value, from: &Map<String, Value>) -> Vec<String> {
    let Some(into) = into.as_object_mut() else { return Vec::new() };
    let mut added = Vec::new();
    for (key, value) in from {
        match into.get(key) {
            Some(given) if !given.is_null() && given != value => f.err(
                &join("payout_details.recipient", key),
                format!("differs from participant_details.recipient.{key}: send it once"),
            ),
            Some(given) if !given.is_null() => {}
            _ => {
                into.insert(key.clone(), value.clone());
                added.push(key.clone());
            }
        }
    }
    added
}

fn collect_flat(body: &Map<String, Value>, call: PayoutCall, today: Date) -> (PayoutParts, Vec<FieldError>) {
    let mut errors = Vec::new();
    let mut f = Fields { errors: &mut errors };
    let mut allowed: Vec<&str> = PAYOUT_KEYS.to_vec();
    if call == PayoutCall::Start {
        allowed.push("session_id");
    }
    f.only(body, "", &allowed, &REFUSED_KEYS);
    let present = |k: &str| present(body, k);
    let key = method_key_once(&mut f, body);
    let method = match present(key) {
        true => {
            f.object(body, key, key).and_then(|m| parse_method(&mut f, m, key, today)).map(|m| MethodParts::from(&m))
        }
        false => None,
    };
    let amount = match present("amount_details") {
        true => f.object(body, "amount_details", "amount_details").and_then(|a| parse_amount(&mut f, a)),
        false => None,
    };
    let participant_details = match present("participant_details") {
        true => {
            f.object(body, "participant_details", "participant_details").and_then(|p| parse_participants(&mut f, p))
        }
        false => None,
    };
    let customer = match present("customer") {
        true => f.object(body, "customer", "customer").and_then(|c| parse_customer(&mut f, c)),
        false => None,
    };
    let metadata = body.get("metadata").and_then(strip_nulls);
    let fiscalization = body
        .get("fiscalization_details")
        .filter(|v| !v.is_null())
        .and_then(|v| crate::fiscal::parse(&mut f, v, "fiscalization_details"));
    (PayoutParts { method, amount, participant_details, customer, metadata, fiscalization }, errors)
}

/// Reads `amount_details` (`{amount, currency}`), the one reader payouts and payments share.
pub(crate) fn parse_amount(f: &mut Fields<'_>, a: &Map<String, Value>) -> Option<Money> {
    f.only(a, "amount_details", &["amount", "currency"], &[]);
    let amount = match a.get("amount") {
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        None | Some(Value::Null) => {
            f.err("amount_details.amount", "is required");
            None
        }
        Some(_) => {
            f.err("amount_details.amount", "must be an integer (minor units)");
            None
        }
    };
    let currency = f.string(a, "currency", "amount_details.currency");
    let (amount, currency) = (amount?, currency?);
    if amount > PAYOUT_AMOUNT_MAX_MINOR {
        f.err("amount_details.amount", format!("must be at most {PAYOUT_AMOUNT_MAX_MINOR}"));
        return None;
    }
    match Money::new(amount, &currency) {
        Ok(m) => Some(m),
        Err(msg) => {
            let field = if msg.starts_with("amount") { "amount_details.amount" } else { "amount_details.currency" };
            f.err(field, msg);
            None
        }
    }
}

fn parse_participants(f: &mut Fields<'_>, p: &Map<String, Value>) -> Option<Value> {
    f.only(p, "participant_details", &["sender", "recipient"], &[]);
    for side in ["sender", "recipient"] {
        let path = join("participant_details", side);
        if let Some(Some(person)) = f.optional_object(p, side, &path) {
            f.only(person, &path, &PARTICIPANT_KEYS, &[]);
        }
    }
    Some(Value::Object(strip_nulls_map(p)))
}

pub(crate) fn parse_customer(f: &mut Fields<'_>, c: &Map<String, Value>) -> Option<Value> {
    f.only(c, "customer", &["reference", "contacts"], &[]);
    f.optional_string(c, "reference", "customer.reference");
    match c.get("contacts") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("customer.contacts[{i}]");
                match item {
                    Value::Object(contact) => f.only(contact, &path, &["email", "phone"], &[]),
                    _ => f.err(&path, "must be an object"),
                }
            }
        }
        Some(_) => f.err("customer.contacts", "must be an array"),
    }
    Some(Value::Object(strip_nulls_map(c)))
}

/// A copy of `value` without its `null`s (and keys holding them), so echoed
/// partner data never emits `null`. Copied in one pass from the borrowed
/// body: every caller kept a part of it, and cloning that part only to take
/// it apart and build it again was about 1.5 % of `session/create` (issue 12).
pub fn strip_nulls(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(strip_nulls).collect())),
        Value::Object(map) => Some(Value::Object(strip_nulls_map(map))),
        other => Some(other.clone()),
    }
}

/// An object's copy without its `null`s ([`strip_nulls`]).
pub fn strip_nulls_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter().filter_map(|(k, v)| Some((k.clone(), strip_nulls(v)?))).collect()
}

/// What the sandbox provider will do with a payout, decided when it is
/// created and stored under the names of [`SandboxPlan::as_stored`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxPlan {
    Succeed,
    /// Succeeds after the long provider delay.
    SucceedSlowly,
    /// Succeeds, then the recipient's bank returns it (bank accounts only).
    SucceedThenReturned,
    Fail(FailureCode),
}

impl SandboxPlan {
    /// The stored name: `ok`, `ok:slow`, `ok:returned` or `fail:<code>`.
    pub fn as_stored(self) -> String {
        match self {
            Self::Succeed => "ok".into(),
            Self::SucceedSlowly => "ok:slow".into(),
            Self::SucceedThenReturned => "ok:returned".into(),
            Self::Fail(code) => format!("fail:{}", code.as_str()),
        }
    }

    pub fn parse_stored(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Self::Succeed),
            "ok:slow" => Some(Self::SucceedSlowly),
            "ok:returned" => Some(Self::SucceedThenReturned),
            _ => s.strip_prefix("fail:").and_then(FailureCode::parse).map(Self::Fail),
        }
    }

    /// The provider's verdict when its answer is due.
    pub fn provider_event(self) -> crate::payout_flow::PayoutEvent {
        use crate::payout_flow::PayoutEvent as Event;
        match self {
            Self::Fail(code) => Event::ProviderFailed(code),
            Self::SucceedThenReturned => Event::ProviderSucceeded { returned: true },
            Self::Succeed | Self::SucceedSlowly => Event::ProviderSucceeded { returned: false },
        }
    }
}

/// The sandbox outcome table (README): exact amounts, in minor units, choose
/// the outcome; any other valid payout succeeds.
pub fn sandbox_plan(method: &MethodParts, amount: &Money) -> SandboxPlan {
    use SandboxPlan::Fail;
    match amount.amount() {
        13_102 => Fail(FailureCode::DeclinedByIssuerBank),
        13_103 => Fail(FailureCode::NotPermittedByIssuerBank),
        13_104 => Fail(FailureCode::BankCardExpired),
        13_105 => Fail(FailureCode::CardNumberDoesNotExist),
        13_106 => Fail(FailureCode::AccountNotFound),
        13_107 => Fail(FailureCode::ProviderTimeout),
        13_108 => Fail(FailureCode::ProviderExceedsAmountLimit),
        13_109 => SandboxPlan::SucceedSlowly,
        13_110 if method.returnable => SandboxPlan::SucceedThenReturned,
        _ => SandboxPlan::Succeed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TODAY: Date = time::macros::date!(2026 - 11 - 30);

    #[test]
    fn nulls_are_dropped_at_every_depth_and_the_rest_kept() {
        let sent = json!({"a": null, "b": {"c": null, "d": [1, null, {"e": null, "f": "x"}]}, "g": 0});
        assert_eq!(strip_nulls(&sent), Some(json!({"b": {"d": [1, {"f": "x"}]}, "g": 0})));
        assert_eq!(strip_nulls(&Value::Null), None);
        let Value::Object(map) = sent else { unreachable!() };
        assert_eq!(Value::Object(strip_nulls_map(&map)), json!({"b": {"d": [1, {"f": "x"}]}, "g": 0}));
    }

    #[test]
    fn every_plan_reads_back_from_its_stored_name() {
        let mut plans = vec![SandboxPlan::Succeed, SandboxPlan::SucceedSlowly, SandboxPlan::SucceedThenReturned];
        plans.extend(FailureCode::ALL.map(SandboxPlan::Fail));
        for plan in plans {
            assert_eq!(SandboxPlan::parse_stored(&plan.as_stored()), Some(plan));
        }
        assert_eq!(SandboxPlan::parse_stored("fail:nonsense"), None);
        assert_eq!(SandboxPlan::parse_stored("OK"), None);
    }

    #[test]
    fn tax_payments_are_shown_with_the_payer_inn_and_accounts_masked() {
        let body = json!({
            "payment_method": {"type": "tax", "tax": {"type": "tax_full", "uin": "0",
                "tax_details": {"kbk": "18210102010011000110", "oktmo": "45000000"},
                "payer": {"inn": "500100732259"},
                "payee": {"bik": "024501901", "account": "03100643000000017300", "name": "УФК", "inn": "7727406020", "kpp": "770801001"}}},
            "participant_details": {"recipient": {"full_name": "И"}},
            "amount_details": {"amount": 100, "currency": "rub"}
        });
        let p = parse_payout(body.as_object().unwrap(), TODAY, "payment_method").unwrap();
        let shown = &p.method.masked;
        assert_eq!(shown["tax"]["payer"]["inn"], "********2259");
        assert_eq!(shown["tax"]["payee"]["account"], "****************7300");
        assert_eq!(shown["tax"]["tax_details"]["kbk"], "18210102010011000110");
        assert!(!shown.to_string().contains("500100732259"));
    }

    fn fields_of(body: Value, call: PayoutCall) -> Vec<String> {
        match parse_parts(body.as_object().unwrap(), call, TODAY) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn fields_not_acted_on_are_refused_by_name() {
        let body = json!({
            "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242", "pin": "1"}}, "extra": 1},
            "amount_details": {"amount": 100, "currency": "rub", "fee": 1},
            "participant_details": {"recipient": {"full_name": "A", "nickname": "b"}, "witness": {}},
            "customer": {"reference": "u1", "contacts": [{"email": "a@b", "fax": "1"}]},
            "fiscalization_details": {"x": 1},
            "custom_routing": {"tags": []},
            "colour": "red",
            "session_id": "ps_1",
        });
        let fields = fields_of(body, PayoutCall::Init);
        for f in [
            "payment_method.card.bank_card.pin",
            "payment_method.extra",
            "amount_details.fee",
            "participant_details.recipient.nickname",
            "participant_details.witness",
            "customer.contacts[0].fax",
            // Served now: a stray key inside it is named, and what it lacks.
            "fiscalization_details.x",
            "fiscalization_details.professional_income_taxpayer",
            "custom_routing",
            "colour",
            "session_id",
        ] {
            assert!(fields.contains(&f.to_string()), "{f} not refused: {fields:?}");
        }
        // Nulls are absent, and start/payout takes session_id.
        assert!(fields_of(json!({"session_id": "ps_1", "metadata": null, "custom_routing": null}), PayoutCall::Start)
            .is_empty());
    }

    #[test]
    fn the_nested_payout_details_form_reads_as_the_flat_one() {
        let card = json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}});
        let nested = json!({"payout_details": {"payment_method": card, "recipient": {"full_name": "Ivan Petrov"}},
            "amount_details": {"amount": 10_000, "currency": "rub"},
            "participant_details": {"recipient": {"full_name": "Ivan Petrov", "reference": "user_42"}}});
        let flat = json!({"payout_details": card, "amount_details": {"amount": 10_000, "currency": "rub"},
            "participant_details": {"recipient": {"full_name": "Ivan Petrov", "reference": "user_42"}}});
        let read = |v: &Value| parse_parts(v.as_object().unwrap(), PayoutCall::Create, TODAY);
        assert_eq!(read(&nested).unwrap(), read(&flat).unwrap());
        // The recipient alone names the person.
        let alone = json!({"payout_details": {"payment_method": card, "recipient": {"full_name": "Ivan Petrov"}}});
        let parts = read(&alone).unwrap();
        assert_eq!(parts.participant_details.unwrap()["recipient"]["full_name"], "Ivan Petrov");
        // Disagreeing names, a stray key and a bad card are each named where sent.
        let bad = json!({"payout_details": {"payment_method": {"type": "card", "card": {"type": "bank_card",
                "bank_card": {"number": "4242424242424241"}}}, "recipient": {"full_name": "B"}, "x": 1},
            "participant_details": {"recipient": {"full_name": "A"}}});
        let fields: Vec<String> = read(&bad).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "payout_details.payment_method.card.bank_card.number",
                "payout_details.recipient.full_name",
                "payout_details.x"
            ]
        );
        // A recipient's own bad field is named where it was sent; a null participant_details is absent.
        let odd = json!({"payout_details": {"payment_method": card, "recipient": {"full_name": "A", "nickname": "b"}},
            "participant_details": null});
        let fields: Vec<String> = read(&odd).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["payout_details.recipient.nickname"]);
        let bad_card = json!({"payout_details": {"payment_method": {"type": "card", "card": {"type": "bank_card",
                "bank_card": {"number": "4242424242424241"}}}}});
        let fields: Vec<String> = read(&bad_card).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["payout_details.payment_method.card.bank_card.number"]);
    }

    #[test]
    fn a_draft_is_written_as_its_tree_would_be() {
        let fiscal = crate::fiscal::Fiscalization::parse_stored(
            r#"{"professional_income_taxpayer": {"tax_reference": "500100732259", "payer_type": "legal",
                "payer_tax_number": "7707083893", "payer_name": "OOO Vector",
                "services": [{"name": "Goods delivery", "amount_details": {"amount": 5000, "currency": "rub"}, "quantity": 1}]}}"#,
        )
        .unwrap();
        let masked = json!({"type": "bank_account", "bank_account": {"ru": {"full_name": "Ivan \"Petrov\""}}});
        let full = PayoutParts {
            method: Some(MethodParts { masked: masked.clone(), returnable: true, holder: Some("Иван".into()) }),
            amount: Some(Money::new(5000, "rub").unwrap()),
            participant_details: Some(json!({"recipient": {"full_name": "Ivan Petrov"}})),
            customer: Some(json!({"reference": "c1"})),
            metadata: Some(json!({"order": "42", "nested": [1, {"b": null}]})),
            fiscalization: Some(fiscal.clone()),
        };
        // The tree the draft used to be built as, written by serde_json.
        let tree = json!({"method": masked, "returnable": true, "holder": "Иван",
            "amount_details": {"amount": 5000, "currency": "rub"},
            "participant_details": full.participant_details, "customer": full.customer, "metadata": full.metadata,
            "fiscalization_details": fiscal.wire(None)});
        assert_eq!(full.draft_json().unwrap(), tree.to_string());
        let bare = PayoutParts { metadata: Some(json!({"a": 1})), ..PayoutParts::default() };
        assert_eq!(bare.draft_json().unwrap(), r#"{"metadata":{"a":1}}"#);
        assert_eq!(PayoutParts::default().draft_json().unwrap(), "{}");
        let back: Value = serde_json::from_str(&full.draft_json().unwrap()).unwrap();
        assert_eq!(PayoutParts::from_draft(&back), Some(full));
    }

    #[test]
    fn drafts_round_trip_and_start_completes_them() {
        let create = json!({"payout_details": {"type": "bank_account", "bank_account": {"system_type": "faster_payment_system",
                "faster_payment_system": {"phone": "79261234567", "bank_id": "100000000069"}}},
            "amount_details": {"amount": 10_000, "currency": "rub"}});
        let parts = parse_parts(create.as_object().unwrap(), PayoutCall::Create, TODAY).unwrap();
        let draft: Value = serde_json::from_str(&parts.draft_json().unwrap()).unwrap();
        assert_eq!(PayoutParts::from_draft(&draft), Some(parts.clone()));
        assert_eq!(parts.clone().complete("payout_details").unwrap_err()[0].field, "participant_details");
        let start =
            json!({"session_id": "ps_1", "participant_details": {"recipient": {"first_name": "A", "last_name": "B"}}});
        let more = parse_parts(start.as_object().unwrap(), PayoutCall::Start, TODAY).unwrap();
        let whole = parts.overlaid_with(more).complete("payout_details").unwrap();
        assert_eq!(whole.amount.amount(), 10_000);
        assert_eq!(whole.method.masked["bank_account"]["faster_payment_system"]["phone"], "7926***4567");
        assert!(!whole.method.returnable);
        assert!(PayoutParts::default().is_empty());
    }

    fn method(m: Value) -> Result<Value, Vec<FieldError>> {
        let body = json!({"payment_method": m, "amount_details": {"amount": 100, "currency": "rub"},
            "participant_details": {"recipient": {"full_name": "A B"}}});
        parse_payout(body.as_object().unwrap(), TODAY, "payment_method").map(|p| p.method.masked)
    }

    #[test]
    fn every_method_the_sdk_builds() {
        let served = [
            json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000004940"}}}),
            json!({"type": "faster_payment_system", "faster_payment_system": {"phone": "+79261234567", "bank_id": "100000000111"}}),
            json!({"type": "bank_account", "bank_account": {"system_type": "iban", "iban": {"account": "DE89370400440532013000"}}}),
            json!({"type": "bank_account", "bank_account": {"system_type": "upi", "upi": []}}),
            json!({"type": "wallet", "wallet": {"type": "moneta", "moneta": {"account": "12345678", "description": "d"}}}),
            json!({"type": "wallet", "wallet": {"type": "steam", "steam": {"account": "gamer_1"}}}),
            json!({"type": "wallet", "wallet": {"type": "telegram", "telegram": {"account": "@courier_17"}}}),
            json!({"type": "wallet", "wallet": {"type": "qiwi", "qiwi": {"account": "9111111111"}}}),
            json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"bik": "123456789",
                "account": "12345678901234567890", "full_name": "A B", "description": "d", "is_fast": false}}}),
            json!({"type": "crypto_wallet", "crypto_wallet": {"type": "ton", "ton": {
                "address": "EQDtFpEwcFAEcRe5mLVh2N6C0x-_hJEM7W61_JLnSF74p4q2", "product_id": "p1", "product_name": "Coins"}}}),
        ];
        for m in served {
            let shown = method(m.clone()).unwrap_or_else(|e| panic!("{m}: {e:?}"));
            assert_eq!(shown["type"], m["type"]);
        }
        let refused = [
            (
                json!({"type": "card", "card": {"type": "tokenized_card", "tokenized_card": {"token": "t"}}}),
                "payment_method.card.type",
            ),
            (
                json!({"type": "card", "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": "h"}}}),
                "payment_method.card.type",
            ),
            (
                json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"token": "t"}}}),
                "payment_method.bank_account.ru.token",
            ),
            (
                json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system_verification",
                "faster_payment_system_verification": {"phone": "79261234567", "bank_id": "100000000069"}}}),
                "payment_method.bank_account.system_type",
            ),
            (json!({"type": "internet_banking", "internet_banking": {"type": "sber_pay"}}), "payment_method.type"),
            (
                json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system",
                "faster_payment_system": {"phone": "79261234567", "bank_id": "100000000000"}}}),
                "payment_method.bank_account.faster_payment_system.bank_id",
            ),
        ];
        for (m, field) in refused {
            let errors = method(m.clone()).expect_err(&m.to_string());
            assert!(errors.iter().any(|e| e.field == field), "{m}: {errors:?}");
        }
    }

    #[test]
    fn what_is_checked_is_shown_or_refused() {
        // ru.inn and kpp are echoed (the INN masked), not dropped.
        let shown = method(json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {
            "bik": "123456789", "account": "12345678901234567890", "full_name": "A B", "description": "d",
            "inn": "7707083893", "kpp": "773601001"}}}))
        .unwrap();
        assert_eq!(shown["bank_account"]["ru"]["inn"], "******3893");
        assert_eq!(shown["bank_account"]["ru"]["kpp"], "773601001");
        // tax_short takes a period only: payee, payer and uin belong to tax_full.
        let short = json!({"type": "tax", "tax": {"type": "tax_short", "uin": "abc", "payee": {"account": "x"},
            "tax_details": {"period": {"type": "month", "number": 1, "year": 2025}}}});
        let fields: Vec<String> = method(short).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["payment_method.tax.payee", "payment_method.tax.uin"]);
    }

    #[test]
    fn the_bank_currencies() {
        for c in ["rub", "usd", "eur", "tonc", "RUB"] {
            assert!(Money::new(1, c).is_ok(), "{c}");
        }
        assert!(Money::new(1, "btc").is_err());
    }
}
