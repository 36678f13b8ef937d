//! Web pages that people (not partners' servers) open: the 3-D Secure page
//! of card payments ([`three_ds`]) and the sandbox's stand-in for the
//! customer's bank app, where FPS and SberPay payments are paid ([`bank_app`]),
//! and the widgets ([`widgets`], the payment form [`pay_form`], the linking widget [`link_form`]). Real HTML with its style inline and no
//! external asset, so a page works offline; only the widgets' pages run a
//! script (their own, from this server) and work without it; every value
//! shown is escaped ([`escape`]). The surface renders its own errors as
//! pages ([`Pages`]).

pub mod bank_app;
pub mod link_form;
pub mod pay_form;
pub mod receipt;
pub mod three_ds;
pub mod widgets;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::app::{App, Surface};

/// What a page may load: its own inline style and `data:` images, nothing
/// else (no script runs on these pages; the widgets' have their own policy).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Where the pages live: a path under one of them that no page serves gets
/// the pages' own 404.
pub const PAGE_PREFIXES: [&str; 7] =
    ["/3ds/", "/fps/pay/", "/sberpay/pay/", "/widget/", "/npd/receipt/", "/openapi.json", "/docs"];

/// The pages' routes (panic and timeout layers are added by the caller).
pub fn router() -> Router<App> {
    Router::new()
        .route("/3ds/{project}/{session}", axum::routing::get(three_ds::show).post(three_ds::submit))
        .route(crate::openapi::DOCUMENT_PATH, axum::routing::get(crate::openapi::serve_document))
        .route(crate::openapi::PAGE_PATH, axum::routing::get(crate::openapi::serve_page))
        .route("/docs.js", axum::routing::get(crate::openapi::serve_script))
        .route("/fps/pay/{project}/{session}", axum::routing::get(bank_app::show).post(bank_app::pay))
        .route("/sberpay/pay/{project}/{session}", axum::routing::get(bank_app::show).post(bank_app::pay))
        .route("/widget/tokenize/{token}", axum::routing::get(widgets::show).post(widgets::submit))
        .route("/widget/pay/{token}", axum::routing::get(pay_form::show).post(pay_form::submit))
        .route("/widget/pay/{token}/status", axum::routing::get(pay_form::status))
        .route("/widget/self-employed/{token}", axum::routing::get(link_form::show).post(link_form::press))
        .route("/npd/receipt/{project}/{session}/{payout}", axum::routing::get(receipt::show))
        .route("/widget/open131.js", axum::routing::get(widgets::library))
        .route("/widget/page.js", axum::routing::get(widgets::page_script))
}

/// The now a public token is judged by: its project's (virtual time), or
/// the real one for a token not found.
pub async fn token_now(app: &App, token: Option<&open131_store::PublicTokenRecord>) -> time::OffsetDateTime {
    match token {
        Some(t) => app.now_for(&t.project_id).await,
        None => app.clock.now(),
    }
}

/// `text` with the five HTML-special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A whole page: `title` (plain text, escaped here) around `body` (HTML the
/// caller has escaped).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main><footer>open131 sandbox · not a real bank</footer></body></html>\n",
        title = escape(title),
    );
    html_response(status, html, HeaderValue::from_static(CONTENT_SECURITY_POLICY))
}

/// The policy of a page that runs its own script (served beside it) and reads
/// JSON from this server: the inspector, the API reference.
pub const SCRIPTED_PAGE_POLICY: &str =
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:";

/// A script the pages load from this server, with the headers every one has.
pub fn script_response(text: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// An HTML page's answer with the headers every page sends: its policy,
/// never cached, no referrer.
pub fn html_response(status: StatusCode, html: String, policy: HeaderValue) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `12345` minor units of `rub` → `123.45 RUB`, as the pages show amounts.
pub fn money_text(amount: i64, currency: &str) -> String {
    format!("{}.{:02} {}", amount / 100, amount % 100, currency.to_ascii_uppercase())
}

/// A page with a heading and one paragraph.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, title, &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text)))
}

pub(crate) const STYLE: &str = "body{margin:0;background:#eef1f5;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
color:#1d2430}main{max-width:26rem;margin:3rem auto 1rem;background:#fff;border-radius:12px;padding:1.75rem;\
box-shadow:0 2px 12px rgba(0,0,0,.08)}h1{font-size:1.3rem;margin:0 0 1rem}dl{display:grid;\
grid-template-columns:auto 1fr;gap:.35rem 1rem;margin:0 0 1.25rem}dt{color:#5b6575}dd{margin:0;font-weight:600}\
label{display:block;margin-bottom:.35rem;color:#5b6575}input{box-sizing:border-box;width:100%;font-size:1.25rem;\
letter-spacing:.2em;padding:.5rem .75rem;border:1px solid #b9c1cd;border-radius:8px}.buttons{display:flex;gap:.75rem;\
margin-top:1.25rem}button{flex:1;font-size:1rem;padding:.65rem;border-radius:8px;border:1px solid #1f5fbf;cursor:pointer}\
button.confirm{background:#1f5fbf;color:#fff}button.decline{background:#fff;color:#1f5fbf}.hint{font-size:.85rem;\
color:#5b6575;margin:.5rem 0 0;overflow-wrap:anywhere}.error{background:#fdecec;color:#9b1c1c;border-radius:8px;padding:.5rem .75rem;\
margin:0 0 1rem}.brand{font-size:.8rem;text-transform:uppercase;letter-spacing:.08em;color:#1f5fbf;margin:0 0 .25rem}\
footer{text-align:center;font-size:.75rem;color:#7a8494;margin-bottom:2rem}\
table{width:100%;border-collapse:collapse;margin:0 0 1rem}th,td{text-align:left;padding:.3rem .25rem;\
border-bottom:1px solid #e1e5eb;vertical-align:top}.sum{text-align:right;white-space:nowrap}\
.total{font-weight:600;text-align:right}@media print{body{background:#fff}main{box-shadow:none;margin:0}}\
.sandbox{border:1px dashed #b9c1cd;border-radius:8px;padding:.75rem 1rem;margin-top:1.25rem}";

/// The pages' own rendering of the errors no handler produced.
pub struct Pages;

impl Pages {
    /// The generic error page (a handler's own failure, logged by it).
    pub fn internal_page() -> Response {
        <Self as Surface>::internal()
    }
}

impl Surface for Pages {
    fn not_found() -> Response {
        message(StatusCode::NOT_FOUND, "Page not found", "There is no such page.")
    }
    fn method_not_allowed() -> Response {
        message(StatusCode::METHOD_NOT_ALLOWED, "Not allowed", "This page cannot be opened that way.")
    }
    fn internal() -> Response {
        message(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again in a moment.")
    }
    fn too_large(part: crate::edge::TooLarge) -> Response {
        match part {
            crate::edge::TooLarge::Uri => {
                message(StatusCode::URI_TOO_LONG, "Address too long", "This page's address is too long to open.")
            }
            crate::edge::TooLarge::Headers => message(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request too large",
                "The browser sent too much with this request (cookies, most often).",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_special_characters() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("Иван 100.00"), "Иван 100.00");
    }
}
