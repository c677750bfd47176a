//! The service under test, spawned in-process on port 0 against a real store.

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::accounts::{self, Change, ClientSpec};
use latchkey::audit::Actor;
use latchkey::configuration::{PasswordSettings, Settings, StoreBackend};
use latchkey::credentials::PasswordHasher;
use latchkey::domain::{GrantType, Secret, now};
use latchkey::keys::KeySet;
use latchkey::startup::Application;
use latchkey::store::{self, SharedStore};
use serde_json::Value;

/// The client through which tests' administrators get tokens for the admin API.
pub const ADMIN_CONSOLE: &str = "admin-console";

/// Who the changes tests make through `accounts` are audited as.
static TEST_OPERATOR: Actor = Actor::Operator("test");

/// argon2 parameters for tests that are not about hashing: the real ones cost ~50 ms a login.
pub fn cheap_passwords() -> PasswordSettings {
    PasswordSettings {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 0,
        max_queue: 1024,
    }
}

/// Settings for a service whose files live under `dir`.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.store.path = dir.join("data");
    settings.keys.dir = dir.join("keys");
    settings.passwords = cheap_passwords();
    settings.log.level = "warn".into();
    settings
}

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub store: SharedStore,
    pub http: reqwest::Client,
    pub dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// The service on the embedded store with default settings.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// The service on the embedded store, with `configure` applied to its settings.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let tempdir = tempfile::tempdir().expect("temp dir");
        let dir = tempdir.path().to_path_buf();
        let mut app = Self::spawn_in(dir, configure).await;
        app._tempdir = Some(tempdir);
        app
    }

    /// The service on Redis at `url`.
    pub async fn spawn_on_redis(url: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let url = url.to_owned();
        Self::spawn_with(move |s| {
            s.store.backend = StoreBackend::Redis;
            s.store.url = Some(url);
            configure(s);
        })
        .await
    }

    /// The service with its files under `dir`, which the caller keeps (restart tests).
    pub async fn spawn_in(dir: PathBuf, configure: impl FnOnce(&mut Settings)) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            latchkey::telemetry::init(
                &latchkey::configuration::LogSettings {
                    level: "debug".into(),
                    format: latchkey::configuration::LogFormat::Pretty,
                },
                latchkey::telemetry::Output::Stdout,
            );
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let port = listener.local_addr().expect("local addr").port();
        let mut settings = test_settings(&dir);
        settings.issuer = format!("http://127.0.0.1:{port}");
        configure(&mut settings);
        let application = Application::build_on(settings.clone(), listener)
            .await
            .expect("the service builds");
        let store = store::open(&settings.store).await.expect("the store opens");
        let server = tokio::spawn(async move {
            let _ = application.run_until_stopped().await;
        });
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            settings,
            store,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            dir,
            _tempdir: None,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A change made by the test itself, as an operator would at the command line.
    pub fn change(&self) -> Change<'_> {
        Change {
            store: self.store.as_ref(),
            by: &TEST_OPERATOR,
            now: now(),
        }
    }

    pub async fn add_user(&self, name: &str, password: &str, roles: &[&str]) {
        let hasher = PasswordHasher::new(&self.settings.passwords).expect("hasher");
        let roles: BTreeSet<String> = roles.iter().map(|r| r.to_string()).collect();
        accounts::add_user(&self.change(), &hasher, name, Secret::new(password), roles)
            .await
            .expect("user added");
    }

    /// Registers a client; returns its secret for a confidential one.
    pub async fn add_client(
        &self,
        id: &str,
        public: bool,
        grants: &[GrantType],
        scopes: &[&str],
        audiences: &[&str],
    ) -> Option<String> {
        let spec = ClientSpec {
            public,
            grants: grants.iter().copied().collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            keys: None,
            ..Default::default()
        };
        let registered = accounts::add_client(&self.change(), id, spec)
            .await
            .expect("client added");
        registered.secret.map(|s| s.expose().to_owned())
    }

    /// A first-party setup: public client `web` (password + refresh_token, scopes read write)
    /// and user `alice` / `correct horse` with role `user`.
    pub async fn with_user_and_web_client(&self) {
        self.add_client(
            "web",
            true,
            &[GrantType::Password, GrantType::RefreshToken],
            &["read", "write"],
            &[],
        )
        .await;
        self.add_user("alice", "correct horse", &["user"]).await;
    }

    /// Public client `admin-console` (password + refresh_token, scope `admin` only): what an
    /// operator registers to get tokens for the admin API.
    pub async fn with_admin_console(&self) {
        self.add_client(
            ADMIN_CONSOLE,
            true,
            &[GrantType::Password, GrantType::RefreshToken],
            &["admin"],
            &[],
        )
        .await;
    }

    /// Logs `username` in through `admin-console` with `scope=admin` (see
    /// [`TestApp::with_admin_console`]); returns the token response body. The access token is
    /// one for the admin API.
    pub async fn admin_login(&self, username: &str, password: &str) -> Value {
        let response = self
            .token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", ADMIN_CONSOLE),
                ("scope", "admin"),
            ])
            .await;
        assert_eq!(
            response.status(),
            200,
            "{username} logs in for the admin API"
        );
        response.json().await.expect("json body")
    }

    /// An access token for the admin API (see [`TestApp::admin_login`]).
    pub async fn admin_token(&self, username: &str, password: &str) -> String {
        self.admin_login(username, password).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// POSTs a form to `path`.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_form("/oauth/token", form).await
    }

    /// Logs alice in through `web`; returns the token response body.
    pub async fn login(&self) -> Value {
        let response = self
            .token(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "correct horse"),
                ("client_id", "web"),
            ])
            .await;
        assert_eq!(response.status(), 200, "login succeeds");
        response.json().await.expect("json body")
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", "web"),
        ])
        .await
    }

    pub async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request sent")
    }

    /// The RFC 8414 metadata document.
    pub async fn metadata(&self) -> Value {
        self.http
            .get(self.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON document")
    }

    /// An RFC 7662 answer for `token`, asked by the confidential client `client_id`.
    pub async fn introspect_as(&self, client_id: &str, secret: &str, token: &str) -> Value {
        let response = self
            .http
            .post(self.url("/oauth/introspect"))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 200, "introspection answers");
        response.json().await.expect("a JSON answer")
    }

    /// The `kid`s the service's JWKS publishes right now.
    pub async fn published_kids(&self) -> Vec<String> {
        let jwks: Value = self
            .http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON key set");
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    /// The service's key set now, read from its key directory.
    pub fn keys(&self) -> KeySet {
        let files = latchkey::keys::read_dir(&self.settings.keys.dir).expect("keys read");
        KeySet::assemble(
            &files,
            now(),
            &latchkey::keys::Policy::from_settings(&self.settings),
        )
        .expect("keys assemble")
    }
}

/// The decoded header and claims of a compact JWS, without verification.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = || {
        let bytes = URL_SAFE_NO_PAD
            .decode(parts.next().expect("jwt part"))
            .expect("base64url");
        serde_json::from_slice::<Value>(&bytes).expect("json")
    };
    let header = part();
    let claims = part();
    (header, claims)
}

/// Asserts an RFC 6749 error answer.
pub async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status(), status, "status for {error}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "JSON error, got {content_type}"
    );
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["error"], error, "error code in {body}");
    body
}
