//! The nominal (escrow) and settlement accounts' reports: `report/account_balance`
//! and `report/account_statement`. Their bodies are the docs' (statements
//! pages); what the docs leave out is marked [INF] in the README.

use open131_domain::books;
use open131_domain::dates::{moscow_day_start, parse_iso_date};
use open131_domain::fx::FUNDING_CURRENCY;
use open131_domain::ledger::{Account, Book, Movement};
use open131_store::PostingRecord;
use open131_wire::answers::{
    AccountBalance, AccountBalanceResponse, AccountStatement, AccountStatementResponse, StatementBalance,
    StatementMethod, StatementTransaction, Turnover,
};
use open131_wire::api::timestamp;
use serde_json::{Map, Value};

use super::{detail, only_fields, ApiReply, Ctx};

/// Most ledger postings one day's statement reads.
pub const STATEMENT_POSTINGS_MAX: usize = 10_000;

impl Ctx<'_> {
    /// Which of the project's accounts the body's `account_number` names.
    fn own_account(&self, body: &Map<String, Value>) -> Result<(Book, String), ApiReply> {
        let field = "account_number";
        match body.get(field) {
            Some(Value::String(n)) => match books::book_of_account(self.project_id, n.trim()) {
                Some(book) => Ok((book, n.trim().to_string())),
                // Another project's account is indistinguishable from none.
                None => Err(ApiReply::invalid(vec![detail(
                    field,
                    "is not a nominal or settlement account of this project (open131 wallet show lists them)",
                )])),
            },
            None | Some(Value::Null) => Err(ApiReply::invalid(vec![detail(field, "is required")])),
            Some(_) => Err(ApiReply::invalid(vec![detail(field, "must be a string of 20 digits")])),
        }
    }

    /// The rouble wallet of `book`: (available, reserved).
    async fn book_balance(&self, book: Book) -> Result<i64, ApiReply> {
        let wallets = self.app.store.wallets(self.project_id).await.map_err(|e| ApiReply::internal(&e))?;
        let w = wallets.iter().find(|w| w.book == book && w.currency == FUNDING_CURRENCY);
        // The account's balance: money not yet paid out, reservations included.
        Ok(w.map_or(0, |w| w.available + w.reserved))
    }

    /// `report/account_balance` (also `account_balance`).
    pub(super) async fn account_balance(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        only_fields(body, &["account_number"], &[])?;
        let (book, number) = self.own_account(body)?;
        let balance = self.book_balance(book).await?;
        Ok(ApiReply::ok(&AccountBalanceResponse {
            status: "ok".into(),
            account_number: number,
            account_currency: "RUB".into(),
            balance: AccountBalance { current_balance: balance },
        }))
    }

    /// `report/account_statement`: one Moscow calendar day of an account.
    pub(super) async fn account_statement(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        only_fields(body, &["account_number", "date_from", "date_to"], &[])?;
        let (book, number) = self.own_account(body)?;
        let date = |key: &str| match body.get(key) {
            Some(Value::String(d)) => parse_iso_date(d).map_err(|why| detail(key, why)),
            _ => Err(detail(key, "is required: a date, YYYY-MM-DD")),
        };
        let (from, to) = match (date("date_from"), date("date_to")) {
            (Ok(from), Ok(to)) if from == to => (from, to),
            (Ok(_), Ok(_)) => {
                return Err(ApiReply::invalid(vec![detail("date_to", "must equal date_from: a statement is one day")]))
            }
            (from, to) => return Err(ApiReply::invalid([from.err(), to.err()].into_iter().flatten().collect())),
        };
        let start = moscow_day_start(from);
        let Some(end) = start.checked_add(time::Duration::DAY) else {
            return Err(ApiReply::invalid(vec![detail("date_from", "is past the last day the server can count")]));
        };
        let limit = STATEMENT_POSTINGS_MAX + 1;
        let statement = self
            .app
            .store
            .statement(self.project_id, book, FUNDING_CURRENCY, start, end, limit)
            .await
            .map_err(|e| ApiReply::internal(&e))?;
        if statement.postings.len() > STATEMENT_POSTINGS_MAX {
            let why = format!("more than {STATEMENT_POSTINGS_MAX} ledger postings that day: ask open131's operator");
            return Err(ApiReply::invalid(vec![detail("date_from", why)]));
        }
        let in_account =
            |account: &str| account == Account::Available.as_str() || account == Account::Reserved.as_str();
        let opening: i64 = statement.opening.iter().filter(|(a, _)| in_account(a)).map(|(_, s)| s).sum();
        let transactions: Vec<StatementTransaction> =
            statement.postings.iter().filter(|p| in_account(&p.account)).filter_map(transaction).collect();
        let total = |kind: &str| -> i64 { transactions.iter().filter(|t| t.kind == kind).map(|t| t.amount).sum() };
        let (credit, debet) = (total("credit"), total("debet"));
        Ok(ApiReply::ok(&AccountStatementResponse {
            status: "ok".into(),
            method: StatementMethod {
                name: "account_statement".into(),
                account_statement: AccountStatement {
                    date_from: from.to_string(),
                    date_to: to.to_string(),
                    account_number: number,
                    total_turnover: Turnover { debet, credit },
                    total_balance: StatementBalance { opening, closing: opening + credit - debet },
                    transactions,
                },
            },
        }))
    }
}

/// A posting that moved money into or out of the account; reservations and
/// their release stay inside it and are not transactions.
fn transaction(p: &PostingRecord) -> Option<StatementTransaction> {
    let purpose = match p.movement.as_str() {
        m if m == Movement::TopUp.as_str() => "Account top-up",
        m if m == Movement::Debit.as_str() || m == Movement::ExchangeOut.as_str() => "Payout",
        m if m == Movement::Return.as_str() || m == Movement::ReturnFromExchange.as_str() => {
            "Payout returned by the recipient's bank"
        }
        _ => return None,
    };
    Some(StatementTransaction {
        transaction_id: format!("tx_{}", p.id),
        session_id: p.session_id.clone(),
        kind: if p.amount >= 0 { "credit" } else { "debet" }.into(),
        amount: p.amount.abs(),
        currency: "RUB".into(),
        payment_date: timestamp(p.created_at),
        purpose: purpose.into(),
    })
}
