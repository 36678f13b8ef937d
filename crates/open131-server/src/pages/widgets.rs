//! The tokenization widget (`GET|POST /widget/tokenize/{public_token}`: a
//! card, or with `method=bank_account` a Russian bank account)
//! and the JavaScript library a partner's page includes to show it
//! (`GET /widget/open131.js`). The library puts the page in an iframe of the
//! partner's page; the customer types the card there (the partner's page
//! never sees the number); the server puts it in the project's vault, uses
//! the public token up, and the page tells the library `number_hash`, brand
//! and last four digits (a `postMessage` to the partner's origin), which
//! calls the partner's `onSuccess`. Without JavaScript the page is a plain
//! form and shows the saved card.
//!
//! A public token serves once ([`open131_store::WidgetStore::use_public_token`]):
//! a used, expired or unknown one shows a clear page.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use open131_domain::dates::moscow_today;
use open131_domain::ident::{
    account_matches_bik, is_documented_test_account, AccountNumber, Bik, CardExpiry, CardNumber,
};
use open131_domain::settings::NameSet;
use open131_domain::widget::{Locale, WidgetGrant};
use serde::Deserialize;

use open131_store::PublicTokenRecord;

use super::escape;
use crate::app::App;

/// What the widget's pages may load: their own style inline, their own
/// scripts from this server, forms posted here; any partner's page may frame them.
const WIDGET_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'self'; \
                          form-action 'self'; base-uri 'none'; frame-ancestors *";

/// Longest partner origin read, in bytes.
pub const ORIGIN_MAX_BYTES: usize = 256;

/// The library (served as is; it has no build step).
const LIBRARY: &str = include_str!("widget/open131.js");
/// The page's own script: formats the number as typed, and hands the saved card to the library.
const PAGE_SCRIPT: &str = include_str!("widget/page.js");

/// A widget page's query, as the library builds it (a browser's: other
/// parameters are ignored): the partner's origin and the language.
#[derive(Debug, Default, Deserialize)]
pub struct Shown {
    pub(super) origin: Option<String>,
    pub(super) locale: Option<String>,
    /// The tokenization widget's `bank_account` variant; a card otherwise.
    method: Option<String>,
}

/// The query that keeps a widget page's language and partner origin across
/// its own redirects.
pub(super) fn page_query(locale: Locale, origin: Option<&str>) -> String {
    let mut pairs = vec![("locale", locale.as_str())];
    pairs.extend(origin.map(|o| ("origin", o)));
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// `page`, asking the browser to load it again after `seconds` (no script
/// needed): a page that waits for something to happen elsewhere.
pub(super) fn refreshing(mut page: Response, seconds: u32) -> Response {
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        page.headers_mut().insert(header::REFRESH, value);
    }
    page
}

/// A 303 to `to` (after a form's POST, or to where a flow stands).
pub(super) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// What the form sends: a card's fields, or (the account variant) a BIK and
/// an account number. `Debug` shows neither number.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entered {
    #[serde(default)]
    number: String,
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    bik: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    locale: String,
}

impl std::fmt::Debug for Entered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entered")
            .field("number", &"***")
            .field("account", &"***")
            .field("method", &self.method)
            .field("origin", &self.origin)
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

/// What the widget saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Card,
    BankAccount,
}

impl Kind {
    fn parse(method: Option<&str>) -> Self {
        if method == Some("bank_account") {
            Self::BankAccount
        } else {
            Self::Card
        }
    }
}

/// The texts of the page, per language.
pub(super) struct Texts {
    pub(super) title: &'static str,
    account_title: &'static str,
    bik: &'static str,
    account: &'static str,
    account_saved: &'static str,
    bad_bik: &'static str,
    bad_account: &'static str,
    pub(super) number: &'static str,
    pub(super) expiry: &'static str,
    save: &'static str,
    saved: &'static str,
    pub(super) gone: &'static str,
    pub(super) bad_number: &'static str,
    pub(super) bad_expiry: &'static str,
}

