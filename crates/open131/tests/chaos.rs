//! The chaos run (issue 15 §5): `open131 serve` processes under a mixed
//! load (KYC checks, payouts with confirm, card payments with confirm,
//! status reads, every idempotency key repeated), killed with SIGKILL at
//! seeded random moments and restarted; then every invariant of a payment
//! core is checked over the API and the database, and a table is printed.
//!
//! On SQLite one node (a kill stops the whole service until its restart);
//! on PostgreSQL (`OPEN131_TEST_BACKEND=postgres`, scripts/test's second
//! pass) two nodes behind an alternating client, either of them killed.
//! The scale comes from the environment (`CHAOS_OPERATIONS`, `CHAOS_KILLS`,
//! `CHAOS_SEED`): small in CI, larger through `scripts/chaos.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::{cli, person, serve_with, signed_as, webhook_receiver, Server, Site};
use open131_store::{Location, WebhookFilter, WebhookState};
use open131_wire::sign::SigningKey;
use serde_json::{json, Value};

/// Concurrent workers of the load generator.
const WORKERS: usize = 8;
/// Amount of every payout and payment, in kopecks.
const AMOUNT: i64 = 10_000;
/// Longest wait for the nodes to finish every operation and delivery
/// (beyond the 60 s webhook lease, for a claim whose owner was not yet seen dead).
const SETTLE_MAX_S: u64 = 120;

/// The run's scale: operations, kills, and the seed of the kill schedule.
struct Scale {
    operations: usize,
    kills: usize,
    seed: u64,
}

impl Scale {
    fn from_env() -> Self {
        let var = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        Self {
            operations: var("CHAOS_OPERATIONS", 240) as usize,
            kills: var("CHAOS_KILLS", 3) as usize,
            seed: var("CHAOS_SEED", 1),
        }
    }

    /// When to kill which node, and how long it stays down (ms): seeded.
    fn schedule(&self, nodes: usize) -> Vec<(usize, usize, u64)> {
        let mut state = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let span = (self.operations * 2 / 3).max(1) as u64;
        let mut kills: Vec<(usize, usize, u64)> = (0..self.kills)
            .map(|_| {
                let at = self.operations / 6 + (next() % span) as usize;
                (at, (next() % nodes as u64) as usize, 100 + next() % 500)
            })
            .collect();
        kills.sort();
        kills.dedup_by_key(|k| k.0);
        kills
    }
}

/// What the partner was told.
#[derive(Default)]
struct Acks {
    /// Check id → passport number sent.
    checks: HashMap<String, String>,
    /// Session id → idempotency key, for payouts and for payments.
    payouts: HashMap<String, String>,
    payments: HashMap<String, String>,
    /// Repeats of a used key that were *not* refused (must stay empty).
    repeats_accepted: Vec<String>,
}

/// The nodes: each one's site, its server while it runs, and its URL.
struct Nodes {
    sites: Vec<Site>,
    servers: Vec<Mutex<Option<Server>>>,
    urls: RwLock<Vec<String>>,
    /// Per kill: ms from the kill until the restarted node answered.
    resumed_ms: Mutex<Vec<u128>>,
}

/// A node of the run: checks decided at once, payouts answered quickly, and
/// a short webhook lease, so a delivery claimed by a node not yet seen dead
/// is taken over within the run (production keeps the default).
fn node(site: &Site) -> Server {
    serve_with(site, &["--kyc-delay", "0", "--payout-delay", "200ms", "--webhook-lease", "60s"])
}

struct Load {
    http: reqwest::Client,
    nodes: Nodes,
    key: SigningKey,
    acks: Mutex<Acks>,
}

fn payout(key: &str) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
        "amount_details": {"amount": AMOUNT, "currency": "rub"},
        "metadata": {"key": key}
    })
}

fn payment(key: &str) -> Value {
    json!({
        "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242",
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}},
        "amount_details": {"amount": AMOUNT, "currency": "rub"},
        "customer": {"reference": "chaos"},
        "metadata": {"key": key}
    })
}

