//! `token` (a public token for the widgets) and `token/info` (what a public
//! or recurrent token is). The widgets' pages and the card vault come with
//! the rest of the widgets issue; `token/info` of a card says so.

use open131_domain::books::Shape;
use open131_domain::ledger::Book;
use open131_domain::session::SessionState;
use open131_domain::widget::{self, PUBLIC_TOKEN_TTL_S};
use open131_store::{PublicTokenRecord, VaultCardRecord};
use open131_wire::api::timestamp;
use serde_json::{json, Map, Value};

use super::{detail, from_domain, ApiReply, Ctx};
use crate::vault::Sealed;

/// Longest token `token/info` reads, in bytes.
pub const TOKEN_MAX_BYTES: usize = 128;

impl Ctx<'_> {
    /// `token`: one public token for the widgets asked for; the payment
    /// form's session must be this project's and wait for its payment.
    pub(super) async fn public_token(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let grant = widget::parse_token_request(body).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        if let Some(a) = &grant.acquiring {
            let session = self.app.store.session(self.project_id, &a.session_id).await;
            let session = session.map_err(|e| ApiReply::internal(&e))?;
            let field = "acquiring_widget.session_id";
            // Another project's session is indistinguishable from none.
            let Some(session) = session else { return Err(ApiReply::invalid(vec![detail(field, "no such session")])) };
            let waits = session.state == SessionState::Created
                && session.draft.is_none()
                && (session.book, session.shape) == (Book::Main, Shape::Payout);
            if !waits {
                let why =
                    "is not a session waiting for its payment (session/create without payout fields, not started)";
                return Err(ApiReply::invalid(vec![detail(field, why)]));
            }
        }
        let now = self.app.clock.now();
        let token: [u8; 32] = super::engine::random_bytes();
        let record = PublicTokenRecord {
            token: open131_wire::sign::hex(&token),
            project_id: self.project_id.to_string(),
            grant,
            created_at: now,
            expires_at: now + time::Duration::seconds(PUBLIC_TOKEN_TTL_S),
            used_at: None,
        };
        let public_token = record.token.clone();
        self.app.store.insert_public_token(record).await.map_err(|e| ApiReply::internal(&e))?;
        Ok(ApiReply::ok(&json!({"status": "ok", "public_token": public_token})))
    }

    /// `token/info`: `{type, <type>: {...}}` for a public token or a
    /// recurrent token of the project; a card's (`number_hash`) waits for the vault.
    pub(super) async fn token_info(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let kinds = ["public_token", "recurrent_token", "card"];
        let kind = match body.get("type") {
            Some(Value::String(k)) if kinds.contains(&k.as_str()) => k.as_str(),
            None | Some(Value::Null) => return Err(ApiReply::invalid(vec![detail("type", "is required")])),
            Some(_) => {
                return Err(ApiReply::invalid(vec![detail("type", "must be public_token, recurrent_token or card")]))
            }
        };
        super::only_fields(body, &["type", kind], &[])?;
        if kind == "card" {
            return self.card_info(body).await;
        }
        let token = token_of(body, kind)?;
        let store = &self.app.store;
        let info = match kind {
            "public_token" => {
                let saved = store.public_token(self.project_id, &token).await.map_err(|e| ApiReply::internal(&e))?;
                let saved =
                    saved.ok_or_else(|| ApiReply::invalid(vec![detail("public_token.token", "no such token")]))?;
                public_token_info(&saved, self.app.clock.now())
            }
            _ => {
                let saved = store.recurrent_token(self.project_id, &token).await.map_err(|e| ApiReply::internal(&e))?;
                let saved =
                    saved.ok_or_else(|| ApiReply::invalid(vec![detail("recurrent_token.token", "no such token")]))?;
                let mut info = serde_json::to_value(super::render::recurrent(&saved)).unwrap_or(Value::Null);
                info["type"] = json!("recurrent_token");
                info
            }
        };
        Ok(ApiReply::ok(&json!({"status": "ok", "info": info})))
    }
}

