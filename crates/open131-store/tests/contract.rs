//! The store contract, run against every backend: SQLite always, PostgreSQL
//! when `OPEN131_TEST_POSTGRES` names an admin URL (each test on a fresh
//! database). Ids, duplicates, isolation, lifecycle enforcement, concurrency,
//! persistence, session writes, leases and the outbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::HashSet;
use std::sync::{Arc, Once};

use open131_domain::allowlist::IpAllowlist;
use open131_domain::fx::FxRate;
use open131_domain::kyc::{parse_v11, CheckState, Outcome};
use open131_domain::ledger::{legs, Book, Leg, Movement};
use open131_domain::lifecycle::Timer;
use open131_domain::payout::SandboxPlan;
use open131_domain::payout_flow::PayoutState;
use open131_domain::personal::Personal;
use open131_domain::session::{ApiVersion, SessionState};
use open131_domain::settings::{CaptureMode, ClockOffset, FeeRate, KycMode, MethodSet, NameSet, WebhookNaming};
use open131_domain::webhook_faults::WebhookFaults;
use open131_store::sqlite::SqliteStore;
use open131_store::testing::{fresh_database, postgres_admin_url, TEST_POSTGRES_ENV};
use open131_store::OwnClaim;
use open131_store::{
    AttemptResult, Decision, InsertCheck, NewCheck, NewWebhook, PayoutRecord, PgStore, SessionRecord, SessionWrite,
    SettingsChange, Store, StoreError, SubjectKind, WebhookFilter, WebhookState, WriteOutcome,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

fn lease() -> OffsetDateTime {
    NOW + Duration::seconds(30)
}

/// Where a backend under test keeps its data, to open it again.
enum Home {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

struct Case {
    name: &'static str,
    store: Arc<dyn Store>,
    home: Home,
}

impl Home {
    /// A new store on the same data (the old one may be dropped first).
    async fn reopen(&self) -> Arc<dyn Store> {
        match self {
            Home::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path()).unwrap()),
            Home::Postgres(url) => Arc::new(PgStore::connect(url).await.unwrap()),
        }
    }
}

static SKIPPED: Once = Once::new();

