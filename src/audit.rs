//! The audit trail: one structured `tracing` event (target `audit`) per security-relevant
//! action, saying who did what, through which client, to whom, from which address and under
//! which request id. Only names and ids go in, never a password, secret or token, so that the
//! trail can be shipped and kept wherever the logs go.

use crate::domain::Username;
use crate::metrics::AuditCounter;

/// Where a request came from, as far as the service can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's IP address: the peer's, or behind a trusted proxy the hop it reported in
    /// `X-Forwarded-For` (see `security::TrustedProxies`); never what the client wrote itself.
    pub source: Option<String>,
    /// The request's `X-Request-Id`, as the caller or the request-id middleware set it.
    pub request_id: Option<String>,
}

impl Origin {
    /// An origin from untrusted header text: the request id is cut to 128 printable ASCII
    /// characters, so a caller can neither flood the log nor forge lines in a text log.
    pub fn new(source: Option<String>, request_id: Option<&str>) -> Origin {
        let request_id = request_id
            .map(|id| {
                id.chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(128)
                    .collect::<String>()
            })
            .filter(|id| !id.is_empty());
        Origin { source, request_id }
    }
}

/// Who makes a change to users or clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user with role `admin`, through the admin API.
    Admin { username: Username, origin: Origin },
    /// Someone registering an account for themselves (`POST /users`).
    Anonymous(Origin),
    /// The command line or start-up, on the machine itself; the name says which.
    Operator(&'static str),
}

impl Actor {
    /// The `who` of the audit event.
    pub fn name(&self) -> &str {
        match self {
            Actor::Admin { username, .. } => username.as_str(),
            Actor::Anonymous(_) => "anonymous",
            Actor::Operator(name) => name,
        }
    }

    pub fn origin(&self) -> Origin {
        match self {
            Actor::Admin { origin, .. } | Actor::Anonymous(origin) => origin.clone(),
            Actor::Operator(_) => Origin::default(),
        }
    }

    /// Whether the actor is the user `username` (an admin about to lock themselves out).
    pub fn is_user(&self, username: &Username) -> bool {
        matches!(self, Actor::Admin { username: me, .. } if me == username)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Login,
    LoginFailed,
    ClientAuthFailed,
    TokenIssued,
    TokenExchanged,
    Refresh,
    RefreshRepeated,
    RefreshReuseDetected,
    /// An authorization code presented a second time: the session it opened is revoked.
    CodeReuseDetected,
    /// A live or spent authorization code presented without its client, redirect URI or
    /// verifier: refused, nothing revoked, but the code has been seen by someone else.
    CodeMisused,
    Revoke,
    Logout,
    AdminDenied,
    RateLimited,
    UserCreated,
    UserRolesChanged,
    UserDisabled,
    UserEnabled,
    PasswordChanged,
    ClientCreated,
    ClientUpdated,
    ClientSecretRotated,
    ClientDeleted,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Login => "login",
            Event::LoginFailed => "login_failed",
            Event::ClientAuthFailed => "client_auth_failed",
            Event::TokenIssued => "token_issued",
            Event::TokenExchanged => "token_exchanged",
            Event::Refresh => "refresh",
            Event::RefreshRepeated => "refresh_repeated",
            Event::RefreshReuseDetected => "refresh_reuse_detected",
            Event::CodeReuseDetected => "code_reuse_detected",
            Event::CodeMisused => "code_misused",
            Event::Revoke => "revoke",
            Event::Logout => "logout",
            Event::AdminDenied => "admin_denied",
            Event::RateLimited => "rate_limited",
            Event::UserCreated => "user_created",
            Event::UserRolesChanged => "user_roles_changed",
            Event::UserDisabled => "user_disabled",
            Event::UserEnabled => "user_enabled",
            Event::PasswordChanged => "password_changed",
            Event::ClientCreated => "client_created",
            Event::ClientUpdated => "client_updated",
            Event::ClientSecretRotated => "client_secret_rotated",
            Event::ClientDeleted => "client_deleted",
        }
    }

    /// The counter in /metrics this event adds to, if any.
    fn counter(self) -> Option<AuditCounter> {
        Some(match self {
            Event::LoginFailed => AuditCounter::FailedLogin,
            Event::ClientAuthFailed => AuditCounter::ClientAuthFailure,
            Event::Refresh => AuditCounter::RefreshRotated,
            Event::RefreshRepeated => AuditCounter::RefreshRepeated,
            Event::RefreshReuseDetected => AuditCounter::ReuseDetected,
            Event::Revoke => AuditCounter::RevokedByRequest,
            Event::Logout => AuditCounter::RevokedByLogout,
            _ => return None,
        })
    }

    /// Failures and attacks are warnings, so that a `warn` filter still keeps them.
    fn is_alarm(self) -> bool {
        matches!(
            self,
            Event::LoginFailed
                | Event::ClientAuthFailed
                | Event::RefreshReuseDetected
                | Event::CodeReuseDetected
                | Event::CodeMisused
                | Event::AdminDenied
                | Event::RateLimited
        )
    }
}

