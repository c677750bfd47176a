//! Configuration: built-in defaults, then an optional file, then `LATCHKEY_SECTION__KEY`
//! environment variables. Every value is checked at start-up and a bad one names its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File};
use serde::{Deserialize, Serialize};

/// Everything Latchkey can be told, with the defaults of design §6.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    /// The `iss` of every token and the metadata issuer: the public base URL of the service.
    pub issuer: String,
    pub store: StoreSettings,
    pub keys: KeySettings,
    pub tokens: TokenSettings,
    pub admin: AdminSettings,
    pub registration: RegistrationSettings,
    pub passwords: PasswordSettings,
    pub log: LogSettings,
    pub bootstrap: BootstrapSettings,
    pub security: crate::security::SecuritySettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a request may take, reading its body included, before it is answered with 503.
    pub request_timeout: u64,
    /// Seconds a client may take to send a request's headers before the connection is closed.
    pub header_timeout: u64,
    /// Seconds a connection may go without a request or a response before it is closed.
    pub idle_timeout: u64,
    /// PEM certificate chain and private key: with both set, the service speaks HTTPS
    /// (HTTP/1.1 and HTTP/2) itself.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum StoreBackend {
    Embedded,
    Redis,
}

impl TryFrom<String> for StoreBackend {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "embedded" => Ok(StoreBackend::Embedded),
            "redis" => Ok(StoreBackend::Redis),
            other => Err(format!("unknown backend '{other}': use embedded or redis")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// The embedded store's data directory.
    pub path: PathBuf,
    /// The Redis URL: redis://, rediss://, redis+sentinel://, or a comma list of cluster nodes.
    pub url: Option<String>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub prefix: String,
    /// For `rediss://` servers whose certificates a private CA signs: that CA's certificate
    /// (PEM), trusted instead of the system's roots.
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySettings {
    pub dir: PathBuf,
    /// `max-age` of the JWKS response, in seconds; also how long a new key is published before
    /// it signs.
    pub jwks_max_age: u64,
    /// How often the key directory is re-read, in seconds.
    pub reload_interval: u64,
    /// Publish a new key when the newest is this many seconds old; 0 turns automatic rotation
    /// off.
    pub rotate_every: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSettings {
    /// Access-token lifetime in seconds.
    pub access_ttl: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_ttl: u64,
    /// Seconds during which a just-rotated refresh token still yields the same successor.
    pub refresh_grace: u64,
    /// `aud` of access tokens whose request names no audience.
    pub audience: String,
    /// Scopes that only users with role `admin` may receive. A list, or one string of
    /// space- or comma-separated scopes (as an environment variable gives it).
    #[serde(deserialize_with = "crate::security::joined_list")]
    pub admin_scopes: Vec<String>,
}

/// The admin API (`/admin/*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminSettings {
    /// `aud` of the access tokens the admin API accepts, and the only audience a token with an
    /// admin scope (`tokens.admin_scopes`) gets. No other audience is ever given to such a
    /// token, so a resource server that receives a user's token cannot replay it here.
    pub audience: String,
}

/// The first administrator, created at start-up when no user has role `admin`. The password
/// comes from a file (a mounted secret) or, less safely, from the setting itself.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct BootstrapSettings {
    pub admin_username: Option<String>,
    pub admin_password_file: Option<PathBuf>,
    pub admin_password: Option<String>,
}

// Settings are printed in diagnostics; the password must never be among what is printed.
impl std::fmt::Debug for BootstrapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapSettings")
            .field("admin_username", &self.admin_username)
            .field("admin_password_file", &self.admin_password_file)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationSettings {
    pub enabled: bool,
    /// Registrations from one address (an IPv6 /64) per window before 429; 0 = no limit.
    pub max_per_address: u64,
    /// Seconds a registration window lasts from its first registration.
    pub window: u64,
}

/// argon2id cost and the bounds of the hashing pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; 0 means one per CPU.
    pub max_concurrent: usize,
    /// Hashes allowed to wait for a slot before requests are turned away with 503.
    pub max_queue: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when standard output is not a terminal, pretty text when it is.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSettings {
    /// A tracing filter such as `info` or `latchkey=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings {
                bind: "127.0.0.1:8080".into(),
                max_body_bytes: 64 * 1024,
                request_timeout: 30,
                header_timeout: 10,
                idle_timeout: 75,
                tls_cert: None,
                tls_key: None,
            },
            issuer: "http://127.0.0.1:8080".into(),
            store: StoreSettings {
                backend: StoreBackend::Embedded,
                path: PathBuf::from("./data"),
                url: None,
                prefix: "latchkey:".into(),
                tls_ca_file: None,
            },
            keys: KeySettings {
                dir: PathBuf::from("./keys"),
                jwks_max_age: 300,
                reload_interval: 10,
                rotate_every: 0,
            },
            tokens: TokenSettings {
                access_ttl: 900,
                refresh_ttl: 2_592_000,
                refresh_grace: 5,
                audience: "api".into(),
                admin_scopes: vec!["admin".into()],
            },
            admin: AdminSettings {
                audience: "latchkey-admin".into(),
            },
            registration: RegistrationSettings {
                enabled: false,
                max_per_address: 10,
                window: 3600,
            },
            passwords: PasswordSettings {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1,
                max_concurrent: 0,
                max_queue: 256,
            },
            log: LogSettings {
                level: "info".into(),
                format: LogFormat::Auto,
            },
            bootstrap: BootstrapSettings::default(),
            security: crate::security::SecuritySettings::default(),
        }
    }
}

