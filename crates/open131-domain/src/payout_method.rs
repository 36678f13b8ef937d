//! Payout methods: every shape the bank's clients send under `payment_method`
//! (v1) or `payout_details` (v2), parsed once (every bad field named), and
//! their masked forms for answers and webhooks.
//!
//! Served: cards by number; Russian bank accounts; FPS by phone (under
//! `bank_account` or top-level); IBAN and UPI accounts; wallets (QIWI,
//! YooMoney, Moneta, Steam); TON crypto wallets; tax payments. A card or an
//! account of the project's vault (`encrypted_card.number_hash`, `ru.token`)
//! reaches these parsers already opened by the server, as the card or account
//! itself; one left unopened (malformed) is refused with the reason, as are
//! `tokenized_card` (a payment's) and FPS recipient verification, which is its
//! own method. [`parse_vault_card`] and [`parse_vault_account`] read what
//! `tokenize/elements` and `tokenize` put in the vault.

use serde_json::{json, Map, Value};
use time::Date;

use crate::fields::{join, Fields, Refused};
use crate::ident::{
    account_matches_bik, is_documented_test_account, kbk_ok, kpp_ok, oktmo_ok, uin_ok, AccountNumber, Bik, CardExpiry,
    CardNumber, Iban, Inn, RuPhone,
};
use crate::personal::Personal;
use crate::FieldError;

/// Longest `bank_account.ru.description`, in characters (the bank's limit).
pub const ACCOUNT_DESCRIPTION_MAX_CHARS: usize = 210;
/// Longest free-text field of a method (descriptions, product names), in characters.
pub const METHOD_TEXT_MAX_CHARS: usize = 256;

/// Why widget tokens are refused, in one place.
const TOKENS_LATER: &str =
    "not served here: a payout names a card of the project's vault as encrypted_card: {number_hash} (from \
     tokenize/elements) and an account as ru: {token} (from tokenize); a payment names a vault card \
     as tokenized_card: {token}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletKind {
    Qiwi,
    Yoomoney,
    Moneta,
    Steam,
    Telegram,
}

impl WalletKind {
    pub const ALL: [WalletKind; 5] = [Self::Qiwi, Self::Yoomoney, Self::Moneta, Self::Steam, Self::Telegram];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qiwi => "qiwi",
            Self::Yoomoney => "yoomoney",
            Self::Moneta => "moneta",
            Self::Steam => "steam",
            Self::Telegram => "telegram",
        }
    }

    /// Whether `account` is an account of this wallet, and the message if not.
    fn check_account(self, account: &str) -> Result<(), &'static str> {
        let digits =
            |s: &str, min: usize, max: usize| (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        let ok = match self {
            // QIWI wallets are phone numbers, with or without `+` (the SDK's
            // functional test pays `9111111111`).
            Self::Qiwi => digits(account.strip_prefix('+').unwrap_or(account), 10, 15),
            // YooMoney wallet numbers are 11–20 digits.
            Self::Yoomoney => digits(account, 11, 20),
            // Moneta.ru account numbers are 5–20 digits.
            Self::Moneta => digits(account, 5, 20),
            // Steam logins: 3–64 letters, digits or `_`.
            Self::Steam => {
                (3..=64).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }
            // Telegram: a username (5–32 letters, digits or `_`, `@` optional) or a phone number.
            Self::Telegram => {
                let name = account.strip_prefix('@').unwrap_or(account);
                let username =
                    (5..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                username || digits(account.strip_prefix('+').unwrap_or(account), 10, 15)
            }
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Self::Qiwi => "must be a phone number: 10 to 15 digits, + optional",
            Self::Yoomoney => "must be 11 to 20 digits",
            Self::Moneta => "must be 5 to 20 digits",
            Self::Steam => "must be a Steam login: 3 to 64 letters, digits or _",
            Self::Telegram => "must be a Telegram username (5 to 32 letters, digits or _) or a phone number",
        })
    }
}

/// Where an FPS payout's details came: under `bank_account` (the docs) or
/// as the top-level method `faster_payment_system` (echoed the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpsShape {
    BankAccount,
    TopLevel,
}

