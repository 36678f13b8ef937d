//! The sandbox's stand-in for the customer's bank app, where an FPS QR code
//! is paid (`GET|POST /fps/pay/{project}/{session}`): the amount, the
//! merchant, the payment link the QR code carries, and a Pay button (a plain
//! form). Paying finishes the payment at once (an FPS transfer is final) and
//! sends the customer to the payment's `return_url` (303), if it has one.
//! The operator's `POST /admin/v1/payments/fps_pay` does the same.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use open131_domain::payment;
use open131_domain::payment_flow::{PaymentEvent, PaymentState};
use open131_domain::session::Event;
use open131_store::SessionRecord;

use super::{escape, message, page};
use crate::api::engine::{self, Apply, EngineError};
use crate::api::render::is_fps;
use crate::app::App;

/// Why an FPS payment could not be paid.
#[derive(Debug, thiserror::Error)]
pub enum FpsPayError {
    #[error("no FPS payment in this session")]
    NotFound,
    #[error("the payment is not waiting for its QR code to be paid")]
    NotWaiting,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("store: {0}")]
    Store(#[from] open131_store::StoreError),
}

/// Pays the session's FPS QR code, as the customer's bank would.
pub async fn pay_qr(app: &App, project: &str, session: &str) -> Result<SessionRecord, FpsPayError> {
    let record = app.store.session(project, session).await?.ok_or(FpsPayError::NotFound)?;
    let waiting = match record.payment() {
        Some(p) if is_fps(p) => p.state == PaymentState::AwaitingAction,
        _ => return Err(FpsPayError::NotFound),
    };
    if !waiting {
        return Err(FpsPayError::NotWaiting);
    }
    match engine::apply(app, record, Event::Payment(PaymentEvent::QrPaid), Apply::default()).await {
        Err(EngineError::WrongState(_)) => Err(FpsPayError::NotWaiting),
        other => Ok(other?),
    }
}

pub async fn show(State(app): State<App>, Path((project, session)): Path<(String, String)>) -> Response {
    match app.store.session(&project, &session).await {
        Ok(Some(record)) if record.payment().is_some_and(is_fps) => render(&record),
        Ok(_) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "FPS page: reading the session failed");
            super::Pages::internal_page()
        }
    }
}

pub async fn pay(State(app): State<App>, Path((project, session)): Path<(String, String)>) -> Response {
    match pay_qr(&app, &project, &session).await {
        // Paid: back to the shop when it gave a return URL, as after 3-D Secure.
        Ok(record) => match record.payment().and_then(|p| p.return_url.as_deref()) {
            Some(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response(),
            None => render(&record),
        },
        Err(FpsPayError::NotFound) => not_found(),
        Err(FpsPayError::NotWaiting) => match app.store.session(&project, &session).await {
            Ok(Some(record)) => render(&record),
            _ => not_found(),
        },
        Err(e) => {
            tracing::error!(error = %e, "FPS page: paying failed");
            super::Pages::internal_page()
        }
    }
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Payment not found", "There is no FPS payment to pay here.")
}

/// The bank app's page: the Pay form while the code waits, else the outcome.
fn render(record: &SessionRecord) -> Response {
    let Some(p) = record.payment() else { return not_found() };
    let amount = super::money_text(p.amount, &p.currency);
    let link = payment::fps_link(&p.id, p.amount);
    let facts = format!(
        "<dl><dt>To</dt><dd>{}</dd><dt>Amount</dt><dd>{}</dd></dl><p class=\"hint\">{}</p>",
        escape(&record.project_id),
        escape(&amount),
        escape(&link)
    );
    let (title, body) = match p.state {
        PaymentState::AwaitingAction => (
            "Pay by FPS",
            format!(
                "{facts}<form method=\"post\"><div class=\"buttons\">\
                 <button class=\"confirm\" name=\"action\" value=\"pay\">Pay {}</button></div></form>",
                escape(&amount)
            ),
        ),
        PaymentState::Succeeded => ("Paid", format!("{facts}<p>The payment went through.</p>")),
        PaymentState::Failed(code) => ("Not paid", format!("{facts}<p>{}</p>", escape(code.description()))),
        _ => ("Not ready", format!("{facts}<p>This payment is not waiting for its QR code yet.</p>")),
    };
    page(StatusCode::OK, title, &format!("<p class=\"brand\">Your bank · FPS</p><h1>{title}</h1>{body}"))
}
