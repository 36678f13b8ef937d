//! Payouts from a project's other accounts and in foreign currencies: the
//! nominal (escrow) account (`…/nominal` methods), the settlement account
//! (`…/rko`), their card variants (`session/multi/…/payment/…`, which carry a
//! `payment_details.internal_transfer`), the project's account numbers at the
//! bank, and the `confirm_information` a `ready_to_confirm` webhook carries
//! for them (README, "Nominal and settlement accounts").
//!
//! Invariant: an account number shown for a project passes the Bank of Russia
//! control key with the bank's BIK, and names that project and book only.

use serde_json::{json, Map, Value};

use crate::fields::{present, Fields};
use crate::fx::{FxRate, FUNDING_CURRENCY};
#[cfg(test)]
use crate::ident::{account_matches_bik, AccountNumber};
use crate::ident::{complete_account, Bik};
use crate::ledger::Book;
use crate::payout::PayoutRequest;
#[cfg(test)]
use crate::payout::PARTICIPANT_KEYS;
use crate::FieldError;

/// The bank's details as a counterparty (sandbox values, README).
pub const BANK_BIK: &str = "049205131";
pub const BANK_NAME: &str = "АО «Банк 131»";
pub const BANK_CORRESPONDENT_ACCOUNT: &str = "30101810822029205131";
/// Longest `beneficiary_id`, in characters.
pub const BENEFICIARY_ID_MAX_CHARS: usize = 64;
/// Longest transfer description (`internal_transfer.…description`), in characters.
pub const TRANSFER_DESCRIPTION_MAX_CHARS: usize = 210;

/// Which request a book payout comes with (beside [`crate::payout::PayoutCall`]):
/// the payout methods, or the card methods of `session/multi/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Payout,
    /// `session/multi/…/payment/{nominal,rko}`: a card, with `payment_details`.
    MultiCard,
}

impl Shape {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payout => "payout",
            Self::MultiCard => "multi_card",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Payout, Self::MultiCard].into_iter().find(|s| s.as_str() == text)
    }
}

/// The `internal_transfer.type` a book's card payouts name.
fn transfer_type(book: Book) -> Option<&'static str> {
    match book {
        Book::Nominal => Some("transfer_from_nominal_account"),
        Book::Settlement => Some("transfer_from_bank_account"),
        Book::Main => None,
    }
}

/// A project's account number in a book: `40702810` (a legal entity's rouble
/// account), the control digit, a digit for the book, ten digits of the
/// project id's hash. The main book is the payout balance, not an account.
pub fn account_number(project_id: &str, book: Book) -> Option<String> {
    let book_digit = match book {
        Book::Main => return None,
        Book::Settlement => '1',
        Book::Nominal => '2',
    };
    // FNV-1a: stable across nodes and releases, unlike the std hasher.
    let hash =
        project_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let first19 = format!("40702810{book_digit}{:010}", hash % 10_000_000_000);
    complete_account(&Bik::parse(BANK_BIK).ok()?, &first19)
}

/// Which of the project's accounts `number` is, if any.
pub fn book_of_account(project_id: &str, number: &str) -> Option<Book> {
    [Book::Nominal, Book::Settlement].into_iter().find(|b| account_number(project_id, *b).as_deref() == Some(number))
}

/// Reads `payment_details` of a card payout from a book: the transfer's
/// description, or every bad field named.
pub fn parse_payment_details(body: &Map<String, Value>, book: Book, errors: &mut Vec<FieldError>) -> Option<String> {
    let mut f = Fields { errors };
    let expected = transfer_type(book)?;
    if !present(body, "payment_details") {
        f.err("payment_details", format!("is required: {{\"type\": \"internal_transfer\", \"internal_transfer\": {{\"type\": \"{expected}\", …}}}}"));
        return None;
    }
    let details = f.object(body, "payment_details", "payment_details")?;
    f.only(details, "payment_details", &["type", "internal_transfer"], &[]);
    if f.string(details, "type", "payment_details.type")? != "internal_transfer" {
        f.err("payment_details.type", "must be internal_transfer (card payments are not served yet)");
        return None;
    }
    let path = "payment_details.internal_transfer";
    let transfer = f.object(details, "internal_transfer", path)?;
    // The type first: a transfer of the other book's type is named as such.
    if f.string(transfer, "type", &format!("{path}.type"))? != expected {
        f.err(&format!("{path}.type"), format!("must be {expected} for this method"));
        return None;
    }
    f.only(transfer, path, &["type", expected], &[]);
    let inner_path = format!("{path}.{expected}");
    let inner = f.object(transfer, expected, &inner_path)?;
    f.only(inner, &inner_path, &["description"], &[]);
    let description = f.string(inner, "description", &format!("{inner_path}.description"))?;
    if description.trim().is_empty() || description.chars().count() > TRANSFER_DESCRIPTION_MAX_CHARS {
        f.err(
            &format!("{inner_path}.description"),
            format!("must be 1 to {TRANSFER_DESCRIPTION_MAX_CHARS} characters"),
        );
        return None;
    }
    Some(description)
}

