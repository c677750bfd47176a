//! Connections to Redis: standalone, Sentinel or Cluster, through the `redis` crate's own
//! clients (`ConnectionManager`, `SentinelClient` with the connections of [`super::sentinel`],
//! `cluster_async::ClusterConnection`).
//!
//! Every client is built lazily: `connect` never waits for Redis, so a replica starts (and
//! reports itself unready) while Redis is down, and each client reconnects by itself once Redis
//! answers again.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    TlsCertificates, Value,
};

use super::sentinel::{MasterConn, SentinelBackend};

use crate::store::StoreError;

/// A parsed `LATCHKEY_STORE__URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `redis://` or `rediss://`: one server.
    Standalone(String),
    /// `redis+sentinel://host:port[,host:port...]/MASTER_NAME`.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        username: Option<String>,
        password: Option<String>,
    },
    /// A comma-separated list of `redis://host:port` seed nodes, or `redis+cluster://` with one
    /// or more `host:port` seeds.
    Cluster(Vec<String>),
}

fn bad_url(why: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("invalid redis store url: {why}"))
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            return Self::parse_sentinel(rest);
        }
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let seeds = split_list(rest)
                .into_iter()
                .map(|node| format!("redis://{node}"))
                .collect::<Vec<_>>();
            if seeds.is_empty() {
                return Err(bad_url("redis+cluster:// needs at least one host:port"));
            }
            return Ok(Target::Cluster(seeds));
        }
        let nodes = split_list(url);
        for node in &nodes {
            if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
                return Err(bad_url(
                    "expected redis://, rediss://, redis+sentinel:// or a comma-separated list \
                     of redis:// cluster seed nodes",
                ));
            }
        }
        match nodes.len() {
            0 => Err(bad_url("empty")),
            1 => Ok(Target::Standalone(nodes[0].clone())),
            _ => Ok(Target::Cluster(nodes)),
        }
    }

    fn parse_sentinel(rest: &str) -> Result<Target, StoreError> {
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad_url("redis+sentinel:// needs /MASTER_NAME after the hosts"))?;
        let master = path.split(['?', '#']).next().unwrap_or_default().trim();
        if master.is_empty() {
            return Err(bad_url("redis+sentinel:// needs a master name"));
        }
        // Credentials, when present, are the Redis data nodes' (the sentinels are asked without).
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (
                    Some(user.to_owned()).filter(|u| !u.is_empty()),
                    Some(pass.to_owned()),
                ),
                None => (None, Some(info.to_owned())),
            },
        };
        let sentinels = split_list(hosts)
            .into_iter()
            .map(|host| {
                if host.contains(':') {
                    format!("redis://{host}")
                } else {
                    format!("redis://{host}:26379")
                }
            })
            .collect::<Vec<_>>();
        if sentinels.is_empty() {
            return Err(bad_url(
                "redis+sentinel:// needs at least one sentinel host:port",
            ));
        }
        Ok(Target::Sentinel {
            sentinels,
            master: master.to_owned(),
            username,
            password,
        })
    }
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// rustls needs one process-wide crypto provider; pin the one the rest of Latchkey uses.
fn ensure_tls_provider(urls: &[String]) {
    if urls.iter().any(|u| u.starts_with("rediss://")) {
        // Err means another provider was installed first, which serves just as well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    // One quick retry per reconnect attempt: a request made while Redis is down fails fast
    // (well inside the caller's deadline), and the next request starts a new attempt, so the
    // manager reconnects by itself as soon as Redis answers again.
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(250))
}

/// The client for one deployment shape.
pub(crate) enum Backend {
    Standalone(ConnectionManager),
    Sentinel(Arc<SentinelBackend>),
    Cluster(ClusterConnection),
}

