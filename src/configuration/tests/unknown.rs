//! Settings that do not exist: unknown variables and keys stop start-up, and every name the
//! binary or the documentation uses is one the configuration knows.

use super::*;

#[test]
fn unknown_environment_variables_stop_start_up_naming_them() {
    let message = error_for(&[
        ("LATCHKEY_SERVER__BIDN", "0.0.0.0:80"),
        ("LATCHKEY_SERVER_BIND", "0.0.0.0:80"),
        ("LATCHKEY_NOTHING", "x"),
        ("LATCHKEY_TOKENS__ACCESS_TTL", "60"),
    ]);
    assert!(
        message.contains("LATCHKEY_SERVER__BIDN (did you mean LATCHKEY_SERVER__BIND?)"),
        "{message}"
    );
    assert!(
        message.contains("LATCHKEY_SERVER_BIND (did you mean LATCHKEY_SERVER__BIND?)"),
        "{message}"
    );
    assert!(message.contains("LATCHKEY_NOTHING"), "{message}");
    assert!(!message.contains("ACCESS_TTL"), "{message}");
    // Matched as `config` matches them, whatever the case.
    let message = error_for(&[("latchkey_server__bidn", "0.0.0.0:80")]);
    assert!(message.contains("latchkey_server__bidn"), "{message}");
}

#[test]
fn every_variable_the_binary_reads_is_known() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("LATCHKEY_CONFIG", "latchkey.toml"),
            ("LATCHKEY_SERVER__BIND", "127.0.0.1:9"),
            ("LATCHKEY_SERVER__IDLE_TIMEOUT", "120"),
            ("LATCHKEY_ISSUER", "https://auth.example.com"),
            ("LATCHKEY_SECURITY__TRUSTED_PROXIES", "10.0.0.0/8"),
            ("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root"),
            ("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "long enough"),
            ("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD_FILE", ""),
            ("UNRELATED", "x"),
        ]),
    );
    assert!(settings.is_ok(), "{:?}", settings.err());
}

#[test]
fn unknown_keys_in_a_file_stop_start_up_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "isuer = \"https://auth.example.com\"\n[server]\nbidn = \"0.0.0.0:80\"\n\
         [sever]\nbind = \"x\"\n[tokens]\naccess_ttl = 60\n",
    )
    .unwrap();
    let message = Settings::load_from(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("latchkey.toml"), "{message}");
    assert!(
        message.contains("server.bidn (did you mean server.bind?)"),
        "{message}"
    );
    assert!(
        message.contains("isuer (did you mean issuer?)"),
        "{message}"
    );
    assert!(message.contains("sever"), "{message}");
    assert!(!message.contains("access_ttl"), "{message}");
}

/// Every `LATCHKEY_*` name the README and the deploy files give an operator is one the binary
/// knows, so that following the documentation never trips the unknown-variable check.
#[test]
fn every_documented_variable_is_known() {
    let documents = [
        include_str!("../../../README.md"),
        include_str!("../../../deploy/Dockerfile"),
        include_str!("../../../deploy/docker-compose.yml"),
        include_str!("../../../deploy/latchkey.service"),
        include_str!("../../../deploy/k8s/configmap.yaml"),
        include_str!("../../../deploy/k8s/deployment.yaml"),
    ];
    let known = known_keys();
    let mut names = Vec::new();
    for document in documents {
        let mut rest = document;
        while let Some(at) = rest.find(ENV_PREFIX) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].trim_end_matches('_').to_owned());
            rest = &tail[end..];
        }
    }
    // The README's placeholder for the naming scheme, and its examples of misspellings.
    let not_settings = [
        "LATCHKEY_SECTION__KEY",
        "LATCHKEY_SERVER__BIDN",
        "LATCHKEY_SERVER_BIND",
    ];
    names.retain(|name| !not_settings.contains(&name.as_str()));
    assert!(names.len() > 20, "{names:?}");
    let variables: Vec<_> = names
        .into_iter()
        .map(|name| (name, "1".to_owned()))
        .collect();
    let result = check_environment(&variables, &known);
    assert!(result.is_ok(), "{}", result.unwrap_err());
}

#[test]
fn the_variables_kubernetes_gives_for_services_named_latchkey_are_no_unknown_settings() {
    let given = [
        ("LATCHKEY_SERVICE_HOST", "10.96.0.7"),
        ("LATCHKEY_SERVICE_PORT", "80"),
        ("LATCHKEY_SERVICE_PORT_HTTP", "80"),
        ("LATCHKEY_PORT", "tcp://10.96.0.7:80"),
        ("LATCHKEY_PORT_80_TCP", "tcp://10.96.0.7:80"),
        ("LATCHKEY_PORT_80_TCP_PROTO", "tcp"),
        ("LATCHKEY_PORT_80_TCP_PORT", "80"),
        ("LATCHKEY_PORT_80_TCP_ADDR", "10.96.0.7"),
        ("LATCHKEY_REDIS_SERVICE_HOST", "fd00::8"),
        ("LATCHKEY_REDIS_PORT", "tcp://10.96.0.8:6379"),
        ("LATCHKEY_REDIS_PORT_6379_TCP_ADDR", "10.96.0.8"),
        ("LATCHKEY_ISSUER", "https://auth.example.com"),
    ];
    let started = Settings::load_from(None, env(&given));
    assert!(started.is_ok(), "{}", started.unwrap_err());

    // Names like theirs with values unlike theirs, or with a section, are still misspellings.
    for (name, value) in [
        ("LATCHKEY_SERVER_PORT", "8080"),
        ("LATCHKEY_SERVICE_HOST", "auth.example.com"),
        ("LATCHKEY_REDIS_PORT", "6379"),
        ("LATCHKEY_PORT_80_TCP_PORT", "8080"),
        ("LATCHKEY_SERVER__PORT", "tcp://10.96.0.7:80"),
        ("latchkey_service_host", "10.96.0.7"),
    ] {
        let refused = Settings::load_from(None, env(&[(name, value)]));
        assert!(refused.is_err(), "{name}={value} passed as a service link");
    }
}
