//! The API's contract as an OpenAPI 3.1 document, generated from the code
//! (issue 13 §4): the main API's paths from [`ApiMethod::all`] under both
//! versions, with their headers (the idempotency key on the methods that
//! record one) and answers; the KYC API's check endpoints; the admin
//! endpoints (bearer token); the webhook the bank sends. Schemas come from
//! the wire types themselves (`schemars` derives on `open131-wire`), so a
//! change of a wire type changes the document. Served at `/openapi.json`;
//! `/docs` renders it with a page of its own (no external asset).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::api::ApiMethod;

/// Where the document and its page are served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
pub const PAGE_PATH: &str = "/docs";

const PAGE: &str = include_str!("openapi/docs.html");
const SCRIPT: &str = include_str!("openapi/docs.js");

/// The schema a method's 200 answers with, by name in `components.schemas`.
fn answer_schema(method: ApiMethod) -> &'static str {
    match method.path() {
        "wallet/balance" => "WalletBalanceResponse",
        "fps/banks" => "BanksResponse",
        "recurrent/status" | "recurrent/disable" => "RecurrentResponse",
        "token" => "PublicTokenResponse",
        "token/info" | "tokenize/elements" => "TokenInfoResponse",
        "tokenize" => "TokenizeResponse",
        "report/account_balance" | "account_balance" => "AccountBalanceResponse",
        "report/account_statement" => "AccountStatementResponse",
        "npd/check" | "npd/taxpayer/check_personal_info" => "NpdRequestResponse",
        "npd/request/status" => "NpdStatusResponse",
        "sberpay/push" | "subscription/cancel" | "subscription/restore" => "StatusResponse",
        _ => "SessionResponse",
    }
}

fn header_param(name: &str, required: bool, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": required, "description": description, "schema": {"type": "string"}})
}

/// Every status the main API's error table gives, in its envelope (and the
/// generic 500), so the document follows the table.
fn error_answers() -> Value {
    let error = json!({"description": "An error, in the main API's envelope",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}});
    let mut answers = Map::new();
    for code in open131_wire::api::ApiErrorCode::ALL.iter().map(|c| c.http_status()).chain([404, 405, 500]) {
        answers.insert(code.to_string(), error.clone());
    }
    Value::Object(answers)
}

/// Every status the KYC API's error table gives (and 200), in its envelope.
fn kyc_answers(answer: &Value) -> Value {
    let mut answers = Map::new();
    for code in open131_wire::kyc::KycErrorCode::ALL.iter().map(|c| c.http_status()).chain([200, 404, 405, 500]) {
        answers.insert(code.to_string(), answer.clone());
    }
    Value::Object(answers)
}

