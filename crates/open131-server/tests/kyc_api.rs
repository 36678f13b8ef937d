//! The KYC v1.1 API over real HTTP: every row of the bank's "Response and
//! errors" page, with the exact JSON, plus isolation, rotation and limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{key, person, start, with, without};
use serde_json::{json, Value};

const HEADER_422: &str = r#"{"status":"error","error":{"code":"request_header_validation_error","description":"request_header_validation_error"}}"#;
const PROJECT_NOT_FOUND: &str =
    r#"{"status":"error","error":{"code":"partner_project_not_found","description":"partner project not found"}}"#;
const INVALID_SIGN: &str =
    r#"{"status":"error","error":{"code":"invalid_sign","description":"Signature verification failure"}}"#;
const REQUEST_NOT_FOUND: &str =
    r#"{"status":"error","error":{"code":"request_not_found","description":"Request with given id not found"}}"#;

fn pending(id: &str) -> String {
    format!(r#"{{"status":"pending","data":{{"id":"{id}","description":"Check in progress"}}}}"#)
}

fn details(body: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["code"], "request_body_validation_error");
    assert_eq!(v["error"]["description"], "request_body_validation_error");
    v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap().to_string(), d["message"].as_str().unwrap().to_string()))
        .collect()
}

fn fields(body: &str) -> Vec<String> {
    details(body).into_iter().map(|(f, _)| f).collect()
}

