//! Two `open131 serve` nodes on one PostgreSQL database, a load generator
//! alternating between them (KYC checks, payouts with confirm, status reads,
//! repeats of every payout's idempotency key on the other node), one node
//! killed with SIGKILL mid-load and restarted; then every invariant of a
//! payment core is checked against the database.
//!
//! Runs when `OPEN131_TEST_BACKEND=postgres` (scripts/test's second pass);
//! on SQLite there is only ever one node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::{cli, person, serve_with, signed_as, webhook_receiver, Server, Site};
use open131_store::{Location, WebhookFilter, WebhookState};
use open131_wire::sign::SigningKey;
use serde_json::{json, Value};

/// Operations the load generator runs (a third each: checks, payouts, reads).
const OPERATIONS: usize = 240;
/// Concurrent workers of the load generator.
const WORKERS: usize = 8;
/// The operation after which node B is killed.
const KILL_AFTER: usize = 80;
/// Amount of every payout, in kopecks.
const AMOUNT: i64 = 10_000;
/// Longest wait for the nodes to finish every payout and delivery (beyond the
/// 60 s webhook lease of a killed node's claims).
const SETTLE_MAX_S: u64 = 120;

/// What the partner was told: acknowledged checks and payouts.
#[derive(Default)]
struct Acks {
    /// Check id → passport number sent.
    checks: HashMap<String, String>,
    /// Session id → idempotency key.
    sessions: HashMap<String, String>,
    /// Repeats of a used key that were *not* refused (must stay empty).
    repeats_accepted: Vec<String>,
}

/// The two nodes' current URLs (node B's changes when it restarts).
type Urls = Arc<RwLock<[String; 2]>>;

fn payout(key: &str) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
        "amount_details": {"amount": AMOUNT, "currency": "rub"},
        "metadata": {"key": key}
    })
}

struct Load {
    http: reqwest::Client,
    urls: Urls,
    key: SigningKey,
    acks: Mutex<Acks>,
}

impl Load {
    fn url(&self, node: usize) -> String {
        self.urls.read().unwrap()[node % 2].clone()
    }

    async fn check(&self, i: usize) {
        let body = open131_client::signed_check_body(&person(i), &self.key).unwrap();
        let sent = self.http.post(format!("{}/api/v1.1/check", self.url(i))).header("X-PARTNER-PROJECT", "demo");
        let Ok(r) = sent.body(body).send().await else { return };
        let Ok(v) = r.json::<Value>().await else { return };
        if let Some(id) = v["data"]["id"].as_str() {
            let passport = person(i)["passport_number"].as_str().unwrap().to_string();
            self.acks.lock().unwrap().checks.insert(id.to_string(), passport);
        }
    }

    /// Creates a payout on one node, repeats its key on the other, waits for
    /// the bank to be ready and confirms it (on whichever node answers).
    async fn payout(&self, i: usize) {
        let key = format!("two-nodes-{i}");
        let created =
            signed_as(&self.http, &self.url(i), "session/init/payout", &self.key, &payout(&key), Some(&key)).await;
        let Some(session) = created.and_then(|v| v["session"]["id"].as_str().map(str::to_string)) else { return };
        self.acks.lock().unwrap().sessions.insert(session.clone(), key.clone());
        let repeat =
            signed_as(&self.http, &self.url(i + 1), "session/init/payout", &self.key, &payout(&key), Some(&key)).await;
        if let Some(v) = repeat.filter(|v| v["status"] == "ok") {
            self.acks.lock().unwrap().repeats_accepted.push(format!("{key}: {v}"));
        }
        self.confirm_when_ready(&session, i).await;
    }

    async fn confirm_when_ready(&self, session: &str, i: usize) {
        let body = json!({"session_id": session});
        for attempt in 0..200 {
            let url = self.url(i + attempt);
            let Some(status) = signed_as(&self.http, &url, "session/status", &self.key, &body, None).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match status["session"]["status"].as_str() {
                Some("in_progress") if status["session"]["next_action"] == "confirm" => {
                    let done = signed_as(&self.http, &url, "session/confirm", &self.key, &body, None).await;
                    if done.as_ref().is_some_and(|v| v["status"] == "ok") {
                        return;
                    }
                }
                Some("in_progress") => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => return,
            }
        }
    }

    async fn read(&self, i: usize) {
        let known: Vec<String> = self.acks.lock().unwrap().sessions.keys().take(32).cloned().collect();
        if let Some(session) = known.get(i % known.len().max(1)) {
            let body = json!({"session_id": session});
            let v = signed_as(&self.http, &self.url(i), "session/status", &self.key, &body, None).await;
            if let Some(v) = v {
                assert_eq!(v["session"]["id"], session.as_str(), "a status read answered another session: {v}");
            }
        }
    }
}

