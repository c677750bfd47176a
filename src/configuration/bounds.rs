//! Values that parse but cannot be meant: numbers that are not whole, switches given as
//! numbers, durations and sizes past what the service can represent, and settings that the
//! chosen store would ignore.

use config::{Map, Value, ValueKind};

use super::{ConfigError, Settings, StoreBackend, invalid};

/// The longest lifetime or interval any setting takes: ten years, far inside what a Unix time
/// (`i64`) and a monotonic clock can add.
const MAX_PERIOD_SECS: u64 = 10 * 366 * 86_400;

/// The longest a connection or request timeout may be.
const MAX_TIMEOUT_SECS: u64 = 86_400;

/// The most password-hashing threads (each holds one argon2 block) and queued hashes.
const MAX_HASHING_THREADS: usize = 256;
const MAX_HASH_QUEUE: usize = 100_000;

/// Compares each value as written with the type it was read into. `config` reads `inf` as the
/// largest integer (a limit turned off, with no warning), `nan` as 0, `10.9` as 11 and any
/// number as a switch; every one of those is refused, naming its key.
pub(super) fn check_kinds(
    written: &Map<String, Value>,
    read: &Settings,
) -> Result<(), ConfigError> {
    let read: Map<String, Value> = config::Config::try_from(read)?.try_deserialize()?;
    compare(written, &read, "")
}

fn compare(
    written: &Map<String, Value>,
    read: &Map<String, Value>,
    at: &str,
) -> Result<(), ConfigError> {
    for (name, value) in written {
        let Some(expected) = read.get(name) else {
            continue;
        };
        let key = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        match (&value.kind, &expected.kind) {
            (ValueKind::Table(written), ValueKind::Table(read)) => compare(written, read, &key)?,
            (ValueKind::Float(_), kind) if is_integer(kind) => {
                return Err(invalid(key, "must be a whole number"));
            }
            (ValueKind::Boolean(_), ValueKind::Boolean(_)) => {}
            (ValueKind::String(text), ValueKind::Boolean(_))
                if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") => {}
            (_, ValueKind::Boolean(_)) => return Err(invalid(key, "must be true or false")),
            _ => {}
        }
    }
    Ok(())
}

fn is_integer(kind: &ValueKind) -> bool {
    matches!(
        kind,
        ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_)
    )
}

