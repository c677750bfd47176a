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
/// read otherwise). Matched as the `config` crate matches them: regardless of case, `__`
/// between a section and its key.
pub(super) fn check_environment(
    names: Vec<String>,
    known: &BTreeMap<String, bool>,
) -> Result<(), ConfigError> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| {
            name.get(..ENV_PREFIX.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
        })
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