/// One audit event. `who` is the actor (a username, a client id, or an operator name);
/// `subject` is whom the action concerns when that is someone else (the user an admin
/// disabled, the owner of a revoked token).
pub struct Record<'a> {
    pub what: Event,
    pub who: &'a str,
    pub client_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub origin: &'a Origin,
    /// For `rate_limited`: which limit refused, and the seconds until it lets the next try.
    pub limit: Option<(&'static str, u64)>,
    /// For `token_exchanged`: the `act` chain, space-separated, the current actor first.
    pub actors: Option<&'a str>,
    /// For `token_exchanged`: the `aud` of the issued token.
    pub audience: Option<&'a str>,
}

impl<'a> Record<'a> {
    pub fn new(what: Event, who: &'a str, origin: &'a Origin) -> Record<'a> {
        Record {
            what,
            who,
            client_id: None,
            subject: None,
            origin,
            limit: None,
            actors: None,
            audience: None,
        }
    }

    /// The client the action went through.
    pub fn client(self, client_id: &'a str) -> Record<'a> {
        Record {
            client_id: Some(client_id),
            ..self
        }
    }

    /// Whom the action concerns, when that is not the actor.
    pub fn subject(self, subject: &'a str) -> Record<'a> {
        Record {
            subject: Some(subject),
            ..self
        }
    }

    /// The delegation chain of an exchanged token, the current actor first.
    pub fn actors(self, actors: &'a str) -> Record<'a> {
        Record {
            actors: Some(actors),
            ..self
        }
    }

    /// The audience of the token issued.
    pub fn audience(self, audience: &'a str) -> Record<'a> {
        Record {
            audience: Some(audience),
            ..self
        }
    }

    /// The limit that refused the attempt (`rate_limited`), and its `Retry-After`.
    pub fn limit(self, name: &'static str, retry_after: u64) -> Record<'a> {
        Record {
            limit: Some((name, retry_after)),
            ..self
        }
    }

    /// Writes the event to the log and counts it in the metrics.
    pub fn emit(&self) {
        if let Some(counter) = self.what.counter() {
            crate::metrics::audit_event(counter);
        }
        // Names can come straight from a failed login; bound them and drop control characters.
        let who = printable(self.who);
        let subject = self.subject.map(printable);
        let client_id = self.client_id.map(printable);
        let what = self.what.as_str();
        let source = self.origin.source.as_deref();
        let request_id = self.origin.request_id.as_deref();
        let (limit, retry_after) = self.limit.unzip();
        // Actors are client ids, the chain at most a few of them: bounded like the names.
        let actors = self.actors.map(|a| {
            a.chars()
                .filter(|c| !c.is_control())
                .take(2048)
                .collect::<String>()
        });
        let audience = self.audience.map(printable);
        if self.what.is_alarm() {
            tracing::warn!(target: "audit", what, who, client_id, subject, source, request_id, limit, retry_after, "{what}");
        } else {
            tracing::info!(target: "audit", what, who, client_id, subject, actors, audience, source, request_id, "{what}");
        }
    }
}

/// Records a change to users or clients made by `actor`.
pub fn change(actor: &Actor, what: Event, subject: &str) {
    let origin = actor.origin();
    Record::new(what, actor.name(), &origin)
        .subject(subject)
        .emit();
}

fn printable(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_and_stripped_of_control_characters() {
        let origin = Origin::new(None, Some("abc\n\u{1b}[31mdef"));
        assert_eq!(origin.request_id.as_deref(), Some("abc[31mdef"));
        let long = "x".repeat(500);
        assert_eq!(
            Origin::new(None, Some(&long)).request_id.unwrap().len(),
            128
        );
        assert_eq!(Origin::new(None, Some(" \t")).request_id, None);
    }

    #[test]
    fn an_admin_is_only_themselves() {
        let alice = Username::parse("alice").unwrap();
        let admin = Actor::Admin {
            username: alice.clone(),
            origin: Origin::default(),
        };
        assert!(admin.is_user(&alice));
        assert!(!admin.is_user(&Username::parse("bob").unwrap()));
        assert!(!Actor::Operator("alice").is_user(&alice));
    }
}