#[tokio::test]
async fn accepted_check_is_pending_then_valid() {
    let s = start().await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    assert_eq!(s.get_check("alpha", "1").await, (200, pending("1")));
    // Not due yet: the verifier leaves it alone.
    assert_eq!(s.app.verify_due().await.unwrap(), 0);
    assert_eq!(s.verify_all().await, 1);
    assert_eq!(
        s.get_check("alpha", "1").await,
        (200, r#"{"status":"ok","data":{"id":"1","description":"valid"}}"#.to_string())
    );
    s.stop().await;
}

#[tokio::test]
async fn header_missing_or_empty_is_422_and_names_are_case_insensitive() {
    let s = start().await;
    let body = open131_client::signed_check_body(&person(), key(0)).unwrap();
    assert_eq!(s.post_raw(&[], body.clone()).await, (422, HEADER_422.to_string()));
    assert_eq!(s.post_raw(&[("X-PARTNER-PROJECT", "")], body.clone()).await, (422, HEADER_422.to_string()));
    assert_eq!(s.post_raw(&[("X-PARTNER-PROJECT", "   ")], body.clone()).await, (422, HEADER_422.to_string()));
    // GET needs the header too.
    let r = s.http.get(format!("{}/api/v1.1/check/1", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (422, HEADER_422.to_string()));

    for (i, name) in
        ["x-partner-project", "X-Partner-Project", "X-PARTNER-PROJECT", "x-PaRtNeR-pRoJeCt"].iter().enumerate()
    {
        let payload = with("agent_contract_number", json!(format!("case-{i}")));
        let body = open131_client::signed_check_body(&payload, key(0)).unwrap();
        assert_eq!(s.post_raw(&[(name, "alpha")], body).await, (200, pending(&(i + 1).to_string())), "{name}");
        let r = s.http.get(format!("{}/api/v1.1/check/1", s.url)).header(*name, "alpha").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    s.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_422_naming_every_field() {
    let s = start().await;
    let h = [("X-PARTNER-PROJECT", "alpha")];
    let (status, body) = s.post_raw(&h, "not json").await;
    assert_eq!(status, 422);
    assert_eq!(fields(&body), vec!["body"]);

    let (status, body) = s.post_raw(&h, "[1,2]").await;
    assert_eq!((status, fields(&body)), (422, vec!["body".to_string()]));

    let (status, body) = s.post_raw(&h, "{}").await;
    assert_eq!((status, fields(&body)), (422, vec!["payload".to_string(), "signature".to_string()]));

    let (status, body) = s.post_raw(&h, json!({"payload": "x", "signature": 5}).to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(
        details(&body),
        vec![("payload".into(), "must be a JSON object".into()), ("signature".into(), "must be a string".into())]
    );

    let (status, body) = s.post_raw(&h, json!({"payload": person(), "signature": ""}).to_string()).await;
    assert_eq!((status, fields(&body)), (422, vec!["signature".to_string()]));

    // Many field mistakes in one payload, all reported together.
    let mut p = person();
    p.as_object_mut().unwrap().remove("address");
    p["passport_number"] = json!(4510123456u64);
    p["inn"] = json!("50010073225");
    p["birthday"] = json!("31.02.1990");
    p["issuer_code"] = json!("770 001");
    p["postcode"] = json!("11902a");
    p["email"] = json!("ivan@");
    p["public_officials"] = json!("Да");
    p["migration_card"] = json!(1.5);
    // A float cannot be canonicalized (so not signed as the bank signs): any signature will do.
    let (status, body) = s.post_raw(&h, json!({"payload": p, "signature": "c2ln"}).to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(
        fields(&body),
        vec![
            "payload.address",
            "payload.birthday",
            "payload.email",
            "payload.inn",
            "payload.issuer_code",
            "payload.migration_card",
            "payload.migration_card",
            "payload.passport_number",
            "payload.postcode",
            "payload.public_officials",
        ]
    );
    let all = details(&body);
    assert!(all.contains(&("payload.migration_card".into(), "floating-point numbers are not allowed".into())));
    assert!(all.contains(&("payload.public_officials".into(), "must be \"Нет\"".into())));
    assert!(!body.contains("null"));
    // Nothing was stored: the next good check is number 1.
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    s.stop().await;
}

#[tokio::test]
async fn each_field_rule() {
    let s = start().await;
    let cases: Vec<(Value, &str)> = vec![
        (without("first_name"), "payload.first_name"),
        (with("last_name", json!("")), "payload.last_name"),
        (with("patronymic", json!(false)), "payload.patronymic"),
        (with("birthday", json!("1990-06-15")), "payload.birthday"),
        (
            {
                // Turns 18 tomorrow (Moscow day of the test clock), passport issued after 14.
                let mut p = with("birthday", json!("01.12.2008"));
                p["issuer_date"] = json!("05.12.2022");
                p
            },
            "payload.birthday",
        ),
        (with("inn", json!(500100732259u64)), "payload.inn"),
        (with("passport_number", json!("45 10 123456")), "payload.passport_number"),
        (with("issuer_date", json!("01.01.2000")), "payload.issuer_date"),
        (with("issuer_date", json!("01.01.2030")), "payload.issuer_date"),
        (with("agent_contract_date", json!("32.01.2024")), "payload.agent_contract_date"),
        (with("postcode", json!(119021)), "payload.postcode"),
        (with("identity_document", json!("Паспорт")), "payload.identity_document"),
        (with("citizenship", json!("RU")), "payload.citizenship"),
        (with("beneficial_owners", json!("нет")), "payload.beneficial_owners"),
        (with("right_to_stay_in_rf", json!("")), "payload.right_to_stay_in_rf"),
        (without("email"), "payload.email"),
        (with("create_participant", json!("yes")), "payload.create_participant"),
    ];
    for (payload, field) in cases {
        let (status, body) = s.post_check("alpha", key(0), &payload).await;
        assert_eq!(status, 422, "{field}: {body}");
        assert_eq!(fields(&body), vec![field.to_string()], "{body}");
    }
    // Accepted alternatives.
    let mut p = with("identity_document", json!("Паспорт РФ"));
    p["beneficial_owners"] = json!("БВ отсутствует");
    let email = p.as_object_mut().unwrap().remove("email").unwrap();
    p["e-mail"] = email;
    p["create_participant"] = json!(true);
    assert_eq!(s.post_check("alpha", key(0), &p).await, (200, pending("1")));
    s.stop().await;
}

#[tokio::test]
async fn unknown_project_answers_partner_project_not_found() {
    let s = start().await;
    assert_eq!(s.post_check("gamma", key(0), &person()).await, (200, PROJECT_NOT_FOUND.to_string()));
    assert_eq!(s.get_check("gamma", "1").await, (200, PROJECT_NOT_FOUND.to_string()));
    s.stop().await;
}

#[tokio::test]
async fn bad_signature_is_invalid_sign_and_stores_nothing() {
    let s = start().await;
    // beta's key signing for alpha.
    assert_eq!(s.post_check("alpha", key(1), &person()).await, (200, INVALID_SIGN.to_string()));
    // Signature over other bytes (payload changed after signing).
    let signed: Value = serde_json::from_slice(&open131_client::signed_check_body(&person(), key(0)).unwrap()).unwrap();
    let mut tampered = signed.clone();
    tampered["payload"]["first_name"] = json!("Сидоров");
    let h = [("X-PARTNER-PROJECT", "alpha")];
    assert_eq!(s.post_raw(&h, tampered.to_string()).await, (200, INVALID_SIGN.to_string()));
    let mut garbage = signed.clone();
    garbage["signature"] = json!("%%% not base64 %%%");
    assert_eq!(s.post_raw(&h, garbage.to_string()).await, (200, INVALID_SIGN.to_string()));
    assert_eq!(s.get_check("alpha", "1").await, (200, REQUEST_NOT_FOUND.to_string()));
    // The signature covers the canonical form, not the bytes: any key order and
    // spacing of the same payload verifies.
    let spaced = serde_json::to_string_pretty(&signed).unwrap();
    assert_eq!(s.post_raw(&h, spaced).await, (200, pending("1")));
    s.stop().await;
}

#[tokio::test]
async fn duplicate_answers_already_exists_with_the_first_id() {
    let s = start().await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    let dup = r#"{"status":"error","error":{"code":"already_exists","description":"Request with the same data already exists"},"data":{"id":"1"}}"#;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, dup.to_string()));
    // Other names, same passport + INN + contract: still a duplicate.
    assert_eq!(s.post_check("alpha", key(0), &with("first_name", json!("Другой"))).await, (200, dup.to_string()));
    // A different contract is a new check.
    assert_eq!(s.post_check("alpha", key(0), &with("agent_contract_number", json!("A-18"))).await, (200, pending("2")));
    // After verification the duplicate still points to the first.
    s.verify_all().await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, dup.to_string()));
    s.stop().await;
}

#[tokio::test]
async fn every_verification_outcome() {
    let s = start().await;
    let cases = [
        (
            "4510000001",
            "500100732259",
            r#"{"status":"error","error":{"code":"passport_validation_failure","description":"passport is invalid"},"data":{"id":"1"}}"#,
        ),
        (
            "4510000002",
            "500100732259",
            r#"{"status":"error","error":{"code":"passport_validation_failure","description":"no information about the passport"},"data":{"id":"2"}}"#,
        ),
        (
            "4510000003",
            "500100732259",
            r#"{"status":"error","error":{"code":"inn_validation_failure","description":"Passport, inn validation failure"},"data":{"id":"3"}}"#,
        ),
        // INN with a wrong check digit (checked before the passport trigger).
        (
            "4510000001",
            "500100732258",
            r#"{"status":"error","error":{"code":"inn_validation_failure","description":"Passport, inn validation failure"},"data":{"id":"4"}}"#,
        ),
        // Blank printed in 2012, passport issued in 2010.
        (
            "4512123456",
            "500100732259",
            r#"{"status":"error","error":{"code":"passport_validation_failure","description":"passport is invalid"},"data":{"id":"5"}}"#,
        ),
        ("4510000004", "500100732259", r#"{"status":"ok","data":{"id":"6","description":"valid"}}"#),
    ];
    for (i, (passport, inn, _)) in cases.iter().enumerate() {
        let mut p = with("passport_number", json!(passport));
        p["inn"] = json!(inn);
        assert_eq!(s.post_check("alpha", key(0), &p).await, (200, pending(&(i + 1).to_string())));
    }
    // Expired by age: 36 years old with a passport issued at 16.
    let mut p = with("issuer_date", json!("20.06.2006"));
    p["passport_number"] = json!("4505123456");
    assert_eq!(s.post_check("alpha", key(0), &p).await, (200, pending("7")));

    assert_eq!(s.verify_all().await, 7);
    for (i, (_, _, expected)) in cases.iter().enumerate() {
        assert_eq!(s.get_check("alpha", &(i + 1).to_string()).await, (200, expected.to_string()));
    }
    let (_, body) = s.get_check("alpha", "7").await;
    assert!(body.contains("passport is invalid"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn ids_of_other_projects_and_garbage_ids_are_request_not_found() {
    let s = start().await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    assert_eq!(s.post_check("alpha", key(0), &with("agent_contract_number", json!("2"))).await, (200, pending("2")));
    // beta has its own numbering and cannot see alpha's checks.
    for id in ["1", "2", "3", "0", "-1", "abc", "1.0", "99999999999999999999", "%20", "%FF", "%C3%28"] {
        assert_eq!(s.get_check("beta", id).await, (200, REQUEST_NOT_FOUND.to_string()), "{id}");
    }
    // The same person sent by beta is not a duplicate of alpha's.
    assert_eq!(s.post_check("beta", key(1), &person()).await, (200, pending("1")));
    s.verify_all().await;
    assert_eq!(s.get_check("beta", "1").await.1, r#"{"status":"ok","data":{"id":"1","description":"valid"}}"#);
    // alpha's keys cannot sign for beta.
    assert_eq!(
        s.post_check("beta", key(0), &with("agent_contract_number", json!("x"))).await,
        (200, INVALID_SIGN.to_string())
    );
    s.stop().await;
}

#[tokio::test]
async fn rotated_keys_and_new_projects_are_seen_without_restart() {
    let s = start().await;
    // Warm the cache for alpha with its first key.
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    assert_eq!(
        s.post_check("alpha", key(2), &with("agent_contract_number", json!("k2"))).await,
        (200, INVALID_SIGN.to_string())
    );
    // `project add-key` writes to the store while the server runs.
    let public = key(2).verifying_key().unwrap();
    s.app.store.add_project_key("alpha", &public.fingerprint(), public.spki_der(), common::START).await.unwrap();
    assert_eq!(s.post_check("alpha", key(2), &with("agent_contract_number", json!("k2"))).await, (200, pending("2")));
    // Both keys verify.
    assert_eq!(s.post_check("alpha", key(0), &with("agent_contract_number", json!("k0"))).await, (200, pending("3")));
    // A project added while running is known at once.
    assert_eq!(s.post_check("delta", key(3), &person()).await, (200, PROJECT_NOT_FOUND.to_string()));
    common::add_project(&s.app, "delta", &[key(3)]).await;
    assert_eq!(s.post_check("delta", key(3), &person()).await, (200, pending("1")));
    s.stop().await;
}

#[tokio::test]
async fn limits_unknown_paths_and_methods_use_the_envelope() {
    let s = start().await;
    let big = format!(r#"{{"payload":{{"x":"{}"}},"signature":"a"}}"#, "a".repeat(70 * 1024));
    let (status, body) = s.post_raw(&[("X-PARTNER-PROJECT", "alpha")], big).await;
    assert_eq!(status, 413);
    assert_eq!(details(&body), vec![("body".into(), "must be at most 65536 bytes".into())]);
    // Streamed (chunked, no Content-Length) bodies are limited too.
    assert_eq!(chunked_post(&s.url, 80).await, 413);
    assert_eq!(chunked_post(&s.url, 1).await, 422);

    let r = s.http.get(format!("{}/api/v1.1/nothing", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"status":"error","error":{"code":"not_found","description":"Unknown path"}}"#
    );
    let r = s.http.delete(format!("{}/api/v1.1/check", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
    s.stop().await;
}

/// Sends `POST check` with a chunked body of `kib` KiB of spaces over a raw
/// socket and returns the HTTP status.
async fn chunked_post(url: &str, kib: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1.1/check HTTP/1.1\r\nHost: {addr}\r\nX-PARTNER-PROJECT: alpha\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..kib {
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before reading everything
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_source_ip_allowlist_hides_the_project_from_other_addresses() {
    let s = start().await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (200, pending("1")));
    let set = |list: &str| open131_store::SettingsChange {
        allowed_ips: Some(open131_domain::allowlist::IpAllowlist::parse(list).unwrap()),
        ..Default::default()
    };
    s.app.store.set_project_settings("alpha", set("10.0.0.0/8, 192.168.1.7"), common::START).await.unwrap();
    s.app.projects.forget("alpha");
    // From 127.0.0.1 the project looks unknown, to the KYC API and to the main API alike.
    assert_eq!(
        s.post_check("alpha", key(0), &with("agent_contract_number", json!("x"))).await,
        (200, PROJECT_NOT_FOUND.to_string())
    );
    assert_eq!(s.get_check("alpha", "1").await, (200, PROJECT_NOT_FOUND.to_string()));
    let body = b"{}".to_vec();
    let sign = key(0).sign_base64(&body).unwrap();
    let r = s
        .http
        .post(format!("{}/api/v1/wallet/balance", s.url))
        .header("X-PARTNER-PROJECT", "alpha")
        .header("X-PARTNER-SIGN", sign)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "identification_error");
    // Once the address is registered, everything works again.
    s.app.store.set_project_settings("alpha", set("127.0.0.1"), common::START).await.unwrap();
    s.app.projects.forget("alpha");
    assert_eq!(s.get_check("alpha", "1").await, (200, pending("1")));
    s.stop().await;
}
