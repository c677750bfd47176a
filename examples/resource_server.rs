//! A resource server built on latchkey-verify: the tutorials' "protected API", done right.
//!
//! - `GET /protected`: any valid access token for this audience;
//! - `GET /admin/report`: only a token whose subject has the role `admin`;
//! - `GET /payments/charge`: the last hop of a gateway → orders → payments chain: a user's
//!   token only as the `orders` service presents it, obtained by token exchange (RFC 8693), so
//!   its `act.sub` is `orders` (`RESOURCE_SERVER_REQUIRED_ACTOR` names another). A user's own
//!   token, straight from the gateway, is refused with 403;
//! - `GET /healthz`: no token; reports what the verifier holds.
//!
//! Refusals follow RFC 6750: 401 with `WWW-Authenticate: Bearer error="invalid_token"`, 403 with
//! `error="insufficient_scope"`. Revocations reach it through the issuer's feed within 5 s,
//! without a call to the issuer per request.
//!
//! Configuration (environment):
//! - `RESOURCE_SERVER_BIND`: listen address (default `127.0.0.1:8090`);
//! - `RESOURCE_SERVER_ISSUER`: the issuer URL (default `http://127.0.0.1:8080`);
//! - `RESOURCE_SERVER_AUDIENCE`: the `aud` tokens must name (default `api`, the issuer's
//!   default audience);
//! - `RESOURCE_SERVER_CLIENT_ID`, `RESOURCE_SERVER_CLIENT_SECRET`: the confidential client that
//!   reads the revocation feed; without them revoked tokens pass until they expire.
//!
//! It logs JSON lines on stdout, the first being `{"message":"listening","address":...}`.
//!
//! ```text
//! latchkey clients add orders-api          # prints its secret
//! RESOURCE_SERVER_CLIENT_ID=orders-api RESOURCE_SERVER_CLIENT_SECRET=... \
//!     cargo run --example resource_server
//! ```

use std::time::Duration;

use latchkey_verify::{AccessToken, Verifier, VerifyError};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, Server, get, handler};
use serde_json::{Value, json};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[handler]
fn protected(token: AccessToken) -> Json<Value> {
    Json(json!({
        "message": format!("hello, {}", token.subject),
        "sub": token.subject,
        "client_id": token.client_id,
        "scope": token.scopes.join(" "),
        "roles": token.roles,
    }))
}

#[handler]
fn admin_report(token: AccessToken) -> Result<Json<Value>, VerifyError> {
    token.require_role("admin")?;
    Ok(Json(
        json!({"report": "all systems nominal", "requested_by": token.subject}),
    ))
}

/// Payments acts on a user's behalf only when the orders service asked: the token names the
/// user (`sub`) and, as its current actor, the service that exchanged it. The whole chain is
/// there for the audit, newest actor first.
#[handler]
fn charge(token: AccessToken) -> Result<Json<Value>, VerifyError> {
    token.require_actor(&env("RESOURCE_SERVER_REQUIRED_ACTOR", "orders"))?;
    Ok(Json(json!({
        "charged": token.subject,
        "actors": token.actors,
        "client_id": token.client_id,
        "chain_began_with": token.subject_client_id,
    })))
}

#[handler]
fn health(verifier: Data<&Verifier>) -> Json<Value> {
    let status = verifier.status();
    Json(json!({
        "keys": status.keys,
        "jwks_fetches": status.jwks_fetches,
        "revoked": {"tokens": status.revoked.0, "sessions": status.revoked.1, "subjects": status.revoked.2},
        "since_last_sync_ms": status.since_last_sync.map(|d| d.as_millis() as u64),
    }))
}

/// Connects to the issuer, retrying for a while: in a deployment the resource server may start
/// before the issuer does.
async fn connect(issuer: &str, audience: &str) -> Result<Verifier, latchkey_verify::SetupError> {
    let client_id = std::env::var("RESOURCE_SERVER_CLIENT_ID").ok();
    let secret = std::env::var("RESOURCE_SERVER_CLIENT_SECRET").ok();
    let mut attempt = 0u32;
    loop {
        let mut builder = Verifier::builder(issuer, audience);
        if let (Some(id), Some(secret)) = (&client_id, &secret) {
            builder = builder.feed_client(id, secret);
        }
        match builder.connect().await {
            Ok(verifier) => return Ok(verifier),
            Err(error) if attempt < 30 => {
                tracing::warn!(%error, "cannot reach the issuer yet; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let bind = env("RESOURCE_SERVER_BIND", "127.0.0.1:8090");
    let issuer = env("RESOURCE_SERVER_ISSUER", "http://127.0.0.1:8080");
    let audience = env("RESOURCE_SERVER_AUDIENCE", "api");
    if std::env::var_os("RESOURCE_SERVER_CLIENT_ID").is_none() {
        tracing::warn!("no RESOURCE_SERVER_CLIENT_ID: revoked tokens will pass until they expire");
    }
    let verifier = connect(&issuer, &audience).await?;
    let app = Route::new()
        .at("/protected", get(protected))
        .at("/admin/report", get(admin_report))
        .at("/payments/charge", get(charge))
        .at("/healthz", get(health))
        .data(verifier);
    let acceptor = TcpListener::bind(bind.as_str()).into_acceptor().await?;
    let address = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or("the listener has no TCP address")?;
    tracing::info!(%address, %issuer, %audience, "listening");
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            app,
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            Some(Duration::from_secs(5)),
        )
        .await?;
    Ok(())
}
