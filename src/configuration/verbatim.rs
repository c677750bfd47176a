//! Text settings from the environment, as written.
//!
//! `config` reads environment values with `try_parsing`, so that `LATCHKEY_TOKENS__ACCESS_TTL=900`
//! is a number; but it does so whatever the setting's type, and a text setting read back from
//! the number loses what the number dropped: `LATCHKEY_TOKENS__AUDIENCE=0123` became the audience
//! `123`, `LATCHKEY_STORE__PREFIX=007` the prefix `7`. Every setting that was read as text, or
//! as a list of texts, is set again from its variable's value, as written.

use serde_json::Value;

use super::unknown::ENV_PREFIX;
use super::{ConfigError, Settings};

/// `settings` with every text setting named by one of `variables` (name, value) set to the
/// value as written.
pub(super) fn texts_as_written(
    settings: Settings,
    variables: &[(String, String)],
) -> Result<Settings, ConfigError> {
    let mut tree = serde_json::to_value(&settings)
        .map_err(|e| ConfigError::Source(config::ConfigError::Message(e.to_string())))?;
    let mut changed = false;
    for (name, value) in variables {
        let Some(key) = name
            .get(..ENV_PREFIX.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
            .map(|_| name[ENV_PREFIX.len()..].to_lowercase())
        else {
            continue;
        };
        let pointer: String = key
            .split("__")
            .map(|part| format!("/{}", part.replace('~', "~0").replace('/', "~1")))
            .collect();
        match tree.pointer_mut(&pointer) {
            Some(Value::String(read)) if read != value => value.clone_into(read),
            // A list setting, split again from the text as written.
            Some(list @ Value::Array(_)) => *list = Value::String(value.clone()),
            _ => continue,
        }
        changed = true;
    }
    if !changed {
        return Ok(settings);
    }
    serde_json::from_value(tree)
        .map_err(|e| ConfigError::Source(config::ConfigError::Message(e.to_string())))
}
