//! The self-employed (NPD) methods: `npd/check` and
//! `npd/taxpayer/check_personal_info` store a request with the tax service's
//! answer worked out at once ([`open131_domain::npd::answer`]), and
//! `npd/request/status` shows it once [`NPD_REQUEST_PENDING_S`] have passed
//! (`pending` before, as the docs say to ask again). And the one way a link
//! changes ([`change_link`]), shared by the linking widget, the operator's
//! admin endpoint and the CLI.

use open131_domain::ident::Inn;
use open131_domain::npd::{self, Taxpayer, NPD_REQUEST_PENDING_S};
use open131_domain::npd_link::{self, LinkEvent, LinkState, WrongLinkState};
use open131_store::{NpdLinkRecord, NpdRequestKind, NpdRequestRecord, Store, StoreError};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{detail, from_domain, ApiReply, Ctx};

impl Ctx<'_> {
    /// `npd/check` (`kind` check) and `npd/taxpayer/check_personal_info`.
    pub(super) async fn npd_ask(&self, body: &Map<String, Value>, kind: NpdRequestKind) -> Result<ApiReply, ApiReply> {
        let ask = match kind {
            NpdRequestKind::Check => npd::parse_check(body),
            NpdRequestKind::PersonalInfo => npd::parse_personal_info(body),
        };
        let ask = ask.map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let store = self.app.store.as_ref();
        let taxpayer = taxpayer(store, ask.inn()).await.map_err(|e| ApiReply::internal(&e))?;
        let link = store.npd_link(self.project_id, ask.inn().expose()).await.map_err(|e| ApiReply::internal(&e))?;
        let linked = link.is_some_and(|l| l.state == LinkState::Linked);
        let now = self.app.clock.now();
        let request = NpdRequestRecord {
            project_id: self.project_id.to_string(),
            id: super::engine::new_id("npd_"),
            inn: ask.inn().expose().to_string(),
            kind,
            answer: npd::answer(&ask, &taxpayer, linked),
            created_at: now,
            ready_at: now + time::Duration::seconds(NPD_REQUEST_PENDING_S),
        };
        let id = request.id.clone();
        store.insert_npd_request(request).await.map_err(|e| ApiReply::internal(&e))?;
        Ok(ApiReply::ok(&json!({"status": "ok", "request_id": id})))
    }

    /// `npd/request/status`: `pending` until the answer is ready, then the answer.
    pub(super) async fn npd_status(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let id = npd::parse_request_status(body).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let found = self.app.store.npd_request(self.project_id, &id).await.map_err(|e| ApiReply::internal(&e))?;
        // Another project's request is indistinguishable from none.
        let found = found.ok_or_else(|| ApiReply::invalid(vec![detail("request_id", "no such request")]))?;
        if self.app.clock.now() < found.ready_at {
            return Ok(ApiReply::ok(&json!({"status": "pending", "request_id": id})));
        }
        let (status, mut fields) = found.answer.wire();
        fields.insert("status".into(), json!(status));
        fields.insert("request_id".into(), json!(id));
        Ok(ApiReply::ok(&Value::Object(fields)))
    }
}

/// What the tax service knows of `inn`: the operator's word, else the sandbox's rules.
pub async fn taxpayer(store: &dyn Store, inn: &Inn) -> Result<Taxpayer, StoreError> {
    Ok(store.npd_taxpayer(inn.expose()).await?.unwrap_or_else(|| npd::sandbox_taxpayer(inn)))
}

/// How a link change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// Saved: the link stands at this state now.
    Changed(LinkState),
    /// The event leaves the link as it was (a second request while it waits).
    Unchanged(LinkState),
    /// The link's state does not take the event.
    Refused(WrongLinkState),
    /// Another change came first; it stands.
    Lost,
}

/// Applies `event` to `project_id`'s link of `inn`: one write guarded by the
/// version read, through [`npd_link::transition`].
pub async fn change_link(
    store: &dyn Store,
    (project_id, inn): (&str, &str),
    event: LinkEvent,
    now: OffsetDateTime,
) -> Result<LinkChange, StoreError> {
    let link = store.npd_link(project_id, inn).await?;
    let (state, version) = link.map_or((LinkState::NotRequested, None), |l| (l.state, Some(l.version)));
    let next = match npd_link::transition(state, event) {
        Ok(next) if next == state => return Ok(LinkChange::Unchanged(state)),
        Ok(next) => next,
        Err(wrong) => return Ok(LinkChange::Refused(wrong)),
    };
    let record = NpdLinkRecord {
        project_id: project_id.to_string(),
        inn: inn.to_string(),
        state: next,
        version: version.map_or(1, |v| v + 1),
        updated_at: now,
    };
    Ok(match store.save_npd_link(record, version).await? {
        true => LinkChange::Changed(next),
        false => LinkChange::Lost,
    })
}
