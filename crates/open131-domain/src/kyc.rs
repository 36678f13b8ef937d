//! Passport verification (KYC) rules: parsing a v1.1 application, the check
//! lifecycle, and the decisions a verifier makes.

use serde_json::{Map, Value};
use time::{Date, Duration, OffsetDateTime};

use crate::dates::{age_on, anniversary, moscow_today, parse_ddmmyyyy};
use crate::ident::{Inn, PassportNumber};
use crate::personal::Personal;
use crate::FieldError;

/// Minimum age of a person being verified, in years.
pub const AGE_MIN_YEARS: i32 = 18;
/// Age at which a Russian passport is first issued.
pub const PASSPORT_ISSUE_AGE_YEARS: i32 = 14;
/// Ages at which a passport must be replaced.
pub const PASSPORT_REPLACE_AGES_YEARS: [i32; 2] = [20, 45];

/// Fixed-literal fields of v1.1 with every spelling the bank has published.
pub const FIXED_LITERALS_V11: [(&str, &[&str]); 6] = [
    ("identity_document", &["Паспорт гражданина РФ", "Паспорт РФ"]),
    ("citizenship", &["РФ"]),
    ("beneficial_owners", &["ВБ отсутствует", "БВ отсутствует"]),
    ("public_officials", &["Нет"]),
    ("migration_card", &["-"]),
    ("right_to_stay_in_rf", &["-"]),
];

/// Required free-text fields of v1.1 (besides the ones with a format).
const REQUIRED_TEXT_V11: [&str; 7] =
    ["first_name", "last_name", "birthplace", "issuer", "address", "phone_number", "agent_contract_number"];

/// API version of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KycVersion {
    V11,
    V20,
}

impl KycVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V11 => "v1.1",
            Self::V20 => "v2.0",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1.1" => Some(Self::V11),
            "v2.0" => Some(Self::V20),
            _ => None,
        }
    }
}

/// A Russian internal passport as the verifier needs it.
#[derive(Debug, Clone)]
pub struct RfPassport {
    pub number: PassportNumber,
    pub issue_date: Date,
}

/// An application that passed every format rule. Only what the verifier and
/// the duplicate rule need is kept typed; the whole payload is stored as sent.
#[derive(Debug, Clone)]
pub struct KycApplication {
    pub version: KycVersion,
    /// The Russian passport: always in v1.1, for residents in v2.0.
    pub rf_passport: Option<RfPassport>,
    /// The identity document in the duplicate rule: the passport's 10 digits, or
    /// `FOREIGN_PASSPORT:<number>` for a non-resident. Shared by v1.1 and v2.0.
    pub document_key: Personal<String>,
    /// The taxpayer number as sent (12 digits for a Russian INN).
    pub inn: Personal<String>,
    pub agent_contract_number: Personal<String>,
    pub birthday: Date,
}

impl KycApplication {
    /// The Russian INN, when this person has a Russian passport.
    pub fn ru_inn(&self) -> Option<Inn> {
        self.rf_passport.as_ref().and_then(|_| Inn::parse_individual(self.inn.expose()).ok())
    }
}

