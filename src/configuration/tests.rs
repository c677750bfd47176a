use super::*;
use crate::domain::Secret;
use std::collections::HashMap;

mod unknown;

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
fn the_admin_audience_defaults_to_latchkey_admin_and_is_read_from_the_environment() {
    let settings = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(settings.admin.audience, "latchkey-admin");
    let settings = Settings::load_from(
        None,
        env(&[("LATCHKEY_ADMIN__AUDIENCE", "https://auth.example.com/admin")]),
    )
    .unwrap();
    assert_eq!(settings.admin.audience, "https://auth.example.com/admin");
}

#[test]
fn the_admin_audience_is_read_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, "[admin]\naudience = \"ops-console\"\n").unwrap();
    let settings = Settings::load_from(Some(&path), env(&[])).unwrap();
    assert_eq!(settings.admin.audience, "ops-console");
}

#[test]
fn an_admin_audience_that_is_empty_malformed_or_shared_is_refused_naming_its_key() {
    for (pairs, why) in [
        (vec![("LATCHKEY_ADMIN__AUDIENCE", "")], "empty"),
        (vec![("LATCHKEY_ADMIN__AUDIENCE", "admin api")], "a space"),
        (
            vec![("LATCHKEY_ADMIN__AUDIENCE", "admin\u{7}")],
            "a control character",
        ),
        (
            vec![("LATCHKEY_ADMIN__AUDIENCE", "adm\u{ed}n")],
            "not ASCII",
        ),
        (
            vec![("LATCHKEY_ADMIN__AUDIENCE", &*"a".repeat(257))],
            "too long",
        ),
        (
            vec![("LATCHKEY_ADMIN__AUDIENCE", "http://127.0.0.1:8080")],
            "the issuer",
        ),
        (
            vec![
                ("LATCHKEY_ISSUER", "https://auth.example.com"),
                ("LATCHKEY_ADMIN__AUDIENCE", "https://auth.example.com/"),
            ],
            "the issuer with a slash",
        ),
        (
            vec![("LATCHKEY_ADMIN__AUDIENCE", "api")],
            "the default audience",
        ),
        (
            vec![
                ("LATCHKEY_TOKENS__AUDIENCE", "reports"),
                ("LATCHKEY_ADMIN__AUDIENCE", "reports"),
            ],
            "a configured default audience",
        ),
    ] {
        let message = error_for(&pairs);
        assert!(message.contains("admin.audience"), "{why}: {message}");
    }
}

#[test]
fn the_default_audience_is_checked_the_same_way() {
    for value in ["", "my api", "http://127.0.0.1:8080"] {
        let message = error_for(&[("LATCHKEY_TOKENS__AUDIENCE", value)]);
        assert!(message.contains("tokens.audience"), "{value:?}: {message}");
    }
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

fn bootstrap_from_file(content: &str) -> Result<Option<(String, Secret)>, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, content).unwrap();
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
    settings.bootstrap_admin()
}

#[test]
fn a_bootstrap_password_file_loses_one_trailing_newline_and_may_not_have_two_lines() {
    for content in ["pass word \n", "pass word \r\n", "pass word "] {
        let (_, password) = bootstrap_from_file(content).unwrap().unwrap();
        assert_eq!(password.expose(), "pass word ", "{content:?}");
    }
    for content in ["pass word \n\n", "password\nsecond line\n", "first\nsecond"] {
        let message = bootstrap_from_file(content).unwrap_err().to_string();
        assert!(
            message.contains("bootstrap.admin_password_file") && message.contains("line"),
            "{content:?}: {message}"
        );
    }
    // A password the store would refuse stops start-up before the store is asked.
    let message = bootstrap_from_file("short\n").unwrap_err().to_string();
    assert!(
        message.contains("bootstrap.admin_password_file"),
        "{message}"
    );
}

#[test]
fn every_validation_error_names_its_own_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("LATCHKEY_SERVER__HEADER_TIMEOUT", "0")],
            "server.header_timeout",
        ),
        (
            &[("LATCHKEY_SERVER__REQUEST_TIMEOUT", "0")],
            "server.request_timeout",
        ),
        (
            &[("LATCHKEY_SERVER__IDLE_TIMEOUT", "30")],
            "server.idle_timeout",
        ),
        (&[("LATCHKEY_SERVER__TLS_CERT", "/c.pem")], "server.tls_key"),
        (&[("LATCHKEY_SERVER__TLS_KEY", "/k.pem")], "server.tls_cert"),
        (
            &[("LATCHKEY_PASSWORDS__ITERATIONS", "0")],
            "passwords.iterations",
        ),
        (
            &[("LATCHKEY_PASSWORDS__PARALLELISM", "0")],
            "passwords.parallelism",
        ),
        (
            &[("LATCHKEY_PASSWORDS__MEMORY_KIB", "1")],
            "passwords.memory_kib",
        ),
        (
            &[("LATCHKEY_SERVER__MAX_BODY_BYTES", "10")],
            "server.max_body_bytes",
        ),
        (&[("LATCHKEY_KEYS__JWKS_MAX_AGE", "0")], "keys.jwks_max_age"),
        (&[("LATCHKEY_LOG__FORMAT", "xml")], "log.format"),
        (
            &[("LATCHKEY_SECURITY__FAILED_LOGIN_WINDOW", "0")],
            "security.failed_login_window",
        ),
        (
            &[("LATCHKEY_SECURITY__TRUSTED_PROXIES", "nope")],
            "security.trusted_proxies",
        ),
        (
            &[("LATCHKEY_SECURITY__JWKS_URI_NETWORKS", "10.0.0.0/33")],
            "security.jwks_uri_networks",
        ),
    ];
    for (pairs, key) in cases {
        let message = error_for(pairs);
        assert!(message.contains(key), "{pairs:?}: {message}");
    }
}

