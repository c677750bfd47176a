//! Building and running the service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::CatchPanic;
use poem::{EndpointExt, Route, Server};

use crate::api;
use crate::configuration::Settings;
use crate::credentials::PasswordHasher;
use crate::domain::now;
use crate::keys::{KeyRing, KeySet};
use crate::oauth::Authority;
use crate::store::{self, SharedStore};

/// How often expired entries are swept from stores that do not expire them by themselves.
const PURGE_INTERVAL: Duration = Duration::from_secs(300);
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A service ready to accept connections on its bound address.
pub struct Application {
    acceptor: TcpAcceptor,
    address: SocketAddr,
    app: poem::endpoint::BoxEndpoint<'static>,
    store: SharedStore,
    keys: Arc<KeyRing>,
    key_reload: Duration,
}

impl Application {
    /// Loads keys and opens the store per `settings`, and binds `server.bind`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let bind = settings.bind_address()?;
        let acceptor = TcpListener::bind(bind)
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        Self::build_with(settings, acceptor).await
    }

    /// Like [`Application::build`], on a listener the caller bound already (tests bind port 0
    /// first so that they know the issuer URL before the service starts).
    pub async fn build_on(settings: Settings, listener: std::net::TcpListener) -> anyhow::Result<Application> {
        listener.set_nonblocking(true)?;
        let acceptor = TcpAcceptor::from_std(listener)?;
        Self::build_with(settings, acceptor).await
    }

    async fn build_with(settings: Settings, acceptor: TcpAcceptor) -> anyhow::Result<Application> {
        let address = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("the listener has no TCP address")?;
        let keys_dir = settings.keys.dir.clone();
        let policy = settings.key_policy();
        let loaded = tokio::task::spawn_blocking(move || KeySet::load_or_generate(&keys_dir, now(), &policy))
            .await?
            .with_context(|| format!("cannot load signing keys from {}", settings.keys.dir.display()))?;
        if let Some(path) = &loaded.generated {
            tracing::info!(
                path = %path.display(),
                kid = %loaded.keys.signer().kid(),
                "no signing key found; generated a new RSA-2048 key"
            );
        }
        tracing::info!(
            signer = %loaded.keys.signer().kid(),
            loaded = loaded.keys.keys().len(),
            "signing keys loaded"
        );
        let rotate_every = (settings.keys.rotate_every > 0).then_some(settings.keys.rotate_every as i64);
        let keys = Arc::new(KeyRing::new(
            loaded.keys,
            settings.keys.dir.clone(),
            settings.key_policy(),
            rotate_every,
        ));
        let store = store::open(&settings.store)
            .await
            .context("cannot open the store")?;
        let passwords = PasswordHasher::new(&settings.passwords)?;
        let authority = Arc::new(Authority::new(&settings, store.clone(), keys.clone(), passwords));
        let app = routes(authority, &settings);
        Ok(Application {
            acceptor,
            address,
            app,
            store,
            keys,
            key_reload: Duration::from_secs(settings.keys.reload_interval),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until SIGINT or SIGTERM, then lets requests in flight finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shutdown = shutdown_signal()?;
        tracing::info!(address = %self.address, "listening");
        let sweeper = tokio::spawn(purge_periodically(self.store.clone()));
        let key_watcher = tokio::spawn(self.keys.clone().watch(self.key_reload));
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown, Some(SHUTDOWN_GRACE))
            .await;
        sweeper.abort();
        key_watcher.abort();
        tracing::info!("stopped");
        result
    }
}

/// The whole HTTP surface: the documented API, its document and docs page, and the middleware
/// every response passes through.
pub fn routes(authority: Arc<Authority>, settings: &Settings) -> poem::endpoint::BoxEndpoint<'static> {
    let api = api::service(authority, settings);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let max_body = settings.server.max_body_bytes;
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .with(CatchPanic::new())
        .around(move |endpoint, request| api::middleware::harden(endpoint, request, max_body))
        .boxed()
}

async fn purge_periodically(store: SharedStore) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        interval.tick().await;
        match store.purge_expired(now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged expired store entries"),
            Err(error) => tracing::warn!(%error, "purging expired store entries failed"),
        }
    }
}

/// Registers the SIGINT and SIGTERM handlers now, before the service says it is listening (a
/// signal that arrives before its handler exists kills the process outright), and returns a
/// future that completes on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutdown signal received; finishing requests in flight");
    })
}

/// The documented API on throwaway components (an in-memory store, a fresh key), for printing
/// the OpenAPI document without touching the configured store or keys.
pub async fn documentation(
    settings: &Settings,
) -> anyhow::Result<poem_openapi::OpenApiService<api::Api, ()>> {
    let store: SharedStore = Arc::new(store::embedded::EmbeddedStore::open_in_memory()?);
    let (key, _) = crate::keys::SigningKey::generate_rsa(2048)?;
    let keys = Arc::new(KeyRing::fixed(KeySet::from_keys(vec![key])?));
    let passwords = PasswordHasher::new(&crate::configuration::PasswordSettings {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 1,
        max_queue: 0,
    })?;
    let authority = Arc::new(Authority::new(settings, store, keys, passwords));
    Ok(api::service(authority, settings))
}
