//! Installations from before the payouts table (SQLite schema 8, PostgreSQL
//! schema 2) upgrade in place: their sessions keep their payouts, moved into
//! the child table, and the fused phase splits into the session's state and
//! its payout's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use open131_domain::payout_flow::{FailureCode, PayoutState};
use open131_domain::session::SessionState;
use open131_store::layout::DataDir;
use open131_store::sqlite::SqliteStore;
use open131_store::SessionStore;

/// The last SQLite schema before the payouts table.
const BEFORE_PAYOUTS_TABLE: i64 = 8;

/// An installation's database as the migrations up to `version` left it.
fn installation_at(path: &std::path::Path, version: i64) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_us INTEGER NOT NULL) STRICT",
    )
    .unwrap();
    for (v, name, sql) in open131_store::sqlite::MIGRATIONS.iter().filter(|(v, _, _)| *v <= version) {
        conn.execute_batch(sql).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (?1, ?2, 0)", rusqlite::params![v, name]).unwrap();
    }
    conn
}

#[tokio::test]
async fn sessions_keep_their_payouts_across_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = installation_at(&DataDir::new(dir.path()).database(), BEFORE_PAYOUTS_TABLE);
        conn.execute_batch(
            "INSERT INTO projects (id, created_at_us) VALUES ('shop', 0);
             INSERT INTO sessions (project_id, id, api_version, phase, version, payout_id, amount, currency,
                 method_masked, participant_details, customer, metadata, plan, created_at_us, updated_at_us,
                 payout_created_at_us)
             VALUES ('shop', 'ps_1', 'v1', 'awaiting_confirm', 2, 'po_1', 1500, 'rub', '{\"type\":\"card\"}',
                 '{\"recipient\":{\"full_name\":\"X\"}}', NULL, '{\"k\":1}', 'ok:slow', 10, 20, 10);
             INSERT INTO sessions (project_id, id, api_version, phase, version, created_at_us, updated_at_us)
             VALUES ('shop', 'ps_2', 'v2', 'created', 1, 30, 30);
             INSERT INTO sessions (project_id, id, api_version, phase, version, created_at_us, updated_at_us)
             VALUES ('shop', 'ps_3', 'v2', 'cancelled', 2, 30, 30);",
        )
        .unwrap();
        for (id, phase) in [
            ("ps_4", "succeeded"),
            ("ps_5", "failed:bank_card_expired"),
            ("ps_6", "processing"),
            ("ps_7", "failed:session_cancelled_by_partner"),
        ] {
            conn.execute(
                "INSERT INTO sessions (project_id, id, api_version, phase, version, payout_id, amount, currency,
                     method_masked, participant_details, plan, created_at_us, updated_at_us, payout_created_at_us)
                 VALUES ('shop', ?1, 'v2', ?2, 4, ?1, 100, 'rub', '{}', '{}', 'ok', 10, 20, 10)",
                [id, phase],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let s1 = store.session("shop", "ps_1").await.unwrap().unwrap();
    let p = s1.payout().unwrap();
    assert_eq!((p.id.as_str(), p.amount, p.currency.as_str()), ("po_1", 1500, "rub"));
    assert_eq!(p.plan, open131_domain::payout::SandboxPlan::SucceedSlowly);
    assert_eq!(p.metadata.as_deref(), Some("{\"k\":1}"));
    assert_eq!(s1.version, 2);
    let s2 = store.session("shop", "ps_2").await.unwrap().unwrap();
    assert!(s2.payouts.is_empty());

    assert_split(&store).await;
}

/// Sessions stored with the fused phases of the old schema (ps_1 … ps_7, see
/// the inserts) read back as a session state and a payout state.
async fn assert_split(store: &dyn SessionStore) {
    let states = [
        ("ps_1", SessionState::InProgress, Some(PayoutState::AwaitingConfirm)),
        ("ps_2", SessionState::Created, None),
        ("ps_3", SessionState::Cancelled, None),
        ("ps_4", SessionState::Accepted, Some(PayoutState::Succeeded)),
        // A payout that failed by itself ends its session in `error` (migration
        // payouts_complete applies the issue-8 session table to old rows).
        ("ps_5", SessionState::Error, Some(PayoutState::Failed(FailureCode::BankCardExpired))),
        ("ps_6", SessionState::InProgress, Some(PayoutState::Processing)),
        ("ps_7", SessionState::Cancelled, Some(PayoutState::Failed(FailureCode::SessionCancelledByPartner))),
    ];
    for (id, session, payout) in states {
        let s = store.session("shop", id).await.unwrap().unwrap();
        assert_eq!((s.state, s.payout().map(|p| p.state)), (session, payout), "{id}");
    }
}

