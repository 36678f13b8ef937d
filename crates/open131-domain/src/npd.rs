//! The self-employed (NPD) register as the sandbox's tax service knows it,
//! and the partner's requests to it: `npd/check` (is this INN a
//! professional-income taxpayer, and linked to the bank?) and
//! `npd/taxpayer/check_personal_info` (do the INN, name and phone match the
//! tax service's?), each answered by `npd/request/status` after
//! [`NPD_REQUEST_PENDING_S`]. Parsed once at the edge; the answers are
//! worked out here from the taxpayer and the project's link, with no IO.
//!
//! Where the docs are silent `[INF]`: the request fields (`tax_reference`,
//! `full_name`, `phone`), the answers' shapes, the pending time, and the
//! sandbox's documented INNs ([`SANDBOX_STEMS`]).

use serde_json::{json, Map, Value};

use crate::fields::Fields;
use crate::ident::Inn;
use crate::payment::parse_phone;
use crate::FieldError;

/// How long a request stays `pending` before its answer, in seconds `[INF]`
/// (the tax service answers asynchronously; the docs say to ask again).
pub const NPD_REQUEST_PENDING_S: i64 = 2;
/// Longest `full_name` read, in characters.
pub const FULL_NAME_MAX_CHARS: usize = 256;
/// Longest `request_id` read, in bytes.
pub const REQUEST_ID_MAX_BYTES: usize = 64;

/// What the tax service knows of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxStatus {
    /// The tax service does not know the INN (`taxpayer_unknown`).
    Unknown,
    /// Known, but not a professional-income (NPD) taxpayer.
    NotSelfEmployed,
    SelfEmployed,
}

impl TaxStatus {
    pub const ALL: [TaxStatus; 3] = [Self::Unknown, Self::NotSelfEmployed, Self::SelfEmployed];

    /// The stored (and the CLI's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::NotSelfEmployed => "not_self_employed",
            Self::SelfEmployed => "self_employed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A person in the tax service's register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taxpayer {
    pub status: TaxStatus,
    /// The tax service's name and phone for the person; `None`: it holds
    /// none to compare, so whatever the partner sends matches.
    pub full_name: Option<String>,
    pub phone: Option<String>,
    /// Every request about the person fails with `npd_service_internal_error`.
    pub service_error: bool,
    /// How many registrations of a receipt the tax service refuses before it
    /// accepts one (`receipt::Receipt::next_try`): 0, every first try succeeds.
    pub receipt_refusals: u32,
}

/// The sandbox's documented INNs: the first ten digits, and what the tax
/// service knows of the person whose INN completes them (check digits
/// added, `Inn::complete_individual`). Any other valid INN is a
/// self-employed person with no name or phone on file.
pub const SANDBOX_STEMS: [(&str, SandboxTaxpayer); 5] = [
    ("7700000001", SandboxTaxpayer::Unknown),
    ("7700000002", SandboxTaxpayer::NotSelfEmployed),
    ("7700000003", SandboxTaxpayer::ServiceError),
    ("7700000004", SandboxTaxpayer::NamedOnFile),
    ("7700000005", SandboxTaxpayer::ReceiptsRefused),
];

/// How many registrations of each receipt the sandbox's tax service refuses
/// for the `ReceiptsRefused` person: the first try and the first retry; the
/// second retry (6 minutes after the payout) registers it.
pub const SANDBOX_RECEIPT_REFUSALS: u32 = 2;

/// The name and phone the tax service has on file for the sandbox's
/// `NamedOnFile` person (README).
pub const SANDBOX_FULL_NAME: &str = "Петров Пётр Петрович";
pub const SANDBOX_PHONE: &str = "79990000004";

/// What a documented sandbox INN stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxTaxpayer {
    Unknown,
    NotSelfEmployed,
    ServiceError,
    /// Self-employed, with [`SANDBOX_FULL_NAME`] and [`SANDBOX_PHONE`] on file.
    NamedOnFile,
    /// Self-employed; the first [`SANDBOX_RECEIPT_REFUSALS`] registrations of
    /// each receipt are refused, so the receipt waits, pending, for a retry.
    ReceiptsRefused,
}

