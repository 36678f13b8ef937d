//! The demo project created on first start, so a newcomer can send a signed
//! request within a minute.

use std::path::{Path, PathBuf};

use open131_store::Store;
use open131_wire::canonical::canonical_bytes;
use open131_wire::sign::SigningKey;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// Id of the demo project.
pub const DEMO_PROJECT_ID: &str = "demo";
/// File (in the data directory) holding the demo project's private key.
pub const DEMO_KEY_FILE_NAME: &str = "demo.key.pem";
/// File (in the data directory) holding the bank's own key, which signs webhooks.
pub const BANK_KEY_FILE_NAME: &str = "bank.key.pem";
/// File (in the data directory) holding the bearer token of the admin endpoints.
pub const ADMIN_TOKEN_FILE_NAME: &str = "admin.token";

/// The admin token: read from the data directory, or created there on first start.
pub fn ensure_admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        _ => {
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness for the admin token"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_private(&path, &token)?;
            Ok(token)
        }
    }
}

/// Balance the demo project starts with, in kopecks (1,000,000.00 RUB).
pub const DEMO_BALANCE_MINOR: i64 = 100_000_000;

/// The bank key: read from the data directory, or created there on first start.
pub fn ensure_bank_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join(BANK_KEY_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(SigningKey::from_pem(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate()?;
            write_private(&path, &key.to_pkcs8_pem()?)?;
            Ok(key)
        }
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
/// only while the project has no wallet at all.
pub async fn ensure_demo(store: &dyn Store, data_dir: &Path, now: OffsetDateTime) -> anyhow::Result<Demo> {
    let key_path = data_dir.join(DEMO_KEY_FILE_NAME);
    let created = store.project(DEMO_PROJECT_ID).await?.is_none();
    let key = match std::fs::read_to_string(&key_path) {
        Ok(text) => SigningKey::from_pem(&text)?,
        // Only a missing file is replaced: an unreadable one is the user's to fix.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::anyhow!("reading {}: {e}", key_path.display()));
        }
        Err(_) => {
            let key = SigningKey::generate()?;
            write_private(&key_path, &key.to_pkcs8_pem()?)?;
            key
        }
    };
    let public = key.verifying_key()?;
    store.create_project(DEMO_PROJECT_ID, now).await?;
    store.add_project_key(DEMO_PROJECT_ID, &public.fingerprint(), public.spki_der(), now).await?;
    if store.wallets(DEMO_PROJECT_ID).await?.is_empty() {
        store.topup(DEMO_PROJECT_ID, "rub", DEMO_BALANCE_MINOR, now).await?;
    }
    Ok(Demo { key_path, key, created })
}

/// Writes a secret file readable by its owner only, atomically: a temporary
/// file, fsync, rename. A crash leaves the old file or the new one, never half.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    // Make the rename durable where directories can be synced (best effort).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
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
