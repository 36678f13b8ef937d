//! The payment form (`acquiring_widget`): `GET|POST /widget/pay/{public_token}`
//! shows the amount of a session made by `session/create` and asks the
//! customer for the card (number, expiry, security code, name; a "save the
//! card" box when the token asked for it); the payment then starts with what
//! `session/create` kept. `GET /widget/pay/{public_token}/status` follows it:
//! to the 3-D Secure page when the card asks for it (which returns here),
//! a page that refreshes itself while the bank works (or waits for the
//! partner's `session/confirm`), and at the end the token's
//! `success_return_url` or `failure_return_url` (303). Shown by the library
//! in a partner's iframe (the page then knows the partner's origin), the end
//! is told to the library instead (`onSuccess` / `onError`), since a framed
//! page may not move the partner's page.
//!
//! The token is used up when the payment starts; from then on the form's
//! address and the status page show where the payment stands. A payment the form cannot start (the session started
//! meanwhile, or a card the bank refuses) shows a clear page.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use open131_domain::dates::moscow_today;
use open131_domain::ident::{is_security_code, CardExpiry, CardNumber};
use open131_domain::payment_flow::PaymentState;
use open131_domain::widget::{AcquiringWidget, Locale, WidgetGrant};
use open131_store::{PublicTokenRecord, SessionRecord};
use serde::Deserialize;

use super::widgets::{
    admitted, broken, failure, field, framed_by, gone, language, origin, page_query, refreshing, see_other, texts,
    usable, use_token, widget_page, Shown,
};
use super::{escape, money_text};
use crate::api::payment::{form_can_pay, pay_by_form, FormCard, FormRefusal};
use crate::api::render::three_ds_path;
use crate::app::App;

/// Longest name on the card read, in characters.
pub const CARDHOLDER_NAME_MAX_CHARS: usize = 64;
/// How often the status page looks again while the bank works, in seconds.
pub const STATUS_REFRESH_S: u32 = 1;

/// What the form sends. `Debug` shows none of the card.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entered {
    #[serde(default)]
    number: String,
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    cvc: String,
    #[serde(default)]
    holder: String,
    /// The "save the card" box (sent only when ticked).
    #[serde(default)]
    save: Option<String>,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    locale: String,
}

impl std::fmt::Debug for Entered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entered").field("origin", &self.origin).field("locale", &self.locale).finish_non_exhaustive()
    }
}

/// The form's own texts (the card's number and expiry share the tokenization widget's).
struct PayTexts {
    title: &'static str,
    amount: &'static str,
    shop: &'static str,
    cvc: &'static str,
    holder: &'static str,
    save: &'static str,
    pay: &'static str,
    bad_cvc: &'static str,
    bad_holder: &'static str,
    working: &'static str,
    done: &'static str,
    done_text: &'static str,
    failed: &'static str,
    back: &'static str,
    cannot: &'static str,
}

fn pay_texts(locale: Locale) -> PayTexts {
    match locale {
        Locale::En => PayTexts {
            title: "Payment",
            amount: "Amount",
            shop: "Shop",
            cvc: "Security code (CVC)",
            holder: "Name on the card",
            save: "Save the card for later payments",
            pay: "Pay",
            bad_cvc: "Check the code: 3 or 4 digits on the back of the card.",
            bad_holder: "Check the name: letters as on the card, up to 64.",
            working: "The bank is processing your payment. This page updates itself.",
            done: "Payment complete",
            done_text: "The payment went through.",
            failed: "Payment failed",
            back: "Back to the shop",
            cannot: "This payment cannot be made here any more. Go back to the shop and start again.",
        },
        Locale::Ru => PayTexts {
            title: "Оплата",
            amount: "Сумма",
            shop: "Магазин",
            cvc: "Код безопасности (CVC)",
            holder: "Имя на карте",
            save: "Сохранить карту для следующих платежей",
            pay: "Оплатить",
            bad_cvc: "Проверьте код: 3 или 4 цифры на обороте карты.",
            bad_holder: "Проверьте имя: буквы, как на карте, не длиннее 64.",
            working: "Банк обрабатывает платёж. Страница обновится сама.",
            done: "Оплата прошла",
            done_text: "Платёж выполнен.",
            failed: "Оплата не прошла",
            back: "Вернуться в магазин",
            cannot: "Этот платёж здесь больше нельзя провести. Вернитесь в магазин и начните заново.",
        },
    }
}

