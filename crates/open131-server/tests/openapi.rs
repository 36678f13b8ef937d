//! The OpenAPI document (issue 13 §4) against the code: every served
//! main-API method documented under both versions and nothing else, every
//! admin endpoint documented is served, every `$ref` resolves, and real
//! answers carry what the document's schemas require.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use open131_server::api::ApiMethod;
use serde_json::{json, Value};

async fn document(s: &common::TestServer) -> Value {
    let r = s.http.get(format!("{}/openapi.json", s.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Fails unless `value` has every property `schema` requires, following
/// `$ref`s and nested objects and arrays (a drift check, not a validator).
fn require(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    };
    if let Some(required) = schema["required"].as_array() {
        for key in required {
            let key = key.as_str().unwrap();
            assert!(value.get(key).is_some(), "{at}.{key} is required by the document: {value}");
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (key, sub) in props {
            if let Some(v) = obj.get(key) {
                require(doc, sub, v, &format!("{at}.{key}"));
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        list.iter().for_each(|v| require(doc, items, v, &format!("{at}[]")));
    }
}

#[tokio::test]
async fn the_document_lists_every_served_method_and_nothing_else() {
    let s = common::start().await;
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for method in ApiMethod::all() {
        for version in ["v1", "v2"] {
            let op = &paths[&format!("/api/{version}/{}", method.path())]["post"];
            assert!(op.is_object(), "{} {version} undocumented", method.path());
            let has_key = op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "x-partner-idempotency-key");
            assert_eq!(has_key, method.mutating(), "{}: the idempotency key where it is recorded", method.path());
        }
    }
    for path in paths.keys().filter(|p| p.starts_with("/api/v1/") || p.starts_with("/api/v2/")) {
        let method = path.splitn(4, '/').nth(3).unwrap();
        assert!(ApiMethod::parse(method).is_some(), "{path} is documented but not served");
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{r} does not resolve");
    }
    assert!(doc["webhooks"]["session"]["post"].is_object());
}

#[tokio::test]
async fn every_documented_admin_endpoint_is_served() {
    let s = common::start().await;
    let mut app = s.app.clone();
    app.admin_token = Some("t".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    for (path, verb, _) in open131_server::openapi::ADMIN_ENDPOINTS {
        let url = format!("{base}{}", path.replace("{project}", "alpha").replace("{id}", "1"));
        let request = if *verb == "get" { s.http.get(&url) } else { s.http.post(&url).body("{}") };
        let code = request.bearer_auth("wrong").send().await.unwrap().status().as_u16();
        assert_eq!(code, 401, "{verb} {path}: served, behind the token");
    }
}

#[tokio::test]
async fn real_answers_carry_what_the_document_requires() {
    let s = common::start().await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    let doc = document(&s).await;
    let schema = |path: &str, code: &str| {
        doc["paths"][path]["post"]["responses"][code]["content"]["application/json"]["schema"].clone()
    };
    let payout = json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
        "amount_details": {"amount": 1000, "currency": "rub"}
    });
    for version in ["v1", "v2"] {
        let path = format!("/api/{version}/session/init/payout");
        let a = s.call(version, "session/init/payout", &payout).await;
        assert_eq!(a.status, 200, "{}", a.text);
        require(&doc, &schema(&path, "200"), &a.body, &path);
        let bad = s.call(version, "session/init/payout", &json!({"amount_details": 5})).await;
        assert_eq!(bad.status, 400);
        require(&doc, &schema(&path, "400"), &bad.body, &path);
    }
    s.settle().await;
    let balance = s.call("v1", "wallet/balance", &json!({})).await;
    require(&doc, &schema("/api/v1/wallet/balance", "200"), &balance.body, "wallet/balance");
    let (_, check) = s.post_check("alpha", common::key(0), &common::person()).await;
    let kyc = &doc["paths"]["/api/v1.1/check"]["post"]["responses"]["200"]["content"]["application/json"]["schema"];
    require(&doc, kyc, &serde_json::from_str(&check).unwrap(), "check");
}
