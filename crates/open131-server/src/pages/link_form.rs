//! The self-employed linking widget (`self_employed_widget`):
//! `GET|POST /widget/self-employed/{public_token}` shows the person the
//! partner's request to link their self-employed (NPD) status to the bank,
//! for the INN the token names (masked), and where it stands
//! ([`open131_domain::npd_link`]): not sent yet (a button sends it, using the
//! token up), waiting for the person in the tax service's app «Мой налог»,
//! linked, or declined (it may be sent again). The sandbox stands in for the
//! tax service's app with two buttons in a marked box (confirm, decline);
//! the operator's and the CLI's ways come with the self-employed issue, as
//! do the partner's checks (`npd/check`). Shown by the library in a partner's
//! frame, a link made is told to the library (`onSuccess`).
//!
//! Every change is one conditional write of the link (its version); a
//! request sent twice at once is recorded once.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use open131_domain::ident::Inn;
use open131_domain::npd_link::{LinkEvent, LinkState};
use open131_domain::widget::{Locale, WidgetGrant};
use open131_store::PublicTokenRecord;
use serde::Deserialize;

use super::escape;
use super::widgets::{
    admitted, broken, framed_by, gone, language, origin, page_query, refreshing, see_other, use_token, widget_page,
    Shown,
};
use crate::api::npd::{change_link, LinkChange};
use crate::app::App;

/// How often the page looks again while the request waits in the tax
/// service's app, in seconds (the person answers there, not here).
pub const LINK_REFRESH_S: u32 = 5;

/// What the page's buttons send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pressed {
    action: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    locale: String,
}

/// The buttons: the widget's, and the sandbox's stand-in for the tax service's app.
fn event_of(action: &str) -> Option<LinkEvent> {
    match action {
        "request" => Some(LinkEvent::Request),
        "confirm" => Some(LinkEvent::Confirm),
        "decline" => Some(LinkEvent::Decline),
        _ => None,
    }
}

struct LinkTexts {
    title: &'static str,
    inn: &'static str,
    partner: &'static str,
    ask: &'static str,
    send: &'static str,
    waiting: &'static str,
    app: &'static str,
    confirm: &'static str,
    decline: &'static str,
    linked: &'static str,
    declined: &'static str,
    send_again: &'static str,
    refresh: &'static str,
}

fn link_texts(locale: Locale) -> LinkTexts {
    match locale {
        Locale::En => LinkTexts {
            title: "Link to Bank 131",
            inn: "Your INN",
            partner: "Asked by",
            ask: "To pay you as a self-employed person and register your income with the tax service, the \
                  partner asks you to link your self-employed (NPD) status to Bank 131. The request goes to \
                  the tax service's app «Мой налог», where you confirm it.",
            send: "Send the request",
            waiting: "The request is in «Мой налог». Open the app, go to Partners, and confirm Bank 131. \
                      This page updates itself.",
            app: "Sandbox: the tax service's app",
            confirm: "Confirm in «Мой налог»",
            decline: "Decline in «Мой налог»",
            linked: "Linked: Bank 131 may now register your income. You may close this page.",
            declined: "You declined the request in «Мой налог». You may send it again.",
            send_again: "Send the request again",
            refresh: "Refresh the request's status",
        },
        Locale::Ru => LinkTexts {
            title: "Подключение к Банку 131",
            inn: "Ваш ИНН",
            partner: "Запрос от",
            ask: "Чтобы платить вам как самозанятому и регистрировать ваш доход в налоговой, партнёр просит \
                  подключить ваш статус самозанятого (НПД) к Банку 131. Запрос придёт в приложение «Мой налог», \
                  где вы его подтвердите.",
            send: "Отправить запрос",
            waiting: "Запрос отправлен в «Мой налог». Откройте приложение, раздел «Партнёры», и подтвердите \
                      Банк 131. Страница обновится сама.",
            app: "Песочница: приложение налоговой",
            confirm: "Подтвердить в «Мой налог»",
            decline: "Отклонить в «Мой налог»",
            linked: "Подключено: Банк 131 может регистрировать ваш доход. Страницу можно закрыть.",
            declined: "Вы отклонили запрос в «Мой налог». Его можно отправить снова.",
            send_again: "Отправить запрос снова",
            refresh: "Обновить статус заявки",
        },
    }
}

/// Whether a token opens the linking widget.
fn links(grant: &WidgetGrant) -> bool {
    grant.self_employed.is_some()
}

/// The token's INN, if it opens the linking widget.
fn inn_of(found: &PublicTokenRecord) -> Option<&Inn> {
    found.grant.self_employed.as_ref()
}

/// A token the page serves: the linking widget's, while it lasts (used or
/// not: once its request is sent, the page shows where it stands).
async fn serving(app: &App, token: &str) -> Result<Option<PublicTokenRecord>, String> {
    let found = app.store.public_token_by_value(token).await.map_err(|e| e.to_string())?;
    let now = super::token_now(app, found.as_ref()).await;
    Ok(found.filter(|t| links(&t.grant) && now < t.expires_at))
}

/// The link as it stands (`api::npd::link`: never asked, not requested).
async fn link_of(app: &App, project_id: &str, inn: &Inn) -> Result<LinkState, String> {
    crate::api::npd::link(app, project_id, inn).await.map(|(state, _)| state).map_err(|e| e.to_string())
}

/// What the page shows for a token, with its state, or the page to answer instead.
struct Opened {
    found: PublicTokenRecord,
    locale: Locale,
    origin: Option<String>,
    allowed: Option<Vec<String>>,
}

