//! The key directory, and the set of keys loaded from it at a point in time.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use super::lifecycle::{KeyState, Policy, lifecycle};
use super::{Algorithm, KeyError, SigningKey};
use crate::domain::UnixTime;

/// A key file of the directory.
#[derive(Debug, Clone)]
pub struct DirectoryKey {
    pub key: Arc<SigningKey>,
    pub file: PathBuf,
    pub published_at: UnixTime,
}

/// A loaded key with its state.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    pub key: Arc<SigningKey>,
    pub state: KeyState,
    pub published_at: UnixTime,
}

/// The keys at one moment: the one that signs, every key that may have signed a live token, and
/// the JWKS document serialised once so that serving it costs no work per request.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<LoadedKey>,
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
    /// The set the directory's keys form at `now`.
    pub fn assemble(
        files: &[DirectoryKey],
        now: UnixTime,
        policy: &Policy,
    ) -> Result<KeySet, KeyError> {
        let times: Vec<UnixTime> = files.iter().map(|f| f.published_at).collect();
        let mut keys: Vec<LoadedKey> = files
            .iter()
            .zip(lifecycle(&times, now, policy))
            .filter(|(_, state)| state.is_loaded())
            .map(|(file, state)| LoadedKey {
                key: file.key.clone(),
                state,
                published_at: file.published_at,
            })
            .collect();
        keys.sort_by(|a, b| {
            b.published_at
                .cmp(&a.published_at)
                .then(a.key.kid().cmp(b.key.kid()))
        });
        keys.dedup_by(|a, b| a.key.kid() == b.key.kid());
        let signer = keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .map(|k| k.key.clone())
            .ok_or_else(|| KeyError::Empty("the key set".into()))?;
        let published: Vec<_> = keys
            .iter()
            .filter(|k| k.state.is_published())
            .map(|k| k.key.jwk())
            .collect();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": published }))
            .map_err(|e| KeyError::Generation(e.to_string()))?;
        let hash = digest::digest(&digest::SHA256, &jwks);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
        Ok(KeySet {
            keys,
            signer,
            jwks: Bytes::from(jwks),
            etag,
        })
    }

    /// A set of keys held in memory only; the first signs and all are published.
    pub fn from_keys(keys: Vec<SigningKey>) -> Result<KeySet, KeyError> {
        let files: Vec<DirectoryKey> = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| DirectoryKey {
                key: Arc::new(key),
                file: PathBuf::new(),
                published_at: -(i as UnixTime),
            })
            .collect();
        let policy = Policy {
            publish_ahead: 0,
            access_ttl: i64::MAX / 4,
            refresh_ttl: i64::MAX / 4,
            leeway: 0,
        };
        Self::assemble(&files, 0, &policy)
    }

    /// Loads the keys of `dir`; if there is none, generates an RSA-2048 key there. An existing
    /// key is never overwritten, and a file that is not a usable key stops start-up.
    pub fn load_or_generate(
        dir: &Path,
        now: UnixTime,
        policy: &Policy,
    ) -> Result<LoadedKeys, KeyError> {
        let mut files = read_dir(dir)?;
        let mut generated = None;
        if files.is_empty() {
            match generate_first(dir)? {
                Some(first) => {
                    generated = Some(first.file.clone());
                    files.push(first);
                }
                // Another replica sharing the directory made the first key a moment ago.
                None => files = read_dir(dir)?,
            }
        }
        Ok(LoadedKeys {
            keys: KeySet::assemble(&files, now, policy)?,
            generated,
        })
    }

    pub fn signer(&self) -> &Arc<SigningKey> {
        &self.signer
    }

    /// A key that may have signed a live token.
    pub fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .find(|k| k.key.kid() == kid)
            .map(|k| &k.key)
    }

    /// The loaded keys, newest first.
    pub fn keys(&self) -> &[LoadedKey] {
        &self.keys
    }

    /// The algorithms of the published keys.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algorithms: Vec<Algorithm> = self
            .keys
            .iter()
            .filter(|k| k.state.is_published())
            .map(|k| k.key.algorithm())
            .collect();
        algorithms.sort();
        algorithms.dedup();
        algorithms
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

/// The name of the key a fresh installation makes for itself: published at time 0, so it
/// signs at once.
const FIRST_KEY: &str = "key-0-first.pem";

/// Makes the first key of an empty directory. Replicas that start together on one shared
/// directory race here; the key is written aside and linked into place, which only one of them
/// can do, so they all end up with the same key. `None` when another process won.
fn generate_first(dir: &Path) -> Result<Option<DirectoryKey>, KeyError> {
    let (key, pem) = SigningKey::generate_rsa(2048)?;
    Ok(place(dir, FIRST_KEY, &pem)?.map(|file| DirectoryKey {
        key: Arc::new(key),
        file,
        published_at: 0,
    }))
}