/// Upper bounds, where a larger value would overflow a clock or exhaust the machine, and the
/// Redis URL, which the embedded store would ignore.
pub(super) fn check_ranges(settings: &Settings) -> Result<(), ConfigError> {
    let server = &settings.server;
    let spans = [
        (
            "tokens.refresh_ttl",
            settings.tokens.refresh_ttl,
            MAX_PERIOD_SECS,
            "ten years",
        ),
        (
            "keys.jwks_max_age",
            settings.keys.jwks_max_age,
            MAX_PERIOD_SECS,
            "ten years",
        ),
        (
            "keys.rotate_every",
            settings.keys.rotate_every,
            MAX_PERIOD_SECS,
            "ten years",
        ),
        (
            "server.request_timeout",
            server.request_timeout,
            MAX_TIMEOUT_SECS,
            "a day",
        ),
        (
            "server.header_timeout",
            server.header_timeout,
            MAX_TIMEOUT_SECS,
            "a day",
        ),
        (
            "server.idle_timeout",
            server.idle_timeout,
            MAX_TIMEOUT_SECS,
            "a day",
        ),
    ];
    for (key, value, max, span) in spans {
        if value > max {
            return Err(invalid(
                key,
                format!("must be at most {max} seconds ({span})"),
            ));
        }
    }
    if settings.passwords.max_concurrent > MAX_HASHING_THREADS {
        return Err(invalid(
            "passwords.max_concurrent",
            format!("must be at most {MAX_HASHING_THREADS}"),
        ));
    }
    if settings.passwords.max_queue > MAX_HASH_QUEUE {
        return Err(invalid(
            "passwords.max_queue",
            format!("must be at most {MAX_HASH_QUEUE}"),
        ));
    }
    if settings.store.backend == StoreBackend::Embedded && settings.store.url.is_some() {
        return Err(invalid(
            "store.url",
            "is used only with store.backend redis; set store.backend (LATCHKEY_STORE__BACKEND) \
             to redis, or leave the URL out",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::Settings;

    fn refusal(pairs: &[(&str, &str)]) -> Option<String> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load_from(None, Some(env))
            .err()
            .map(|error| error.to_string())
    }

    #[test]
    fn numbers_that_are_not_whole_are_refused_naming_their_key() {
        for value in ["inf", "-inf", "nan", "10.9", "1e3"] {
            for (name, key) in [
                ("LATCHKEY_SERVER__MAX_BODY_BYTES", "server.max_body_bytes"),
                (
                    "LATCHKEY_SECURITY__MAX_FAILED_LOGINS_PER_USER_ADDRESS",
                    "security.max_failed_logins_per_user_address",
                ),
                ("LATCHKEY_TOKENS__ACCESS_TTL", "tokens.access_ttl"),
            ] {
                let message = refusal(&[(name, value)]).expect("refused");
                assert!(message.contains(key), "{name}={value}: {message}");
            }
        }
        assert_eq!(
            refusal(&[("LATCHKEY_SERVER__MAX_BODY_BYTES", "65536")]),
            None
        );
    }

    #[test]
    fn a_switch_takes_true_or_false_and_no_number() {
        for value in ["2", "1", "0", "nan"] {
            let message = refusal(&[("LATCHKEY_REGISTRATION__ENABLED", value)]).expect("refused");
            assert!(
                message.contains("registration.enabled"),
                "{value}: {message}"
            );
        }
        for value in ["true", "false", "TRUE"] {
            assert_eq!(refusal(&[("LATCHKEY_REGISTRATION__ENABLED", value)]), None);
        }
    }

    #[test]
    fn a_configuration_file_is_held_to_the_same_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(&path, "[server]\nmax_body_bytes = inf\n").unwrap();
        let message = Settings::load_from(Some(&path), Some(HashMap::new()))
            .expect_err("refused")
            .to_string();
        assert!(message.contains("server.max_body_bytes"), "{message}");
        std::fs::write(&path, "[registration]\nenabled = 1\n").unwrap();
        let message = Settings::load_from(Some(&path), Some(HashMap::new()))
            .expect_err("refused")
            .to_string();
        assert!(message.contains("registration.enabled"), "{message}");
    }

    #[test]
    fn periods_timeouts_and_thread_counts_past_what_the_service_can_hold_are_refused() {
        for (name, value, key) in [
            (
                "LATCHKEY_TOKENS__REFRESH_TTL",
                "9223372036854775807",
                "tokens.refresh_ttl",
            ),
            (
                "LATCHKEY_TOKENS__REFRESH_TTL",
                "100000000000000000",
                "tokens.refresh_ttl",
            ),
            (
                "LATCHKEY_KEYS__ROTATE_EVERY",
                "18446744073709551615",
                "keys.rotate_every",
            ),
            (
                "LATCHKEY_SERVER__IDLE_TIMEOUT",
                "9223372036854775808",
                "server.idle_timeout",
            ),
            (
                "LATCHKEY_SERVER__HEADER_TIMEOUT",
                "86401",
                "server.header_timeout",
            ),
            (
                "LATCHKEY_PASSWORDS__MAX_CONCURRENT",
                "100000",
                "passwords.max_concurrent",
            ),
        ] {
            let message = refusal(&[(name, value)]).expect("refused");
            assert!(message.contains(key), "{name}={value}: {message}");
        }
        assert_eq!(
            refusal(&[("LATCHKEY_TOKENS__REFRESH_TTL", "31536000")]),
            None
        );
    }

    #[test]
    fn a_redis_url_with_the_embedded_store_is_refused_not_ignored() {
        let message =
            refusal(&[("LATCHKEY_STORE__URL", "redis://127.0.0.1:6379")]).expect("refused");
        assert!(message.contains("store.url"), "{message}");
        assert_eq!(
            refusal(&[
                ("LATCHKEY_STORE__BACKEND", "redis"),
                ("LATCHKEY_STORE__URL", "redis://127.0.0.1:6379"),
            ]),
            None
        );
    }
}
