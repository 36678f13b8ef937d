//! `session/multi/init` (the official SDK's `session/init/session`): one session that takes a customer's payment and then
//! pays out, its operations in turn (the session's machine, [`crate::session`],
//! runs them). This module reads the request's two forms into one payment body
//! and a list of payout bodies, each then parsed by its own method's parser
//! ([`crate::payment::parse_payment`], [`crate::payout::parse_payout_named`]),
//! and names their errors as the partner sent the fields.
//!
//! - The official SDK's form: `payment_details_multi` and `payout_details_multi`
//!   (lists of methods) with one `amount_details`, `customer`,
//!   `participant_details`, `metadata`, `custom_routing` and `payment_options`
//!   for the whole session. With one amount it holds one payment and one
//!   payout of it `[INF]` (several payouts of the whole amount would pay out
//!   more than came in).
//! - The form the spec describes: `payment_list` and `payout_list`, each item a
//!   whole `session/init/payment` or `session/init/payout` body.
//!
//! Decision `[INF]`: a multi-session holds exactly one payment (the customer
//! pays once) and one to [`MULTI_PAYOUTS_MAX`] payouts (one in the SDK's
//! form), paid in list order after the payment has succeeded (been captured).

use serde_json::{Map, Value};

use crate::FieldError;

/// Payouts one multi-session may hold.
pub const MULTI_PAYOUTS_MAX: usize = 10;

/// Which form the request came in (it decides how errors are named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `payment_details_multi` / `payout_details_multi` with shared fields.
    Sdk,
    /// `payment_list` / `payout_list` of whole bodies.
    Lists,
}

/// A multi-session request split into the bodies of its operations.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiBodies {
    form: Form,
    /// The payout method's name in the payout bodies (`payout_details` or `payment_method`).
    method_key: &'static str,
    pub payment: Map<String, Value>,
    pub payouts: Vec<Map<String, Value>>,
}

/// Fields of the SDK's form shared by every operation, and who takes them.
const SHARED_BY_PAYMENT: [&str; 6] =
    ["amount_details", "customer", "participant_details", "metadata", "custom_routing", "payment_options"];
/// (`custom_routing` goes to the payment alone, whose parser answers for it once.)
const SHARED_BY_PAYOUT: [&str; 4] = ["amount_details", "customer", "participant_details", "metadata"];

/// Splits `body`; `method_key` is the version's name of a payout method.
pub fn split(body: &Map<String, Value>, method_key: &'static str) -> Result<MultiBodies, Vec<FieldError>> {
    let sdk = body.contains_key("payment_details_multi") || body.contains_key("payout_details_multi");
    let lists = body.contains_key("payment_list") || body.contains_key("payout_list");
    let mut errors = Vec::new();
    let split = match (sdk, lists) {
        (true, true) => {
            let why = "belongs to the other form: send payment_list and payout_list, or payment_details_multi \
                       and payout_details_multi, not both";
            let named = if body.contains_key("payment_list") { "payment_list" } else { "payout_list" };
            errors.push(FieldError::new(named, why));
            None
        }
        (false, true) => split_lists(body, method_key, &mut errors),
        _ => split_sdk(body, method_key, &mut errors),
    };
    match split {
        Some(s) if errors.is_empty() => Ok(s),
        _ => Err(errors),
    }
}

fn split_sdk(body: &Map<String, Value>, method_key: &'static str, errors: &mut Vec<FieldError>) -> Option<MultiBodies> {
    let mut known: Vec<&str> = vec!["payment_details_multi", "payout_details_multi"];
    known.extend(SHARED_BY_PAYMENT);
    for key in body.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(FieldError::new(key.as_str(), "is not a field of session/multi/init"));
    }
    let payments = list(body, "payment_details_multi", 1, errors);
    let payouts = list(body, "payout_details_multi", 1, errors);
    let (payments, payouts) = (payments?, payouts?);
    let shared = |keys: &[&str]| -> Map<String, Value> {
        keys.iter().filter_map(|k| body.get(*k).map(|v| (k.to_string(), v.clone()))).collect()
    };
    let mut payment = shared(&SHARED_BY_PAYMENT);
    payment.insert("payment_details".into(), payments.first()?.clone());
    let payouts = payouts
        .iter()
        .map(|method| {
            let mut payout = shared(&SHARED_BY_PAYOUT);
            payout.insert(method_key.into(), method.clone());
            payout
        })
        .collect();
    Some(MultiBodies { form: Form::Sdk, method_key, payment, payouts })
}

