//! `fiscalization_details` of a payout to a self-employed person (NPD):
//! `professional_income_taxpayer` with the person's INN (`tax_reference`),
//! who paid (`payer_type`, `payer_tax_number`, `payer_name`) and the
//! `services` the payout pays for. Parsed once at the edge, every bad field
//! named; echoed with each service's `quantity` (1 when not sent), as the
//! SDK's fixtures show. After the payout succeeds, the tax service's
//! receipt (`receipt: {id, link}`) joins the echo.
//!
//! Where the docs are silent `[INF]`: a service's `amount_details` is its
//! total (for all its quantity), and the services' totals sum to the payout's
//! amount, in roubles; `payer_type` defaults to `individual`; a legal
//! payer's `payer_tax_number` is its 10-digit INN, an individual's (if sent)
//! 12 digits, a foreign payer's any short text.

use serde_json::{json, Map, Value};

use crate::fields::{join, Fields};
use crate::ident::Inn;
use crate::payout::Money;
use crate::personal::Personal;
use crate::FieldError;

/// Most services in one receipt.
pub const SERVICES_MAX: usize = 100;
/// Longest service name, and longest payer name, in characters.
pub const NAME_MAX_CHARS: usize = 256;
/// Longest foreign payer's tax number, in characters.
pub const FOREIGN_TAX_NUMBER_MAX_CHARS: usize = 32;
/// Most of one service in a receipt.
pub const QUANTITY_MAX: i64 = 1_000_000;
/// The self-employed's income limit in a calendar year (Moscow), in kopecks:
/// 2.4 million roubles (the law on the professional income tax).
pub const YEARLY_INCOME_MAX_MINOR: i64 = 240_000_000;

/// The calendar year (Moscow's) `now` falls in, as `[start, end)`.
pub fn income_year(now: time::OffsetDateTime) -> (time::OffsetDateTime, time::OffsetDateTime) {
    use crate::dates::{moscow_day_start, moscow_today};
    let year = moscow_today(now).year();
    let first = |y: i32| time::Date::from_calendar_date(y, time::Month::January, 1).ok();
    match (first(year), first(year + 1)) {
        (Some(a), Some(b)) => (moscow_day_start(a), moscow_day_start(b)),
        // Out of the calendar's range: no year to count in.
        _ => (now, now),
    }
}

/// Who paid the self-employed person (the tax service's receipt names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayerType {
    Legal,
    Individual,
    Foreign,
}

impl PayerType {
    const ALL: [PayerType; 3] = [Self::Legal, Self::Individual, Self::Foreign];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legal => "legal",
            Self::Individual => "individual",
            Self::Foreign => "foreign",
        }
    }
}

/// One service a payout pays for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// Its total, in minor units of roubles.
    pub amount: i64,
    pub quantity: i64,
}

/// A payout's `fiscalization_details.professional_income_taxpayer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fiscalization {
    /// The self-employed person's INN: personal data.
    pub tax_reference: Inn,
    pub payer_type: PayerType,
    /// An individual payer's INN, or an organisation's: personal data for the former.
    pub payer_tax_number: Option<Personal<String>>,
    pub payer_name: Option<Personal<String>>,
    pub services: Vec<Service>,
}

impl Fiscalization {
    /// What the services add up to, in minor units.
    pub fn total(&self) -> i64 {
        self.services.iter().map(|s| s.amount).sum()
    }

    /// The echo in a payout with its receipt's object, if any (and the
    /// stored form, without).
    pub fn wire(&self, receipt: Option<Value>) -> Value {
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|s| json!({"name": s.name, "amount_details": {"amount": s.amount, "currency": "rub"}, "quantity": s.quantity}))
            .collect();
        let mut p = Map::new();
        p.insert("services".into(), Value::Array(services));
        p.insert("tax_reference".into(), json!(self.tax_reference.expose()));
        p.insert("payer_type".into(), json!(self.payer_type.as_str()));
        for (key, value) in [("payer_tax_number", &self.payer_tax_number), ("payer_name", &self.payer_name)] {
            if let Some(v) = value {
                p.insert(key.into(), json!(v.expose()));
            }
        }
        if let Some(receipt) = receipt {
            p.insert("receipt".into(), receipt);
        }
        json!({"professional_income_taxpayer": p})
    }

    /// Reads back [`Fiscalization::wire`] (without a receipt).
    pub fn parse_stored(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        let mut errors = Vec::new();
        let parsed = parse(&mut Fields { errors: &mut errors }, &value, "fiscalization_details");
        parsed.filter(|_| errors.is_empty())
    }
}

/// How many calendar days (Moscow's) after its payout a receipt may still
/// be registered by `fiscalization` (the docs: within 9 days).
pub const LATE_REGISTRATION_DAYS_MAX: i64 = 9;