async fn open(app: &App, token: &str, asked: Option<&str>, origin_raw: Option<&str>) -> Result<Opened, Response> {
    let origin = origin(origin_raw);
    let found = match serving(app, token).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(gone(language(asked, None), origin.as_deref())),
        Err(e) => {
            tracing::error!(error = %e, "the linking widget could not read its token");
            return Err(broken(language(asked, None), origin.as_deref()));
        }
    };
    let (locale, allowed) = admitted(app, &found, asked, origin.as_ref()).await?;
    Ok(Opened { found, locale, origin, allowed })
}

pub async fn show(State(app): State<App>, Path(token): Path<String>, Query(shown): Query<Shown>) -> Response {
    let opened = match open(&app, &token, shown.locale.as_deref(), shown.origin.as_deref()).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let page = render(&app, &token, &opened).await;
    framed_by(page, opened.allowed.as_deref())
}

pub async fn press(State(app): State<App>, Path(token): Path<String>, Form(pressed): Form<Pressed>) -> Response {
    let opened = match open(&app, &token, Some(&pressed.locale), Some(&pressed.origin)).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let (locale, origin) = (opened.locale, opened.origin.as_deref());
    let Some(event) = event_of(&pressed.action) else {
        return framed_by(render(&app, &token, &opened).await, opened.allowed.as_deref());
    };
    let fresh = opened.found.used_at.is_none();
    let saved = match change(&app, &opened.found, event, fresh).await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!(error = %e, "the linking widget could not save its link");
            return framed_by(broken(locale, origin), opened.allowed.as_deref());
        }
    };
    // The token is used by the request it sent, not by a press that changed nothing.
    if saved && event == LinkEvent::Request && fresh && use_token(&app, &token, locale, origin).await.is_some() {
        tracing::info!("the linking widget's token was used by another try");
    }
    let to = format!("/widget/self-employed/{token}?{}", page_query(locale, origin));
    framed_by(see_other(&to), opened.allowed.as_deref())
}

/// Applies `event` to the token's link ([`change_link`]): a state that does
/// not take it (a second press, an answer already given) changes nothing,
/// and the page shows where it stands. A used token sends the request again
/// only after a decline (a new request needs a new token). `true` when the
/// link changed.
async fn change(app: &App, found: &PublicTokenRecord, event: LinkEvent, fresh: bool) -> Result<bool, String> {
    let Some(inn) = inn_of(found) else { return Ok(false) };
    let state = link_of(app, &found.project_id, inn).await?;
    if event == LinkEvent::Request && !fresh && state != LinkState::Declined {
        return Ok(false);
    }
    let ids = (found.project_id.as_str(), inn);
    let done = change_link(app, ids, event, app.now_for(&found.project_id).await).await.map_err(|e| e.to_string())?;
    Ok(matches!(done, LinkChange::Changed(_)))
}

/// The page for where the link stands.
async fn render(app: &App, token: &str, opened: &Opened) -> Response {
    let (locale, origin) = (opened.locale, opened.origin.as_deref());
    let Some(inn) = inn_of(&opened.found) else { return gone(locale, origin) };
    let state = match link_of(app, &opened.found.project_id, inn).await {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(error = %e, "the linking widget could not read its link");
            return broken(locale, origin);
        }
    };
    let t = link_texts(locale);
    let button = |action: &str, label: &str, class: &str| {
        format!(
            "<form method=\"post\" action=\"/widget/self-employed/{token}\">\
             <input type=\"hidden\" name=\"origin\" value=\"{origin}\"><input type=\"hidden\" name=\"locale\" value=\"{lang}\">\
             <div class=\"buttons\"><button class=\"{class}\" name=\"action\" value=\"{action}\">{label}</button></div></form>",
            token = escape(token),
            origin = escape(origin.unwrap_or_default()),
            lang = locale.as_str(),
            label = escape(label),
        )
    };
    let fresh = opened.found.used_at.is_none();
    let (text, actions) = match state {
        LinkState::NotRequested if fresh => (t.ask, button("request", t.send, "confirm")),
        // Unlinked since the token was used: a new token sends a new request.
        LinkState::NotRequested => (t.ask, String::new()),
        LinkState::Requested => {
            // The bank's widget has the same button (its docs: «Обновить статус заявки»).
            let refresh = format!(
                "<p><a id=\"refresh\" href=\"/widget/self-employed/{token}?{query}\">{label}</a></p>",
                token = escape(token),
                query = escape(&page_query(locale, origin)),
                label = escape(t.refresh),
            );
            let app_box = format!(
                "{refresh}<section class=\"sandbox\" aria-label=\"{label}\"><p class=\"brand\">{label}</p>{confirm}{decline}</section>",
                label = escape(t.app),
                confirm = button("confirm", t.confirm, "confirm"),
                decline = button("decline", t.decline, "decline"),
            );
            (t.waiting, app_box)
        }
        LinkState::Linked => (t.linked, String::new()),
        LinkState::Declined => (t.declined, button("request", t.send_again, "confirm")),
    };
    let body = format!(
        "<p class=\"brand\">open131</p><h1>{title}</h1>\
         <dl><dt>{partner_label}</dt><dd>{partner}</dd><dt>{inn_label}</dt><dd>{inn}</dd></dl>\
         <p id=\"link-state\" data-state=\"{state}\" role=\"status\">{text}</p>{actions}\
         <div id=\"link\" hidden data-state=\"{state}\" data-origin=\"{origin}\"></div>",
        title = escape(t.title),
        partner_label = escape(t.partner),
        partner = escape(&opened.found.project_id),
        inn_label = escape(t.inn),
        inn = escape(&inn.masked()),
        state = state.as_str(),
        text = escape(text),
        origin = escape(origin.unwrap_or_default()),
    );
    let page = widget_page(StatusCode::OK, locale, t.title, &body);
    match state {
        LinkState::Requested => refreshing(page, LINK_REFRESH_S),
        _ => page,
    }
}
