//! Payout requests: money, payout methods parsed once at the edge (every bad
//! field named at once), their masked forms, and the sandbox outcome table.
//!
//! The masked forms are built here as JSON values because they are a pure
//! function of the parsed method; no serde shape is derived.

use serde_json::{json, Map, Value};
use time::Date;

use crate::ident::{
    account_matches_bik, kbk_ok, kpp_ok, oktmo_ok, uin_ok, AccountNumber, Bik, CardExpiry, CardNumber, Inn, RuPhone,
};
use crate::payout_flow::FailureCode;
use crate::personal::Personal;
use crate::FieldError;

/// Currencies a wallet may hold (lowercase ISO 4217).
pub const CURRENCIES: [&str; 3] = ["rub", "usd", "eur"];
/// Longest `bank_account.ru.description`, in characters (the bank's limit).
pub const ACCOUNT_DESCRIPTION_MAX_CHARS: usize = 210;
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
            return Err("currency must be one of rub, usd, eur");
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletKind {
    Qiwi,
    Yoomoney,
}

impl WalletKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qiwi => "qiwi",
            Self::Yoomoney => "yoomoney",
        }
    }
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
    },
    Fps {
        phone: RuPhone,
        bank_id: String,
        description: Option<String>,
    },
    Wallet {
        kind: WalletKind,
        account: Personal<String>,
        description: Option<String>,
    },
    /// Tax payments are not personal data: kept as validated JSON.
    Tax {
        tax: Value,
    },
}

impl PayoutMethod {
    /// The masked form shown in responses and webhooks (no full card or account number).
    pub fn masked(&self) -> Value {
        match self {
            Self::Card { number } => json!({"type": "card", "card": {
                "brand": number.brand().as_str(), "last4": number.last4(), "bin": number.bin()}}),
            Self::BankAccountRu { bik, account, full_name: _, description, is_fast } => {
                json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {
                    "bik": bik.as_str(), "account": account.masked(), "description": description, "is_fast": is_fast}}})
            }
            Self::Fps { phone, bank_id, description } => {
                let mut inner = json!({"phone": phone.masked(), "bank_id": bank_id});
                if let Some(d) = description {
                    inner["description"] = json!(d);
                }
                json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system",
                    "faster_payment_system": inner}})
            }
            Self::Wallet { kind, account, description } => {
                let acc = account.expose();
                let visible = acc.chars().count().saturating_sub(4);
                let masked: String = acc.chars().enumerate().map(|(i, c)| if i < visible { '*' } else { c }).collect();
                let mut inner = json!({"account": masked});
                if let Some(d) = description {
                    inner["description"] = json!(d);
                }
                json!({"type": "wallet", "wallet": {"type": kind.as_str(), kind.as_str(): inner}})
            }
            Self::Tax { tax } => json!({"type": "tax", "tax": mask_tax(tax)}),
        }
    }

    fn is_bank_account(&self) -> bool {
        matches!(self, Self::BankAccountRu { .. })
    }
}

/// A tax payment as shown back: the payer's INN and the accounts masked (the
/// payer may be a person), the budget codes as sent.
fn mask_tax(tax: &Value) -> Value {
    let mut out = tax.clone();
    let tail = |s: &str, keep: usize| -> String {
        let n = s.chars().count();
        s.chars().enumerate().map(|(i, c)| if i + keep < n { '*' } else { c }).collect()
    };
    if let Some(inn) = out.pointer_mut("/payer/inn") {
        if let Some(s) = inn.as_str() {
            *inn = json!(tail(s, 4));
        }
    }
    for pointer in ["/payee/account", "/payee/account_eks"] {
        if let Some(acc) = out.pointer_mut(pointer) {
            if let Some(s) = acc.as_str() {
                *acc = json!(tail(s, 4));
            }
        }
    }
    out
}

/// A parsed payout: method, amount and the partner's echo fields (nulls removed).
#[derive(Debug, Clone)]
pub struct PayoutRequest {
    pub method: PayoutMethod,
    pub amount: Money,
    pub participant_details: Value,
    pub customer: Option<Value>,
    pub metadata: Option<Value>,
}

/// Drops `null`s (and keys holding them) so echoed partner data never emits `null`.
pub fn strip_nulls(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(strip_nulls).collect())),
        Value::Object(map) => {
            Some(Value::Object(map.into_iter().filter_map(|(k, v)| Some((k, strip_nulls(v)?))).collect()))
        }
        other => Some(other),
    }
}

struct Fields<'a> {
    errors: &'a mut Vec<FieldError>,
}