pub(super) fn texts(locale: Locale) -> Texts {
    match locale {
        Locale::En => Texts {
            title: "Your card",
            account_title: "Your bank account",
            bik: "Bank's BIK",
            account: "Account number",
            account_saved: "Account saved",
            bad_bik: "Check the BIK: 9 digits.",
            bad_account: "Check the account: 20 digits that match the bank's BIK.",
            number: "Card number",
            expiry: "Valid thru (MM/YY)",
            save: "Save card",
            saved: "Card saved",
            gone: "This form has been used or has expired. Ask the shop for a new one.",
            bad_number: "Check the card number: it is not a valid card number.",
            bad_expiry: "Check the date: MM/YY, not in the past.",
        },
        Locale::Ru => Texts {
            title: "Ваша карта",
            account_title: "Ваш банковский счёт",
            bik: "БИК банка",
            account: "Номер счёта",
            account_saved: "Счёт сохранён",
            bad_bik: "Проверьте БИК: 9 цифр.",
            bad_account: "Проверьте счёт: 20 цифр, согласованных с БИК банка.",
            number: "Номер карты",
            expiry: "Срок действия (ММ/ГГ)",
            save: "Сохранить карту",
            saved: "Карта сохранена",
            gone: "Эта форма уже использована или устарела. Попросите магазин открыть новую.",
            bad_number: "Проверьте номер карты: такого номера карты не бывает.",
            bad_expiry: "Проверьте срок: ММ/ГГ, не в прошлом.",
        },
    }
}

/// A partner origin the page may tell (`http(s)://host[:port]`), else none.
pub(super) fn origin(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    let ok = (raw.starts_with("https://") || raw.starts_with("http://"))
        && raw.len() <= ORIGIN_MAX_BYTES
        && raw
            .split("://")
            .nth(1)
            .is_some_and(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ', '"', '<', ';', ',', '\'']));
    ok.then(|| raw.to_string())
}

pub(super) fn widget_page(status: StatusCode, locale: Locale, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{style}</style></head><body><main>{body}</main>\
         <script src=\"/widget/page.js\"></script></body></html>\n",
        lang = locale.as_str(),
        title = escape(title),
        style = super::STYLE,
    );
    super::html_response(status, html, HeaderValue::from_static(WIDGET_CSP))
}

/// The form, with a message beside each field that was wrong.
fn form(token: &str, locale: Locale, origin: Option<&str>, errors: (Option<&str>, Option<&str>)) -> Response {
    let t = texts(locale);
    let hint = |id: &str, message: Option<&str>| {
        message
            .map_or(String::new(), |m| format!("<p class=\"error\" id=\"{id}-error\" role=\"alert\">{}</p>", escape(m)))
    };
    let described = |id: &str, message: Option<&str>| {
        message.map_or(String::new(), |_| format!(" aria-invalid=\"true\" aria-describedby=\"{id}-error\""))
    };
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{title}</h1>\
         <form method=\"post\" action=\"/widget/tokenize/{token}\" novalidate>\
         <label for=\"number\">{number}</label>\
         <input id=\"number\" name=\"number\" inputmode=\"numeric\" autocomplete=\"cc-number\" required \
         data-invalid=\"{bad}\"{dn}>{en}\
         <label for=\"expiry\" style=\"margin-top:1rem\">{expiry}</label>\
         <input id=\"expiry\" name=\"expiry\" inputmode=\"numeric\" autocomplete=\"cc-exp\" placeholder=\"MM/YY\" required{de}>{ee}\
         <input type=\"hidden\" name=\"origin\" value=\"{origin}\"><input type=\"hidden\" name=\"locale\" value=\"{lang}\">\
         <div class=\"buttons\"><button class=\"confirm\" type=\"submit\" value=\"save\">{save}</button></div></form>",
        title = escape(t.title),
        token = escape(token),
        number = escape(t.number),
        expiry = escape(t.expiry),
        save = escape(t.save),
        bad = escape(t.bad_number),
        dn = described("number", errors.0),
        en = hint("number", errors.0),
        de = described("expiry", errors.1),
        ee = hint("expiry", errors.1),
        origin = escape(origin.unwrap_or_default()),
        lang = locale.as_str(),
    );
    let status = if errors.0.is_some() || errors.1.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    widget_page(status, locale, t.title, &body)
}