/// A validated payout method. Card numbers never leave this type in clear
/// except through [`CardNumber::expose`].
#[derive(Debug, Clone)]
pub enum PayoutMethod {
    Card {
        number: CardNumber,
    },
    BankAccountRu {
        bik: Bik,
        account: AccountNumber,
        full_name: Personal<String>,
        description: String,
        is_fast: bool,
        /// The recipient's INN (shown masked: a person's INN is personal data).
        inn: Option<Personal<String>>,
        kpp: Option<String>,
    },
    Fps {
        phone: RuPhone,
        bank_id: String,
        description: Option<String>,
        shape: FpsShape,
    },
    Iban {
        account: Iban,
    },
    Upi,
    Wallet {
        kind: WalletKind,
        account: Personal<String>,
        description: Option<String>,
    },
    Ton {
        address: Personal<String>,
        product_id: String,
        product_name: String,
    },
    /// Tax payments are not personal data: kept as validated JSON.
    Tax {
        tax: Value,
    },
}

/// Every character but the last `keep` replaced by `*`.
fn mask_tail(s: &str, keep: usize) -> String {
    let n = s.chars().count();
    s.chars().enumerate().map(|(i, c)| if i + keep < n { '*' } else { c }).collect()
}

fn with_description(mut inner: Value, description: &Option<String>) -> Value {
    if let Some(d) = description {
        inner["description"] = json!(d);
    }
    inner
}

impl PayoutMethod {
    /// The masked form shown in responses and webhooks (no full card or account number).
    pub fn masked(&self) -> Value {
        match self {
            Self::Card { number } => json!({"type": "card", "card": {
                "brand": number.brand().as_str(), "last4": number.last4(), "bin": number.bin()}}),
            Self::BankAccountRu { bik, account, full_name: _, description, is_fast, inn, kpp } => {
                let mut ru = json!({"bik": bik.as_str(), "account": account.masked(), "description": description,
                    "is_fast": is_fast});
                if let Some(inn) = inn {
                    ru["inn"] = json!(mask_tail(inn.expose(), 4));
                }
                if let Some(kpp) = kpp {
                    ru["kpp"] = json!(kpp);
                }
                json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": ru}})
            }
            Self::Fps { phone, bank_id, description, shape } => {
                let inner = with_description(json!({"phone": phone.masked(), "bank_id": bank_id}), description);
                match shape {
                    FpsShape::BankAccount => json!({"type": "bank_account", "bank_account": {
                        "system_type": "faster_payment_system", "faster_payment_system": inner}}),
                    FpsShape::TopLevel => json!({"type": "faster_payment_system", "faster_payment_system": inner}),
                }
            }
            Self::Iban { account } => json!({"type": "bank_account", "bank_account": {"system_type": "iban",
                "iban": {"account": account.masked()}}}),
            Self::Upi => json!({"type": "bank_account", "bank_account": {"system_type": "upi", "upi": {}}}),
            Self::Wallet { kind, account, description } => {
                let inner = with_description(json!({"account": mask_tail(account.expose(), 4)}), description);
                json!({"type": "wallet", "wallet": {"type": kind.as_str(), kind.as_str(): inner}})
            }
            Self::Ton { address, product_id, product_name } => json!({"type": "crypto_wallet", "crypto_wallet": {
                "type": "ton", "ton": {"address": mask_tail(address.expose(), 6), "product_id": product_id,
                "product_name": product_name}}}),
            Self::Tax { tax } => json!({"type": "tax", "tax": mask_tax(tax)}),
        }
    }

    /// Whether the recipient's bank may return the money later (Russian
    /// bank accounts: the sandbox's "returned" outcome applies to them).
    pub fn returnable(&self) -> bool {
        matches!(self, Self::BankAccountRu { .. })
    }

    /// The holder a method names itself (a Russian account's `full_name`):
    /// personal data, kept only in the session's draft and what the partner confirms.
    pub fn holder(&self) -> Option<&str> {
        match self {
            Self::BankAccountRu { full_name, .. } => Some(full_name.expose().as_str()),
            _ => None,
        }
    }
}