/// Whether a token opens the payment form.
fn pays(grant: &WidgetGrant) -> bool {
    grant.acquiring.is_some()
}

/// The messages beside the fields that were wrong, in form order.
#[derive(Debug, Default)]
struct Mistakes {
    number: Option<&'static str>,
    expiry: Option<&'static str>,
    cvc: Option<&'static str>,
    holder: Option<&'static str>,
}

impl Mistakes {
    fn any(&self) -> bool {
        self.number.is_some() || self.expiry.is_some() || self.cvc.is_some() || self.holder.is_some()
    }
}

/// What a form shows around its fields: the token, the session's amount and shop.
struct FormView<'a> {
    token: &'a str,
    locale: Locale,
    origin: Option<&'a str>,
    amount: String,
    shop: &'a str,
    save_box: bool,
}

fn form(view: &FormView<'_>, mistakes: &Mistakes) -> Response {
    let (t, p) = (texts(view.locale), pay_texts(view.locale));
    let save = if view.save_box {
        format!(
            "<label class=\"check\" style=\"margin-top:1rem\"><input type=\"checkbox\" name=\"save\" value=\"yes\" \
             style=\"width:auto\"> {}</label>",
            escape(p.save)
        )
    } else {
        String::new()
    };
    let number_attributes =
        format!("inputmode=\"numeric\" autocomplete=\"cc-number\" required data-invalid=\"{}\"", escape(t.bad_number));
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{title}</h1>\
         <dl><dt>{shop_label}</dt><dd>{shop}</dd><dt>{amount_label}</dt><dd id=\"amount\">{amount}</dd></dl>\
         <form method=\"post\" action=\"/widget/pay/{token}\" novalidate>{number}{expiry}{cvc}{holder}{save}\
         <input type=\"hidden\" name=\"origin\" value=\"{origin}\"><input type=\"hidden\" name=\"locale\" value=\"{lang}\">\
         <div class=\"buttons\"><button class=\"confirm\" type=\"submit\" value=\"pay\">{pay} {amount}</button></div></form>",
        title = escape(p.title),
        shop_label = escape(p.shop),
        shop = escape(view.shop),
        amount_label = escape(p.amount),
        amount = escape(&view.amount),
        token = escape(view.token),
        number = field("number", t.number, &number_attributes, mistakes.number),
        expiry = field(
            "expiry",
            t.expiry,
            "inputmode=\"numeric\" autocomplete=\"cc-exp\" placeholder=\"MM/YY\" required",
            mistakes.expiry
        ),
        cvc = field("cvc", p.cvc, "inputmode=\"numeric\" autocomplete=\"cc-csc\" maxlength=\"4\" required", mistakes.cvc),
        holder = field("holder", p.holder, "autocomplete=\"cc-name\" autocapitalize=\"characters\"", mistakes.holder),
        origin = escape(view.origin.unwrap_or_default()),
        lang = view.locale.as_str(),
        pay = escape(p.pay),
    );
    let status = if mistakes.any() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    widget_page(status, view.locale, p.title, &body)
}

/// The payment form's grant of a token.
fn grant(found: &PublicTokenRecord) -> Option<&AcquiringWidget> {
    found.grant.acquiring.as_ref()
}

