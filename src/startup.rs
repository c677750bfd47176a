//! Building and running the service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{AcceptorExt, IntoTlsConfigStream};
use poem::middleware::CatchPanic;
use poem::{EndpointExt, Route, Server};

use crate::api;
use crate::api::jwks::JwksFirst;
use crate::configuration::{Settings, StoreBackend};
use crate::credentials::PasswordHasher;
use crate::domain::now;
use crate::error::ServiceError;
use crate::keys::{KeyRing, KeySet};
use crate::oauth::Authority;
use crate::shutdown::{Drain, DrainingAcceptor};
use crate::slow_clients::{DeadlineAcceptor, Limits};
use crate::store::{self, SharedStore, TokenLifetimes};

/// How often expired entries are swept from stores that do not expire them by themselves.
const PURGE_INTERVAL: Duration = Duration::from_secs(300);
/// How often a running service records its token lifetimes in the store again.
const LIFETIMES_INTERVAL: Duration = Duration::from_secs(60);
/// How often the imported password hashes left in the store are counted for /metrics.
const HASH_SURVEY_INTERVAL: Duration = Duration::from_secs(300);
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long closing the store may take at shutdown, on top of the grace.
const STORE_CLOSE_LIMIT: Duration = Duration::from_secs(2);
/// The longest wait between two attempts at the start-up work on the store while the store
/// does not answer.
const STORE_WORK_RETRY_LIMIT: Duration = Duration::from_secs(5);

/// A service ready to accept connections on its bound address.
pub struct Application {
    listener: std::net::TcpListener,
    drain: Drain,
    address: SocketAddr,
    app: poem::endpoint::BoxEndpoint<'static>,
    store: SharedStore,
    passwords: PasswordHasher,
    keys: Arc<KeyRing>,
    key_reload: Duration,
    connection_limits: Limits,
    tls: Option<poem::listener::RustlsConfig>,
    /// The start-up work left for when the store answers, and the start-up it holds up.
    store_work: Option<(StoreWork, api::StartUp)>,
    /// The token lifetimes this service issues with, recorded in the store.
    lifetimes: TokenLifetimes,
}

/// What start-up needs the store for, done before the service is ready: recording the token
/// lifetimes this service issues with, so that a revocation anywhere is remembered for as
/// long as its tokens live (see `store::lifetimes`), and creating the bootstrap admin.
struct StoreWork {
    lifetimes: TokenLifetimes,
    admin: Option<BootstrapAdmin>,
}

/// The administrator configured by `bootstrap.*`.
struct BootstrapAdmin {
    username: String,
    password: crate::domain::Secret,
    passwords: PasswordHasher,
}

impl StoreWork {
    async fn run(&self, store: &dyn crate::store::Store) -> Result<(), StartUpError> {
        store
            .record_token_lifetimes(self.lifetimes)
            .await
            .map_err(|error| StartUpError::Lifetimes(error.into()))?;
        let Some(admin) = &self.admin else {
            return Ok(());
        };
        crate::accounts::bootstrap_admin(
            store,
            &admin.passwords,
            &admin.username,
            admin.password.clone(),
            now(),
        )
        .await
        .map(|_| ())
        .map_err(StartUpError::Admin)
    }

