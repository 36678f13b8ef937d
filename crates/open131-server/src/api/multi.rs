//! `session/multi/init`: a customer's payment and then payouts, in one
//! session. The request is split into its operations' bodies
//! ([`open131_domain::multi`]), each parsed by its own method's parser; the
//! payment starts at once and the payouts join the session waiting their turn
//! ([`PayoutState::Waiting`]): the engine begins each when the one before it
//! has succeeded, so money comes in before it goes out.

use open131_domain::books::Shape;
use open131_domain::ledger::Book;
use open131_domain::multi::{self, MultiBodies};
use open131_domain::payment::{self, PaymentCall};
use open131_domain::payout::{self, SandboxPlan};
use open131_domain::payout_flow::PayoutState;
use open131_domain::session::Event;
use open131_domain::FieldError;
use open131_store::PayoutRecord;
use serde_json::{Map, Value};

use super::engine::{self, Apply};
use super::{from_domain, ApiReply, Ctx};

impl Ctx<'_> {
    pub(super) async fn init_multi(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let bodies = multi::split(body, self.method_name()).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let today = self.today();
        let saved = self.saved_cards(bodies.payment.get("payment_details")).await?;
        let payment = payment::parse_payment_with(&bodies.payment, PaymentCall::Init, today, &saved);
        let mut payout_errors = Vec::new();
        let mut requests = Vec::new();
        for (i, b) in bodies.payouts.iter().enumerate() {
            match payout::parse_payout_named(b, today, self.method_name(), false) {
                Ok(r) => requests.push(r),
                Err(e) => payout_errors.push((i, e)),
            }
        }
        let payment = match (payment, payout_errors.is_empty()) {
            (Ok(p), true) => p,
            (p, _) => {
                let errors = bodies.name_errors(p.err().unwrap_or_default(), payout_errors);
                return Err(ApiReply::invalid(from_domain(errors)));
            }
        };
        // Its payouts pay the payment's money on: parts of it to contractors
        // as well would pay out more than came in.
        if payment.split.is_some() {
            let why = "split payments are served by session/init/payment and session/start/payment: \
                       a multi-session's payouts pay its payment's money on";
            return Err(ApiReply::invalid(vec![super::detail(&bodies.payment_field("revenue_split_info"), why)]));
        }
        // Its charges would be payments without the payouts.
        if payment.subscription.is_some() {
            let why = "subscriptions start with session/init/payment or session/start/payment, not a multi-session";
            return Err(ApiReply::invalid(vec![super::detail(
                &bodies.payment_field("payment_options.subscription"),
                why,
            )]));
        }
        let payment = self.checked_payment(payment, &|field| bodies.payment_field(field)).await?;
        let now = self.now;
        let mut waiting = Vec::new();
        for (i, request) in requests.into_iter().enumerate() {
            let name = |field: &str| bodies.payout_field(i, field);
            // Its payouts run after the payment, each checked against the
            // person's yearly income alone: not served `[INF]`.
            if request.fiscalization.is_some() {
                let why = "a multi-session's payouts carry no fiscalization here: pay the self-employed with \
                           session/init/payout/fiscalization";
                return Err(ApiReply::invalid(vec![super::detail(&name("fiscalization_details"), why)]));
            }
            let mut record = self.payout_named(request, (Book::Main, Shape::Payout), None, &name).await?;
            refuse_early_return(&bodies, i, &record, self.method_name())?;
            record.state = PayoutState::Waiting;
            // Listed in order: a session's payouts are read back by creation time.
            record.created_at = now + time::Duration::microseconds(i64::try_from(i).unwrap_or(i64::MAX));
            waiting.push(record);
        }
        let how = Apply {
            idempotency: self.idempotency.clone(),
            new_payment: Some(payment),
            waiting_payouts: waiting,
            ..Apply::default()
        };
        let done = engine::apply(self.app, self.new_record(), Event::StartPayment, how);
        Ok(self.reply(&done.await.map_err(Self::engine_error)?))
    }
}

/// A session keeps one bank return, which reaches the payout that ran last:
/// only the last payout may be one the recipient's bank returns (sandbox).
fn refuse_early_return(bodies: &MultiBodies, i: usize, record: &PayoutRecord, key: &str) -> Result<(), ApiReply> {
    if record.plan != SandboxPlan::SucceedThenReturned || i + 1 == bodies.payouts.len() {
        return Ok(());
    }
    let why = "pays to a sandbox account whose bank returns the payout: in a multi-session only the last payout may";
    Err(ApiReply::invalid(from_domain(vec![FieldError::new(bodies.payout_field(i, key), why)])))
}
