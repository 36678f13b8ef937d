//! `token` (a public token for the widgets) and `token/info` (what a public
//! or recurrent token is). The widgets' pages and the card vault come with
//! the rest of the widgets issue; `token/info` of a card says so.

use open131_domain::books::Shape;
use open131_domain::ledger::Book;
use open131_domain::session::SessionState;
use open131_domain::widget::{self, PUBLIC_TOKEN_TTL_S};
use open131_store::PublicTokenRecord;
use open131_wire::api::timestamp;
use serde_json::{json, Map, Value};

use super::{detail, from_domain, ApiReply, Ctx};

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
            token: token.iter().map(|b| format!("{b:02x}")).collect(),
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
        if kind == "card" {
            let why = "card tokens (number_hash) come with the card vault, which is not served yet";
            return Err(ApiReply::invalid(vec![detail("card", why)]));
        }
        super::only_fields(body, &["type", kind], &[])?;
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
