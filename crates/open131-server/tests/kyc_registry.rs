//! KYC v2.0, registry mode against small registries built here, hot swap under
//! load, and forced outcomes through the admin endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{key, person, start, with, TestServer};
use open131_server::registries::{passports_path, reload, taxpayers_path, ReloadEvent};
use serde_json::{json, Value};

fn pending(id: &str) -> String {
    format!(r#"{{"status":"pending","data":{{"id":"{id}","description":"Check in progress"}}}}"#)
}

const VALID: &str = r#"{"status":"ok","data":{"id":"ID","description":"valid"}}"#;

fn valid(id: &str) -> String {
    VALID.replace("ID", id)
}

fn failure(id: &str, code: &str, description: &str) -> String {
    format!(r#"{{"status":"error","error":{{"code":"{code}","description":"{description}"}},"data":{{"id":"{id}"}}}}"#)
}

const PASSPORT_INVALID: &str = "passport is invalid";
const INN_FAILURE: &str = "Passport, inn validation failure";

/// `POST /api/{path}` with a body signed by alpha's key.
async fn post_at(s: &TestServer, path: &str, project: &str, payload: &Value) -> (u16, String) {
    let body = open131_client::signed_check_body(payload, key(0)).unwrap();
    let r = s
        .http
        .post(format!("{}/api/{path}", s.url))
        .header("X-PARTNER-PROJECT", project)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn resident() -> Value {
    json!({
        "type": "FL_RESIDENT", "last_name": "Петров", "first_name": "Иван", "patronymic": "Сергеевич",
        "birthday": "15.06.1990", "birthplace": "г. Москва", "citizenship": "RU", "inn": "500100732259",
        "phone_number": "+79001234567", "email": "ivan@example.ru", "agent_contract_number": "A-17",
        "documents": [{"type": "PASSPORT_RF", "number": "4510123456", "issue_date": "20.06.2010",
                       "issuer": "ОВД Хамовники", "issuer_code": "770-001"}]
    })
}

fn nonresident() -> Value {
    json!({
        "type": "FL_NONRESIDENT", "last_name": "Smith", "first_name": "John", "birthday": "01.02.1985",
        "birthplace": "London", "citizenship": "GB", "inn": "AB123456C", "phone_number": "+447700900000",
        "email": "john@example.co.uk",
        "documents": [
            {"type": "FOREIGN_PASSPORT", "number": "123456789", "issue_date": "01.01.2020", "expiry_date": "01.01.2030"},
            {"type": "RESIDENCE_PERMIT", "number": "82 1234567", "issue_date": "01.06.2024"}
        ]
    })
}

#[tokio::test]
async fn v2_residents_and_nonresidents_on_both_path_spellings() {
    let s = start().await;
    assert_eq!(post_at(&s, "v2.0/check", "alpha", &resident()).await, (200, pending("1")));
    assert_eq!(post_at(&s, "v2/check", "alpha", &nonresident()).await, (200, pending("2")));
    s.verify_all().await;
    for (path, id) in [("v2.0", "1"), ("v2", "2"), ("v1.1", "2")] {
        let r = s
            .http
            .get(format!("{}/api/{path}/check/{id}", s.url))
            .header("X-PARTNER-PROJECT", "alpha")
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), valid(id), "{path}");
    }
    // Unknown document types are named in the 422.
    let mut p = nonresident();
    p["documents"][1]["type"] = json!("DRIVING_LICENCE");
    let (status, body) = post_at(&s, "v2.0/check", "alpha", &p).await;
    assert_eq!(status, 422);
    let v: Value = serde_json::from_str(&body).unwrap();
    let detail =
        v["error"]["details"].as_array().unwrap().iter().find(|d| d["field"] == "payload.documents[1].type").unwrap();
    assert!(detail["message"].as_str().unwrap().contains("DRIVING_LICENCE"), "{body}");
    // The sandbox triggers work on a foreign passport's last six characters too.
    let mut p = nonresident();
    p["documents"][0]["number"] = json!("XY000002");
    assert_eq!(post_at(&s, "v2.0/check", "alpha", &p).await, (200, pending("3")));
    s.verify_all().await;
    let (_, body) = s.get_check("alpha", "3").await;
    assert_eq!(body, failure("3", "passport_validation_failure", "no information about the passport"));
    s.stop().await;
}

#[tokio::test]
async fn v11_and_v20_share_the_duplicate_rule() {
    let s = start().await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    let dup = r#"{"status":"error","error":{"code":"already_exists","description":"Request with the same data already exists"},"data":{"id":"1"}}"#;
    // Same passport, INN and contract through v2.0.
    assert_eq!(post_at(&s, "v2.0/check", "alpha", &resident()).await, (200, dup.to_string()));
    // Another contract is another check.
    let mut other = resident();
    other["agent_contract_number"] = json!("B-1");
    assert_eq!(post_at(&s, "v2.0/check", "alpha", &other).await, (200, pending("2")));
    s.stop().await;
}

/// Writes a passport index and a taxpayer index built from CSV text into the data directory.
fn write_registries(s: &TestServer, passports_csv: &str, taxpayers_csv: &str) {
    let dir = &s.app.config.data_dir;
    std::fs::create_dir_all(passports_path(dir).parent().unwrap()).unwrap();
    let (p, _) = open131_registry::import_passports_csv(passports_csv.as_bytes(), None, &mut |_| {}).unwrap();
    p.save(passports_path(dir)).unwrap();
    let (t, _) = open131_registry::import_taxpayers_csv(taxpayers_csv.as_bytes(), None, &mut |_| {}).unwrap();
    t.save(taxpayers_path(dir)).unwrap();
}

async fn registry_mode(s: &TestServer, project: &str) {
    let change = open131_store::SettingsChange {
        kyc_mode: Some(open131_domain::settings::KycMode::Registry),
        ..Default::default()
    };
    s.app.store.set_project_settings(project, change, common::START).await.unwrap();
    s.app.projects.forget(project);
}

const PASSPORTS: &str = "PASSP_SERIES,PASSP_NUMBER\n4510,111111\n4510,222222\nХЕ12,345678\n4511,12345 7\n";
const TAXPAYERS: &str = "inn,passport_number\n500100732259,4510123456\n500100732259,4510654321\n";

#[tokio::test]
async fn registry_mode_decides_from_the_registries_and_waits_without_them() {
    let s = start().await;
    registry_mode(&s, "alpha").await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    // No registry loaded: the check is not passed unchecked, it waits.
    assert_eq!(s.verify_all().await, 0);
    assert_eq!(s.get_check("alpha", "1").await.1, pending("1"));

    write_registries(&s, PASSPORTS, TAXPAYERS);
    let events = reload(&s.app).await;
    assert!(matches!(events[0], ReloadEvent::Loaded { registry: "passports", entries: 2, malformed: 2 }), "{events:?}");
    // Loading the registries released the waiting check: it is decided at once.
    assert_eq!(s.app.verify_due().await.unwrap(), 1);
    assert_eq!(s.get_check("alpha", "1").await.1, valid("1"));

    let cases = [
        // Listed invalid by the MVD.
        (with("passport_number", json!("4510111111")), failure("2", "passport_validation_failure", PASSPORT_INVALID)),
        // On the list only as a malformed row ("4511,12345 7"): matched with spaces normalised.
        (with("passport_number", json!("4511123457")), failure("3", "passport_validation_failure", PASSPORT_INVALID)),
        // INN linked to other passports only.
        (with("passport_number", json!("4510777777")), failure("4", "inn_validation_failure", INN_FAILURE)),
        // INN unknown to the tax service (valid check digits, not in the registry).
        (with("inn", json!("771234567891")), failure("5", "inn_validation_failure", INN_FAILURE)),
        // The second passport linked to the INN.
        (with("passport_number", json!("4510654321")), valid("6")),
        // Structural rules hold in registry mode too: blank printed after issue.
        (with("passport_number", json!("4512654321")), failure("7", "passport_validation_failure", PASSPORT_INVALID)),
    ];
    for (i, (payload, _)) in cases.iter().enumerate() {
        let mut p = payload.clone();
        p["agent_contract_number"] = json!(format!("R-{i}"));
        assert_eq!(s.post_check("alpha", key(0), &p).await, (200, pending(&(i + 2).to_string())), "{p}");
    }
    assert_eq!(s.verify_all().await, cases.len());
    for (i, (_, expected)) in cases.iter().enumerate() {
        assert_eq!(&s.get_check("alpha", &(i + 2).to_string()).await.1, expected, "case {i}");
    }
    // Sandbox projects are untouched by the registries: the listed passport passes there.
    assert_eq!(s.post_check("beta", key(1), &with("passport_number", json!("4510111111"))).await, (200, pending("1")));
    s.verify_all().await;
    assert_eq!(s.get_check("beta", "1").await.1, valid("1"));
    s.stop().await;
}

#[tokio::test]
async fn a_corrupt_new_index_is_refused_and_the_old_one_stays() {
    let s = start().await;
    registry_mode(&s, "alpha").await;
    write_registries(&s, PASSPORTS, TAXPAYERS);
    reload(&s.app).await;
    // Truncate the passport file (as a half-copied file would be) and flip a byte elsewhere.
    let path = passports_path(&s.app.config.data_dir);
    let bytes = std::fs::read(&path).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let events = reload(&s.app).await;
    assert!(matches!(&events[0], ReloadEvent::Refused { registry: "passports", .. }), "{events:?}");
    // Verification still uses the old index.
    assert_eq!(s.post_check("alpha", key(0), &with("passport_number", json!("4510111111"))).await.0, 200);
    s.verify_all().await;
    assert_eq!(s.get_check("alpha", "1").await.1, failure("1", "passport_validation_failure", PASSPORT_INVALID));
    // And a start from a data directory with a corrupt file is refused with a clear message.
    let err = open131_server::registries::Registries::load_at_start(&s.app.config.data_dir).err().unwrap();
    assert!(err.contains("passports index cannot be loaded"), "{err}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_indexes_under_load_fails_no_request() {
    let s = std::sync::Arc::new(start().await);
    registry_mode(&s, "alpha").await;
    // Two generations of the list: both list 4510111111; only the second lists 4510222222.
    let gen_a = "PASSP_SERIES,PASSP_NUMBER\n4510,111111\n";
    let gen_b = "PASSP_SERIES,PASSP_NUMBER\n4510,111111\n4510,222222\n";
    write_registries(&s, gen_a, TAXPAYERS);
    reload(&s.app).await;

    let swapper = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                write_registries(&s, if i % 2 == 0 { gen_b } else { gen_a }, TAXPAYERS);
                for e in reload(&s.app).await {
                    assert!(matches!(e, ReloadEvent::Loaded { .. }), "{e:?}");
                }
            }
        })
    };
    let mut clients = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        clients.push(tokio::spawn(async move {
            let mut p = with("passport_number", json!("4510111111"));
            p["agent_contract_number"] = json!(format!("L-{i}"));
            let (status, body) = s.post_check("alpha", key(0), &p).await;
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("pending"), "{body}");
            s.app.verify_due().await.unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["data"]["id"].as_str().unwrap().to_string()
        }));
    }
    s.clock.advance(time::Duration::seconds(3));
    // Ids are unique per project; on PostgreSQL they may have gaps (blocks per node).
    let mut ids = Vec::new();
    for c in clients {
        ids.push(c.await.unwrap());
    }
    swapper.await.unwrap();
    // Some checks were created after the clock moved: let them come due too.
    s.clock.advance(time::Duration::seconds(3));
    s.app.verify_due().await.unwrap();
    // Every check was decided by one generation or the other: all list 4510111111.
    for id in &ids {
        let (status, body) = s.get_check("alpha", id).await;
        assert_eq!(status, 200);
        assert_eq!(body, failure(id, "passport_validation_failure", PASSPORT_INVALID));
    }
}

