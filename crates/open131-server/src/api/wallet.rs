//! The reference and balance methods: `wallet/balance` and `fps/banks`.

use open131_domain::payout::FPS_BANKS;
use open131_wire::api::{Amount, BankWire, BanksResponse, WalletBalanceResponse, WalletWire};

use super::{ApiReply, Ctx};

impl Ctx<'_> {
    /// The project's wallets (a project that never had money shows an empty RUB wallet).
    pub(super) async fn balance(&self) -> Result<ApiReply, ApiReply> {
        let wallets = self.app.store.wallets(self.project_id).await.map_err(|e| ApiReply::internal(&e))?;
        let mut out: Vec<WalletWire> = wallets
            .into_iter()
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
pub(super) fn banks() -> ApiReply {
    ApiReply::ok(&BanksResponse {
        status: "ok".into(),
        banks: FPS_BANKS
            .iter()
            .map(|(id, en, ru)| BankWire { id: id.to_string(), eng_name: en.to_string(), ru_name: ru.to_string() })
            .collect(),
    })
}
