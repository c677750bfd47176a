use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn defaults_match_the_documented_contract() {
    let settings = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(settings.server.bind, "127.0.0.1:8080");
    assert_eq!(settings.issuer, "http://127.0.0.1:8080");
    assert_eq!(settings.store.backend, StoreBackend::Embedded);
    assert_eq!(settings.store.path, PathBuf::from("./data"));
    assert_eq!(settings.keys.dir, PathBuf::from("./keys"));
    assert_eq!(settings.tokens.access_ttl, 900);
    assert_eq!(settings.tokens.refresh_ttl, 2_592_000);
    assert_eq!(settings.tokens.refresh_grace, 5);
    assert!(!settings.registration.enabled);
    assert_eq!(settings.passwords.memory_kib, 19_456);
    assert_eq!(settings.passwords.iterations, 2);
    assert_eq!(settings.passwords.parallelism, 1);
}

#[test]
fn environment_variables_override_defaults() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("LATCHKEY_SERVER__BIND", "0.0.0.0:9000"),
            ("LATCHKEY_ISSUER", "https://auth.example.com/"),
            ("LATCHKEY_STORE__BACKEND", "redis"),
            ("LATCHKEY_STORE__URL", "redis://127.0.0.1:6379"),
            ("LATCHKEY_TOKENS__ACCESS_TTL", "60"),
            ("LATCHKEY_TOKENS__REFRESH_GRACE", "0"),
            ("LATCHKEY_REGISTRATION__ENABLED", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.server.bind, "0.0.0.0:9000");
    assert_eq!(settings.issuer, "https://auth.example.com");
    assert_eq!(settings.store.backend, StoreBackend::Redis);
    assert_eq!(settings.tokens.access_ttl, 60);
    assert_eq!(settings.tokens.refresh_grace, 0);
    assert!(settings.registration.enabled);
}

#[test]
fn a_file_is_read_and_the_environment_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "issuer = \"https://file.example\"\n[tokens]\naccess_ttl = 120\n",
    )
    .unwrap();
    let settings =
        Settings::load_from(Some(&path), env(&[("LATCHKEY_TOKENS__ACCESS_TTL", "30")])).unwrap();
    assert_eq!(settings.issuer, "https://file.example");
    assert_eq!(settings.tokens.access_ttl, 30);
}

fn error_for(pairs: &[(&str, &str)]) -> String {
    Settings::load_from(None, env(pairs))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_non_numeric_ttl_names_its_key() {
    let message = error_for(&[("LATCHKEY_TOKENS__ACCESS_TTL", "soon")]);
    assert!(message.contains("tokens.access_ttl"), "{message}");
}

#[test]
fn an_unknown_backend_names_its_key() {
    let message = error_for(&[("LATCHKEY_STORE__BACKEND", "postgres")]);
    assert!(message.contains("store.backend"), "{message}");
}

#[test]
fn a_bad_bind_address_names_its_key() {
    let message = error_for(&[("LATCHKEY_SERVER__BIND", "localhost")]);
    assert!(message.contains("server.bind"), "{message}");
}

#[test]
fn redis_without_a_url_is_refused() {
    let message = error_for(&[("LATCHKEY_STORE__BACKEND", "redis")]);
    assert!(message.contains("store.url"), "{message}");
}

#[test]
fn a_refresh_ttl_shorter_than_the_access_ttl_is_refused() {
    let message = error_for(&[
        ("LATCHKEY_TOKENS__ACCESS_TTL", "600"),
        ("LATCHKEY_TOKENS__REFRESH_TTL", "300"),
    ]);
    assert!(message.contains("tokens.refresh_ttl"), "{message}");
}

#[test]
fn an_issuer_that_is_not_a_url_is_refused() {
    let message = error_for(&[("LATCHKEY_ISSUER", "latchkey")]);
    assert!(message.contains("issuer"), "{message}");
}

#[test]
fn admin_scopes_default_to_admin_and_read_a_joined_list_from_the_environment() {
    let settings = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(settings.tokens.admin_scopes, ["admin"]);
    let settings = Settings::load_from(
        None,
        env(&[("LATCHKEY_TOKENS__ADMIN_SCOPES", "admin ops,audit")]),
    )
    .unwrap();
    assert_eq!(settings.tokens.admin_scopes, ["admin", "ops", "audit"]);
    let message = error_for(&[("LATCHKEY_TOKENS__ADMIN_SCOPES", "bad\\scope")]);
    assert!(message.contains("tokens.admin_scopes"), "{message}");
}

#[test]
fn a_bootstrap_admin_needs_a_password_and_a_password_needs_a_username() {
    let message = error_for(&[("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root")]);
    assert!(message.contains("bootstrap.admin_password"), "{message}");
    let message = error_for(&[("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "long enough")]);
    assert!(message.contains("bootstrap.admin_username"), "{message}");
    let message = error_for(&[
        ("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "no spaces allowed"),
        ("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "long enough"),
    ]);
    assert!(message.contains("bootstrap.admin_username"), "{message}");
}

#[test]
fn bootstrap_credentials_are_taken_as_written_and_never_printed() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "007"),
            ("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "0012345678"),
        ]),
    )
    .unwrap();
    let (username, password) = settings.bootstrap_admin().unwrap().unwrap();
    assert_eq!(username, "007");
    assert_eq!(password.expose(), "0012345678");
    assert!(!format!("{settings:?}").contains("0012345678"));
}

#[test]
fn a_bootstrap_password_file_loses_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "pass word \n\n").unwrap();
    let settings = Settings::load_from(
        None,
        env(&[
            ("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root"),
            (
                "LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD_FILE",
                path.to_str().unwrap(),
            ),
        ]),
    )
    .unwrap();
    let (_, password) = settings.bootstrap_admin().unwrap().unwrap();
    assert_eq!(password.expose(), "pass word \n");
}