#[tokio::test]
async fn operators_force_outcomes_with_the_admin_token_only() {
    let s = common::start_with(|_| {}, |store| store).await;
    let mut app = s.app.clone();
    app.admin_token = Some("secret-token".into());
    // Serve a second router with the token set, on the same store.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));

    for i in 0..5 {
        let p = with("agent_contract_number", json!(format!("F-{i}")));
        assert_eq!(s.post_check("alpha", key(0), &p).await.0, 200);
    }
    let resolve = |token: Option<&'static str>, body: Value| {
        let mut r = s.http.post(format!("{url}/admin/v1/kyc/resolve")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // No token, a wrong token, a project key's signature: refused.
    let body = json!({"project": "alpha", "id": "1", "as": "passport_invalid"});
    assert_eq!(resolve(None, body.clone()).await.0, 401);
    assert_eq!(resolve(Some("nope"), body.clone()).await.0, 401);
    let sign = key(0).sign_base64(body.to_string().as_bytes()).unwrap();
    let r = s
        .http
        .post(format!("{url}/admin/v1/kyc/resolve"))
        .header("X-PARTNER-PROJECT", "alpha")
        .header("X-PARTNER-SIGN", sign)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The real thing, for every outcome.
    let outcomes = [
        ("ok", valid("1")),
        ("passport_invalid", failure("2", "passport_validation_failure", PASSPORT_INVALID)),
        ("passport_not_found", failure("3", "passport_validation_failure", "no information about the passport")),
        ("inn_mismatch", failure("4", "inn_validation_failure", INN_FAILURE)),
        ("invalid_sign", failure("5", "invalid_sign", "Signature verification failure")),
    ];
    for (i, (name, expected)) in outcomes.iter().enumerate() {
        let id = (i + 1).to_string();
        let (status, v) = resolve(Some("secret-token"), json!({"project": "alpha", "id": id, "as": name})).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["check"], serde_json::from_str::<Value>(expected).unwrap());
        assert_eq!(&s.get_check("alpha", &id).await.1, expected);
    }
    // Final checks cannot be forced again; unknown or other projects' ids are not found.
    assert_eq!(resolve(Some("secret-token"), json!({"project": "alpha", "id": "1", "as": "ok"})).await.0, 409);
    assert_eq!(resolve(Some("secret-token"), json!({"project": "beta", "id": "1", "as": "ok"})).await.0, 404);
    assert_eq!(resolve(Some("secret-token"), json!({"project": "alpha", "id": "1", "as": "maybe"})).await.0, 400);
    // Without a configured token the endpoints do not exist.
    let r = s.http.post(format!("{}/admin/v1/kyc/resolve", s.url)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}