/// What the sandbox's tax service knows of `inn` (the operator may say otherwise).
pub fn sandbox_taxpayer(inn: &Inn) -> Taxpayer {
    let stem = &inn.expose()[..inn.expose().len().min(10)];
    let kind = SANDBOX_STEMS.iter().find(|(s, _)| *s == stem).map(|(_, kind)| *kind);
    let plain = |status| Taxpayer { status, full_name: None, phone: None, service_error: false, receipt_refusals: 0 };
    match kind {
        Some(SandboxTaxpayer::Unknown) => plain(TaxStatus::Unknown),
        Some(SandboxTaxpayer::NotSelfEmployed) => plain(TaxStatus::NotSelfEmployed),
        Some(SandboxTaxpayer::ServiceError) => Taxpayer { service_error: true, ..plain(TaxStatus::SelfEmployed) },
        Some(SandboxTaxpayer::NamedOnFile) => Taxpayer {
            full_name: Some(SANDBOX_FULL_NAME.to_string()),
            phone: Some(SANDBOX_PHONE.to_string()),
            ..plain(TaxStatus::SelfEmployed)
        },
        Some(SandboxTaxpayer::ReceiptsRefused) => {
            Taxpayer { receipt_refusals: SANDBOX_RECEIPT_REFUSALS, ..plain(TaxStatus::SelfEmployed) }
        }
        None => plain(TaxStatus::SelfEmployed),
    }
}

/// What a partner asks the tax service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpdAsk {
    /// `npd/check`: the status and the link.
    Check { inn: Inn },
    /// `npd/taxpayer/check_personal_info`: does the data match.
    PersonalInfo { inn: Inn, full_name: String, phone: String },
}

impl NpdAsk {
    pub fn inn(&self) -> &Inn {
        match self {
            Self::Check { inn } | Self::PersonalInfo { inn, .. } => inn,
        }
    }
}

/// The tax service's errors, as the bank names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NpdError {
    TaxpayerUnknown,
    NpdServiceInternalError,
}

impl NpdError {
    pub fn code(self) -> &'static str {
        match self {
            Self::TaxpayerUnknown => "taxpayer_unknown",
            Self::NpdServiceInternalError => "npd_service_internal_error",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::TaxpayerUnknown => "The tax service does not know a taxpayer with this INN",
            Self::NpdServiceInternalError => "The self-employed (NPD) service failed: ask again later",
        }
    }
}

/// A request's answer once it is no longer pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpdAnswer {
    Checked {
        self_employed: bool,
        linked: bool,
    },
    /// The parameters that do not match the tax service's (empty: all match).
    PersonalInfo {
        mismatches: Vec<&'static str>,
    },
    Failed(NpdError),
}

/// The tax service's answer to `ask` about `taxpayer`, `linked` to the bank
/// for the asking project.
pub fn answer(ask: &NpdAsk, taxpayer: &Taxpayer, linked: bool) -> NpdAnswer {
    if taxpayer.service_error {
        return NpdAnswer::Failed(NpdError::NpdServiceInternalError);
    }
    if taxpayer.status == TaxStatus::Unknown {
        return NpdAnswer::Failed(NpdError::TaxpayerUnknown);
    }
    let self_employed = taxpayer.status == TaxStatus::SelfEmployed;
    match ask {
        NpdAsk::Check { .. } => NpdAnswer::Checked { self_employed, linked: self_employed && linked },
        NpdAsk::PersonalInfo { full_name, phone, .. } => {
            let differs = |on_file: &Option<String>, sent: &str, same: fn(&str, &str) -> bool| {
                on_file.as_deref().is_some_and(|f| !same(f, sent))
            };
            let mut mismatches = Vec::new();
            if differs(&taxpayer.full_name, full_name, same_name) {
                mismatches.push("full_name");
            }
            if differs(&taxpayer.phone, phone, |a, b| a == b) {
                mismatches.push("phone");
            }
            NpdAnswer::PersonalInfo { mismatches }
        }
    }
}

