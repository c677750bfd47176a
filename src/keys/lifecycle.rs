//! Key states as a pure function of the keys' publication times, the time, and the policy.
//!
//! Nothing is stored but when each key was published (its file's name says so), so every
//! replica that reads the same directory with a synchronised clock reaches the same states
//! without talking to the others, and rotation needs no coordinator:
//!
//! - a key becomes **active** (signs) once it has been published for the JWKS max-age, so
//!   every resource server has seen it before the first token it signs arrives; the newest such
//!   key wins;
//! - a key newer than the active one is **next**: published, signing nothing yet;
//! - a key older than the active one is **retiring** from the moment its successor became
//!   active: published while access tokens it signed may live, and kept by the issuer for the
//!   refresh tokens it signed until they expire;
//! - after that it is **retired**: neither published nor loaded.

use crate::domain::UnixTime;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Active,
    /// Signs nothing; `published` says whether the JWKS still lists it.
    Retiring {
        published: bool,
    },
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring { .. } => "retiring",
            KeyState::Retired => "retired",
        }
    }

    /// Listed in the JWKS.
    pub fn is_published(self) -> bool {
        matches!(
            self,
            KeyState::Next | KeyState::Active | KeyState::Retiring { published: true }
        )
    }

    /// Kept in memory to verify the tokens it signed.
    pub fn is_loaded(self) -> bool {
        !matches!(self, KeyState::Retired)
    }
}

/// The times that drive the lifecycle, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a new key is published before it signs: the JWKS `max-age`, counted from when
    /// the last replica has it (see [`Policy::from_settings`]).
    pub publish_ahead: i64,
    /// The access-token lifetime: how long a retiring key stays in the JWKS.
    pub access_ttl: i64,
    /// The refresh-token lifetime: how long the issuer keeps a retiring key.
    pub refresh_ttl: i64,
    /// Clock skew allowed for when deciding a key may go.
    pub leeway: i64,
}

impl Policy {
    /// The lifecycle's times, from the JWKS max-age and the token lifetimes. A key's time is
    /// when its file was written, and a replica publishes it at its next reading of the
    /// directory, up to `keys.reload_interval` later: a JWKS without it may be served until
    /// then and cached for a `max-age` after, so the key signs only once both have passed.
    pub fn from_settings(settings: &crate::configuration::Settings) -> Policy {
        Policy {
            publish_ahead: settings
                .keys
                .jwks_max_age
                .saturating_add(settings.keys.reload_interval) as i64,
            access_ttl: settings.tokens.access_ttl as i64,
            refresh_ttl: settings.tokens.refresh_ttl as i64,
            // Clock skew between replicas and resource servers: a minute, or less where keys
            // are cached for less than that.
            leeway: settings.keys.jwks_max_age.min(60) as i64,
        }
    }
}

/// The state of each key at `now`, in the order given. `published_at` holds each key's
/// publication time; the first key a fresh installation makes is published at 0, so it signs at
/// once.
pub fn lifecycle(published_at: &[UnixTime], now: UnixTime, policy: &Policy) -> Vec<KeyState> {
    let mut order: Vec<usize> = (0..published_at.len()).collect();
    order.sort_by_key(|&i| (published_at[i], i));
    let ready = |i: usize| published_at[i] + policy.publish_ahead <= now;
    // The newest key that has been published long enough; with none, the oldest key, so that
    // a service always has a signer.
    let Some(active_rank) = order
        .iter()
        .rposition(|&i| ready(i))
        .or((!order.is_empty()).then_some(0))
    else {
        return Vec::new();
    };
    let mut states = vec![KeyState::Retired; published_at.len()];
    for (rank, &i) in order.iter().enumerate() {
        states[i] = if rank == active_rank {
            KeyState::Active
        } else if rank > active_rank {
            KeyState::Next
        } else {
            // Retiring since its successor became active.
            let successor = order[rank + 1];
            let since = published_at[successor] + policy.publish_ahead;
            let age = now - since;
            if age < policy.refresh_ttl + policy.leeway {
                KeyState::Retiring {
                    published: age < policy.access_ttl + policy.leeway,
                }
            } else {
                KeyState::Retired
            }
        };
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_signs_once_every_replica_has_published_it_for_a_whole_max_age() {
        let mut settings = crate::configuration::Settings::default();
        settings.keys.jwks_max_age = 300;
        settings.keys.reload_interval = 10;
        let policy = Policy::from_settings(&settings);
        assert_eq!(policy.publish_ahead, 310);
        let (old, new) = (0, 1_000_000);
        assert_eq!(
            lifecycle(&[old, new], new + 309, &policy)[1],
            KeyState::Next,
            "a replica that read the directory just before the key was written published it \
             only 299 s ago"
        );
        assert_eq!(
            lifecycle(&[old, new], new + 310, &policy)[1],
            KeyState::Active
        );
    }

    const POLICY: Policy = Policy {
        publish_ahead: 300,
        access_ttl: 900,
        refresh_ttl: 86_400,
        leeway: 60,
    };

    fn at(published: &[UnixTime], now: UnixTime) -> Vec<KeyState> {
        lifecycle(published, now, &POLICY)
    }

    #[test]
    fn the_first_key_of_a_fresh_installation_signs_at_once() {
        assert_eq!(at(&[0], 1_000), vec![KeyState::Active]);
    }

    #[test]
    fn a_lone_key_signs_even_before_its_publication_period_is_over() {
        assert_eq!(at(&[1_000], 1_010), vec![KeyState::Active]);
    }

    #[test]
    fn a_new_key_is_published_for_the_jwks_max_age_before_it_signs() {
        let keys = [0, 10_000];
        assert_eq!(at(&keys, 10_000), vec![KeyState::Active, KeyState::Next]);
        assert_eq!(at(&keys, 10_299), vec![KeyState::Active, KeyState::Next]);
        assert_eq!(
            at(&keys, 10_300),
            vec![KeyState::Retiring { published: true }, KeyState::Active]
        );
    }

    #[test]
    fn a_retiring_key_leaves_the_jwks_after_the_access_lifetime_and_memory_after_the_refresh_lifetime()
     {
        let keys = [0, 10_000];
        let since = 10_300;
        assert_eq!(
            at(&keys, since + 959)[0],
            KeyState::Retiring { published: true }
        );
        assert_eq!(
            at(&keys, since + 960)[0],
            KeyState::Retiring { published: false }
        );
        assert_eq!(
            at(&keys, since + 86_459)[0],
            KeyState::Retiring { published: false }
        );
        assert_eq!(at(&keys, since + 86_460)[0], KeyState::Retired);
    }

    #[test]
    fn two_rotations_in_a_row_retire_keys_from_their_successors_activation() {
        let keys = [0, 10_000, 10_100];
        assert_eq!(
            at(&keys, 10_350),
            vec![
                KeyState::Retiring { published: true },
                KeyState::Active,
                KeyState::Next
            ]
        );
        assert_eq!(
            at(&keys, 10_400),
            vec![
                KeyState::Retiring { published: true },
                KeyState::Retiring { published: true },
                KeyState::Active
            ]
        );
    }

    #[test]
    fn the_order_of_the_input_does_not_matter() {
        assert_eq!(
            at(&[10_000, 0], 10_300),
            vec![KeyState::Active, KeyState::Retiring { published: true }]
        );
    }

    #[test]
    fn no_keys_have_no_states() {
        assert!(at(&[], 1).is_empty());
    }
}
