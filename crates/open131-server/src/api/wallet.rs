//! The reference and balance methods: `wallet/balance` and `fps/banks`.

use open131_domain::fps;
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
        banks: fps::banks()
            .iter()
            .map(|b| BankWire { id: b.id.clone(), eng_name: b.eng_name.clone(), ru_name: b.ru_name.clone() })
            .collect(),
    })
}