/// The least `server.max_body_bytes`: a form or JSON body with the largest token the issuer
/// signs (`domain::limits::MAX_TOKEN_BYTES`) and a client's credentials, twice over.
pub const MIN_BODY_BYTES: usize = 2 * crate::domain::limits::MAX_TOKEN_BYTES;

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The source's own message names the key; `{0}` is shown once, not again as a cause.
    #[error("invalid configuration: {0}")]
    Source(config::ConfigError),
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        key: std::borrow::Cow<'static, str>,
        reason: String,
    },
    /// Names that are no setting: a misspelt one would otherwise be silently ignored.
    #[error("invalid configuration: unknown {place}: {}", .names.join(", "))]
    Unknown { place: String, names: Vec<String> },
}

impl From<config::ConfigError> for ConfigError {
    fn from(error: config::ConfigError) -> Self {
        ConfigError::Source(error)
    }
}

fn invalid(
    key: impl Into<std::borrow::Cow<'static, str>>,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// An audience the service puts in `aud` and names in its answers: 1 to 256 visible ASCII
/// characters (a name or a URI), and none the issuer keeps for itself.
fn check_audience(key: &'static str, audience: &str, issuer: &str) -> Result<(), ConfigError> {
    crate::domain::check_audience(audience).map_err(|e| invalid(key, e.to_string()))?;
    if crate::domain::is_issuers_own_audience(audience, issuer) {
        return Err(invalid(
            key,
            "must differ from the issuer and its token, revocation and introspection endpoints, \
             the audiences of refresh tokens and client assertions",
        ));
    }
    Ok(())
}

impl Settings {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, None)
    }

    /// Like [`Settings::load`], with the environment given as pairs instead of read from the
    /// process, so tests do not race on global state.
    pub fn load_from(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let known = known_keys();
        let mut builder = Config::builder().add_source(Config::try_from(&Settings::default())?);
        if let Some(path) = file {
            check_file(path, &known)?;
            builder = builder.add_source(File::from(path).required(true));
        }
        let variables: Vec<(String, String)> = match &env {
            Some(pairs) => pairs.clone().into_iter().collect(),
            // Names that are not Unicode cannot be settings (`config` skips them too).
            None => std::env::vars_os()
                .filter_map(|(name, value)| {
                    Some((
                        name.into_string().ok()?,
                        value.to_string_lossy().into_owned(),
                    ))
                })
                .collect(),
        };
        check_environment(&variables, &known)?;
        let environment = Environment::with_prefix("LATCHKEY")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(env.clone());
        let merged = builder.add_source(environment).build()?;
        let written: config::Map<String, config::Value> = merged.clone().try_deserialize()?;
        let settings: Settings = merged.try_deserialize()?;
        bounds::check_kinds(&written, &settings)?;
        let mut settings = verbatim::texts_as_written(settings, &variables)?;
        settings.bootstrap.drop_blanks();
        settings.validated()
    }

    fn validated(mut self) -> Result<Settings, ConfigError> {
        self.bind_address()?;
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) || issuer.len() < 9 {
            return Err(invalid("issuer", "must be an http:// or https:// URL"));
        }
        // `iss` of every token and `aud` of refresh tokens: bounded like an audience.
        if issuer.len() > crate::domain::limits::MAX_ISSUER_LEN
            || crate::domain::check_audience(&issuer).is_err()
        {
            return Err(invalid(
                "issuer",
                format!(
                    "must be at most {} printable ASCII characters without spaces, quotes or \
                     backslashes",
                    crate::domain::limits::MAX_ISSUER_LEN
                ),
            ));
        }
        self.issuer = issuer;
        let tokens = &self.tokens;
        if tokens.access_ttl == 0 || tokens.access_ttl > 86_400 {
            return Err(invalid(
                "tokens.access_ttl",
                "must be between 1 and 86400 seconds",
            ));
        }
        if tokens.refresh_ttl <= tokens.access_ttl {
            return Err(invalid(
                "tokens.refresh_ttl",
                "must be longer than tokens.access_ttl",
            ));
        }
        let window = self.registration.window;
        if window == 0 || window > 86_400 {
            return Err(invalid(
                "registration.window",
                "must be between 1 and 86400 seconds",
            ));
        }
        if tokens.refresh_grace > 300 {
            return Err(invalid(
                "tokens.refresh_grace",
                "must be at most 300 seconds",
            ));
        }
        check_audience("tokens.audience", &tokens.audience, &self.issuer)?;
        check_audience("admin.audience", &self.admin.audience, &self.issuer)?;
        if self.admin.audience == tokens.audience {
            return Err(invalid(
                "admin.audience",
                "must differ from tokens.audience, or every ordinary access token would open \
                 the admin API",
            ));
        }
        if self.store.backend == StoreBackend::Redis
            && self.store.url.as_deref().is_none_or(str::is_empty)
        {
            return Err(invalid(
                "store.url",
                "is required when store.backend is redis",
            ));
        }
        bounds::check_ranges(&self)?;
        if self.store.tls_ca_file.is_some() {
            let url = self.store.url.as_deref().unwrap_or_default();
            if self.store.backend != StoreBackend::Redis
                || !url
                    .split(',')
                    .any(|node| node.trim().starts_with("rediss://"))
            {
                return Err(invalid(
                    "store.tls_ca_file",
                    "is used only with store.backend redis and a rediss:// store.url",
                ));
            }
        }
        let p = &self.passwords;
        argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|e| {
            let key = match e {
                argon2::Error::TimeTooSmall => "passwords.iterations",
                argon2::Error::ThreadsTooFew | argon2::Error::ThreadsTooMany => {
                    "passwords.parallelism"
                }
                _ => "passwords.memory_kib",
            };
            invalid(key, format!("not a valid argon2 parameter: {e}"))
        })?;
        if self.server.max_body_bytes < MIN_BODY_BYTES {
            return Err(invalid(
                "server.max_body_bytes",
                format!(
                    "must be at least {MIN_BODY_BYTES}, so that /oauth/revoke and \
                     /oauth/introspect take the largest token the issuer signs"
                ),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!("'{}' is not a log filter", self.log.level),
            ));
        }
        if self.keys.jwks_max_age == 0 {
            return Err(invalid("keys.jwks_max_age", "must be at least 1 second"));
        }
        if self.keys.reload_interval == 0 || self.keys.reload_interval >= self.keys.jwks_max_age {
            return Err(invalid(
                "keys.reload_interval",
                "must be at least 1 second and shorter than keys.jwks_max_age, so that every \
                 replica loads a new key before it signs",
            ));
        }
        if self.keys.rotate_every != 0 && self.keys.rotate_every <= self.keys.jwks_max_age {
            return Err(invalid(
                "keys.rotate_every",
                "must be 0 (off) or longer than keys.jwks_max_age",
            ));
        }
        if let Err(error) = crate::domain::Scope::from_tokens(&self.tokens.admin_scopes) {
            return Err(invalid(
                "tokens.admin_scopes",
                format!("must be valid scope tokens: {error}"),
            ));
        }
        self.bootstrap.validate()?;
        self.security
            .validate()
            .map_err(|(key, reason)| invalid(key, reason))?;
        let server = &self.server;
        if server.request_timeout == 0 {
            return Err(invalid(
                "server.request_timeout",
                "must be at least 1 second",
            ));
        }
        if server.header_timeout == 0 {
            return Err(invalid(
                "server.header_timeout",
                "must be at least 1 second",
            ));
        }
        if server.idle_timeout <= server.request_timeout {
            return Err(invalid(
                "server.idle_timeout",
                "must be longer than server.request_timeout, so that no request in progress \
                 counts as idle",
            ));
        }
        match (&server.tls_cert, &server.tls_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "server.tls_key",
                    "is required when server.tls_cert is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "server.tls_cert",
                    "is required when server.tls_key is set",
                ));
            }
            _ => {}
        }
        Ok(self)
    }

    /// The first admin's name and password, the password read now (at start-up); `None`
    /// without a bootstrap admin. One trailing newline of a file is not part of the password;
    /// a second line is refused.
    pub fn bootstrap_admin(&self) -> Result<Option<(String, crate::domain::Secret)>, ConfigError> {
        let b = &self.bootstrap;
        let Some(username) = b.admin_username.clone() else {
            return Ok(None);
        };
        let (key, password) = match (&b.admin_password_file, &b.admin_password) {
            (Some(path), _) => {
                let key = "bootstrap.admin_password_file";
                let text = std::fs::read_to_string(path)
                    .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
                let password = crate::domain::Secret::from_line(&text)
                    .map_err(|e| invalid(key, format!("{}: the file {e}", path.display())))?;
                (key, password)
            }
            (None, Some(password)) => (
                "bootstrap.admin_password",
                crate::domain::Secret::new(password.clone()),
            ),
            (None, None) => return Err(BootstrapSettings::missing_password()),
        };
        // Checked now, so that a password the store would refuse stops start-up even while the
        // store cannot be reached.
        crate::domain::check_password_policy(&password).map_err(|e| invalid(key, e.to_string()))?;
        Ok(Some((username, password)))
    }

    pub fn bind_address(&self) -> Result<SocketAddr, ConfigError> {
        self.server.bind.parse().map_err(|_| {
            invalid(
                "server.bind",
                format!("'{}' is not host:port", self.server.bind),
            )
        })
    }
}