/// The rules a whole payout from `book` follows beyond an ordinary payout's:
/// roubles only; a card for the card methods; the beneficiary named for the
/// nominal account; `sender.account`, when sent, the project's own account.
pub fn check_request(
    request: &PayoutRequest,
    book: Book,
    shape: Shape,
    project_id: &str,
    method_key: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if book == Book::Main {
        return errors;
    }
    if request.amount.currency() != FUNDING_CURRENCY {
        errors.push(FieldError::new(
            "amount_details.currency",
            "must be rub: nominal and settlement accounts hold roubles only",
        ));
    }
    if shape == Shape::MultiCard && request.method.masked.get("type").and_then(Value::as_str) != Some("card") {
        errors.push(FieldError::new(
            format!("{method_key}.type"),
            "must be card: this method pays to cards (bank accounts and FPS use session/…/payout/…)",
        ));
    }
    let p = &request.participant_details;
    if book == Book::Nominal {
        let beneficiary = ["/sender/beneficiary_id", "/recipient/beneficiary_id"].iter().find_map(|at| p.pointer(at));
        match beneficiary {
            None => errors.push(FieldError::new(
                "participant_details.sender.beneficiary_id",
                "is required for a payout from the nominal account (the identified beneficiary; the FPS form sends it as recipient.beneficiary_id)",
            )),
            Some(Value::String(id)) if !id.trim().is_empty() && id.chars().count() <= BENEFICIARY_ID_MAX_CHARS => {}
            Some(_) => errors.push(FieldError::new(
                "participant_details.sender.beneficiary_id",
                format!("must be a string of 1 to {BENEFICIARY_ID_MAX_CHARS} characters"),
            )),
        }
    }
    match p.pointer("/sender/account") {
        None => {}
        Some(Value::String(a)) if book_of_account(project_id, a) == Some(book) => {}
        Some(_) => {
            let own = account_number(project_id, book).unwrap_or_default();
            errors.push(FieldError::new(
                "participant_details.sender.account",
                format!("must be this project's {} account, {own}", book_title(book)),
            ));
        }
    }
    errors
}

/// How the README and messages name a book's account.
pub fn book_title(book: Book) -> &'static str {
    match book {
        Book::Main => "payout",
        Book::Nominal => "nominal (escrow)",
        Book::Settlement => "settlement",
    }
}

/// The conversion of a foreign-currency payout: what it costs in roubles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    pub rate: FxRate,
    pub cost_minor: i64,
}

/// What the partner is asked to confirm (`ready_to_confirm.confirm_information`),
/// stored with the payout when it starts. The method sits under `method` and
/// is renamed to the version's name (`payment_method`/`payout_details`) when shown.
pub struct ConfirmInput<'a> {
    pub project_id: &'a str,
    pub book: Book,
    pub request: &'a PayoutRequest,
    pub purpose: Option<&'a str>,
    pub conversion: Option<Conversion>,
    pub exchange_id: &'a str,
}

