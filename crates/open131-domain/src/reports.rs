//! The bank's daily registers (issue 14, spec §8), as pure rules: which
//! ledger posting makes which row, and the row's fields. The store streams
//! the postings of a Moscow day with the facts of the operation each one
//! moved ([`RegisterPosting`]); [`payout_row`] and [`payment_row`] turn
//! them into rows, and [`Totals`] sums what the rows say so a register can
//! be held against the ledger.
//!
//! Which postings (one per movement, on the account whose change the row reports):
//! - payouts: the `payouts` account: a debit (or a converted payout's
//!   `exchange_in`) is `Advice`, a return (`return_to_exchange`) is `Refund`.
//!   Invariant: Σ gross of `Advice` − Σ gross of `Refund` is the day's change
//!   of the `payouts` account of the wallet.
//! - payments: a capture (on `available`) is `Advice` (`Recurrent` for a
//!   subscription's charge); a refund or chargeback paid back (on
//!   `acquiring`) is `Refund`; the release of what a partial capture left
//!   (on `acquiring`) is `Adjustment`. Invariant: Σ `Amount` of `Advice` and
//!   `Recurrent` − Σ `Amount` of `Refund` is minus the day's change of
//!   `held` + `acquiring`, and Σ `Fee` is minus the day's change of `fees`.
//!
//! Decided where the docs are silent [INF]: amounts in major units with two
//! decimals; times `YYYY-MM-DD HH:MM:SS` in Moscow time; `contract` is the
//! book's account number (the project's id for the main book); `product` is
//! the payout method (`card`, `ru`, `faster_payment_system`, …); `rrn` is
//! twelve digits derived from the posting; a chargeback is a `Refund`.

use serde_json::Value;
use time::OffsetDateTime;

use crate::ledger::{Book, Movement};

/// The two daily registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    Payouts,
    Payments,
}

impl Register {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payouts => "payouts",
            Self::Payments => "payments",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Payouts, Self::Payments].into_iter().find(|r| r.as_str() == text)
    }

    /// The column names, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Payouts => &PAYOUT_COLUMNS,
            Self::Payments => &PAYMENT_COLUMNS,
        }
    }

    /// The (movement, account) pairs whose postings make its rows.
    pub fn postings(self) -> &'static [(Movement, &'static str)] {
        match self {
            Self::Payouts => &[
                (Movement::Debit, "payouts"),
                (Movement::ExchangeIn, "payouts"),
                (Movement::Return, "payouts"),
                (Movement::ReturnToExchange, "payouts"),
            ],
            Self::Payments => &[
                (Movement::Capture, "available"),
                (Movement::Refund, "acquiring"),
                (Movement::ReleaseHold, "acquiring"),
            ],
        }
    }
}

pub const PAYOUT_COLUMNS: [&str; 14] = [
    "operationId",
    "transactionDate",
    "finishedAt",
    "typeOfPayment",
    "paymentFast",
    "paymentSessionId",
    "contract",
    "paymentSessionMerchantMetadata",
    "paymentMethodIdentity",
    "product",
    "grossLocalAmount",
    "paymentLocalAmount",
    "feesLocalAmount",
    "currency",
];

pub const PAYMENT_COLUMNS: [&str; 12] = [
    "ID",
    "paymentSessionId",
    "Contract",
    "Project name",
    "Payment type",
    "Amount",
    "Settlement",
    "Fee",
    "Transaction Date and Time",
    "Card number",
    "rrn",
    "paymentSessionMerchantMetadata",
];

/// A posting of a register's account with the facts of its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterPosting {
    pub posting_id: i64,
    pub book: Book,
    pub currency: String,
    pub movement: Movement,
    /// Signed, on the account the register reads.
    pub amount: i64,
    pub at: OffsetDateTime,
    pub session_id: Option<String>,
    pub operation_id: Option<String>,
    pub operation: Option<OperationFacts>,
}