/// Environment variables, for a table of cases.
type Pairs<'a> = &'a [(&'a str, &'a str)];

fn warned(pairs: &[(&str, &str)]) -> Vec<&'static str> {
    let settings = Settings::load_from(None, env(pairs)).expect("valid settings");
    settings.warnings().iter().map(|w| w.key).collect()
}

#[test]
fn the_defaults_warn_about_nothing() {
    assert_eq!(warned(&[]), Vec::<&str>::new());
}

#[test]
fn dangerous_settings_are_warned_about_by_their_key() {
    let cases: &[(Pairs, &[&str])] = &[
        (
            &[("LATCHKEY_SECURITY__TRUSTED_PROXIES", "0.0.0.0/0")],
            &["security.trusted_proxies"],
        ),
        (
            &[("LATCHKEY_SECURITY__TRUSTED_PROXIES", "10.0.0.1, ::/0")],
            &["security.trusted_proxies"],
        ),
        (
            &[(
                "LATCHKEY_SECURITY__TRUSTED_PROXIES",
                "10.0.0.0/8,fc00::/7,192.0.2.7",
            )],
            &[],
        ),
        (
            &[("LATCHKEY_SERVER__BIND", "0.0.0.0:8080")],
            &["server.tls_cert", "issuer"],
        ),
        (
            &[
                ("LATCHKEY_SERVER__BIND", "0.0.0.0:8080"),
                ("LATCHKEY_ISSUER", "https://auth.example.com"),
            ],
            &[],
        ),
        (
            &[
                ("LATCHKEY_SERVER__BIND", "[::]:8080"),
                ("LATCHKEY_ISSUER", "http://[::1]:8080"),
            ],
            &["server.tls_cert", "issuer"],
        ),
        (&[("LATCHKEY_ISSUER", "http://localhost:8080")], &[]),
        (&[("LATCHKEY_REGISTRATION__ENABLED", "true")], &[]),
        (
            &[
                ("LATCHKEY_REGISTRATION__ENABLED", "true"),
                ("LATCHKEY_REGISTRATION__MAX_PER_ADDRESS", "0"),
            ],
            &["registration.max_per_address"],
        ),
        (
            &[("LATCHKEY_PASSWORDS__MEMORY_KIB", "1024")],
            &["passwords.memory_kib"],
        ),
        (
            &[
                ("LATCHKEY_PASSWORDS__MEMORY_KIB", "12288"),
                ("LATCHKEY_PASSWORDS__ITERATIONS", "3"),
            ],
            &[],
        ),
        (
            &[
                ("LATCHKEY_PASSWORDS__MEMORY_KIB", "47104"),
                ("LATCHKEY_PASSWORDS__ITERATIONS", "1"),
            ],
            &[],
        ),
        (
            &[
                ("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root"),
                ("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "long enough"),
            ],
            &["bootstrap.admin_password"],
        ),
        (
            &[
                ("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root"),
                (
                    "LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD_FILE",
                    "/run/secrets/admin",
                ),
            ],
            &[],
        ),
        (
            &[("LATCHKEY_SECURITY__MAX_FAILED_LOGINS_PER_USER", "0")],
            &["security.max_failed_logins_per_user"],
        ),
        (
            &[(
                "LATCHKEY_SECURITY__MAX_FAILED_CLIENT_AUTHS_PER_ADDRESS",
                "0",
            )],
            &["security.max_failed_client_auths_per_address"],
        ),
    ];
    for (pairs, keys) in cases {
        assert_eq!(warned(pairs), *keys, "{pairs:?}");
    }
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
    // Nor an audience the issuer keeps for itself (refresh tokens, client assertions).
    for key in ["LATCHKEY_TOKENS__AUDIENCE", "LATCHKEY_ADMIN__AUDIENCE"] {
        let message = error_for(&[(key, "http://127.0.0.1:8080/oauth/token")]);
        assert!(message.contains("must differ from the issuer"), "{message}");
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

#[test]
fn text_settings_from_the_environment_are_taken_as_written_even_where_they_look_like_numbers() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("LATCHKEY_TOKENS__AUDIENCE", "0123"),
            ("LATCHKEY_STORE__PREFIX", "007"),
            ("latchkey_admin__audience", "1e3"),
            ("LATCHKEY_TOKENS__ACCESS_TTL", "0900"),
            ("LATCHKEY_TOKENS__ADMIN_SCOPES", "admin,007"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.tokens.audience, "0123");
    assert_eq!(settings.store.prefix, "007");
    assert_eq!(settings.admin.audience, "1e3");
    assert_eq!(settings.tokens.access_ttl, 900, "numbers are still numbers");
    assert_eq!(settings.tokens.admin_scopes, ["admin", "007"]);

    // A list of one item that looks like a number or a switch.
    for item in ["007", "1.50", "true"] {
        let settings =
            Settings::load_from(None, env(&[("LATCHKEY_TOKENS__ADMIN_SCOPES", item)])).unwrap();
        assert_eq!(settings.tokens.admin_scopes, [item]);
    }
}
