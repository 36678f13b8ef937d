//! Passport verification API v2.0: residents and non-residents.
//!
//! The bank does not publish the document object, so ours is (README):
//! `{"type", "number", "issue_date": "DD.MM.YYYY", "expiry_date"?, "issuer"?, "issuer_code"?}`
//! with `type` one of [`DOCUMENT_TYPES`]. Residents (`FL_RESIDENT`) send exactly
//! one `PASSPORT_RF` (10 digits, `issuer` and `issuer_code` required) and are
//! citizens of `RU`; non-residents (`FL_NONRESIDENT`) send a `FOREIGN_PASSPORT`
//! plus at least one other document that is not a `PASSPORT_RF`. The optional
//! `agent_contract_number` joins the duplicate rule shared with v1.1.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::dates::{age_on, anniversary, moscow_today, parse_ddmmyyyy};
use crate::ident::{Inn, PassportNumber};
use crate::kyc::{
    is_email, is_issuer_code, KycApplication, KycVersion, RfPassport, AGE_MIN_YEARS, PASSPORT_ISSUE_AGE_YEARS,
};
use crate::personal::Personal;
use crate::FieldError;

/// Document types accepted in `documents[].type`.
pub const DOCUMENT_TYPES: [&str; 8] = [
    "PASSPORT_RF",
    "FOREIGN_PASSPORT",
    "RESIDENCE_PERMIT",
    "TEMPORARY_RESIDENCE_PERMIT",
    "MIGRATION_CARD",
    "VISA",
    "WORK_PATENT",
    "REFUGEE_CERTIFICATE",
];

/// Most documents in one request.
pub const DOCUMENTS_MAX: usize = 10;
/// Length bounds of a v2.0 `inn` (foreign tax ids allowed), in characters.
pub const INN_V2_MIN_CHARS: usize = 6;
pub const INN_V2_MAX_CHARS: usize = 14;

/// ISO 3166-1 alpha-2, all 249 officially assigned codes.
pub const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ \
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI \
FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT \
JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ \
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS \
RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA \
UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

pub fn is_country(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code)
}