fn split_lists(
    body: &Map<String, Value>,
    method_key: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<MultiBodies> {
    for key in body.keys().filter(|k| !["payment_list", "payout_list"].contains(&k.as_str())) {
        let why = "is not a field of session/multi/init with payment_list: send it inside the list's items";
        errors.push(FieldError::new(key.as_str(), why));
    }
    let objects = |name: &str, max: usize, errors: &mut Vec<FieldError>| -> Option<Vec<Map<String, Value>>> {
        let items = list(body, name, max, errors)?;
        let mut maps = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::Object(m) => maps.push(m.clone()),
                _ => errors.push(FieldError::new(format!("{name}[{i}]"), "must be an object")),
            }
        }
        (maps.len() == items.len()).then_some(maps)
    };
    let payments = objects("payment_list", 1, errors);
    let payouts = objects("payout_list", MULTI_PAYOUTS_MAX, errors);
    let payment = payments?.into_iter().next()?;
    Some(MultiBodies { form: Form::Lists, method_key, payment, payouts: payouts? })
}

/// The non-empty list `name`, of at most `max` items.
fn list<'b>(body: &'b Map<String, Value>, name: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<&'b [Value]> {
    let why = match body.get(name) {
        None | Some(Value::Null) => "is required: a non-empty list".to_string(),
        Some(Value::Array(items)) if items.is_empty() => "must not be empty".to_string(),
        Some(Value::Array(items)) if items.len() > max && name == "payout_details_multi" => {
            "holds one payout of amount_details: send several payouts as payout_list, each with its own amount"
                .to_string()
        }
        Some(Value::Array(items)) if items.len() > max && max == 1 => {
            "holds one payment: the customer pays once in a multi-session".to_string()
        }
        Some(Value::Array(items)) if items.len() > max => format!("holds at most {max} payouts"),
        Some(Value::Array(items)) => return Some(items),
        Some(_) => "must be a list".to_string(),
    };
    errors.push(FieldError::new(name, why));
    None
}

impl MultiBodies {
    /// The payment body's `field` as the partner sent it.
    pub fn payment_field(&self, field: &str) -> String {
        match self.form {
            Form::Lists => format!("payment_list[0].{field}"),
            Form::Sdk => renamed(field, "payment_details", "payment_details_multi[0]"),
        }
    }

    /// Payout `i`'s `field` as the partner sent it.
    pub fn payout_field(&self, i: usize, field: &str) -> String {
        match self.form {
            Form::Lists => format!("payout_list[{i}].{field}"),
            Form::Sdk => renamed(field, self.method_key, &format!("payout_details_multi[{i}]")),
        }
    }

    /// The errors of every operation's body, named as sent, each once (a
    /// shared field of the SDK's form is read by every operation).
    pub fn name_errors(&self, payment: Vec<FieldError>, payouts: Vec<(usize, Vec<FieldError>)>) -> Vec<FieldError> {
        let mut all: Vec<FieldError> =
            payment.into_iter().map(|e| FieldError::new(self.payment_field(&e.field), e.message)).collect();
        for (i, errors) in payouts {
            all.extend(errors.into_iter().map(|e| FieldError::new(self.payout_field(i, &e.field), e.message)));
        }
        all.sort_by(|a, b| (&a.field, &a.message).cmp(&(&b.field, &b.message)));
        all.dedup();
        all
    }
}