/// What a register shows of the operation a posting moved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperationFacts {
    /// When the payout or the payment was asked for.
    pub created_at: Option<OffsetDateTime>,
    /// Its masked method (JSON), as the API shows it.
    pub method_masked: String,
    pub metadata: Option<String>,
    /// A payment's fee, charged with its capture.
    pub fee_amount: i64,
    /// A payment captured in part.
    pub partial: bool,
    /// A subscription's charge (not its first payment).
    pub recurrent: bool,
    /// The payment a refund gives back.
    pub payment_id: Option<String>,
}

/// Who the registers are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOwner {
    pub project: String,
}

impl RegisterOwner {
    fn contract(&self, book: Book) -> String {
        crate::books::account_number(&self.project, book).unwrap_or_else(|| self.project.clone())
    }
}

/// `<Project name>_YYYY-MM-DD_YYYY-MM-DD.<ext>`, as the bank names its files
/// (the two registers of a day share the name: they go to folders of their own).
pub fn file_name(project: &str, from: time::Date, to: time::Date, extension: &str) -> String {
    format!("{}_{from}_{to}.{extension}", safe_name(project))
}

/// The monthly act's file name: `<Project>_<first>_<last>_<register>.pdf`.
pub fn act_file_name(project: &str, first: time::Date, last: time::Date, register: Register) -> String {
    format!("{}_{first}_{last}_{}.pdf", safe_name(project), register.as_str())
}

/// A project id as a file or folder name: letters, digits, `-`, `_` and
/// (not first) `.`; anything else, a `/` above all, becomes `_`, so no id
/// reaches outside the folder it is written to.
pub fn safe_name(project: &str) -> String {
    project
        .chars()
        .enumerate()
        .map(|(i, c)| if c.is_ascii_alphanumeric() || "-_".contains(c) || (c == '.' && i > 0) { c } else { '_' })
        .collect()
}

/// Minor units as major with two decimals: `-1234` → `-12.34`.
pub fn major(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `YYYY-MM-DD HH:MM:SS` in Moscow time.
pub fn moscow_text(t: OffsetDateTime) -> String {
    let m = crate::dates::moscow_time(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        m.year(),
        u8::from(m.month()),
        m.day(),
        m.hour(),
        m.minute(),
        m.second()
    )
}

/// A row of the payouts register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRow {
    pub fields: [String; 14],
    pub kind: RowKind,
    /// Minor units, positive.
    pub gross: i64,
}

/// A row of the payments register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub fields: [String; 12],
    pub kind: RowKind,
    /// Minor units: the amount (positive), the settlement (signed), the fee (≤ 0).
    pub amount: i64,
    pub settlement: i64,
    pub fee: i64,
}

/// A row's `typeOfPayment` / `Payment type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Advice,
    Refund,
    Adjustment,
    Recurrent,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Advice => "Advice",
            Self::Refund => "Refund",
            Self::Adjustment => "Adjustment",
            Self::Recurrent => "Recurrent",
        }
    }
}