/// Names compare without case, extra spaces, or the difference of `ё` and `е`.
fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().map(|w| w.to_lowercase().replace('ё', "е")).collect::<Vec<_>>().join(" ");
    norm(a) == norm(b)
}

impl NpdAnswer {
    /// The answer's fields beside `status` and `request_id` in `npd/request/status`.
    pub fn wire(&self) -> (&'static str, Map<String, Value>) {
        let mut out = Map::new();
        let status = match self {
            Self::Checked { self_employed, linked } => {
                out.insert("is_professional_income_taxpayer".into(), json!(self_employed));
                out.insert("is_linked".into(), json!(linked));
                "ok"
            }
            Self::PersonalInfo { mismatches } => {
                out.insert("mismatches".into(), json!(mismatches));
                "ok"
            }
            Self::Failed(e) => {
                out.insert("error".into(), json!({"code": e.code(), "description": e.description()}));
                "error"
            }
        };
        (status, out)
    }

    /// As stored (JSON), read back by [`NpdAnswer::parse_stored`].
    pub fn stored(&self) -> String {
        match self {
            Self::Checked { self_employed, linked } => {
                json!({"checked": {"self_employed": self_employed, "linked": linked}}).to_string()
            }
            Self::PersonalInfo { mismatches } => json!({"mismatches": mismatches}).to_string(),
            Self::Failed(e) => json!({"error": e.code()}).to_string(),
        }
    }

    pub fn parse_stored(text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        if let Some(c) = v.get("checked") {
            return Some(Self::Checked {
                self_employed: c.get("self_employed")?.as_bool()?,
                linked: c.get("linked")?.as_bool()?,
            });
        }
        if let Some(list) = v.get("mismatches") {
            let known = ["full_name", "phone"];
            let mismatches = list
                .as_array()?
                .iter()
                .map(|m| known.iter().find(|k| Some(**k) == m.as_str()).copied())
                .collect::<Option<Vec<_>>>()?;
            return Some(Self::PersonalInfo { mismatches });
        }
        let code = v.get("error")?.as_str()?;
        [NpdError::TaxpayerUnknown, NpdError::NpdServiceInternalError]
            .into_iter()
            .find(|e| e.code() == code)
            .map(Self::Failed)
    }
}

/// What the operator says the tax service knows of a person: the name and
/// phone checked as a partner's are (the phone kept as digits, so it
/// compares with a partner's `+7…`), blank ones refused.
pub fn operator_taxpayer(
    status: TaxStatus,
    full_name: Option<&str>,
    phone: Option<&str>,
    service_error: bool,
    receipt_refusals: u32,
) -> Result<Taxpayer, &'static str> {
    let full_name = match full_name.map(str::trim) {
        None => None,
        Some(n) if !n.is_empty() && n.chars().count() <= FULL_NAME_MAX_CHARS => Some(n.to_string()),
        Some(_) => return Err("full_name must be 1 to 256 characters"),
    };
    let phone = match phone {
        None => None,
        Some(p) => Some(parse_phone(p.trim()).ok_or("phone must be 10 to 15 digits, optionally after a +")?),
    };
    Ok(Taxpayer { status, full_name, phone, service_error, receipt_refusals })
}

/// One row of an imported register (`open131 npd import`): the person, what
/// the tax service knows of them, and whether they are linked to the bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRow {
    pub inn: Inn,
    pub taxpayer: Taxpayer,
    pub linked: bool,
}

