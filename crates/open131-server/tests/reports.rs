//! The daily registers (issue 14) from real operations over HTTP with a
//! manual clock, on the backend the environment selects: every register
//! total reconciles to the ledger's postings of its Moscow day over random
//! operation sequences (payouts paid, declined and returned by the bank,
//! card payments captured in whole or in part, refunds, chargebacks, all
//! crossing midnight); the CSV's exact text; the XLSX read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{id_of, server, TestServer};
use open131_domain::dates::{moscow_day_start, moscow_today};
use open131_domain::reports::{Register, Totals};
use open131_domain::settings::{CaptureMode, FeeRate};
use open131_server::reports;
use open131_server::Clock as _;
use open131_store::SettingsChange;
use serde_json::{json, Value};

const PLAIN_CARD: &str = "4242424242424242";

fn settings() -> SettingsChange {
    SettingsChange {
        auto_confirm: Some(true),
        capture: Some(CaptureMode::Hold),
        capture_timeout_s: Some(7 * 86_400),
        payment_fee: FeeRate::parse("2.5%"),
        ..SettingsChange::default()
    }
}

fn card_payout(amount: i64) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000004940"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": amount, "currency": "rub"}, "metadata": "order-1"
    })
}

/// A payout to a Russian account of 131.10 roubles: the sandbox's bank returns it.
fn returned_payout() -> Value {
    let bik = open131_domain::ident::Bik::parse("049205131").unwrap();
    let account = open131_domain::ident::complete_account(&bik, "4070281020000000002").unwrap();
    json!({
        "payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {
            "bik": "049205131", "account": account, "full_name": "Иванов Иван Иванович",
            "description": "Оплата по договору 17", "is_fast": true}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": 13_110, "currency": "rub"}
    })
}

fn payment(amount: i64) -> Value {
    json!({
        "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": PLAIN_CARD,
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}},
        "amount_details": {"amount": amount, "currency": "rub"},
        "customer": {"reference": "lucky"}, "metadata": "cart-9"
    })
}

async fn ok(s: &TestServer, method: &str, body: &Value) -> Value {
    let a = s.call("v1", method, body).await;
    assert_eq!(a.status, 200, "{method}: {}", a.text);
    a.body
}

/// A small deterministic generator (xorshift64*), so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }
}

/// Payments captured so far and what is left to refund of each.
type Captured = Vec<(String, i64)>;

async fn random_operation(s: &TestServer, rng: &mut Rng, captured: &mut Captured) {
    match rng.below(6) {
        0 => {
            ok(s, "session/init/payout", &card_payout(rng.between(100, 50_000))).await;
        }
        1 => {
            ok(s, "session/init/payout", &returned_payout()).await;
        }
        // The issuer's decline: no money moves, no row.
        2 => {
            ok(s, "session/init/payout", &card_payout(13_102)).await;
        }
        3 => {
            let amount = rng.between(1_000, 50_000);
            let id = id_of(&s.call("v1", "session/init/payment", &payment(amount)).await);
            s.settle().await;
            s.advance(1).await;
            let take = if rng.below(2) == 0 { amount } else { rng.between(1, amount - 1) };
            let body = json!({"session_id": id, "amount_details": {"amount": take, "currency": "rub"}});
            ok(s, "session/capture", &body).await;
            captured.push((id, take));
        }
        _ if captured.iter().all(|(_, left)| *left == 0) => {}
        kind => {
            let open: Vec<usize> = (0..captured.len()).filter(|&i| captured[i].1 > 0).collect();
            let (id, left) = &mut captured[open[rng.below(open.len() as u64) as usize]];
            let amount = rng.between(1, *left);
            *left -= amount;
            let method = if kind == 4 { "session/refund" } else { "session/chargeback" };
            ok(s, method, &json!({"session_id": id, "amount_details": {"amount": amount, "currency": "rub"}})).await;
        }
    }
    s.settle().await;
}

/// The day's change of each ledger account of the project's wallets in
/// `currency` (every book), from the store's own sums.
async fn ledger_change(s: &TestServer, day: time::Date, currency: &str) -> BTreeMap<String, i64> {
    let (start, end) = reports::day_span(day).unwrap();
    let mut change = BTreeMap::new();
    for w in s.app.store.wallets("alpha").await.unwrap().into_iter().filter(|w| w.currency == currency) {
        for (at, sign) in [(end, 1), (start, -1)] {
            let sums = s.app.store.statement("alpha", w.book, currency, at, at, 0).await.unwrap().opening;
            for (account, sum) in sums {
                *change.entry(account).or_insert(0) += sign * sum;
            }
        }
    }
    change
}

