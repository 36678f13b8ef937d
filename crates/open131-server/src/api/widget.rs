//! `token` (a public token for the widgets) and `token/info` (what a public
//! or recurrent token is). The widgets' pages and the card vault come with
//! the rest of the widgets issue; `token/info` of a card says so.

use open131_domain::ident::CardNumber;
use open131_domain::payment::{SavedCard, SavedCards};
use open131_domain::widget::{self, PUBLIC_TOKEN_TTL_S};
use open131_store::{PublicTokenRecord, VaultCardRecord};
use open131_wire::answers::{
    PublicTokenInfo, PublicTokenResponse, TokenInfo, TokenInfoResponse, TokenizeResponse, TokenizedAccount,
    VaultCardWire,
};
use open131_wire::api::{timestamp, ApiErrorCode};
use open131_wire::kyc::FieldDetail;
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
            if let Err(why) = super::payment::form_can_pay(&session) {
                return Err(ApiReply::invalid(vec![detail(field, why)]));
            }
        }
        // A person linked already has nothing to ask for (the docs' taxpayer_already_bound).
        if let Some(inn) = &grant.self_employed {
            let link = super::npd::link(self.app, self.project_id, inn).await;
            let (link, _) = link.map_err(|e| ApiReply::internal(&e))?;
            if link == open131_domain::npd_link::LinkState::Linked {
                return Err(ApiReply::error(ApiErrorCode::TaxpayerAlreadyBound, None, Vec::new()));
            }
        }
        let now = self.now;
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
        Ok(ApiReply::ok(&PublicTokenResponse { status: "ok".into(), public_token }))
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
                public_token_info(&saved, self.now)
            }
            _ => {
                let saved = store.recurrent_token(self.project_id, &token).await.map_err(|e| ApiReply::internal(&e))?;
                let saved =
                    saved.ok_or_else(|| ApiReply::invalid(vec![detail("recurrent_token.token", "no such token")]))?;
                TokenInfo::RecurrentToken(super::render::recurrent(&saved))
            }
        };
        Ok(ApiReply::ok(&TokenInfoResponse { status: "ok".into(), info }))
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
        let card = self.app.put_card(self.project_id, &number, expiry).await.map_err(|e| ApiReply::internal(&e))?;
        Ok(ApiReply::ok(&TokenInfoResponse { status: "ok".into(), info: card_wire(&card) }))
    }

    /// `token/info` of `{type: card, card: {type: encrypted_card, encrypted_card: {number_hash}}}`.
    async fn card_info(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let card = body.get("card").unwrap_or(&Value::Null);
        let hash = encrypted_card_hash(card, "card").map_err(ApiReply::invalid)?;
        let card = self.app.store.vault_card(self.project_id, &hash).await.map_err(|e| ApiReply::internal(&e))?;
        // Another project's card is indistinguishable from none.
        let card = card.ok_or_else(|| {
            ApiReply::invalid(vec![detail("card.encrypted_card.number_hash", "no such card in this project's vault")])
        })?;
        Ok(ApiReply::ok(&TokenInfoResponse { status: "ok".into(), info: card_wire(&card) }))
    }

    /// `body` with the vault's cards and accounts its payout methods name
    /// opened for the payout parsers: a method's `card` `{type:
    /// encrypted_card, encrypted_card: {number_hash}}` becomes `{type:
    /// bank_card, bank_card: {number, expiration_…}}`, and its
    /// `bank_account.ru.token` becomes `bik` and `account`. Only the methods'
    /// own places are looked at (`payment_method`/`payout_details`, or a
    /// multi-session's payouts): a reference anywhere else (`metadata`) is
    /// left as sent, so nothing else ever holds an opened number. A
    /// reference the project's vault does not hold is named where it was sent.
    pub(super) async fn open_vault(
        &self,
        mut body: Map<String, Value>,
        multi: bool,
    ) -> Result<Map<String, Value>, ApiReply> {
        let mut errors = Vec::new();
        for (path, method) in method_slots(&mut body, multi) {
            let card =
                method.get_mut("card").filter(|c| c.get("type").and_then(Value::as_str) == Some("encrypted_card"));
            if let Some(card) = card {
                match self.open_card(&format!("{path}.card"), card).await? {
                    Ok(opened) => *card = opened,
                    Err(named) => errors.extend(named),
                }
            }
            let ru = method.get_mut("bank_account").and_then(|b| b.get_mut("ru"));
            if let Some(ru) = ru.filter(|ru| ru.get("token").is_some_and(|t| !t.is_null())) {
                match self.open_account(&format!("{path}.bank_account.ru"), ru).await? {
                    Ok(opened) => *ru = opened,
                    Err(named) => errors.extend(named),
                }
            }
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(ApiReply::invalid(errors));
        }
        Ok(body)
    }

    /// The vault card a payment's `payment_details` names as
    /// `card.tokenized_card.token`, opened for its parser (none when it names
    /// none, or one the vault does not hold: the parser names it).
    pub(super) async fn saved_cards(&self, details: Option<&Value>) -> Result<SavedCards, ApiReply> {
        let mut saved = SavedCards::new();
        let card = details.and_then(|d| d.get("card"));
        let token = card
            .filter(|c| c.get("type").and_then(Value::as_str) == Some("tokenized_card"))
            .and_then(|c| vault_name(c.get("tokenized_card")?.get("token")));
        let Some(token) = token else { return Ok(saved) };
        let card = self.app.store.vault_card(self.project_id, token).await.map_err(|e| ApiReply::internal(&e))?;
        let Some(card) = card else { return Ok(saved) };
        let number =
            self.app.open_sealed(self.project_id, token, &Sealed::from(&card)).map_err(|e| ApiReply::internal(&e))?;
        let number = CardNumber::parse_or_documented(&number).map_err(|e| ApiReply::internal(&e))?;
        saved.insert(token.to_string(), SavedCard { number, expiry: card.card_expiry });
        Ok(saved)
    }

    /// The card a method's `card` (at `path`) names in the vault, as `bank_card`.
    async fn open_card(&self, path: &str, card: &Value) -> Result<Result<Value, Vec<FieldDetail>>, ApiReply> {
        let hash = match encrypted_card_hash(card, path) {
            Ok(hash) => hash,
            Err(named) => return Ok(Err(named)),
        };
        let field = format!("{path}.encrypted_card.number_hash");
        let saved = self.app.store.vault_card(self.project_id, &hash).await.map_err(|e| ApiReply::internal(&e))?;
        let Some(saved) = saved else {
            return Ok(Err(vec![detail(&field, "no such card in this project's vault")]));
        };
        if saved.card_expiry.as_ref().is_some_and(|e| e.is_expired_on(self.today())) {
            let why = "the vault's card has expired: tokenize it again with its new expiry";
            return Ok(Err(vec![detail(&field, why)]));
        }
        let number =
            self.app.open_sealed(self.project_id, &hash, &Sealed::from(&saved)).map_err(|e| ApiReply::internal(&e))?;
        let mut bank_card = json!({"number": number});
        if let Some(e) = &saved.card_expiry {
            bank_card["expiration_month"] = json!(format!("{:02}", e.month()));
            bank_card["expiration_year"] = json!(e.year().to_string());
        }
        Ok(Ok(json!({"type": "bank_card", "bank_card": bank_card})))
    }

    /// A method's `ru` object (at `path`) with the account its `token` names
    /// in the vault as `bik` and `account`, its other fields as sent.
    async fn open_account(&self, path: &str, ru: &Value) -> Result<Result<Value, Vec<FieldDetail>>, ApiReply> {
        let field = format!("{path}.token");
        let Some(token) = vault_name(ru.get("token")).map(str::to_string) else {
            return Ok(Err(vec![detail(&field, vault_name_shape())]));
        };
        if ["bik", "account"].iter().any(|k| ru.get(*k).is_some_and(|v| !v.is_null())) {
            return Ok(Err(vec![detail(&field, "replaces bik and account: send the token or them, not both")]));
        }
        let saved = self.app.store.vault_account(self.project_id, &token).await.map_err(|e| ApiReply::internal(&e))?;
        let Some(saved) = saved else {
            return Ok(Err(vec![detail(&field, "no such bank account in this project's vault")]));
        };
        let number =
            self.app.open_sealed(self.project_id, &token, &Sealed::from(&saved)).map_err(|e| ApiReply::internal(&e))?;
        let mut opened = ru.as_object().cloned().unwrap_or_default();
        opened.remove("token");
        opened.insert("bik".into(), json!(saved.bik));
        opened.insert("account".into(), json!(number));
        Ok(Ok(Value::Object(opened)))
    }

    /// `tokenize` (`{type: bank_account_ru, bank_account_ru: {bik, account}}`):
    /// the account into the project's vault; `token` names it in a payout's
    /// `bank_account.ru.token`, `data.masked_account` shows it.
    pub(super) async fn tokenize_account(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let (bik, account) =
            open131_domain::payout_method::parse_vault_account(body).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let saved = self.app.put_account(self.project_id, &bik, &account).await.map_err(|e| ApiReply::internal(&e))?;
        Ok(ApiReply::ok(&TokenizeResponse {
            status: "ok".into(),
            token: saved.token,
            data: TokenizedAccount { masked_account: saved.masked_account },
        }))
    }
}