/// A register row's fields (`inn,status,linked,full_name,phone`), checked as
/// the operator's word is; `linked` is `true`/`1`, or `false`/`0`/empty, and
/// an empty name or phone is none on file.
pub fn parse_register_row([inn, status, linked, name, phone]: [&str; 5]) -> Result<RegisterRow, String> {
    let inn = match Inn::parse_individual(inn.trim()) {
        Ok(inn) if inn.check_digits_ok() => inn,
        Ok(_) => return Err("the INN's check digits do not match".into()),
        Err(why) => return Err(format!("inn: {why}")),
    };
    let status = TaxStatus::parse(status.trim()).ok_or("status must be self_employed, not_self_employed or unknown")?;
    let linked = match linked.trim() {
        "true" | "1" => true,
        "false" | "0" | "" => false,
        _ => return Err("linked must be true, false, 1, 0 or empty".into()),
    };
    let text = |t: &'_ str| Some(t.trim()).filter(|t| !t.is_empty()).map(str::to_string);
    let (name, phone) = (text(name), text(phone));
    let taxpayer = operator_taxpayer(status, name.as_deref(), phone.as_deref(), false, 0)?;
    Ok(RegisterRow { inn, taxpayer, linked })
}

/// The INN at `tax_reference`: 12 digits whose check digits match.
fn parse_inn(f: &mut Fields<'_>, body: &Map<String, Value>) -> Option<Inn> {
    let raw = f.string(body, "tax_reference", "tax_reference")?;
    match Inn::parse_individual(raw.trim()) {
        Ok(inn) if inn.check_digits_ok() => Some(inn),
        Ok(_) => {
            f.err("tax_reference", "the INN's check digits do not match");
            None
        }
        Err(why) => {
            f.err("tax_reference", why);
            None
        }
    }
}

fn finish<T>(value: Option<T>, mut errors: Vec<FieldError>) -> Result<T, Vec<FieldError>> {
    match value {
        Some(v) if errors.is_empty() => Ok(v),
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

/// `npd/check`: `{tax_reference}`.
pub fn parse_check(body: &Map<String, Value>) -> Result<NpdAsk, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["tax_reference"], &[]);
    let inn = parse_inn(f, body);
    finish(inn.map(|inn| NpdAsk::Check { inn }), errors)
}

/// `npd/taxpayer/check_personal_info`: `{tax_reference, full_name, phone}` `[INF]`.
pub fn parse_personal_info(body: &Map<String, Value>) -> Result<NpdAsk, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["tax_reference", "full_name", "phone"], &[]);
    let inn = parse_inn(f, body);
    let full_name = f.string(body, "full_name", "full_name").map(|n| n.trim().to_string());
    let full_name = full_name.filter(|n| {
        let ok = !n.is_empty() && n.chars().count() <= FULL_NAME_MAX_CHARS;
        if !ok {
            f.err("full_name", format!("must be 1 to {FULL_NAME_MAX_CHARS} characters"));
        }
        ok
    });
    let phone = f.string(body, "phone", "phone").and_then(|p| {
        let parsed = parse_phone(p.trim());
        if parsed.is_none() {
            f.err("phone", "must be 10 to 15 digits, optionally after a +");
        }
        parsed
    });
    let ask = match (inn, full_name, phone) {
        (Some(inn), Some(full_name), Some(phone)) => Some(NpdAsk::PersonalInfo { inn, full_name, phone }),
        _ => None,
    };
    finish(ask, errors)
}