/// Parses and validates a v1.1 `payload`, returning every offending field at once.
/// `now` decides "today" (Moscow) for the age and future-date rules.
pub fn parse_v11(payload: &Map<String, Value>, now: OffsetDateTime) -> Result<KycApplication, Vec<FieldError>> {
    let today = moscow_today(now);
    let mut errors = Vec::new();
    let path = |name: &str| format!("payload.{name}");

    // Every required field must be a non-empty string.
    let text = |name: &str, errors: &mut Vec<FieldError>| -> Option<String> {
        match payload.get(name) {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(path(name), "is required"));
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(FieldError::new(path(name), "must not be empty"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(path(name), "must be a string"));
                None
            }
        }
    };

    for name in REQUIRED_TEXT_V11 {
        text(name, &mut errors);
    }

    if let Some(v) = payload.get("patronymic") {
        if !matches!(v, Value::String(_)) {
            errors.push(FieldError::new(path("patronymic"), "must be a string when present"));
        }
    }
    if let Some(v) = payload.get("create_participant") {
        if !matches!(v, Value::Bool(_)) {
            errors.push(FieldError::new(path("create_participant"), "must be a boolean when present"));
        }
    }

    let passport = text("passport_number", &mut errors).and_then(|s| {
        PassportNumber::parse(&s).map_err(|m| errors.push(FieldError::new(path("passport_number"), m))).ok()
    });
    let inn = text("inn", &mut errors)
        .and_then(|s| Inn::parse_individual(&s).map_err(|m| errors.push(FieldError::new(path("inn"), m))).ok());

    let date = |name: &str, errors: &mut Vec<FieldError>| -> Option<Date> {
        text(name, errors)
            .and_then(|s| parse_ddmmyyyy(&s).map_err(|m| errors.push(FieldError::new(path(name), m))).ok())
    };
    let birthday = date("birthday", &mut errors);
    let issuer_date = date("issuer_date", &mut errors);
    let _contract_date = date("agent_contract_date", &mut errors);
    let contract = payload.get("agent_contract_number").and_then(Value::as_str).map(str::to_string);

    if let Some(b) = birthday {
        if b > today {
            errors.push(FieldError::new(path("birthday"), "must not be in the future"));
        } else if age_on(b, today) < AGE_MIN_YEARS {
            errors.push(FieldError::new(path("birthday"), "the person must be at least 18 years old"));
        }
    }
    if let Some(d) = issuer_date {
        if d > today {
            errors.push(FieldError::new(path("issuer_date"), "must not be in the future"));
        } else if let Some(b) = birthday {
            if d < anniversary(b, PASSPORT_ISSUE_AGE_YEARS) {
                errors.push(FieldError::new(path("issuer_date"), "must not be before the 14th birthday"));
            }
        }
    }

    if let Some(code) = text("issuer_code", &mut errors) {
        if !is_issuer_code(&code) {
            errors.push(FieldError::new(path("issuer_code"), "must be in the form NNN-NNN"));
        }
    }
    if let Some(code) = text("postcode", &mut errors) {
        if !(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())) {
            errors.push(FieldError::new(path("postcode"), "must be 6 digits"));
        }
    }

    // The docs render the key both as `email` and `e-mail`: accept either, check each given.
    let email_keys: Vec<&str> = ["email", "e-mail"].into_iter().filter(|k| payload.contains_key(*k)).collect();
    if email_keys.is_empty() {
        errors.push(FieldError::new(path("email"), "is required"));
    }
    for key in email_keys {
        if let Some(e) = text(key, &mut errors) {
            if !is_email(&e) {
                errors.push(FieldError::new(path(key), "must be a valid e-mail address"));
            }
        }
    }

    for (name, allowed) in FIXED_LITERALS_V11 {
        if let Some(value) = text(name, &mut errors) {
            if !allowed.contains(&value.trim()) {
                let list = allowed.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" or ");
                errors.push(FieldError::new(path(name), format!("must be {list}")));
            }
        }
    }

    match (passport, inn, contract, birthday, issuer_date) {
        (Some(passport), Some(inn), Some(contract), Some(birthday), Some(issuer_date)) if errors.is_empty() => {
            Ok(KycApplication {
                version: KycVersion::V11,
                document_key: Personal::new(passport.expose().to_string()),
                rf_passport: Some(RfPassport { number: passport, issue_date: issuer_date }),
                inn: Personal::new(inn.expose().to_string()),
                agent_contract_number: Personal::new(contract),
                birthday,
            })
        }
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            errors.dedup();
            Err(errors)
        }
    }
}

pub(crate) fn is_issuer_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7 && b[3] == b'-' && b.iter().enumerate().all(|(i, c)| i == 3 || c.is_ascii_digit())
}

/// A pragmatic address check: one `@`, a non-empty local part without spaces, and
/// a domain of dot-separated labels (letters, digits, hyphens; IDN letters allowed)
/// ending in a label of two or more letters.
pub fn is_email(s: &str) -> bool {
    const LOCAL_SPECIALS: &str = ".!#$%&'*+/=?^_`{|}~-";
    let Some((local, domain)) = s.split_once('@') else { return false };
    if local.is_empty() || local.len() > 64 || domain.len() > 253 || domain.contains('@') {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    if !local.chars().all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c)) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let tld = labels[labels.len() - 1];
    labels.iter().all(label_ok) && tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)
}