/// The stored form of `confirm_information`, or `None` for a payout that has none
/// (an ordinary rouble payout from the payout balance).
pub fn confirm_information(input: &ConfirmInput<'_>) -> Option<Value> {
    let r = input.request;
    if input.book == Book::Main && input.conversion.is_none() {
        return None;
    }
    let bank = |account: &str, name: &str| {
        json!({"account_number": account, "name": name, "bank_name": BANK_NAME, "bik": BANK_BIK,
               "correspondent_account_number": BANK_CORRESPONDENT_ACCOUNT})
    };
    let own_account = account_number(input.project_id, input.book).unwrap_or_default();
    let recipient_name = recipient_name(r).unwrap_or_default();
    let recipient_account = masked_recipient_account(&r.method.masked);
    // Every participant has the SDK's five fields (its class requires them);
    // what the sandbox does not know about the recipient's bank is empty.
    let recipient = json!({"account_number": recipient_account, "name": recipient_name,
        "bank_name": "", "bik": recipient_bik(&r.method.masked), "correspondent_account_number": ""});
    let (amount, currency) = match input.conversion {
        Some(c) => (c.cost_minor, FUNDING_CURRENCY.to_string()),
        None => (r.amount.amount(), r.amount.currency().to_string()),
    };
    let purpose = input
        .purpose
        .map(str::to_string)
        .or_else(|| method_description(&r.method.masked))
        .unwrap_or_else(|| "Payout".into());
    let mut info = Map::new();
    info.insert(
        "transfer_details".into(),
        json!({
            "method": r.method.masked,
            "customer": bank(&own_account, input.project_id),
            "recipient": recipient.clone(),
            "purpose": purpose,
            "amount": {"amount": amount, "currency": currency},
        }),
    );
    if input.book != Book::Main {
        let mut sender = bank(&own_account, input.project_id);
        if let Some(s) = sender.as_object_mut() {
            s.insert("inn".into(), json!(""));
            s.insert("kpp".into(), json!(""));
        }
        info.insert(
            "account_details".into(),
            json!({"sender": sender, "recipient": {"account_number": recipient_account, "name": recipient_name}}),
        );
    }
    if let Some(c) = input.conversion {
        info.insert(
            "exchanges".into(),
            json!([{"id": input.exchange_id,
                    "source": {"amount": c.cost_minor, "currency": FUNDING_CURRENCY},
                    "destination": {"amount": r.amount.amount(), "currency": r.amount.currency()},
                    "fx_rate": c.rate.to_string(),
                    "commission": {"amount": 0, "currency": FUNDING_CURRENCY}}]),
        );
    }
    Some(Value::Object(info))
}

/// `confirm_information` as a version names it (the method under `method_key`).
pub fn named(stored: &Value, method_key: &str) -> Value {
    let mut info = stored.clone();
    if let Some(t) = info.get_mut("transfer_details").and_then(Value::as_object_mut) {
        if let Some(m) = t.remove("method") {
            t.insert(method_key.to_string(), m);
        }
    }
    info
}

/// Where what the partner sent back at `session/confirm` contradicts what it
/// was given (a JSON pointer), or `None`. Compared by meaning, not bytes: a
/// client that deserialises the webhook into its own classes (the PHP SDK)
/// drops keys it does not model and re-serialises the rest in its own way, so
/// absent keys are not conflicts, numbers compare by value and currencies
/// case-insensitively. The amount must be there: it is what is confirmed.
pub fn conflicts(stored: &Value, sent: &Value) -> Option<String> {
    const AMOUNT: &str = "/transfer_details/amount/amount";
    if sent.pointer(AMOUNT).is_none() {
        return Some(AMOUNT.to_string());
    }
    let mut pointers: Vec<String> = [
        AMOUNT,
        "/transfer_details/amount/currency",
        "/transfer_details/customer/account_number",
        "/transfer_details/recipient/account_number",
    ]
    .map(str::to_string)
    .to_vec();
    let exchanges = stored.get("exchanges").and_then(Value::as_array).map_or(0, Vec::len);
    for i in 0..exchanges {
        for leaf in ["id", "source/amount", "source/currency", "destination/amount", "destination/currency"] {
            pointers.push(format!("/exchanges/{i}/{leaf}"));
        }
    }
    let sent = with_listed_exchanges(sent);
    pointers.into_iter().find(|at| match (stored.pointer(at), sent.pointer(at)) {
        (_, None) => false,
        (Some(a), Some(b)) => !same_value(a, b),
        (None, Some(_)) => true,
    })
}