/// Parses and validates a v2.0 `payload`, naming every offending field.
pub fn parse_v20(payload: &Map<String, Value>, now: OffsetDateTime) -> Result<KycApplication, Vec<FieldError>> {
    let today = moscow_today(now);
    let mut errors = Vec::new();
    let path = |name: &str| format!("payload.{name}");
    let text = |map: &Map<String, Value>, name: &str, field: String, errors: &mut Vec<FieldError>| -> Option<String> {
        match map.get(name) {
            None | Some(Value::Null) => {
                errors.push(FieldError::new(field, "is required"));
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(FieldError::new(field, "must not be empty"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(field, "must be a string"));
                None
            }
        }
    };

    let kind = text(payload, "type", path("type"), &mut errors);
    let resident = match kind.as_deref() {
        Some("FL_RESIDENT") => Some(true),
        Some("FL_NONRESIDENT") => Some(false),
        Some(_) => {
            errors.push(FieldError::new(path("type"), "must be FL_RESIDENT or FL_NONRESIDENT"));
            None
        }
        None => None,
    };
    for name in ["last_name", "first_name", "birthplace", "phone_number"] {
        text(payload, name, path(name), &mut errors);
    }
    for name in ["patronymic", "agent_contract_number"] {
        if let Some(v) = payload.get(name) {
            if !matches!(v, Value::String(_)) {
                errors.push(FieldError::new(path(name), "must be a string when present"));
            }
        }
    }
    let birthday = text(payload, "birthday", path("birthday"), &mut errors)
        .and_then(|s| parse_ddmmyyyy(&s).map_err(|m| errors.push(FieldError::new(path("birthday"), m))).ok());
    if let Some(b) = birthday {
        if b > today {
            errors.push(FieldError::new(path("birthday"), "must not be in the future"));
        } else if age_on(b, today) < AGE_MIN_YEARS {
            errors.push(FieldError::new(path("birthday"), "the person must be at least 18 years old"));
        }
    }
    let citizenship = text(payload, "citizenship", path("citizenship"), &mut errors);
    if let Some(c) = &citizenship {
        if !is_country(c) {
            errors.push(FieldError::new(path("citizenship"), "must be an ISO 3166-1 alpha-2 code (e.g. RU)"));
        }
    }
    let inn = text(payload, "inn", path("inn"), &mut errors);
    if let Some(i) = &inn {
        let n = i.chars().count();
        if citizenship.as_deref() == Some("RU") {
            match Inn::parse_individual(i) {
                Ok(parsed) if parsed.check_digits_ok() => {}
                Ok(_) => errors.push(FieldError::new(path("inn"), "check digits do not match")),
                Err(m) => errors.push(FieldError::new(path("inn"), m)),
            }
        } else if !(INN_V2_MIN_CHARS..=INN_V2_MAX_CHARS).contains(&n) {
            errors.push(FieldError::new(path("inn"), "must be 6 to 14 characters"));
        }
    }
    let email_keys: Vec<&str> = ["email", "e-mail"].into_iter().filter(|k| payload.contains_key(*k)).collect();
    if email_keys.is_empty() {
        errors.push(FieldError::new(path("email"), "is required"));
    }
    for key in email_keys {
        if let Some(e) = text(payload, key, path(key), &mut errors) {
            if !is_email(&e) {
                errors.push(FieldError::new(path(key), "must be a valid e-mail address"));
            }
        }
    }

    // Documents.
    let mut rf_passport = None;
    let mut foreign_passport = None;
    let mut types = Vec::new();
    match payload.get("documents") {
        Some(Value::Array(docs)) if docs.is_empty() => {
            errors.push(FieldError::new(path("documents"), "must not be empty"));
        }
        Some(Value::Array(docs)) if docs.len() > DOCUMENTS_MAX => {
            errors.push(FieldError::new(path("documents"), format!("at most {DOCUMENTS_MAX} documents")));
        }
        Some(Value::Array(docs)) => {
            for (i, doc) in docs.iter().enumerate() {
                let dp = |f: &str| format!("payload.documents[{i}].{f}");
                let Value::Object(doc) = doc else {
                    errors.push(FieldError::new(format!("payload.documents[{i}]"), "must be an object"));
                    continue;
                };
                let Some(doc_type) = text(doc, "type", dp("type"), &mut errors) else { continue };
                if !DOCUMENT_TYPES.contains(&doc_type.as_str()) {
                    errors.push(FieldError::new(
                        dp("type"),
                        format!("unknown document type {doc_type:?} (known: {})", DOCUMENT_TYPES.join(", ")),
                    ));
                    continue;
                }
                types.push(doc_type.clone());
                let number = text(doc, "number", dp("number"), &mut errors);
                let issue_date = text(doc, "issue_date", dp("issue_date"), &mut errors).and_then(|s| {
                    parse_ddmmyyyy(&s).map_err(|m| errors.push(FieldError::new(dp("issue_date"), m))).ok()
                });
                if let Some(d) = issue_date {
                    if d > today {
                        errors.push(FieldError::new(dp("issue_date"), "must not be in the future"));
                    }
                }
                if let Some(v) = doc.get("expiry_date").filter(|v| !v.is_null()) {
                    match v.as_str().map(parse_ddmmyyyy) {
                        Some(Ok(exp)) if exp < today => {
                            errors.push(FieldError::new(dp("expiry_date"), "the document has expired"))
                        }
                        Some(Ok(exp)) if issue_date.is_some_and(|d| exp < d) => {
                            errors.push(FieldError::new(dp("expiry_date"), "must be after issue_date"))
                        }
                        Some(Ok(_)) => {}
                        Some(Err(m)) => errors.push(FieldError::new(dp("expiry_date"), m)),
                        None => errors.push(FieldError::new(dp("expiry_date"), "must be a string")),
                    }
                }
                for opt in ["issuer", "issuer_code"] {
                    if let Some(v) = doc.get(opt) {
                        if !matches!(v, Value::String(_) | Value::Null) {
                            errors.push(FieldError::new(dp(opt), "must be a string when present"));
                        }
                    }
                }
                match doc_type.as_str() {
                    "PASSPORT_RF" => {
                        text(doc, "issuer", dp("issuer"), &mut errors);
                        if let Some(code) = text(doc, "issuer_code", dp("issuer_code"), &mut errors) {
                            if !is_issuer_code(&code) {
                                errors.push(FieldError::new(dp("issuer_code"), "must be in the form NNN-NNN"));
                            }
                        }
                        let parsed = number.and_then(|n| {
                            PassportNumber::parse(&n).map_err(|m| errors.push(FieldError::new(dp("number"), m))).ok()
                        });
                        if let (Some(d), Some(b)) = (issue_date, birthday) {
                            if d < anniversary(b, PASSPORT_ISSUE_AGE_YEARS) {
                                errors.push(FieldError::new(dp("issue_date"), "must not be before the 14th birthday"));
                            }
                        }
                        if let (Some(number), Some(issue_date)) = (parsed, issue_date) {
                            rf_passport = Some(RfPassport { number, issue_date });
                        }
                    }
                    "FOREIGN_PASSPORT" => {
                        if let Some(n) = number {
                            let n: String = n.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
                            foreign_passport.get_or_insert(n);
                        }
                    }
                    _ => {}
                }
            }
        }
        None | Some(Value::Null) => errors.push(FieldError::new(path("documents"), "is required")),
        Some(_) => errors.push(FieldError::new(path("documents"), "must be an array")),
    }
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    match resident {
        Some(true) => {
            if types.len() != 1 || count("PASSPORT_RF") != 1 {
                errors.push(FieldError::new(path("documents"), "a resident sends exactly one PASSPORT_RF"));
            }
            if citizenship.as_deref().is_some_and(|c| c != "RU") {
                errors.push(FieldError::new(path("citizenship"), "a resident with a PASSPORT_RF is a citizen of RU"));
            }
        }
        Some(false) => {
            if count("PASSPORT_RF") > 0 {
                errors.push(FieldError::new(path("documents"), "a non-resident does not send a PASSPORT_RF"));
            } else if count("FOREIGN_PASSPORT") == 0 || types.len() < 2 {
                errors.push(FieldError::new(
                    path("documents"),
                    "a non-resident sends a FOREIGN_PASSPORT and at least one other document",
                ));
            }
        }
        None => {}
    }

    let document_key = match (resident, &rf_passport, &foreign_passport) {
        (Some(true), Some(p), _) => Some(p.number.expose().to_string()),
        (Some(false), _, Some(f)) => Some(format!("FOREIGN_PASSPORT:{f}")),
        _ => None,
    };
    let contract = payload.get("agent_contract_number").and_then(Value::as_str).unwrap_or("").to_string();
    match (document_key, inn, birthday) {
        (Some(key), Some(inn), Some(birthday)) if errors.is_empty() => Ok(KycApplication {
            version: KycVersion::V20,
            rf_passport: if resident == Some(true) { rf_passport } else { None },
            document_key: Personal::new(key),
            inn: Personal::new(inn),
            agent_contract_number: Personal::new(contract),
            birthday,
        }),
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            errors.dedup();
            if errors.is_empty() {
                errors.push(FieldError::new(path("documents"), "no usable identity document"));
            }
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kyc::{decide_sandbox, Outcome};
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

    fn resident() -> Map<String, Value> {
        json!({
            "type": "FL_RESIDENT", "last_name": "Иванов", "first_name": "Иван", "birthday": "15.06.1990",
            "birthplace": "Москва", "citizenship": "RU", "inn": "500100732259", "phone_number": "+79001234567",
            "email": "i@example.ru",
            "documents": [{"type": "PASSPORT_RF", "number": "4510123456", "issue_date": "20.06.2010",
                           "issuer": "ОВД", "issuer_code": "770-001"}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn nonresident() -> Map<String, Value> {
        json!({
            "type": "FL_NONRESIDENT", "last_name": "Smith", "first_name": "John", "birthday": "01.02.1985",
            "birthplace": "London", "citizenship": "GB", "inn": "AB123456C", "phone_number": "+447700900000",
            "e-mail": "john@example.co.uk",
            "documents": [
                {"type": "FOREIGN_PASSPORT", "number": "12 345 6789", "issue_date": "01.01.2020", "expiry_date": "01.01.2030"},
                {"type": "VISA", "number": "V-77", "issue_date": "01.06.2026", "expiry_date": "01.06.2027"}
            ]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn fields(e: Vec<FieldError>) -> Vec<String> {
        e.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn country_list_is_complete() {
        assert_eq!(COUNTRIES.split(' ').count(), 249);
        assert!(is_country("RU") && is_country("BY") && !is_country("XX") && !is_country("ru"));
    }

    #[test]
    fn residents_share_the_v11_duplicate_key() {
        let app = parse_v20(&resident(), NOW).unwrap();
        assert_eq!(app.document_key.expose(), "4510123456");
        assert_eq!(app.agent_contract_number.expose(), "");
        assert!(app.rf_passport.is_some());
        assert_eq!(decide_sandbox(&app, NOW), Outcome::Valid);
    }

    #[test]
    fn nonresidents_use_their_foreign_passport() {
        let app = parse_v20(&nonresident(), NOW).unwrap();
        assert_eq!(app.document_key.expose(), "FOREIGN_PASSPORT:123456789");
        assert!(app.rf_passport.is_none() && app.ru_inn().is_none());
    }

    #[test]
    fn document_rules() {
        let mut p = nonresident();
        p["documents"].as_array_mut().unwrap().pop();
        assert_eq!(fields(parse_v20(&p, NOW).unwrap_err()), vec!["payload.documents"]);

        let mut p = nonresident();
        p["documents"][1]["type"] = json!("DRIVING_LICENCE");
        let e = parse_v20(&p, NOW).unwrap_err();
        let unknown = e.iter().find(|e| e.field == "payload.documents[1].type").unwrap();
        assert!(unknown.message.contains("DRIVING_LICENCE"), "{unknown:?}");

        let mut p = nonresident();
        p["documents"][1]["type"] = json!("PASSPORT_RF");
        assert!(fields(parse_v20(&p, NOW).unwrap_err()).contains(&"payload.documents".to_string()));

        let mut p = resident();
        p["documents"].as_array_mut().unwrap().push(json!({"type": "VISA", "number": "1", "issue_date": "01.01.2020"}));
        assert_eq!(fields(parse_v20(&p, NOW).unwrap_err()), vec!["payload.documents"]);

        let mut p = resident();
        p["citizenship"] = json!("KZ");
        assert!(fields(parse_v20(&p, NOW).unwrap_err()).contains(&"payload.citizenship".to_string()));

        let mut p = nonresident();
        p["documents"][0]["expiry_date"] = json!("01.01.2021");
        assert_eq!(fields(parse_v20(&p, NOW).unwrap_err()), vec!["payload.documents[0].expiry_date"]);
    }

    #[test]
    fn field_rules() {
        let mut p = resident();
        p["inn"] = json!("500100732258");
        p["citizenship"] = json!("ZZ");
        p["type"] = json!("FL");
        p["birthday"] = json!("01.01.2010");
        p.remove("email");
        let got = fields(parse_v20(&p, NOW).unwrap_err());
        // A 2010 birthday also puts the 2010 passport before the 14th birthday.
        assert_eq!(
            got,
            vec![
                "payload.birthday",
                "payload.citizenship",
                "payload.documents[0].issue_date",
                "payload.email",
                "payload.type"
            ]
        );
        let mut p = resident();
        p["inn"] = json!("500100732258");
        assert_eq!(fields(parse_v20(&p, NOW).unwrap_err()), vec!["payload.inn"]);
        let mut p = nonresident();
        p["inn"] = json!("12345");
        assert_eq!(fields(parse_v20(&p, NOW).unwrap_err()), vec!["payload.inn"]);
    }
}