impl BootstrapSettings {
    /// Empty values count as unset, as a deployment template's blank variables mean.
    fn drop_blanks(&mut self) {
        self.admin_username = self.admin_username.take().filter(|s| !s.is_empty());
        self.admin_password = self.admin_password.take().filter(|s| !s.is_empty());
        self.admin_password_file = self
            .admin_password_file
            .take()
            .filter(|p| !p.as_os_str().is_empty());
    }

    fn missing_password() -> ConfigError {
        invalid(
            "bootstrap.admin_password_file",
            "bootstrap.admin_username is set, but neither bootstrap.admin_password_file nor \
             bootstrap.admin_password is",
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let password_given = self.admin_password_file.is_some() || self.admin_password.is_some();
        match &self.admin_username {
            None if password_given => Err(invalid(
                "bootstrap.admin_username",
                "is required when a bootstrap admin password is given",
            )),
            None => Ok(()),
            Some(name) => {
                crate::domain::Username::parse(name.as_str())
                    .map_err(|e| invalid("bootstrap.admin_username", e.to_string()))?;
                if !password_given {
                    return Err(Self::missing_password());
                }
                Ok(())
            }
        }
    }
}

mod bounds;
mod unknown;
mod verbatim;
mod warnings;
#[cfg(test)]
use unknown::ENV_PREFIX;
use unknown::{check_environment, check_file, known_keys};
pub use warnings::Warning;

#[cfg(test)]
mod tests;