/// The places a payout body names its methods: `payment_method` and
/// `payout_details`, or a multi-session's `payout_details_multi[i]` and
/// `payout_list[i].payment_method|payout_details`; with their paths.
fn method_slots(body: &mut Map<String, Value>, multi: bool) -> Vec<(String, &mut Value)> {
    const METHOD_KEYS: [&str; 2] = ["payment_method", "payout_details"];
    let mut slots = Vec::new();
    for (key, value) in body.iter_mut() {
        match (multi, key.as_str(), value) {
            (false, k, value) if METHOD_KEYS.contains(&k) => slots.push((key.clone(), value)),
            (true, "payout_details_multi", Value::Array(items)) => {
                slots.extend(items.iter_mut().enumerate().map(|(i, v)| (format!("{key}[{i}]"), v)));
            }
            (true, "payout_list", Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let Some(item) = item.as_object_mut() else { continue };
                    for (k, v) in item.iter_mut().filter(|(k, _)| METHOD_KEYS.contains(&k.as_str())) {
                        slots.push((format!("{key}[{i}].{k}"), v));
                    }
                }
            }
            _ => {}
        }
    }
    slots
}

/// The `number_hash` of `{type: encrypted_card, encrypted_card: {number_hash}}`
/// at `path`, every other field refused by name.
fn encrypted_card_hash(card: &Value, path: &str) -> Result<String, Vec<FieldDetail>> {
    let shape = "must be {\"type\": \"encrypted_card\", \"encrypted_card\": {\"number_hash\": \"…\"}}";
    let Some(card) = card.as_object() else { return Err(vec![detail(path, shape)]) };
    if card.get("type").and_then(Value::as_str) != Some("encrypted_card") {
        return Err(vec![detail(&format!("{path}.type"), "must be encrypted_card")]);
    }
    let mut errors: Vec<FieldDetail> = card
        .iter()
        .filter(|(k, v)| !["type", "encrypted_card"].contains(&k.as_str()) && !v.is_null())
        .map(|(k, _)| detail(&format!("{path}.{k}"), "is not a field of an encrypted card (type, encrypted_card)"))
        .collect();
    let Some(Value::Object(inner)) = card.get("encrypted_card") else {
        errors.push(detail(&format!("{path}.encrypted_card"), "is required: {\"number_hash\": \"…\"}"));
        return Err(errors);
    };
    for k in inner.iter().filter(|(k, v)| k.as_str() != "number_hash" && !v.is_null()).map(|(k, _)| k) {
        let why = "is not served: a card in the vault is named by its number_hash alone";
        errors.push(detail(&format!("{path}.encrypted_card.{k}"), why));
    }
    let field = format!("{path}.encrypted_card.number_hash");
    let hash = inner.get("number_hash");
    match vault_name(hash) {
        Some(h) if errors.is_empty() => return Ok(h.to_string()),
        Some(_) => {}
        None if matches!(hash, None | Some(Value::Null)) => errors.push(detail(&field, "is required")),
        None => errors.push(detail(&field, vault_name_shape())),
    }
    Err(errors)
}