#[test]
fn what_goes_into_every_token_is_bounded_like_an_administrator_s_input() {
    // `aud` of tokens that ask for none: an audience's rules.
    let long = "a".repeat(crate::domain::limits::MAX_AUDIENCE_LEN);
    let settings = Settings::load_from(None, env(&[("LATCHKEY_TOKENS__AUDIENCE", &long)])).unwrap();
    assert_eq!(settings.tokens.audience, long);
    for audience in [
        format!("{long}a"),
        "my api".into(),
        "a\"b".into(),
        "a\\b".into(),
    ] {
        let message = error_for(&[("LATCHKEY_TOKENS__AUDIENCE", &audience)]);
        assert!(message.contains("tokens.audience"), "{message}");
    }
    // The issuer is `iss` of every token and `aud` of refresh tokens.
    let issuer = format!("https://{}", "a".repeat(248));
    assert_eq!(issuer.len(), crate::domain::limits::MAX_ISSUER_LEN);
    assert!(Settings::load_from(None, env(&[("LATCHKEY_ISSUER", &issuer)])).is_ok());
    for issuer in [format!("{issuer}a"), "https://auth example.com".into()] {
        let message = error_for(&[("LATCHKEY_ISSUER", &issuer)]);
        assert!(message.contains("issuer"), "{message}");
    }
    // Admin scopes: the scope limits.
    let many: Vec<String> = (0..=crate::domain::limits::MAX_SCOPES)
        .map(|i| format!("s{i}"))
        .collect();
    let message = error_for(&[("LATCHKEY_TOKENS__ADMIN_SCOPES", &many.join(" "))]);
    assert!(message.contains("tokens.admin_scopes"), "{message}");
    assert!(message.contains("at most 32"), "{message}");
    let long_scope = "s".repeat(crate::domain::limits::MAX_SCOPE_LEN + 1);
    let message = error_for(&[("LATCHKEY_TOKENS__ADMIN_SCOPES", &long_scope)]);
    assert!(message.contains("tokens.admin_scopes"), "{message}");
}

#[test]
fn the_body_limit_takes_the_largest_token_to_revoke_or_introspect() {
    let least = MIN_BODY_BYTES.to_string();
    assert!(Settings::load_from(None, env(&[("LATCHKEY_SERVER__MAX_BODY_BYTES", &least)])).is_ok());
    let below = (MIN_BODY_BYTES - 1).to_string();
    let message = error_for(&[("LATCHKEY_SERVER__MAX_BODY_BYTES", &below)]);
    assert!(message.contains("server.max_body_bytes"), "{message}");
}
