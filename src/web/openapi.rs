//! `GET /api/openapi.json`: the OpenAPI 3.1 description of every `/api/*` operation, generated
//! from the handlers' `#[utoipa::path]` attributes and the types they serialize, so it cannot
//! drift from the code. Public: it describes the API and holds no data. A test
//! (tests/it/schema_fuzz.rs) fails when a route under `/api` is missing here.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{alarms, api, audit, charts, commands, push, realtime, reports, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sensorcast",
        description = "Milesight webhooks in, role-scoped JSON and Server-Sent Events out. \
            Every error is `{\"error\": \"<code>\", \"message\": \"...\"}` (ErrorBody).",
    ),
    paths(
        document,
        reports::api_sites,
        api::me,
        api::devices,
        api::telemetry,
        charts::summaries,
        alarms::rules,
        alarms::put_rules,
        commands::list,
        commands::request,
        alarms::list,
        alarms::acknowledge,
        audit::api,
        push::key,
        push::subscribe,
        push::unsubscribe,
        realtime::realtime,
        api::realtime_stats,
        webhooks::mdp_webhook,
        webhooks::mdp_probe,
        webhooks::gateway_webhook,
        webhooks::gateway_probe,
    ),
    // Named in query parameters only, which utoipa does not collect by itself.
    components(schemas(Instant, InstantOrDay)),
    modifiers(&SecuritySchemes, &UniqueOperationIds),
)]
struct ApiDoc;

/// utoipa names an operation after its handler, so two handlers called `list`, or one handler
/// for GET, HEAD and OPTIONS, would share an id; OpenAPI wants each unique. A repeated id gets
/// its method and path instead (`get /api/alarms` → `get_api_alarms`).
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for item in doc.paths.paths.values() {
            for op in operations(item).into_iter().flatten() {
                *seen
                    .entry(op.operation_id.clone().unwrap_or_default())
                    .or_default() += 1;
            }
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let slug: String = path
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let slug = slug.trim_matches('_').replace("__", "_");
            for (method, op) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
                ("trace", &mut item.trace),
            ] {
                if let Some(op) = op {
                    let id = op.operation_id.clone().unwrap_or_default();
                    if seen.get(&id).copied().unwrap_or(0) > 1 || id.is_empty() {
                        op.operation_id = Some(format!("{method}_{slug}"));
                    }
                }
            }
        }
    }
}

fn operations(item: &utoipa::openapi::PathItem) -> [Option<&utoipa::openapi::path::Operation>; 8] {
    [
        item.get.as_ref(),
        item.put.as_ref(),
        item.post.as_ref(),
        item.delete.as_ref(),
        item.options.as_ref(),
        item.head.as_ref(),
        item.patch.as_ref(),
        item.trace.as_ref(),
    ]
}

/// How a request proves who sent it: the session cookie a sign-in sets; for unsafe methods
/// also the session's anti-forgery token; for gateway uplinks the shared token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let api_key = |key| SecurityScheme::ApiKey(key);
        components.add_security_scheme(
            "session",
            api_key(ApiKey::Cookie(ApiKeyValue::with_description(
                super::SESSION_COOKIE,
                "Set by signing in at POST /login.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            api_key(ApiKey::Header(ApiKeyValue::with_description(
                "x-csrf-token",
                "The session's anti-forgery token (in every signed-in page's forms).",
            ))),
        );
        components.add_security_scheme(
            "gateway_token",
            api_key(ApiKey::Header(ApiKeyValue::with_description(
                "x-sensorcast-token",
                "The gateway token (--gateway-token); or ?token=.",
            ))),
        );
    }
}

/// A time in a query (`since`, `until`): epoch milliseconds or an RFC 3339 time (years 0000
/// to 9999), as `api::parse_time` reads it. Described only; handlers take the text.
pub struct Instant;

/// The same, a day (`2026-01-31`, UTC), or blank, as the audit trail's filters read it.
pub struct InstantOrDay;

fn instant(day_too: bool) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let of = |ty: Type, format: KnownFormat| {
        ObjectBuilder::new()
            .schema_type(ty)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    let millis = of(Type::Integer, KnownFormat::Int64)
        .minimum(Some(api::EARLIEST_MS))
        .maximum(Some(api::LATEST_MS));
    let mut one_of = OneOfBuilder::new()
        .item(millis)
        .item(of(Type::String, KnownFormat::DateTime));
    if day_too {
        // Blank is no filter: the audit page's date inputs send empty values.
        let blank = ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(0));
        one_of = one_of.item(of(Type::String, KnownFormat::Date)).item(blank);
    }
    one_of.into()
}

impl utoipa::PartialSchema for Instant {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        instant(false)
    }
}
impl utoipa::ToSchema for Instant {}

impl utoipa::PartialSchema for InstantOrDay {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        instant(true)
    }
}
impl utoipa::ToSchema for InstantOrDay {}

/// The document, built once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serializes")
    })
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json",
        body = Object)))]
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_names_the_error_body() {
        let doc: serde_json::Value = serde_json::from_str(json()).expect("JSON");
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        let error = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["error", "message"]));
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.keys().all(|p| p.starts_with("/api/")));
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc: serde_json::Value = serde_json::from_str(json()).expect("JSON");
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("item").values() {
                ids.push(
                    op["operationId"]
                        .as_str()
                        .expect("an operationId")
                        .to_string(),
                );
            }
        }
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert!(ids.contains(&"get_api_alarms".to_string()), "{ids:?}");
        assert!(ids.contains(&"me".to_string()), "{ids:?}");
    }

    /// Every `$ref` names a schema the document holds (utoipa does not check).
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &serde_json::Value, refs: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(o) => {
                    if let Some(r) = o.get("$ref").and_then(|r| r.as_str()) {
                        refs.push(r.to_string());
                    }
                    o.values().for_each(|v| walk(v, refs));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
                _ => {}
            }
        }
        let doc: serde_json::Value = serde_json::from_str(json()).expect("JSON");
        let mut refs = Vec::new();
        walk(&doc, &mut refs);
        assert!(refs.len() > 20, "{refs:?}");
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a schema ref");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} is missing"
            );
        }
    }
}