/// `npd/request/status`: `{request_id}`.
pub fn parse_request_status(body: &Map<String, Value>) -> Result<String, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &["request_id"], &[]);
    // `Fields::string` names a missing or empty id already.
    let id = f.string(body, "request_id", "request_id").filter(|id| {
        let ok = id.len() <= REQUEST_ID_MAX_BYTES;
        if !ok {
            f.err("request_id", format!("must be at most {REQUEST_ID_MAX_BYTES} bytes"));
        }
        ok
    });
    finish(id, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inn(stem: &str) -> Inn {
        Inn::parse_individual(&Inn::complete_individual(stem).unwrap()).unwrap()
    }

    #[test]
    fn every_sandbox_taxpayer_answers_as_documented() {
        let check = |stem: &str, linked: bool| {
            let inn = inn(stem);
            answer(&NpdAsk::Check { inn: inn.clone() }, &sandbox_taxpayer(&inn), linked)
        };
        assert_eq!(check("7700000001", false), NpdAnswer::Failed(NpdError::TaxpayerUnknown));
        assert_eq!(check("7700000002", true), NpdAnswer::Checked { self_employed: false, linked: false });
        assert_eq!(check("7700000003", false), NpdAnswer::Failed(NpdError::NpdServiceInternalError));
        assert_eq!(check("5001007322", false), NpdAnswer::Checked { self_employed: true, linked: false });
        assert_eq!(check("5001007322", true), NpdAnswer::Checked { self_employed: true, linked: true });
        let named = inn("7700000004");
        let ask = |name: &str, phone: &str| NpdAsk::PersonalInfo {
            inn: named.clone(),
            full_name: name.into(),
            phone: phone.into(),
        };
        let on_file = sandbox_taxpayer(&named);
        assert_eq!(
            answer(&ask(" петров  Петр петрович", SANDBOX_PHONE), &on_file, false),
            NpdAnswer::PersonalInfo { mismatches: vec![] }
        );
        assert_eq!(
            answer(&ask("Иванов Иван", "79990000000"), &on_file, false),
            NpdAnswer::PersonalInfo { mismatches: vec!["full_name", "phone"] }
        );
        // Nothing on file: whatever is sent matches.
        let plain = inn("5001007322");
        let sent =
            NpdAsk::PersonalInfo {
                inn: plain.clone(), full_name: "Кто угодно".into(), phone: "70000000000".into()
            };
        assert_eq!(answer(&sent, &sandbox_taxpayer(&plain), false), NpdAnswer::PersonalInfo { mismatches: vec![] });
    }

    /// The README's table of sandbox INNs.
    #[test]
    fn the_documented_inns_complete_their_stems() {
        let full: Vec<String> = SANDBOX_STEMS.iter().map(|(stem, _)| Inn::complete_individual(stem).unwrap()).collect();
        assert_eq!(full, ["770000000156", "770000000220", "770000000300", "770000000477", "770000000540"]);
    }

    #[test]
    fn the_operators_word_is_checked_like_a_partners() {
        let t =
            operator_taxpayer(TaxStatus::SelfEmployed, Some(" Петров Пётр "), Some("+79990000004"), false, 0).unwrap();
        assert_eq!((t.full_name.as_deref(), t.phone.as_deref()), (Some("Петров Пётр"), Some("79990000004")));
        assert!(operator_taxpayer(TaxStatus::SelfEmployed, Some(" "), None, false, 0).is_err());
        assert!(operator_taxpayer(TaxStatus::SelfEmployed, None, Some("12"), false, 0).is_err());
    }

    #[test]
    fn answers_round_trip_and_render() {
        for a in [
            NpdAnswer::Checked { self_employed: true, linked: false },
            NpdAnswer::PersonalInfo { mismatches: vec!["phone"] },
            NpdAnswer::Failed(NpdError::TaxpayerUnknown),
            NpdAnswer::Failed(NpdError::NpdServiceInternalError),
        ] {
            assert_eq!(NpdAnswer::parse_stored(&a.stored()), Some(a.clone()));
        }
        let (status, fields) = NpdAnswer::Failed(NpdError::TaxpayerUnknown).wire();
        assert_eq!((status, fields["error"]["code"].as_str()), ("error", Some("taxpayer_unknown")));
        for t in TaxStatus::ALL {
            assert_eq!(TaxStatus::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn bad_requests_name_every_field() {
        let names = |r: Result<NpdAsk, Vec<FieldError>>| -> Vec<String> {
            r.unwrap_err().into_iter().map(|e| e.field).collect()
        };
        let body = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(names(parse_check(&body(json!({})))), ["tax_reference"]);
        assert_eq!(names(parse_check(&body(json!({"tax_reference": "500100732258", "x": 1})))), ["tax_reference", "x"]);
        assert!(parse_check(&body(json!({"tax_reference": "500100732259"}))).is_ok());
        assert_eq!(
            names(parse_personal_info(&body(
                json!({"tax_reference": "500100732259", "full_name": " ", "phone": "12"})
            ))),
            ["full_name", "phone"]
        );
        assert_eq!(parse_request_status(&body(json!({"request_id": "npd_1"}))).unwrap(), "npd_1");
        assert!(parse_request_status(&body(json!({}))).is_err());
    }
}
