//! The bodies of `/admin/clients`: what administrators send to register and change clients, and
//! what they are shown (never a secret's hash; a secret only once, when it is made).

use std::collections::BTreeSet;

use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};

use crate::accounts;
use crate::api::examples;
use crate::domain::{GrantType, limits};
use crate::store::{ClientKeys, ClientRecord};

/// A grant type a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Grant {
    /// First-party clients only (RFC 9700 §2.4).
    Password,
    ClientCredentials,
    RefreshToken,
    /// Sign-in in a browser with PKCE; only for clients with redirect URIs.
    AuthorizationCode,
    /// RFC 8693 token exchange, for confidential clients: a service that holds a user's access
    /// token trades it for a narrower one naming the service as the actor.
    #[oai(rename = "token-exchange")]
    TokenExchange,
}

impl From<Grant> for GrantType {
    fn from(grant: Grant) -> Self {
        match grant {
            Grant::Password => GrantType::Password,
            Grant::ClientCredentials => GrantType::ClientCredentials,
            Grant::RefreshToken => GrantType::RefreshToken,
            Grant::AuthorizationCode => GrantType::AuthorizationCode,
            Grant::TokenExchange => GrantType::TokenExchange,
        }
    }
}

impl From<GrantType> for Grant {
    fn from(grant: GrantType) -> Self {
        match grant {
            GrantType::Password => Grant::Password,
            GrantType::ClientCredentials => Grant::ClientCredentials,
            GrantType::RefreshToken => Grant::RefreshToken,
            GrantType::AuthorizationCode => Grant::AuthorizationCode,
            GrantType::TokenExchange => Grant::TokenExchange,
        }
    }
}

pub(super) fn grant_set(grants: Vec<Grant>) -> BTreeSet<GrantType> {
    grants.into_iter().map(GrantType::from).collect()
}

/// A client as administrators see it; never the secret or its hash.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminClient {
    pub client_id: String,
    /// A public client has no secret and no keys.
    pub public: bool,
    /// `client_secret_basic` (HTTP Basic or `client_secret_post`), `private_key_jwt` (a
    /// client registered with keys) or `none` (a public client).
    pub token_endpoint_auth_method: String,
    /// The client's public keys, when registered as a JWK Set.
    #[oai(skip_serializing_if_is_none)]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its keys, when registered so.
    #[oai(skip_serializing_if_is_none)]
    pub jwks_uri: Option<String>,
    /// The grants the client may use.
    pub grants: Vec<Grant>,
    /// The scopes the client may request; a request may narrow them, never widen them.
    pub scopes: Vec<String>,
    /// Audiences the client may request besides the default one (`audience` or `resource`).
    pub audiences: Vec<String>,
    /// Where sign-in in a browser (`authorization_code`) may return to, compared exactly.
    pub redirect_uris: Vec<String>,
    /// A client of the operator's own: its users are not asked for consent.
    pub first_party: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl Example for AdminClient {
    fn example() -> Self {
        AdminClient {
            client_id: "reports".into(),
            public: false,
            token_endpoint_auth_method: "client_secret_basic".into(),
            jwks: None,
            jwks_uri: None,
            grants: vec![Grant::ClientCredentials],
            scopes: vec!["reports:read".into()],
            audiences: vec!["https://reports.example.com".into()],
            redirect_uris: Vec::new(),
            first_party: false,
            created_at: examples::ISSUED_AT,
        }
    }
}

impl From<ClientRecord> for AdminClient {
    fn from(client: ClientRecord) -> Self {
        let (jwks, jwks_uri) = match &client.keys {
            Some(ClientKeys::Jwks(set)) => (Some(set.clone()), None),
            Some(ClientKeys::JwksUri(uri)) => (None, Some(uri.clone())),
            None => (None, None),
        };
        AdminClient {
            client_id: client.client_id.to_string(),
            public: client.is_public(),
            token_endpoint_auth_method: accounts::auth_method(&client).to_owned(),
            jwks,
            jwks_uri,
            grants: client.grants.iter().map(|g| Grant::from(*g)).collect(),
            scopes: client.scope.iter().map(str::to_owned).collect(),
            audiences: client.audiences.into_iter().collect(),
            redirect_uris: client.redirect_uris.into_iter().collect(),
            first_party: client.first_party,
            created_at: client.created_at,
        }
    }
}

/// One page of clients, in client-id order.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ClientPage {
    pub clients: Vec<AdminClient>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<String>,
}

impl Example for ClientPage {
    fn example() -> Self {
        ClientPage {
            clients: vec![
                AdminClient::example(),
                AdminClient {
                    client_id: "web".into(),
                    public: true,
                    token_endpoint_auth_method: "none".into(),
                    jwks: None,
                    jwks_uri: None,
                    grants: vec![Grant::AuthorizationCode, Grant::RefreshToken],
                    scopes: vec!["read".into(), "write".into()],
                    audiences: Vec::new(),
                    redirect_uris: vec!["https://app.example.com/callback".into()],
                    first_party: true,
                    created_at: examples::ISSUED_AT - 86_400,
                },
            ],
            next: None,
        }
    }
}

