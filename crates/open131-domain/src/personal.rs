//! A wrapper for personal data and secrets: `Debug` and `Display` print `***`,
//! so a passport number or a name can never reach a log by accident.

/// Personal data (passport numbers, INNs, names). Read it with [`Personal::expose`],
/// which makes every clear-text use greppable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<T> std::fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Keys whose values name no person: ids, statuses, amounts, currencies,
/// times, the kinds of things. Everything else a body holds is masked by
/// [`masked_json`], so a field the list forgets is hidden, never shown.
/// (No free text is here: a payout's `description` may name its recipient.)
const SHOWN_KEYS: &[&str] = &[
    "id",
    "session_id",
    "payout_id",
    "payment_id",
    "refund_id",
    "request_id",
    "subscription_id",
    "token_id",
    "status",
    "type",
    "system_type",
    "amount",
    "currency",
    "created_at",
    "updated_at",
    "finished_at",
    "expired_at",
    "next_action",
    "brand",
    "last4",
    "bin",
    "bank_id",
    "is_fast",
    "recurrent",
    "is_chargeback",
    "is_active",
    "webhook_type",
    "version",
    "project",
];

/// Keys shown inside the API's own `error` object (and its `details`) and
/// the KYC API's `data`: codes, messages and field names are the server's words.
const ERROR_KEYS: &[&str] = &["code", "description", "field", "message"];

/// Numbers this long (or longer: digits, spaces, `+`, `-`, `*`) keep their
/// last four characters when masked, as card and account numbers are shown
/// on a receipt; any other text is masked whole.
const TAIL_SHOWN_MIN_CHARS: usize = 12;

/// A JSON body with everything that may name a person masked: objects and
/// arrays keep their shape (keys are the API's field names); a value is
/// shown only under a key of [`SHOWN_KEYS`] (or of [`ERROR_KEYS`] inside
/// `error`), otherwise it becomes `***` (with its last four characters when
/// it is a number long enough to be a card or account). Booleans and
/// `null` say nothing of a person and stay.
pub fn masked_json(value: &serde_json::Value) -> serde_json::Value {
    masked_under(None, false, value)
}

fn masked_under(key: Option<&str>, in_error: bool, value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let shown = key.is_some_and(|k| SHOWN_KEYS.contains(&k) || (in_error && ERROR_KEYS.contains(&k)));
    match value {
        Value::Object(map) => {
            // The KYC API's verdict comes as `data.description`: the server's words too.
            let inside = in_error || matches!(key, Some("error" | "data"));
            Value::Object(map.iter().map(|(k, v)| (k.clone(), masked_under(Some(k), inside, v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| masked_under(key, in_error, v)).collect()),
        Value::String(s) if !shown => Value::String(masked_text(s)),
        Value::Number(n) if !shown => Value::String(masked_text(&n.to_string())),
        other => other.clone(),
    }
}

fn masked_text(s: &str) -> String {
    let n = s.chars().count();
    let number_like = s.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '*'));
    if n >= TAIL_SHOWN_MIN_CHARS && number_like {
        let tail: String = s.chars().skip(n - 4).collect();
        format!("***{tail}")
    } else {
        "***".to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_every_value_but_the_shown_keys() {
        let body = serde_json::json!({
            "session_id": "ps_1", "amount_details": {"amount": 10000, "currency": "rub"},
            "payment_method": {"type": "card", "card": {"bank_card": {"number": "4242424242424242"}}},
            "participant_details": {"recipient": {"full_name": "Петров Иван", "phones": ["+79001234567"]}},
            "passport": 4510123456u64, "metadata": {"order": "a"}, "count": 7,
            "address": "г. Москва, ул. Льва Толстого, 16", "security_code": 123,
            "description": "Оплата Петрову", "error": {"code": "invalid_request", "description": "Invalid request",
                "details": [{"field": "amount", "message": "is required"}]},
        });
        let masked = super::masked_json(&body);
        assert_eq!(
            masked,
            serde_json::json!({
                "session_id": "ps_1", "amount_details": {"amount": 10000, "currency": "rub"},
                "payment_method": {"type": "card", "card": {"bank_card": {"number": "***4242"}}},
                "participant_details": {"recipient": {"full_name": "***", "phones": ["***4567"]}},
                "passport": "***", "metadata": {"order": "***"}, "count": "***", "address": "***",
                "security_code": "***", "description": "***", "error": {"code": "invalid_request",
                    "description": "Invalid request", "details": [{"field": "amount", "message": "is required"}]},
            })
        );
    }

    #[test]
    fn never_prints_its_content() {
        let p = super::Personal::new("4510123456".to_string());
        assert_eq!(format!("{p:?} {p}"), "*** ***");
        assert_eq!(p.expose(), "4510123456");
    }
}