/// Says once per run that PostgreSQL was not tested, on the real stderr (the
/// test harness would swallow `eprintln!` of a passing test).
fn say_postgres_skipped() {
    SKIPPED.call_once(|| {
        let line = format!("{TEST_POSTGRES_ENV} is not set: the PostgreSQL half of the store contract is skipped\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    });
}

/// One empty store per backend.
async fn cases() -> Vec<Case> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let mut cases = vec![Case { name: "sqlite", store: sqlite, home: Home::Sqlite(dir) }];
    match postgres_admin_url() {
        Some(admin) => {
            let url = fresh_database(&admin).await.unwrap();
            let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
            cases.push(Case { name: "postgres", store, home: Home::Postgres(url) });
        }
        None => say_postgres_skipped(),
    }
    cases
}

/// One empty store per backend, with projects `alpha` and `beta`, each with a
/// webhook URL (a project without one has its webhooks left unclaimed).
async fn cases_with_projects() -> Vec<Case> {
    let cases = cases().await;
    for c in &cases {
        assert!(c.store.create_project("alpha", NOW).await.unwrap(), "{}", c.name);
        assert!(c.store.create_project("beta", NOW).await.unwrap(), "{}", c.name);
        assert!(!c.store.create_project("alpha", NOW).await.unwrap(), "{}", c.name);
        for project in ["alpha", "beta"] {
            c.store.set_project_settings(project, url_change(Some("https://p.example/h")), NOW).await.unwrap();
        }
    }
    cases
}

fn url_change(url: Option<&str>) -> SettingsChange {
    SettingsChange { webhook_url: Some(url.map(str::to_string)), ..Default::default() }
}

fn new_check(project: &str, passport: &str, contract: &str) -> NewCheck {
    let payload = serde_json::json!({
        "first_name": "Петров", "last_name": "Иван", "birthday": "15.06.1990", "birthplace": "Москва",
        "inn": "500100732259", "identity_document": "Паспорт гражданина РФ", "passport_number": passport,
        "issuer": "ОВД", "issuer_code": "770-001", "issuer_date": "20.06.2010", "citizenship": "РФ",
        "postcode": "119021", "address": "Москва", "email": "a@b.ru", "phone_number": "1",
        "agent_contract_number": contract, "agent_contract_date": "10.01.2024",
        "beneficial_owners": "ВБ отсутствует", "public_officials": "Нет", "migration_card": "-",
        "right_to_stay_in_rf": "-"
    });
    let application = parse_v11(payload.as_object().unwrap(), NOW).unwrap();
    NewCheck {
        project_id: project.into(),
        application,
        payload_json: Personal::new(payload.to_string()),
        created_at: NOW,
    }
}

#[tokio::test]
async fn ids_are_per_project_and_duplicates_point_to_the_first() {
    for Case { name, store, .. } in cases_with_projects().await {
        let insert = |p: &'static str, passport: &'static str, contract: &'static str| {
            let store = store.clone();
            async move { store.insert_check(new_check(p, passport, contract)).await.unwrap() }
        };
        assert_eq!(insert("alpha", "4510123456", "A-1").await, InsertCheck::Created(1), "{name}");
        assert_eq!(insert("alpha", "4510123457", "A-1").await, InsertCheck::Created(2), "{name}");
        assert_eq!(insert("alpha", "4510123456", "A-1").await, InsertCheck::Duplicate(1), "{name}");
        // The duplicate did not burn an id.
        assert_eq!(insert("alpha", "4510123456", "A-2").await, InsertCheck::Created(3), "{name}");
        // Another project with the same person is independent and starts at 1.
        assert_eq!(insert("beta", "4510123456", "A-1").await, InsertCheck::Created(1), "{name}");

        let c = store.check("alpha", 2).await.unwrap().unwrap();
        assert_eq!(c.application.document_key.expose(), "4510123457", "{name}");
        assert_eq!(c.application.rf_passport.as_ref().unwrap().number.expose(), "4510123457", "{name}");
        assert_eq!(c.state, CheckState::Pending, "{name}");
        assert!(store.check("beta", 2).await.unwrap().is_none(), "{name}: beta must not see alpha's check 2");
    }
}

#[tokio::test]
async fn verdicts_follow_the_lifecycle() {
    for Case { name, store, .. } in cases_with_projects().await {
        store.insert_check(new_check("alpha", "4510123456", "A-1")).await.unwrap();
        store.insert_check(new_check("alpha", "4510123457", "A-1")).await.unwrap();
        assert!(
            store.claim_due_checks(NOW - Duration::seconds(1), NOW, lease(), 10).await.unwrap().is_empty(),
            "{name}: none created that early"
        );
        assert_eq!(store.oldest_pending(NOW).await.unwrap(), Some(NOW), "{name}");
        let due = store.claim_due_checks(NOW, NOW, lease(), 10).await.unwrap();
        assert_eq!(due.len(), 2, "{name}");
        // Claimed checks are leased: nobody else takes them until the lease ends,
        // then they are taken again (their verifier died before its verdict).
        assert!(store.claim_due_checks(NOW, NOW, lease(), 10).await.unwrap().is_empty(), "{name}");
        assert_eq!(store.oldest_pending(NOW).await.unwrap(), None, "{name}");
        let again = store.claim_due_checks(NOW, lease(), lease() + Duration::seconds(30), 10).await.unwrap();
        assert_eq!(again.len(), 2, "{name}");

        let decide = |id, outcome| Decision { project_id: "alpha".into(), id, outcome };
        let later = NOW + Duration::seconds(3);
        let done = store
            .finish_checks(
                vec![decide(1, Outcome::Valid), decide(2, Outcome::PassportInvalid), decide(9, Outcome::Valid)],
                later,
            )
            .await
            .unwrap();
        assert_eq!(done, vec![true, true, false], "{name}");
        // A second verdict is refused by the database.
        let second = store.finish_checks(vec![decide(1, Outcome::InnMismatch)], later).await.unwrap();
        assert_eq!(second, vec![false], "{name}");
        let c = store.check("alpha", 1).await.unwrap().unwrap();
        assert_eq!(c.state, CheckState::Finished(Outcome::Valid), "{name}");
        assert_eq!(c.finished_at, Some(later), "{name}");
        assert_eq!(store.oldest_pending(NOW).await.unwrap(), None, "{name}");

        // A postponed check is neither due nor "oldest pending" until its retry time
        // (a verifier that counted it would spin), and a release makes it due again.
        store.insert_check(new_check("alpha", "4510123999", "P")).await.unwrap();
        store.postpone_checks(vec![("alpha".into(), 3)], NOW + Duration::seconds(30)).await.unwrap();
        assert!(store.claim_due_checks(NOW, NOW, lease(), 10).await.unwrap().is_empty(), "{name}");
        assert_eq!(store.oldest_pending(NOW).await.unwrap(), None, "{name}");
        assert_eq!(store.oldest_pending(NOW + Duration::seconds(30)).await.unwrap(), Some(NOW), "{name}");
        assert_eq!(store.release_postponed_checks().await.unwrap(), 1, "{name}");
        assert_eq!(store.claim_due_checks(NOW, NOW, lease(), 10).await.unwrap().len(), 1, "{name}");
        // A release (a registry loaded on some node) leaves leased checks to
        // their verifier: it frees postponed checks only.
        assert_eq!(store.release_postponed_checks().await.unwrap(), 0, "{name}");
        assert!(store.claim_due_checks(NOW, NOW, lease(), 10).await.unwrap().is_empty(), "{name}");
    }
}

/// Concurrent checks share a write (one statement on PostgreSQL): one that
/// the database refuses (here, of a project that does not exist) must fail
/// alone, never its neighbours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_check_fails_alone() {
    for Case { name, store, .. } in cases_with_projects().await {
        // One of each alone first: a project's first check waits for its block
        // of ids (PostgreSQL), and then the checks below reach the writer
        // together, the refused one among the others.
        assert!(store.insert_check(new_check("nobody", "4511000000", "R")).await.is_err(), "{name}");
        store.insert_check(new_check("alpha", "4511000001", "R")).await.unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                let project = if i == 32 { "nobody" } else { "alpha" };
                tokio::spawn(async move {
                    store.insert_check(new_check(project, &format!("45{:08}", 10_000_000 + i), "R")).await
                })
            })
            .collect();
        let mut created = 0;
        for (i, t) in tasks.into_iter().enumerate() {
            match (i, t.await.unwrap()) {
                (32, answer) => assert!(answer.is_err(), "{name}: a check of no project was {answer:?}"),
                (_, Ok(InsertCheck::Created(_))) => created += 1,
                (_, other) => panic!("{name}: check {i} was {other:?}"),
            }
        }
        assert_eq!(created, 63, "{name}");
        assert_eq!(store.recent_checks("alpha", 100).await.unwrap().len(), 64, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_are_all_committed_with_unique_ids() {
    for Case { name, store, home } in cases_with_projects().await {
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let passport = format!("45{:08}", 10_000_000 + i % 250);
                    store.insert_check(new_check("alpha", &passport, "C")).await.unwrap()
                })
            })
            .collect();
        let mut created = Vec::new();
        let mut duplicates = 0;
        for t in tasks {
            match t.await.unwrap() {
                InsertCheck::Created(id) => created.push(id),
                InsertCheck::Duplicate(_) => duplicates += 1,
            }
        }
        created.sort_unstable();
        assert_eq!(duplicates, 250, "{name}");
        assert_eq!(created.len(), 250, "{name}");
        assert_eq!(created.iter().collect::<HashSet<_>>().len(), 250, "{name}: ids are unique");
        if name == "sqlite" {
            // One writer: ids are dense from 1. (On PostgreSQL a duplicate's id
            // given back after the last insert took a higher one stays a gap.)
            assert_eq!(created, (1..=250).collect::<Vec<_>>(), "{name}: ids are dense");
        } else {
            // Each insert takes one id, and a node reserves a new block only
            // when its last one is used up: at most 500 ids, in whole blocks.
            let block = open131_store::postgres::ID_BLOCK_SIZE;
            let bound = (500 + block - 1) / block * block;
            assert!(created[0] >= 1 && *created.last().unwrap() <= bound, "{name}: {created:?}");
        }
        let last = *created.last().unwrap();
        drop(store);
        // Everything acknowledged is there after reopening.
        let reopened = home.reopen().await;
        for id in &created {
            assert!(reopened.check("alpha", *id).await.unwrap().is_some(), "{name}: check {id}");
        }
        assert!(reopened.check("alpha", last + 1).await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn keys_and_meta() {
    for Case { name, store, .. } in cases_with_projects().await {
        assert!(store.add_project_key("alpha", "sha256:aa", b"der-a", NOW).await.unwrap(), "{name}");
        assert!(store.add_project_key("alpha", "sha256:bb", b"der-b", NOW).await.unwrap(), "{name}");
        assert!(!store.add_project_key("alpha", "sha256:aa", b"der-a", NOW).await.unwrap(), "{name}");
        let missing = store.add_project_key("nobody", "sha256:aa", b"der-a", NOW).await;
        assert!(matches!(missing, Err(StoreError::NoSuchProject(p)) if p == "nobody"), "{name}");
        let p = store.project("alpha").await.unwrap().unwrap();
        assert_eq!(p.keys.len(), 2, "{name}");
        assert_eq!(p.keys[0].spki_der, b"der-a", "{name}");
        let all = store.projects().await.unwrap();
        assert_eq!(all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["alpha", "beta"], "{name}");
        assert!(all[1].keys.is_empty(), "{name}");
        assert!(store.project("gamma").await.unwrap().is_none(), "{name}");

        assert_eq!(store.meta_get("k").await.unwrap(), None, "{name}");
        assert_eq!(store.meta_init("k", b"one".to_vec()).await.unwrap(), b"one", "{name}");
        assert_eq!(store.meta_init("k", b"two".to_vec()).await.unwrap(), b"one", "{name}");
        assert_eq!(store.meta_get("k").await.unwrap().as_deref(), Some(&b"one"[..]), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_meta_inits_agree_on_the_first_value() {
    for Case { name, store, .. } in cases().await {
        for round in 0..10 {
            let key = format!("bank_key_{round}");
            let init = |value: &'static [u8]| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move { store.meta_init(&key, value.to_vec()).await.unwrap() })
            };
            let (a, b) = (init(b"first"), init(b"second"));
            let (a, b) = (a.await.unwrap(), b.await.unwrap());
            assert_eq!(a, b, "{name}: both nodes end up with one value");
            assert_eq!(store.meta_get(&key).await.unwrap(), Some(a), "{name}");
        }
    }
}

#[tokio::test]
async fn typed_settings_round_trip() {
    for Case { name, store, .. } in cases_with_projects().await {
        let change = SettingsChange {
            webhook_url: Some(Some("https://partner.example/hook".into())),
            auto_confirm: Some(true),
            confirm_timeout_s: Some(600),
            methods: Some(MethodSet::parse("session/init/payout, session/status").unwrap()),
            kyc_mode: Some(KycMode::Registry),
            allowed_ips: Some(IpAllowlist::parse("127.0.0.1, 10.0.0.0/8, ::1").unwrap()),
            webhook_naming: Some(WebhookNaming::V2),
            submerchants: Some(NameSet::parse("shop-1,shop-2").unwrap()),
            capture: Some(CaptureMode::Hold),
            capture_timeout_s: Some(3_600),
            payment_fee: FeeRate::parse("2.5%"),
            contractors: Some(NameSet::parse("courier-1, courier-2").unwrap()),
            widget_origins: Some(NameSet::parse("https://shop.example").unwrap()),
            webhook_faults: Some(WebhookFaults::parse("delay=2000ms,duplicate=0.25,drop_first=2").unwrap()),
            clock_offset: None,
        };
        let before = store.project("alpha").await.unwrap().unwrap().settings;
        assert_eq!((before.capture, before.capture_timeout_s), (CaptureMode::Auto, 432_000), "{name}: defaults");
        assert_eq!(before.payment_fee.bp(), 0, "{name}");
        store.set_project_settings("alpha", change.clone(), NOW).await.unwrap();
        let s = store.project("alpha").await.unwrap().unwrap().settings;
        assert_eq!(s.webhook_url.as_deref(), Some("https://partner.example/hook"), "{name}");
        assert!(s.auto_confirm, "{name}");
        assert_eq!(s.confirm_timeout_s, 600, "{name}");
        assert_eq!(Some(s.methods), change.methods, "{name}");
        assert_eq!(s.kyc_mode, KycMode::Registry, "{name}");
        assert_eq!(Some(s.allowed_ips), change.allowed_ips, "{name}");
        assert_eq!(s.webhook_naming, WebhookNaming::V2, "{name}");
        assert_eq!(Some(s.submerchants), change.submerchants, "{name}");
        assert_eq!(Some(s.contractors.clone()), change.contractors, "{name}");
        assert_eq!(s.widget_origins.listed().collect::<Vec<_>>(), ["https://shop.example"], "{name}");
        assert_eq!(s.webhook_faults.to_string(), "delay=2000ms,duplicate=0.25,drop_first=2", "{name}");
        assert!(before.webhook_faults.is_none(), "{name}: none by default");
        assert!(s.contractors.allows("courier-2") && !s.contractors.allows("courier-3"), "{name}");
        assert_eq!(
            (s.capture, s.capture_timeout_s, Some(s.payment_fee)),
            (CaptureMode::Hold, 3_600, change.payment_fee)
        );
        // `None` leaves a setting alone; `Some(None)` removes the URL.
        let unset = SettingsChange { webhook_url: Some(None), ..SettingsChange::default() };
        store.set_project_settings("alpha", unset, NOW).await.unwrap();
        let s = store.project("alpha").await.unwrap().unwrap().settings;
        assert_eq!(s.webhook_url, None, "{name}");
        assert!(s.auto_confirm, "{name}");
        let beta = store.project("beta").await.unwrap().unwrap().settings;
        assert!(!beta.auto_confirm && beta.methods == MethodSet::All && beta.allowed_ips == IpAllowlist::Any, "{name}");
        assert!(beta.webhook_naming == WebhookNaming::Session && beta.submerchants == NameSet::None, "{name}");
        assert_eq!(beta.contractors, NameSet::None, "{name}: no contractor until registered");
        assert_eq!(beta.widget_origins, NameSet::Any, "{name}: any site until the project names some");
        let missing = store.set_project_settings("nobody", SettingsChange::default(), NOW).await;
        assert!(matches!(missing, Err(StoreError::NoSuchProject(_))), "{name}");
    }
}

/// A payout session of `amount` RUB in progress, its payout preparing.
fn session(project: &str, id: &str, amount: i64) -> SessionRecord {
    SessionRecord {
        project_id: project.into(),
        id: id.into(),
        api_version: ApiVersion::V2,
        state: SessionState::InProgress,
        version: 0,
        payouts: vec![PayoutRecord {
            fiscalization: None,
            id: format!("payout-{id}"),
            amount,
            currency: "RUB".into(),
            method_masked: r#"{"type":"bank_card","card":{"masked":"4111 11** **** 1111"}}"#.into(),
            participant_details: Personal::new(r#"{"first_name":"Иван"}"#.into()),
            customer: Some(r#"{"reference":"c-1"}"#.into()),
            metadata: None,
            plan: SandboxPlan::Succeed,
            state: PayoutState::Preparing,
            created_at: NOW,
            finished_at: None,
            exchange: None,
            confirm_information: None,
            receipt: None,
        }],
        payments: vec![],
        refund: None,
        created_at: NOW,
        updated_at: NOW,
        finished_at: None,
        draft: None,
        submerchant: None,
        book: Book::Main,
        shape: open131_domain::books::Shape::Payout,
    }
}

/// The reservation of a session's (first) payout, from its book.
fn reserve(record: &SessionRecord) -> Vec<Leg> {
    record.payout().map(|p| legs(Movement::Reserve, &p.funding(record.book))).unwrap_or_default()
}

/// `record` with its first payout awaiting confirmation.
fn awaiting_confirm(record: &SessionRecord) -> SessionRecord {
    let mut next = record.clone();
    next.payouts[0].state = PayoutState::AwaitingConfirm;
    next
}

/// Creates `record` reserving its amount, with a webhook and a prepare timer.
/// A change of `record` from `expected` with nothing else in it.
fn plain_update(expected: i64, record: SessionRecord) -> SessionWrite {
    SessionWrite {
        expected_version: Some(expected),
        record,
        idempotency: None,
        movements: vec![],
        webhooks: vec![],
        timers: vec![],
        consumed_timer: None,
        subscription: None,
    }
}

fn creation(record: SessionRecord, key: &str) -> SessionWrite {
    SessionWrite {
        expected_version: None,
        idempotency: Some((key.into(), "session/init/payout".into())),
        movements: reserve(&record),
        webhooks: vec![NewWebhook {
            kind: "payment_finished".into(),
            body: format!("{{\"id\":\"{}\"}}", record.id).into_bytes(),
        }],
        timers: vec![(Timer::Prepare, NOW + Duration::seconds(5))],
        consumed_timer: None,
        subscription: None,
        record,
    }
}

#[tokio::test]
async fn session_writes_commit_whole_or_not_at_all() {
    for Case { name, store, .. } in cases_with_projects().await {
        store.topup("alpha", "RUB", 10_000, NOW).await.unwrap();
        let s1 = session("alpha", "s-1", 4_000);
        let outcome = store.write_session(creation(s1.clone(), "key-1"), NOW).await.unwrap();
        assert_eq!(outcome, WriteOutcome::Applied(1), "{name}");
        assert_eq!(
            store.session("alpha", "s-1").await.unwrap(),
            Some(SessionRecord { version: 1, ..s1.clone() }),
            "{name}"
        );
        assert!(store.session("beta", "s-1").await.unwrap().is_none(), "{name}: sessions are per project");
        assert!(store.idempotency_key_used("alpha", "key-1").await.unwrap(), "{name}");
        assert!(!store.idempotency_key_used("beta", "key-1").await.unwrap(), "{name}");
        let w = &store.wallets("alpha").await.unwrap()[0];
        assert_eq!((w.available, w.reserved, w.funding, w.payouts), (6_000, 4_000, -10_000, 0), "{name}");
        let sums = store.posting_sums("alpha", "RUB").await.unwrap();
        let expected = [("available", 6_000), ("funding", -10_000), ("reserved", 4_000)];
        assert_eq!(sums, expected.map(|(a, n)| (a.to_string(), n)), "{name}");
        // The webhook and the timer committed with the change.
        let hooks =
            store.webhooks(WebhookFilter { subject_id: Some("s-1".into()), ..Default::default() }).await.unwrap();
        assert_eq!(hooks.len(), 1, "{name}");
        assert_eq!((hooks[0].subject_kind, hooks[0].state), (SubjectKind::Session, WebhookState::Pending), "{name}");
        assert_eq!(hooks[0].body, br#"{"id":"s-1"}"#, "{name}");
        let timers = store.claim_due_timers(NOW + Duration::seconds(5), lease(), 10).await.unwrap();
        assert_eq!(timers.len(), 1, "{name}");
        assert_eq!((timers[0].session_id.as_str(), timers[0].timer), ("s-1", Timer::Prepare), "{name}");

        // A stale version changes nothing; the right one applies and consumes the timer.
        let awaiting = SessionRecord { updated_at: NOW + Duration::seconds(5), ..awaiting_confirm(&s1) };
        let update = |expected| SessionWrite {
            expected_version: Some(expected),
            record: awaiting.clone(),
            idempotency: None,
            movements: vec![],
            webhooks: vec![],
            timers: vec![(Timer::ConfirmTimeout, NOW + Duration::hours(1))],
            consumed_timer: Some(Timer::Prepare),
            subscription: None,
        };
        assert_eq!(store.write_session(update(7), NOW).await.unwrap(), WriteOutcome::VersionConflict, "{name}");
        assert_eq!(
            store.session("alpha", "s-1").await.unwrap().unwrap(),
            SessionRecord { version: 1, ..s1.clone() },
            "{name}"
        );
        assert_eq!(store.write_session(update(1), NOW).await.unwrap(), WriteOutcome::Applied(2), "{name}");
        let stored = store.session("alpha", "s-1").await.unwrap().unwrap();
        assert_eq!(stored, SessionRecord { version: 2, ..awaiting.clone() }, "{name}");
        assert_eq!(stored.payout().map(|p| p.state), Some(PayoutState::AwaitingConfirm), "{name}");
        assert!(
            store.claim_due_timers(lease() + Duration::seconds(1), lease(), 10).await.unwrap().is_empty(),
            "{name}"
        );
        let timeout = store.claim_due_timers(NOW + Duration::hours(1), NOW + Duration::hours(2), 10).await.unwrap();
        assert_eq!(timeout.iter().map(|t| t.timer).collect::<Vec<_>>(), [Timer::ConfirmTimeout], "{name}");

        // A used idempotency key refuses the whole change.
        let again = store.write_session(creation(session("alpha", "s-2", 1_000), "key-1"), NOW).await.unwrap();
        assert_eq!(again, WriteOutcome::IdempotencyConflict, "{name}");
        assert!(store.session("alpha", "s-2").await.unwrap().is_none(), "{name}");

        // A reservation the wallet cannot cover leaves nothing behind.
        let too_big = store.write_session(creation(session("alpha", "s-3", 6_001), "key-3"), NOW).await.unwrap();
        assert_eq!(too_big, WriteOutcome::Insufficient, "{name}");
        assert!(store.session("alpha", "s-3").await.unwrap().is_none(), "{name}");
        assert!(!store.idempotency_key_used("alpha", "key-3").await.unwrap(), "{name}");
        assert!(
            store
                .webhooks(WebhookFilter { subject_id: Some("s-3".into()), ..Default::default() })
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        // (s-3's prepare timer would be due by now; s-1's are consumed or leased.)
        let after_prepare = NOW + Duration::seconds(10);
        assert!(store.claim_due_timers(after_prepare, after_prepare, 10).await.unwrap().is_empty(), "{name}");
        assert_eq!(store.wallets("alpha").await.unwrap()[0].available, 6_000, "{name}");
        assert_eq!(store.posting_sums("alpha", "RUB").await.unwrap(), sums, "{name}");

        // A session id is new or an error (the API never reuses one).
        let dup = store.write_session(creation(session("alpha", "s-1", 1), "key-4"), NOW).await;
        assert!(dup.is_err(), "{name}: {dup:?}");
        assert!(!store.idempotency_key_used("alpha", "key-4").await.unwrap(), "{name}");
    }
}

/// A creation that moves no money (PostgreSQL writes such creations many per
/// statement), with two webhooks in order.
fn plain_creation(project: &str, id: &str, key: &str) -> SessionWrite {
    let mut write = creation(session(project, id, 10), key);
    write.movements.clear();
    write.webhooks.push(NewWebhook { kind: "second".into(), body: format!("{{\"after\":\"{id}\"}}").into_bytes() });
    write
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_each_get_their_own_outcome() {
    for Case { name, store, .. } in cases_with_projects().await {
        // Written alone first: the session id and the key the group below reuses.
        store.write_session(plain_creation("alpha", "s-taken", "k-taken"), NOW).await.unwrap();
        store.topup("alpha", "RUB", 10_000, NOW).await.unwrap();
        let write = |i: usize| match i {
            // One that moves money, among them (PostgreSQL writes it on its own).
            50 => SessionWrite {
                movements: reserve(&session("alpha", "s-50", 10)),
                ..plain_creation("alpha", "s-50", "k-50")
            },
            10 => plain_creation("alpha", "s-taken", "k-10"),
            20 | 21 => plain_creation("alpha", &format!("s-{i}"), "k-shared"),
            30 => plain_creation("alpha", "s-30", "k-taken"),
            40 => plain_creation("beta", "s-40", "k-taken"),
            _ => plain_creation("alpha", &format!("s-{i}"), &format!("k-{i}")),
        };
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (store, write) = (store.clone(), write(i));
                tokio::spawn(async move { store.write_session(write, NOW).await })
            })
            .collect();
        let mut applied = Vec::new();
        let mut shared = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match (i, t.await.unwrap()) {
                (10, answer) => assert!(answer.is_err(), "{name}: a taken session id was {answer:?}"),
                (20 | 21, Ok(answer)) => shared.push(answer),
                (30, answer) => assert_eq!(answer.unwrap(), WriteOutcome::IdempotencyConflict, "{name}"),
                (_, Ok(WriteOutcome::Applied(1))) => applied.push(i),
                (_, other) => panic!("{name}: creation {i} was {other:?}"),
            }
        }
        shared.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(shared, [WriteOutcome::Applied(1), WriteOutcome::IdempotencyConflict], "{name}: one key, once");
        assert_eq!(applied.len(), 60, "{name}");
        assert!(!store.idempotency_key_used("alpha", "k-10").await.unwrap(), "{name}: the refused key is free");
        let taken = store.session("alpha", "s-taken").await.unwrap().unwrap();
        assert_eq!(taken.payouts[0].amount, 10, "{name}: the first session of an id is untouched");
        for i in applied {
            let (project, id) = (if i == 40 { "beta" } else { "alpha" }, format!("s-{i}"));
            let expected = SessionRecord { version: 1, ..write(i).record };
            assert_eq!(store.session(project, &id).await.unwrap(), Some(expected), "{name}: {id}");
            let filter = WebhookFilter { subject_id: Some(id.clone()), ..Default::default() };
            let hooks = store.webhooks(filter).await.unwrap();
            let mut kinds: Vec<(i64, &str)> = hooks.iter().map(|h| (h.id, h.kind.as_str())).collect();
            kinds.sort_unstable();
            assert_eq!(kinds.iter().map(|k| k.1).collect::<Vec<_>>(), ["payment_finished", "second"], "{name}: {id}");
            assert!(hooks.iter().all(|h| h.project_id == project), "{name}: {id}");
        }
        let due = NOW + Duration::seconds(5);
        let timers = store.claim_due_timers(due, lease(), 100).await.unwrap();
        // The 60, one of the two with a shared key, and the one written first.
        assert_eq!(timers.len(), 62, "{name}: one prepare timer per written session");
    }
}

#[tokio::test]
async fn a_claimed_timer_waits_for_its_lease() {
    for Case { name, store, .. } in cases_with_projects().await {
        store.topup("alpha", "RUB", 100, NOW).await.unwrap();
        store.write_session(creation(session("alpha", "s-1", 10), "k"), NOW).await.unwrap();
        let due = NOW + Duration::seconds(5);
        let lease_until = due + Duration::seconds(30);
        assert!(
            store.claim_due_timers(due - Duration::seconds(1), lease_until, 10).await.unwrap().is_empty(),
            "{name}"
        );
        assert_eq!(store.claim_due_timers(due, lease_until, 10).await.unwrap().len(), 1, "{name}");
        assert!(store.claim_due_timers(due, lease_until, 10).await.unwrap().is_empty(), "{name}: leased");
        let before_end = lease_until - Duration::seconds(1);
        assert!(store.claim_due_timers(before_end, lease_until, 10).await.unwrap().is_empty(), "{name}");
        // Its firing never committed: it fires again once the lease ends.
        assert_eq!(
            store.claim_due_timers(lease_until, lease_until + Duration::seconds(30), 10).await.unwrap().len(),
            1,
            "{name}"
        );
        let lease = lease_until + Duration::seconds(30);
        // A claim's drop misses a timer set again since (its due time changed).
        store.drop_timer("alpha", "s-1", Timer::Prepare, lease_until).await.unwrap();
        assert_eq!(store.claim_due_timers(lease, lease + Duration::seconds(30), 10).await.unwrap().len(), 1, "{name}");
        store.drop_timer("alpha", "s-1", Timer::Prepare, lease + Duration::seconds(30)).await.unwrap();
        assert!(
            store.claim_due_timers(NOW + Duration::days(1), NOW + Duration::days(2), 10).await.unwrap().is_empty(),
            "{name}"
        );
    }
}

/// Leases have owners: what another instance claimed is released by owner
/// (or every other instance's at once) and due again at once; an instance's
/// own leases are never released by itself; heartbeats are listed by
/// instance, each a value of its own.
#[tokio::test]
async fn an_instances_leases_are_released_by_owner_and_never_by_itself() {
    for Case { name, store, home } in cases_with_projects().await {
        store.topup("alpha", "RUB", 100, NOW).await.unwrap();
        store.write_session(creation(session("alpha", "s-1", 10), "k"), NOW).await.unwrap();
        let far = NOW + Duration::minutes(10);
        let hooks = store.claim_webhooks(NOW, far, 10, vec![]).await.unwrap();
        let timers = store.claim_due_timers(NOW + Duration::seconds(5), far, 10).await.unwrap();
        assert_eq!((hooks.len(), timers.len()), (1, 1), "{name}");
        assert_eq!(store.release_leases(NOW, None).await.unwrap(), 0, "{name}: never its own");
        assert_eq!(store.release_leases(NOW, Some(store.instance_id())).await.unwrap(), 0, "{name}: not even by name");

        // Another process on the same data: its own instance, heartbeats listed by id.
        let other = home.reopen().await;
        assert_ne!(other.instance_id(), store.instance_id(), "{name}: each handle is its own instance");
        store.heartbeat(NOW).await.unwrap();
        other.heartbeat(NOW + Duration::seconds(1)).await.unwrap();
        store.heartbeat(NOW + Duration::seconds(2)).await.unwrap();
        let mut beats = other.heartbeats().await.unwrap();
        beats.sort();
        let mut expected = vec![
            (store.instance_id().to_string(), (NOW + Duration::seconds(2)).unix_timestamp_nanos() as i64 / 1_000),
            (other.instance_id().to_string(), (NOW + Duration::seconds(1)).unix_timestamp_nanos() as i64 / 1_000),
        ];
        expected.sort();
        assert_eq!(beats, expected, "{name}");
        // Nothing leased by a third, unnamed instance: naming it releases nothing.
        assert_eq!(other.release_leases(NOW, Some("i-nobody")).await.unwrap(), 0, "{name}");
        assert!(other.claim_webhooks(NOW, far, 10, vec![]).await.unwrap().is_empty(), "{name}: still leased");
        // The first, found dead: its webhook and timer are due again at once.
        let later = NOW + Duration::seconds(40);
        assert_eq!(other.release_leases(later, Some(store.instance_id())).await.unwrap(), 2, "{name}");
        assert_eq!(other.claim_webhooks(later, far, 10, vec![]).await.unwrap().len(), 1, "{name}");
        assert_eq!(other.claim_due_timers(later, far, 10).await.unwrap().len(), 1, "{name}");
        // Every other instance's at once (a sole process at start): the second's go back.
        assert_eq!(store.release_leases(later, None).await.unwrap(), 2, "{name}");
        assert_eq!(store.release_leases(later, None).await.unwrap(), 0, "{name}: nothing left");
    }
}

/// A claimed check is released too; a postponed check (no registry yet) is
/// not a lease and stays.
#[tokio::test]
async fn claimed_checks_are_released_and_postponed_ones_kept() {
    for Case { name, store, home } in cases_with_projects().await {
        for passport in ["4510123401", "4510123402"] {
            store.insert_check(new_check("alpha", passport, "L")).await.unwrap();
        }
        let far = NOW + Duration::minutes(10);
        let claimed = store.claim_due_checks(NOW, NOW, far, 10).await.unwrap();
        assert_eq!(claimed.len(), 2, "{name}");
        store.postpone_checks(vec![(claimed[1].project_id.clone(), claimed[1].id)], far).await.unwrap();
        let other = home.reopen().await;
        assert_eq!(other.release_leases(NOW, Some(store.instance_id())).await.unwrap(), 1, "{name}: the leased one");
        let again = other.claim_due_checks(NOW, NOW, far, 10).await.unwrap();
        assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), [claimed[0].id], "{name}: the postponed one waits");
    }
}

fn attempt(webhook_id: i64, claimed_attempts: i64, next: Option<OffsetDateTime>) -> AttemptResult {
    AttemptResult {
        webhook_id,
        claimed_attempts,
        at: NOW,
        status: Some(if next.is_some() { 500 } else { 200 }),
        error: None,
        duration_ms: 12,
        // A delivered one says what was injected into it.
        injected: next.is_none().then(|| "sent twice (the duplicate answered 200)".to_string()),
        next_attempt_at: next,
        gave_up: false,
        parked: false,
    }
}

#[tokio::test]
async fn webhooks_are_leased_to_one_deliverer() {
    for Case { name, store, .. } in cases_with_projects().await {
        for (project, id) in [("alpha", "a-1"), ("alpha", "a-2"), ("beta", "b-1")] {
            store.topup(project, "RUB", 100, NOW).await.unwrap();
            store.write_session(creation(session(project, id, 10), &format!("k-{id}")), NOW).await.unwrap();
        }
        assert_eq!(store.next_webhook_at().await.unwrap(), Some(NOW), "{name}");
        let claimed = store.claim_webhooks(NOW, lease(), 10, vec!["beta".into()]).await.unwrap();
        assert_eq!(claimed.iter().map(|w| w.subject_id.as_str()).collect::<Vec<_>>(), ["a-1", "a-2"], "{name}");
        assert!(claimed[0].id < claimed[1].id, "{name}: by id");
        // Leased: neither claimed again nor rescheduled by an operator meanwhile.
        assert!(store.claim_webhooks(NOW, lease(), 10, vec!["beta".into()]).await.unwrap().is_empty(), "{name}");
        assert!(!store.resend_webhook(claimed[0].id, NOW).await.unwrap(), "{name}: resend refused while leased");
        assert_eq!(store.resend_pending(Some("alpha"), NOW).await.unwrap(), 0, "{name}");
        assert!(!store.resend_webhook(999_999, NOW).await.unwrap(), "{name}");

        // The first is delivered; the second fails once and is retried later.
        let (first, second) = (claimed[0].id, claimed[1].id);
        let retry_at = NOW + Duration::seconds(60);
        store.record_attempts(vec![attempt(first, 0, None), attempt(second, 0, Some(retry_at))]).await.unwrap();
        // A stale claim (its lease ran out and the webhook was claimed and recorded since) is ignored.
        store.record_attempts(vec![attempt(second, 0, None)]).await.unwrap();
        let hooks =
            store.webhooks(WebhookFilter { project_id: Some("alpha".into()), ..Default::default() }).await.unwrap();
        assert_eq!((hooks[0].state, hooks[0].attempts), (WebhookState::Delivered, 1), "{name}");
        assert_eq!(hooks[0].delivered_at, Some(NOW), "{name}");
        assert_eq!((hooks[1].state, hooks[1].attempts), (WebhookState::Pending, 1), "{name}");
        assert_eq!((hooks[1].next_attempt_at, hooks[1].last_status), (retry_at, Some(500)), "{name}");
        assert_eq!(store.webhook_attempts(second).await.unwrap().len(), 1, "{name}");
        let log = store.webhook_attempts(first).await.unwrap();
        assert_eq!(log[0].injected.as_deref(), Some("sent twice (the duplicate answered 200)"), "{name}");
        assert_eq!(store.webhook_attempts(second).await.unwrap()[0].injected, None, "{name}");

        // beta's webhook was never claimed; released ones come back at the given time.
        let beta = store.claim_webhooks(NOW, lease(), 10, vec![]).await.unwrap();
        assert_eq!(beta.iter().map(|w| w.subject_id.as_str()).collect::<Vec<_>>(), ["b-1"], "{name}");
        store.release_webhooks(vec![beta[0].id], NOW + Duration::seconds(1)).await.unwrap();
        assert_eq!(
            store.claim_webhooks(NOW + Duration::seconds(1), lease(), 10, vec![]).await.unwrap().len(),
            1,
            "{name}"
        );

        // Once recorded (not leased), a delivered webhook can be sent again, with a fresh schedule.
        assert!(store.resend_webhook(first, NOW).await.unwrap(), "{name}");
        let revived =
            store.webhooks(WebhookFilter { subject_id: Some("a-1".into()), ..Default::default() }).await.unwrap();
        assert_eq!((revived[0].state, revived[0].attempts_base), (WebhookState::Pending, 1), "{name}");
        assert_eq!(store.resend_pending(None, NOW).await.unwrap(), 2, "{name}: a-1 and a-2; b-1 is leased");
    }
}

#[tokio::test]
async fn a_projects_own_claim_takes_its_due_webhooks_alone() {
    for Case { name, store, .. } in cases_with_projects().await {
        for (project, id) in [("alpha", "a-1"), ("beta", "b-1"), ("alpha", "a-2")] {
            store.topup(project, "RUB", 100, NOW).await.unwrap();
            store.write_session(creation(session(project, id, 10), &format!("k-{id}")), NOW).await.unwrap();
        }
        let alpha = store.claim_project_webhooks("alpha", OwnClaim::real(NOW, lease()), 1).await.unwrap();
        assert_eq!(alpha.iter().map(|w| w.subject_id.as_str()).collect::<Vec<_>>(), ["a-1"], "{name}: its limit");
        let rest = store.claim_project_webhooks("alpha", OwnClaim::real(NOW, lease()), 10).await.unwrap();
        assert_eq!(rest.iter().map(|w| w.subject_id.as_str()).collect::<Vec<_>>(), ["a-2"], "{name}: leased once");
        assert!(
            store.claim_project_webhooks("gamma", OwnClaim::real(NOW, lease()), 10).await.unwrap().is_empty(),
            "{name}"
        );
        let others = store.claim_webhooks(NOW, lease(), 10, vec![]).await.unwrap();
        assert_eq!(others.iter().map(|w| w.subject_id.as_str()).collect::<Vec<_>>(), ["b-1"], "{name}");
    }
}

#[tokio::test]
async fn a_project_on_its_own_clock_is_claimed_on_its_own_time_alone() {
    for Case { name, store, .. } in cases_with_projects().await {
        for (project, id) in [("alpha", "a-1"), ("beta", "b-1")] {
            store.topup(project, "RUB", 100, NOW).await.unwrap();
            store.write_session(creation(session(project, id, 10), &format!("k-{id}")), NOW).await.unwrap();
            store.insert_check(new_check(project, "4510123456", id)).await.unwrap();
        }
        let day = ClockOffset::NONE.advanced(Duration::days(1)).unwrap();
        let change = SettingsChange { clock_offset: Some(day), ..Default::default() };
        store.set_project_settings("alpha", change, NOW).await.unwrap();
        assert_eq!(store.clocked_projects().await.unwrap(), [("alpha".to_string(), day)], "{name}");
        assert_eq!(store.project("alpha").await.unwrap().unwrap().settings.clock_offset, day, "{name}");
        // The claims of every project leave alpha's work to claims on its own time.
        let later = NOW + Duration::seconds(5);
        let timers = store.claim_due_timers(later, lease(), 10).await.unwrap();
        assert_eq!(timers.iter().map(|t| t.project_id.as_str()).collect::<Vec<_>>(), ["beta"], "{name}");
        let hooks = store.claim_webhooks(later, lease(), 10, vec![]).await.unwrap();
        assert_eq!(hooks.iter().map(|w| w.project_id.as_str()).collect::<Vec<_>>(), ["beta"], "{name}");
        let checks = store.claim_due_checks(NOW, NOW, lease(), 10).await.unwrap();
        assert_eq!(checks.iter().map(|c| c.project_id.as_str()).collect::<Vec<_>>(), ["beta"], "{name}");
        let own = day.apply(later);
        let timers = store.claim_project_due_timers("alpha", own, own + Duration::seconds(30), 10).await.unwrap();
        assert_eq!(timers.iter().map(|t| t.session_id.as_str()).collect::<Vec<_>>(), ["a-1"], "{name}");
        let checks = store.claim_project_due_checks("alpha", own, own, own + Duration::seconds(30), 10).await.unwrap();
        assert_eq!(checks.len(), 1, "{name}");
        assert!(store.claim_project_due_timers("beta", later, later, 10).await.unwrap().is_empty(), "{name}: leased");
        // A lease is kept on the real clock: moving alpha's clock on does not end it.
        let claim = |own: OffsetDateTime, real: OffsetDateTime| OwnClaim {
            now: own,
            lease_until: own + Duration::seconds(30),
            real_now: real,
            real_lease_until: real + Duration::seconds(30),
        };
        assert_eq!(store.claim_project_webhooks("alpha", claim(own, later), 10).await.unwrap().len(), 1, "{name}");
        let a_day_on = own + Duration::days(1);
        let again = store.claim_project_webhooks("alpha", claim(a_day_on, later + Duration::seconds(1)), 10).await;
        assert!(again.unwrap().is_empty(), "{name}: still leased on the real clock");
        let expired = store.claim_project_webhooks("alpha", claim(a_day_on, later + Duration::seconds(31)), 10).await;
        assert_eq!(expired.unwrap().len(), 1, "{name}: the lease ended in real time");
        // Back on real time, nothing is left out.
        let back = SettingsChange { clock_offset: Some(ClockOffset::NONE), ..Default::default() };
        store.set_project_settings("alpha", back, NOW).await.unwrap();
        assert!(store.clocked_projects().await.unwrap().is_empty(), "{name}");
        let far = later + Duration::days(3);
        let all = store.claim_webhooks(far, far + Duration::seconds(30), 10, vec![]).await.unwrap();
        assert_eq!(all.iter().filter(|w| w.project_id == "alpha").count(), 1, "{name}: alpha's, on the real clock");
    }
}

#[tokio::test]
async fn the_backlog_counts_what_waits_for_the_workers() {
    for Case { name, store, .. } in cases_with_projects().await {
        assert_eq!(store.backlog(NOW).await.unwrap(), open131_store::Backlog::default(), "{name}");
        for (project, id) in [("alpha", "a-1"), ("alpha", "a-2"), ("beta", "b-1")] {
            store.topup(project, "RUB", 100, NOW).await.unwrap();
            store.write_session(creation(session(project, id, 10), &format!("k-{id}")), NOW).await.unwrap();
        }
        let backlog = store.backlog(NOW).await.unwrap();
        assert_eq!(backlog.webhooks_pending, [("alpha".to_string(), 2), ("beta".to_string(), 1)], "{name}");
        assert_eq!(backlog.checks_pending, 0, "{name}");
    }
}

/// A scheduled report is claimed by one node at a time, taken over once its
/// lease runs out, and never again once done.
#[tokio::test]
async fn a_report_is_claimed_once_until_its_lease_ends_and_never_once_done() {
    for Case { name, store, .. } in cases_with_projects().await {
        let (lease, later) = (NOW + Duration::minutes(10), NOW + Duration::minutes(11));
        assert!(store.claim_report("alpha", "payouts:2026-11-30", NOW, lease).await.unwrap(), "{name}");
        assert!(!store.claim_report("alpha", "payouts:2026-11-30", NOW, lease).await.unwrap(), "{name}: held");
        assert!(store.claim_report("beta", "payouts:2026-11-30", NOW, lease).await.unwrap(), "{name}: beta's own");
        assert!(
            store.claim_report("alpha", "payouts:2026-11-30", later, later + Duration::minutes(10)).await.unwrap(),
            "{name}: a dead node's claim is taken over"
        );
        store.finish_report("alpha", "payouts:2026-11-30").await.unwrap();
        let far = later + Duration::days(1);
        assert!(!store.claim_report("alpha", "payouts:2026-11-30", far, far).await.unwrap(), "{name}: done");
    }
}

/// Alpha's webhook, claimed; then alpha's URL is removed while it is being delivered.
async fn claimed_then_url_removed(store: &dyn Store) -> open131_store::WebhookRecord {
    store.topup("alpha", "RUB", 100, NOW).await.unwrap();
    store.write_session(creation(session("alpha", "s-1", 10), "k"), NOW).await.unwrap();
    let w = store.claim_webhooks(NOW, lease(), 10, vec![]).await.unwrap().remove(0);
    store.set_project_settings("alpha", url_change(None), NOW).await.unwrap();
    w
}

#[tokio::test]
async fn a_new_webhook_url_releases_parked_webhooks() {
    for Case { name, store, .. } in cases_with_projects().await {
        let w = claimed_then_url_removed(store.as_ref()).await;
        let parked_until = NOW + Duration::hours(1);
        let parked = AttemptResult {
            parked: true,
            error: Some("no webhook URL".into()),
            ..attempt(w.id, 0, Some(parked_until))
        };
        store.record_attempts(vec![parked]).await.unwrap();
        let parked_row = store.webhooks(Default::default()).await.unwrap().remove(0);
        assert_eq!(parked_row.next_attempt_at, parked_until, "{name}");
        assert!(store.webhook_attempts(w.id).await.unwrap().is_empty(), "{name}: parking is no attempt");
        let later = NOW + Duration::seconds(10);
        store.set_project_settings("alpha", url_change(Some("https://p.example/new")), later).await.unwrap();
        assert_eq!(store.next_webhook_at().await.unwrap(), Some(later), "{name}");
    }
}

/// A webhook written while its project has no URL is parked from the start
/// (no claim and re-write per webhook); one with a URL is due at once; setting
/// a URL releases the parked backlog.
#[tokio::test]
async fn a_webhook_written_without_a_url_is_parked_from_the_start() {
    for Case { name, store, .. } in cases_with_projects().await {
        store.set_project_settings("alpha", url_change(None), NOW).await.unwrap();
        for project in ["alpha", "beta"] {
            store.topup(project, "RUB", 100, NOW).await.unwrap();
            store.write_session(creation(session(project, &format!("s-{project}"), 10), project), NOW).await.unwrap();
        }
        let hooks = store.webhooks(Default::default()).await.unwrap();
        let of = |p: &str| hooks.iter().find(|w| w.project_id == p).unwrap();
        let park_until = NOW + Duration::seconds(open131_store::WEBHOOK_PARK_S);
        assert_eq!(of("alpha").next_attempt_at, park_until, "{name}: parked");
        assert_eq!(of("alpha").last_error.as_deref(), Some(open131_store::WEBHOOK_PARKED_ERROR), "{name}");
        assert_eq!((of("beta").next_attempt_at, of("beta").last_error.as_deref()), (NOW, None), "{name}: due");
        let claimed = store.claim_webhooks(NOW, lease(), 10, vec![]).await.unwrap();
        assert_eq!(claimed.iter().map(|w| w.id).collect::<Vec<_>>(), [of("beta").id], "{name}: beta's alone");
        store.record_attempts(vec![attempt(of("beta").id, 0, None)]).await.unwrap();
        assert_eq!(store.next_webhook_at().await.unwrap(), Some(park_until), "{name}: beta's delivered");
        let later = NOW + Duration::seconds(10);
        store.set_project_settings("alpha", url_change(Some("https://p.example/h")), later).await.unwrap();
        assert_eq!(store.next_webhook_at().await.unwrap(), Some(later), "{name}: released");
        let claimed = store.claim_webhooks(later, later + Duration::seconds(30), 10, vec![]).await.unwrap();
        assert_eq!(claimed.iter().map(|w| w.id).collect::<Vec<_>>(), [of("alpha").id], "{name}");
    }
}

/// The race behind parked webhooks that waited an hour: a deliverer claims a
/// webhook, reads "no URL", an operator sets the URL (which releases parked
/// webhooks but leaves the leased one to its deliverer), then the deliverer
/// parks it. Parking must see the committed URL and release it instead.
#[tokio::test]
async fn a_webhook_is_not_parked_once_its_project_has_a_url() {
    for Case { name, store, .. } in cases_with_projects().await {
        let w = claimed_then_url_removed(store.as_ref()).await;
        // Set again while the deliverer still holds the webhook.
        let later = NOW + Duration::seconds(10);
        store.set_project_settings("alpha", url_change(Some("https://p.example/new")), later).await.unwrap();
        let parked = AttemptResult {
            parked: true,
            error: Some("no webhook URL".into()),
            at: later,
            ..attempt(w.id, 0, Some(NOW + Duration::hours(1)))
        };
        store.record_attempts(vec![parked]).await.unwrap();
        assert_eq!(store.next_webhook_at().await.unwrap(), Some(later), "{name}: due at once, not in an hour");
        let again = store.claim_webhooks(later, later + Duration::seconds(30), 10, vec![]).await.unwrap();
        assert_eq!(again.iter().map(|w| w.id).collect::<Vec<_>>(), [w.id], "{name}: claimable again");
    }
}
/// Takes everything due with two claimers at once; returns what each got.
async fn claim_with_two(store: &Arc<dyn Store>, kind: &'static str) -> Vec<Vec<String>> {
    let claimer = |store: Arc<dyn Store>| async move {
        let mut got = Vec::new();
        loop {
            let batch: Vec<String> = match kind {
                "checks" => store
                    .claim_due_checks(NOW, NOW, lease(), 7)
                    .await
                    .unwrap()
                    .iter()
                    .map(|c| c.id.to_string())
                    .collect(),
                "timers" => store
                    .claim_due_timers(NOW + Duration::seconds(5), lease(), 7)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|t| t.session_id)
                    .collect(),
                _ => store
                    .claim_webhooks(NOW, lease(), 7, vec![])
                    .await
                    .unwrap()
                    .iter()
                    .map(|w| w.id.to_string())
                    .collect(),
            };
            if batch.is_empty() {
                return got;
            }
            got.extend(batch);
        }
    };
    let (a, b) = (tokio::spawn(claimer(store.clone())), tokio::spawn(claimer(store.clone())));
    vec![a.await.unwrap(), b.await.unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_share_an_item() {
    for Case { name, store, .. } in cases_with_projects().await {
        const ITEMS: usize = 60;
        store.topup("alpha", "RUB", 1_000_000, NOW).await.unwrap();
        for i in 0..ITEMS {
            store.insert_check(new_check("alpha", &format!("45{:08}", 10_000_000 + i), "C")).await.unwrap();
            store
                .write_session(creation(session("alpha", &format!("s-{i}"), 10), &format!("k-{i}")), NOW)
                .await
                .unwrap();
        }
        for kind in ["checks", "timers", "webhooks"] {
            let got = claim_with_two(&store, kind).await;
            let all: Vec<&String> = got.iter().flatten().collect();
            let distinct: HashSet<&&String> = all.iter().collect();
            assert_eq!(all.len(), ITEMS, "{name} {kind}: every item claimed once");
            assert_eq!(distinct.len(), ITEMS, "{name} {kind}: no item claimed twice");
        }
    }
}

#[tokio::test]
async fn postgres_migrates_once_and_refuses_a_newer_schema() {
    let Some(admin) = postgres_admin_url() else {
        say_postgres_skipped();
        return;
    };
    let url = fresh_database(&admin).await.unwrap();
    // Nodes starting together: each migration is applied by exactly one.
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await.unwrap() })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.unwrap());
    }
    assert!(stores[0].migrate().await.unwrap().is_empty(), "nothing left to apply");

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let versions: i64 = client.query_one("SELECT COUNT(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    let known = PgStore::known_schema_version();
    assert_eq!(versions, known, "every migration applied once");
    client.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", &[]).await.unwrap();
    let refused = PgStore::connect(&url).await;
    assert!(
        matches!(refused, Err(StoreError::SchemaTooNew { found: 99, known: k }) if k == known),
        "{:?}",
        refused.err()
    );
}

/// Concurrent changes share group commits on both backends; refusals among
/// them (an empty wallet, a lost version race) must not undo their neighbours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_session_writes_keep_money_and_versions_exact() {
    for Case { name, store, .. } in cases_with_projects().await {
        store.topup("alpha", "RUB", 25 * 100, NOW).await.unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                let write = creation(session("alpha", &format!("c-{i}"), 100), &format!("ck-{i}"));
                tokio::spawn(async move { store.write_session(write, NOW).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let applied = outcomes.iter().filter(|o| **o == WriteOutcome::Applied(1)).count();
        let refused = outcomes.iter().filter(|o| **o == WriteOutcome::Insufficient).count();
        assert_eq!((applied, refused), (25, 15), "{name}: {outcomes:?}");
        let w = &store.wallets("alpha").await.unwrap()[0];
        assert_eq!((w.available, w.reserved), (0, 2_500), "{name}");
        let hooks = store.webhooks(WebhookFilter { project_id: Some("alpha".into()), ..Default::default() });
        assert_eq!(hooks.await.unwrap().len(), 25, "{name}: only the applied changes left webhooks");

        // Ten changes computed from one version: exactly one applies.
        let first = outcomes.iter().position(|o| *o == WriteOutcome::Applied(1)).unwrap();
        let id = format!("c-{first}");
        let base = store.session("alpha", &id).await.unwrap().unwrap();
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let store = store.clone();
                let record = SessionRecord { updated_at: NOW + Duration::seconds(i), ..awaiting_confirm(&base) };
                let write = plain_update(1, record);
                tokio::spawn(async move { store.write_session(write, NOW).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                WriteOutcome::Applied(2) => won += 1,
                WriteOutcome::VersionConflict => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(won, 1, "{name}");
        assert_eq!(store.session("alpha", &id).await.unwrap().unwrap().version, 2, "{name}");
    }
}

/// A session holds a list of operations (a child table): two payouts read
/// back in order, the second waiting its turn (a multi-session), a later
/// change keeps them, and another project sees none.
#[tokio::test]
async fn a_session_holds_a_list_of_payouts() {
    for Case { name, store, .. } in cases_with_projects().await {
        let mut record = session("alpha", "multi", 100);
        let mut second = record.payouts[0].clone();
        second.id = "payout-multi-2".into();
        second.amount = 250;
        second.created_at = NOW + Duration::seconds(1);
        second.state = PayoutState::Waiting;
        record.payouts.push(second);
        let mut write = creation(record.clone(), "multi-key");
        write.movements.clear();
        assert_eq!(store.write_session(write, NOW).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        let stored = store.session("alpha", "multi").await.unwrap().unwrap();
        assert_eq!(stored.payouts, record.payouts, "{name}");
        assert_eq!(stored.payout().map(|p| p.amount), Some(100), "the one that has begun: {name}");
        assert!(stored.has_waiting(), "{name}");

        let update = plain_update(1, awaiting_confirm(&stored));
        assert_eq!(store.write_session(update, NOW).await.unwrap(), WriteOutcome::Applied(2), "{name}");
        let after = store.session("alpha", "multi").await.unwrap().unwrap();
        // Each payout keeps its own state: only the first one moved.
        let states: Vec<PayoutState> = after.payouts.iter().map(|p| p.state).collect();
        assert_eq!(states, [PayoutState::AwaitingConfirm, PayoutState::Waiting], "{name}");
        assert_eq!(after.state, SessionState::InProgress, "{name}");
        assert!(store.session("beta", "multi").await.unwrap().is_none(), "{name}");
        // The first settles and the second begins, in one write; each keeps its own finish time.
        let mut turn = after.clone();
        turn.payouts[0].state = PayoutState::Succeeded;
        turn.payouts[0].finished_at = Some(NOW + Duration::seconds(3));
        turn.payouts[1].state = PayoutState::Preparing;
        assert_eq!(store.write_session(plain_update(2, turn.clone()), NOW).await.unwrap(), WriteOutcome::Applied(3));
        let read = store.session("alpha", "multi").await.unwrap().unwrap();
        assert_eq!(read.payouts, turn.payouts, "{name}");
        assert_eq!(read.payout().map(|p| p.amount), Some(250), "the second has begun: {name}");
        assert!(!read.has_waiting(), "{name}");
    }
}

#[tokio::test]
async fn a_created_session_keeps_its_draft_until_its_payout_starts() {
    for Case { name, store, .. } in cases_with_projects().await {
        let mut record = session("alpha", "drafted", 100);
        let payouts = std::mem::take(&mut record.payouts);
        record.state = SessionState::Created;
        record.draft = Some(Personal::new(r#"{"amount_details":{"amount":100,"currency":"rub"}}"#.into()));
        record.submerchant = Some("shop-1".into());
        let mut write = creation(record.clone(), "draft-key");
        write.movements.clear();
        assert_eq!(store.write_session(write, NOW).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        let stored = store.session("alpha", "drafted").await.unwrap().unwrap();
        assert_eq!((&stored.draft, &stored.submerchant), (&record.draft, &record.submerchant), "{name}");

        let mut started = stored.clone();
        started.state = SessionState::InProgress;
        started.payouts = payouts;
        started.draft = None;
        let update = plain_update(1, started);
        assert_eq!(store.write_session(update, NOW).await.unwrap(), WriteOutcome::Applied(2), "{name}");
        let after = store.session("alpha", "drafted").await.unwrap().unwrap();
        assert_eq!(after.draft, None, "{name}: the draft is used up");
        assert_eq!(after.submerchant.as_deref(), Some("shop-1"), "{name}: the sub-merchant stays");
        assert_eq!(after.payouts.len(), 1, "{name}");
    }
}

/// Books, conversions, statements and rates: a converted payout from the
/// nominal book reserves and debits roubles and pays dollars, each wallet
/// balancing; the statement reads one window; the rate table round-trips.
#[tokio::test]
async fn books_exchange_statements_and_rates() {
    for Case { name, store, .. } in cases_with_projects().await {
        store.topup_book("alpha", Book::Nominal, "rub", 100_000, NOW).await.unwrap();
        let mut s = session("alpha", "s-fx", 100);
        s.book = Book::Nominal;
        s.shape = open131_domain::books::Shape::MultiCard;
        s.payouts[0].currency = "usd".into();
        let rate = FxRate::parse("92.5").unwrap();
        s.payouts[0].exchange =
            Some(open131_store::Exchange { charged_amount: 9_250, charged_currency: "rub".into(), rate });
        s.payouts[0].confirm_information = Some(Personal::new(r#"{"transfer_details":{}}"#.into()));
        assert_eq!(store.write_session(creation(s.clone(), "fx-1"), NOW).await.unwrap(), WriteOutcome::Applied(1));
        assert_eq!(
            store.session("alpha", "s-fx").await.unwrap(),
            Some(SessionRecord { version: 1, ..s.clone() }),
            "{name}"
        );
        let later = NOW + Duration::seconds(60);
        let mut debit = plain_update(1, s.clone());
        debit.movements = legs(Movement::Debit, &s.payouts[0].funding(Book::Nominal));
        assert_eq!(store.write_session(debit, later).await.unwrap(), WriteOutcome::Applied(2), "{name}");
        let wallets = store.wallets("alpha").await.unwrap();
        let find = |c: &str| wallets.iter().find(|w| w.book == Book::Nominal && w.currency == c).unwrap().clone();
        let (rub, usd) = (find("rub"), find("usd"));
        assert_eq!((rub.available, rub.reserved, rub.exchange, rub.funding), (90_750, 0, 9_250, -100_000), "{name}");
        assert_eq!((usd.payouts, usd.exchange), (100, -100), "{name}");
        assert!(wallets.iter().all(|w| w.book == Book::Nominal), "{name}: the main book is untouched");
        // The statement of the minute after NOW holds the debit only; before it, the top-up and reservation.
        let st = store.statement("alpha", Book::Nominal, "rub", later, later + Duration::seconds(1), 10).await.unwrap();
        assert_eq!(
            st.postings.iter().map(|p| (p.account.as_str(), p.amount)).collect::<Vec<_>>(),
            [("reserved", -9_250), ("exchange", 9_250)],
            "{name}"
        );
        assert_eq!(st.postings[0].session_id.as_deref(), Some("s-fx"), "{name}");
        let opening: std::collections::BTreeMap<_, _> = st.opening.into_iter().collect();
        assert_eq!(
            (opening["available"], opening["reserved"], opening["funding"]),
            (90_750, 9_250, -100_000),
            "{name}"
        );
        let none = store.statement("beta", Book::Nominal, "rub", NOW, later + Duration::seconds(1), 10).await.unwrap();
        assert!(none.postings.is_empty() && none.opening.is_empty(), "{name}: statements are per project");
        // Rates: set, replace, list, remove.
        assert!(store.rates().await.unwrap().is_empty(), "{name}");
        store.set_rate("usd", Some(rate), NOW).await.unwrap();
        store.set_rate("usd", Some(FxRate::parse("93").unwrap()), NOW).await.unwrap();
        store.set_rate("eur", Some(rate), NOW).await.unwrap();
        let listed: Vec<String> = store.rates().await.unwrap().iter().map(|(c, r)| format!("{c}={r}")).collect();
        assert_eq!(listed, ["eur=92.5", "usd=93"], "{name}");
        assert!(store.set_rate("usd", None, NOW).await.unwrap(), "{name}");
        assert!(!store.set_rate("usd", None, NOW).await.unwrap(), "{name}");
        assert_eq!(store.rates().await.unwrap().len(), 1, "{name}");
    }
}

/// The card-payment accounts: a hold is not available, a partial capture
/// credits the part captured and releases the rest, and nothing releases more
/// than is held (the guard answers `Insufficient`).
#[tokio::test]
async fn holds_capture_and_release_on_both_backends() {
    for Case { name, store, .. } in cases_with_projects().await {
        let leg = |movement, amount| Leg::own(Book::Main, "rub", movement, amount);
        let s = session("alpha", "s-pay", 1_000);
        let mut create = creation(s.clone(), "pay-1");
        create.movements = vec![leg(Movement::Hold, 1_000)];
        assert_eq!(store.write_session(create, NOW).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        let w = store.wallets("alpha").await.unwrap().remove(0);
        assert_eq!((w.available, w.held, w.acquiring), (0, 1_000, -1_000), "{name}");
        let mut too_much = plain_update(1, s.clone());
        too_much.movements = vec![leg(Movement::ReleaseHold, 1_001)];
        assert_eq!(store.write_session(too_much, NOW).await.unwrap(), WriteOutcome::Insufficient, "{name}");
        let mut capture = plain_update(1, s.clone());
        capture.movements = vec![leg(Movement::Capture, 600), leg(Movement::ReleaseHold, 400)];
        assert_eq!(store.write_session(capture, NOW).await.unwrap(), WriteOutcome::Applied(2), "{name}");
        let w = store.wallets("alpha").await.unwrap().remove(0);
        assert_eq!((w.available, w.held, w.acquiring), (600, 0, -600), "{name}");
        let sums: std::collections::BTreeMap<_, _> =
            store.posting_sums("alpha", "rub").await.unwrap().into_iter().collect();
        assert_eq!((sums["available"], sums["held"], sums["acquiring"]), (600, 0, -600), "{name}");
    }
}

/// A wallet is created by the first movement that succeeds on it: a
/// reservation on a project that has none yet is refused and leaves no
/// empty wallet behind, and the next movement it can cover creates it.
#[tokio::test]
async fn a_refused_first_movement_leaves_no_wallet_on_both_backends() {
    for Case { name, store, .. } in cases_with_projects().await {
        let refused = store.write_session(creation(session("alpha", "s-1", 100), "key-1"), NOW).await.unwrap();
        assert_eq!(refused, WriteOutcome::Insufficient, "{name}");
        assert!(store.wallets("alpha").await.unwrap().is_empty(), "{name}");
        let mut hold = creation(session("alpha", "s-2", 100), "key-2");
        hold.movements = vec![Leg::own(Book::Main, "rub", Movement::Hold, 100)];
        assert_eq!(store.write_session(hold, NOW).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        let wallets = store.wallets("alpha").await.unwrap();
        assert_eq!(wallets.iter().map(|w| (w.held, w.acquiring)).collect::<Vec<_>>(), [(100, -100)], "{name}");
    }
}

/// A split payment's parts: each contractor's wallet moves with the
/// project's `contractors` account in the same write, never goes negative
/// (the whole write is refused then), and is the project's alone.
#[tokio::test]
async fn contractor_wallets_follow_split_movements_on_both_backends() {
    for Case { name, store, .. } in cases_with_projects().await {
        let leg = |movement, amount| Leg::own(Book::Main, "rub", movement, amount);
        let to = |alias: &str, movement, amount| Leg { contractor: Some(alias.into()), ..leg(movement, amount) };
        let s = session("alpha", "s-split", 1_000);
        let mut create = creation(s.clone(), "split-1");
        create.movements = vec![
            leg(Movement::Hold, 1_000),
            leg(Movement::Capture, 1_000),
            to("a", Movement::SplitOut, 300),
            to("b", Movement::SplitOut, 500),
        ];
        assert_eq!(store.write_session(create, NOW).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        assert_eq!(
            contractor_balances(store.as_ref(), "alpha").await,
            [("a".to_string(), 300), ("b".to_string(), 500)],
            "{name}"
        );
        let w = store.wallets("alpha").await.unwrap().remove(0);
        assert_eq!((w.available, w.contractors), (200, 800), "{name}");
        // More back than a contractor holds refuses the whole write.
        let mut too_much = plain_update(1, s.clone());
        too_much.movements = vec![to("b", Movement::SplitBack, 100), to("a", Movement::SplitBack, 301)];
        assert_eq!(store.write_session(too_much, NOW).await.unwrap(), WriteOutcome::Insufficient, "{name}");
        assert_eq!(
            contractor_balances(store.as_ref(), "alpha").await,
            [("a".to_string(), 300), ("b".to_string(), 500)],
            "{name}"
        );
        let mut back = plain_update(1, s.clone());
        back.movements = vec![to("a", Movement::SplitBack, 100)];
        assert_eq!(store.write_session(back, NOW).await.unwrap(), WriteOutcome::Applied(2), "{name}");
        let w = store.wallets("alpha").await.unwrap().remove(0);
        let held: i64 = store.contractor_wallets("alpha").await.unwrap().iter().map(|w| w.balance).sum();
        assert_eq!((w.available, w.contractors, held), (300, 700, 700), "{name}: the account is their sum");
        // A split movement must name its contractor.
        let mut nameless = plain_update(2, s.clone());
        nameless.movements = vec![leg(Movement::SplitOut, 1)];
        assert!(store.write_session(nameless, NOW).await.is_err(), "{name}");
        assert!(store.contractor_wallets("beta").await.unwrap().is_empty(), "{name}: another project sees none");
        let sums: std::collections::BTreeMap<_, _> =
            store.posting_sums("alpha", "rub").await.unwrap().into_iter().collect();
        assert_eq!(sums["contractors"], 700, "{name}");
    }
}

/// A subscription is made with its first payment's session, read back with
/// it, claimed once when due (a lease keeps other nodes off), and changed
/// only at the version it was read at: a stale charge writes neither the
/// subscription nor its charge's session.
#[tokio::test]
async fn subscriptions_are_made_claimed_and_charged_once_on_both_backends() {
    use open131_domain::subscription::{Period, Schedule, SubscriptionState};
    use open131_store::{PaymentSubscription, SubscriptionRecord, SubscriptionWrite};
    for Case { name, store, .. } in cases_with_projects().await {
        let mut first = session("alpha", "s-first", 0);
        first.payouts.clear();
        let schedule = Schedule {
            state: SubscriptionState::Active,
            period: Period::Month,
            anchor: NOW,
            next_point: NOW + Duration::days(31),
            failures: 0,
            charges: 0,
        };
        let sub = SubscriptionRecord {
            project_id: "alpha".into(),
            id: "sub_1".into(),
            version: 1,
            schedule,
            amount: 500,
            currency: "rub".into(),
            method_masked: "{}".into(),
            card_expiry: open131_domain::ident::CardExpiry::parse("12", "30").ok(),
            customer: Personal::new(r#"{"reference":"u"}"#.into()),
            metadata: None,
            api_version: ApiVersion::V2,
            first_session_id: "s-first".into(),
            submerchant: Some("shop-1".into()),
            created_at: NOW,
            updated_at: NOW,
        };
        let payment = |id: &str, initial: bool| open131_store::PaymentRecord {
            id: id.into(),
            amount: 500,
            currency: "rub".into(),
            method_masked: "{}".into(),
            customer: Personal::new("{}".into()),
            participant_details: None,
            metadata: None,
            return_url: None,
            plan: open131_domain::payment::PaymentPlan {
                three_ds: false,
                verdict: open131_domain::payment::Verdict::Authorize,
            },
            state: open131_domain::payment_flow::PaymentState::Succeeded,
            captured_amount: None,
            created_at: NOW,
            fee_amount: 0,
            three_ds_attempts: 0,
            refunds: Vec::new(),
            recurrent: false,
            recurrent_token: None,
            finished_at: Some(NOW),
            split: None,
            subscription: Some(PaymentSubscription {
                period: Period::Month,
                id: Some("sub_1".into()),
                initial,
                schedule: Some(schedule),
            }),
            card_expiry: open131_domain::ident::CardExpiry::parse("12", "30").ok(),
        };
        first.payments = vec![payment("pm_first", true)];
        let mut make = creation(first.clone(), "first");
        make.movements.clear();
        make.subscription = Some(SubscriptionWrite { expected_version: None, record: sub.clone() });
        assert_eq!(store.write_session(make, NOW).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        assert_eq!(store.subscription("alpha", "sub_1").await.unwrap(), Some(sub.clone()), "{name}");
        assert_eq!(store.subscription("beta", "sub_1").await.unwrap(), None, "{name}: another project's");
        let read = store.session("alpha", "s-first").await.unwrap().unwrap();
        assert_eq!(read.payments, first.payments, "{name}: the payment reads its subscription back");

        // Not due yet; due a month on, claimed once while its lease lasts.
        let later = NOW + Duration::days(31);
        let lease = later + Duration::seconds(60);
        assert!(store.claim_due_subscriptions(NOW, lease, 10).await.unwrap().is_empty(), "{name}");
        let claimed = store.claim_due_subscriptions(later, lease, 10).await.unwrap();
        assert_eq!(claimed, std::slice::from_ref(&sub), "{name}");
        assert!(store.claim_due_subscriptions(later, lease, 10).await.unwrap().is_empty(), "{name}: leased");

        // A charge from a stale read writes nothing at all.
        let charged = Schedule { next_point: NOW + Duration::days(59), charges: 1, ..schedule };
        let mut charge_session = session("alpha", "s-charge", 0);
        charge_session.payouts.clear();
        charge_session.payments = vec![payment("pm_charge", false)];
        let charge = |expected| {
            let mut w = creation(charge_session.clone(), "charge-1");
            w.movements.clear();
            w.subscription = Some(SubscriptionWrite {
                expected_version: Some(expected),
                record: SubscriptionRecord { schedule: charged, updated_at: later, ..sub.clone() },
            });
            w
        };
        assert_eq!(store.write_session(charge(7), later).await.unwrap(), WriteOutcome::VersionConflict, "{name}");
        assert!(store.session("alpha", "s-charge").await.unwrap().is_none(), "{name}: no charge session");
        assert_eq!(store.write_session(charge(1), later).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        let now = store.subscription("alpha", "sub_1").await.unwrap().unwrap();
        assert_eq!((now.version, now.schedule), (2, charged), "{name}");
        // The charge ended its lease: it is claimed again at its next point, not before.
        let next = NOW + Duration::days(59);
        assert!(store.claim_due_subscriptions(later + Duration::seconds(1), lease, 10).await.unwrap().is_empty());
        assert_eq!(store.claim_due_subscriptions(next, next, 10).await.unwrap().len(), 1, "{name}");

        // Cancelled (at the version read) it is never claimed; a stale cancel is refused.
        let cancelled = Schedule { state: SubscriptionState::Cancelled, ..charged };
        let cancel = |expected| SubscriptionWrite {
            expected_version: Some(expected),
            record: SubscriptionRecord { schedule: cancelled, version: 2, ..now.clone() },
        };
        assert_eq!(store.write_subscription(cancel(1), next).await.unwrap(), WriteOutcome::VersionConflict, "{name}");
        assert_eq!(store.write_subscription(cancel(2), next).await.unwrap(), WriteOutcome::Applied(3), "{name}");
        let far = next + Duration::days(400);
        assert!(store.claim_due_subscriptions(far, far, 10).await.unwrap().is_empty(), "{name}: cancelled");
    }
}

/// A public token is kept whole and found by its project only.
#[tokio::test]
async fn public_tokens_round_trip_on_both_backends() {
    use open131_domain::widget::parse_token_request;
    for Case { name, store, .. } in cases_with_projects().await {
        let body = serde_json::json!({"tokenize_widget": {"access": true},
            "self_employed_widget": {"tax_reference": "500100732259"}});
        let grant = parse_token_request(body.as_object().unwrap()).unwrap();
        let token = open131_store::PublicTokenRecord {
            token: "ab".repeat(32),
            project_id: "alpha".into(),
            grant,
            created_at: NOW,
            expires_at: NOW + Duration::days(1),
            used_at: None,
        };
        store.insert_public_token(token.clone()).await.unwrap();
        assert_eq!(store.public_token("alpha", &token.token).await.unwrap(), Some(token.clone()), "{name}");
        assert_eq!(store.public_token("beta", &token.token).await.unwrap(), None, "{name}: another project's");
        assert!(store.insert_public_token(token.clone()).await.is_err(), "{name}: a token is unique");
        // A browser brings it without a project; it serves once, and not after it expires.
        assert_eq!(store.public_token_by_value(&token.token).await.unwrap(), Some(token.clone()), "{name}");
        let late = NOW + Duration::days(2);
        assert_eq!(store.use_public_token(&token.token, late).await.unwrap(), None, "{name}: expired");
        let used = store.use_public_token(&token.token, NOW).await.unwrap().unwrap();
        assert_eq!(used.used_at, Some(NOW), "{name}");
        assert_eq!(store.use_public_token(&token.token, NOW).await.unwrap(), None, "{name}: once");

        // The vault keeps a card once per project and hash, sealed bytes as given.
        let card = open131_store::VaultCardRecord {
            project_id: "alpha".into(),
            number_hash: "cd".repeat(32),
            key_id: "0a1b2c3d".into(),
            nonce: vec![1; 12],
            ciphertext: vec![0, 255, 7, 9],
            brand: "visa".into(),
            bin: "424242".into(),
            last4: "4242".into(),
            card_expiry: open131_domain::ident::CardExpiry::parse("12", "30").ok(),
            created_at: NOW,
        };
        store.put_card(card.clone()).await.unwrap();
        assert_eq!(store.vault_card("alpha", &card.number_hash).await.unwrap(), Some(card.clone()), "{name}");
        // The same card again (reissued): sealed afresh with its new expiry, first seen as before.
        let renewed = open131_store::VaultCardRecord {
            ciphertext: vec![1],
            card_expiry: open131_domain::ident::CardExpiry::parse("12", "34").ok(),
            created_at: NOW + Duration::days(1),
            ..card.clone()
        };
        store.put_card(renewed.clone()).await.unwrap();
        let expected = open131_store::VaultCardRecord { created_at: NOW, ..renewed };
        assert_eq!(store.vault_card("alpha", &card.number_hash).await.unwrap(), Some(expected), "{name}");
        assert_eq!(store.vault_card("beta", &card.number_hash).await.unwrap(), None, "{name}");
        let account = open131_store::VaultAccountRecord {
            project_id: "alpha".into(),
            token: "ef".repeat(32),
            key_id: "0a1b2c3d".into(),
            nonce: vec![2; 12],
            ciphertext: vec![3, 4],
            bik: "044525974".into(),
            masked_account: "40817***********9535".into(),
            created_at: NOW,
        };
        assert!(store.put_account(account.clone()).await.unwrap(), "{name}");
        assert!(!store.put_account(account.clone()).await.unwrap(), "{name}: once");
        assert_eq!(store.vault_account("alpha", &account.token).await.unwrap(), Some(account.clone()), "{name}");
        assert_eq!(store.vault_account("beta", &account.token).await.unwrap(), None, "{name}");
    }
}

/// A self-employed link is kept per project and INN, each change guarded by
/// the version read: a second change from the same version is refused.
#[tokio::test]
async fn npd_links_change_once_per_version_on_both_backends() {
    use open131_domain::npd_link::LinkState;
    for Case { name, store, .. } in cases_with_projects().await {
        let inn = "500100732259";
        assert_eq!(store.npd_link("alpha", inn).await.unwrap(), None, "{name}");
        let requested = open131_store::NpdLinkRecord {
            project_id: "alpha".into(),
            inn: inn.into(),
            state: LinkState::Requested,
            version: 1,
            updated_at: NOW,
        };
        assert!(store.save_npd_link(requested.clone(), None).await.unwrap(), "{name}");
        assert!(!store.save_npd_link(requested.clone(), None).await.unwrap(), "{name}: one row per project and INN");
        assert_eq!(store.npd_link("alpha", inn).await.unwrap(), Some(requested.clone()), "{name}");
        assert_eq!(store.npd_link("beta", inn).await.unwrap(), None, "{name}: another project's");
        let linked = open131_store::NpdLinkRecord {
            state: LinkState::Linked,
            version: 2,
            updated_at: NOW + Duration::minutes(1),
            ..requested.clone()
        };
        let declined = open131_store::NpdLinkRecord { state: LinkState::Declined, ..linked.clone() };
        assert!(store.save_npd_link(linked.clone(), Some(1)).await.unwrap(), "{name}");
        assert!(!store.save_npd_link(declined, Some(1)).await.unwrap(), "{name}: the version moved on");
        assert_eq!(store.npd_link("alpha", inn).await.unwrap(), Some(linked), "{name}");
        // Another project links the same person on its own.
        let theirs = open131_store::NpdLinkRecord { project_id: "beta".into(), ..requested };
        assert!(store.save_npd_link(theirs.clone(), None).await.unwrap(), "{name}");
        assert_eq!(store.npd_link("beta", inn).await.unwrap(), Some(theirs), "{name}");
    }
}

/// NPD requests are kept whole per project; the operator's word on a person
/// is kept once per INN, the latest replacing the earlier.
#[tokio::test]
async fn npd_requests_and_taxpayers_round_trip_on_both_backends() {
    use open131_domain::npd::{NpdAnswer, NpdError, TaxStatus, Taxpayer};
    for Case { name, store, .. } in cases_with_projects().await {
        for (id, answer) in [
            ("npd_1", NpdAnswer::Checked { self_employed: true, linked: false }),
            ("npd_2", NpdAnswer::PersonalInfo { mismatches: vec!["full_name"] }),
            ("npd_3", NpdAnswer::Failed(NpdError::TaxpayerUnknown)),
        ] {
            let request = open131_store::NpdRequestRecord {
                project_id: "alpha".into(),
                id: id.into(),
                inn: "500100732259".into(),
                kind: open131_store::NpdRequestKind::Check,
                answer,
                created_at: NOW,
                ready_at: NOW + Duration::seconds(2),
            };
            store.insert_npd_request(request.clone()).await.unwrap();
            assert_eq!(store.npd_request("alpha", id).await.unwrap(), Some(request.clone()), "{name}");
            assert_eq!(store.npd_request("beta", id).await.unwrap(), None, "{name}: another project's");
            assert!(store.insert_npd_request(request).await.is_err(), "{name}: an id is unique");
        }
        assert_eq!(store.npd_taxpayer("500100732259").await.unwrap(), None, "{name}");
        let first = Taxpayer {
            status: TaxStatus::NotSelfEmployed,
            full_name: Some("А Б".into()),
            phone: None,
            service_error: false,
            receipt_refusals: 0,
        };
        store.set_npd_taxpayer("500100732259", &first, NOW).await.unwrap();
        assert_eq!(store.npd_taxpayer("500100732259").await.unwrap(), Some(first), "{name}");
        let second = Taxpayer {
            status: TaxStatus::SelfEmployed,
            full_name: None,
            phone: Some("79001112233".into()),
            service_error: true,
            receipt_refusals: 3,
        };
        store.set_npd_taxpayer("500100732259", &second, NOW).await.unwrap();
        assert_eq!(store.npd_taxpayer("500100732259").await.unwrap(), Some(second), "{name}");
    }
}

/// A self-employed payout's fiscalization and receipt are kept with it: the
/// receipt moves on with the session's writes (a late registration adds
/// both), and a cancelled receipt's income leaves the person's yearly sum.
#[tokio::test]
async fn receipts_move_with_their_payout_and_a_cancelled_one_frees_the_income() {
    use open131_domain::receipt::{CancelReason, Receipt, ReceiptEvent};
    const INN: &str = "500100732259";
    let fiscal = format!(
        r#"{{"professional_income_taxpayer":{{"services":[{{"name":"Доставка","amount_details":{{"amount":1000,"currency":"rub"}},"quantity":1}}],"tax_reference":"{INN}","payer_type":"individual"}}}}"#
    );
    let year = (NOW - Duration::days(1), NOW + Duration::days(1));
    for Case { name, store, .. } in cases_with_projects().await {
        store.topup("alpha", "RUB", 5_000, NOW).await.unwrap();
        let mut s = session("alpha", "s-npd", 1_000);
        s.payouts[0].fiscalization = Some(Personal::new(fiscal.clone()));
        let created = store.write_session(creation(s.clone(), "k-npd"), NOW).await.unwrap();
        assert_eq!(created, WriteOutcome::Applied(1), "{name}");
        let income = || store.fiscal_income("alpha", INN, year.0, year.1);
        assert_eq!(income().await.unwrap(), 1_000, "{name}");
        assert_eq!(store.fiscal_income("beta", INN, year.0, year.1).await.unwrap(), 0, "{name}: another project's");
        let mut next = s.clone();
        next.payouts[0].state = PayoutState::Succeeded;
        let (pending, _) = Receipt::new(NOW).apply(ReceiptEvent::Refused { last: false }, NOW).unwrap();
        let (registered, _) = pending.apply(ReceiptEvent::Accepted, NOW + Duration::seconds(60)).unwrap();
        let (cancelled, _) = registered.apply(ReceiptEvent::Cancel(CancelReason::Mistake), NOW).unwrap();
        for (version, receipt) in (1..).zip([pending, registered, cancelled]) {
            next.payouts[0].receipt = Some(receipt);
            let outcome = store.write_session(plain_update(version, next.clone()), NOW).await.unwrap();
            assert_eq!(outcome, WriteOutcome::Applied(version + 1), "{name}");
            let read = store.session("alpha", "s-npd").await.unwrap().unwrap();
            assert_eq!(read.payouts[0].receipt, Some(receipt), "{name}");
        }
        assert_eq!(income().await.unwrap(), 0, "{name}: a cancelled receipt's income is freed");
        // A payout that went without: its fiscalization and receipt come later.
        let mut late = session("alpha", "s-late", 700);
        late.payouts[0].state = PayoutState::Succeeded;
        store.write_session(creation(late.clone(), "k-late"), NOW).await.unwrap();
        late.payouts[0].fiscalization = Some(Personal::new(fiscal.clone()));
        late.payouts[0].receipt = Some(registered);
        store.write_session(plain_update(1, late), NOW).await.unwrap();
        let read = store.session("alpha", "s-late").await.unwrap().unwrap();
        assert_eq!(read.payouts[0].fiscalization.as_ref().map(|f| f.expose().clone()), Some(fiscal.clone()), "{name}");
        assert_eq!(income().await.unwrap(), 700, "{name}");
    }
}

async fn contractor_balances(store: &dyn Store, project: &str) -> Vec<(String, i64)> {
    store.contractor_wallets(project).await.unwrap().into_iter().map(|w| (w.alias, w.balance)).collect()
}

/// A session's acquiring payment is stored with it and read back whole; a
/// later change moves its state and records what a capture took.
#[tokio::test]
async fn a_payment_session_round_trips_on_both_backends() {
    use open131_domain::payment::{PaymentPlan, Verdict};
    use open131_domain::payment_flow::{PaymentFailure, PaymentState};
    for Case { name, store, .. } in cases_with_projects().await {
        let mut s = session("alpha", "s-card", 0);
        s.payouts.clear();
        s.payments = vec![open131_store::PaymentRecord {
            id: "pm_1".into(),
            amount: 10_000,
            currency: "rub".into(),
            method_masked: r#"{"type":"card","card":{"brand":"visa","last4":"4242","bin":"424242"}}"#.into(),
            customer: Personal::new(r#"{"reference":"user-1"}"#.into()),
            participant_details: None,
            metadata: Some(r#""good""#.into()),
            return_url: Some("https://shop.example/back".into()),
            plan: PaymentPlan { three_ds: true, verdict: Verdict::Decline(PaymentFailure::InsufficientFunds) },
            state: PaymentState::Preparing,
            captured_amount: None,
            created_at: NOW,
            fee_amount: 0,
            three_ds_attempts: 0,
            refunds: Vec::new(),
            recurrent: true,
            recurrent_token: None,
            finished_at: None,
            split: open131_domain::split::Split::parse_stored(r#"[{"c":"courier-1","bp":1000,"amount":null}]"#),
            subscription: None,
            card_expiry: open131_domain::ident::CardExpiry::parse("12", "30").ok(),
        }];
        assert!(s.payments[0].split.is_some());
        let mut create = creation(s.clone(), "card-1");
        create.movements.clear();
        assert_eq!(store.write_session(create, NOW).await.unwrap(), WriteOutcome::Applied(1), "{name}");
        let stored = store.session("alpha", "s-card").await.unwrap().unwrap();
        assert_eq!(stored, SessionRecord { version: 1, ..s.clone() }, "{name}");
        assert!(stored.payouts.is_empty() && stored.payment().is_some(), "{name}");
        let mut held = stored.clone();
        held.payments[0].state = PaymentState::AwaitingCapture;
        held.payments[0].captured_amount = Some(6_000);
        held.payments[0].fee_amount = 150;
        held.payments[0].three_ds_attempts = 2;
        // A capture settles the split's parts.
        held.payments[0].split.as_mut().unwrap().settle(5_850);
        // Two refunds, asked for at the same instant: read back in the order asked.
        let refund = |id: &str, amount, state| open131_store::PaymentRefundRecord {
            id: id.into(),
            amount,
            state,
            is_chargeback: false,
            metadata: Some(r#""r""#.into()),
            created_at: NOW,
            finished_at: None,
            split: open131_domain::split::Taken(vec![("courier-1".into(), amount / 10)]),
        };
        use open131_domain::refund_flow::RefundState;
        held.payments[0].refunds =
            vec![refund("rf_9", 1_000, RefundState::InProgress), refund("rf_1", 500, RefundState::InProgress)];
        assert_eq!(store.write_session(plain_update(1, held.clone()), NOW).await.unwrap(), WriteOutcome::Applied(2));
        let after = store.session("alpha", "s-card").await.unwrap().unwrap();
        assert_eq!(after.payments, held.payments, "{name}");
        assert_eq!(after.payment().unwrap().captured(), 6_000, "{name}");
        assert_eq!(after.payment().unwrap().refundable(), 4_500, "{name}");
        // A refund's state and finish time change; nothing else about it does.
        let mut done = after.clone();
        done.payments[0].refunds[1].state = RefundState::Declined;
        done.payments[0].refunds[1].finished_at = Some(NOW);
        // The payment keeps the time it settled.
        done.payments[0].finished_at = Some(NOW + Duration::seconds(7));
        assert_eq!(store.write_session(plain_update(2, done.clone()), NOW).await.unwrap(), WriteOutcome::Applied(3));
        let read = store.session("alpha", "s-card").await.unwrap().unwrap();
        assert_eq!(read.payments, done.payments, "{name}");
        assert_eq!(read.payment().unwrap().refundable(), 5_000, "{name}: a declined refund does not count");

        // The token it issues is found by the project only, and once disabled
        // stays so whatever the session writes later.
        let mut issued = read.clone();
        let token = open131_store::RecurrentToken {
            token: "rt_abc".into(),
            created_at: NOW,
            finished_at: NOW + time::Duration::days(3),
            is_active: true,
        };
        issued.payments[0].recurrent_token = Some(token.clone());
        assert_eq!(store.write_session(plain_update(3, issued.clone()), NOW).await.unwrap(), WriteOutcome::Applied(4));
        assert_eq!(store.recurrent_token("alpha", "rt_abc").await.unwrap(), Some(token.clone()), "{name}");
        assert_eq!(store.recurrent_token("beta", "rt_abc").await.unwrap(), None, "{name}");
        assert!(!store.disable_recurrent_token("beta", "rt_abc").await.unwrap(), "{name}");
        assert!(store.disable_recurrent_token("alpha", "rt_abc").await.unwrap(), "{name}");
        assert_eq!(store.write_session(plain_update(4, issued), NOW).await.unwrap(), WriteOutcome::Applied(5));
        let after = store.session("alpha", "s-card").await.unwrap().unwrap();
        let kept = after.payment().unwrap().recurrent_token.clone().unwrap();
        assert_eq!(kept, open131_store::RecurrentToken { is_active: false, ..token }, "{name}");
        assert!(after.payment().unwrap().recurrent, "{name}");
        assert!(!format!("{:?}", after.payments[0]).contains("user-1"), "{name}: the payer is personal data");
    }
}
