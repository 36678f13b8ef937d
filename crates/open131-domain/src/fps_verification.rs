//! FPS recipient verification (`fps/customer_verification`): before paying a
//! phone number, the partner asks whether the person at the phone's bank has
//! the name it holds. The bank answers with a session whose one payout item
//! (`faster_payment_system_verification`) succeeds when the name matches and
//! fails otherwise; no money moves.
//!
//! The sandbox's table (README): phone `79261234567` (the docs' and SDK's
//! example) belongs to Ivanov Ivan Ivanovich; a phone ending in `00` has no
//! client at that bank; a phone ending in `99` belongs to someone else; any
//! other phone matches whatever name is sent.

use serde_json::{json, Map, Value};

use crate::fields::{join, present, Fields};
use crate::ident::RuPhone;
use crate::payout::{strip_nulls, strip_nulls_map, SandboxPlan};
use crate::payout_flow::FailureCode;
use crate::FieldError;

/// The documented phone whose client has a fixed name: (phone digits, last, first, middle).
pub const KNOWN_CLIENT: (&str, &str, &str, &str) = ("79261234567", "Ivanov", "Ivan", "Ivanovich");

/// A parsed verification request.
#[derive(Debug, Clone)]
pub struct VerificationRequest {
    pub phone: RuPhone,
    pub bank_id: String,
    pub first_name: String,
    pub last_name: String,
    pub middle_name: Option<String>,
    /// `participant_details` as sent (nulls removed), echoed back.
    pub participant_details: Value,
    pub customer: Option<Value>,
    pub metadata: Option<Value>,
}

impl VerificationRequest {
    /// The method as shown back (the phone masked as everywhere).
    pub fn masked_method(&self) -> Value {
        json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system_verification",
            "faster_payment_system_verification": {"phone": self.phone.masked(), "bank_id": self.bank_id}}})
    }

    /// What the phone's bank answers, by the sandbox table.
    pub fn plan(&self) -> SandboxPlan {
        let digits = self.phone.expose().trim_start_matches('+');
        if digits.ends_with("00") {
            return SandboxPlan::Fail(FailureCode::RecipientNotFound);
        }
        let (known, last, first, middle) = KNOWN_CLIENT;
        let same = |a: &str, b: &str| a.trim().to_lowercase() == b.to_lowercase();
        let mismatch = if digits == known {
            !(same(&self.last_name, last)
                && same(&self.first_name, first)
                && self.middle_name.as_deref().is_none_or(|m| same(m, middle)))
        } else {
            digits.ends_with("99")
        };
        if mismatch {
            SandboxPlan::Fail(FailureCode::RecipientNameMismatch)
        } else {
            SandboxPlan::Succeed
        }
    }
}