/// One labelled input named `id` (its `attributes` as given), with its
/// message beside it when it was wrong.
pub(super) fn field(id: &str, label: &str, attributes: &str, mistake: Option<&str>) -> String {
    let (described, hint) = match mistake {
        Some(m) => (
            format!(" aria-invalid=\"true\" aria-describedby=\"{id}-error\""),
            format!("<p class=\"error\" id=\"{id}-error\" role=\"alert\">{}</p>", escape(m)),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "<label for=\"{id}\" style=\"margin-top:1rem\">{label}</label>\
         <input id=\"{id}\" name=\"{id}\" {attributes}{described}>{hint}",
        label = escape(label),
    )
}

/// A found token's page language and its project's sites, or the page
/// refusing an origin the project did not list.
pub(super) async fn admitted(
    app: &App,
    found: &PublicTokenRecord,
    asked: Option<&str>,
    origin: Option<&String>,
) -> Result<(Locale, Option<Vec<String>>), Response> {
    let locale = language(asked, Some(found));
    let allowed = allowed_origins(app, &found.project_id).await;
    if !shown_here(allowed.as_deref(), origin) {
        return Err(framed_by(not_here(locale), allowed.as_deref()));
    }
    Ok((locale, allowed))
}

/// The account variant's form: the BIK and the account number.
fn account_form(token: &str, locale: Locale, origin: Option<&str>, errors: (Option<&str>, Option<&str>)) -> Response {
    let t = texts(locale);
    let numeric = "inputmode=\"numeric\" autocomplete=\"off\" required";
    let field = |id: &str, label: &str, message: Option<&str>| field(id, label, numeric, message);
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{title}</h1>\
         <form method=\"post\" action=\"/widget/tokenize/{token}\" novalidate>{bik}{account}\
         <input type=\"hidden\" name=\"method\" value=\"bank_account\">\
         <input type=\"hidden\" name=\"origin\" value=\"{origin}\"><input type=\"hidden\" name=\"locale\" value=\"{lang}\">\
         <div class=\"buttons\"><button class=\"confirm\" type=\"submit\" value=\"save\">{save}</button></div></form>",
        title = escape(t.account_title),
        token = escape(token),
        bik = field("bik", t.bik, errors.0),
        account = field("account", t.account, errors.1),
        origin = escape(origin.unwrap_or_default()),
        lang = locale.as_str(),
        save = escape(t.save),
    );
    let status = if errors.0.is_some() || errors.1.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    widget_page(status, locale, t.account_title, &body)
}

/// Uses the token up once what it opened is saved (the write that marks it
/// used decides the race); the page to answer instead when it was not.
pub(super) async fn use_token(app: &App, token: &str, locale: Locale, origin: Option<&str>) -> Option<Response> {
    let found = app.store.public_token_by_value(token).await.ok().flatten();
    let now = super::token_now(app, found.as_ref()).await;
    match app.store.use_public_token(token, now).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(gone(locale, origin)),
        Err(e) => {
            tracing::error!(error = %e, "a widget could not use its token");
            Some(broken(locale, origin))
        }
    }
}

/// The account variant's submission: the account into the vault, the token used.
async fn save_account(
    app: &App,
    token: &str,
    found: &PublicTokenRecord,
    entered: &Entered,
    locale: Locale,
) -> Response {
    let (t, origin) = (texts(locale), origin(Some(&entered.origin)));
    let bik = Bik::parse(entered.bik.trim()).ok();
    let account = AccountNumber::parse(entered.account.trim()).ok();
    let matches = match (&bik, &account) {
        (Some(b), Some(a)) => account_matches_bik(a, b) || is_documented_test_account(a, b),
        _ => false,
    };
    let (Some(bik), Some(account), true) = (bik.clone(), account, matches) else {
        let errors = (bik.is_none().then_some(t.bad_bik), (bik.is_some() && !matches).then_some(t.bad_account));
        return account_form(token, locale, origin.as_deref(), errors);
    };
    let saved = match app.put_account(&found.project_id, &bik, &account).await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!(error = %e, "a widget could not put its account in the vault");
            return broken(locale, origin.as_deref());
        }
    };
    if let Some(refused) = use_token(app, token, locale, origin.as_deref()).await {
        return refused;
    }
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{saved_text}</h1><dl><dt>{bik}</dt><dd>{masked}</dd></dl>\
         <div id=\"result\" hidden data-kind=\"bank_account\" data-token=\"{token}\" \
         data-masked-account=\"{masked}\" data-origin=\"{origin}\"></div>",
        saved_text = escape(t.account_saved),
        bik = escape(&saved.bik),
        masked = escape(&saved.masked_account),
        token = escape(&saved.token),
        origin = escape(origin.as_deref().unwrap_or_default()),
    );
    widget_page(StatusCode::OK, locale, t.account_saved, &body)
}