/// A tax payment as shown back: the payer's INN and the accounts masked (the
/// payer may be a person), the budget codes as sent.
fn mask_tax(tax: &Value) -> Value {
    let mut out = tax.clone();
    for (pointer, keep) in [("/payer/inn", 4), ("/payee/account", 4), ("/payee/account_eks", 4)] {
        if let Some(v) = out.pointer_mut(pointer) {
            if let Some(s) = v.as_str() {
                *v = json!(mask_tail(s, keep));
            }
        }
    }
    out
}

/// The method types, in the order error messages list them.
const METHOD_TYPES: [&str; 6] = ["card", "bank_account", "faster_payment_system", "wallet", "crypto_wallet", "tax"];

/// Parses the method object under `key` (`payment_method` or `payout_details`).
pub(crate) fn parse_method(f: &mut Fields<'_>, m: &Map<String, Value>, key: &str, today: Date) -> Option<PayoutMethod> {
    let kind = f.string(m, "type", &join(key, "type"))?;
    let refused: [Refused; 1] =
        [("internet_banking", "internet banking is a way to pay (acquiring), not a payout method")];
    if kind == "internet_banking" {
        f.err(&join(key, "type"), refused[0].1);
        return None;
    }
    if !METHOD_TYPES.contains(&kind.as_str()) {
        f.err(&join(key, "type"), format!("{kind:?} is not a payout method ({})", METHOD_TYPES.join(", ")));
        return None;
    }
    f.only(m, key, &["type", kind.as_str()], &refused);
    let p = join(key, &kind);
    let inner = f.object(m, &kind, &p)?;
    match kind.as_str() {
        "card" => parse_card(f, inner, &p, today),
        "bank_account" => parse_bank_account(f, inner, &p),
        "faster_payment_system" => parse_fps(f, inner, &p, FpsShape::TopLevel),
        "wallet" => parse_wallet(f, inner, &p),
        "crypto_wallet" => parse_crypto(f, inner, &p),
        _ => parse_tax(f, inner, &p),
    }
}

fn parse_card(f: &mut Fields<'_>, card: &Map<String, Value>, p: &str, today: Date) -> Option<PayoutMethod> {
    let (number, _) = parse_bank_card(f, card, p, today, CardUse::Payout)?;
    Some(PayoutMethod::Card { number })
}

/// What a card is read for: a payout needs only the number; a payment (the
/// issuer authorizes it) needs the expiry and the security code too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CardUse {
    Payout,
    Payment,
}

/// Reads `card = {type: bank_card, bank_card: {...}}` at `p`, the one reader
/// of card fields for payouts and payments.
pub(crate) fn parse_bank_card(
    f: &mut Fields<'_>,
    card: &Map<String, Value>,
    p: &str,
    today: Date,
    purpose: CardUse,
) -> Option<(CardNumber, Option<CardExpiry>)> {
    let card_type = f.string(card, "type", &join(p, "type"))?;
    match card_type.as_str() {
        "bank_card" => {}
        "encrypted_card" | "tokenized_card" => {
            f.err(&join(p, "type"), TOKENS_LATER);
            return None;
        }
        other => {
            f.err(
                &join(p, "type"),
                format!("{other:?} is not a card type (bank_card, encrypted_card, tokenized_card)"),
            );
            return None;
        }
    }
    f.only(card, p, &["type", "bank_card"], &[]);
    let p = join(p, "bank_card");
    let bank_card = f.object(card, "bank_card", &p)?;
    f.only(bank_card, &p, &["number", "expiration_month", "expiration_year", "security_code", "cardholder_name"], &[]);
    let number = f.string(bank_card, "number", &join(&p, "number"));
    let number = f.check(&join(&p, "number"), number, CardNumber::parse_or_documented);
    let month = f.optional_string(bank_card, "expiration_month", &join(&p, "expiration_month"));
    let year = f.optional_string(bank_card, "expiration_year", &join(&p, "expiration_year"));
    let mut expiry = None;
    match (month, year) {
        (Some(mm), Some(yy)) => match CardExpiry::parse(&mm, &yy) {
            Ok(exp) if exp.is_expired_on(today) => f.err(&join(&p, "expiration_year"), "the card has expired"),
            Ok(exp) => expiry = Some(exp),
            Err(msg) => f.err(&join(&p, "expiration_month"), msg),
        },
        (None, None) if purpose == CardUse::Payment => {
            f.err(&join(&p, "expiration_month"), "is required to pay by card (with expiration_year)")
        }
        (None, None) => {}
        _ => f.err(&join(&p, "expiration_month"), "expiration_month and expiration_year go together"),
    }
    match f.optional_string(bank_card, "security_code", &join(&p, "security_code")) {
        Some(code) if !crate::ident::is_security_code(&code) => {
            f.err(&join(&p, "security_code"), "must be 3 or 4 digits")
        }
        None if purpose == CardUse::Payment => f.err(&join(&p, "security_code"), "is required to pay by card"),
        _ => {}
    }
    f.optional_string(bank_card, "cardholder_name", &join(&p, "cardholder_name"));
    Some((number?, expiry))
}