/// Parses `fps/customer_verification` (`session_id` is allowed: the SDK's
/// newer request carries the session it verifies in).
pub fn parse_verification(body: &Map<String, Value>) -> Result<VerificationRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut f = Fields { errors: &mut errors };
    let allowed = ["payout_details", "payment_method", "participant_details", "customer", "metadata", "session_id"];
    f.only(body, "", &allowed, &[]);
    let present = |k: &str| present(body, k);
    let key = crate::payout::method_key_once(&mut f, body);
    let method = f.object(body, key, key).and_then(|m| parse_method(&mut f, m, key));
    let names = f.object(body, "participant_details", "participant_details").and_then(|p| {
        f.only(p, "participant_details", &["recipient"], &[]);
        let path = "participant_details.recipient";
        let r = f.object(p, "recipient", path)?;
        f.only(r, path, &["first_name", "last_name", "middle_name"], &[]);
        let first = f.string(r, "first_name", &join(path, "first_name"));
        let last = f.string(r, "last_name", &join(path, "last_name"));
        let middle = f.optional_string(r, "middle_name", &join(path, "middle_name"));
        Some((first?, last?, middle, Value::Object(strip_nulls_map(p))))
    });
    let customer = match present("customer") {
        true => f.object(body, "customer", "customer").and_then(|c| crate::payout::parse_customer(&mut f, c)),
        false => None,
    };
    let metadata = body.get("metadata").and_then(strip_nulls);
    match (method, names) {
        (Some((phone, bank_id)), Some((first_name, last_name, middle_name, participant_details)))
            if errors.is_empty() =>
        {
            Ok(VerificationRequest {
                phone,
                bank_id,
                first_name,
                last_name,
                middle_name,
                participant_details,
                customer,
                metadata,
            })
        }
        _ => {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

fn parse_method(f: &mut Fields<'_>, m: &Map<String, Value>, key: &str) -> Option<(RuPhone, String)> {
    f.only(m, key, &["type", "bank_account"], &[]);
    if f.string(m, "type", &join(key, "type")).is_some_and(|t| t != "bank_account") {
        f.err(&join(key, "type"), "must be bank_account");
        return None;
    }
    let p = join(key, "bank_account");
    let ba = f.object(m, "bank_account", &p)?;
    const SYSTEM: &str = "faster_payment_system_verification";
    f.only(ba, &p, &["system_type", SYSTEM], &[]);
    if f.string(ba, "system_type", &join(&p, "system_type")).is_some_and(|t| t != SYSTEM) {
        f.err(&join(&p, "system_type"), format!("must be {SYSTEM}"));
        return None;
    }
    let p = join(&p, SYSTEM);
    let v = f.object(ba, SYSTEM, &p)?;
    f.only(v, &p, &["phone", "bank_id"], &[]);
    let phone = f.string(v, "phone", &join(&p, "phone"));
    let phone = f.check(&join(&p, "phone"), phone, RuPhone::parse);
    let bank_id = crate::fps::read_bank_id(f, v, &p);
    Some((phone?, bank_id?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        phone: &str,
        first: &str,
        last: &str,
        middle: Option<&str>,
    ) -> Result<VerificationRequest, Vec<FieldError>> {
        let mut recipient = json!({"first_name": first, "last_name": last});
        if let Some(m) = middle {
            recipient["middle_name"] = json!(m);
        }
        let body = json!({"payout_details": {"type": "bank_account", "bank_account": {
            "system_type": "faster_payment_system_verification",
            "faster_payment_system_verification": {"phone": phone, "bank_id": "100000000069"}}},
            "participant_details": {"recipient": recipient}});
        parse_verification(body.as_object().unwrap())
    }

    #[test]
    fn the_sandbox_table() {
        let plan = |phone: &str, first: &str, last: &str, middle: Option<&str>| {
            request(phone, first, last, middle).unwrap().plan()
        };
        assert_eq!(plan("79261234567", "Ivan", "Ivanov", Some("Ivanovich")), SandboxPlan::Succeed);
        assert_eq!(plan("+79261234567", "ivan", "IVANOV", None), SandboxPlan::Succeed);
        assert_eq!(plan("79261234567", "Petr", "Ivanov", None), SandboxPlan::Fail(FailureCode::RecipientNameMismatch));
        assert_eq!(plan("79001234500", "A", "B", None), SandboxPlan::Fail(FailureCode::RecipientNotFound));
        assert_eq!(plan("79001234599", "A", "B", None), SandboxPlan::Fail(FailureCode::RecipientNameMismatch));
        assert_eq!(plan("79001234512", "A", "B", None), SandboxPlan::Succeed);
    }

    #[test]
    fn bad_requests_name_every_field() {
        let fields: Vec<String> = request("123", "", "B", None).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "participant_details.recipient.first_name",
                "payout_details.bank_account.faster_payment_system_verification.phone",
            ]
        );
        let mut both = json!({"payout_details": {}, "payment_method": {}, "customer": {"fax": "1"}});
        both["participant_details"] = json!({"recipient": {"first_name": "A", "last_name": "B"}});
        let fields: Vec<String> =
            parse_verification(both.as_object().unwrap()).unwrap_err().into_iter().map(|e| e.field).collect();
        assert!(fields.contains(&"payout_details".to_string()), "{fields:?}");
        assert!(fields.contains(&"customer.fax".to_string()), "{fields:?}");
        let shown = request("79261234567", "Ivan", "Ivanov", None).unwrap().masked_method();
        assert_eq!(shown["bank_account"]["faster_payment_system_verification"]["phone"], "7926***4567");
    }
}
