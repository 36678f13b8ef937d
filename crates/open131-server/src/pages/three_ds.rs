//! The 3-D Secure page of a card payment (`GET|POST /3ds/{project}/{session}`),
//! where `customer_interaction.redirect` sends the customer: the amount, the
//! masked card, a one-time code field and Confirm and Decline buttons, as a
//! plain form. Confirming with the sandbox code passes 3-D Secure; declining,
//! or the last of [`THREE_DS_CODE_ATTEMPTS_MAX`] wrong codes, fails the
//! payment with `3DS_error`. Either way the customer is sent back to the
//! payment's `return_url` (303, a GET as the redirect said) or, without one,
//! shown the result.
//!
//! The page needs no credentials, as a bank's ACS page: whoever holds the
//! link (the session id is random) acts for the customer.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use open131_domain::payment::THREE_DS_SANDBOX_CODE;
use open131_domain::payment_flow::{PaymentEvent, PaymentState, THREE_DS_CODE_ATTEMPTS_MAX};
use open131_domain::session::Event;
use open131_store::{PaymentRecord, SessionRecord};
use serde::Deserialize;

use super::{escape, message, page};
use crate::api::engine::{self, Apply, EngineError};
use crate::app::App;

/// Longest one-time code read, in bytes (the sandbox's has six digits).
pub const CODE_MAX_BYTES: usize = 16;

/// The form's fields: which button, and the code typed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    action: String,
    #[serde(default)]
    code: String,
}

/// What the customer chose.
enum Choice {
    Confirm { code_ok: bool },
    Decline,
}

impl Decision {
    fn parse(&self) -> Option<Choice> {
        match self.action.as_str() {
            "confirm" if self.code.len() <= CODE_MAX_BYTES => {
                Some(Choice::Confirm { code_ok: self.code.trim() == THREE_DS_SANDBOX_CODE })
            }
            "decline" => Some(Choice::Decline),
            _ => None,
        }
    }
}

/// The session of the page and its payment, or the page's answer when there is none.
async fn load(app: &App, project: &str, session: &str) -> Result<SessionRecord, Response> {
    match app.store.session(project, session).await {
        // An FPS payment has no 3-D Secure: its customer pays a QR code.
        Ok(Some(record)) if record.payment().is_some_and(|p| !crate::api::render::is_fps(p)) => Ok(record),
        Ok(_) => Err(not_found()),
        Err(e) => {
            tracing::error!(error = %e, "3-D Secure page: reading the session failed");
            Err(super::Pages::internal_page())
        }
    }
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Payment not found", "There is no payment waiting for confirmation here.")
}

pub async fn show(State(app): State<App>, Path((project, session)): Path<(String, String)>) -> Response {
    match load(&app, &project, &session).await {
        Ok(record) => render(&record, None),
        Err(page) => page,
    }
}

pub async fn submit(
    State(app): State<App>,
    Path((project, session)): Path<(String, String)>,
    form: Result<Form<Decision>, axum::extract::rejection::FormRejection>,
) -> Response {
    let record = match load(&app, &project, &session).await {
        Ok(record) => record,
        Err(page) => return page,
    };
    let Some(choice) = form.ok().and_then(|Form(d)| d.parse()) else {
        return message(StatusCode::BAD_REQUEST, "Unreadable answer", "Use the page's Confirm or Decline button.");
    };
    let Some(payment) = record.payment().filter(|p| p.state == PaymentState::AwaitingAction) else {
        return render(&record, None);
    };
    let event = match choice {
        Choice::Decline => PaymentEvent::ThreeDsFailed,
        Choice::Confirm { code_ok: true } => PaymentEvent::ThreeDsPassed,
        Choice::Confirm { code_ok: false } => {
            PaymentEvent::ThreeDsWrongCode { last: payment.three_ds_attempts + 1 >= THREE_DS_CODE_ATTEMPTS_MAX }
        }
    };
    match engine::apply(&app, record, Event::Payment(event), Apply::default()).await {
        Ok(done) => after(&done),
        // It moved on meanwhile (timed out, cancelled): show where it stands.
        Err(EngineError::WrongState(_)) => match load(&app, &project, &session).await {
            Ok(record) => render(&record, None),
            Err(page) => page,
        },
        Err(e) => {
            tracing::error!(error = %e, "3-D Secure page: applying the customer's answer failed");
            super::Pages::internal_page()
        }
    }
}

/// After an answer: the form again (a wrong code with attempts left), else
/// back to the shop, or the result when the shop gave no return URL.
fn after(record: &SessionRecord) -> Response {
    let Some(payment) = record.payment() else { return not_found() };
    if payment.state == PaymentState::AwaitingAction {
        let left = THREE_DS_CODE_ATTEMPTS_MAX.saturating_sub(payment.three_ds_attempts);
        let noun = if left == 1 { "attempt" } else { "attempts" };
        return render(record, Some(&format!("Wrong code: {left} {noun} left.")));
    }
    match &payment.return_url {
        Some(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url.as_str())]).into_response(),
        None => render(record, None),
    }
}

/// `VISA •••• 3220` from the masked card.
fn card(p: &PaymentRecord) -> String {
    let masked: serde_json::Value = serde_json::from_str(&p.method_masked).unwrap_or_default();
    let card = &masked["card"];
    let brand = card["brand"].as_str().unwrap_or("card").to_ascii_uppercase();
    format!("{brand} •••• {}", card["last4"].as_str().unwrap_or("????"))
}

/// The page for where the payment stands: the form while it waits for the
/// customer (with `error` above it), else its outcome.
fn render(record: &SessionRecord, error: Option<&str>) -> Response {
    let Some(p) = record.payment() else { return not_found() };
    let facts = format!(
        "<dl><dt>Merchant</dt><dd>{}</dd><dt>Amount</dt><dd>{}</dd><dt>Card</dt><dd>{}</dd></dl>",
        escape(&record.project_id),
        escape(&super::money_text(p.amount, &p.currency)),
        escape(&card(p)),
    );
    if p.state != PaymentState::AwaitingAction {
        let (title, text) = match p.state {
            PaymentState::Failed(code) => ("Payment not confirmed", code.description()),
            PaymentState::Succeeded => ("Payment complete", "The payment went through."),
            _ => ("Payment confirmed", "Thank you: the bank is completing the payment."),
        };
        let back = match &p.return_url {
            Some(url) => format!("<p><a href=\"{}\">Back to the shop</a></p>", escape(url)),
            None => "<p>You may close this page.</p>".to_string(),
        };
        let body = format!("<p class=\"brand\">3-D Secure</p><h1>{title}</h1>{facts}<p>{}</p>{back}", escape(text));
        return page(StatusCode::OK, title, &body);
    }
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let body = format!(
        "<p class=\"brand\">3-D Secure</p><h1>Confirm your payment</h1>{facts}{error}\
         <form method=\"post\">\
         <label for=\"code\">One-time code</label>\
         <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         maxlength=\"{CODE_MAX_BYTES}\" required autofocus>\
         <p class=\"hint\">Sandbox: the code is {THREE_DS_SANDBOX_CODE}. {THREE_DS_CODE_ATTEMPTS_MAX} wrong codes \
         decline the payment.</p>\
         <div class=\"buttons\"><button class=\"confirm\" name=\"action\" value=\"confirm\">Confirm</button>\
         <button class=\"decline\" name=\"action\" value=\"decline\" formnovalidate>Decline</button></div>\
         </form>"
    );
    page(StatusCode::OK, "Confirm your payment", &body)
}
