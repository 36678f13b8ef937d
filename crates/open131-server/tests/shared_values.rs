//! What every node of one database must agree on, and the demo project two
//! nodes create together: the bank key, the admin token, one funding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use open131_server::demo;
use open131_store::layout::DataDir;
use open131_wire::sign::SigningKey;

fn fingerprint(key: &SigningKey) -> String {
    key.verifying_key().unwrap().fingerprint()
}

#[tokio::test]
async fn nodes_share_one_bank_key_and_one_admin_token() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = common::test_store(a.path()).await;
    let (node_a, node_b) = (DataDir::new(a.path()), DataDir::new(b.path()));

    let first = demo::ensure_bank_key(store.as_ref(), &node_a, None).await.unwrap();
    let second = demo::ensure_bank_key(store.as_ref(), &node_b, None).await.unwrap();
    assert_eq!(fingerprint(&first), fingerprint(&second), "a second node signs with the first one's key");

    // A key file given explicitly must be that key: another one is refused.
    let same = a.path().join("same.pem");
    std::fs::write(&same, first.to_pkcs8_pem().unwrap()).unwrap();
    let explicit = demo::ensure_bank_key(store.as_ref(), &node_b, Some(&same)).await.unwrap();
    assert_eq!(fingerprint(&explicit), fingerprint(&first));
    let other = a.path().join("other.pem");
    std::fs::write(&other, common::key(3).to_pkcs8_pem().unwrap()).unwrap();
    let refused = demo::ensure_bank_key(store.as_ref(), &node_b, Some(&other)).await.unwrap_err();
    assert!(refused.to_string().contains("differs"), "{refused}");

    let token_a = demo::ensure_admin_token(store.as_ref(), None).await.unwrap();
    let token_b = demo::ensure_admin_token(store.as_ref(), None).await.unwrap();
    assert_eq!(token_a, token_b);
    assert_eq!(token_a.len(), 64);
}

#[tokio::test]
async fn an_explicit_bank_key_becomes_the_shared_one_on_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::test_store(dir.path()).await;
    let path = dir.path().join("bank.pem");
    std::fs::write(&path, common::key(2).to_pkcs8_pem().unwrap()).unwrap();
    let node = DataDir::new(dir.path());
    let chosen = demo::ensure_bank_key(store.as_ref(), &node, Some(&path)).await.unwrap();
    let later = demo::ensure_bank_key(store.as_ref(), &node, None).await.unwrap();
    assert_eq!(fingerprint(&chosen), fingerprint(common::key(2)));
    assert_eq!(fingerprint(&later), fingerprint(common::key(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_together_fund_the_demo_once() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = common::test_store(a.path()).await;
    let (sa, sb) = (store.clone(), store.clone());
    let (da, db) = (DataDir::new(a.path()), DataDir::new(b.path()));
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { demo::ensure_demo(sa.as_ref(), &da, common::START).await.unwrap() }),
        tokio::spawn(async move { demo::ensure_demo(sb.as_ref(), &db, common::START).await.unwrap() }),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_ne!(fingerprint(&ra.key), fingerprint(&rb.key), "each node has its own demo key");
    let project = store.project(demo::DEMO_PROJECT_ID).await.unwrap().unwrap();
    assert_eq!(project.keys.len(), 2, "both keys are registered");
    let wallets = store.wallets(demo::DEMO_PROJECT_ID).await.unwrap();
    assert_eq!(wallets.len(), 3, "one wallet per book: {wallets:?}");
    assert!(wallets.iter().all(|w| w.available == demo::DEMO_BALANCE_MINOR), "funded once: {wallets:?}");
    // A restart of either node changes nothing.
    demo::ensure_demo(store.as_ref(), &DataDir::new(a.path()), common::START).await.unwrap();
    assert_eq!(store.wallets(demo::DEMO_PROJECT_ID).await.unwrap()[0].available, demo::DEMO_BALANCE_MINOR);
}