/// The session a token's payment form pays, or the page to answer instead.
async fn session_of(
    app: &App,
    found: &PublicTokenRecord,
    locale: Locale,
    origin: Option<&str>,
) -> Result<SessionRecord, Response> {
    let Some(acquiring) = grant(found) else { return Err(gone(locale, origin)) };
    match app.store.session(&found.project_id, &acquiring.session_id).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(cannot(locale, origin)),
        Err(e) => {
            tracing::error!(error = %e, "the payment form could not read its session");
            Err(broken(locale, origin))
        }
    }
}

fn cannot(locale: Locale, origin: Option<&str>) -> Response {
    failure(StatusCode::CONFLICT, locale, origin, pay_texts(locale).cannot)
}

/// The form for a token's session, if it can still be paid.
fn view_of<'a>(
    token: &'a str,
    found: &'a PublicTokenRecord,
    session: &SessionRecord,
    locale: Locale,
    origin: Option<&'a str>,
) -> Option<FormView<'a>> {
    let draft = form_can_pay(session).ok()?;
    let amount = draft.pointer("/amount_details/amount").and_then(serde_json::Value::as_i64)?;
    let currency = draft.pointer("/amount_details/currency").and_then(serde_json::Value::as_str)?;
    Some(FormView {
        token,
        locale,
        origin,
        amount: money_text(amount, &currency.to_ascii_lowercase()),
        shop: &found.project_id,
        save_box: grant(found).is_some_and(|a| a.show_recurrent_checkbox),
    })
}

pub async fn show(State(app): State<App>, Path(token): Path<String>, Query(shown): Query<Shown>) -> Response {
    let origin = origin(shown.origin.as_deref());
    let found = match usable(&app, &token, pays).await {
        Ok(Some(found)) => found,
        // Used by its payment: the customer came back (a reload, the frame
        // shown again), so show where the payment stands.
        Ok(None) => return status(State(app), Path(token), Query(shown)).await,
        Err(e) => {
            tracing::error!(error = %e, "the payment form could not read its token");
            return broken(language(shown.locale.as_deref(), None), origin.as_deref());
        }
    };
    let (locale, allowed) = match admitted(&app, &found, shown.locale.as_deref(), origin.as_ref()).await {
        Ok(admitted) => admitted,
        Err(page) => return page,
    };
    let page = match session_of(&app, &found, locale, origin.as_deref()).await {
        Ok(session) => match view_of(&token, &found, &session, locale, origin.as_deref()) {
            Some(view) => form(&view, &Mistakes::default()),
            None => cannot(locale, origin.as_deref()),
        },
        Err(page) => page,
    };
    framed_by(page, allowed.as_deref())
}

/// The card typed, checked as the bank will (the number by Luhn or the
/// sandbox's documented numbers, an expiry not past, a 3–4 digit code).
fn read_card(entered: &Entered, locale: Locale, today: time::Date) -> Result<FormCard, Mistakes> {
    let (t, p) = (texts(locale), pay_texts(locale));
    let digits: String = entered.number.chars().filter(|c| !c.is_whitespace()).collect();
    let number = CardNumber::parse_or_documented(&digits).ok().map(|_| digits);
    let expiry = entered.expiry.split_once('/').map(|(mm, yy)| (mm.trim().to_string(), yy.trim().to_string()));
    let expiry = expiry.filter(|(mm, yy)| CardExpiry::parse(mm, yy).is_ok_and(|e| !e.is_expired_on(today)));
    let cvc = entered.cvc.trim();
    let cvc_ok = is_security_code(cvc);
    let holder = entered.holder.trim();
    let holder_ok = holder.chars().count() <= CARDHOLDER_NAME_MAX_CHARS
        && holder.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '.' || c == '\'');
    match (number, expiry, cvc_ok, holder_ok) {
        (Some(number), Some((expiration_month, expiration_year)), true, true) => Ok(FormCard {
            number,
            expiration_month,
            expiration_year,
            security_code: cvc.to_string(),
            cardholder_name: (!holder.is_empty()).then(|| holder.to_string()),
        }),
        (number, expiry, cvc_ok, holder_ok) => Err(Mistakes {
            number: number.is_none().then_some(t.bad_number),
            expiry: expiry.is_none().then_some(t.bad_expiry),
            cvc: (!cvc_ok).then_some(p.bad_cvc),
            holder: (!holder_ok).then_some(p.bad_holder),
        }),
    }
}