/// A page saying the widget cannot be used, which also tells the library
/// (`onError`) when it knows the partner's origin.
pub(super) fn failure(status: StatusCode, locale: Locale, origin: Option<&str>, text: &str) -> Response {
    let t = texts(locale);
    let body = format!(
        "<h1>{title}</h1><p>{text}</p><div id=\"failure\" hidden data-origin=\"{origin}\" data-message=\"{text}\"></div>",
        title = escape(t.title),
        text = escape(text),
        origin = escape(origin.unwrap_or_default()),
    );
    widget_page(status, locale, t.title, &body)
}

pub(super) fn gone(locale: Locale, origin: Option<&str>) -> Response {
    failure(StatusCode::GONE, locale, origin, texts(locale).gone)
}

pub(super) fn broken(locale: Locale, origin: Option<&str>) -> Response {
    let text = match locale {
        Locale::En => "Something went wrong on our side. Please try again in a moment.",
        Locale::Ru => "У нас что-то пошло не так. Попробуйте ещё раз чуть позже.",
    };
    failure(StatusCode::INTERNAL_SERVER_ERROR, locale, origin, text)
}

/// The token if it opens the widget `opens` says it grants, now (unused, unexpired).
pub(super) async fn usable(
    app: &App,
    token: &str,
    opens: fn(&WidgetGrant) -> bool,
) -> Result<Option<PublicTokenRecord>, String> {
    let found = app.store.public_token_by_value(token).await.map_err(|e| e.to_string())?;
    let now = super::token_now(app, found.as_ref()).await;
    Ok(found.filter(|t| opens(&t.grant) && t.used_at.is_none() && now < t.expires_at))
}

/// Whether a token opens the tokenization widget.
fn tokenizes(grant: &WidgetGrant) -> bool {
    grant.tokenize.is_some()
}

/// The page's language: the one asked for, else the token's, else Russian.
pub(super) fn language(asked: Option<&str>, token: Option<&PublicTokenRecord>) -> Locale {
    let issued = token.and_then(|t| t.grant.tokenize.flatten());
    asked.and_then(|l| Locale::parse(&l.to_ascii_lowercase())).or(issued).unwrap_or(Locale::Ru)
}

/// The origins a project lets show its widgets (`None`: any). A project
/// that cannot be read lets none.
async fn allowed_origins(app: &App, project_id: &str) -> Option<Vec<String>> {
    match app.projects.get(project_id).await {
        Ok(Some(project)) => match &project.settings.widget_origins {
            NameSet::Any => None,
            set => Some(set.listed().filter_map(|o| origin(Some(o))).collect()),
        },
        _ => Some(Vec::new()),
    }
}