const SYSTEM_TYPES: [&str; 5] = ["ru", "iban", "upi", "faster_payment_system", "faster_payment_system_verification"];

fn parse_bank_account(f: &mut Fields<'_>, ba: &Map<String, Value>, p: &str) -> Option<PayoutMethod> {
    let system = f.string(ba, "system_type", &join(p, "system_type"))?;
    if system == "faster_payment_system_verification" {
        f.err(
            &join(p, "system_type"),
            "verifies an FPS recipient and pays nothing: send it to fps/customer_verification",
        );
        return None;
    }
    if !SYSTEM_TYPES.contains(&system.as_str()) {
        f.err(&join(p, "system_type"), format!("{system:?} is not a system type ({})", SYSTEM_TYPES[..4].join(", ")));
        return None;
    }
    f.only(ba, p, &["system_type", system.as_str()], &[]);
    let p = join(p, &system);
    match system.as_str() {
        "ru" => {
            let ru = f.object(ba, "ru", &p)?;
            parse_ru(f, ru, &p)
        }
        "iban" => {
            let iban = f.object(ba, "iban", &p)?;
            f.only(iban, &p, &["account"], &[]);
            let account = f.string(iban, "account", &join(&p, "account"));
            Some(PayoutMethod::Iban { account: f.check(&join(&p, "account"), account, Iban::parse)? })
        }
        "upi" => {
            // The SDK's UPI account has no fields (it is experimental there too).
            let upi = f.optional_object(ba, "upi", &p)?;
            if let Some(upi) = upi {
                f.only(upi, &p, &[], &[]);
            }
            Some(PayoutMethod::Upi)
        }
        _ => {
            let fps = f.object(ba, "faster_payment_system", &p)?;
            parse_fps(f, fps, &p, FpsShape::BankAccount)
        }
    }
}

fn parse_ru(f: &mut Fields<'_>, ru: &Map<String, Value>, p: &str) -> Option<PayoutMethod> {
    f.only(ru, p, &["bik", "account", "full_name", "description", "is_fast", "inn", "kpp"], &[("token", TOKENS_LATER)]);
    let bik = f.string(ru, "bik", &join(p, "bik"));
    let bik = f.check(&join(p, "bik"), bik, Bik::parse);
    let account = f.string(ru, "account", &join(p, "account"));
    let account = f.check(&join(p, "account"), account, AccountNumber::parse);
    let full_name = f.string(ru, "full_name", &join(p, "full_name"));
    let description = f.string(ru, "description", &join(p, "description"));
    if description.as_ref().is_some_and(|d| d.chars().count() > ACCOUNT_DESCRIPTION_MAX_CHARS) {
        f.err(&join(p, "description"), format!("must be at most {ACCOUNT_DESCRIPTION_MAX_CHARS} characters"));
    }
    let is_fast = match ru.get("is_fast") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            f.err(&join(p, "is_fast"), "must be a boolean");
            false
        }
    };
    let inn = f.optional_string(ru, "inn", &join(p, "inn"));
    if inn.as_ref().is_some_and(|inn| Inn::parse_any(inn).is_err()) {
        f.err(&join(p, "inn"), "must be 10 or 12 digits");
    }
    let kpp = f.optional_string(ru, "kpp", &join(p, "kpp"));
    if kpp.as_ref().is_some_and(|kpp| !kpp_ok(kpp)) {
        f.err(&join(p, "kpp"), "must be a KPP (9 characters)");
    }
    let (bik, account) = (bik?, account?);
    if !account_matches_bik(&account, &bik) && !is_documented_test_account(&account, &bik) {
        f.err(&join(p, "account"), "control digit does not match the BIK");
        return None;
    }
    Some(PayoutMethod::BankAccountRu {
        bik,
        account,
        full_name: Personal::new(full_name?),
        description: description?,
        is_fast,
        inn: inn.map(Personal::new),
        kpp,
    })
}