/// `field` with its leading `from` (a whole path segment) replaced by `to`.
fn renamed(field: &str, from: &str, to: &str) -> String {
    match field.strip_prefix(from) {
        Some("") => to.to_string(),
        Some(rest) if rest.starts_with('.') || rest.starts_with('[') => format!("{to}{rest}"),
        _ => field.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn the_sdk_form_shares_its_fields_with_every_operation() {
        let b = body(json!({
            "payment_details_multi": [{"type": "faster_payment_system", "faster_payment_system": {}}],
            "payout_details_multi": [{"type": "card"}],
            "amount_details": {"amount": 100, "currency": "rub"},
            "customer": {"reference": "u1"},
            "payment_options": {"return_url": "https://x.test"},
        }));
        let s = split(&b, "payout_details").expect("splits");
        assert_eq!(s.payment["payment_details"]["type"], "faster_payment_system");
        assert_eq!(s.payment["payment_options"]["return_url"], "https://x.test");
        assert_eq!(s.payouts.len(), 1);
        assert_eq!(s.payouts[0]["payout_details"]["type"], "card");
        assert_eq!(s.payouts[0]["amount_details"]["amount"], 100);
        assert!(!s.payouts[0].contains_key("payment_options"), "a payout takes no payment options");
        assert_eq!(s.payout_field(1, "payout_details.card.number"), "payout_details_multi[1].card.number");
        assert_eq!(s.payout_field(1, "payout_details"), "payout_details_multi[1]");
        assert_eq!(s.payout_field(1, "amount_details.amount"), "amount_details.amount");
        assert_eq!(s.payment_field("payment_details.type"), "payment_details_multi[0].type");
        assert_eq!(s.payment_field("payment_details_x"), "payment_details_x");
    }

    #[test]
    fn the_list_form_takes_whole_bodies() {
        let b = body(json!({"payment_list": [{"a": 1}], "payout_list": [{"b": 2}]}));
        let s = split(&b, "payment_method").expect("splits");
        assert_eq!(s.payment["a"], 1);
        assert_eq!(s.payouts[0]["b"], 2);
        assert_eq!(s.payout_field(0, "amount_details"), "payout_list[0].amount_details");
        let errors = s.name_errors(
            vec![FieldError::new("customer", "is required")],
            vec![(0, vec![FieldError::new("customer", "is required")])],
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn bad_lists_are_named() {
        let fields = |v: Value| -> Vec<String> {
            split(&body(v), "payout_details").expect_err("refused").into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(json!({})), ["payment_details_multi", "payout_details_multi"]);
        assert_eq!(
            fields(json!({"payment_details_multi": [], "payout_details_multi": [{}]})),
            ["payment_details_multi"]
        );
        assert_eq!(
            fields(json!({"payment_details_multi": [{}, {}], "payout_details_multi": [{}]})),
            ["payment_details_multi"]
        );
        let eleven: Vec<Value> = (0..=MULTI_PAYOUTS_MAX).map(|_| json!({})).collect();
        assert_eq!(fields(json!({"payment_list": [{}], "payout_list": eleven})), ["payout_list"]);
        assert_eq!(fields(json!({"payment_list": [1], "payout_list": [{}]})), ["payment_list[0]"]);
        assert_eq!(fields(json!({"payment_list": [{}], "payout_list": [{}], "metadata": 1})), ["metadata"]);
        assert_eq!(fields(json!({"payment_list": [{}], "payout_details_multi": [{}]})), ["payment_list"]);
        assert_eq!(fields(json!({"payout_list": [{}], "payment_details_multi": [{}]})), ["payout_list"]);
        assert_eq!(
            fields(json!({"payment_details_multi": [{}], "payout_details_multi": [{}, {}]})),
            ["payout_details_multi"]
        );
        assert_eq!(
            fields(json!({"payment_details_multi": [{}], "payout_details_multi": {}, "x": 1})),
            ["x", "payout_details_multi"]
        );
    }

    #[test]
    fn a_shared_field_is_reported_once() {
        let b = body(json!({"payment_details_multi": [{}], "payout_details_multi": [{}], "custom_routing": {}}));
        let s = split(&b, "payout_details").expect("splits");
        assert!(s.payment.contains_key("custom_routing") && !s.payouts[0].contains_key("custom_routing"));
        let bad = || vec![FieldError::new("amount_details", "is required")];
        let errors = s.name_errors(bad(), vec![(0, bad())]);
        assert_eq!(errors, vec![FieldError::new("amount_details", "is required")]);
    }
}
