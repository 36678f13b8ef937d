//! Public tokens (`token`): what a partner's server asks for so that a
//! customer's browser may open one of the bank's widgets, parsed once at the
//! edge. A token is single-use and lasts [`PUBLIC_TOKEN_TTL_S`] (the docs:
//! "can only be used once"; 24 h as the bank's sister platform documents
//! `[INF]`). It is bound to its project and to the widgets it was issued for.
//!
//! Served here: issuing and `token/info`. The widgets' pages, the card vault
//! behind the tokenization widget and the linking flow come with the rest of
//! the widgets issue.

use serde_json::{json, Map, Value};

use crate::fields::{join, present, Fields};
use crate::ident::Inn;
use crate::payment::optional_url;
use crate::FieldError;

/// How long a public token may be used after it is issued, in seconds.
pub const PUBLIC_TOKEN_TTL_S: i64 = 86_400;
/// Longest `acquiring_widget.session_id` read, in bytes.
pub const WIDGET_SESSION_ID_MAX_BYTES: usize = 64;

/// The language a widget speaks (`locale`, the bank's sister platform's option `[INF]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    Ru,
    En,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ru => "ru",
            Self::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ru, Self::En].into_iter().find(|l| l.as_str() == s)
    }
}

/// The payment form for an existing session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquiringWidget {
    pub session_id: String,
    pub success_return_url: Option<String>,
    pub failure_return_url: Option<String>,
    pub show_recurrent_checkbox: bool,
}

/// What one public token opens: at least one widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetGrant {
    /// The card (or bank account) tokenization widget, in its language.
    pub tokenize: Option<Option<Locale>>,
    pub acquiring: Option<AcquiringWidget>,
    /// The self-employed linking widget for this taxpayer (12-digit INN): personal data.
    pub self_employed: Option<Inn>,
}

const KINDS: [&str; 3] = ["tokenize_widget", "acquiring_widget", "self_employed_widget"];

/// Parses a `token` request, every bad field named at once. The caller
/// checks that `acquiring_widget.session_id` is a session of the project
/// waiting for its payment.
pub fn parse_token_request(body: &Map<String, Value>) -> Result<WidgetGrant, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = &mut Fields { errors: &mut errors };
    f.only(body, "", &KINDS, &[]);
    if !KINDS.iter().any(|k| present(body, k)) {
        f.err("tokenize_widget", "one of tokenize_widget, acquiring_widget or self_employed_widget is required");
    }
    let tokenize = match f.optional_object(body, "tokenize_widget", "tokenize_widget") {
        Some(Some(t)) => Some(tokenize(f, t)),
        _ => None,
    };
    let acquiring = match f.optional_object(body, "acquiring_widget", "acquiring_widget") {
        Some(Some(a)) => acquiring(f, a),
        _ => None,
    };
    let self_employed = match f.optional_object(body, "self_employed_widget", "self_employed_widget") {
        Some(Some(s)) => self_employed(f, s),
        _ => None,
    };
    let grant = WidgetGrant { tokenize: tokenize.flatten(), acquiring, self_employed };
    if errors.is_empty() {
        Ok(grant)
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(errors)
    }
}

fn tokenize(f: &mut Fields<'_>, t: &Map<String, Value>) -> Option<Option<Locale>> {
    let p = "tokenize_widget";
    f.only(t, p, &["access", "locale"], &[]);
    match t.get("access") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            f.err(&join(p, "access"), "false asks for no widget: leave tokenize_widget out instead");
            return None;
        }
        Some(_) => {
            f.err(&join(p, "access"), "must be true");
            return None;
        }
    }
    match f.optional_string(t, "locale", &join(p, "locale")) {
        None => Some(None),
        Some(l) => match Locale::parse(&l) {
            Some(locale) => Some(Some(locale)),
            None => {
                f.err(&join(p, "locale"), "must be ru or en");
                None
            }
        },
    }
}

fn acquiring(f: &mut Fields<'_>, a: &Map<String, Value>) -> Option<AcquiringWidget> {
    let p = "acquiring_widget";
    let known = ["session_id", "success_return_url", "failure_return_url", "show_recurrent_checkbox"];
    f.only(a, p, &known, &[]);
    let session_id = f.string(a, "session_id", &join(p, "session_id"));
    if session_id.as_ref().is_some_and(|s| s.is_empty() || s.len() > WIDGET_SESSION_ID_MAX_BYTES) {
        f.err(&join(p, "session_id"), format!("must be 1 to {WIDGET_SESSION_ID_MAX_BYTES} bytes"));
    }
    let success_return_url = optional_url(f, a, "success_return_url", &join(p, "success_return_url"));
    let failure_return_url = optional_url(f, a, "failure_return_url", &join(p, "failure_return_url"));
    let show_recurrent_checkbox = match a.get("show_recurrent_checkbox") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            f.err(&join(p, "show_recurrent_checkbox"), "must be true or false");
            false
        }
    };
    Some(AcquiringWidget { session_id: session_id?, success_return_url, failure_return_url, show_recurrent_checkbox })
}

