//! Settings that do not exist: an unknown key in a configuration file or an unknown
//! `LATCHKEY_*` environment variable stops start-up, named, with the setting it was probably
//! meant to be, instead of being silently ignored.

use std::collections::BTreeMap;
use std::path::Path;

use config::{Config, File};

use super::{ConfigError, Settings};

/// What environment variables of settings start with.
pub(super) const ENV_PREFIX: &str = "LATCHKEY_";

/// The `LATCHKEY_*` environment variables the binary reads that are not settings.
const OTHER_VARIABLES: &[&str] = &["LATCHKEY_CONFIG"];

/// Every key there is, `server.bind` for a setting and `server` for a section (`true`).
#[allow(
    clippy::expect_used,
    reason = "the defaults are plain data: serializing them cannot fail"
)]
pub(super) fn known_keys() -> BTreeMap<String, bool> {
    fn walk(value: &serde_json::Value, prefix: &str, keys: &mut BTreeMap<String, bool>) {
        let serde_json::Value::Object(members) = value else {
            return;
        };
        for (name, value) in members {
            let key = join_key(prefix, name);
            walk(value, &key, keys);
            keys.insert(key, value.is_object());
        }
    }
    let defaults = serde_json::to_value(Settings::default()).expect("the defaults serialize");
    let mut keys = BTreeMap::new();
    walk(&defaults, "", &mut keys);
    keys
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The keys of `value` (a configuration file as read) that are no setting or section.
fn unknown_keys(
    value: &serde_json::Value,
    prefix: &str,
    known: &BTreeMap<String, bool>,
    unknown: &mut Vec<String>,
) {
    let serde_json::Value::Object(members) = value else {
        return;
    };
    for (name, value) in members {
        let key = join_key(prefix, name);
        match known.get(&key) {
            // A value of the wrong shape is deserialization's to report, by its key.
            Some(true) => unknown_keys(value, &key, known, unknown),
            Some(false) => {}
            None => unknown.push(key),
        }
    }
}

/// `name` with the known setting it was probably meant to be, spelt as `spell` spells keys.
fn with_suggestion(
    name: &str,
    key: &str,
    known: &BTreeMap<String, bool>,
    spell: impl Fn(&str) -> String,
) -> String {
    let closest = known
        .iter()
        .filter(|(_, section)| !**section)
        .map(|(candidate, _)| (edit_distance(key, candidate), candidate))
        .min();
    match closest {
        Some((distance, candidate)) if distance <= 2 => {
            format!("{name} (did you mean {}?)", spell(candidate))
        }
        _ => name.to_owned(),
    }
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Refuses keys of the configuration file at `path` that are no setting.
pub(super) fn check_file(path: &Path, known: &BTreeMap<String, bool>) -> Result<(), ConfigError> {
    let read: serde_json::Value = Config::builder()
        .add_source(File::from(path).required(true))
        .build()?
        .try_deserialize()?;
    let mut unknown = Vec::new();
    unknown_keys(&read, "", known, &mut unknown);
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Unknown {
        place: format!("settings in {}", path.display()),
        names: unknown
            .iter()
            .map(|key| with_suggestion(key, key, known, str::to_owned))
            .collect(),
    })
}

/// Refuses `LATCHKEY_*` environment variables that are no setting (and that the binary does not
/// read otherwise), given as names and values. Matched as the `config` crate matches them:
/// regardless of case, `__` between a section and its key.
pub(super) fn check_environment(
    variables: &[(String, String)],
    known: &BTreeMap<String, bool>,
) -> Result<(), ConfigError> {
    let mut unknown: Vec<String> = variables
        .iter()
        .filter(|(name, _)| {
            name.get(..ENV_PREFIX.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
        })
        .filter(|(name, value)| !is_service_link(&name[ENV_PREFIX.len()..], value))
        .map(|(name, _)| name.clone())
        .filter(|name| !OTHER_VARIABLES.contains(&name.as_str()))
        .filter_map(|name| {
            let key = name[ENV_PREFIX.len()..].to_lowercase().replace("__", ".");
            (!known.contains_key(&key)).then(|| {
                with_suggestion(&name, &key, known, |candidate| {
                    format!(
                        "{ENV_PREFIX}{}",
                        candidate.to_uppercase().replace('.', "__")
                    )
                })
            })
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    Err(ConfigError::Unknown {
        place: "environment variables".into(),
        names: unknown,
    })
}

/// Whether `LATCHKEY_<rest>=<value>` is one of the variables Kubernetes gives every container
/// for each Service of its namespace: a Service named `latchkey` or `latchkey-*`, as the
/// shipped manifests name theirs, gives `LATCHKEY_SERVICE_HOST=10.0.0.7`,
/// `LATCHKEY_REDIS_PORT=tcp://10.0.0.8:6379`, `LATCHKEY_PORT_80_TCP_ADDR=10.0.0.7` and so on.
/// Matched by name and value both, so that a misspelt setting never passes for one.
fn is_service_link(rest: &str, value: &str) -> bool {
    if rest.contains("__") || rest.bytes().any(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let is_ip = |v: &str| v.parse::<std::net::IpAddr>().is_ok();
    let is_port = |v: &str| v.parse::<u16>().is_ok();
    let is_protocol = |p: &str| matches!(p, "TCP" | "UDP" | "SCTP");
    let is_url = |v: &str| {
        ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|scheme| v.starts_with(scheme))
    };
    let words: Vec<&str> = rest.split('_').collect();
    let after = |word: &str| {
        words
            .iter()
            .rposition(|w| *w == word)
            .map(|at| &words[at + 1..])
    };
    if let Some(tail) = after("SERVICE") {
        return match tail {
            ["HOST"] => is_ip(value),
            ["PORT", ..] => is_port(value),
            _ => false,
        };
    }
    let Some(at) = words.iter().position(|w| *w == "PORT") else {
        return false;
    };
    match &words[at + 1..] {
        [] => is_url(value),
        [port, protocol] if is_port(port) && is_protocol(protocol) => is_url(value),
        [port, protocol, "PROTO"] if is_port(port) && is_protocol(protocol) => {
            value.eq_ignore_ascii_case(protocol)
        }
        [port, protocol, "PORT"] if is_port(port) && is_protocol(protocol) => value == *port,
        [port, protocol, "ADDR"] if is_port(port) && is_protocol(protocol) => is_ip(value),
        _ => false,
    }
}