/// Final answer of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Valid,
    /// MVD: the passport is invalid.
    PassportInvalid,
    /// MVD: no information about the passport.
    PassportNotFound,
    /// FNS: the INN does not match (or its check digits are wrong).
    InnMismatch,
    /// The request's signature turned out not to verify (forced outcomes only).
    InvalidSign,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Self::Valid, Self::PassportInvalid, Self::PassportNotFound, Self::InnMismatch, Self::InvalidSign];

    /// Stable name, used in storage and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "ok",
            Self::PassportInvalid => "passport_invalid",
            Self::PassportNotFound => "passport_not_found",
            Self::InnMismatch => "inn_mismatch",
            Self::InvalidSign => "invalid_sign",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// The check lifecycle: one state enum, one pure transition function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Pending,
    Finished(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckEvent {
    /// The verifier (or an operator forcing a result) decided.
    Decide(Outcome),
}

/// An illegal move; the API maps it to `session_wrong_state` where it surfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("check is already finished")]
pub struct WrongState;

pub fn transition(state: CheckState, event: CheckEvent) -> Result<CheckState, WrongState> {
    match (state, event) {
        (CheckState::Pending, CheckEvent::Decide(outcome)) => Ok(CheckState::Finished(outcome)),
        (CheckState::Finished(_), CheckEvent::Decide(_)) => Err(WrongState),
    }
}

/// Rules that need no registry and hold in every mode, in the bank's order:
/// INN check digits first, then a passport that expired by age or whose blank
/// was printed after the issue year. `None` means "no structural objection".
pub fn structural_verdict(app: &KycApplication, today: Date) -> Option<Outcome> {
    if app.ru_inn().is_some_and(|inn| !inn.check_digits_ok()) {
        return Some(Outcome::InnMismatch);
    }
    let passport = app.rf_passport.as_ref()?;
    let expired_by_age = PASSPORT_REPLACE_AGES_YEARS.into_iter().any(|age| {
        let birthday = anniversary(app.birthday, age);
        today >= birthday && passport.issue_date < birthday
    });
    if expired_by_age || passport.number.blank_year() > passport.issue_date.year() {
        return Some(Outcome::PassportInvalid);
    }
    None
}

/// Sandbox triggers on the last six characters of the identity document's
/// number (documented in the README).
pub fn sandbox_verdict(app: &KycApplication) -> Outcome {
    let key = app.document_key.expose();
    let last6 = key.get(key.len().saturating_sub(6)..).unwrap_or("");
    match last6 {
        "000001" => Outcome::PassportInvalid,
        "000002" => Outcome::PassportNotFound,
        "000003" => Outcome::InnMismatch,
        _ => Outcome::Valid,
    }
}

/// The whole sandbox decision: structural rules, then triggers.
pub fn decide_sandbox(app: &KycApplication, now: OffsetDateTime) -> Outcome {
    structural_verdict(app, moscow_today(now)).unwrap_or_else(|| sandbox_verdict(app))
}

/// What the registries say about an application (registry mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryAnswers {
    /// The passport is on the MVD list of invalid passports.
    pub passport_listed_invalid: bool,
    /// How the taxpayer registry links the INN to the passport.
    pub inn: InnLink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnLink {
    /// The registry links this INN to this passport.
    Linked,
    /// The registry has the INN, linked to other passports only.
    OtherPassport,
    /// The registry does not know the INN.
    Unknown,
    /// Not applicable (no Russian passport to link).
    NotChecked,
}

/// Registry mode: the structural rules, then the MVD list, then the taxpayer
/// registry. A person without a Russian passport is on neither list.
pub fn decide_registry(app: &KycApplication, now: OffsetDateTime, answers: RegistryAnswers) -> Outcome {
    if let Some(outcome) = structural_verdict(app, moscow_today(now)) {
        return outcome;
    }
    if answers.passport_listed_invalid {
        return Outcome::PassportInvalid;
    }
    match answers.inn {
        InnLink::Unknown | InnLink::OtherPassport => Outcome::InnMismatch,
        InnLink::Linked | InnLink::NotChecked => Outcome::Valid,
    }
}

/// When a check accepted at `created` becomes due for verification.
pub fn due_at(created: OffsetDateTime, delay: Duration) -> OffsetDateTime {
    created + delay
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::{date, datetime};

    const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

    pub(crate) fn person() -> Map<String, Value> {
        let v = json!({
            "first_name": "Петров", "last_name": "Иван", "patronymic": "Сергеевич",
            "birthday": "15.06.1990", "birthplace": "г. Москва", "inn": "500100732259",
            "identity_document": "Паспорт гражданина РФ", "passport_number": "4510123456",
            "issuer": "ОВД Хамовники", "issuer_code": "770-001", "issuer_date": "20.06.2010",
            "citizenship": "РФ", "postcode": "119021", "address": "г. Москва, ул. Льва Толстого, 16",
            "email": "ivan@example.ru", "phone_number": "+79001234567",
            "agent_contract_number": "A-17", "agent_contract_date": "10.01.2024",
            "beneficial_owners": "ВБ отсутствует", "public_officials": "Нет",
            "migration_card": "-", "right_to_stay_in_rf": "-"
        });
        v.as_object().unwrap().clone()
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_good_application_parses() {
        let app = parse_v11(&person(), NOW).unwrap();
        assert_eq!(app.birthday, date!(1990 - 06 - 15));
        assert_eq!(decide_sandbox(&app, NOW), Outcome::Valid);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let mut p = person();
        p.remove("first_name");
        p.insert("passport_number".into(), json!(4510123456u64));
        p.insert("inn".into(), json!("12345"));
        p.insert("issuer_code".into(), json!("770001"));
        p.insert("postcode".into(), json!("1190"));
        p.insert("email".into(), json!("not-an-email"));
        p.insert("citizenship".into(), json!("RU"));
        p.insert("agent_contract_date".into(), json!("2024-01-10"));
        p.insert("patronymic".into(), json!(1));
        let errors = fields(parse_v11(&p, NOW).unwrap_err());
        assert_eq!(
            errors,
            vec![
                "payload.agent_contract_date",
                "payload.citizenship",
                "payload.email",
                "payload.first_name",
                "payload.inn",
                "payload.issuer_code",
                "payload.passport_number",
                "payload.patronymic",
                "payload.postcode",
            ]
        );
    }

    #[test]
    fn age_and_issue_date_rules() {
        let mut p = person();
        p.insert("birthday".into(), json!("01.12.2008")); // turns 18 tomorrow
        p.insert("issuer_date".into(), json!("05.12.2022"));
        assert_eq!(fields(parse_v11(&p, NOW).unwrap_err()), vec!["payload.birthday"]);
        p.insert("birthday".into(), json!("30.11.2008")); // 18 today
        assert!(parse_v11(&p, NOW).is_ok());
        p.insert("issuer_date".into(), json!("29.11.2022")); // day before the 14th birthday
        assert_eq!(fields(parse_v11(&p, NOW).unwrap_err()), vec!["payload.issuer_date"]);
        p.insert("issuer_date".into(), json!("01.12.2026")); // future
        assert_eq!(fields(parse_v11(&p, NOW).unwrap_err()), vec!["payload.issuer_date"]);
    }

    #[test]
    fn alternative_spellings_and_email_key() {
        let mut p = person();
        p.insert("identity_document".into(), json!("Паспорт РФ"));
        p.insert("beneficial_owners".into(), json!("БВ отсутствует"));
        let email = p.remove("email").unwrap();
        p.insert("e-mail".into(), email);
        assert!(parse_v11(&p, NOW).is_ok());
        p.remove("e-mail");
        assert_eq!(fields(parse_v11(&p, NOW).unwrap_err()), vec!["payload.email"]);
    }

    #[test]
    fn structural_rules_in_order() {
        let mut p = person();
        p.insert("inn".into(), json!("500100732258"));
        p.insert("passport_number".into(), json!("4599000001"));
        assert_eq!(decide_sandbox(&parse_v11(&p, NOW).unwrap(), NOW), Outcome::InnMismatch);

        // Issued at 16, now 36: the 20-year replacement was missed.
        let mut p = person();
        p.insert("issuer_date".into(), json!("20.06.2006"));
        p.insert("passport_number".into(), json!("4505123456"));
        assert_eq!(decide_sandbox(&parse_v11(&p, NOW).unwrap(), NOW), Outcome::PassportInvalid);

        // Blank printed in 2012 but issued in 2010.
        let mut p = person();
        p.insert("passport_number".into(), json!("4512123456"));
        assert_eq!(decide_sandbox(&parse_v11(&p, NOW).unwrap(), NOW), Outcome::PassportInvalid);

        // 46 years old with a passport from age 20: the 45-year replacement was missed.
        let mut p = person();
        p.insert("birthday".into(), json!("01.01.1980"));
        p.insert("issuer_date".into(), json!("02.01.2000"));
        p.insert("passport_number".into(), json!("4599123456"));
        assert_eq!(decide_sandbox(&parse_v11(&p, NOW).unwrap(), NOW), Outcome::PassportInvalid);
        p.insert("issuer_date".into(), json!("02.01.2025"));
        p.insert("passport_number".into(), json!("4524123456"));
        assert_eq!(decide_sandbox(&parse_v11(&p, NOW).unwrap(), NOW), Outcome::Valid);
    }

    #[test]
    fn sandbox_triggers() {
        for (number, outcome) in [
            ("4510000001", Outcome::PassportInvalid),
            ("4510000002", Outcome::PassportNotFound),
            ("4510000003", Outcome::InnMismatch),
            ("4510000004", Outcome::Valid),
        ] {
            let mut p = person();
            p.insert("passport_number".into(), json!(number));
            assert_eq!(decide_sandbox(&parse_v11(&p, NOW).unwrap(), NOW), outcome, "{number}");
        }
    }

    #[test]
    fn transition_table() {
        let states = std::iter::once(CheckState::Pending).chain(Outcome::ALL.into_iter().map(CheckState::Finished));
        for state in states {
            for outcome in Outcome::ALL {
                let got = transition(state, CheckEvent::Decide(outcome));
                match state {
                    CheckState::Pending => assert_eq!(got, Ok(CheckState::Finished(outcome))),
                    CheckState::Finished(_) => assert_eq!(got, Err(WrongState)),
                }
            }
        }
    }

    #[test]
    fn emails() {
        for ok in ["a@b.ru", "a.b+c@ex-ample.com", "иван@почта.рф"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in ["", "a", "a@", "@b.ru", "a@b", "a b@c.ru", "a@b..ru", "a@-b.ru", "a@b.r", "a@@b.ru", ".a@b.ru"] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