impl Ctx<'_> {
    /// `tokenize/elements` `[INF]` (the bank publishes no body): `{type: card,
    /// card: {type: bank_card, bank_card: {number, expiration_month?,
    /// expiration_year?, cardholder_name?}}}` puts the card in the project's
    /// vault and answers its `number_hash` as `token/info` shows a card.
    pub(super) async fn tokenize_elements(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let (number, expiry) = open131_domain::payout_method::parse_vault_card(body, self.today())
            .map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let vault = self.app.vault().map_err(|e| ApiReply::internal(&e))?;
        let number_hash = vault.number_hash(self.project_id, number.expose());
        let sealed = vault.seal(self.project_id, &number_hash, number.expose()).map_err(|e| ApiReply::internal(&e))?;
        let card = VaultCardRecord {
            project_id: self.project_id.to_string(),
            number_hash,
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            brand: number.brand().as_str().to_string(),
            bin: number.bin().to_string(),
            last4: number.last4().to_string(),
            card_expiry: expiry,
            created_at: self.app.clock.now(),
        };
        let info = card_info(&card);
        self.app.store.put_card(card).await.map_err(|e| ApiReply::internal(&e))?;
        Ok(ApiReply::ok(&json!({"status": "ok", "info": info})))
    }

    /// `token/info` of `{type: card, card: {type: encrypted_card, encrypted_card: {number_hash}}}`.
    async fn card_info(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let hash = body
            .get("card")
            .filter(|c| c["type"] == "encrypted_card")
            .and_then(|c| c["encrypted_card"]["number_hash"].as_str())
            .filter(|h| !h.is_empty() && h.len() <= TOKEN_MAX_BYTES);
        let Some(hash) = hash else {
            let why = "must be {\"type\": \"encrypted_card\", \"encrypted_card\": {\"number_hash\": \"…\"}}";
            return Err(ApiReply::invalid(vec![detail("card", why)]));
        };
        let card = self.app.store.vault_card(self.project_id, hash).await.map_err(|e| ApiReply::internal(&e))?;
        // Another project's card is indistinguishable from none.
        let card = card.ok_or_else(|| {
            ApiReply::invalid(vec![detail("card.encrypted_card.number_hash", "no such card in this project's vault")])
        })?;
        Ok(ApiReply::ok(&json!({"status": "ok", "info": card_info(&card)})))
    }

    /// `body` with every `{type: encrypted_card, encrypted_card: {number_hash}}`
    /// under `roots` (all of it when empty) replaced by the vault's card as
    /// `{type: bank_card, bank_card: {number, expiration_…}}`, so the payout
    /// parsers read it as the card itself. A hash the project's vault does
    /// not hold is named where it was sent.
    pub(super) async fn open_cards(
        &self,
        mut body: Map<String, Value>,
        roots: &[&str],
    ) -> Result<Map<String, Value>, ApiReply> {
        let mut found = Vec::new();
        for (key, value) in &body {
            if roots.is_empty() || roots.contains(&key.as_str()) {
                find_encrypted(value, key, &mut found);
            }
        }
        if found.is_empty() {
            return Ok(body);
        }
        let mut errors = Vec::new();
        let mut opened = Vec::new();
        for (path, hash, extra) in found {
            errors.extend(extra.into_iter().map(|k| {
                let why = "is not served: a card in the vault is named by its number_hash alone";
                detail(&format!("{path}.encrypted_card.{k}"), why)
            }));
            let card = self.app.store.vault_card(self.project_id, &hash).await.map_err(|e| ApiReply::internal(&e))?;
            let Some(card) = card else {
                errors.push(detail(
                    &format!("{path}.encrypted_card.number_hash"),
                    "no such card in this project's vault",
                ));
                continue;
            };
            let vault = self.app.vault().map_err(|e| ApiReply::internal(&e))?;
            let sealed =
                Sealed { key_id: card.key_id.clone(), nonce: card.nonce.clone(), ciphertext: card.ciphertext.clone() };
            let number = vault.open(self.project_id, &hash, &sealed).map_err(|e| ApiReply::internal(&e))?;
            let mut bank_card = json!({"number": number});
            if let Some(e) = &card.card_expiry {
                bank_card["expiration_month"] = json!(format!("{:02}", e.month()));
                bank_card["expiration_year"] = json!(e.year().to_string());
            }
            opened.push((path, json!({"type": "bank_card", "bank_card": bank_card})));
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(ApiReply::invalid(errors));
        }
        for (path, card) in opened {
            if let Some(slot) = at_path(&mut body, &path) {
                *slot = card;
            }
        }
        Ok(body)
    }
}