impl Backend {
    /// `tls_root_cert`: PEM of the CA that signs the servers' certificates, for `rediss://`
    /// with a private CA (instead of the system's roots).
    pub(crate) fn open(
        target: Target,
        timeout: Duration,
        tls_root_cert: Option<Vec<u8>>,
    ) -> Result<Backend, StoreError> {
        let certificates = |root_cert: Vec<u8>| TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        };
        match target {
            Target::Standalone(url) => {
                ensure_tls_provider(std::slice::from_ref(&url));
                let client = match tls_root_cert {
                    Some(root) if url.starts_with("rediss://") => {
                        Client::build_with_tls(url.as_str(), certificates(root))
                    }
                    _ => Client::open(url.as_str()),
                }
                .map_err(bad_url)?;
                let manager =
                    ConnectionManager::new_lazy_with_config(client, manager_config(timeout))
                        .map_err(bad_url)?;
                Ok(Backend::Standalone(manager))
            }
            Target::Sentinel {
                sentinels,
                master,
                username,
                password,
            } => {
                let mut redis_info = redis::RedisConnectionInfo::default();
                if let Some(username) = username {
                    redis_info = redis_info.set_username(username);
                }
                if let Some(password) = password {
                    redis_info = redis_info.set_password(password);
                }
                let node_info =
                    SentinelNodeConnectionInfo::default().set_redis_connection_info(redis_info);
                let client = SentinelClient::build(
                    sentinels,
                    master,
                    Some(node_info),
                    SentinelServerType::Master,
                )
                .map_err(bad_url)?;
                Ok(Backend::Sentinel(Arc::new(SentinelBackend::new(
                    client, timeout,
                ))))
            }
            Target::Cluster(seeds) => {
                ensure_tls_provider(&seeds);
                let tls = seeds.iter().any(|seed| seed.starts_with("rediss://"));
                let mut builder = ClusterClientBuilder::new(seeds);
                if let Some(root) = tls_root_cert.filter(|_| tls) {
                    builder = builder.certs(certificates(root));
                }
                let client = builder
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .min_retry_wait(20)
                    .max_retry_wait(200)
                    .build()
                    .map_err(bad_url)?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                Ok(Backend::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    /// A connection handle for one store operation (cheap: each is a shared multiplexed
    /// connection).
    pub(crate) async fn conn(&self) -> RedisResult<Conn> {
        match self {
            Backend::Standalone(manager) => Ok(Conn::Manager(manager.clone())),
            Backend::Cluster(cluster) => Ok(Conn::Cluster(cluster.clone())),
            // Boxed: asking the sentinels is a large future, and every operation holds this one.
            Backend::Sentinel(sentinel) => Box::pin(sentinel.connection()).await.map(Conn::Master),
        }
    }

    /// Called when an operation ran past its deadline (no error to look at).
    pub(crate) fn observe_timeout(&self) {
        if let Backend::Sentinel(sentinel) = self {
            SentinelBackend::refresh_in_background(sentinel);
        }
    }
}

/// One operation's connection: either kind implements the crate's `ConnectionLike`, so scripts
/// and commands run the same way on every deployment shape.
#[derive(Clone)]
pub(crate) enum Conn {
    Manager(ConnectionManager),
    Master(MasterConn),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Master(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Master(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Master(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether an error means "Redis cannot serve this right now" (answered 503, retried later)
/// rather than a bug or bad data.
pub(crate) fn is_unavailable(error: &RedisError) -> bool {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_cluster_error()
    {
        return true;
    }
    match error.kind() {
        ErrorKind::ClusterConnectionNotFound
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel
        | ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        ) => true,
        // Out of memory, a failing disk (MISCONF) or a long-running script: Redis refuses the
        // write for now; a retry later can succeed.
        _ => matches!(
            error.code(),
            Some("OOM" | "MISCONF" | "BUSY" | "NOREPLICAS")
        ),
    }
}

pub(crate) fn map_error(error: RedisError) -> StoreError {
    if is_unavailable(&error) {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Internal(format!("redis: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_redis_url_is_a_standalone_server() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/0").unwrap(),
            Target::Standalone("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(
            Target::parse("rediss://cache.example:6380").unwrap(),
            Target::Standalone("rediss://cache.example:6380".into())
        );
    }

    #[test]
    fn a_list_of_redis_urls_is_a_cluster() {
        assert_eq!(
            Target::parse("redis://a:7000, redis://b:7001").unwrap(),
            Target::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])
        );
        assert_eq!(
            Target::parse("redis+cluster://a:7000").unwrap(),
            Target::Cluster(vec!["redis://a:7000".into()])
        );
    }

    #[test]
    fn a_sentinel_url_names_the_sentinels_and_the_master() {
        assert_eq!(
            Target::parse("redis+sentinel://s1:26379,s2/mymaster").unwrap(),
            Target::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
                master: "mymaster".into(),
                username: None,
                password: None,
            }
        );
        assert_eq!(
            Target::parse("redis+sentinel://app:pw@s1:5000/m").unwrap(),
            Target::Sentinel {
                sentinels: vec!["redis://s1:5000".into()],
                master: "m".into(),
                username: Some("app".into()),
                password: Some("pw".into()),
            }
        );
        assert!(Target::parse("redis+sentinel://s1:26379").is_err());
        assert!(Target::parse("redis+sentinel://s1:26379/").is_err());
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(Target::parse("http://localhost").is_err());
        assert!(Target::parse("").is_err());
        assert!(Target::parse("redis://a:1,http://b:2").is_err());
    }
}
