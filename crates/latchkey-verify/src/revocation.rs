//! What the verifier knows of revocations: the state built from the issuer's feed, and the
//! checks each verification makes against it (a few hash lookups under a read lock).

use std::collections::HashMap;

use crate::AccessToken;

pub use latchkey_feed::{FeedEvent, RevocationFeed as FeedPage};

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
            FeedEvent::Token(e) => keep_latest(&mut self.tokens, e.jti, e.exp),
            FeedEvent::Family(e) => keep_latest(&mut self.families, e.fam, e.exp),
            FeedEvent::Subject(e) => {
                keep_latest_cut_off(&mut self.subjects, e.sub, e.not_before, e.exp);
            }
            FeedEvent::Client(e) => {
                keep_latest_cut_off(&mut self.clients, e.client_id, e.not_before, e.exp);
            }
            FeedEvent::Unknown => {}
        }
    }

    /// Whether the issuer revoked this token: its `jti`, its session, or the tokens of its user
    /// or of its clients issued before a point in time. A user's cut-off applies to users'
    /// tokens only, a client's to every token issued through it: its `client_id`, and for an
    /// exchanged token each actor of its `act` chain and its `subject_client_id`.
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
            || token.clients().any(|client| {
                self.clients
                    .get(client)
                    .is_some_and(|(not_before, _)| token.iat < *not_before)
            })
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

    use latchkey_feed::{ClientRevoked, FamilyRevoked, SubjectRevoked, TokenRevoked};

    fn revoked_token(jti: &str, exp: i64) -> FeedEvent {
        let (cursor, jti) = ("1".into(), jti.into());
        FeedEvent::Token(TokenRevoked { cursor, jti, exp })
    }

    fn revoked_family(fam: &str, exp: i64) -> FeedEvent {
        let (cursor, fam) = ("1".into(), fam.into());
        FeedEvent::Family(FamilyRevoked { cursor, fam, exp })
    }

    fn revoked_subject(sub: &str, not_before: i64, exp: i64) -> FeedEvent {
        let (cursor, sub) = ("1".into(), sub.into());
        FeedEvent::Subject(SubjectRevoked {
            cursor,
            sub,
            not_before,
            exp,
        })
    }

    fn revoked_client(client_id: &str, not_before: i64, exp: i64) -> FeedEvent {
        let (cursor, client_id) = ("1".into(), client_id.into());
        FeedEvent::Client(ClientRevoked {
            cursor,
            client_id,
            not_before,
            exp,
        })
    }

    fn token(jti: &str, sid: Option<&str>, sub: &str, iat: i64) -> AccessToken {
        AccessToken {
            subject: sub.into(),
            client_id: "web".into(),
            scopes: vec![],
            roles: vec![],
            is_user: true,
            sid: sid.map(str::to_owned),
            jti: jti.into(),
            actors: vec![],
            subject_client_id: None,
            audience: vec!["api".into()],
            iat,
            exp: iat + 900,
        }
    }

    #[test]
    fn each_kind_of_event_revokes_what_it_names_and_nothing_else() {
        let mut state = Revocations::default();
        state.apply(revoked_token("j1", 100));
        state.apply(revoked_family("f1", 100));
        state.apply(revoked_subject("bob", 50, 100));
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
        state.apply(revoked_token("old", 100));
        state.apply(revoked_token("new", 200));
        state.apply(revoked_subject("bob", 50, 100));
        state.prune(104, 5);
        assert_eq!(state.counts(), (2, 0, 1));
        state.prune(105, 5);
        assert_eq!(state.counts(), (1, 0, 0));
    }

    #[test]
    fn a_later_subject_event_moves_not_before_forward_only() {
        let mut state = Revocations::default();
        state.apply(revoked_subject("bob", 50, 100));
        state.apply(revoked_subject("bob", 40, 90));
        assert!(state.is_revoked(&token("j", None, "bob", 45)));
    }

    #[test]
    fn a_client_event_revokes_every_earlier_token_through_that_client_and_a_user_event_only_users_tokens()
     {
        let mut state = Revocations::default();
        state.apply(revoked_client("web", 50, 100));
        state.apply(revoked_subject("svc", 50, 100));
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
    fn a_client_event_reaches_an_exchanged_token_through_its_actors_and_the_client_it_began_with() {
        let mut exchanged = token("j1", None, "alice", 10);
        exchanged.client_id = "payments".into();
        exchanged.actors = vec!["payments".into(), "orders".into()];
        exchanged.subject_client_id = Some("web".into());
        for client in ["payments", "orders", "web"] {
            let mut state = Revocations::default();
            state.apply(revoked_client(client, 50, 100));
            assert!(state.is_revoked(&exchanged), "removal of {client}");
        }
        let mut state = Revocations::default();
        state.apply(revoked_client("billing", 50, 100));
        assert!(
            !state.is_revoked(&exchanged),
            "a client it never went through"
        );
    }

    #[test]
    fn an_event_of_a_kind_this_version_does_not_know_changes_nothing() {
        let page: FeedPage = serde_json::from_str(
            r#"{"events":[{"type":"session_group","cursor":"1","group":"x"}],
                "next_cursor":"1","poll_after":2}"#,
        )
        .unwrap();
        let mut state = Revocations::default();
        page.events.into_iter().for_each(|e| state.apply(e));
        assert!(state.is_empty());
    }
}