/// A vault token or `number_hash`: a string of 1 to `TOKEN_MAX_BYTES` bytes.
fn vault_name(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|t| !t.is_empty() && t.len() <= TOKEN_MAX_BYTES)
}

/// What a field failing `vault_name` is told.
fn vault_name_shape() -> String {
    format!("must be a string of 1 to {TOKEN_MAX_BYTES} bytes")
}

/// A vault card as `token/info` shows it (the SDK's `TokenInfo`).
fn card_wire(card: &VaultCardRecord) -> TokenInfo {
    TokenInfo::Card(VaultCardWire {
        number_hash: card.number_hash.clone(),
        brand: card.brand.clone(),
        last4: card.last4.clone(),
        bin: card.bin.clone(),
    })
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
    match vault_name(inner.get("token")) {
        Some(t) => Ok(t.to_string()),
        None => Err(ApiReply::invalid(vec![detail(&path, vault_name_shape())])),
    }
}

/// A public token as `token/info` shows it: active until used or expired.
fn public_token_info(t: &PublicTokenRecord, now: time::OffsetDateTime) -> TokenInfo {
    TokenInfo::PublicToken(PublicTokenInfo {
        token: t.token.clone(),
        is_active: t.used_at.is_none() && now < t.expires_at,
        created_at: timestamp(t.created_at),
        expires_at: timestamp(t.expires_at),
        used_at: t.used_at.map(timestamp),
        widgets: t.grant.wire(),
    })
}