impl Fields<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    fn object<'v>(&mut self, parent: &'v Map<String, Value>, key: &str, path: &str) -> Option<&'v Map<String, Value>> {
        match parent.get(key) {
            Some(Value::Object(m)) => Some(m),
            None | Some(Value::Null) => {
                self.err(path, "is required");
                None
            }
            Some(_) => {
                self.err(path, "must be an object");
                None
            }
        }
    }

    fn string(&mut self, parent: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match parent.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                self.err(path, "must not be empty");
                None
            }
            None | Some(Value::Null) => {
                self.err(path, "is required");
                None
            }
            Some(_) => {
                self.err(path, "must be a string");
                None
            }
        }
    }

    fn optional_string(&mut self, parent: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match parent.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(path, "must be a string");
                None
            }
        }
    }

    fn check<T>(
        &mut self,
        path: &str,
        value: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        let v = value?;
        parse(&v).map_err(|m| self.err(path, m)).ok()
    }
}

/// Reads the method object under `payout_details` (v2) or `payment_method` (v1);
/// both names are accepted on either version.
pub fn method_key(body: &Map<String, Value>) -> &'static str {
    if body.contains_key("payout_details") {
        "payout_details"
    } else {
        "payment_method"
    }
}

/// Parses the payout part of `session/init/payout` or `session/start/payout`.
pub fn parse_payout(body: &Map<String, Value>, today: Date) -> Result<PayoutRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut f = Fields { errors: &mut errors };
    let key = method_key(body);
    let method = f.object(body, key, key).and_then(|m| parse_method(&mut f, m, key, today));

    let amount = f.object(body, "amount_details", "amount_details").and_then(|a| {
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
            Err(msg) if msg.starts_with("amount") => {
                f.err("amount_details.amount", msg);
                None
            }
            Err(msg) => {
                f.err("amount_details.currency", msg);
                None
            }
        }
    });

    let participant = f.object(body, "participant_details", "participant_details").and_then(|p| {
        let recipient = f.object(p, "recipient", "participant_details.recipient")?;
        let has = |k: &str| recipient.get(k).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
        if !(has("full_name") || (has("first_name") && has("last_name"))) {
            f.err("participant_details.recipient", "needs full_name or first_name and last_name");
            return None;
        }
        strip_nulls(Value::Object(p.clone()))
    });
    let customer = body.get("customer").cloned().and_then(strip_nulls);
    if let Some(c) = &customer {
        if !c.is_object() {
            f.err("customer", "must be an object");
        }
    }
    let metadata = body.get("metadata").cloned().and_then(strip_nulls);

    match (method, amount, participant) {
        (Some(method), Some(amount), Some(participant_details)) if errors.is_empty() => {
            Ok(PayoutRequest { method, amount, participant_details, customer, metadata })
        }
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

fn parse_method(f: &mut Fields<'_>, m: &Map<String, Value>, key: &str, today: Date) -> Option<PayoutMethod> {
    let kind = f.string(m, "type", &format!("{key}.type"))?;
    match kind.as_str() {
        "card" => {
            let p = format!("{key}.card");
            let card = f.object(m, "card", &p)?;
            let card_type = f.string(card, "type", &format!("{p}.type"))?;
            if card_type != "bank_card" {
                f.err(&format!("{p}.type"), "only bank_card is supported by open131 (no widget tokens yet)");
                return None;
            }
            let p = format!("{p}.bank_card");
            let bank_card = f.object(card, "bank_card", &p)?;
            let number = f.string(bank_card, "number", &format!("{p}.number"));
            let number = f.check(&format!("{p}.number"), number, CardNumber::parse);
            let month = f.optional_string(bank_card, "expiration_month", &format!("{p}.expiration_month"));
            let year = f.optional_string(bank_card, "expiration_year", &format!("{p}.expiration_year"));
            match (month, year) {
                (Some(mm), Some(yy)) => match CardExpiry::parse(&mm, &yy) {
                    Ok(exp) if exp.is_expired_on(today) => {
                        f.err(&format!("{p}.expiration_year"), "the card has expired")
                    }
                    Ok(_) => {}
                    Err(msg) => f.err(&format!("{p}.expiration_month"), msg),
                },
                (None, None) => {}
                _ => f.err(&format!("{p}.expiration_month"), "expiration_month and expiration_year go together"),
            }
            if let Some(code) = f.optional_string(bank_card, "security_code", &format!("{p}.security_code")) {
                if !(3..=4).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
                    f.err(&format!("{p}.security_code"), "must be 3 or 4 digits");
                }
            }
            Some(PayoutMethod::Card { number: number? })
        }
        "bank_account" => {
            let p = format!("{key}.bank_account");
            let ba = f.object(m, "bank_account", &p)?;
            let system = f.string(ba, "system_type", &format!("{p}.system_type"))?;
            match system.as_str() {
                "ru" => {
                    let p = format!("{p}.ru");
                    let ru = f.object(ba, "ru", &p)?;
                    let bik = f.string(ru, "bik", &format!("{p}.bik"));
                    let bik = f.check(&format!("{p}.bik"), bik, Bik::parse);
                    let account = f.string(ru, "account", &format!("{p}.account"));
                    let account = f.check(&format!("{p}.account"), account, AccountNumber::parse);
                    let full_name = f.string(ru, "full_name", &format!("{p}.full_name"));
                    let description = f.string(ru, "description", &format!("{p}.description"));
                    if let Some(d) = &description {
                        if d.chars().count() > ACCOUNT_DESCRIPTION_MAX_CHARS {
                            f.err(&format!("{p}.description"), "must be at most 210 characters");
                        }
                    }
                    let is_fast = match ru.get("is_fast") {
                        None | Some(Value::Null) => false,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => {
                            f.err(&format!("{p}.is_fast"), "must be a boolean");
                            false
                        }
                    };
                    if let Some(inn) = f.optional_string(ru, "inn", &format!("{p}.inn")) {
                        if Inn::parse_any(&inn).is_err() {
                            f.err(&format!("{p}.inn"), "must be 10 or 12 digits");
                        }
                    }
                    if let Some(kpp) = f.optional_string(ru, "kpp", &format!("{p}.kpp")) {
                        if !kpp_ok(&kpp) {
                            f.err(&format!("{p}.kpp"), "must be a KPP (9 characters)");
                        }
                    }
                    let (bik, account) = (bik?, account?);
                    if !account_matches_bik(&account, &bik) {
                        f.err(&format!("{p}.account"), "control digit does not match the BIK");
                        return None;
                    }
                    Some(PayoutMethod::BankAccountRu {
                        bik,
                        account,
                        full_name: Personal::new(full_name?),
                        description: description?,
                        is_fast,
                    })
                }
                "faster_payment_system" => {
                    let p = format!("{p}.faster_payment_system");
                    let fps = f.object(ba, "faster_payment_system", &p)?;
                    let phone = f.string(fps, "phone", &format!("{p}.phone"));
                    let phone = f.check(&format!("{p}.phone"), phone, RuPhone::parse);
                    let bank_id = f.string(fps, "bank_id", &format!("{p}.bank_id"));
                    let description = f.optional_string(fps, "description", &format!("{p}.description"));
                    let bank_id = bank_id?;
                    if crate::fps::bank(&bank_id).is_none() {
                        let n = crate::fps::banks().len();
                        f.err(&format!("{p}.bank_id"), format!("is not one of the {n} banks of fps/banks"));
                        return None;
                    }
                    Some(PayoutMethod::Fps { phone: phone?, bank_id, description })
                }
                _ => {
                    f.err(&format!("{p}.system_type"), "must be ru or faster_payment_system");
                    None
                }
            }
        }
        "wallet" => {
            let p = format!("{key}.wallet");
            let w = f.object(m, "wallet", &p)?;
            let wallet_type = f.string(w, "type", &format!("{p}.type"))?;
            let kind = match wallet_type.as_str() {
                "qiwi" => WalletKind::Qiwi,
                "yoomoney" => WalletKind::Yoomoney,
                _ => {
                    f.err(&format!("{p}.type"), "must be qiwi or yoomoney");
                    return None;
                }
            };
            let p = format!("{p}.{}", kind.as_str());
            let inner = f.object(w, kind.as_str(), &p)?;
            let account = f.string(inner, "account", &format!("{p}.account"))?;
            let ok = match kind {
                // QIWI wallets are phone numbers: + and 11–15 digits.
                WalletKind::Qiwi => {
                    account.starts_with('+')
                        && (11..=15).contains(&(account.len() - 1))
                        && account[1..].bytes().all(|b| b.is_ascii_digit())
                }
                // YooMoney wallet numbers are 11–20 digits.
                WalletKind::Yoomoney => {
                    (11..=20).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_digit())
                }
            };
            if !ok {
                let msg = match kind {
                    WalletKind::Qiwi => "must be a phone number: + and 11 to 15 digits",
                    WalletKind::Yoomoney => "must be 11 to 20 digits",
                };
                f.err(&format!("{p}.account"), msg);
                return None;
            }
            let description = f.optional_string(inner, "description", &format!("{p}.description"));
            Some(PayoutMethod::Wallet { kind, account: Personal::new(account), description })
        }
        "tax" => {
            let p = format!("{key}.tax");
            let tax = f.object(m, "tax", &p)?;
            let before = f.errors.len();
            parse_tax(f, tax, &p);
            if f.errors.len() != before {
                return None;
            }
            Some(PayoutMethod::Tax { tax: strip_nulls(Value::Object(tax.clone()))? })
        }
        other => {
            f.err(
                &format!("{key}.type"),
                format!("{other:?} is not a payout method (card, bank_account, wallet, tax)"),
            );
            None
        }
    }
}