    /// Tries until the store answers and the work is done, then declares start-up complete.
    async fn run_when_the_store_answers(self, store: SharedStore, start_up: api::StartUp) {
        let mut wait = Duration::from_millis(500);
        loop {
            tokio::time::sleep(wait).await;
            match self.run(store.as_ref()).await {
                Ok(()) => {
                    start_up.done();
                    tracing::info!("the store answers; start-up is complete");
                    return;
                }
                Err(error) if error.is_unavailable() => {}
                Err(error) => tracing::error!(%error, "start-up is not complete; trying again"),
            }
            wait = (wait * 2).min(STORE_WORK_RETRY_LIMIT);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StartUpError {
    #[error("cannot record the token lifetimes in the store: {0}")]
    Lifetimes(ServiceError),
    #[error("cannot create the admin named by bootstrap.admin_username: {0}")]
    Admin(ServiceError),
}

impl StartUpError {
    fn is_unavailable(&self) -> bool {
        let (StartUpError::Lifetimes(error) | StartUpError::Admin(error)) = self;
        matches!(error, ServiceError::Unavailable { .. })
    }
}

impl Application {
    /// Loads keys and opens the store per `settings`, and binds `server.bind`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let bind = settings.bind_address()?;
        // Bound by tokio for its larger listen backlog, then handed over as a std socket.
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .and_then(|listener| listener.into_std())
            .with_context(|| format!("cannot listen on {bind}"))?;
        Self::build_with(settings, listener).await
    }

    /// Like [`Application::build`], on a listener the caller bound already (tests bind port 0
    /// first so that they know the issuer URL before the service starts).
    pub async fn build_on(
        settings: Settings,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<Application> {
        Self::build_with(settings, listener).await
    }

    async fn build_with(
        settings: Settings,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<Application> {
        let address = listener
            .local_addr()
            .context("the listener has no TCP address")?;
        crate::metrics::init();
        for warning in settings.warnings() {
            tracing::warn!(setting = warning.key, "{}", warning.message);
        }
        let keys_dir = settings.keys.dir.clone();
        let policy = crate::keys::Policy::from_settings(&settings);
        let loaded = tokio::task::spawn_blocking(move || {
            KeySet::load_or_generate(&keys_dir, now(), &policy)
        })
        .await?
        .with_context(|| {
            format!(
                "cannot load signing keys from {}",
                settings.keys.dir.display()
            )
        })?;
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
        let rotate_every =
            (settings.keys.rotate_every > 0).then_some(settings.keys.rotate_every as i64);
        let keys = Arc::new(KeyRing::new(
            loaded.keys,
            settings.keys.dir.clone(),
            crate::keys::Policy::from_settings(&settings),
            rotate_every,
        ));
        let store =
            store::open(&settings.store)
                .await
                .with_context(|| match settings.store.backend {
                    StoreBackend::Embedded => format!(
                        "cannot open the store in store.path {}",
                        settings.store.path.display()
                    ),
                    StoreBackend::Redis => "cannot open the store named by store.url".to_owned(),
                })?;
        warn_about_open_files(&settings);
        // The service starts whether or not the store answers, and is not ready until it does.
        let store_answers = match store.ping().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(
                    %error,
                    "the store does not answer; serving anyway: /readyz and the requests that \
                     need the store answer 503 until it does"
                );
                false
            }
        };
        let passwords = PasswordHasher::new(&settings.passwords)?;
        let work = StoreWork {
            lifetimes: TokenLifetimes::of(&settings.tokens),
            admin: settings
                .bootstrap_admin()?
                .map(|(username, password)| BootstrapAdmin {
                    username,
                    password,
                    passwords: passwords.clone(),
                }),
        };
        let deferred = !store_answers
            || match work.run(store.as_ref()).await {
                Ok(()) => false,
                Err(error) if error.is_unavailable() => true,
                Err(error) => return Err(error.into()),
            };
        let (start_up, store_work) = if deferred {
            tracing::warn!(
                "start-up completes once the store answers: recording the token lifetimes{}",
                match &work.admin {
                    Some(_) => " and creating the bootstrap admin",
                    None => "",
                }
            );
            let start_up = api::StartUp::pending();
            (start_up.clone(), Some((work, start_up)))
        } else {
            (api::StartUp::default(), None)
        };
        let tls = match (&settings.server.tls_cert, &settings.server.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::load(cert, key)?),
            _ => None,
        };
        let authority = Arc::new(Authority::new(
            &settings,
            store.clone(),
            keys.clone(),
            passwords.clone(),
        ));
        let drain = Drain::new();
        let observed = drain.clone();
        let app =
            routes(authority, &settings)
                .data(start_up.clone())
                .around(move |endpoint, request| {
                    api::observe::observe(endpoint, request, observed.clone())
                });
        let app =
            JwksFirst::new(app, keys.clone(), settings.keys.jwks_max_age, drain.clone()).boxed();
        Ok(Application {
            listener,
            drain,
            address,
            app,
            store,
            passwords,
            keys,
            key_reload: Duration::from_secs(settings.keys.reload_interval),
            connection_limits: Limits {
                header: Duration::from_secs(settings.server.header_timeout),
                idle: Duration::from_secs(settings.server.idle_timeout),
            },
            tls,
            store_work,
            lifetimes: TokenLifetimes::of(&settings.tokens),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until SIGINT or SIGTERM, then drains (see [`crate::shutdown`]) within
    /// `SHUTDOWN_GRACE` and closes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shutdown = shutdown_signal()?;
        let acceptor = DrainingAcceptor::new(self.listener, self.drain.clone())?;
        let acceptor = match self.tls {
            Some(config) => acceptor.rustls(config.into_stream()?).boxed(),
            None => acceptor.boxed(),
        };
        // Outside TLS, so the deadlines watch the plaintext.
        let acceptor = DeadlineAcceptor::new(acceptor, self.connection_limits);
        tracing::info!(address = %self.address, "listening");
        let sweeper = tokio::spawn(purge_periodically(self.store.clone()));
        let recorder = tokio::spawn(record_lifetimes_periodically(
            self.store.clone(),
            self.lifetimes,
            LIFETIMES_INTERVAL,
        ));
        let surveyor = tokio::spawn(survey_hashes_periodically(
            self.store.clone(),
            self.passwords.clone(),
        ));
        let store_work = self.store_work.map(|(work, start_up)| {
            tokio::spawn(work.run_when_the_store_answers(self.store.clone(), start_up))
        });
        let key_watcher = tokio::spawn(self.keys.clone().watch(self.key_reload));
        // poem waits for every connection; the drain's deadline bounds that wait.
        let server = Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            self.app,
            self.drain.clone().after(shutdown),
            None,
        );
        let result = match self.drain.bounded(server, SHUTDOWN_GRACE).await {
            Some(result) => result,
            None => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running at the end of the grace period were dropped");
                Ok(())
            }
        };
        sweeper.abort();
        recorder.abort();
        surveyor.abort();
        key_watcher.abort();
        if let Some(store_work) = store_work {
            store_work.abort();
        }
        match tokio::time::timeout(STORE_CLOSE_LIMIT, self.store.close()).await {
            Ok(Ok(())) => tracing::info!("store closed"),
            Ok(Err(error)) => tracing::warn!(%error, "closing the store failed"),
            Err(_) => tracing::warn!("closing the store timed out"),
        }
        tracing::info!("stopped");
        result
    }
}

/// The whole HTTP surface: the documented API, its document and docs page, and the middleware
/// every response passes through.
pub fn routes(
    authority: Arc<Authority>,
    settings: &Settings,
) -> poem::endpoint::BoxEndpoint<'static> {
    let metrics = api::metrics::endpoint(authority.clone());
    let docs = api::docs_page(authority.clone(), settings);
    let api = api::service(authority, settings);
    let spec = api.spec_endpoint();
    let max_body = settings.server.max_body_bytes;
    let request_timeout = Duration::from_secs(settings.server.request_timeout);
    // Validated with the settings, so an error here cannot happen; no proxy is trusted then.
    let proxies = crate::security::TrustedProxies::parse(&settings.security.trusted_proxies)
        .unwrap_or_default();
    let origins = &settings.security.cors_origins;
    let app = Route::new()
        .at("/metrics", metrics)
        .at("/openapi.json", spec)
        .nest("/docs", Route::new().at("/", docs))
        .nest("/", api)
        .with(CatchPanic::new());
    let app = if origins.is_empty() {
        app.boxed()
    } else {
        api::limits::cors(origins, app)
    };
    app.data(proxies)
        .around(move |endpoint, request| api::middleware::harden(endpoint, request, max_body))
        .around(move |endpoint, request| api::limits::timeout(endpoint, request, request_timeout))
        .boxed()
}

