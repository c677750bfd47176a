//! What a revocation reaches and how resource servers learn of it: the two namespaces of
//! accounts, their cut-offs, and the events of the revocation feed.

use serde::{Deserialize, Serialize};

use super::FAMILY_EVENT_MARGIN;
use crate::domain::{ClientId, UnixTime, Username};

/// Whose tokens a subject-wide revocation reaches. Users and clients are separate namespaces in
/// the store and in the feed: a user's revocation reaches the tokens issued to that user (their
/// `sub`), a client's reaches every token issued through that client (its `client_id`), its own
/// `client_credentials` tokens included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(Username),
    Client(ClientId),
}

impl Subject {
    /// The username or client id.
    pub fn name(&self) -> &str {
        match self {
            Subject::User(name) => name.as_str(),
            Subject::Client(id) => id.as_str(),
        }
    }

    pub fn kind(&self) -> SubjectKind {
        match self {
            Subject::User(_) => SubjectKind::User,
            Subject::Client(_) => SubjectKind::Client,
        }
    }

    /// The feed event that tells resource servers about a revocation of this subject.
    pub fn event(&self, not_before: UnixTime, exp: UnixTime) -> RevocationEvent {
        match self {
            Subject::User(name) => RevocationEvent::Subject {
                sub: name.to_string(),
                not_before,
                exp,
            },
            Subject::Client(id) => RevocationEvent::Client {
                client_id: id.to_string(),
                not_before,
                exp,
            },
        }
    }
}

/// Users or clients: the two kinds of account, whose names never overlap (compared without
/// regard to ASCII case), so that no `sub` ever means both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    User,
    Client,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Client => "client",
        }
    }

    pub fn parse(value: &str) -> Option<SubjectKind> {
        match value {
            "user" => Some(SubjectKind::User),
            "client" => Some(SubjectKind::Client),
            _ => None,
        }
    }
}

/// The cut-off a new subject-wide revocation sets: the second after `now`, so that every token
/// issued so far dies (tokens carry whole seconds, so one issued earlier in this very second
/// must die too), and never below the cut-off in force.
///
/// A second revocation within the same second keeps the cut-off where it is; no token can have
/// been issued between the two, since an issuance that read the credentials after the first
/// waits for its cut-off and then checks that the records it read are unchanged (see
/// `oauth::cut_off`). So a burst of revocations never pushes an account's cut-off, and with it
/// the next login, further into the future.
pub fn next_not_before(now: UnixTime, in_force: Option<UnixTime>) -> UnixTime {
    now.saturating_add(1).max(in_force.unwrap_or(UnixTime::MIN))
}

/// A user's cut-offs: every token issued before `tokens` is dead (a password change, a
/// disable); access tokens issued before `access` are dead too (a change of roles ends the
/// access tokens that carry the old roles, not the sessions, which refresh into new ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCutOffs {
    pub tokens: Option<UnixTime>,
    pub access: Option<UnixTime>,
}

impl UserCutOffs {
    /// What an access token's `iat` must reach: the later of the two.
    pub fn for_access(&self) -> Option<UnixTime> {
        self.tokens.max(self.access)
    }
}

/// One entry of the revocation feed that resource servers follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RevocationEvent {
    /// A single access token, identified by its `jti`, is dead until `exp`.
    Token { jti: String, exp: UnixTime },
    /// Every token of a family (its refresh tokens and the access tokens whose `sid` names it).
    Family { fam: String, exp: UnixTime },
    /// Every token of a user (`sub`) issued before `not_before`.
    Subject {
        sub: String,
        not_before: UnixTime,
        exp: UnixTime,
    },
    /// Every token issued through a client (`client_id`) before `not_before`.
    Client {
        client_id: String,
        not_before: UnixTime,
        exp: UnixTime,
    },
}

impl RevocationEvent {
    /// Until when the feed keeps the event: [`FAMILY_EVENT_MARGIN`] past the expiry of the last
    /// token it concerns (a family's `exp` has it already), since a verifier accepts a token
    /// for its clock leeway past `exp`, and one that starts or resynchronises then must still
    /// learn that the token is revoked.
    pub fn expires_at(&self) -> UnixTime {
        match self {
            RevocationEvent::Family { exp, .. } => *exp,
            RevocationEvent::Token { exp, .. }
            | RevocationEvent::Subject { exp, .. }
            | RevocationEvent::Client { exp, .. } => exp.saturating_add(FAMILY_EVENT_MARGIN),
        }
    }
}

/// A page of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    pub events: Vec<(String, RevocationEvent)>,
    /// The cursor to ask with next: the last event's, or the one asked with if there was none.
    pub next_cursor: String,
}