fn parse_tax(f: &mut Fields<'_>, tax: &Map<String, Value>, p: &str) {
    let Some(kind) = f.string(tax, "type", &format!("{p}.type")) else { return };
    let Some(details) = f.object(tax, "tax_details", &format!("{p}.tax_details")) else { return };
    let dp = format!("{p}.tax_details");
    match kind.as_str() {
        "tax_full" => {
            type Rule = (&'static str, fn(&str) -> bool, &'static str);
            let rules: [Rule; 2] =
                [("kbk", kbk_ok, "must be 20 digits (KBK)"), ("oktmo", oktmo_ok, "must be 8 or 11 digits (OKTMO)")];
            for (key, ok, msg) in rules {
                if let Some(v) = f.string(details, key, &format!("{dp}.{key}")) {
                    if !ok(&v) {
                        f.err(&format!("{dp}.{key}"), msg);
                    }
                }
            }
            if let Some(uin) = f.optional_string(tax, "uin", &format!("{p}.uin")) {
                if !uin_ok(&uin) {
                    f.err(&format!("{p}.uin"), "must be 20 or 25 digits, or 0");
                }
            }
            if let Some(payer) = f.object(tax, "payer", &format!("{p}.payer")) {
                if let Some(inn) = f.string(payer, "inn", &format!("{p}.payer.inn")) {
                    if Inn::parse_any(&inn).is_err() {
                        f.err(&format!("{p}.payer.inn"), "must be 10 or 12 digits");
                    }
                }
                if let Some(kpp) = f.optional_string(payer, "kpp", &format!("{p}.payer.kpp")) {
                    if !kpp_ok(&kpp) {
                        f.err(&format!("{p}.payer.kpp"), "must be a KPP (9 characters)");
                    }
                }
            }
            if let Some(payee) = f.object(tax, "payee", &format!("{p}.payee")) {
                let pp = format!("{p}.payee");
                let bik = f.string(payee, "bik", &format!("{pp}.bik"));
                f.check(&format!("{pp}.bik"), bik, Bik::parse);
                let account = f.string(payee, "account", &format!("{pp}.account"));
                f.check(&format!("{pp}.account"), account, AccountNumber::parse);
                f.string(payee, "name", &format!("{pp}.name"));
                if let Some(inn) = f.string(payee, "inn", &format!("{pp}.inn")) {
                    if Inn::parse_legal(&inn).is_err() {
                        f.err(&format!("{pp}.inn"), "must be 10 digits");
                    }
                }
                if let Some(kpp) = f.string(payee, "kpp", &format!("{pp}.kpp")) {
                    if !kpp_ok(&kpp) {
                        f.err(&format!("{pp}.kpp"), "must be a KPP (9 characters)");
                    }
                }
            }
        }
        "tax_short" => {
            let Some(period) = f.object(details, "period", &format!("{dp}.period")) else { return };
            let pp = format!("{dp}.period");
            let ptype = f.string(period, "type", &format!("{pp}.type"));
            let max = match ptype.as_deref() {
                Some("month") => 12,
                Some("quarter") => 4,
                Some(_) => {
                    f.err(&format!("{pp}.type"), "must be month or quarter");
                    return;
                }
                None => return,
            };
            match period.get("number").and_then(Value::as_i64) {
                Some(n) if (1..=max).contains(&n) => {}
                _ => f.err(&format!("{pp}.number"), format!("must be an integer from 1 to {max}")),
            }
            let year_ok = match period.get("year") {
                Some(Value::Number(n)) => n.as_i64().is_some_and(|y| (2000..=2100).contains(&y)),
                Some(Value::String(s)) => s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()),
                _ => false,
            };
            if !year_ok {
                f.err(&format!("{pp}.year"), "must be a four-digit year");
            }
        }
        _ => f.err(&format!("{p}.type"), "must be tax_full or tax_short"),
    }
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
pub fn sandbox_plan(method: &PayoutMethod, amount: &Money) -> SandboxPlan {
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
        13_110 if method.is_bank_account() => SandboxPlan::SucceedThenReturned,
        _ => SandboxPlan::Succeed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let p = parse_payout(body.as_object().unwrap(), time::macros::date!(2026 - 11 - 30)).unwrap();
        let shown = p.method.masked();
        assert_eq!(shown["tax"]["payer"]["inn"], "********2259");
        assert_eq!(shown["tax"]["payee"]["account"], "****************7300");
        assert_eq!(shown["tax"]["tax_details"]["kbk"], "18210102010011000110");
        assert!(!shown.to_string().contains("500100732259"));
    }
}