/// Warns about secrets that users other than the service's can read: the private keys (the
/// operator's files, left as they are), and the embedded store's data, which opening the store
/// has made private unless it could not.
fn warn_about_open_files(settings: &Settings) {
    if let Ok(entries) = std::fs::read_dir(&settings.keys.dir) {
        let keys = entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "pem"));
        crate::files::warn_if_open("a private key file", keys);
    }
    if settings.store.backend == StoreBackend::Embedded {
        let dir = &settings.store.path;
        crate::files::warn_if_open("the data directory", [dir]);
        let files = std::iter::once(store::embedded::DB_FILE)
            .chain(store::embedded::DB_COMPANIONS)
            .map(|name| dir.join(name));
        crate::files::warn_if_open("a database file", files);
    }
}

/// Records the token lifetimes again every [`LIFETIMES_INTERVAL`]: a Redis that lost its data
/// (a restart without persistence, a failover to a replica that lacked them, a restore) no
/// longer has them, and a revocation made from elsewhere would be remembered only for as long
/// as the revoker's own lifetimes say.
async fn record_lifetimes_periodically(
    store: SharedStore,
    lifetimes: TokenLifetimes,
    every: Duration,
) {
    let mut interval = tokio::time::interval(every);
    // The first tick is at once; start-up has just recorded them.
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Err(error) = store.record_token_lifetimes(lifetimes).await {
            tracing::warn!(%error, "recording the token lifetimes in the store failed");
        }
    }
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

/// Keeps `latchkey_legacy_password_hashes` and the password refusal floor up to date for
/// every replica: at start-up, every few minutes (a page of users per store read), and at once
/// after an import through this replica.
async fn survey_hashes_periodically(store: SharedStore, passwords: PasswordHasher) {
    let mut interval = tokio::time::interval(HASH_SURVEY_INTERVAL);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = passwords.hashes_changed_notice() => {}
        }
        let survey = match crate::accounts::survey_hashes(store.as_ref(), &passwords).await {
            Ok(survey) => survey,
            Err(error) => {
                tracing::debug!(%error, "surveying the stored password hashes failed");
                continue;
            }
        };
        crate::metrics::legacy_password_hashes(survey.legacy);
        match passwords.calibrate(survey.costliest).await {
            Ok(floor) if !floor.is_zero() => {
                tracing::debug!(?floor, "password refusals are held to the slowest check");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "measuring the imported password hashes failed"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn a_running_service_records_its_token_lifetimes_again_and_again() {
        let store: SharedStore =
            Arc::new(store::embedded::EmbeddedStore::open_in_memory().expect("store"));
        let service = TokenLifetimes {
            access: 900,
            refresh: 86_400,
        };
        let shorter = TokenLifetimes {
            access: 60,
            refresh: 60,
        };
        assert_eq!(
            store.record_token_lifetimes(shorter).await.ok(),
            Some(shorter)
        );
        let recorder = tokio::spawn(record_lifetimes_periodically(
            store.clone(),
            service,
            Duration::from_millis(20),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut kept = shorter;
        while kept != service && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            kept = store.record_token_lifetimes(shorter).await.expect("kept");
        }
        recorder.abort();
        assert_eq!(kept, service, "the service's lifetimes were recorded again");
    }
}