/// The partner's metadata as it sent it: a string's text, any other JSON compact.
fn metadata(facts: Option<&OperationFacts>) -> String {
    let Some(stored) = facts.and_then(|f| f.metadata.as_deref()) else { return String::new() };
    match serde_json::from_str::<Value>(stored) {
        Ok(Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => stored.to_string(),
    }
}

fn method(facts: Option<&OperationFacts>) -> Value {
    facts.and_then(|f| serde_json::from_str(&f.method_masked).ok()).unwrap_or(Value::Null)
}

/// A card as the registers show it (`4...1878`), or the masked account,
/// phone or address of another method.
fn identity(m: &Value) -> String {
    let text = |p: &str| m.pointer(p).and_then(Value::as_str).map(str::to_string);
    if let (Some(bin), Some(last4)) = (text("/card/bin"), text("/card/last4")) {
        return format!("{}...{last4}", bin.chars().next().unwrap_or('*'));
    }
    let paths = [
        "/bank_account/ru/account",
        "/bank_account/faster_payment_system/phone",
        "/faster_payment_system/phone",
        "/bank_account/iban/account",
        "/crypto_wallet/ton/address",
        "/tax/payee/account",
    ];
    let wallet = m.pointer("/wallet/type").and_then(Value::as_str).and_then(|k| text(&format!("/wallet/{k}/account")));
    paths.iter().find_map(|p| text(p)).or(wallet).unwrap_or_default()
}

fn product(m: &Value) -> String {
    let kind = m["type"].as_str().unwrap_or_default();
    match m.pointer("/bank_account/system_type").and_then(Value::as_str) {
        Some(system) if kind == "bank_account" => system.to_string(),
        _ => kind.to_string(),
    }
}

/// The payouts register's row of a posting on the `payouts` account.
pub fn payout_row(owner: &RegisterOwner, p: &RegisterPosting) -> Option<PayoutRow> {
    let kind = match p.movement {
        Movement::Debit | Movement::ExchangeIn => RowKind::Advice,
        Movement::Return | Movement::ReturnToExchange => RowKind::Refund,
        _ => return None,
    };
    let facts = p.operation.as_ref();
    let m = method(facts);
    let gross = p.amount.abs();
    let fast = m.pointer("/bank_account/ru/is_fast").and_then(Value::as_bool).unwrap_or(false);
    let fields = [
        p.operation_id.clone().unwrap_or_default(),
        facts.and_then(|f| f.created_at).map(moscow_text).unwrap_or_default(),
        moscow_text(p.at),
        kind.as_str().to_string(),
        if fast { "1" } else { "0" }.to_string(),
        p.session_id.clone().unwrap_or_default(),
        owner.contract(p.book),
        metadata(facts),
        identity(&m),
        product(&m),
        major(gross),
        major(gross),
        major(0),
        p.currency.to_uppercase(),
    ];
    Some(PayoutRow { fields, kind, gross })
}

/// The payments register's row of a capture, a refund or what a partial capture released.
pub fn payment_row(owner: &RegisterOwner, p: &RegisterPosting) -> Option<PaymentRow> {
    let facts = p.operation.as_ref();
    let amount = p.amount.abs();
    let (kind, settlement, fee) = match p.movement {
        Movement::Capture => {
            let fee = facts.map_or(0, |f| f.fee_amount);
            let kind = if facts.is_some_and(|f| f.recurrent) { RowKind::Recurrent } else { RowKind::Advice };
            (kind, amount - fee, -fee)
        }
        Movement::Refund => (RowKind::Refund, -amount, 0),
        Movement::ReleaseHold if facts.is_some_and(|f| f.partial) => (RowKind::Adjustment, 0, 0),
        _ => return None,
    };
    let fields = [
        p.operation_id.clone().unwrap_or_default(),
        p.session_id.clone().unwrap_or_default(),
        owner.contract(p.book),
        owner.project.clone(),
        kind.as_str().to_string(),
        major(amount),
        major(settlement),
        major(fee),
        moscow_text(p.at),
        identity(&method(facts)),
        rrn(p.posting_id),
        metadata(facts),
    ];
    Some(PaymentRow { fields, kind, amount, settlement, fee })
}

/// Twelve digits, the same for the same posting.
fn rrn(posting_id: i64) -> String {
    // A multiplicative hash keeps neighbouring postings from neighbouring numbers.
    let mixed = (posting_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_000_000_000;
    format!("{mixed:012}")
}

/// What a register's rows add up to, per currency, in minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub rows: u64,
    /// Per currency: (Σ advice, Σ refund) for payouts; (Σ advice and
    /// recurrent, Σ refund, Σ fee, Σ settlement, Σ adjustment) for payments.
    pub by_currency: std::collections::BTreeMap<String, [i64; 5]>,
    /// Per currency, how many rows each sum above counts (fee and
    /// settlement: every payments row).
    pub counts: std::collections::BTreeMap<String, [u64; 5]>,
}

impl Totals {
    fn add(&mut self, currency: &str, slots: &[(usize, i64)]) {
        self.rows += 1;
        let sums = self.by_currency.entry(currency.to_string()).or_default();
        let counts = self.counts.entry(currency.to_string()).or_default();
        for &(slot, amount) in slots {
            sums[slot] += amount;
            counts[slot] += 1;
        }
    }

    pub fn add_payout(&mut self, currency: &str, row: &PayoutRow) {
        let slot = if row.kind == RowKind::Refund { 1 } else { 0 };
        self.add(currency, &[(slot, row.gross)]);
    }

    pub fn add_payment(&mut self, currency: &str, row: &PaymentRow) {
        let slot = match row.kind {
            RowKind::Advice | RowKind::Recurrent => 0,
            RowKind::Refund => 1,
            RowKind::Adjustment => 4,
        };
        self.add(currency, &[(slot, row.amount), (2, row.fee), (3, row.settlement)]);
    }
}

/// A line of the monthly act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActLine {
    pub text: String,
    /// A heading: larger and bold.
    pub heading: bool,
}