async fn register(s: &TestServer, register: Register, day: time::Date) -> (Totals, String) {
    let mut csv = Vec::new();
    let totals = reports::write_csv(s.app.store.as_ref(), "alpha", register, day, &mut csv).await.unwrap();
    (totals, String::from_utf8(csv).unwrap())
}

/// Every register total of every day equals the ledger's movement of that
/// day, whatever the operations and wherever midnight falls among them.
#[tokio::test]
async fn every_register_reconciles_to_the_ledger_over_random_operations() {
    for seed in [1_u64, 0x5EED, 0xC0FFEE] {
        let (s, _r) = server(settings()).await;
        s.app.store.topup("alpha", "rub", 100_000_000, common::START).await.unwrap();
        let mut rng = Rng(seed);
        let mut captured = Captured::new();
        for _ in 0..30 {
            random_operation(&s, &mut rng, &mut captured).await;
            s.advance(rng.between(0, 3 * 3_600)).await;
        }
        s.advance(86_400).await;
        let (first, last) = (moscow_today(common::START), moscow_today(s.clock.now()));
        assert!(last - first >= time::Duration::days(2), "the operations cross midnight (seed {seed})");
        let mut rows = [0u64; 2];
        let mut day = first;
        while day <= last {
            let change = ledger_change(&s, day, "rub").await;
            let at = |account: &str| change.get(account).copied().unwrap_or(0);
            let (payouts, text) = register(&s, Register::Payouts, day).await;
            assert_eq!(text.lines().count() as u64, payouts.rows + 1, "a header and a line per row");
            let t = payouts.by_currency.get("rub").copied().unwrap_or_default();
            assert_eq!(t[0] - t[1], at("payouts"), "payouts of {day} (seed {seed}):\n{text}");
            let (payments, text) = register(&s, Register::Payments, day).await;
            let t = payments.by_currency.get("rub").copied().unwrap_or_default();
            assert_eq!(t[0] - t[1], -(at("held") + at("acquiring")), "payments of {day} (seed {seed}):\n{text}");
            assert_eq!(t[2], -at("fees"), "fees of {day} (seed {seed}):\n{text}");
            assert_eq!(t[3], t[0] + t[2] - t[1], "settlement of {day}");
            rows[0] += payouts.rows;
            rows[1] += payments.rows;
            day = day.next_day().unwrap();
        }
        assert!(rows[0] > 3 && rows[1] > 3, "the registers were not empty (seed {seed}): {rows:?}");
        s.stop().await;
    }
}

/// The CSV byte for byte: a payout, a partial capture with its fee and
/// the released rest, a refund; a day without operations has the header alone.
#[tokio::test]
async fn the_csv_registers_are_exactly_the_banks_shape() {
    let (s, _r) = server(settings()).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    let payout = id_of(&s.call("v1", "session/init/payout", &card_payout(150_050)).await);
    s.settle().await;
    s.advance(2).await;
    let session = ok(&s, "session/status", &json!({"session_id": payout})).await;
    let payout_id = session["session"]["payments"][0]["id"].as_str().unwrap().to_string();

    let paid = id_of(&s.call("v1", "session/init/payment", &payment(10_000)).await);
    s.settle().await;
    s.advance(1).await;
    ok(&s, "session/capture", &json!({"session_id": paid, "amount_details": {"amount": 6_000, "currency": "rub"}}))
        .await;
    s.advance(60).await;
    let refund = json!({"session_id": paid, "amount_details": {"amount": 1_000, "currency": "rub"}});
    let session = ok(&s, "session/refund", &refund).await;
    s.settle().await;
    s.advance(60).await;
    let p = &session["session"]["acquiring_payments"][0];
    let (payment_id, refund_id) = (p["id"].as_str().unwrap(), p["refunds"][0]["id"].as_str().unwrap());

    let day = moscow_today(common::START);
    let (_, text) = register(&s, Register::Payouts, day).await;
    let expected = format!(
        "operationId,transactionDate,finishedAt,typeOfPayment,paymentFast,paymentSessionId,contract,\
         paymentSessionMerchantMetadata,paymentMethodIdentity,product,grossLocalAmount,paymentLocalAmount,\
         feesLocalAmount,currency\n\
         {payout_id},2026-11-30 15:00:00,2026-11-30 15:00:02,Advice,0,{payout},alpha,order-1,2...4940,card,\
         1500.50,1500.50,0.00,RUB\n"
    );
    assert_eq!(text, expected);
    let (totals, text) = register(&s, Register::Payments, day).await;
    let rrn = |line: &str| line.split(',').nth(10).unwrap().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        "ID,paymentSessionId,Contract,Project name,Payment type,Amount,Settlement,Fee,Transaction Date and Time,\
         Card number,rrn,paymentSessionMerchantMetadata"
    );
    assert_eq!(
        lines[1],
        format!(
            "{payment_id},{paid},alpha,alpha,Advice,60.00,58.50,-1.50,2026-11-30 15:00:03,4...4242,{},cart-9",
            rrn(lines[1])
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "{payment_id},{paid},alpha,alpha,Adjustment,40.00,0.00,0.00,2026-11-30 15:00:03,4...4242,{},cart-9",
            rrn(lines[2])
        )
    );
    assert_eq!(
        lines[3],
        format!(
            "{refund_id},{paid},alpha,alpha,Refund,10.00,-10.00,0.00,2026-11-30 15:02:03,4...4242,{},cart-9",
            rrn(lines[3])
        )
    );
    assert!(lines[1..].iter().all(|l| rrn(l).len() == 12 && rrn(l).bytes().all(|b| b.is_ascii_digit())));
    assert_eq!(totals.by_currency["rub"], [6_000, 1_000, -150, 4_850, 4_000]);

    let (empty, text) = register(&s, Register::Payouts, day.next_day().unwrap()).await;
    assert_eq!((empty.rows, text.lines().count()), (0, 1), "an empty register is its header: {text}");
    assert!(moscow_day_start(day) < s.clock.now());
}