/// `sent` with `exchanges` as a list even if a client turned it into an
/// object keyed "0", "1", … (PHP's iterable normaliser does).
fn with_listed_exchanges(sent: &Value) -> Value {
    let mut out = sent.clone();
    if let Some(Value::Object(keyed)) = out.get("exchanges").cloned() {
        let mut items: Vec<(usize, Value)> =
            keyed.into_iter().filter_map(|(k, v)| Some((k.parse::<usize>().ok()?, v))).collect();
        items.sort_by_key(|(k, _)| *k);
        out["exchanges"] = Value::Array(items.into_iter().map(|(_, v)| v).collect());
    }
    out
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

fn recipient_name(r: &PayoutRequest) -> Option<String> {
    let p = &r.participant_details;
    let text = |at: &str| p.pointer(at).and_then(Value::as_str).map(str::to_string);
    text("/recipient/full_name")
        .or_else(|| Some(format!("{} {}", text("/recipient/last_name")?, text("/recipient/first_name")?)))
        .or_else(|| r.method.holder.clone())
}

fn masked_recipient_account(method: &Value) -> String {
    if let (Some(bin), Some(last4)) =
        (method.pointer("/card/bin").and_then(Value::as_str), method.pointer("/card/last4").and_then(Value::as_str))
    {
        return format!("{bin}******{last4}");
    }
    ["/bank_account/ru/account", "/bank_account/faster_payment_system/phone", "/faster_payment_system/phone"]
        .iter()
        .find_map(|at| method.pointer(at).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

fn recipient_bik(method: &Value) -> String {
    method.pointer("/bank_account/ru/bik").and_then(Value::as_str).unwrap_or_default().to_string()
}

fn method_description(method: &Value) -> Option<String> {
    [
        "/bank_account/ru/description",
        "/bank_account/faster_payment_system/description",
        "/faster_payment_system/description",
    ]
    .iter()
    .find_map(|at| method.pointer(at).and_then(Value::as_str))
    .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_accounts_pass_the_control_key_and_differ_per_project_and_book() {
        let bik = Bik::parse(BANK_BIK).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for project in ["alpha", "beta", "demo", ""] {
            assert_eq!(account_number(project, Book::Main), None);
            for book in [Book::Nominal, Book::Settlement] {
                let n = account_number(project, book).unwrap();
                assert!(n.starts_with("40702810") && n.len() == 20, "{n}");
                assert!(account_matches_bik(&AccountNumber::parse(&n).unwrap(), &bik), "{n}");
                assert_eq!(book_of_account(project, &n), Some(book));
                assert!(seen.insert(n));
            }
        }
        assert_eq!(book_of_account("alpha", &account_number("beta", Book::Nominal).unwrap()), None);
        // The participant fields book payouts read are fields the parser lets through.
        assert!(["beneficiary_id", "account"].iter().all(|k| PARTICIPANT_KEYS.contains(k)));
    }

    #[test]
    fn card_transfers_name_their_book() {
        let body = json!({"payment_details": {"type": "internal_transfer", "internal_transfer": {
            "type": "transfer_from_nominal_account", "transfer_from_nominal_account": {"description": "Offer"}}}});
        let mut errors = Vec::new();
        assert_eq!(
            parse_payment_details(body.as_object().unwrap(), Book::Nominal, &mut errors).as_deref(),
            Some("Offer")
        );
        assert!(errors.is_empty());
        assert_eq!(parse_payment_details(body.as_object().unwrap(), Book::Settlement, &mut errors), None);
        assert_eq!(errors[0].field, "payment_details.internal_transfer.type");
    }
}

#[cfg(test)]
mod confirm_tests {
    use super::*;

    #[test]
    fn a_round_trip_through_a_client_is_the_same_and_a_changed_amount_is_not() {
        let stored = json!({"transfer_details": {"method": {"type": "card"}, "amount": {"amount": 9_250, "currency": "rub"},
            "customer": {"account_number": "40702810"}, "recipient": {"account_number": "4242"}},
            "exchanges": [{"id": "ex_1", "source": {"amount": 9_250, "currency": "rub"}, "destination": {"amount": 100, "currency": "usd"}}]});
        // The SDK drops the v1 method name, upper-cases nothing, re-keys the list, writes 9250.0.
        let sent = json!({"transfer_details": {"amount": {"amount": 9_250.0, "currency": "RUB"}, "customer": {"account_number": "40702810"}},
            "exchanges": {"0": {"id": "ex_1", "source": {"amount": 9_250}, "destination": {"amount": 100, "currency": "usd"}}}});
        assert_eq!(conflicts(&stored, &sent), None);
        let mut changed = sent.clone();
        changed["exchanges"]["0"]["destination"]["amount"] = json!(101);
        assert_eq!(conflicts(&stored, &changed).as_deref(), Some("/exchanges/0/destination/amount"));
        assert_eq!(conflicts(&stored, &json!({"x": 1})).as_deref(), Some("/transfer_details/amount/amount"));
        let other_account =
            json!({"transfer_details": {"amount": {"amount": 9_250}, "recipient": {"account_number": "1"}}});
        assert_eq!(conflicts(&stored, &other_account).as_deref(), Some("/transfer_details/recipient/account_number"));
    }
}
