//! What a node needs before it serves: the values every node of one database
//! shares (the bank key that signs webhooks, the admin token), kept in the
//! store's meta table and created once by whichever node starts first; and the
//! demo project created on first start, so a newcomer can send a signed
//! request within a minute.

use std::path::{Path, PathBuf};

use open131_store::layout::{write_atomic, DataDir, FileMode};
use open131_store::Store;
use open131_wire::canonical::canonical_bytes;
use open131_wire::sign::SigningKey;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// Id of the demo project.
pub const DEMO_PROJECT_ID: &str = "demo";
/// Meta key of the bank's private key (PKCS#8 PEM), which signs webhooks.
pub const BANK_KEY_META: &str = "bank_key_pem";
/// Meta key naming the node that funds the demo project (once).
pub const DEMO_FUNDED_META: &str = "demo_funded_by";
/// Meta key of the bearer token of the admin endpoints.
pub const ADMIN_TOKEN_META: &str = "admin_token";
/// Balance the demo project starts with, in kopecks (1,000,000.00 RUB).
pub const DEMO_BALANCE_MINOR: i64 = 100_000_000;

/// The bank key, kept in the database so every node signs with the same one:
/// created by the first node to start (two nodes starting together both end
/// up with the first one's: `meta_init`). A key file given explicitly becomes
/// that key when the database has none yet; when it has another, the node
/// refuses to start rather than sign differently from the others. An
/// installation from before the key moved into the database keeps its
/// `bank.key.pem` (read once).
pub async fn ensure_bank_key(store: &dyn Store, dir: &DataDir, explicit: Option<&Path>) -> anyhow::Result<SigningKey> {
    let wanted = match explicit {
        Some(path) => {
            let text = read_if_present(path)?.ok_or_else(|| anyhow::anyhow!("{} does not exist", path.display()))?;
            Some(SigningKey::from_pem(&text)?)
        }
        None => None,
    };
    if wanted.is_none() {
        if let Some(pem) = store.meta_get(BANK_KEY_META).await? {
            return Ok(SigningKey::from_pem(&String::from_utf8(pem)?)?);
        }
    }
    let pem = match (&wanted, read_if_present(&dir.legacy_bank_key())?) {
        (Some(key), _) => key.to_pkcs8_pem()?,
        (None, Some(legacy)) => legacy,
        (None, None) => SigningKey::generate()?.to_pkcs8_pem()?,
    };
    let stored = SigningKey::from_pem(&String::from_utf8(store.meta_init(BANK_KEY_META, pem.into_bytes()).await?)?)?;
    if let Some(key) = wanted {
        if key.verifying_key()?.fingerprint() != stored.verifying_key()?.fingerprint() {
            anyhow::bail!(
                "--bank-key differs from the bank key this database already has: every node must sign webhooks \
                 with one key (give every node the same file, or none)"
            );
        }
    }
    Ok(stored)
}

/// The admin token, from the database or created there by the first node. On
/// SQLite a copy is kept in the data directory for the operator to read
/// (an installation from before keeps the token it had).
pub async fn ensure_admin_token(store: &dyn Store, dir: Option<&DataDir>) -> anyhow::Result<String> {
    let token = match store.meta_get(ADMIN_TOKEN_META).await? {
        Some(token) => String::from_utf8(token)?,
        None => {
            let legacy = dir.map(|d| read_if_present(&d.admin_token())).transpose()?.flatten();
            let fresh = match legacy.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
                Some(token) => token,
                None => random_token()?,
            };
            String::from_utf8(store.meta_init(ADMIN_TOKEN_META, fresh.into_bytes()).await?)?
        }
    };
    if let Some(dir) = dir {
        if read_if_present(&dir.admin_token())?.as_deref().map(str::trim) != Some(token.as_str()) {
            write_atomic(&dir.admin_token(), token.as_bytes(), FileMode::Private)?;
        }
    }
    Ok(token)
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness for the admin token"))?;
    Ok(open131_wire::sign::hex(&bytes))
}

