//! What each fuzz target does with its input, as plain functions: the
//! cargo-fuzz targets in `fuzz/` call them, and `tests/corpus.rs` replays
//! every committed input (the seed corpus and each crash found since, kept
//! in `fuzz/regressions/`) through them in the ordinary test run. Every
//! harness must return without panicking on any input; where a property
//! holds for every input (canonical JSON is idempotent, a forged signature
//! never verifies) it asserts it.
//!
//! Why a crate of its own: the harnesses must build on stable in the
//! workspace (the replay test), while cargo-fuzz builds `fuzz/` on nightly
//! with libFuzzer; both depend on this one crate.

use std::sync::OnceLock;

use open131_domain::ident::{CardExpiry, CardNumber, Inn, PassportNumber};
use open131_wire::sign::{SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

/// What a target does with one input.
pub type Harness = fn(&[u8]);

/// The targets, by name (the names of `fuzz/fuzz_targets/*.rs` and of the
/// corpus folders).
pub const TARGETS: [(&str, Harness); 6] = [
    ("canonical_json", canonical_json),
    ("signature", signature),
    ("kyc_request", kyc_request),
    ("api_request", api_request),
    ("identifiers", identifiers),
    ("registry_file", registry_file),
];

const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);
const TODAY: Date = date!(2026 - 11 - 30);

fn object(data: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Canonical JSON (what a KYC signature covers): for any JSON input,
/// canonicalizing is idempotent and its bytes read back as the same value.
pub fn canonical_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(bytes) = open131_wire::canonical::canonical_bytes(&value) else { return };
    let again: Value = serde_json::from_slice(&bytes).expect("canonical bytes are JSON");
    assert_eq!(again, value, "canonical bytes read back as another value");
    let twice = open131_wire::canonical::canonical_bytes(&again).expect("canonical JSON canonicalizes");
    assert_eq!(twice, bytes, "canonicalizing is not idempotent");
}

fn key() -> &'static (SigningKey, VerifyingKey) {
    static KEY: OnceLock<(SigningKey, VerifyingKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let signing = SigningKey::generate().expect("a key");
        let verifying = signing.verifying_key().expect("its public half");
        (signing, verifying)
    })
}

/// A signature header and a body: the first byte says how long the header
/// is. A header the key did not make never verifies; one it made does.
pub fn signature(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let (header, body) = rest.split_at((n as usize).min(rest.len()));
    let header = String::from_utf8_lossy(header);
    let (signing, verifying) = key();
    assert!(!verifying.verify_base64(body, &header), "a forged signature verified");
    let made = signing.sign_base64(body).expect("signing works");
    assert!(verifying.verify_base64(body, &made), "the key's own signature did not verify");
}

/// A KYC check's `payload`, read by both versions' parsers.
pub fn kyc_request(data: &[u8]) {
    let Some(payload) = object(data) else { return };
    let _ = open131_domain::kyc::parse_v11(&payload, NOW);
    let _ = open131_domain::kyc_v2::parse_v20(&payload, NOW);
}

/// A main-API body, read by the parser the first byte picks: the payout's
/// (create, init, start), the card payment's (create, init, start, draft),
/// capture, refund, public and vault tokens, the self-employed methods,
/// fiscalization, the FPS recipient check and the books' payment details.
pub fn api_request(data: &[u8]) {
    use open131_domain::{books, fiscal, fps_verification, ledger, npd, payment, payout, payout_method, widget};
    let Some((&pick, rest)) = data.split_first() else { return };
    let Some(body) = object(rest) else { return };
    let saved = payment::SavedCards::new();
    match pick % 18 {
        0 => {
            let _ = payout::parse_parts(&body, payout::PayoutCall::Create, TODAY);
        }
        1 => {
            let _ = payout::parse_payout(&body, TODAY, "payment_method");
        }
        2 => {
            let _ = payout::parse_parts(&body, payout::PayoutCall::Start, TODAY);
        }
        3 => {
            let _ = payment::parse_payment(&body, payment::PaymentCall::Init, TODAY);
        }
        4 => {
            let _ = payment::parse_payment(&body, payment::PaymentCall::Start, TODAY);
        }
        5 => {
            let _ = payment::parse_payment(&body, payment::PaymentCall::Create, TODAY);
        }
        6 => {
            let _ = payment::parse_payment_draft(&body, TODAY, &saved);
        }
        7 => {
            if let Ok(held) = payout::Money::new(10_000, "rub") {
                let _ = payment::parse_capture(&body, &held);
            }
        }
        8 => {
            let _ = payment::parse_refund(&body, "rub");
        }
        9 => {
            let _ = payment::parse_token_request(&body);
        }
        10 => {
            let _ = widget::parse_token_request(&body);
        }
        11 => {
            let _ = payout_method::parse_vault_card(&body, TODAY);
        }
        12 => {
            let _ = payout_method::parse_vault_account(&body);
        }
        13 => {
            let _ = npd::parse_check(&body);
        }
        14 => {
            let _ = npd::parse_personal_info(&body);
        }
        15 => {
            let _ = npd::parse_request_status(&body);
        }
        16 => {
            let _ = fiscal::parse_details(&body);
        }
        _ => {
            let _ = fps_verification::parse_verification(&body);
            let mut errors = Vec::new();
            let _ = books::parse_payment_details(&body, ledger::Book::Nominal, &mut errors);
        }
    }
}

/// Identifiers as partners type them: INNs, passports, cards, expiry dates,
/// phones, dates, and a self-employed register's row.
pub fn identifiers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(inn) = Inn::parse_individual(&text) {
        let _ = inn.check_digits_ok();
    }
    if let Ok(inn) = Inn::parse_legal(&text) {
        let _ = inn.check_digits_ok();
    }
    let _ = PassportNumber::parse(&text);
    let _ = CardNumber::parse(&text);
    let (month, year) = text.split_at(text.char_indices().nth(2).map_or(text.len(), |(i, _)| i));
    let _ = CardExpiry::parse(month, year);
    let _ = open131_domain::payment::parse_phone(&text);
    let _ = open131_domain::dates::parse_iso_date(&text);
    let _ = open131_domain::dates::parse_ddmmyyyy(&text);
    let mut fields = text.splitn(5, ',');
    let mut next = || fields.next().unwrap_or_default();
    let row = [next(), next(), next(), next(), next()];
    let _ = open131_domain::npd::parse_register_row(row);
}

/// Bytes as the registries' files and CSV inputs: every loader refuses what
/// is not its own without panicking.
pub fn registry_file(data: &[u8]) {
    use open131_registry::{NpdRegister, PassportIndex, TaxpayerIndex};
    let path = std::env::temp_dir().join(format!("open131-fuzz-{}.idx", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = PassportIndex::load(&path);
        let _ = TaxpayerIndex::load(&path);
        let _ = NpdRegister::load(&path);
    }
    let _ = open131_registry::import_passports_csv(data, None, &mut |_| {});
    let _ = open131_registry::import_taxpayers_csv(data, None, &mut |_| {});
    let _ = open131_registry::import_npd_csv(data, None, &mut |_| {});
}