/// Collects `(path, number_hash, other keys)` of every encrypted card object in `value`.
fn find_encrypted(value: &Value, path: &str, found: &mut Vec<(String, String, Vec<String>)>) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("encrypted_card") {
                if let Some(Value::Object(inner)) = map.get("encrypted_card") {
                    let hash = inner.get("number_hash").and_then(Value::as_str).unwrap_or_default().to_string();
                    let extra = inner.iter().filter(|(k, v)| k.as_str() != "number_hash" && !v.is_null());
                    found.push((path.to_string(), hash, extra.map(|(k, _)| k.clone()).collect()));
                    return;
                }
            }
            for (k, v) in map {
                find_encrypted(v, &format!("{path}.{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_encrypted(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The value at a path [`find_encrypted`] wrote (`a.b[2].c`).
fn at_path<'v>(body: &'v mut Map<String, Value>, path: &str) -> Option<&'v mut Value> {
    let mut steps = path.split('.');
    let mut here = body.get_mut(steps.next()?)?;
    for step in steps {
        let (key, index) = match step.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (step, None),
        };
        here = here.get_mut(key)?;
        if let Some(i) = index {
            here = here.get_mut(i)?;
        }
    }
    Some(here)
}

/// A vault card as `token/info` shows it (the SDK's `TokenInfo`).
fn card_info(card: &VaultCardRecord) -> Value {
    json!({"type": "card", "number_hash": card.number_hash, "brand": card.brand, "last4": card.last4, "bin": card.bin})
}

/// `<kind>.token`, named by its path when missing or bad.
fn token_of(body: &Map<String, Value>, kind: &str) -> Result<String, ApiReply> {
    let path = format!("{kind}.token");
    let Some(Value::Object(inner)) = body.get(kind) else {
        return Err(ApiReply::invalid(vec![detail(kind, "is required: {\"token\": \"…\"}")]));
    };
    let unknown: Vec<_> = inner
        .iter()
        .filter(|(k, v)| k.as_str() != "token" && !v.is_null())
        .map(|(k, _)| detail(&format!("{kind}.{k}"), "is not a field open131 knows here (known: token)"))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiReply::invalid(unknown));
    }
    match inner.get("token") {
        Some(Value::String(t)) if !t.is_empty() && t.len() <= TOKEN_MAX_BYTES => Ok(t.clone()),
        _ => Err(ApiReply::invalid(vec![detail(&path, format!("must be a string of 1 to {TOKEN_MAX_BYTES} bytes"))])),
    }
}

/// A public token as `token/info` shows it: active until used or expired.
fn public_token_info(t: &PublicTokenRecord, now: time::OffsetDateTime) -> Value {
    let mut info = json!({
        "type": "public_token",
        "token": t.token,
        "is_active": t.used_at.is_none() && now < t.expires_at,
        "created_at": timestamp(t.created_at),
        "expires_at": timestamp(t.expires_at),
        "widgets": t.grant.wire(),
    });
    if let Some(used) = t.used_at {
        info["used_at"] = json!(timestamp(used));
    }
    info
}
