//! What the verifier knows of revocations: the state built from the issuer's feed, and the
//! checks each verification makes against it (a few hash lookups under a read lock).

use std::collections::HashMap;

use serde::Deserialize;

use crate::AccessToken;

/// One event of `GET /oauth/revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent {
    /// One access token, by `jti`.
    Token { jti: String, exp: i64 },
    /// A session: every access token whose `sid` names the family.
    Family { fam: String, exp: i64 },
    /// Every token of the user `sub` issued before `not_before`.
    Subject {
        sub: String,
        not_before: i64,
        exp: i64,
    },
    /// Every token issued through `client_id` before `not_before`, users' tokens included.
    Client {
        client_id: String,
        not_before: i64,
        exp: i64,
    },
    /// A kind this version does not know; skipped.
    #[serde(other)]
    Unknown,
}

/// One page of the feed.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    pub next_cursor: String,
    pub poll_after: u64,
}

/// Revoked token ids, sessions and subjects, each remembered until no token it concerns can be
/// live (its `exp`), then pruned.
#[derive(Debug, Default, Clone)]
pub struct Revocations {
    tokens: HashMap<String, i64>,
    families: HashMap<String, i64>,
    /// A user's `sub` -> (not_before, exp)
    subjects: HashMap<String, (i64, i64)>,
    /// `client_id` -> (not_before, exp)
    clients: HashMap<String, (i64, i64)>,
}

impl Revocations {
    pub fn apply(&mut self, event: FeedEvent) {
        fn keep_latest(map: &mut HashMap<String, i64>, key: String, exp: i64) {
            let entry = map.entry(key).or_insert(exp);
            *entry = (*entry).max(exp);
        }
        fn keep_latest_cut_off(
            map: &mut HashMap<String, (i64, i64)>,
            key: String,
            not_before: i64,
            exp: i64,
        ) {
            let entry = map.entry(key).or_insert((not_before, exp));
            *entry = (entry.0.max(not_before), entry.1.max(exp));
        }
        match event {
            FeedEvent::Token { jti, exp } => keep_latest(&mut self.tokens, jti, exp),
            FeedEvent::Family { fam, exp } => keep_latest(&mut self.families, fam, exp),
            FeedEvent::Subject {
                sub,
                not_before,
                exp,
            } => keep_latest_cut_off(&mut self.subjects, sub, not_before, exp),
            FeedEvent::Client {
                client_id,
                not_before,
                exp,
            } => keep_latest_cut_off(&mut self.clients, client_id, not_before, exp),
            FeedEvent::Unknown => {}
        }
    }

    /// Whether the issuer revoked this token: its `jti`, its session, or the tokens of its user
    /// or of its client issued before a point in time. A user's cut-off applies to users'
    /// tokens only, a client's to every token with that `client_id`.
    pub fn is_revoked(&self, token: &AccessToken) -> bool {
        if self.is_empty() {
            return false;
        }
        self.tokens.contains_key(&token.jti)
            || token
                .sid
                .as_ref()
                .is_some_and(|sid| self.families.contains_key(sid))
            || token.is_user
                && self
                    .subjects
                    .get(&token.subject)
                    .is_some_and(|(not_before, _)| token.iat < *not_before)
            || self
                .clients
                .get(&token.client_id)
                .is_some_and(|(not_before, _)| token.iat < *not_before)
    }

    /// Forgets entries whose tokens have all expired by `now` (less `leeway`, the clock skew
    /// tolerated on `exp`).
    pub fn prune(&mut self, now: i64, leeway: i64) {
        let live = |exp: i64| exp.saturating_add(leeway) > now;
        self.tokens.retain(|_, exp| live(*exp));
        self.families.retain(|_, exp| live(*exp));
        self.subjects.retain(|_, (_, exp)| live(*exp));
        self.clients.retain(|_, (_, exp)| live(*exp));
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
            && self.families.is_empty()
            && self.subjects.is_empty()
            && self.clients.is_empty()
    }