fn parse_fps(f: &mut Fields<'_>, fps: &Map<String, Value>, p: &str, shape: FpsShape) -> Option<PayoutMethod> {
    f.only(fps, p, &["phone", "bank_id", "description"], &[]);
    let phone = f.string(fps, "phone", &join(p, "phone"));
    let phone = f.check(&join(p, "phone"), phone, RuPhone::parse);
    let bank_id = crate::fps::read_bank_id(f, fps, p);
    let description = short_text(f, fps, "description", p);
    Some(PayoutMethod::Fps { phone: phone?, bank_id: bank_id?, description, shape })
}

/// An optional free-text field of at most [`METHOD_TEXT_MAX_CHARS`].
fn short_text(f: &mut Fields<'_>, map: &Map<String, Value>, key: &str, p: &str) -> Option<String> {
    let text = f.optional_string(map, key, &join(p, key))?;
    if text.chars().count() > METHOD_TEXT_MAX_CHARS {
        f.err(&join(p, key), format!("must be at most {METHOD_TEXT_MAX_CHARS} characters"));
        return None;
    }
    Some(text)
}

fn parse_wallet(f: &mut Fields<'_>, w: &Map<String, Value>, p: &str) -> Option<PayoutMethod> {
    let wallet_type = f.string(w, "type", &join(p, "type"))?;
    let Some(kind) = WalletKind::ALL.into_iter().find(|k| k.as_str() == wallet_type) else {
        let names: Vec<&str> = WalletKind::ALL.iter().map(|k| k.as_str()).collect();
        f.err(&join(p, "type"), format!("{wallet_type:?} is not a wallet ({})", names.join(", ")));
        return None;
    };
    f.only(w, p, &["type", kind.as_str()], &[]);
    let p = join(p, kind.as_str());
    let inner = f.object(w, kind.as_str(), &p)?;
    // The SDK's Steam and Telegram wallets have no description.
    let keys: &[&str] = match kind {
        WalletKind::Steam | WalletKind::Telegram => &["account"],
        _ => &["account", "description"],
    };
    f.only(inner, &p, keys, &[]);
    let account = f.string(inner, "account", &join(&p, "account"))?;
    if let Err(msg) = kind.check_account(&account) {
        f.err(&join(&p, "account"), msg);
        return None;
    }
    let description = short_text(f, inner, "description", &p);
    Some(PayoutMethod::Wallet { kind, account: Personal::new(account), description })
}