/// The file's text, `None` if it does not exist; any other failure is the user's to fix.
fn read_if_present(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

#[derive(Debug)]
pub struct Demo {
    pub key_path: PathBuf,
    pub key: SigningKey,
    pub created: bool,
}

/// Makes sure the demo project, its key and its starting balance exist; reuses
/// what is there. Every step is idempotent, so a crash in the middle of a first
/// start is completed by the next start: the key file (written atomically)
/// before its registration, the registration before the top-up, and the top-up
/// only while the project has no wallet at all. The key file is per node: each
/// node of a shared database registers its own demo key beside the others.
pub async fn ensure_demo(store: &dyn Store, dir: &DataDir, now: OffsetDateTime) -> anyhow::Result<Demo> {
    let key_path = dir.demo_key();
    let created = store.project(DEMO_PROJECT_ID).await?.is_none();
    let key = match read_if_present(&key_path)? {
        Some(text) => SigningKey::from_pem(&text)?,
        None => {
            let key = SigningKey::generate()?;
            write_atomic(&key_path, key.to_pkcs8_pem()?.as_bytes(), FileMode::Private)?;
            key
        }
    };
    let public = key.verifying_key()?;
    store.create_project(DEMO_PROJECT_ID, now).await?;
    store.add_project_key(DEMO_PROJECT_ID, &public.fingerprint(), public.spki_der(), now).await?;
    // Of nodes starting together, only the one whose claim is stored tops up.
    // (A crash between the claim and the top-up leaves the demo unfunded:
    // `open131 wallet topup demo …` fixes it.)
    if store.wallets(DEMO_PROJECT_ID).await?.is_empty() {
        let claim = public.fingerprint().into_bytes();
        if store.meta_init(DEMO_FUNDED_META, claim.clone()).await? == claim {
            // Every book, so the nominal and settlement methods work out of the box too.
            for book in open131_domain::ledger::Book::ALL {
                store.topup_book(DEMO_PROJECT_ID, book, "rub", DEMO_BALANCE_MINOR, now).await?;
            }
        }
    }
    Ok(Demo { key_path, key, created })
}

/// A fictional person that passes the sandbox check.
pub fn sample_payload() -> Value {
    json!({
        "first_name": "Иванов", "last_name": "Иван", "patronymic": "Иванович",
        "birthday": "15.06.1990", "birthplace": "г. Москва",
        "inn": "500100732259",
        "identity_document": "Паспорт гражданина РФ", "passport_number": "4510123456",
        "issuer": "ОВД района Хамовники г. Москвы", "issuer_code": "770-001", "issuer_date": "20.06.2010",
        "citizenship": "РФ", "postcode": "119021", "address": "г. Москва, ул. Льва Толстого, д. 16",
        "email": "ivanov@example.ru", "phone_number": "+79001234567",
        "agent_contract_number": "DEMO-1", "agent_contract_date": "10.01.2024",
        "beneficial_owners": "ВБ отсутствует", "public_officials": "Нет",
        "migration_card": "-", "right_to_stay_in_rf": "-"
    })
}

/// A ready-to-paste `curl` for a signed check by the demo project.
pub fn example_request(key: &SigningKey, base_url: &str) -> anyhow::Result<String> {
    let payload = sample_payload();
    let signature = key.sign_base64(&canonical_bytes(&payload)?)?;
    let body = json!({"payload": payload, "signature": signature});
    Ok(format!(
        "curl -s -X POST {base_url}/api/v1.1/check -H 'Content-Type: application/json' -H 'X-PARTNER-PROJECT: {DEMO_PROJECT_ID}' -d '{body}'\n\
         curl -s {base_url}/api/v1.1/check/1 -H 'X-PARTNER-PROJECT: {DEMO_PROJECT_ID}'"
    ))
}