/// The XLSX holds the CSV's rows, read back with a spreadsheet reader.
#[tokio::test]
async fn the_xlsx_register_reads_back_as_the_csv() {
    use calamine::Reader as _;
    let (s, _r) = server(settings()).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    for amount in [1_000, 2_000, 3_000] {
        ok(&s, "session/init/payout", &card_payout(amount)).await;
    }
    s.settle().await;
    s.advance(2).await;
    let day = moscow_today(common::START);
    let (_, text) = register(&s, Register::Payouts, day).await;
    let mut bytes = std::io::Cursor::new(Vec::new());
    let totals = reports::write_xlsx(s.app.store.as_ref(), "alpha", Register::Payouts, day, &mut bytes).await.unwrap();
    assert_eq!(totals.rows, 3);
    bytes.set_position(0);
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(bytes).unwrap();
    let sheet = book.worksheet_range("payouts").unwrap();
    let cells: Vec<Vec<String>> = sheet.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    let mut csv = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    let lines: Vec<Vec<String>> = csv.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    assert_eq!(cells, lines);
}

/// The monthly act as a PDF, Cyrillic in its bundled font: its text read
/// back with poppler's `pdftotext` holds the month's totals, and its page
/// is rendered to PNG (`target/screenshots/act-*.png`) to be looked at.
#[tokio::test]
async fn the_monthly_act_is_a_pdf_with_the_months_totals() {
    let Some(poppler) = std::env::var_os("OPEN131_TEST_POPPLER").map(std::path::PathBuf::from) else {
        eprintln!("OPEN131_TEST_POPPLER is not set (scripts/test sets it): skipped");
        return;
    };
    let (s, _r) = server(settings()).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    for amount in [1_000, 2_050] {
        ok(&s, "session/init/payout", &card_payout(amount)).await;
    }
    let paid = id_of(&s.call("v1", "session/init/payment", &payment(10_000)).await);
    s.settle().await;
    s.advance(1).await;
    ok(&s, "session/capture", &json!({"session_id": paid})).await;
    s.advance(2).await;
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (register, expected) in [
        (
            Register::Payouts,
            vec![
                "АКТ № alpha-2026-11",
                "об оказании услуг по осуществлению выплат",
                "Период: с 01.11.2026 по 30.11.2026",
                "1. Выплаты (операций: 2) на сумму 30.50 RUB",
                "3. Итого выплачено за период: 30.50 RUB",
            ],
        ),
        (
            Register::Payments,
            vec![
                "об оказании услуг по приёму платежей по картам",
                "1. Платежи по картам (операций: 1) на сумму 100.00 RUB",
                "4. Вознаграждение Исполнителя (комиссия): 2.50 RUB",
                "5. К перечислению Заказчику: 97.50 RUB",
            ],
        ),
    ] {
        let pdf = reports::act_pdf(s.app.store.as_ref(), "alpha", register, 2026, time::Month::November).await.unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        assert!(pdf.len() < 500_000, "one embedded font: {} bytes", pdf.len());
        let file = s.dir.path().join(format!("act-{}.pdf", register.as_str()));
        std::fs::write(&file, &pdf).unwrap();
        let text = std::process::Command::new(poppler.join("pdftotext"))
            .args(["-layout"])
            .arg(&file)
            .arg("-")
            .output()
            .unwrap();
        assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
        let text = String::from_utf8(text.stdout).unwrap();
        for line in expected {
            assert!(text.contains(line), "{line:?} not in the act:\n{text}");
        }
        let png = shots.join(format!("act-{}", register.as_str()));
        let rendered = std::process::Command::new(poppler.join("pdftoppm"))
            .args(["-png", "-r", "60", "-singlefile"])
            .arg(&file)
            .arg(&png)
            .status()
            .unwrap();
        assert!(rendered.success());
        assert!(std::fs::metadata(png.with_extension("png")).unwrap().len() > 1_000, "a rendered page");
    }
    let (empty, _, _, _) = reports::month_span(2026, time::Month::October).unwrap();
    assert!(empty < common::START);
}