/// The `fiscalization_details` of a request, required: every bad field named.
pub fn parse_details(body: &Map<String, Value>) -> Result<Fiscalization, Vec<FieldError>> {
    let mut errors = Vec::new();
    let parsed = match body.get("fiscalization_details") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new("fiscalization_details", "is required"));
            None
        }
        Some(v) => parse(&mut Fields { errors: &mut errors }, v, "fiscalization_details"),
    };
    match parsed {
        Some(f) if errors.is_empty() => Ok(f),
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

/// Parses `fiscalization_details` at `path`, every bad field named.
pub(crate) fn parse(f: &mut Fields<'_>, value: &Value, path: &str) -> Option<Fiscalization> {
    let Some(outer) = value.as_object() else {
        f.err(path, "must be an object");
        return None;
    };
    let key = "professional_income_taxpayer";
    f.only(outer, path, &[key], &[]);
    let p = join(path, key);
    let inner = f.object(outer, key, &p)?;
    f.only(inner, &p, &["services", "tax_reference", "payer_type", "payer_tax_number", "payer_name"], &[]);
    let tax_reference = f.string(inner, "tax_reference", &join(&p, "tax_reference")).and_then(|t| {
        match Inn::parse_individual(t.trim()) {
            Ok(inn) if inn.check_digits_ok() => Some(inn),
            Ok(_) => {
                f.err(&join(&p, "tax_reference"), "the INN's check digits do not match");
                None
            }
            Err(why) => {
                f.err(&join(&p, "tax_reference"), why);
                None
            }
        }
    });
    let payer_type = match f.optional_string(inner, "payer_type", &join(&p, "payer_type")) {
        None => Some(PayerType::Individual),
        Some(t) => {
            let found = PayerType::ALL.into_iter().find(|k| k.as_str() == t);
            if found.is_none() {
                f.err(&join(&p, "payer_type"), "must be legal, individual or foreign");
            }
            found
        }
    };
    let payer_tax_number = f.optional_string(inner, "payer_tax_number", &join(&p, "payer_tax_number"));
    let payer_tax_number = payer_type.and_then(|t| payer_number(f, t, payer_tax_number, &join(&p, "payer_tax_number")));
    let payer_name = f.optional_string(inner, "payer_name", &join(&p, "payer_name")).map(|n| n.trim().to_string());
    if payer_name.as_ref().is_some_and(|n| n.is_empty() || n.chars().count() > NAME_MAX_CHARS) {
        f.err(&join(&p, "payer_name"), format!("must be 1 to {NAME_MAX_CHARS} characters"));
    }
    let services = services(f, inner, &join(&p, "services"));
    Some(Fiscalization {
        tax_reference: tax_reference?,
        payer_type: payer_type?,
        payer_tax_number: payer_tax_number?.map(Personal::new),
        payer_name: payer_name.map(Personal::new),
        services: services?,
    })
}

/// The payer's tax number as its type wants it: `Some(None)` when absent and allowed.
fn payer_number(f: &mut Fields<'_>, t: PayerType, number: Option<String>, path: &str) -> Option<Option<String>> {
    let number = number.map(|n| n.trim().to_string());
    let ok = match (t, number.as_deref()) {
        (PayerType::Legal, None) => {
            f.err(path, "is required when payer_type is legal (the payer's 10-digit INN)");
            return None;
        }
        (PayerType::Legal, Some(n)) => Inn::parse_legal(n).is_ok_and(|i| i.check_digits_ok()),
        (PayerType::Individual, Some(n)) => Inn::parse_individual(n).is_ok_and(|i| i.check_digits_ok()),
        (PayerType::Foreign, Some(n)) => !n.is_empty() && n.chars().count() <= FOREIGN_TAX_NUMBER_MAX_CHARS,
        (_, None) => return Some(None),
    };
    if !ok {
        let why = match t {
            PayerType::Legal => "must be a legal entity's 10-digit INN whose check digit matches".to_string(),
            PayerType::Individual => "must be a person's 12-digit INN whose check digits match".to_string(),
            PayerType::Foreign => format!("must be 1 to {FOREIGN_TAX_NUMBER_MAX_CHARS} characters"),
        };
        f.err(path, why);
        return None;
    }
    Some(number)
}

fn services(f: &mut Fields<'_>, inner: &Map<String, Value>, path: &str) -> Option<Vec<Service>> {
    let list = match inner.get("services") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= SERVICES_MAX => list,
        None | Some(Value::Null) => {
            f.err(path, "is required: the services the payout pays for");
            return None;
        }
        Some(_) => {
            f.err(path, format!("must be a list of 1 to {SERVICES_MAX} services"));
            return None;
        }
    };
    let parsed: Vec<Option<Service>> =
        list.iter().enumerate().map(|(i, s)| service(f, s, &format!("{path}[{i}]"))).collect();
    parsed.into_iter().collect()
}

