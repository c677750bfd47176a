//! The key directory and the set of keys loaded from it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use super::{KeyError, SigningKey};
use crate::domain::UnixTime;

/// Every key that may have signed a live token, the one that signs now, and the JWKS document
/// serialised once so that serving it costs no work per request.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    signer: Arc<SigningKey>,
    jwks: Bytes,
    etag: String,
}

/// A loaded key set and, when the directory held no key, the file of the key made for it.
#[derive(Debug)]
pub struct LoadedKeys {
    pub keys: KeySet,
    pub generated: Option<PathBuf>,
}

impl KeySet {
    /// Builds a set; the newest key signs.
    pub fn from_keys(keys: Vec<SigningKey>) -> Result<KeySet, KeyError> {
        let mut keys: Vec<Arc<SigningKey>> = keys.into_iter().map(Arc::new).collect();
        keys.sort_by(|a, b| b.created_at().cmp(&a.created_at()).then(a.kid().cmp(b.kid())));
        keys.dedup_by(|a, b| a.kid() == b.kid());
        let signer = keys
            .first()
            .cloned()
            .ok_or_else(|| KeyError::Empty("the key set".into()))?;
        let document = serde_json::json!({
            "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()
        });
        let jwks = Bytes::from(serde_json::to_vec(&document).map_err(|_| KeyError::Generation)?);
        let hash = digest::digest(&digest::SHA256, &jwks);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
        Ok(KeySet {
            keys,
            signer,
            jwks,
            etag,
        })
    }

    /// Loads every `*.pem` key in `dir`; if there is none, generates an RSA-2048 key there. An
    /// existing key is never overwritten, and a file that is not a usable key stops start-up.
    pub fn load_or_generate(dir: &Path, now: UnixTime) -> Result<LoadedKeys, KeyError> {
        let mut keys = read_dir(dir)?;
        let mut generated = None;
        if keys.is_empty() {
            match generate_first(dir, now)? {
                Some((path, key)) => {
                    generated = Some(path);
                    keys.push(key);
                }
                // Another replica sharing the directory made the first key a moment ago.
                None => keys = read_dir(dir)?,
            }
        }
        Ok(LoadedKeys {
            keys: KeySet::from_keys(keys)?,
            generated,
        })
    }

    /// Loads the keys of `dir`, which must hold at least one.
    pub fn load(dir: &Path) -> Result<KeySet, KeyError> {
        let keys = read_dir(dir)?;
        if keys.is_empty() {
            return Err(KeyError::Empty(dir.display().to_string()));
        }
        KeySet::from_keys(keys)
    }

    pub fn signer(&self) -> &Arc<SigningKey> {
        &self.signer
    }

    pub fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid() == kid)
    }

    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// The RFC 7517 document, ready to send.
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }

    /// A strong entity tag of the JWKS document, quoted as the header carries it.
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

/// Generates a key in `dir` (created with mode 0700 if missing) and writes it with mode 0600.
pub fn generate_in(dir: &Path, bits: usize, now: UnixTime) -> Result<(PathBuf, SigningKey), KeyError> {
    create_private_dir(dir)?;
    let (key, pem) = SigningKey::generate_rsa(bits, now)?;
    let short_kid: String = key.kid().chars().take(8).collect();
    let path = dir.join(format!("key-{now}-{short_kid}.pem"));
    write_private(&path, pem.as_bytes())?;
    Ok((path, key))
}

/// The name of the key a fresh installation makes for itself.
const FIRST_KEY: &str = "key-first.pem";

/// Makes the first key of an empty directory. Replicas that start together on one shared
/// directory race here; the key is written aside and linked into place, which only one of them
/// can do, so they all end up with the same key. `None` when another process won.
fn generate_first(dir: &Path, now: UnixTime) -> Result<Option<(PathBuf, SigningKey)>, KeyError> {
    create_private_dir(dir)?;
    let (key, pem) = SigningKey::generate_rsa(2048, now)?;
    let staging = dir.join(format!(".{}.tmp", crate::credentials::random_token(9)));
    write_private(&staging, pem.as_bytes())?;
    let path = dir.join(FIRST_KEY);
    let linked = fs::hard_link(&staging, &path);
    fs::remove_file(&staging)?;
    match linked {
        Ok(()) => Ok(Some((path, key))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<SigningKey>, KeyError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        let unreadable = |reason: String| KeyError::Unreadable {
            path: path.display().to_string(),
            reason,
        };
        let text = fs::read(&path).map_err(|e| unreadable(e.to_string()))?;
        let created_at = created_at(&path);
        keys.push(SigningKey::from_pem(&text, created_at).map_err(unreadable)?);
    }
    Ok(keys)
}

/// The creation time: from a `key-<unix>-*.pem` name, else the file's modification time.
fn created_at(path: &Path) -> UnixTime {
    let from_name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("key-"))
        .and_then(|s| s.split('-').next())
        .and_then(|s| s.parse().ok());
    from_name.unwrap_or_else(|| {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as UnixTime)
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_empty_directory_gets_one_new_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let loaded = KeySet::load_or_generate(&keys_dir, 1_700_000_000).unwrap();
        let path = loaded.generated.expect("a key was generated");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(loaded.keys.keys().len(), 1);
    }

    #[test]
    fn replicas_starting_together_on_an_empty_directory_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || KeySet::load_or_generate(&path, 1).unwrap())
            })
            .collect();
        let loaded: Vec<LoadedKeys> = starts.into_iter().map(|s| s.join().unwrap()).collect();
        let kids: std::collections::HashSet<String> =
            loaded.iter().map(|l| l.keys.signer().kid().to_owned()).collect();
        assert_eq!(kids.len(), 1);
        assert_eq!(loaded.iter().filter(|l| l.generated.is_some()).count(), 1);
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "no staging files are left behind");
    }

    #[test]
    fn an_existing_key_is_loaded_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeySet::load_or_generate(dir.path(), 1).unwrap();
        let second = KeySet::load_or_generate(dir.path(), 2).unwrap();
        assert!(second.generated.is_none());
        assert_eq!(first.keys.signer().kid(), second.keys.signer().kid());
    }

    #[test]
    fn the_newest_key_signs_and_every_key_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let (_, old) = generate_in(dir.path(), 2048, 100).unwrap();
        let (_, new) = generate_in(dir.path(), 2048, 200).unwrap();
        let set = KeySet::load(dir.path()).unwrap();
        assert_eq!(set.signer().kid(), new.kid());
        let jwks: serde_json::Value = serde_json::from_slice(&set.jwks()).unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert!(kids.contains(&old.kid()) && kids.contains(&new.kid()));
        assert!(set.find(old.kid()).is_some());
    }

    #[test]
    fn a_corrupt_key_file_stops_loading_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("broken.pem"), "not a key").unwrap();
        let error = KeySet::load_or_generate(dir.path(), 1).unwrap_err().to_string();
        assert!(error.contains("broken.pem"), "{error}");
    }

    #[test]
    fn the_etag_changes_with_the_key_set() {
        let dir = tempfile::tempdir().unwrap();
        generate_in(dir.path(), 2048, 100).unwrap();
        let before = KeySet::load(dir.path()).unwrap();
        generate_in(dir.path(), 2048, 200).unwrap();
        let after = KeySet::load(dir.path()).unwrap();
        assert_ne!(before.etag(), after.etag());
    }
}