/// Generates a key in `dir` (created with mode 0700 if missing), written with mode 0600 and
/// published from `now`.
pub fn generate_in(
    dir: &Path,
    algorithm: Algorithm,
    bits: usize,
    now: UnixTime,
) -> Result<DirectoryKey, KeyError> {
    let (key, pem) = SigningKey::generate(algorithm, bits)?;
    let short_kid: String = key.kid().chars().take(8).collect();
    let name = format!("key-{now}-{short_kid}.pem");
    let file = place(dir, &name, &pem)?
        .ok_or_else(|| KeyError::Refused(format!("{name} exists already")))?;
    Ok(DirectoryKey {
        key: Arc::new(key),
        file,
        published_at: now,
    })
}

/// Starts a scheduled rotation: when the newest key is `every` seconds old, publishes a new
/// RS256 key. Replicas run this concurrently on one directory: the new key's name and time are
/// the next whole minute, so all replicas that decide within one minute race for one name and
/// one of them wins. The time is never in the past, so the key is still published for the full
/// JWKS max-age before it signs. Returns the new key if this process made it.
pub fn rotate_on_schedule(
    dir: &Path,
    every: i64,
    now: UnixTime,
) -> Result<Option<DirectoryKey>, KeyError> {
    let files = read_dir(dir)?;
    let newest = files.iter().map(|f| f.published_at).max().unwrap_or(0);
    if files.is_empty() || newest + every > now {
        return Ok(None);
    }
    let slot = now - now.rem_euclid(60) + 60;
    let (key, pem) = SigningKey::generate_rsa(2048)?;
    Ok(
        place(dir, &format!("key-{slot}-scheduled.pem"), &pem)?.map(|file| DirectoryKey {
            key: Arc::new(key),
            file,
            published_at: slot,
        }),
    )
}

