//! Session records → wire shapes, in the naming of an API version: the
//! request path's for answers, the project's webhook setting for webhooks.

use open131_domain::payout_flow::{self, PayoutState};
use open131_domain::session::{self, ApiVersion};
use open131_store::SessionRecord;
use open131_wire::api::{timestamp, Amount, Amounts, ApiError, PayoutWire, RefundWire, SessionWire};
use serde_json::Value;

fn json(text: &Option<String>) -> Option<Value> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

/// A failed payout's error (also the session's: the failure cancelled it).
fn error_of(state: Option<PayoutState>) -> Option<ApiError> {
    match state? {
        PayoutState::Failed(code) => Some(ApiError {
            code: code.as_str().to_string(),
            description: code.description().to_string(),
            details: Vec::new(),
        }),
        _ => None,
    }
}

pub fn session(record: &SessionRecord, naming: ApiVersion) -> SessionWire {
    let v2 = naming == ApiVersion::V2;
    let payout_state = record.payout().map(|p| p.state);
    let payouts: Option<Vec<PayoutWire>> = record.payout().map(|p| {
        let method: Option<Value> = serde_json::from_str(&p.method_masked).ok();
        // A converted payout shows what it costs in roubles, as the bank's ready_to_confirm does.
        let money = || match &p.exchange {
            Some(e) => Amount { amount: e.charged_amount, currency: e.charged_currency.clone() },
            None => Amount { amount: p.amount, currency: p.currency.clone() },
        };
        let refunds = record
            .refund
            .iter()
            .map(|r| RefundWire {
                id: r.id.clone(),
                status: "accepted".into(),
                created_at: timestamp(r.created_at),
                finished_at: Some(timestamp(r.created_at)),
                amount_details: money(),
                amounts: Amounts { gross: money(), net: money() },
                is_chargeback: false,
            })
            .collect();
        vec![PayoutWire {
            id: p.id.clone(),
            status: payout_flow::wire_status(p.state).to_string(),
            created_at: timestamp(p.created_at),
            finished_at: record.finished_at.map(timestamp),
            customer: json(&p.customer),
            payment_method: if v2 { None } else { method.clone() },
            payout_details: if v2 { method } else { None },
            // A verification (amount 0) moves no money and shows none.
            amount_details: (p.amount > 0).then(money),
            participant_details: serde_json::from_str(p.participant_details.expose()).ok(),
            metadata: json(&p.metadata),
            error: error_of(Some(p.state)),
            refunds,
        }]
    });
    SessionWire {
        id: record.id.clone(),
        status: session::wire_status(record.state).to_string(),
        created_at: timestamp(record.created_at),
        updated_at: timestamp(record.updated_at),
        finished_at: record.finished_at.map(timestamp),
        next_action: (payout_state == Some(PayoutState::AwaitingConfirm)).then(|| "confirm".to_string()),
        payments: if v2 { None } else { payouts.clone() },
        payout_list: if v2 { payouts } else { None },
        error: error_of(payout_state),
        submerchant: record.submerchant.clone(),
    }
}