/// A TON address: raw (`0:` and 64 hex digits) or user-friendly (48 base64 characters).
fn ton_address_ok(a: &str) -> bool {
    let raw = a.split_once(':').is_some_and(|(wc, hex)| {
        matches!(wc, "0" | "-1") && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    let friendly = a.len() == 48 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+/".contains(&b));
    raw || friendly
}

fn parse_crypto(f: &mut Fields<'_>, c: &Map<String, Value>, p: &str) -> Option<PayoutMethod> {
    let kind = f.string(c, "type", &join(p, "type"))?;
    if kind != "ton" {
        f.err(&join(p, "type"), format!("{kind:?} is not a crypto wallet (ton)"));
        return None;
    }
    f.only(c, p, &["type", "ton"], &[]);
    let p = join(p, "ton");
    let ton = f.object(c, "ton", &p)?;
    f.only(ton, &p, &["address", "product_id", "product_name"], &[]);
    let address = f.string(ton, "address", &join(&p, "address"));
    let product_id = f.string(ton, "product_id", &join(&p, "product_id"));
    let product_name = f.string(ton, "product_name", &join(&p, "product_name"));
    let address = address?;
    if !ton_address_ok(&address) {
        f.err(&join(&p, "address"), "must be a TON address (0:<64 hex digits> or 48 base64 characters)");
        return None;
    }
    for (key, v) in [("product_id", &product_id), ("product_name", &product_name)] {
        if v.as_ref().is_some_and(|s| s.chars().count() > METHOD_TEXT_MAX_CHARS) {
            f.err(&join(&p, key), format!("must be at most {METHOD_TEXT_MAX_CHARS} characters"));
        }
    }
    Some(PayoutMethod::Ton { address: Personal::new(address), product_id: product_id?, product_name: product_name? })
}

fn parse_tax(f: &mut Fields<'_>, tax: &Map<String, Value>, p: &str) -> Option<PayoutMethod> {
    let before = f.errors.len();
    // tax_short names a period only; tax_full the whole payment order.
    let keys: &[&str] = match tax.get("type").and_then(Value::as_str) {
        Some("tax_short") => &["type", "description", "tax_details"],
        _ => &["type", "description", "uin", "tax_details", "payer", "payee"],
    };
    f.only(tax, p, keys, &[]);
    short_text(f, tax, "description", p);
    check_tax(f, tax, p);
    if f.errors.len() != before {
        return None;
    }
    Some(PayoutMethod::Tax { tax: Value::Object(crate::payout::strip_nulls_map(tax)) })
}

fn check_tax(f: &mut Fields<'_>, tax: &Map<String, Value>, p: &str) {
    let Some(kind) = f.string(tax, "type", &join(p, "type")) else { return };
    let dp = join(p, "tax_details");
    let Some(details) = f.object(tax, "tax_details", &dp) else { return };
    match kind.as_str() {
        "tax_full" => check_tax_full(f, tax, details, p),
        "tax_short" => {
            f.only(details, &dp, &["period"], &[]);
            let pp = join(&dp, "period");
            let Some(period) = f.object(details, "period", &pp) else { return };
            f.only(period, &pp, &["type", "number", "year"], &[]);
            let max = match f.string(period, "type", &join(&pp, "type")).as_deref() {
                Some("month") => 12,
                Some("quarter") => 4,
                Some(_) => {
                    f.err(&join(&pp, "type"), "must be month or quarter");
                    return;
                }
                None => return,
            };
            match period.get("number").and_then(Value::as_i64) {
                Some(n) if (1..=max).contains(&n) => {}
                _ => f.err(&join(&pp, "number"), format!("must be an integer from 1 to {max}")),
            }
            let year_ok = match period.get("year") {
                Some(Value::Number(n)) => n.as_i64().is_some_and(|y| (2000..=2100).contains(&y)),
                Some(Value::String(s)) => s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()),
                _ => false,
            };
            if !year_ok {
                f.err(&join(&pp, "year"), "must be a four-digit year");
            }
        }
        _ => f.err(&join(p, "type"), "must be tax_full or tax_short"),
    }
}

fn check_tax_full(f: &mut Fields<'_>, tax: &Map<String, Value>, details: &Map<String, Value>, p: &str) {
    let dp = join(p, "tax_details");
    f.only(details, &dp, &["kbk", "oktmo", "payment_reason", "period", "document_number", "document_date"], &[]);
    type Rule = (&'static str, fn(&str) -> bool, &'static str);
    let rules: [Rule; 2] =
        [("kbk", kbk_ok, "must be 20 digits (KBK)"), ("oktmo", oktmo_ok, "must be 8 or 11 digits (OKTMO)")];
    for (key, ok, msg) in rules {
        if let Some(v) = f.string(details, key, &join(&dp, key)) {
            if !ok(&v) {
                f.err(&join(&dp, key), msg);
            }
        }
    }
    if let Some(uin) = f.optional_string(tax, "uin", &join(p, "uin")) {
        if !uin_ok(&uin) {
            f.err(&join(p, "uin"), "must be 20 or 25 digits, or 0");
        }
    }
    let payer_path = join(p, "payer");
    if let Some(payer) = f.object(tax, "payer", &payer_path) {
        f.only(payer, &payer_path, &["inn", "kpp"], &[]);
        if let Some(inn) = f.string(payer, "inn", &join(&payer_path, "inn")) {
            if Inn::parse_any(&inn).is_err() {
                f.err(&join(&payer_path, "inn"), "must be 10 or 12 digits");
            }
        }
        if let Some(kpp) = f.optional_string(payer, "kpp", &join(&payer_path, "kpp")) {
            if !kpp_ok(&kpp) {
                f.err(&join(&payer_path, "kpp"), "must be a KPP (9 characters)");
            }
        }
    }
    let pp = join(p, "payee");
    if let Some(payee) = f.object(tax, "payee", &pp) {
        f.only(payee, &pp, &["bik", "account", "account_eks", "name", "kpp", "inn"], &[]);
        let bik = f.string(payee, "bik", &join(&pp, "bik"));
        f.check(&join(&pp, "bik"), bik, Bik::parse);
        let account = f.string(payee, "account", &join(&pp, "account"));
        f.check(&join(&pp, "account"), account, AccountNumber::parse);
        f.string(payee, "name", &join(&pp, "name"));
        if let Some(inn) = f.string(payee, "inn", &join(&pp, "inn")) {
            if Inn::parse_legal(&inn).is_err() {
                f.err(&join(&pp, "inn"), "must be 10 digits");
            }
        }
        if let Some(kpp) = f.string(payee, "kpp", &join(&pp, "kpp")) {
            if !kpp_ok(&kpp) {
                f.err(&join(&pp, "kpp"), "must be a KPP (9 characters)");
            }
        }
    }
}

/// A card for the vault (`tokenize/elements`): `{type: card, card: {type:
/// bank_card, bank_card: {number, expiration_month?, expiration_year?}}}`.
/// The security code and the holder's name are refused: the vault keeps
/// neither (a card in it pays out without them).
pub fn parse_vault_card(
    body: &Map<String, Value>,
    today: Date,
) -> Result<(CardNumber, Option<CardExpiry>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["type", "card"], &[]);
    if f.string(body, "type", "type").is_some_and(|t| t != "card") {
        f.err("type", "must be card");
    }
    let card = f.object(body, "card", "card").and_then(|card| {
        let field = |k: &str| card.get("bank_card").and_then(|b| b.get(k)).filter(|c| !c.is_null()).is_some();
        if field("security_code") {
            f.err("card.bank_card.security_code", "is never kept: a card in the vault pays out without it");
            return None;
        }
        if field("cardholder_name") {
            f.err("card.bank_card.cardholder_name", "is not kept: the vault keeps the number and the expiry");
            return None;
        }
        parse_bank_card(f, card, "card", today, CardUse::Payout)
    });
    match card {
        Some(card) if errors.is_empty() => Ok(card),
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

/// A Russian bank account for the vault (`tokenize`): `{type:
/// bank_account_ru, bank_account_ru: {bik, account}}`, the account's control
/// digit checked against the BIK as for a payout to it.
pub fn parse_vault_account(body: &Map<String, Value>) -> Result<(Bik, AccountNumber), Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["type", "bank_account_ru"], &[]);
    if f.string(body, "type", "type").is_some_and(|t| t != "bank_account_ru") {
        f.err("type", "must be bank_account_ru (cards go to tokenize/elements)");
    }
    let p = "bank_account_ru";
    let parsed = f.object(body, p, p).and_then(|ru| {
        f.only(ru, p, &["bik", "account"], &[]);
        let bik = f.string(ru, "bik", &join(p, "bik"));
        let bik = f.check(&join(p, "bik"), bik, Bik::parse);
        let account = f.string(ru, "account", &join(p, "account"));
        let account = f.check(&join(p, "account"), account, AccountNumber::parse);
        let (bik, account) = (bik?, account?);
        if !account_matches_bik(&account, &bik) && !is_documented_test_account(&account, &bik) {
            f.err(&join(p, "account"), "control digit does not match the BIK");
            return None;
        }
        Some((bik, account))
    });
    match parsed {
        Some(parsed) if errors.is_empty() => Ok(parsed),
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}
