//! The committed OpenAPI documents (JSON and YAML) are what the code produces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use latchkey::configuration::Settings;
use latchkey::startup::documentation;

fn committed(file: &str) -> String {
    let path = format!("{}/openapi/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn the_committed_openapi_json_matches_the_code() {
    let generated = documentation(&Settings::default()).await.unwrap().spec();
    assert!(
        committed("openapi.json").trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: regenerate it with \
         `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn the_committed_openapi_yaml_matches_the_code() {
    let generated = documentation(&Settings::default())
        .await
        .unwrap()
        .spec_yaml();
    assert!(
        committed("openapi.yaml").trim_end() == generated.trim_end(),
        "openapi/openapi.yaml is stale: regenerate it with \
         `cargo run -- openapi --yaml > openapi/openapi.yaml`"
    );
}

/// The generated document, parsed.
async fn document() -> serde_json::Value {
    let spec = documentation(&Settings::default()).await.unwrap().spec();
    serde_json::from_str(&spec).expect("the document is JSON")
}

/// Every operation as `(METHOD path, operation)`.
fn operations(document: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item");
            methods
                .iter()
                .map(move |(method, op)| (format!("{} {path}", method.to_uppercase()), op))
        })
        .collect()
}

/// Whether a response schema has an example: its own, or the one of the component it names.
fn has_example(document: &serde_json::Value, schema: &serde_json::Value) -> bool {
    if schema.get("example").is_some() {
        return true;
    }
    let Some(reference) = schema["$ref"].as_str() else {
        return false;
    };
    let name = reference.trim_start_matches("#/components/schemas/");
    document["components"]["schemas"][name]
        .get("example")
        .is_some()
}

#[tokio::test]
async fn every_operation_and_response_is_described_and_every_operation_tagged() {
    let document = document().await;
    for (name, op) in operations(&document) {
        for field in ["summary", "description", "operationId"] {
            let value = op[field].as_str().unwrap_or_default();
            assert!(!value.trim().is_empty(), "{name} has no {field}");
        }
        let tags = op["tags"].as_array().map_or(0, Vec::len);
        assert!(tags > 0, "{name} has no tag");
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let described = response["description"].as_str().unwrap_or_default();
            assert!(
                !described.trim().is_empty(),
                "{name} {status} has no description"
            );
        }
    }
}

#[tokio::test]
async fn every_response_body_of_every_operation_has_an_example() {
    let document = document().await;
    for (name, op) in operations(&document) {
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let Some(content) = response["content"].as_object() else {
                continue;
            };
            for (media_type, media) in content {
                assert!(
                    has_example(&document, &media["schema"]),
                    "{name}: the {status} {media_type} body has no example"
                );
            }
        }
    }
}

#[tokio::test]
async fn only_operations_that_take_a_body_document_413_and_415() {
    let document = document().await;
    for (name, op) in operations(&document) {
        let takes_body = op.get("requestBody").is_some();
        let responses = op["responses"].as_object().expect("responses");
        if !takes_body {
            for status in ["413", "415"] {
                assert!(
                    !responses.contains_key(status),
                    "{name} takes no body but documents {status}"
                );
            }
        } else {
            assert!(responses.contains_key("413"), "{name} takes a body: 413");
        }
    }
}

#[tokio::test]
async fn errors_are_documented_with_the_headers_that_come_with_them() {
    let document = document().await;
    for (name, op) in operations(&document) {
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let headers = response["headers"].as_object();
            let has = |header: &str| headers.is_some_and(|h| h.contains_key(header));
            assert!(has("X-REQUEST-ID"), "{name} {status}: X-Request-Id");
            assert!(has("CACHE-CONTROL"), "{name} {status}: Cache-Control");
            match status.as_str() {
                "401" => assert!(has("WWW-AUTHENTICATE"), "{name} 401: WWW-Authenticate"),
                "429" | "503" => assert!(has("RETRY-AFTER"), "{name} {status}: Retry-After"),
                _ => {}
            }
        }
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            responses.contains_key("401"),
            "{name}: an operation documents 401 exactly when it has security requirements"
        );
    }
}

#[tokio::test]
async fn the_revocation_feed_requires_http_basic_client_authentication() {
    let document = document().await;
    let security = &document["paths"]["/oauth/revocations"]["get"]["security"];
    assert_eq!(security, &serde_json::json!([{ "ClientBasic": [] }]));
}

#[tokio::test]
async fn introspection_is_documented_as_for_confidential_clients_only() {
    let document = document().await;
    let op = &document["paths"]["/oauth/introspect"]["post"];
    let description = op["description"].as_str().unwrap_or_default();
    assert!(description.contains("confidential"), "{description}");
    assert!(description.contains("401 invalid_client"), "{description}");
    let refusal = op["responses"]["401"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(refusal.contains("public client"), "{refusal}");
    let methods = &document["components"]["schemas"]["ServerMetadata"]["properties"]["introspection_endpoint_auth_methods_supported"]
        ["description"];
    assert!(
        methods
            .as_str()
            .unwrap_or_default()
            .contains("confidential"),
        "{methods}"
    );
}

#[tokio::test]
async fn the_limits_on_roles_scopes_and_audiences_are_in_the_request_schemas() {
    let document = document().await;
    let schemas = &document["components"]["schemas"];
    for (schema, field, items, length) in [
        ("NewUser", "roles", 32, 64),
        ("UserUpdate", "roles", 32, 64),
        ("NewClient", "scopes", 32, 64),
        ("NewClient", "audiences", 32, 256),
        ("ClientUpdate", "scopes", 32, 64),
        ("ClientUpdate", "audiences", 32, 256),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["maxItems"], items, "{schema}.{field}: {property}");
        assert_eq!(
            property["items"]["maxLength"], length,
            "{schema}.{field}: {property}"
        );
    }
    for (schema, field) in [("NewUser", "username"), ("NewClient", "client_id")] {
        assert_eq!(schemas[schema]["properties"][field]["maxLength"], 64);
    }
}
