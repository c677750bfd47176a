//! Users and clients as operators, administrators and the registration endpoint manage them.
//! The CLI and the HTTP API both call these, so a rule holds however a record is changed, and
//! every change is audited with who made it.

mod bootstrap;
mod clients;
mod users;

pub use bootstrap::{Bootstrapped, bootstrap_admin};
pub use clients::{
    ClientChanges, ClientSpec, RegisteredClient, add_client, auth_method, check_reserved_audiences,
    delete_client, get_client, list_clients, rotate_secret, update_client,
};
pub use users::{
    HashSurvey, ImportedUser, UserChanges, add_user, get_user, import_user, list_users,
    password_scheme, set_password, survey_hashes, update_user,
};

use crate::audit::Actor;
use crate::configuration::TokenSettings;
use crate::domain::{UnixTime, now};
use crate::error::ServiceError;
use crate::store::{Store, StoreError, Subject};

/// A change to users or clients: the store it goes to, who makes it, and when.
pub struct Change<'a> {
    pub store: &'a dyn Store,
    pub by: &'a Actor,
    pub now: UnixTime,
}

/// One page of a listing in name order, and the cursor for the next page (`None` on the
/// last one).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;
/// The largest page served at once.
pub const MAX_PAGE: usize = 500;

/// A page size as asked for, checked.
pub fn page_size(limit: Option<usize>) -> Result<usize, ServiceError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(ServiceError::InvalidRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        ))),
    }
}

/// Cuts `items` (read with one to spare) to `limit` and names the cursor of the next page.
fn paginate<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more.then(|| items.last().map(&key)).flatten();
    Page { items, next }
}

/// Every token of `subject` issued so far dies, in this service, in introspection and, through
/// the revocation feed, at resource servers; remembered until the longest-lived such token has
/// expired. Called after the credential change it accompanies is stored, with the clock read
/// then: an issuance that read the old credential dates its tokens before the cut-off.
async fn revoke_subject(
    store: &dyn Store,
    tokens: &TokenSettings,
    subject: &Subject,
) -> Result<UnixTime, ServiceError> {
    let lifetime = tokens.access_ttl.max(tokens.refresh_ttl);
    Ok(store.revoke_subject(subject, now(), lifetime).await?)
}

fn invalid(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::InvalidRequest(error.to_string())
}

fn conflict_or(error: StoreError, message: &str) -> ServiceError {
    match error {
        StoreError::Conflict => ServiceError::Conflict(message.into()),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_outside_one_to_the_maximum_are_refused() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(Some(MAX_PAGE)).unwrap(), MAX_PAGE);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(MAX_PAGE + 1)).is_err());
    }

    #[test]
    fn a_page_names_a_next_cursor_only_when_more_items_follow() {
        let full = paginate(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(full.items, vec![1, 2]);
        assert_eq!(full.next.as_deref(), Some("2"));
        let last = paginate(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next, None);
    }
}
