//! The key set in force, swapped atomically when the directory or the clock moves it on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::lifecycle::Policy;
use super::set::{KeySet, read_dir, rotate_on_schedule};
use crate::domain::{UnixTime, now};

/// Shared by every request; readers never wait for a reload.
#[derive(Debug)]
pub struct KeyRing {
    current: ArcSwap<KeySet>,
    dir: PathBuf,
    policy: Policy,
    /// Seconds between scheduled rotations, if they are on.
    rotate_every: Option<i64>,
}

impl KeyRing {
    pub fn new(keys: KeySet, dir: PathBuf, policy: Policy, rotate_every: Option<i64>) -> KeyRing {
        KeyRing {
            current: ArcSwap::from_pointee(keys),
            dir,
            policy,
            rotate_every,
        }
    }

    /// A ring that never reloads, for keys held in memory only.
    pub fn fixed(keys: KeySet) -> KeyRing {
        let policy = Policy {
            publish_ahead: 0,
            access_ttl: 0,
            refresh_ttl: 0,
            leeway: 0,
        };
        Self::new(keys, PathBuf::new(), policy, None)
    }

    /// The key set in force.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Re-reads the directory and recomputes the states at `now`; swaps in the new set and
    /// returns true when what signs or what is published changed. A directory that cannot be
    /// read leaves the current set in force.
    pub fn reload(&self, now: UnixTime) -> bool {
        if let Some(every) = self.rotate_every {
            match rotate_on_schedule(&self.dir, every, now) {
                Ok(Some(added)) => {
                    tracing::info!(kid = %added.key.kid(), signs_from = added.published_at + self.policy.publish_ahead, "scheduled rotation: published a new key")
                }
                Ok(None) => {}
                // A read-only directory (a mounted secret) cannot rotate itself.
                Err(error) => tracing::warn!(%error, "scheduled rotation failed"),
            }
        }
        let next = match read_dir(&self.dir)
            .and_then(|files| KeySet::assemble(&files, now, &self.policy))
        {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, dir = %self.dir.display(), "cannot reload signing keys; keeping the current ones");
                return false;
            }
        };
        let current = self.current.load();
        let loaded = |set: &KeySet| {
            set.keys()
                .iter()
                .map(|k| (k.key.kid().to_owned(), k.state))
                .collect::<Vec<_>>()
        };
        if loaded(&current) == loaded(&next) {
            return false;
        }
        if current.signer().kid() != next.signer().kid() {
            tracing::info!(from = %current.signer().kid(), to = %next.signer().kid(), "a new key signs");
        }
        for key in next.keys() {
            let before = current.keys().iter().find(|k| k.key.kid() == key.key.kid());
            if before.is_none_or(|b| b.state != key.state) {
                tracing::info!(kid = %key.key.kid(), alg = key.key.algorithm().as_str(), state = key.state.as_str(), published = key.state.is_published(), "signing key state");
            }
        }
        for gone in current
            .keys()
            .iter()
            .filter(|k| next.find(k.key.kid()).is_none())
        {
            tracing::info!(kid = %gone.key.kid(), "signing key retired");
        }
        self.current.store(Arc::new(next));
        true
    }

    /// Reloads every `interval` until the task is dropped, so every replica picks up keys added
    /// to or removed from the shared directory, and state changes that come with time alone.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let ring = self.clone();
            // Reading and parsing key files is blocking work.
            let _ = tokio::task::spawn_blocking(move || ring.reload(now())).await;
        }
    }
}