/// `response` framed by `allowed` only (the policy's `frame-ancestors`).
pub(super) fn framed_by(mut response: Response, allowed: Option<&[String]>) -> Response {
    let Some(allowed) = allowed else { return response };
    let ancestors = if allowed.is_empty() { "'none'".to_string() } else { allowed.join(" ") };
    let policy = WIDGET_CSP.replace("frame-ancestors *", &format!("frame-ancestors {ancestors}"));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Whether `origin` may show the widget (any when the project lists none).
fn shown_here(allowed: Option<&[String]>, origin: Option<&String>) -> bool {
    allowed.is_none_or(|list| origin.is_some_and(|o| list.contains(o)))
}

/// The page refusing a site the project did not list.
fn not_here(locale: Locale) -> Response {
    let text = match locale {
        Locale::En => "This form cannot be shown on this site.",
        Locale::Ru => "Эту форму нельзя показать на этом сайте.",
    };
    failure(StatusCode::FORBIDDEN, locale, None, text)
}

pub async fn show(State(app): State<App>, Path(token): Path<String>, Query(shown): Query<Shown>) -> Response {
    let origin = origin(shown.origin.as_deref());
    match usable(&app, &token, tokenizes).await {
        Ok(Some(found)) => {
            let (locale, allowed) = match admitted(&app, &found, shown.locale.as_deref(), origin.as_ref()).await {
                Ok(admitted) => admitted,
                Err(page) => return page,
            };
            let page = match Kind::parse(shown.method.as_deref()) {
                Kind::Card => form(&token, locale, origin.as_deref(), (None, None)),
                Kind::BankAccount => account_form(&token, locale, origin.as_deref(), (None, None)),
            };
            framed_by(page, allowed.as_deref())
        }
        Ok(None) => gone(language(shown.locale.as_deref(), None), origin.as_deref()),
        Err(e) => {
            tracing::error!(error = %e, "a widget page could not read its token");
            broken(language(shown.locale.as_deref(), None), origin.as_deref())
        }
    }
}

pub async fn submit(State(app): State<App>, Path(token): Path<String>, Form(entered): Form<Entered>) -> Response {
    let origin = origin(Some(&entered.origin));
    let found = match usable(&app, &token, tokenizes).await {
        Ok(Some(found)) => found,
        Ok(None) => return gone(language(Some(&entered.locale), None), origin.as_deref()),
        Err(e) => {
            tracing::error!(error = %e, "a widget page could not read its token");
            return broken(language(Some(&entered.locale), None), origin.as_deref());
        }
    };
    let (locale, allowed) = match admitted(&app, &found, Some(&entered.locale), origin.as_ref()).await {
        Ok(admitted) => admitted,
        Err(page) => return page,
    };
    let page = match Kind::parse(Some(&entered.method)) {
        Kind::BankAccount => save_account(&app, &token, &found, &entered, locale).await,
        Kind::Card => save_card(&app, &token, &found, &entered, locale).await,
    };
    framed_by(page, allowed.as_deref())
}

/// The card variant's submission: the card into the vault, the token used.
async fn save_card(app: &App, token: &str, found: &PublicTokenRecord, entered: &Entered, locale: Locale) -> Response {
    let origin = origin(Some(&entered.origin));
    let t = texts(locale);
    let today = moscow_today(app.now_for(&found.project_id).await);
    let number = CardNumber::parse(&entered.number).ok();
    let expiry = entered
        .expiry
        .split_once('/')
        .and_then(|(mm, yy)| CardExpiry::parse(mm.trim(), yy.trim()).ok())
        .filter(|e| !e.is_expired_on(today));
    let (Some(number), Some(expiry)) = (number.clone(), expiry) else {
        let errors = (number.is_none().then_some(t.bad_number), expiry.is_none().then_some(t.bad_expiry));
        return form(token, locale, origin.as_deref(), errors);
    };
    // The card first: a failure here leaves the token for another try. A
    // card kept by a try that then loses the token's race is harmless.
    let card = match app.put_card(&found.project_id, &number, Some(expiry)).await {
        Ok(card) => card,
        Err(e) => {
            tracing::error!(error = %e, "a widget could not put its card in the vault");
            return broken(locale, origin.as_deref());
        }
    };
    if let Some(refused) = use_token(app, token, locale, origin.as_deref()).await {
        return refused;
    }
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{saved}</h1><dl><dt>{brand}</dt><dd>•••• {last4}</dd></dl>\
         <div id=\"result\" hidden data-kind=\"card\" data-number-hash=\"{hash}\" data-brand=\"{brand}\" data-last4=\"{last4}\" \
         data-origin=\"{origin}\"></div>",
        saved = escape(t.saved),
        brand = escape(&card.brand),
        last4 = escape(&card.last4),
        hash = escape(&card.number_hash),
        origin = escape(origin.as_deref().unwrap_or_default()),
    );
    widget_page(StatusCode::OK, locale, t.saved, &body)
}

fn script(text: &'static str) -> Response {
    let mut response = super::script_response(text);
    // Partners' pages load the library from another origin.
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

pub async fn library() -> Response {
    script(LIBRARY)
}

pub async fn page_script() -> Response {
    script(PAGE_SCRIPT)
}