/// The status page's address (where 3-D Secure returns), under the server's public URL.
fn status_url(app: &App, token: &str, locale: Locale, origin: Option<&str>) -> String {
    format!("{}{}", app.public_url(), status_path(token, locale, origin))
}

/// The status page's path and query.
fn status_path(token: &str, locale: Locale, origin: Option<&str>) -> String {
    format!("/widget/pay/{token}/status?{}", page_query(locale, origin))
}

pub async fn submit(State(app): State<App>, Path(token): Path<String>, Form(entered): Form<Entered>) -> Response {
    let origin = origin(Some(&entered.origin));
    let found = match usable(&app, &token, pays).await {
        Ok(Some(found)) => found,
        // Used (a second press of Pay, a page sent again): where the payment stands.
        Ok(None) => {
            let locale = language(Some(&entered.locale), None);
            return see_other(&status_path(&token, locale, origin.as_deref()));
        }
        Err(e) => {
            tracing::error!(error = %e, "the payment form could not read its token");
            return broken(language(Some(&entered.locale), None), origin.as_deref());
        }
    };
    let (locale, allowed) = match admitted(&app, &found, Some(&entered.locale), origin.as_ref()).await {
        Ok(admitted) => admitted,
        Err(page) => return page,
    };
    let page = pay(&app, (&token, &found), &entered, locale, origin.as_deref()).await;
    framed_by(page, allowed.as_deref())
}

/// The submission: the card checked, the payment started, the token used;
/// then the status page.
async fn pay(
    app: &App,
    (token, found): (&str, &PublicTokenRecord),
    entered: &Entered,
    locale: Locale,
    origin: Option<&str>,
) -> Response {
    let session = match session_of(app, found, locale, origin).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let Some(view) = view_of(token, found, &session, locale, origin) else { return cannot(locale, origin) };
    let card = match read_card(entered, locale, moscow_today(app.now_for(&found.project_id).await)) {
        Ok(card) => card,
        Err(mistakes) => return form(&view, &mistakes),
    };
    // The box's answer when it was shown; else what session/create asked.
    let save = view.save_box.then_some(entered.save.is_some());
    let back = status_url(app, token, locale, origin);
    let ids = (found.project_id.as_str(), session.id.as_str());
    match pay_by_form(app, ids, &card, &back, save).await {
        Ok(_) => {}
        // Started meanwhile (a second press of Pay, or over the API): the
        // status page shows that payment, or says it cannot be paid here.
        Err(FormRefusal::CannotPay(why)) => {
            tracing::info!(why, "the payment form's session could not be paid");
            return see_other(&status_path(token, locale, origin));
        }
        Err(e @ FormRefusal::Refused { .. }) => {
            tracing::warn!(error = %e, "the payment form's payment was refused");
            return cannot(locale, origin);
        }
        Err(FormRefusal::Internal(e)) => {
            tracing::error!(error = %e, "the payment form could not start its payment");
            return broken(locale, origin);
        }
    }
    // The session's start decided the race; the token's use only records it.
    if use_token(app, token, locale, origin).await.is_some() {
        tracing::info!("the payment form's token was used by another try");
    }
    see_other(&back)
}