/// Writes a private key file so that nobody ever sees it half written (replicas poll the
/// directory) and nothing is overwritten: written aside with mode 0600, then linked into place.
/// `None` when `name` exists already.
fn place(dir: &Path, name: &str, pem: &str) -> Result<Option<PathBuf>, KeyError> {
    create_private_dir(dir)?;
    let staging = dir.join(format!(".{}.tmp", crate::domain::random_token(9)));
    write_private(&staging, pem.as_bytes())?;
    let file = dir.join(name);
    let linked = fs::hard_link(&staging, &file);
    fs::remove_file(&staging)?;
    match linked {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the file of key `kid`. Refused while tokens it signed may be live (its state is not
/// `retired`), unless `force`.
pub fn retire(
    dir: &Path,
    kid: &str,
    now: UnixTime,
    policy: &Policy,
    force: bool,
) -> Result<PathBuf, KeyError> {
    let files = read_dir(dir)?;
    let times: Vec<UnixTime> = files.iter().map(|f| f.published_at).collect();
    let states = lifecycle(&times, now, policy);
    let (file, state) = files
        .iter()
        .zip(states)
        .find(|(f, _)| f.key.kid() == kid)
        .ok_or_else(|| KeyError::Refused(format!("no key {kid} in {}", dir.display())))?;
    match state {
        KeyState::Active | KeyState::Next => {
            return Err(KeyError::Refused(format!(
                "key {kid} is {}: rotate to a newer key first",
                state.as_str()
            )));
        }
        KeyState::Retiring { .. } if !force => {
            return Err(KeyError::Refused(format!(
                "tokens signed by key {kid} may still be live; retiring it now makes them fail (use --force to do it anyway)"
            )));
        }
        _ => {}
    }
    fs::remove_file(&file.file)?;
    Ok(file.file.clone())
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

/// Every `*.pem` key of `dir` with its publication time.
pub fn read_dir(dir: &Path) -> Result<Vec<DirectoryKey>, KeyError> {
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
        let key = SigningKey::from_pem(&text).map_err(unreadable)?;
        keys.push(DirectoryKey {
            key: Arc::new(key),
            published_at: published_at(&path),
            file: path,
        });
    }
    Ok(keys)
}

/// The publication time: from a `key-<unix>-*.pem` name, else the file's modification time.
fn published_at(path: &Path) -> UnixTime {
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

    const POLICY: Policy = Policy {
        publish_ahead: 300,
        access_ttl: 900,
        refresh_ttl: 86_400,
        leeway: 60,
    };

    fn kids(set: &KeySet) -> Vec<String> {
        let jwks: serde_json::Value = serde_json::from_slice(&set.jwks()).unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn an_empty_directory_gets_one_new_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let loaded = KeySet::load_or_generate(&keys_dir, 1_700_000_000, &POLICY).unwrap();
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
                std::thread::spawn(move || KeySet::load_or_generate(&path, 1, &POLICY).unwrap())
            })
            .collect();
        let loaded: Vec<LoadedKeys> = starts.into_iter().map(|s| s.join().unwrap()).collect();
        let signers: std::collections::HashSet<String> = loaded
            .iter()
            .map(|l| l.keys.signer().kid().to_owned())
            .collect();
        assert_eq!(signers.len(), 1);
        assert_eq!(loaded.iter().filter(|l| l.generated.is_some()).count(), 1);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no staging files are left"
        );
    }

    #[test]
    fn an_existing_key_is_loaded_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeySet::load_or_generate(dir.path(), 1, &POLICY).unwrap();
        let second = KeySet::load_or_generate(dir.path(), 2, &POLICY).unwrap();
        assert!(second.generated.is_none());
        assert_eq!(first.keys.signer().kid(), second.keys.signer().kid());
    }

    #[test]
    fn a_rotated_key_is_published_first_and_signs_after_the_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeySet::load_or_generate(dir.path(), 1_000, &POLICY).unwrap();
        let old = first.keys.signer().kid().to_owned();
        let new = generate_in(dir.path(), Algorithm::ES256, 0, 1_000).unwrap();
        let files = read_dir(dir.path()).unwrap();
        let soon = KeySet::assemble(&files, 1_100, &POLICY).unwrap();
        assert_eq!(soon.signer().kid(), old);
        assert!(kids(&soon).contains(&new.key.kid().to_owned()));
        let later = KeySet::assemble(&files, 1_300, &POLICY).unwrap();
        assert_eq!(later.signer().kid(), new.key.kid());
        assert!(kids(&later).contains(&old), "the old key stays published");
        let much_later = KeySet::assemble(&files, 1_300 + 86_460, &POLICY).unwrap();
        assert!(much_later.find(&old).is_none(), "a retired key is gone");
        assert_eq!(much_later.algorithms(), vec![Algorithm::ES256]);
    }

    #[test]
    fn retiring_a_key_is_refused_while_its_tokens_may_live() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeySet::load_or_generate(dir.path(), 1_000, &POLICY).unwrap();
        let old = first.keys.signer().kid().to_owned();
        let new = generate_in(dir.path(), Algorithm::RS256, 2048, 1_000).unwrap();
        assert!(retire(dir.path(), new.key.kid(), 1_000, &POLICY, false).is_err());
        assert!(retire(dir.path(), &old, 1_400, &POLICY, false).is_err());
        retire(dir.path(), &old, 1_400, &POLICY, true).unwrap();
        assert_eq!(read_dir(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn scheduled_rotation_adds_one_key_when_the_newest_is_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        generate_in(dir.path(), Algorithm::RS256, 2048, 1_000).unwrap();
        assert!(
            rotate_on_schedule(dir.path(), 3_600, 4_000)
                .unwrap()
                .is_none()
        );
        let added = rotate_on_schedule(dir.path(), 3_600, 4_630)
            .unwrap()
            .expect("a new key");
        assert_eq!(
            added.published_at, 4_680,
            "the next whole minute, never the past"
        );
        assert!(
            rotate_on_schedule(dir.path(), 3_600, 4_640)
                .unwrap()
                .is_none(),
            "one per period"
        );
        let files = read_dir(dir.path()).unwrap();
        let set = KeySet::assemble(&files, 4_640, &POLICY).unwrap();
        assert_ne!(
            set.signer().kid(),
            added.key.kid(),
            "it is published before it signs"
        );
    }

    #[test]
    fn a_corrupt_key_file_stops_loading_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("broken.pem"), "not a key").unwrap();
        let error = KeySet::load_or_generate(dir.path(), 1, &POLICY)
            .unwrap_err()
            .to_string();
        assert!(error.contains("broken.pem"), "{error}");
    }

    #[test]
    fn the_etag_changes_with_the_published_keys() {
        let dir = tempfile::tempdir().unwrap();
        let before = KeySet::load_or_generate(dir.path(), 100, &POLICY)
            .unwrap()
            .keys;
        generate_in(dir.path(), Algorithm::RS256, 2048, 200).unwrap();
        let after = KeySet::assemble(&read_dir(dir.path()).unwrap(), 200, &POLICY).unwrap();
        assert_ne!(before.etag(), after.etag());
    }
}