/// The admin API serves the registers and acts as files, behind the admin
/// token, refusing a bad query by name.
#[tokio::test]
async fn the_admin_api_serves_registers_and_acts() {
    let (s, _r) = server(settings()).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    ok(&s, "session/init/payout", &card_payout(1_000)).await;
    s.settle().await;
    s.advance(2).await;
    let mut app = s.app.clone();
    app.admin_token = Some("report-token".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}/admin/v1/reports", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    let get = |path: &str, token: &str| {
        let request = s.http.get(format!("{admin}/{path}")).bearer_auth(token);
        async move {
            let r = request.send().await.unwrap();
            let head = |h: &str| r.headers().get(h).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            let (kind, disposition) = (head("content-type"), head("content-disposition"));
            (r.status().as_u16(), kind, disposition, r.bytes().await.unwrap().to_vec())
        }
    };
    let day = moscow_today(common::START);
    let (code, kind, disposition, body) = get(&format!("alpha/payouts?date={day}"), "report-token").await;
    assert_eq!((code, kind.as_str()), (200, "text/csv; charset=utf-8"));
    assert_eq!(disposition, format!("attachment; filename=\"alpha_{day}_{day}.csv\""));
    assert_eq!(String::from_utf8(body).unwrap(), register(&s, Register::Payouts, day).await.1);
    let (code, kind, _, body) = get(&format!("alpha/payments?date={day}&format=xlsx"), "report-token").await;
    assert_eq!((code, kind.as_str()), (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"));
    assert!(body.starts_with(b"PK"), "a zip container");
    let (code, kind, disposition, body) = get("alpha/act?month=2026-11&register=payouts", "report-token").await;
    assert_eq!((code, kind.as_str()), (200, "application/pdf"));
    assert!(
        disposition.contains("alpha_2026-11-01_2026-11-30_payouts.pdf") && body.starts_with(b"%PDF-"),
        "{disposition}"
    );

    for (path, named) in [
        ("alpha/payouts", "date is required"),
        ("alpha/payouts?date=2026-13-01", "date must be"),
        ("alpha/payouts?date=2026-11-30&format=pdf", "format must be"),
        ("alpha/payouts?date=2026-11-30&colour=red", "colour"),
        ("alpha/act?month=2026-11", "register must be"),
        ("alpha/act?month=2026-11&register=payouts&date=2026-11-30", "date and format"),
        ("alpha/ledger?date=2026-11-30", "payouts, payments or act"),
        ("alpha/payouts?date=9999-12-31", "past the last day"),
        ("alpha/act?month=9999-12&register=payouts", "past the last one"),
    ] {
        let (code, _, _, body) = get(path, "report-token").await;
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((code, answer["error"]["code"].as_str()), (400, Some("invalid_request")), "{path}: {answer}");
        assert!(answer["error"]["description"].as_str().unwrap().contains(named), "{path}: {answer}");
    }
    assert_eq!(get(&format!("alpha/payouts?date={day}"), "wrong").await.0, 401);
    assert_eq!(get(&format!("nobody/payouts?date={day}"), "report-token").await.0, 404);
}

/// What the test's SMTP server received: each message's recipients and data.
type Mailbox = std::sync::Arc<std::sync::Mutex<Vec<(Vec<String>, String)>>>;

/// A small SMTP server on port 0 (enough of RFC 5321 for one client): it
/// refuses the first `refuse` messages with a 451 and keeps the rest.
async fn smtp_server(refuse: usize) -> (u16, Mailbox) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mailbox = Mailbox::default();
    let (kept, refused) = (mailbox.clone(), std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)));
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (kept, refused) = (kept.clone(), refused.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let (mut to, mut data, mut in_data) = (Vec::new(), String::new(), false);
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if in_data {
                        if line != "." {
                            data.push_str(&line);
                            data.push('\n');
                            continue;
                        }
                        in_data = false;
                        if refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < refuse {
                            b"451 try again later\r\n"
                        } else {
                            kept.lock().unwrap().push((std::mem::take(&mut to), std::mem::take(&mut data)));
                            b"250 queued\r\n"
                        }
                    } else {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        match verb.as_str() {
                            "EHLO" | "HELO" => b"250 test\r\n",
                            "RCPT" => {
                                to.push(line[8..].trim_matches(|c| c == '<' || c == '>').to_string());
                                b"250 ok\r\n"
                            }
                            "DATA" => {
                                in_data = true;
                                b"354 go on\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        }
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mailbox)
}

/// The daily schedule: once a project's Moscow day is over, its two
/// registers are written to its folder (the first of a month, the acts of
/// the month before too) and e-mailed to its address; a refused mail is
/// sent again when its claim's lease runs out; nothing is written twice.
#[tokio::test]
async fn the_schedule_writes_and_mails_each_report_once() {
    use open131_server::report_schedule::{ReportsMail, REPORT_LEASE_S};
    let (port, mailbox) = smtp_server(1).await;
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path().to_path_buf();
    let s = common::start_with(
        move |c| {
            c.reports_dir = Some(root);
            c.reports_mail = Some(ReportsMail {
                smtp: ("127.0.0.1".into(), port),
                from: "open131 <reports@open131.test>".into(),
                to: vec![("alpha".into(), "finance@shop.example".into())],
            });
        },
        |store| store,
    )
    .await;
    s.set_settings("alpha", settings()).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    let session = id_of(&s.call("v1", "session/init/payout", &card_payout(1_000)).await);
    s.settle().await;
    s.advance(2).await;

    // 2026-11-30 in Moscow: the 29th is over (empty registers, as the bank
    // sends them); alpha's first mail is refused, so its report stays due.
    assert_eq!(s.app.write_due_reports().await.unwrap(), 3, "alpha's payments, beta's two");
    assert_eq!(s.app.write_due_reports().await.unwrap(), 0, "held by its claim");
    s.advance(REPORT_LEASE_S + 1).await;
    assert_eq!(s.app.write_due_reports().await.unwrap(), 1, "the refused one, again");
    assert_eq!(mailbox.lock().unwrap().len(), 2);

    // The 1st of December: the 30th's registers and November's acts.
    s.advance(86_400).await;
    assert_eq!(s.app.write_due_reports().await.unwrap(), 8);
    assert_eq!(s.app.write_due_reports().await.unwrap(), 0, "each report once");
    let alpha = folder.path().join("alpha");
    let register = std::fs::read_to_string(alpha.join("payouts/alpha_2026-11-30_2026-11-30.csv")).unwrap();
    assert!(register.lines().nth(1).is_some_and(|l| l.contains(&session)), "{register}");
    let empty = std::fs::read_to_string(alpha.join("payments/alpha_2026-11-29_2026-11-29.csv")).unwrap();
    assert_eq!(empty.lines().count(), 1);
    for register in ["payouts", "payments"] {
        let act = std::fs::read(alpha.join(format!("acts/alpha_2026-11-01_2026-11-30_{register}.pdf"))).unwrap();
        assert!(act.starts_with(b"%PDF-"));
    }
    assert!(folder.path().join("beta/payments/beta_2026-11-30_2026-11-30.csv").exists());

    let mails = mailbox.lock().unwrap().clone();
    assert_eq!(mails.len(), 6, "alpha's six reports, beta has no address");
    assert!(mails.iter().all(|(to, _)| to == &["finance@shop.example"]));
    let names: Vec<bool> = ["alpha_2026-11-29_2026-11-29.csv", "alpha_2026-11-30_2026-11-30.csv", "_payouts.pdf"]
        .iter()
        .map(|n| mails.iter().any(|(_, data)| data.contains(n)))
        .collect();
    assert_eq!(names, [true, true, true], "attachments by name");
    assert!(mails.iter().any(|(_, data)| data.contains("Content-Type: text/csv")));
}
