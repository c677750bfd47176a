//! The committed OpenAPI document is what the code produces.

use latchkey::configuration::Settings;
use latchkey::startup::documentation;

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let generated = documentation(&Settings::default()).await.unwrap().spec();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
}
