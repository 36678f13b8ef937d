//! The sandbox's stand-in for the customer's bank app, where an FPS QR code
//! is paid (`GET|POST /fps/pay/{project}/{session}`) and a SberPay payment is
//! paid in Sber's app (`GET|POST /sberpay/pay/{project}/{session}`, where
//! SberPay's redirect leads): the amount, the merchant, what is paid (the
//! link the QR code carries, or SberPay's channel), and a Pay button (a plain
//! form). Paying finishes the payment at once (such a transfer is final) and
//! sends the customer to the payment's `return_url` (303), if it has one.
//! The operator's `POST /admin/v1/payments/fps_pay` (and `sberpay_pay`) does
//! the same.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use open131_domain::payment;
use open131_domain::payment_flow::{PaymentEvent, PaymentState};
use open131_domain::session::Event;
use open131_store::SessionRecord;

use super::{escape, message, page};
use crate::api::engine::{self, Apply, EngineError};
use crate::api::render::{is_fps, paid_in_app};
use crate::app::App;

/// Why a payment could not be paid in the customer's bank app.
#[derive(Debug, thiserror::Error)]
pub enum AppPayError {
    #[error("no FPS or SberPay payment in this session")]
    NotFound,
    #[error("the payment is not waiting for the customer to pay it")]
    NotWaiting,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("store: {0}")]
    Store(#[from] open131_store::StoreError),
}

/// Pays the session's FPS QR code or SberPay payment, as the customer's bank would.
pub async fn pay_in_app(app: &App, project: &str, session: &str) -> Result<SessionRecord, AppPayError> {
    let record = app.store.session(project, session).await?.ok_or(AppPayError::NotFound)?;
    let waiting = match record.payment() {
        Some(p) if paid_in_app(p) => p.state == PaymentState::AwaitingAction,
        _ => return Err(AppPayError::NotFound),
    };
    if !waiting {
        return Err(AppPayError::NotWaiting);
    }
    match engine::apply(app, record, Event::Payment(PaymentEvent::QrPaid), Apply::default()).await {
        Err(EngineError::WrongState(_)) => Err(AppPayError::NotWaiting),
        other => Ok(other?),
    }
}

pub async fn show(State(app): State<App>, Path((project, session)): Path<(String, String)>) -> Response {
    match app.store.session(&project, &session).await {
        Ok(Some(record)) if record.payment().is_some_and(paid_in_app) => render(&record),
        Ok(_) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "bank app page: reading the session failed");
            super::Pages::internal_page()
        }
    }
}

pub async fn pay(State(app): State<App>, Path((project, session)): Path<(String, String)>) -> Response {
    match pay_in_app(&app, &project, &session).await {
        // Paid: back to the shop when it gave a return URL, as after 3-D Secure.
        Ok(record) => match record.payment().and_then(|p| p.return_url.as_deref()) {
            Some(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response(),
            None => render(&record),
        },
        Err(AppPayError::NotFound) => not_found(),
        Err(AppPayError::NotWaiting) => match app.store.session(&project, &session).await {
            Ok(Some(record)) => render(&record),
            _ => not_found(),
        },
        Err(e) => {
            tracing::error!(error = %e, "bank app page: paying failed");
            super::Pages::internal_page()
        }
    }
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Payment not found", "There is no FPS or SberPay payment to pay here.")
}

/// The bank app's page: the Pay form while the code waits, else the outcome.
fn render(record: &SessionRecord) -> Response {
    let Some(p) = record.payment() else { return not_found() };
    let amount = super::money_text(p.amount, &p.currency);
    // What is paid: the link an FPS QR code carries, or SberPay's channel.
    let (brand, pay_title, what) = if is_fps(p) {
        ("Your bank · FPS", "Pay by FPS", payment::fps_link(&p.id, p.amount))
    } else {
        let channel = payment::sberpay_channel(&crate::api::render::method(p)).map_or("", |c| c.as_str());
        ("Sber app · SberPay", "Pay with SberPay", format!("SberPay, channel {channel}"))
    };
    let facts = format!(
        "<dl><dt>To</dt><dd>{}</dd><dt>Amount</dt><dd>{}</dd></dl><p class=\"hint\">{}</p>",
        escape(&record.project_id),
        escape(&amount),
        escape(&what)
    );
    let (title, body) = match p.state {
        PaymentState::AwaitingAction => (
            pay_title,
            format!(
                "{facts}<form method=\"post\"><div class=\"buttons\">\
                 <button class=\"confirm\" name=\"action\" value=\"pay\">Pay {}</button></div></form>",
                escape(&amount)
            ),
        ),
        PaymentState::Succeeded => ("Paid", format!("{facts}<p>The payment went through.</p>")),
        PaymentState::Failed(code) => ("Not paid", format!("{facts}<p>{}</p>", escape(code.description()))),
        _ => ("Not ready", format!("{facts}<p>This payment is not waiting for the customer yet.</p>")),
    };
    page(StatusCode::OK, title, &format!("<p class=\"brand\">{brand}</p><h1>{title}</h1>{body}"))
}