/// A client to register. A member not listed here is refused (400), never ignored.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct NewClient {
    /// 1 to 64 letters, digits and `. _ - @`.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub client_id: String,
    /// A public client (no secret), such as a mobile or single-page app.
    #[oai(default)]
    pub public: bool,
    /// Without grants, a confidential client gets `client_credentials`; a public client must
    /// name its grants.
    #[oai(default)]
    pub grants: Vec<Grant>,
    /// The scopes the client may request: at most 32, each 1 to 64 printable ASCII
    /// characters other than space, quote and backslash (RFC 6749 §3.3).
    #[oai(default, validator(max_items = 32, min_length = 1, max_length = 64))]
    pub scopes: Vec<String>,
    /// Audiences the client may request besides the default one: at most 32, each 1 to 256
    /// printable ASCII characters other than space, quote and backslash (a URI or a name).
    #[oai(default, validator(max_items = 32, min_length = 1, max_length = 256))]
    pub audiences: Vec<String>,
    /// The client's public keys as an RFC 7517 JWK Set (RSA of 2048 bits or more, P-256 or
    /// Ed25519; no private or symmetric keys): the client gets no secret and authenticates
    /// with signed assertions (`private_key_jwt`, RFC 7523 §2.2).
    pub jwks: Option<serde_json::Value>,
    /// Instead of `jwks`: where the client publishes its JWK Set (https; http only for a
    /// loopback address), fetched and cached by the service.
    #[oai(validator(max_length = 2048))]
    pub jwks_uri: Option<String>,
    /// Where sign-in in a browser may return to: at most 16, each an https URL (http only for
    /// a loopback host) without a fragment, compared exactly. Without `grants`, a client with
    /// redirect URIs gets `authorization_code` and `refresh_token`.
    #[oai(default, validator(max_items = 16, min_length = 1, max_length = 2048))]
    pub redirect_uris: Vec<String>,
    /// A client of the operator's own: its users are not asked for consent.
    #[oai(default)]
    pub first_party: bool,
}

// The validators above and below state the limits of `domain::limits` in the document.
const _: () = assert!(
    limits::MAX_SCOPES == 32
        && limits::MAX_SCOPE_LEN == 64
        && limits::MAX_AUDIENCES == 32
        && limits::MAX_AUDIENCE_LEN == 256
);

impl Example for NewClient {
    fn example() -> Self {
        NewClient {
            client_id: "reports".into(),
            public: false,
            grants: vec![Grant::ClientCredentials],
            scopes: vec!["reports:read".into()],
            audiences: vec!["https://reports.example.com".into()],
            jwks: None,
            jwks_uri: None,
            redirect_uris: Vec::new(),
            first_party: false,
        }
    }
}

/// The keys of a `NewClient` or a `ClientUpdate`: at most one of `jwks` and `jwks_uri`.
pub(super) fn keys_of(
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
) -> Result<Option<ClientKeys>, crate::error::ServiceError> {
    match (jwks, jwks_uri) {
        (Some(_), Some(_)) => Err(crate::error::ServiceError::InvalidRequest(
            "give jwks or jwks_uri, not both".into(),
        )),
        (Some(set), None) => Ok(Some(ClientKeys::Jwks(set))),
        (None, Some(uri)) => Ok(Some(ClientKeys::JwksUri(uri))),
        (None, None) => Ok(None),
    }
}

/// Changes to a client; each field given replaces the client's list, fields left out stay. A
/// member not listed here is refused (400), never ignored.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct ClientUpdate {
    pub grants: Option<Vec<Grant>>,
    /// At most 32, each 1 to 64 printable ASCII characters other than space, quote and
    /// backslash.
    #[oai(validator(max_items = 32, min_length = 1, max_length = 64))]
    pub scopes: Option<Vec<String>>,
    /// At most 32, each 1 to 256 printable ASCII characters other than space, quote and
    /// backslash.
    #[oai(validator(max_items = 32, min_length = 1, max_length = 256))]
    pub audiences: Option<Vec<String>>,
    /// New keys (a JWK Set, as at registration). They replace the client's credential, its
    /// secret or its old keys: that stops working at once and every token issued through the
    /// client is revoked, as with a rotation.
    pub jwks: Option<serde_json::Value>,
    /// A new `jwks_uri`; replaces the credential as `jwks` does.
    #[oai(validator(max_length = 2048))]
    pub jwks_uri: Option<String>,
    /// New redirect URIs (as at registration); an empty list takes them away.
    #[oai(validator(max_items = 16, min_length = 1, max_length = 2048))]
    pub redirect_uris: Option<Vec<String>>,
    pub first_party: Option<bool>,
}

impl Example for ClientUpdate {
    fn example() -> Self {
        ClientUpdate {
            grants: None,
            scopes: Some(vec!["reports:read".into(), "reports:write".into()]),
            audiences: None,
            jwks: None,
            jwks_uri: None,
            redirect_uris: None,
            first_party: None,
        }
    }
}

/// A registered client and its secret, which is shown only this once.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisteredClient {
    #[oai(flatten)]
    pub client: AdminClient,
    /// The client's secret, for a confidential client; stored only as its SHA-256.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
}

impl Example for RegisteredClient {
    fn example() -> Self {
        RegisteredClient {
            client: AdminClient::example(),
            client_secret: Some(examples::CLIENT_SECRET.into()),
        }
    }
}

/// A client's new secret, shown only this once.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ClientSecret {
    pub client_id: String,
    pub client_secret: String,
}

impl Example for ClientSecret {
    fn example() -> Self {
        ClientSecret {
            client_id: "reports".into(),
            client_secret: examples::CLIENT_SECRET.into(),
        }
    }
}
