//! The tax service's receipt of a payout to a self-employed person
//! (`GET /npd/receipt/{project}/{session}/{payout}`), where the payout's
//! `fiscalization_details.receipt.link` points once the receipt is
//! registered (a pending or failed one has no page yet; a cancelled one
//! keeps its page, marked cancelled with the reason): a printable page with what a receipt of the tax service shows (its number
//! and time, the seller's name and INN, the services with their quantities
//! and amounts, the total, the buyer). The seller's INN is shown whole, as
//! on the tax service's own receipts; the link is known to the partner
//! alone (the session id is random).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use open131_domain::dates::moscow_time;
use open131_domain::fiscal::{Fiscalization, PayerType};
use open131_domain::payout_flow::PayoutState;
use open131_domain::receipt::{CancelReason, Receipt, ReceiptState};
use open131_store::{PayoutRecord, SessionRecord};

use super::{escape, message, money_text, page};
use crate::app::App;

fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Receipt not found",
        "There is no receipt here (yet): a receipt has a page once the tax service registers it.",
    )
}

pub async fn show(
    State(app): State<App>,
    Path((project, session, payout)): Path<(String, String, String)>,
) -> Response {
    let record = match app.store.session(&project, &session).await {
        Ok(Some(record)) => record,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "receipt page: reading the session failed");
            return super::Pages::internal_page();
        }
    };
    let Some(p) = record.payouts.iter().find(|p| p.id == payout && p.state == PayoutState::Succeeded) else {
        return not_found();
    };
    let Some(fiscal) = p.fiscalization.as_ref().and_then(|f| Fiscalization::parse_stored(f.expose())) else {
        return not_found();
    };
    match p.receipt {
        Some(r) if matches!(r.state, ReceiptState::Registered | ReceiptState::Cancelled) => {
            render(&app, &record, p, &fiscal, &r)
        }
        _ => not_found(),
    }
}

/// The seller's name as the payout names the recipient.
fn seller_name(p: &PayoutRecord) -> String {
    let participants: serde_json::Value = serde_json::from_str(p.participant_details.expose()).unwrap_or_default();
    let r = &participants["recipient"];
    match r["full_name"].as_str() {
        Some(name) => name.to_string(),
        None => [&r["last_name"], &r["first_name"], &r["middle_name"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// A moment as the tax service's receipts print it (Moscow's time).
fn moscow_text(t: time::OffsetDateTime) -> String {
    let at = moscow_time(t);
    format!("{:02}.{:02}.{} {:02}:{:02} (МСК)", at.day(), u8::from(at.month()), at.year(), at.hour(), at.minute())
}

fn render(app: &App, record: &SessionRecord, p: &PayoutRecord, fiscal: &Fiscalization, r: &Receipt) -> Response {
    let (id, _) = crate::api::render::receipt(record, p, app.public_url());
    // The receipt is dated by the sale (the payout), whenever it registered.
    let when = moscow_text(p.finished_at.unwrap_or(p.created_at));
    let cancelled = match (r.state, r.cancel_reason) {
        (ReceiptState::Cancelled, reason) => {
            let why = match reason {
                Some(CancelReason::Refund) => "возврат средств",
                _ => "чек сформирован ошибочно",
            };
            format!("<p class=\"error\" id=\"cancelled\">Чек аннулирован {}: {why}</p>", moscow_text(r.changed_at))
        }
        _ => String::new(),
    };
    let rows: String = fiscal
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"sum\">{}</td></tr>",
                i + 1,
                escape(&s.name),
                s.quantity,
                escape(&money_text(s.amount, "rub"))
            )
        })
        .collect();
    let buyer = match (fiscal.payer_type, &fiscal.payer_name, &fiscal.payer_tax_number) {
        (PayerType::Individual, None, None) => "Физическое лицо".to_string(),
        (kind, name, number) => {
            let kind = match kind {
                PayerType::Legal => "Юридическое лицо",
                PayerType::Individual => "Физическое лицо",
                PayerType::Foreign => "Иностранная организация",
            };
            let mut text = kind.to_string();
            if let Some(n) = name {
                text.push_str(&format!(", {}", n.expose()));
            }
            if let Some(n) = number {
                text.push_str(&format!(", ИНН {}", n.expose()));
            }
            text
        }
    };
    let body = format!(
        "<p class=\"brand\">Мой налог · open131</p><h1>Чек № {id}</h1>{cancelled}\
         <dl><dt>Дата</dt><dd>{when}</dd><dt>Продавец</dt><dd>{seller}</dd><dt>ИНН продавца</dt><dd>{inn}</dd>\
         <dt>Режим НО</dt><dd>НПД</dd><dt>Покупатель</dt><dd>{buyer}</dd></dl>\
         <table><thead><tr><th>№</th><th>Наименование</th><th>Кол-во</th><th class=\"sum\">Сумма</th></tr></thead>\
         <tbody>{rows}</tbody></table>\
         <p class=\"total\">Итого: {total}</p>\
         <p class=\"hint\">open131 sandbox: the tax service's receipt as a self-employed payout registers it.</p>",
        id = escape(&id),
        seller = escape(&seller_name(p)),
        inn = escape(fiscal.tax_reference.expose()),
        buyer = escape(&buyer),
        total = escape(&money_text(fiscal.total(), "rub")),
    );
    page(StatusCode::OK, "Чек", &body)
}
