//! The SQLite backend against its contract: ids, duplicates, isolation,
//! lifecycle enforcement, group commit under concurrency, persistence.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::Arc;

use open131_domain::kyc::{parse_v11, CheckState, Outcome};
use open131_store::sqlite::SqliteStore;
use open131_store::{Decision, InsertCheck, NewCheck, Store};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

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
        api_version: "v1.1".into(),
        application,
        payload_json: payload.to_string(),
        created_at: NOW,
    }
}

async fn store_with_projects(dir: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(dir).unwrap();
    assert!(store.create_project("alpha", NOW).await.unwrap());
    assert!(store.create_project("beta", NOW).await.unwrap());
    assert!(!store.create_project("alpha", NOW).await.unwrap());
    store
}

#[tokio::test]
async fn ids_are_per_project_and_duplicates_point_to_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_projects(dir.path()).await;
    assert_eq!(store.insert_check(new_check("alpha", "4510123456", "A-1")).await.unwrap(), InsertCheck::Created(1));
    assert_eq!(store.insert_check(new_check("alpha", "4510123457", "A-1")).await.unwrap(), InsertCheck::Created(2));
    assert_eq!(store.insert_check(new_check("alpha", "4510123456", "A-1")).await.unwrap(), InsertCheck::Duplicate(1));
    // The duplicate did not burn an id.
    assert_eq!(store.insert_check(new_check("alpha", "4510123456", "A-2")).await.unwrap(), InsertCheck::Created(3));
    // Another project with the same person is independent and starts at 1.
    assert_eq!(store.insert_check(new_check("beta", "4510123456", "A-1")).await.unwrap(), InsertCheck::Created(1));

    let c = store.check("alpha", 2).await.unwrap().unwrap();
    assert_eq!(c.application.document_key.expose(), "4510123457");
    assert_eq!(c.application.rf_passport.as_ref().unwrap().number.expose(), "4510123457");
    assert_eq!(c.state, CheckState::Pending);
    assert!(store.check("beta", 2).await.unwrap().is_none(), "beta must not see alpha's check 2");
}

#[tokio::test]
async fn verdicts_follow_the_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_projects(dir.path()).await;
    store.insert_check(new_check("alpha", "4510123456", "A-1")).await.unwrap();
    store.insert_check(new_check("alpha", "4510123457", "A-1")).await.unwrap();
    assert!(store.due_checks(NOW - Duration::seconds(1), NOW, 10).await.unwrap().is_empty(), "none created that early");
    assert_eq!(store.oldest_pending(NOW).await.unwrap(), Some(NOW));
    let due = store.due_checks(NOW, NOW, 10).await.unwrap();
    assert_eq!(due.len(), 2);

    let decide = |id, outcome| Decision { project_id: "alpha".into(), id, outcome };
    let later = NOW + Duration::seconds(3);
    let done = store
        .finish_checks(
            vec![decide(1, Outcome::Valid), decide(2, Outcome::PassportInvalid), decide(9, Outcome::Valid)],
            later,
        )
        .await
        .unwrap();
    assert_eq!(done, vec![true, true, false]);
    // A second verdict is refused by the database.
    assert_eq!(store.finish_checks(vec![decide(1, Outcome::InnMismatch)], later).await.unwrap(), vec![false]);
    let c = store.check("alpha", 1).await.unwrap().unwrap();
    assert_eq!(c.state, CheckState::Finished(Outcome::Valid));
    assert_eq!(c.finished_at, Some(later));
    assert_eq!(store.oldest_pending(NOW).await.unwrap(), None);

    // A postponed check is neither due nor "oldest pending" until its retry time
    // (a verifier that counted it would spin), and a release makes it due again.
    store.insert_check(new_check("alpha", "4510123999", "P")).await.unwrap();
    store.postpone_checks(vec![("alpha".into(), 3)], NOW + Duration::seconds(30)).await.unwrap();
    assert!(store.due_checks(NOW, NOW, 10).await.unwrap().is_empty());
    assert_eq!(store.oldest_pending(NOW).await.unwrap(), None);
    assert_eq!(store.oldest_pending(NOW + Duration::seconds(30)).await.unwrap(), Some(NOW));
    assert_eq!(store.release_postponed_checks().await.unwrap(), 1);
    assert_eq!(store.due_checks(NOW, NOW, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_are_grouped_and_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_with_projects(dir.path()).await);
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
    assert_eq!(created, (1..=250).collect::<Vec<_>>(), "ids are dense and unique");
    assert_eq!(duplicates, 250);
    drop(store);
    // Everything acknowledged is there after reopening.
    let reopened = SqliteStore::open(dir.path()).unwrap();
    assert!(reopened.check("alpha", 250).await.unwrap().is_some());
    assert!(reopened.check("alpha", 251).await.unwrap().is_none());
}

#[tokio::test]
async fn keys_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_projects(dir.path()).await;
    assert!(store.add_project_key("alpha", "sha256:aa", b"der-a", NOW).await.unwrap());
    assert!(store.add_project_key("alpha", "sha256:bb", b"der-b", NOW).await.unwrap());
    assert!(!store.add_project_key("alpha", "sha256:aa", b"der-a", NOW).await.unwrap());
    assert!(store.add_project_key("nobody", "sha256:aa", b"der-a", NOW).await.is_err());
    let p = store.project("alpha").await.unwrap().unwrap();
    assert_eq!(p.keys.len(), 2);
    assert_eq!(store.projects().await.unwrap().len(), 2);
    assert!(store.project("gamma").await.unwrap().is_none());

    assert_eq!(store.meta_get("k").await.unwrap(), None);
    assert_eq!(store.meta_init("k", b"one".to_vec()).await.unwrap(), b"one");
    assert_eq!(store.meta_init("k", b"two".to_vec()).await.unwrap(), b"one");
}