fn service(f: &mut Fields<'_>, value: &Value, path: &str) -> Option<Service> {
    let Some(s) = value.as_object() else {
        f.err(path, "must be an object");
        return None;
    };
    f.only(s, path, &["name", "amount_details", "quantity"], &[]);
    let name = f.string(s, "name", &join(path, "name")).map(|n| n.trim().to_string());
    let name = name.filter(|n| {
        let ok = !n.is_empty() && n.chars().count() <= NAME_MAX_CHARS;
        if !ok {
            f.err(&join(path, "name"), format!("must be 1 to {NAME_MAX_CHARS} characters"));
        }
        ok
    });
    let amount = f.object(s, "amount_details", &join(path, "amount_details")).and_then(|a| {
        let before = f.errors.len();
        let money = crate::payout::parse_amount(f, a);
        // The shared reader names the payout's own fields: rename to this service's.
        for e in f.errors.iter_mut().skip(before) {
            e.field = e.field.replacen("amount_details", &join(path, "amount_details"), 1);
        }
        money
    });
    let amount = amount.and_then(|m: Money| {
        let ok = m.currency() == "rub" && m.amount() > 0;
        if !ok {
            f.err(&join(path, "amount_details"), "must be a positive amount in roubles (rub)");
        }
        ok.then(|| m.amount())
    });
    let quantity = match s.get("quantity") {
        None | Some(Value::Null) => Some(1),
        Some(Value::Number(n)) if n.as_i64().is_some_and(|q| (1..=QUANTITY_MAX).contains(&q)) => n.as_i64(),
        Some(_) => {
            f.err(&join(path, "quantity"), format!("must be a whole number from 1 to {QUANTITY_MAX}"));
            None
        }
    };
    Some(Service { name: name?, amount: amount?, quantity: quantity? })
}

/// The services must add up to the payout, in roubles: what is wrong, if anything.
pub fn check_against(fiscal: &Fiscalization, payout: &Money) -> Option<FieldError> {
    let path = "fiscalization_details.professional_income_taxpayer.services";
    if payout.currency() != "rub" {
        return Some(FieldError::new("amount_details.currency", "a payout with fiscalization is in roubles (rub)"));
    }
    (fiscal.total() != payout.amount())
        .then(|| FieldError::new(path, format!("add up to {}, not the payout's {}", fiscal.total(), payout.amount())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: Value) -> Result<Fiscalization, Vec<String>> {
        let mut errors = Vec::new();
        let parsed = parse(&mut Fields { errors: &mut errors }, &v, "fiscalization_details");
        match parsed {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(errors.into_iter().map(|e| e.field).collect()),
        }
    }

    #[test]
    fn the_docs_example_reads_and_echoes_with_quantities() {
        let docs = json!({"professional_income_taxpayer": {"tax_reference": "500100732259", "payer_type": "legal",
            "payer_tax_number": "7707083893", "payer_name": "OOO Vector",
            "services": [{"name": "Goods delivery", "amount_details": {"amount": 5000, "currency": "rub"}}]}});
        let f = read(docs).unwrap();
        assert_eq!((f.total(), f.payer_type, f.services[0].quantity), (5000, PayerType::Legal, 1));
        let echo = f.wire(Some(json!({"id": "r1", "link": "https://x/r1"})));
        assert_eq!(echo["professional_income_taxpayer"]["services"][0]["quantity"], 1);
        assert_eq!(echo["professional_income_taxpayer"]["receipt"]["id"], "r1");
        assert_eq!(Fiscalization::parse_stored(&f.wire(None).to_string()), Some(f.clone()));
        assert!(check_against(&f, &Money::new(5000, "rub").unwrap()).is_none());
        assert!(check_against(&f, &Money::new(4000, "rub").unwrap()).is_some());
    }

    #[test]
    fn every_bad_field_is_named() {
        let p = "fiscalization_details.professional_income_taxpayer";
        let bad = json!({"professional_income_taxpayer": {"tax_reference": "500100732258", "payer_type": "legal",
            "services": [{"name": "", "amount_details": {"amount": 1, "currency": "usd"}, "quantity": 0, "x": 1}],
            "colour": "red"}});
        let mut fields = read(bad).unwrap_err();
        fields.sort();
        assert_eq!(
            fields,
            [
                format!("{p}.colour"),
                format!("{p}.payer_tax_number"),
                format!("{p}.services[0].amount_details"),
                format!("{p}.services[0].name"),
                format!("{p}.services[0].quantity"),
                format!("{p}.services[0].x"),
                format!("{p}.tax_reference"),
            ]
        );
        assert_eq!(
            read(json!({"professional_income_taxpayer": {"tax_reference": "500100732259"}})).unwrap_err(),
            [format!("{p}.services")]
        );
    }
}