/// A node of the test: checks decided at once, payouts answered quickly, and
/// a short webhook lease, so the deliveries a killed node had claimed are
/// taken over within the test (production keeps the default).
fn node(site: &Site) -> Server {
    serve_with(site, &["--kyc-delay", "0", "--payout-delay", "200ms", "--webhook-lease", "60s"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_one_killed_mid_load_keep_every_invariant() {
    if std::env::var("OPEN131_TEST_BACKEND").as_deref() != Ok("postgres") {
        eprintln!("two_nodes: runs with OPEN131_TEST_BACKEND=postgres (scripts/test's second pass)");
        return;
    }
    let a_site = Site::new().await;
    let b_site = a_site.node();
    let (hook_url, seen) = webhook_receiver(200);
    let a = node(&a_site);
    let b = Arc::new(Mutex::new(Some(node(&b_site))));
    assert!(cli(&a_site, &["project", "set", "demo", "--webhook-url", &hook_url]).0);
    let key = SigningKey::from_pem(&std::fs::read_to_string(a_site.path().join("demo.key.pem")).unwrap()).unwrap();
    let b_url = b.lock().unwrap().as_ref().unwrap().url.clone();
    let load = Arc::new(Load {
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        urls: Arc::new(RwLock::new([a.url.clone(), b_url])),
        key,
        acks: Mutex::default(),
    });

    run_load(&load, &b, &b_site).await;
    let acks = std::mem::take(&mut *load.acks.lock().unwrap());
    assert!(acks.repeats_accepted.is_empty(), "a used idempotency key was accepted again: {:?}", acks.repeats_accepted);
    assert!(
        acks.checks.len() >= OPERATIONS / 6 && acks.sessions.len() >= OPERATIONS / 6,
        "too little was acknowledged"
    );

    let store =
        open131_store::open(&Location::choose(a_site.database_url.as_deref(), a_site.path()).unwrap()).await.unwrap();
    settle(store.as_ref(), a_site.database_url.as_deref().unwrap(), &load, &acks).await;
    check_invariants(store.as_ref(), a_site.database_url.as_deref().unwrap(), &acks, &seen).await;
    drop(a);
}

/// Workers share the operations; node B is killed after [`KILL_AFTER`] of them
/// and restarted a moment later, while the others go on.
async fn run_load(load: &Arc<Load>, b: &Arc<Mutex<Option<Server>>>, b_site: &Site) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killed = Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (load, next, b, killed) = (load.clone(), next.clone(), b.clone(), killed.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= OPERATIONS {
                    return;
                }
                if i == KILL_AFTER {
                    if let Some(mut server) = b.lock().unwrap().take() {
                        server.kill();
                    }
                    killed.notify_one();
                }
                match i % 3 {
                    0 => load.check(i).await,
                    1 => load.payout(i).await,
                    _ => load.read(i).await,
                }
            }
        });
    }
    killed.notified().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = node(b_site);
    load.urls.write().unwrap()[1] = server.url.clone();
    *b.lock().unwrap() = Some(server);
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Waits until every acknowledged check is decided, every acknowledged payout
/// is final, every other stored payout is final or waits for a confirmation
/// nobody will send, and no webhook is pending; confirms the payouts that
/// became ready only after their node died (work claimed by the killed node
/// is taken over once its lease runs out).
async fn settle(store: &dyn open131_store::Store, url: &str, load: &Load, acks: &Acks) {
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(SETTLE_MAX_S);
    loop {
        let mut undecided = 0;
        for id in acks.checks.keys() {
            let check = store.check("demo", id.parse().unwrap()).await.unwrap().unwrap();
            undecided += usize::from(check.finished_at.is_none());
        }
        let mut unfinished = 0;
        let rows = db.query(
            "SELECT s.id, p.state, s.finished_at_us IS NULL FROM sessions s
             JOIN payouts p ON p.project_id = s.project_id AND p.session_id = s.id WHERE s.project_id = 'demo'",
            &[],
        );
        for (n, row) in rows.await.unwrap().iter().enumerate() {
            let (id, state, open): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
            let known = acks.sessions.contains_key(&id);
            if known && state == "awaiting_confirm" {
                load.confirm_when_ready(&id, n).await;
            }
            unfinished += usize::from(open && (known || state != "awaiting_confirm"));
        }
        let hooks = store.webhooks(WebhookFilter { project_id: Some("demo".into()), ..Default::default() }).await;
        let pending = hooks.unwrap().iter().filter(|w| w.state == WebhookState::Pending).count();
        if pending == 0 && unfinished == 0 && undecided == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {pending} webhooks pending, {unfinished} payouts unfinished, {undecided} checks undecided"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn check_invariants(store: &dyn open131_store::Store, url: &str, acks: &Acks, seen: &common::Seen) {
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);

    // Every acknowledged check is there with the passport it was sent with, and decided.
    for (id, passport) in &acks.checks {
        let row = db
            .query_opt(
                "SELECT passport_number, outcome FROM kyc_checks WHERE project_id = 'demo' AND id = $1",
                &[&id.parse::<i64>().unwrap()],
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged check {id} is missing"));
        assert_eq!(row.get::<_, String>(0), *passport, "check {id}");
        assert!(row.get::<_, Option<String>>(1).is_some(), "check {id} was never decided");
    }

    // Every acknowledged session is there; exactly one session per idempotency key.
    let rows = db
        .query(
            "SELECT s.id, p.metadata, p.state, p.amount FROM sessions s
             LEFT JOIN payouts p ON p.project_id = s.project_id AND p.session_id = s.id
             WHERE s.project_id = 'demo'",
            &[],
        )
        .await
        .unwrap();
    let mut per_key: HashMap<String, Vec<String>> = HashMap::new();
    for r in &rows {
        let metadata: Value = serde_json::from_str(&r.get::<_, Option<String>>(1).unwrap()).unwrap();
        per_key.entry(metadata["key"].as_str().unwrap().to_string()).or_default().push(r.get(0));
    }
    for (key, sessions) in &per_key {
        assert_eq!(sessions.len(), 1, "idempotency key {key} has sessions {sessions:?}");
    }
    let stored: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    for session in acks.sessions.keys() {
        assert!(stored.contains(session), "acknowledged session {session} is missing");
    }

    // The ledger balances, matches the wallet, and no payout was debited twice.
    let wallet = store
        .wallets("demo")
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.currency == "rub" && w.book.as_str() == "main")
        .unwrap();
    let sums: HashMap<String, i64> = store.posting_sums("demo", "rub").await.unwrap().into_iter().collect();
    assert_eq!(sums.values().sum::<i64>(), 0, "postings must sum to zero: {sums:?}");
    assert_eq!(
        (sums["available"], sums["reserved"], sums["payouts"], sums["funding"]),
        (wallet.available, wallet.reserved, wallet.payouts, wallet.funding)
    );
    let twice = db
        .query(
            "SELECT session_id FROM ledger_postings WHERE movement = 'debit' AND account = 'payouts'
             GROUP BY session_id HAVING count(*) > 1",
            &[],
        )
        .await
        .unwrap();
    assert!(twice.is_empty(), "payouts debited twice: {}", twice.len());
    // Every acknowledged payout succeeds in the sandbox. A session committed by
    // the killed node whose answer never reached the partner was never confirmed
    // by anyone: it may only wait for that confirmation, its amount reserved.
    let state_of: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(2))).collect();
    for session in acks.sessions.keys() {
        assert_eq!(state_of[session], "succeeded", "acknowledged payout {session}");
    }
    let succeeded = state_of.values().filter(|p| *p == "succeeded").count() as i64;
    let waiting = state_of.values().filter(|p| *p == "awaiting_confirm").count() as i64;
    assert_eq!((succeeded + waiting) as usize, rows.len(), "payout states: {state_of:?}");
    assert!(waiting as usize <= WORKERS, "only answers lost with the killed node may go unconfirmed: {state_of:?}");

    assert_eq!(wallet.payouts, succeeded * AMOUNT, "paid out = the succeeded payouts, once each");
    assert_eq!(wallet.reserved, 0, "nothing stays reserved: a payout reserves its amount only when confirmed");

    // Every committed webhook was delivered, and the receiver got it.
    let received: HashSet<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(body, _)| {
            let v: Value = serde_json::from_str(body).unwrap();
            (v["session"]["id"].as_str().unwrap().to_string(), v["type"].as_str().unwrap().to_string())
        })
        .collect();
    let hooks = store.webhooks(WebhookFilter { project_id: Some("demo".into()), ..Default::default() }).await.unwrap();
    assert!(!hooks.is_empty());
    eprintln!(
        "two_nodes: {} checks and {} payouts acknowledged, {} sessions stored ({succeeded} succeeded), \
         {} webhooks committed, {} deliveries received",
        acks.checks.len(),
        acks.sessions.len(),
        rows.len(),
        hooks.len(),
        seen.lock().unwrap().len()
    );
    for w in hooks {
        assert_eq!(w.state, WebhookState::Delivered, "webhook {} ({})", w.id, w.kind);
        assert!(received.contains(&(w.subject_id.clone(), w.kind.clone())), "webhook {} never arrived", w.id);
    }
}