/// The monthly act of services (spec §8: "payouts and payments templates"),
/// in Russian, from a month's register totals: parties, period, services
/// with their counts and sums per currency, the bank's fee, signatures.
/// `month` is its first day; `last` its last.
pub fn act(register: Register, project: &str, first: time::Date, last: time::Date, totals: &Totals) -> Vec<ActLine> {
    let line = |text: String| ActLine { text, heading: false };
    let dd = |d: time::Date| format!("{:02}.{:02}.{}", d.day(), u8::from(d.month()), d.year());
    let subject = match register {
        Register::Payouts => "об оказании услуг по осуществлению выплат",
        Register::Payments => "об оказании услуг по приёму платежей по картам",
    };
    let mut lines = vec![
        ActLine {
            text: format!("АКТ № {project}-{}-{:02}", first.year(), u8::from(first.month())), heading: true
        },
        ActLine { text: subject.to_string(), heading: true },
        line(format!("г. Москва, {}", dd(last))),
        line(String::new()),
        line("Исполнитель: АО «Банк 131»".into()),
        line(format!("Заказчик: {project}")),
        line(format!("Период: с {} по {} (время московское)", dd(first), dd(last))),
        line(String::new()),
        line("Исполнитель оказал, а Заказчик принял следующие услуги:".into()),
    ];
    let mut n = 0;
    let mut item = |text: String| {
        n += 1;
        line(format!("{n}. {text}"))
    };
    let zero = ([0; 5], [0; 5]);
    let currencies: Vec<&String> = totals.by_currency.keys().collect();
    let rub = "rub".to_string();
    for currency in if currencies.is_empty() { vec![&rub] } else { currencies } {
        let (sums, counts) = totals
            .by_currency
            .get(currency)
            .map(|s| (*s, totals.counts.get(currency).copied().unwrap_or_default()))
            .unwrap_or(zero);
        let money = |minor: i64| format!("{} {}", major(minor), currency.to_uppercase());
        match register {
            Register::Payouts => {
                lines.push(item(format!("Выплаты (операций: {}) на сумму {}", counts[0], money(sums[0]))));
                lines.push(item(format!(
                    "Возвраты выплат банками получателей (операций: {}) на сумму {}",
                    counts[1],
                    money(sums[1])
                )));
                lines.push(item(format!("Итого выплачено за период: {}", money(sums[0] - sums[1]))));
                lines.push(item(format!("Вознаграждение Исполнителя: {}", money(0))));
            }
            Register::Payments => {
                lines.push(item(format!("Платежи по картам (операций: {}) на сумму {}", counts[0], money(sums[0]))));
                lines.push(item(format!("Возвраты платежей (операций: {}) на сумму {}", counts[1], money(sums[1]))));
                lines.push(item(format!("Частичные отмены (операций: {}) на сумму {}", counts[4], money(sums[4]))));
                lines.push(item(format!("Вознаграждение Исполнителя (комиссия): {}", money(-sums[2]))));
                lines.push(item(format!("К перечислению Заказчику: {}", money(sums[3]))));
            }
        }
    }
    lines.extend([
        line(String::new()),
        line("Услуги оказаны полностью и в срок. Заказчик претензий по объёму, качеству и срокам".into()),
        line("оказания услуг не имеет.".into()),
        line(String::new()),
        line("Исполнитель: ____________________ / АО «Банк 131» /".into()),
        line(format!("Заказчик: ____________________ / {project} /")),
        line(String::new()),
        line("Акт подписывается квалифицированной электронной подписью и возвращается".into()),
        line("Исполнителю в течение 5 рабочих дней.".into()),
    ]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn posting(movement: Movement, amount: i64, facts: OperationFacts) -> RegisterPosting {
        RegisterPosting {
            posting_id: 7,
            book: Book::Main,
            currency: "rub".into(),
            movement,
            amount,
            // 23:30 UTC is 02:30 the next day in Moscow.
            at: datetime!(2026-12-01 23:30:05 UTC),
            session_id: Some("ps_1".into()),
            operation_id: Some("po_1".into()),
            operation: Some(facts),
        }
    }

    #[test]
    fn a_payout_and_its_return_make_advice_and_refund_rows() {
        let owner = RegisterOwner { project: "shop".into() };
        let facts = OperationFacts {
            created_at: Some(datetime!(2026-12-01 20:59:59 UTC)),
            method_masked: r#"{"type":"bank_account","bank_account":{"system_type":"ru","ru":{"bik":"044525974","account":"40817***********9535","is_fast":true}}}"#.into(),
            metadata: Some(r#""order, 7""#.into()),
            ..OperationFacts::default()
        };
        let row = payout_row(&owner, &posting(Movement::Debit, 150_050, facts.clone())).unwrap();
        assert_eq!(
            row.fields,
            [
                "po_1",
                "2026-12-01 23:59:59",
                "2026-12-02 02:30:05",
                "Advice",
                "1",
                "ps_1",
                "shop",
                "order, 7",
                "40817***********9535",
                "ru",
                "1500.50",
                "1500.50",
                "0.00",
                "RUB"
            ]
        );
        let back = payout_row(&owner, &posting(Movement::Return, -150_050, facts)).unwrap();
        assert_eq!((back.kind, back.gross, back.fields[3].as_str()), (RowKind::Refund, 150_050, "Refund"));
        assert!(payout_row(&owner, &posting(Movement::Reserve, 1, OperationFacts::default())).is_none());
    }

    #[test]
    fn payments_rows_carry_fee_settlement_and_the_masked_card() {
        let owner = RegisterOwner { project: "shop".into() };
        let card = r#"{"type":"card","card":{"brand":"visa","last4":"1878","bin":"424242"}}"#;
        let facts = OperationFacts { method_masked: card.into(), fee_amount: 250, ..OperationFacts::default() };
        let advice = payment_row(&owner, &posting(Movement::Capture, 10_000, facts.clone())).unwrap();
        assert_eq!((advice.amount, advice.settlement, advice.fee), (10_000, 9_750, -250));
        assert_eq!(&advice.fields[4..10], ["Advice", "100.00", "97.50", "-2.50", "2026-12-02 02:30:05", "4...1878"]);
        let refund = payment_row(&owner, &posting(Movement::Refund, 4_000, facts.clone())).unwrap();
        assert_eq!((refund.kind, refund.settlement, refund.fee), (RowKind::Refund, -4_000, 0));
        let voided = posting(Movement::ReleaseHold, 10_000, facts.clone());
        assert!(payment_row(&owner, &voided).is_none(), "a whole hold released is no operation");
        let partial = OperationFacts { partial: true, ..facts.clone() };
        let rest = payment_row(&owner, &posting(Movement::ReleaseHold, 3_000, partial)).unwrap();
        assert_eq!((rest.kind, rest.settlement), (RowKind::Adjustment, 0));
        let charge = OperationFacts { recurrent: true, ..facts };
        assert_eq!(payment_row(&owner, &posting(Movement::Capture, 10, charge)).unwrap().kind, RowKind::Recurrent);
        assert_eq!(rrn(7), rrn(7));
        assert_eq!(rrn(7).len(), 12);
    }

    #[test]
    fn names_and_numbers_as_the_bank_writes_them() {
        let day = time::macros::date!(2026 - 12 - 01);
        assert_eq!(file_name("Shop 1", day, day, "csv"), "Shop_1_2026-12-01_2026-12-01.csv");
        assert_eq!((major(-1234), major(5), major(100)), ("-12.34".into(), "0.05".into(), "1.00".into()));
        assert_eq!(Register::parse("payments"), Some(Register::Payments));
        assert_eq!(safe_name("../etc/x"), "_._etc_x");
        assert_eq!(act_file_name("a/b", day, day, Register::Payouts), "a_b_2026-12-01_2026-12-01_payouts.pdf");
    }
}