/// One main-API method under one version.
fn main_operation(method: ApiMethod, version: &str) -> Value {
    use open131_wire::headers;
    let mut parameters = vec![
        header_param(headers::PROJECT, true, "The partner's project"),
        header_param(headers::SIGN, true, "RSA-SHA256 of the exact body bytes, base64"),
        header_param(headers::SUBMERCHANT, false, "A sub-merchant the project registered"),
    ];
    if method.mutating() {
        parameters.push(header_param(headers::IDEMPOTENCY_KEY, false, "Makes a repeat of this change refused"));
    }
    let mut responses = error_answers();
    responses["200"] = json!({"description": "Done (committed)",
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", answer_schema(method))}}}});
    json!({"post": {
        "operationId": format!("{version}_{}", method.path().replace('/', "_")),
        "tags": [format!("main API {version}")],
        "parameters": parameters,
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": responses,
    }})
}

fn kyc_paths(paths: &mut Map<String, Value>) {
    let answer = json!({"description": "The check, or the KYC API's error envelope",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/KycResponse"}}}});
    let project = header_param(open131_wire::headers::PROJECT, true, "The partner's project");
    for version in ["v1.1", "v2.0"] {
        paths.insert(
            format!("/api/{version}/check"),
            json!({"post": {
                "operationId": format!("kyc_{}_check", version.replace('.', "_")), "tags": ["KYC"],
                "parameters": [project],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
                    "required": ["payload", "signature"],
                    "properties": {"payload": {"type": "object"}, "signature": {"type": "string"}}}}}},
                "responses": kyc_answers(&answer),
            }}),
        );
        paths.insert(
            format!("/api/{version}/check/{{id}}"),
            json!({"get": {
                "operationId": format!("kyc_{}_status", version.replace('.', "_")), "tags": ["KYC"],
                "parameters": [project, {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": kyc_answers(&answer),
            }}),
        );
    }
}

/// The admin endpoints: (path, method, summary).
pub const ADMIN_ENDPOINTS: &[(&str, &str, &str)] = &[
    ("/admin/v1/kyc/resolve", "post", "Force a pending check's outcome"),
    ("/admin/v1/registry/reload", "post", "Load changed registry files now"),
    ("/admin/v1/payments/chargeback", "post", "Open a bank-initiated chargeback"),
    ("/admin/v1/payments/fps_pay", "post", "Pay a session's FPS QR code as the customer's bank"),
    ("/admin/v1/payments/sberpay_pay", "post", "Pay a SberPay payment as the customer's bank"),
    ("/admin/v1/npd/taxpayer", "post", "Say what the tax service knows of a person"),
    ("/admin/v1/npd/link", "post", "Act for a person in the tax service's app"),
    ("/admin/v1/webhooks/faults", "post", "Set a project's webhook faults"),
    ("/admin/v1/clock", "post", "Show or move a project's clock"),
    ("/admin/v1/inspect", "get", "Every project, for the inspector"),
    ("/admin/v1/inspect/{project}", "get", "One project's checks, sessions, webhooks and requests"),
    ("/admin/v1/inspect/{project}/sessions/{id}", "get", "One session's postings and the requests naming it"),
    ("/admin/v1/inspect/{project}/webhooks/{id}/resend", "post", "Send a webhook again"),
    (
        "/admin/v1/reports/{project}/{kind}",
        "get",
        "A daily register (payouts, payments: CSV, XLSX) or a monthly act (PDF)",
    ),
    ("/metrics", "get", "The Prometheus figures"),
];

fn admin_paths(paths: &mut Map<String, Value>) {
    for (path, verb, summary) in ADMIN_ENDPOINTS {
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut operation = json!({"summary": summary, "tags": ["admin"], "security": [{"admin": []}],
            "parameters": parameters,
            "responses": {"200": {"description": "Done"}, "400": {"description": "A refused body"},
                "401": {"description": "No or a wrong admin token"}, "404": {"description": "Not found"}}});
        if *verb == "post" {
            operation["requestBody"] = json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*verb] = operation;
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = SchemaGenerator::new(settings);
    generator.subschema_for::<open131_wire::api::SessionResponse>();
    generator.subschema_for::<open131_wire::api::ErrorEnvelope>();
    generator.subschema_for::<open131_wire::api::WalletBalanceResponse>();
    generator.subschema_for::<open131_wire::api::BanksResponse>();
    generator.subschema_for::<open131_wire::api::RecurrentResponse>();
    generator.subschema_for::<open131_wire::answers::StatusResponse>();
    generator.subschema_for::<open131_wire::answers::PublicTokenResponse>();
    generator.subschema_for::<open131_wire::answers::TokenInfoResponse>();
    generator.subschema_for::<open131_wire::answers::TokenizeResponse>();
    generator.subschema_for::<open131_wire::answers::AccountBalanceResponse>();
    generator.subschema_for::<open131_wire::answers::AccountStatementResponse>();
    generator.subschema_for::<open131_wire::answers::NpdRequestResponse>();
    generator.subschema_for::<open131_wire::answers::NpdStatusResponse>();
    generator.subschema_for::<open131_wire::api::WebhookBody>();
    generator.subschema_for::<open131_wire::kyc::KycResponse>();
    let schemas = generator.definitions().clone();

    let mut paths = Map::new();
    for method in ApiMethod::all() {
        for version in ["v1", "v2"] {
            paths.insert(format!("/api/{version}/{}", method.path()), main_operation(method, version));
        }
    }
    kyc_paths(&mut paths);
    admin_paths(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "open131: the Bank 131 partner API", "version": env!("CARGO_PKG_VERSION"),
            "description": "Generated from open131's code. Requests of the main API are signed over their exact bytes (X-PARTNER-SIGN)."},
        "paths": paths,
        "webhooks": {"session": {"post": {
            "summary": "A session's change, signed by the bank (X-PARTNER-SIGN over the exact bytes)",
            "parameters": [header_param(open131_wire::headers::SIGN, true, "The bank's RSA-SHA256 signature, base64")],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookBody"}}}},
            "responses": {"200": {"description": "Received (anything else is retried)"}},
        }}},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// `GET /openapi.json`.
pub async fn serve_document() -> Response {
    let mut response = axum::Json(document()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /docs`: the page that renders the document.
pub async fn serve_page() -> Response {
    let policy = HeaderValue::from_static(crate::pages::SCRIPTED_PAGE_POLICY);
    crate::pages::html_response(StatusCode::OK, PAGE.to_string(), policy)
}

/// `GET /docs.js`.
pub async fn serve_script() -> Response {
    crate::pages::script_response(SCRIPT)
}