    /// Entries held: (token ids, sessions, users and clients).
    pub fn counts(&self) -> (usize, usize, usize) {
        let cut_offs = self.subjects.len() + self.clients.len();
        (self.tokens.len(), self.families.len(), cut_offs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(jti: &str, sid: Option<&str>, sub: &str, iat: i64) -> AccessToken {
        AccessToken {
            subject: sub.into(),
            client_id: "web".into(),
            scopes: vec![],
            roles: vec![],
            is_user: true,
            sid: sid.map(str::to_owned),
            jti: jti.into(),
            audience: vec!["api".into()],
            iat,
            exp: iat + 900,
        }
    }

    #[test]
    fn each_kind_of_event_revokes_what_it_names_and_nothing_else() {
        let mut state = Revocations::default();
        state.apply(FeedEvent::Token {
            jti: "j1".into(),
            exp: 100,
        });
        state.apply(FeedEvent::Family {
            fam: "f1".into(),
            exp: 100,
        });
        state.apply(FeedEvent::Subject {
            sub: "bob".into(),
            not_before: 50,
            exp: 100,
        });
        assert!(state.is_revoked(&token("j1", None, "alice", 10)));
        assert!(state.is_revoked(&token("j2", Some("f1"), "alice", 10)));
        assert!(state.is_revoked(&token("j3", None, "bob", 49)));
        assert!(
            !state.is_revoked(&token("j4", None, "bob", 50)),
            "issued after the change"
        );
        assert!(!state.is_revoked(&token("j5", Some("f2"), "alice", 10)));
    }

    #[test]
    fn entries_are_pruned_once_their_tokens_have_expired() {
        let mut state = Revocations::default();
        state.apply(FeedEvent::Token {
            jti: "old".into(),
            exp: 100,
        });
        state.apply(FeedEvent::Token {
            jti: "new".into(),
            exp: 200,
        });
        state.apply(FeedEvent::Subject {
            sub: "bob".into(),
            not_before: 50,
            exp: 100,
        });
        state.prune(104, 5);
        assert_eq!(state.counts(), (2, 0, 1));
        state.prune(105, 5);
        assert_eq!(state.counts(), (1, 0, 0));
    }

    #[test]
    fn a_later_subject_event_moves_not_before_forward_only() {
        let mut state = Revocations::default();
        state.apply(FeedEvent::Subject {
            sub: "bob".into(),
            not_before: 50,
            exp: 100,
        });
        state.apply(FeedEvent::Subject {
            sub: "bob".into(),
            not_before: 40,
            exp: 90,
        });
        assert!(state.is_revoked(&token("j", None, "bob", 45)));
    }

    #[test]
    fn a_client_event_revokes_every_earlier_token_through_that_client_and_a_user_event_only_users_tokens()
     {
        let mut state = Revocations::default();
        state.apply(FeedEvent::Client {
            client_id: "web".into(),
            not_before: 50,
            exp: 100,
        });
        state.apply(FeedEvent::Subject {
            sub: "svc".into(),
            not_before: 50,
            exp: 100,
        });
        assert!(
            state.is_revoked(&token("j1", None, "alice", 49)),
            "a user's, through web"
        );
        assert!(!state.is_revoked(&token("j2", None, "alice", 50)));
        let mut own = token("j3", None, "svc", 10);
        own.is_user = false;
        own.client_id = "svc".into();
        assert!(
            !state.is_revoked(&own),
            "a client's own token is not the user's"
        );
        own.client_id = "web".into();
        assert!(state.is_revoked(&own));
    }

    #[test]
    fn unknown_event_kinds_are_skipped() {
        let page: FeedPage = serde_json::from_str(
            r#"{"events":[{"type":"session_group","cursor":"1","group":"x"},
                {"type":"token","cursor":"2","jti":"j","exp":5}],
                "next_cursor":"2","poll_after":2}"#,
        )
        .unwrap();
        assert_eq!(page.events[0], FeedEvent::Unknown);
        assert_eq!(
            page.events[1],
            FeedEvent::Token {
                jti: "j".into(),
                exp: 5
            }
        );
    }
}
