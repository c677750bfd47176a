//! Which grants the registered clients use, for the metadata document: the `password` grant
//! is advertised only while some client has it (RFC 9700 §2.4 keeps it to first-party
//! clients). Clients change through the admin API, the CLI and other replicas, so the answer
//! is cached briefly rather than kept in step.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Authority;
use crate::domain::GrantType;

/// How long a computed list is served before the clients are read again.
const FRESH_FOR: Duration = Duration::from_secs(5);
/// How long the metadata waits for the store; it must keep serving when the store cannot.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// The cached list of grants to advertise.
#[derive(Default)]
pub struct GrantCatalog {
    cached: Mutex<Option<(Instant, Vec<GrantType>)>>,
}

impl GrantCatalog {
    fn fresh(&self) -> Option<Vec<GrantType>> {
        let cached = self.cached.lock().ok()?;
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, grants)| grants.clone())
    }

    fn last_known(&self) -> Option<Vec<GrantType>> {
        self.cached.lock().ok()?.as_ref().map(|(_, g)| g.clone())
    }

    fn remember(&self, grants: &[GrantType]) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((Instant::now(), grants.to_vec()));
        }
    }

    /// Drops the cached list, after a change this process made itself.
    pub fn forget(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }
}

impl Authority {
    /// The grants to list in the metadata, in [`GrantType::ALL`] order. `client_credentials`,
    /// `refresh_token`, `authorization_code` and token exchange are always offered; `password`
    /// only when a client has it.
    pub async fn advertised_grants(&self) -> Vec<GrantType> {
        if let Some(grants) = self.catalog.fresh() {
            return grants;
        }
        let read = tokio::time::timeout(STORE_TIMEOUT, self.store.list_clients()).await;
        let grants = match read {
            Ok(Ok(clients)) => grants_with(
                clients
                    .iter()
                    .any(|c| c.grants.contains(&GrantType::Password)),
            ),
            // The metadata keeps serving while the store is down or slow: the last answer, or
            // the safe one that offers no password grant, until the next try in FRESH_FOR.
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read clients for the metadata");
                self.catalog
                    .last_known()
                    .unwrap_or_else(|| grants_with(false))
            }
            Err(_) => {
                tracing::warn!("the store is too slow to read clients for the metadata");
                self.catalog
                    .last_known()
                    .unwrap_or_else(|| grants_with(false))
            }
        };
        self.catalog.remember(&grants);
        grants
    }

    /// Tells the catalog that clients changed here, so the metadata follows at once.
    pub fn clients_changed(&self) {
        self.catalog.forget();
    }
}

fn grants_with(password: bool) -> Vec<GrantType> {
    GrantType::ALL
        .into_iter()
        .filter(|g| password || *g != GrantType::Password)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_grant_is_listed_only_when_asked_for() {
        assert_eq!(grants_with(true), GrantType::ALL.to_vec());
        assert_eq!(
            grants_with(false),
            vec![
                GrantType::ClientCredentials,
                GrantType::RefreshToken,
                GrantType::AuthorizationCode,
                GrantType::TokenExchange
            ]
        );
    }

    #[test]
    fn a_forgotten_catalog_has_nothing_fresh() {
        let catalog = GrantCatalog::default();
        catalog.remember(&[GrantType::Password]);
        assert_eq!(catalog.fresh(), Some(vec![GrantType::Password]));
        catalog.forget();
        assert_eq!(catalog.fresh(), None);
    }
}