impl Load {
    /// The URL of node `i` (modulo the nodes), or of another that runs, as a
    /// load balancer's health check would choose; waits while none runs.
    async fn url(&self, i: usize) -> String {
        loop {
            let count = self.nodes.servers.len();
            let running =
                (0..count).map(|k| (i + k) % count).find(|n| self.nodes.servers[*n].lock().unwrap().is_some());
            if let Some(n) = running {
                return self.nodes.urls.read().unwrap()[n].clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn check(&self, i: usize) {
        let body = open131_client::signed_check_body(&person(i), &self.key).unwrap();
        let sent = self.http.post(format!("{}/api/v1.1/check", self.url(i).await)).header("X-PARTNER-PROJECT", "demo");
        let Ok(r) = sent.body(body).send().await else { return };
        let Ok(v) = r.json::<Value>().await else { return };
        if let Some(id) = v["data"]["id"].as_str() {
            let passport = person(i)["passport_number"].as_str().unwrap().to_string();
            self.acks.lock().unwrap().checks.insert(id.to_string(), passport);
        }
    }

    /// Starts a payout or a payment on one node, repeats its key on the
    /// next, and drives it to its end (confirm when asked).
    async fn operation(&self, i: usize, is_payout: bool) {
        let key = format!("chaos-{i}");
        let (method, body) =
            if is_payout { ("session/init/payout", payout(&key)) } else { ("session/init/payment", payment(&key)) };
        let created = signed_as(&self.http, &self.url(i).await, method, &self.key, &body, Some(&key)).await;
        let Some(session) = created.and_then(|v| v["session"]["id"].as_str().map(str::to_string)) else { return };
        {
            let mut acks = self.acks.lock().unwrap();
            let list = if is_payout { &mut acks.payouts } else { &mut acks.payments };
            list.insert(session.clone(), key.clone());
        }
        let repeat = signed_as(&self.http, &self.url(i + 1).await, method, &self.key, &body, Some(&key)).await;
        if let Some(v) = repeat.filter(|v| v["status"] == "ok") {
            self.acks.lock().unwrap().repeats_accepted.push(format!("{key}: {v}"));
        }
        self.drive(&session, i).await;
    }

    /// Confirms the session when it asks, until it ends (or 10 s pass).
    async fn drive(&self, session: &str, i: usize) {
        let body = json!({"session_id": session});
        for attempt in 0..200 {
            let url = self.url(i + attempt).await;
            let Some(status) = signed_as(&self.http, &url, "session/status", &self.key, &body, None).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match status["session"]["status"].as_str() {
                Some("in_progress") if status["session"]["next_action"] == "confirm" => {
                    let done = signed_as(&self.http, &url, "session/confirm", &self.key, &body, None).await;
                    if done.as_ref().is_some_and(|v| v["status"] == "ok") {
                        continue;
                    }
                }
                Some("in_progress") => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => return,
            }
        }
    }

    async fn read(&self, i: usize) {
        let known: Vec<String> = self.acks.lock().unwrap().payouts.keys().take(32).cloned().collect();
        if let Some(session) = known.get(i % known.len().max(1)) {
            let body = json!({"session_id": session});
            let v = signed_as(&self.http, &self.url(i).await, "session/status", &self.key, &body, None).await;
            if let Some(v) = v {
                assert_eq!(v["session"]["id"], session.as_str(), "a status read answered another session: {v}");
            }
        }
    }

    /// Kills node `n` now, unless it is down already; restarts it after
    /// `down_ms` and records how long until it answered. The restarted node
    /// takes traffic (and can be killed again) only once it answered, as
    /// behind a load balancer's health check: a later kill must not meet a
    /// node whose restart is still being probed.
    fn kill(self: &Arc<Self>, n: usize, down_ms: u64) -> Option<tokio::task::JoinHandle<()>> {
        let killed_at = Instant::now();
        let mut server = self.nodes.servers[n].lock().unwrap().take()?;
        server.kill();
        let load = self.clone();
        Some(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(down_ms)).await;
            let starting = load.clone();
            let mut server = tokio::task::spawn_blocking(move || node(&starting.nodes.sites[n])).await.unwrap();
            let probe = json!({"session_id": "ps_probe"});
            while signed_as(&load.http, &server.url, "session/status", &load.key, &probe, None).await.is_none() {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!("node {n} exited after its restart ({status}): {}", server.stderr());
                }
                if killed_at.elapsed() > Duration::from_secs(60) {
                    server.kill();
                    let log = server.stderr();
                    let tail = log.char_indices().rev().nth(8_000).map_or(log.as_str(), |(i, _)| &log[i..]);
                    panic!("node {n} did not answer within 60 s of its kill; the end of its log:\n{tail}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            load.nodes.resumed_ms.lock().unwrap().push(killed_at.elapsed().as_millis());
            load.nodes.urls.write().unwrap()[n] = server.url.clone();
            *load.nodes.servers[n].lock().unwrap() = Some(server);
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_killed_at_random_moments_keep_every_invariant() {
    let scale = Scale::from_env();
    let mut sites = vec![Site::new().await];
    // PostgreSQL serves several nodes; SQLite's data directory, one.
    if sites[0].is_postgres() {
        let second = sites[0].node();
        sites.push(second);
    }
    let count = sites.len();
    let (hook_url, seen) = webhook_receiver(200);
    let servers: Vec<Server> = sites.iter().map(node).collect();
    assert!(cli(&sites[0], &["project", "set", "demo", "--webhook-url", &hook_url]).0);
    let key = SigningKey::from_pem(&std::fs::read_to_string(sites[0].path().join("demo.key.pem")).unwrap()).unwrap();
    let urls = servers.iter().map(|s| s.url.clone()).collect();
    let load = Arc::new(Load {
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        nodes: Nodes {
            servers: servers.into_iter().map(|s| Mutex::new(Some(s))).collect(),
            sites,
            urls: RwLock::new(urls),
            resumed_ms: Mutex::default(),
        },
        key,
        acks: Mutex::default(),
    });
    let schedule = scale.schedule(count);
    eprintln!("chaos: seed {} ({} operations, kills at {schedule:?})", scale.seed, scale.operations);
    let started = Instant::now();
    run_load(&load, &scale, &schedule).await;
    let load_s = started.elapsed().as_secs_f64();
    let acks = std::mem::take(&mut *load.acks.lock().unwrap());
    assert!(acks.repeats_accepted.is_empty(), "a used idempotency key was accepted again: {:?}", acks.repeats_accepted);
    let acked = acks.checks.len() + acks.payouts.len() + acks.payments.len();
    assert!(acked >= scale.operations / 4, "too little was acknowledged: {acked}");

    let site = &load.nodes.sites[0];
    let location = Location::choose(site.database_url.as_deref(), site.path()).unwrap();
    let store = open131_store::open(&location).await.unwrap();
    let db = Db::open(site).await;
    let settling = Instant::now();
    settle(store.as_ref(), &db, &load, &acks).await;
    let settle_s = settling.elapsed().as_secs_f64();
    let figures = check_invariants(store.as_ref(), &db, &acks, &seen).await;
    let resumed = load.nodes.resumed_ms.lock().unwrap().clone();
    eprintln!(
        "chaos: | backend | nodes | operations | kills | acked (checks/payouts/payments) | sessions | webhooks committed/received | resume ms (max) | load s | settle s |"
    );
    eprintln!(
        "chaos: | {} | {count} | {} | {} | {}/{}/{} | {} | {}/{} | {} | {load_s:.1} | {settle_s:.1} |",
        if count == 2 { "postgres" } else { "sqlite" },
        scale.operations,
        resumed.len(),
        acks.checks.len(),
        acks.payouts.len(),
        acks.payments.len(),
        figures.sessions,
        figures.webhooks,
        figures.received,
        resumed.iter().max().copied().unwrap_or(0),
    );
}

/// Workers share the operations; at each scheduled one a node is killed and
/// restarted a moment later, while the others go on.
async fn run_load(load: &Arc<Load>, scale: &Scale, schedule: &[(usize, usize, u64)]) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let kills: Arc<HashMap<usize, (usize, u64)>> =
        Arc::new(schedule.iter().map(|(at, node, down)| (*at, (*node, *down))).collect());
    let restarts = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (load, next, kills, restarts) = (load.clone(), next.clone(), kills.clone(), restarts.clone());
        let operations = scale.operations;
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= operations {
                    return;
                }
                if let Some(restart) = kills.get(&i).and_then(|(node, down_ms)| load.kill(*node, *down_ms)) {
                    restarts.lock().unwrap().push(restart);
                }
                match i % 4 {
                    0 => load.check(i).await,
                    1 => load.operation(i, true).await,
                    2 => load.operation(i, false).await,
                    _ => load.read(i).await,
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let restarts: Vec<_> = std::mem::take(&mut *restarts.lock().unwrap());
    for restart in restarts {
        restart.await.unwrap();
    }
}

/// The deployment's database, read as text on either backend (every query
/// casts its columns to TEXT).
enum Db {
    Pg(tokio_postgres::Client),
    Lite(Mutex<rusqlite::Connection>),
}

impl Db {
    async fn open(site: &Site) -> Self {
        match &site.database_url {
            Some(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                Db::Pg(client)
            }
            None => {
                let path = open131_store::layout::DataDir::new(site.path()).database();
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
                Db::Lite(Mutex::new(rusqlite::Connection::open_with_flags(path, flags).unwrap()))
            }
        }
    }

    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Db::Pg(client) => client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
                .collect(),
            Db::Lite(conn) => {
                let conn = conn.lock().unwrap();
                let mut statement = conn.prepare(sql).unwrap();
                let width = statement.column_count();
                let rows = statement.query_map([], |r| (0..width).map(|i| r.get::<_, Option<String>>(i)).collect());
                rows.unwrap().map(Result::unwrap).collect()
            }
        }
    }
}

/// Every session of the demo project: id, its operation's metadata, state, kind.
const SESSIONS: &str = "SELECT s.id, COALESCE(p.metadata, q.metadata), COALESCE(p.state, q.state),
        CASE WHEN p.id IS NULL THEN 'payment' ELSE 'payout' END
     FROM sessions s
     LEFT JOIN payouts p ON p.project_id = s.project_id AND p.session_id = s.id
     LEFT JOIN payments q ON q.project_id = s.project_id AND q.session_id = s.id
     WHERE s.project_id = 'demo'";

/// Waits until every acknowledged check is decided, every acknowledged
/// operation is final, every other stored one is final or waits for a
/// confirmation nobody will send, and no webhook is pending; drives the
/// acknowledged operations that became ready only after their node died.
async fn settle(store: &dyn open131_store::Store, db: &Db, load: &Load, acks: &Acks) {
    let deadline = Instant::now() + Duration::from_secs(SETTLE_MAX_S);
    loop {
        let mut undecided = 0;
        for id in acks.checks.keys() {
            let check = store.check("demo", id.parse().unwrap()).await.unwrap().unwrap();
            undecided += usize::from(check.finished_at.is_none());
        }
        let mut unfinished = 0;
        for (n, row) in db.rows(SESSIONS).await.iter().enumerate() {
            let (id, state) = (row[0].clone().unwrap(), row[2].clone().unwrap_or_default());
            let known = acks.payouts.contains_key(&id) || acks.payments.contains_key(&id);
            let final_state = state == "succeeded" || state.starts_with("failed");
            if known && !final_state {
                load.drive(&id, n).await;
            }
            unfinished += usize::from(!final_state && (known || state != "awaiting_confirm"));
        }
        let hooks = store.webhooks(WebhookFilter { project_id: Some("demo".into()), ..Default::default() }).await;
        let pending = hooks.unwrap().iter().filter(|w| w.state == WebhookState::Pending).count();
        if pending == 0 && unfinished == 0 && undecided == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {pending} webhooks pending, {unfinished} operations unfinished, {undecided} checks undecided"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the table reports beside the acknowledgements.
struct Figures {
    sessions: usize,
    webhooks: usize,
    received: usize,
}

async fn check_invariants(store: &dyn open131_store::Store, db: &Db, acks: &Acks, seen: &common::Seen) -> Figures {
    // Every acknowledged check is there with the passport it was sent with, and decided.
    let checks: HashMap<String, (String, Option<String>)> = db
        .rows("SELECT CAST(id AS TEXT), passport_number, outcome FROM kyc_checks WHERE project_id = 'demo'")
        .await
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), (r[1].clone().unwrap(), r[2].clone())))
        .collect();
    for (id, passport) in &acks.checks {
        let (stored, outcome) = checks.get(id).unwrap_or_else(|| panic!("acknowledged check {id} is missing"));
        assert_eq!(stored, passport, "check {id}");
        assert!(outcome.is_some(), "check {id} was never decided");
    }

    // Every acknowledged session is there; exactly one session per idempotency key.
    let rows = db.rows(SESSIONS).await;
    let mut per_key: HashMap<String, Vec<String>> = HashMap::new();
    for r in &rows {
        let metadata: Value = serde_json::from_str(r[1].as_deref().unwrap()).unwrap();
        per_key.entry(metadata["key"].as_str().unwrap().to_string()).or_default().push(r[0].clone().unwrap());
    }
    for (key, sessions) in &per_key {
        assert_eq!(sessions.len(), 1, "idempotency key {key} has sessions {sessions:?}");
    }
    let state_of: HashMap<String, (String, String)> =
        rows.iter().map(|r| (r[0].clone().unwrap(), (r[2].clone().unwrap(), r[3].clone().unwrap()))).collect();
    // Every acknowledged operation succeeds in the sandbox. One committed by a
    // killed node whose answer never reached the partner was never confirmed
    // by anyone: it may only wait for that confirmation.
    for session in acks.payouts.keys().chain(acks.payments.keys()) {
        let (state, _) = state_of.get(session).unwrap_or_else(|| panic!("acknowledged session {session} is missing"));
        assert_eq!(state, "succeeded", "acknowledged operation {session}");
    }
    let count = |kind: &str, state: &str| state_of.values().filter(|(s, k)| k == kind && s == state).count() as i64;
    let waiting = count("payout", "awaiting_confirm") + count("payment", "awaiting_confirm");
    let (payouts, payments) = (count("payout", "succeeded"), count("payment", "succeeded"));
    assert_eq!((payouts + payments + waiting) as usize, rows.len(), "states: {state_of:?}");

    // The ledger balances, matches the wallet, and no movement hit a session twice.
    let wallet = store
        .wallets("demo")
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.currency == "rub" && w.book.as_str() == "main")
        .unwrap();
    let sums: HashMap<String, i64> = store.posting_sums("demo", "rub").await.unwrap().into_iter().collect();
    assert_eq!(sums.values().sum::<i64>(), 0, "postings must sum to zero: {sums:?}");
    let sum = |account: &str| sums.get(account).copied().unwrap_or(0);
    assert_eq!(
        (sum("available"), sum("reserved"), sum("payouts"), sum("held"), sum("acquiring")),
        (wallet.available, wallet.reserved, wallet.payouts, wallet.held, wallet.acquiring),
        "{sums:?}"
    );
    let twice = db
        .rows(
            "SELECT session_id, movement, account FROM ledger_postings WHERE session_id IS NOT NULL
             GROUP BY session_id, movement, account HAVING count(*) > 1",
        )
        .await;
    assert!(twice.is_empty(), "movements applied twice: {twice:?}");
    assert_eq!(wallet.payouts, payouts * AMOUNT, "paid out = the succeeded payouts, once each");
    assert_eq!(wallet.reserved, 0, "nothing stays reserved: a payout reserves its amount only when confirmed");
    assert_eq!(wallet.held, 0, "nothing stays held: a payment holds its amount only when confirmed");

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
    for w in &hooks {
        assert_eq!(w.state, WebhookState::Delivered, "webhook {} ({})", w.id, w.kind);
        assert!(received.contains(&(w.subject_id.clone(), w.kind.clone())), "webhook {} never arrived", w.id);
    }
    let received = seen.lock().unwrap().len();
    Figures { sessions: rows.len(), webhooks: hooks.len(), received }
}
