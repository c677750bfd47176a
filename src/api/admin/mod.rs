//! `/admin/users` and `/admin/clients`: user and client management for access tokens of users
//! who have role `admin` (read from the store on every request), and only for tokens minted
//! for the admin API: audience `admin.audience` and an admin scope (see `oauth::roles`).
//!
//! Resources and verbs: `GET` reads (lists page with `?after=&limit=` and answer a `next`
//! cursor), `POST` to a collection creates, `PATCH` changes the fields it names, `DELETE`
//! removes, and `POST` to a credential sub-resource (`.../password`, `.../secret`) replaces that
//! credential, which also revokes what the old one gave.

mod client_objects;
mod clients;
mod import;
mod users;

use std::sync::Arc;

use poem::Request;

use super::account::BearerToken;
use super::origin::origin;
use crate::accounts::Change;
use crate::audit::Actor;
use crate::domain::now;
use crate::error::ServiceError;
use crate::oauth::Authority;

/// The admin API: users, their import, then clients.
pub type AdminApi = (users::UsersApi, import::UsersImportApi, clients::ClientsApi);

pub fn api(authority: Arc<Authority>) -> AdminApi {
    let admin = Admin { authority };
    (
        users::UsersApi(admin.clone()),
        import::UsersImportApi(admin.clone()),
        clients::ClientsApi(admin),
    )
}

/// What every admin operation starts from.
#[derive(Clone)]
struct Admin {
    authority: Arc<Authority>,
}

impl Admin {
    /// The administrator behind the request, or `invalid_token` (401), `insufficient_scope` or
    /// `access_denied` (403).
    async fn caller(&self, req: &Request, auth: &BearerToken) -> Result<Actor, ServiceError> {
        Ok(self.caller_and_client(req, auth).await?.0)
    }

    /// The administrator, and the client their token was issued through.
    async fn caller_and_client(
        &self,
        req: &Request,
        auth: &BearerToken,
    ) -> Result<(Actor, String), ServiceError> {
        let origin = origin(req);
        let (username, client_id) = self
            .authority
            .authorize_admin(&auth.0.token, &origin, now())
            .await?;
        Ok((Actor::Admin { username, origin }, client_id))
    }

    fn change<'a>(&'a self, by: &'a Actor) -> Change<'a> {
        Change {
            store: self.authority.store().as_ref(),
            by,
            now: now(),
        }
    }
}
