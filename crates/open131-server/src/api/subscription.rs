//! Subscriptions: `subscription/cancel` and `subscription/restore`, and the
//! bank's charges every period ([`charge_due`], run with the timers). A
//! subscription is made by the engine when its first payment succeeds
//! ([`open131_domain::subscription`] has the rules).

use open131_domain::dates::moscow_today;
use open131_domain::payment::{self, PaymentPlan};
use open131_domain::payment_flow::PaymentState;
use open131_domain::payout::Money;
use open131_domain::session::Event;
use open131_domain::subscription::{self, SubscriptionEvent};
use open131_store::{PaymentRecord, PaymentSubscription, SubscriptionRecord, SubscriptionWrite, WriteOutcome};
use serde_json::{Map, Value};

use super::engine::{self, Apply, EngineError, VERSION_CONFLICT_RETRIES_MAX};
use super::{detail, ApiReply, Ctx};
use crate::app::App;

/// Most subscriptions charged in one round.
pub const CHARGE_BATCH_MAX: usize = 256;
/// A claimed subscription is left to the node that claimed it this long, in
/// seconds; one whose charge never committed is claimed again then.
pub const CHARGE_LEASE_S: i64 = 60;
/// Longest `subscription_id` read, in bytes.
pub const SUBSCRIPTION_ID_MAX_BYTES: usize = 64;

impl Ctx<'_> {
    /// `subscription/cancel` and `subscription/restore` (`{subscription_id}`):
    /// `{"status": "ok"}`; doing either twice is harmless.
    pub(super) async fn subscription(
        &self,
        body: &Map<String, Value>,
        event: SubscriptionEvent,
    ) -> Result<ApiReply, ApiReply> {
        super::only_fields(body, &["subscription_id"], &[])?;
        let id = match body.get("subscription_id") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= SUBSCRIPTION_ID_MAX_BYTES => s.as_str(),
            None | Some(Value::Null) => return Err(ApiReply::invalid(vec![detail("subscription_id", "is required")])),
            Some(_) => {
                let why = format!("must be a string of 1 to {SUBSCRIPTION_ID_MAX_BYTES} bytes");
                return Err(ApiReply::invalid(vec![detail("subscription_id", &why)]));
            }
        };
        for _ in 0..VERSION_CONFLICT_RETRIES_MAX {
            let current = self.app.store.subscription(self.project_id, id).await.map_err(|e| ApiReply::internal(&e))?;
            // Another project's subscription is indistinguishable from none.
            let Some(current) = current else {
                return Err(ApiReply::invalid(vec![detail("subscription_id", "no such subscription")]));
            };
            let now = self.now;
            let schedule =
                subscription::transition(current.schedule, event, now).map_err(|e| ApiReply::internal(&e))?;
            if schedule == current.schedule {
                return Ok(ok());
            }
            let write = SubscriptionWrite {
                expected_version: Some(current.version),
                record: SubscriptionRecord { schedule, updated_at: now, ..current },
            };
            match self.app.store.write_subscription(write, now).await.map_err(|e| ApiReply::internal(&e))? {
                WriteOutcome::Applied(_) => {
                    // A restored subscription may be due at once.
                    self.app.processor_wake.notify_one();
                    return Ok(ok());
                }
                WriteOutcome::VersionConflict => continue,
                other => return Err(ApiReply::internal(&format!("a subscription write answered {other:?}"))),
            }
        }
        Err(ApiReply::internal(&"too many concurrent changes to one subscription"))
    }
}

fn ok() -> ApiReply {
    ApiReply::ok(&open131_wire::answers::StatusResponse::ok())
}

/// Charges every active subscription due now; returns how many charges began.
pub async fn charge_due(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let lease_until = now + time::Duration::seconds(CHARGE_LEASE_S);
    let clocked = app.clocked_projects().await;
    let mut due = app.store.claim_due_subscriptions(now, lease_until, CHARGE_BATCH_MAX).await?;
    // A project on virtual time: its charges are due by its own clock (leased on the real one).
    for (project, offset) in clocked {
        let own = open131_store::OwnClaim::ahead(offset, now, lease_until);
        match app.store.claim_project_due_subscriptions(&project, own, CHARGE_BATCH_MAX).await {
            Ok(more) => due.extend(more),
            Err(e) => tracing::error!(error = %e, %project, "could not claim a clocked project's subscriptions"),
        }
    }
    let mut begun = 0;
    for s in due {
        let id = s.id.clone();
        match charge(app, s).await {
            Ok(()) => begun += 1,
            // Cancelled or changed since the claim: its lease ends and the claim sees it as it is.
            Err(EngineError::NoSuchSession) => {}
            Err(e) => {
                tracing::error!(error = %e, subscription = %id, "a subscription's charge failed; tried again when its lease ends")
            }
        }
    }
    Ok(begun)
}

/// Begins one charge: a session of its own whose payment repeats the first
/// one's (amount, card, customer, metadata) without the customer, written
/// with the subscription moved to its next point (a stale version writes
/// neither: the engine answers `NoSuchSession` for the session never made).
async fn charge(app: &App, s: SubscriptionRecord) -> Result<(), EngineError> {
    let now = app.now_for(&s.project_id).await;
    let schedule = subscription::transition(s.schedule, SubscriptionEvent::Charge, now)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let amount = Money::new(s.amount, &s.currency).map_err(|e| EngineError::Internal(e.to_string()))?;
    let plan: PaymentPlan = payment::charge_plan(&amount, s.card_expiry.as_ref(), moscow_today(now));
    let payment = PaymentRecord {
        id: engine::new_payment_id(),
        amount: s.amount,
        currency: s.currency.clone(),
        method_masked: s.method_masked.clone(),
        customer: s.customer.clone(),
        participant_details: None,
        metadata: s.metadata.clone(),
        return_url: None,
        plan,
        state: PaymentState::Preparing,
        captured_amount: None,
        created_at: now,
        fee_amount: 0,
        three_ds_attempts: 0,
        refunds: Vec::new(),
        recurrent: false,
        recurrent_token: None,
        finished_at: None,
        split: None,
        subscription: Some(PaymentSubscription {
            period: schedule.period,
            id: Some(s.id.clone()),
            initial: false,
            schedule: Some(schedule),
        }),
        card_expiry: s.card_expiry,
    };
    // One charge per point of the schedule, whatever happens to this node.
    let key = format!("{}subscription:{}:{}", super::BANK_KEY_PREFIX, s.id, schedule.charges);
    let mut record = engine::unsaved(&s.project_id, s.api_version, now);
    record.submerchant = s.submerchant.clone();
    let how = Apply {
        idempotency: Some((key, "subscription/charge".to_string())),
        new_payment: Some(payment),
        subscription: Some(SubscriptionWrite {
            expected_version: Some(s.version),
            record: SubscriptionRecord { schedule, updated_at: now, ..s },
        }),
        ..Apply::default()
    };
    engine::apply(app, record, Event::StartPayment, how).await.map(|_| ())
}
