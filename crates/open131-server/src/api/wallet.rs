//! The reference and balance methods: `wallet/balance` and `fps/banks`.

use open131_domain::fps;
use open131_domain::ledger::Book;
use open131_wire::api::{Amount, BankWire, BanksResponse, WalletBalanceResponse, WalletWire};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;

use super::{detail, only_fields, ApiReply, Ctx};

impl Ctx<'_> {
    /// The project's wallets (a project that never had money shows an empty
    /// RUB wallet). `request_datetime` (the SDK sends it, ATOM format) is
    /// checked as a timestamp; the balance is always the current one (README).
    pub(super) async fn balance(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        only_fields(body, &["request_datetime"], &[])?;
        match body.get("request_datetime") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if time::OffsetDateTime::parse(t, &Rfc3339).is_ok() => {}
            Some(_) => {
                let why = "must be an RFC 3339 (ATOM) timestamp, e.g. 2024-01-31T12:00:00+03:00";
                return Err(ApiReply::invalid(vec![detail("request_datetime", why)]));
            }
        }
        let wallets = self.app.store.wallets(self.project_id).await.map_err(|e| ApiReply::internal(&e))?;
        // The payout balance only: the nominal and settlement accounts have report/account_balance.
        let mut out: Vec<WalletWire> = wallets
            .into_iter()
            .filter(|w| w.book == Book::Main)
            .map(|w| WalletWire {
                id: format!("w_{}", w.currency),
                amount_details: Amount { amount: w.available, currency: w.currency },
            })
            .collect();
        if out.is_empty() {
            out.push(WalletWire { id: "w_rub".into(), amount_details: Amount { amount: 0, currency: "rub".into() } });
        }
        Ok(ApiReply::ok(&WalletBalanceResponse { status: "ok".into(), wallets: out }))
    }
}

/// The banks that take FPS payouts.
pub(super) fn banks(body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
    only_fields(body, &[], &[])?;
    Ok(ApiReply::ok(&BanksResponse {
        status: "ok".into(),
        banks: fps::banks()
            .iter()
            .map(|b| BankWire { id: b.id.clone(), eng_name: b.eng_name.clone(), ru_name: b.ru_name.clone() })
            .collect(),
    }))
}