fn self_employed(f: &mut Fields<'_>, s: &Map<String, Value>) -> Option<Inn> {
    let p = "self_employed_widget";
    f.only(s, p, &["tax_reference"], &[]);
    let path = join(p, "tax_reference");
    let inn = f.string(s, "tax_reference", &path)?;
    match Inn::parse_individual(&inn) {
        Ok(inn) if inn.check_digits_ok() => Some(inn),
        Ok(_) => {
            f.err(&path, "is not a valid INN (its check digits do not match)");
            None
        }
        Err(why) => {
            f.err(&path, format!("{why}: a self-employed person's INN"));
            None
        }
    }
}

impl WidgetGrant {
    /// The widgets it opens, as `token/info` shows them (the INN masked).
    pub fn wire(&self) -> Value {
        let mut widgets = Map::new();
        if let Some(locale) = self.tokenize {
            let mut t = json!({"access": true});
            if let Some(l) = locale {
                t["locale"] = json!(l.as_str());
            }
            widgets.insert("tokenize_widget".into(), t);
        }
        if let Some(a) = &self.acquiring {
            let mut w = json!({"session_id": a.session_id, "show_recurrent_checkbox": a.show_recurrent_checkbox});
            for (key, url) in
                [("success_return_url", &a.success_return_url), ("failure_return_url", &a.failure_return_url)]
            {
                if let Some(url) = url {
                    w[key] = json!(url);
                }
            }
            widgets.insert("acquiring_widget".into(), w);
        }
        if let Some(inn) = &self.self_employed {
            widgets.insert("self_employed_widget".into(), json!({"tax_reference": inn.masked()}));
        }
        Value::Object(widgets)
    }

    /// As stored (JSON, the INN in clear: the store keeps personal data).
    pub fn stored(&self) -> String {
        let mut v = self.wire();
        if let Some(inn) = &self.self_employed {
            v["self_employed_widget"]["tax_reference"] = json!(inn.expose());
        }
        v.to_string()
    }

    pub fn parse_stored(text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        let body = v.as_object()?;
        parse_token_request(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: Value) -> Vec<String> {
        match parse_token_request(body.as_object().unwrap()) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn every_widget_parses_and_round_trips() {
        let body = json!({"tokenize_widget": {"access": true, "locale": "en"},
            "acquiring_widget": {"session_id": "ps_1", "success_return_url": "https://shop.example/ok",
                "failure_return_url": null, "show_recurrent_checkbox": true},
            "self_employed_widget": {"tax_reference": "500100732259"}});
        let grant = parse_token_request(body.as_object().unwrap()).unwrap();
        assert_eq!(grant.tokenize, Some(Some(Locale::En)));
        assert_eq!(grant.acquiring.as_ref().unwrap().session_id, "ps_1");
        assert_eq!(WidgetGrant::parse_stored(&grant.stored()), Some(grant.clone()));
        let wire = grant.wire();
        assert_eq!(wire["self_employed_widget"]["tax_reference"], "********2259");
        assert!(!wire.to_string().contains("500100732259"));
        assert!(!format!("{grant:?}").contains("500100732259"), "the INN is personal data");
        // The SDK's own: `{access: true}` alone.
        assert!(parse_token_request(json!({"tokenize_widget": {"access": true}}).as_object().unwrap()).is_ok());
    }

    #[test]
    fn bad_requests_are_named() {
        assert_eq!(fields(json!({})), ["tokenize_widget"]);
        assert_eq!(fields(json!({"payout_widget": {}})), ["payout_widget", "tokenize_widget"]);
        assert_eq!(fields(json!({"tokenize_widget": {"access": false}})), ["tokenize_widget.access"]);
        assert_eq!(fields(json!({"tokenize_widget": {"locale": "de"}})), ["tokenize_widget.locale"]);
        assert_eq!(
            fields(json!({"acquiring_widget": {"success_return_url": "ftp://x", "show_recurrent_checkbox": "yes"}})),
            [
                "acquiring_widget.session_id",
                "acquiring_widget.show_recurrent_checkbox",
                "acquiring_widget.success_return_url"
            ]
        );
        assert_eq!(
            fields(json!({"self_employed_widget": {"tax_reference": "500100732250"}})),
            ["self_employed_widget.tax_reference"]
        );
        assert_eq!(
            fields(json!({"self_employed_widget": {"tax_reference": "7707083893"}})),
            ["self_employed_widget.tax_reference"]
        );
    }
}