/// Where the payment stands, for the customer.
enum Stage {
    /// Not started: the form.
    Form,
    /// The card's 3-D Secure page.
    ThreeDs,
    /// The bank (or the partner's `session/confirm`) is working.
    Working,
    Succeeded,
    Failed(&'static str),
}

fn stage(session: &SessionRecord) -> Stage {
    let Some(payment) = session.payment() else { return Stage::Form };
    match payment.state {
        PaymentState::AwaitingAction => Stage::ThreeDs,
        PaymentState::Preparing | PaymentState::AwaitingConfirm | PaymentState::Authorizing => Stage::Working,
        // A hold is the customer's success: the partner captures it later.
        PaymentState::AwaitingCapture | PaymentState::Succeeded => Stage::Succeeded,
        PaymentState::Failed(code) => Stage::Failed(code.description()),
    }
}

pub async fn status(State(app): State<App>, Path(token): Path<String>, Query(shown): Query<Shown>) -> Response {
    let origin = origin(shown.origin.as_deref());
    let looked = app.store.public_token_by_value(&token).await;
    let now = super::token_now(&app, looked.as_ref().ok().and_then(Option::as_ref)).await;
    let found = match looked {
        // Served while the token lasts, used or not: the payment's page.
        Ok(Some(found)) if pays(&found.grant) && now < found.expires_at => found,
        Ok(_) => return gone(language(shown.locale.as_deref(), None), origin.as_deref()),
        Err(e) => {
            tracing::error!(error = %e, "the payment form's status could not read its token");
            return broken(language(shown.locale.as_deref(), None), origin.as_deref());
        }
    };
    let (locale, allowed) = match admitted(&app, &found, shown.locale.as_deref(), origin.as_ref()).await {
        Ok(admitted) => admitted,
        Err(page) => return page,
    };
    let page = match session_of(&app, &found, locale, origin.as_deref()).await {
        Ok(session) => match stage(&session) {
            // Not started: the form while the token is unused, else (it was
            // used, yet nothing started) it cannot be paid here.
            Stage::Form if found.used_at.is_none() => {
                see_other(&format!("/widget/pay/{token}?{}", page_query(locale, origin.as_deref())))
            }
            Stage::Form => cannot(locale, origin.as_deref()),
            Stage::ThreeDs => see_other(&three_ds_path(&session.project_id, &session.id)),
            Stage::Working => working(locale),
            Stage::Succeeded => finished(&found, &session, locale, origin.as_deref(), None),
            Stage::Failed(why) => finished(&found, &session, locale, origin.as_deref(), Some(why)),
        },
        Err(page) => page,
    };
    framed_by(page, allowed.as_deref())
}

/// The page that looks again every [`STATUS_REFRESH_S`] seconds (no script needed).
fn working(locale: Locale) -> Response {
    let p = pay_texts(locale);
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{title}</h1><p id=\"working\" role=\"status\">{text}</p>",
        title = escape(p.title),
        text = escape(p.working),
    );
    refreshing(widget_page(StatusCode::OK, locale, p.title, &body), STATUS_REFRESH_S)
}

/// The end: the partner's page is told (framed), or the customer goes to
/// the token's return URL, or (none given) sees the outcome.
fn finished(
    found: &PublicTokenRecord,
    session: &SessionRecord,
    locale: Locale,
    origin: Option<&str>,
    failed: Option<&str>,
) -> Response {
    let acquiring = grant(found);
    let url = match failed {
        None => acquiring.and_then(|a| a.success_return_url.as_deref()),
        Some(_) => acquiring.and_then(|a| a.failure_return_url.as_deref()),
    };
    if let (None, Some(url)) = (origin, url) {
        return see_other(url);
    }
    let p = pay_texts(locale);
    let (title, text, status) = match failed {
        None => (p.done, p.done_text, "succeeded"),
        Some(why) => (p.failed, why, "failed"),
    };
    let back = url
        .map_or(String::new(), |u| format!("<p><a href=\"{}\" target=\"_top\">{}</a></p>", escape(u), escape(p.back)));
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{title}</h1><p>{text}</p>{back}\
         <div id=\"paid\" hidden data-status=\"{status}\" data-session-id=\"{session_id}\" data-message=\"{text}\" \
         data-origin=\"{origin}\"></div>",
        title = escape(title),
        text = escape(text),
        session_id = escape(&session.id),
        origin = escape(origin.unwrap_or_default()),
    );
    widget_page(StatusCode::OK, locale, title, &body)
}
