//! The committed OpenAPI documents (JSON and YAML) are what the code produces.

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