const PG_BEFORE_PAYOUTS_TABLE: [&str; 2] = [
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_check_postponed.sql"),
];

#[tokio::test]
async fn postgres_sessions_split_their_phase_across_the_upgrade() {
    let Some(admin) = open131_store::testing::postgres_admin_url() else {
        eprintln!("skipped: set {} to run", open131_store::testing::TEST_POSTGRES_ENV);
        return;
    };
    let url = open131_store::testing::fresh_database(&admin).await.unwrap();
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    db.batch_execute(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)",
    )
    .await
    .unwrap();
    for (i, sql) in PG_BEFORE_PAYOUTS_TABLE.iter().enumerate() {
        db.batch_execute(sql).await.unwrap();
        db.execute("INSERT INTO schema_migrations VALUES ($1, 'old', 0)", &[&(i as i64 + 1)]).await.unwrap();
    }
    db.batch_execute(
        "INSERT INTO projects (id, created_at_us) VALUES ('shop', 0);
         INSERT INTO sessions (project_id, id, api_version, phase, version, payout_id, amount, currency,
             method_masked, participant_details, plan, created_at_us, updated_at_us, payout_created_at_us)
         VALUES ('shop', 'ps_1', 'v1', 'awaiting_confirm', 2, 'po_1', 1500, 'rub', '{}', '{}', 'ok:slow', 10, 20, 10),
                ('shop', 'ps_4', 'v2', 'succeeded', 4, 'po_4', 100, 'rub', '{}', '{}', 'ok', 10, 20, 10),
                ('shop', 'ps_5', 'v2', 'failed:bank_card_expired', 4, 'po_5', 100, 'rub', '{}', '{}', 'ok', 10, 20, 10),
                ('shop', 'ps_6', 'v2', 'processing', 4, 'po_6', 100, 'rub', '{}', '{}', 'ok', 10, 20, 10),
                ('shop', 'ps_7', 'v2', 'failed:session_cancelled_by_partner', 4, 'po_7', 100, 'rub', '{}', '{}', 'ok',
                 10, 20, 10);
         INSERT INTO sessions (project_id, id, api_version, phase, version, created_at_us, updated_at_us)
         VALUES ('shop', 'ps_2', 'v2', 'created', 1, 30, 30), ('shop', 'ps_3', 'v2', 'cancelled', 2, 30, 30);",
    )
    .await
    .unwrap();
    let store = open131_store::open(&open131_store::Location::choose(Some(&url), std::path::Path::new(".")).unwrap())
        .await
        .unwrap();
    assert_eq!(store.session("shop", "ps_1").await.unwrap().unwrap().payout().map(|p| p.amount), Some(1500));
    assert_split(store.as_ref()).await;
}

/// Schema 29 rebuilt the timers and the idempotency keys as WITHOUT ROWID
/// tables: an installation from before it keeps both, and they still work.
#[tokio::test]
async fn timers_and_idempotency_keys_survive_their_rebuild() {
    use open131_domain::lifecycle::Timer;
    let dir = tempfile::tempdir().unwrap();
    let path = DataDir::new(dir.path()).database();
    {
        let conn = installation_at(&path, 28);
        conn.execute_batch(
            "INSERT INTO projects (id, created_at_us) VALUES ('shop', 0);
             INSERT INTO idempotency_keys VALUES ('shop', 'key-1', 'session/create', 5);
             INSERT INTO session_timers (project_id, session_id, timer, due_at_us, lease_owner)
             VALUES ('shop', 'ps_1', 'confirm_timeout', 1000000, NULL);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.idempotency_key_used("shop", "key-1").await.unwrap(), "the key is still used");
    assert!(!store.idempotency_key_used("shop", "key-2").await.unwrap());
    let at = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
    let due = store.claim_due_timers(at(2), at(60), 10).await.unwrap();
    assert_eq!(due.len(), 1, "the timer is still due: {due:?}");
    assert_eq!((due[0].project_id.as_str(), due[0].session_id.as_str()), ("shop", "ps_1"));
    assert_eq!(due[0].timer, Timer::ConfirmTimeout);
    let conn = rusqlite::Connection::open(&path).unwrap();
    for table in ["session_timers", "idempotency_keys"] {
        let without_rowid: i64 =
            conn.query_row("SELECT wr FROM pragma_table_list WHERE name = ?1", [table], |r| r.get(0)).unwrap();
        assert_eq!(without_rowid, 1, "{table} is a WITHOUT ROWID table");
    }
    let index: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_index_list('session_timers') WHERE name = 'session_timers_due'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1, "the due index is back");
}
