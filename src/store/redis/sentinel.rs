//! Redis behind Sentinel: the sentinels name the master, and every connection to it is made
//! through them and checked with `ROLE` before it carries a single operation.
//!
//! Not a `ConnectionManager`: that reconnects by itself to the address it was first given. After
//! a failover that address can answer again as a master that is empty or stale (the old master
//! restarted, before the sentinels turn it into a replica). Reads there would find no
//! revocations, and writes there (a revocation among them) would be acknowledged and then lost
//! when it resyncs from the new master. So a connection that fails is dropped, never re-made to
//! the same address, and the next operation asks the sentinels again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    Role, ServerErrorKind, Value,
};

pub(crate) struct SentinelBackend {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: std::sync::Mutex<Option<Master>>,
    /// Numbers each connection made, so that a late failure of an old one does not drop a new
    /// one.
    connections_made: AtomicU64,
    refreshing: AtomicBool,
    timeout: Duration,
}

/// The connection to the server the sentinels named, once it said it is a master.
#[derive(Clone)]
struct Master {
    number: u64,
    address: String,
    conn: MultiplexedConnection,
}

/// One operation's connection to the master. It reports its own failures, so that a broken
/// connection is dropped by the operation that found it broken.
#[derive(Clone)]
pub(crate) struct MasterConn {
    conn: MultiplexedConnection,
    number: u64,
    backend: Arc<SentinelBackend>,
}

impl SentinelBackend {
    pub(crate) fn new(sentinel: SentinelClient, timeout: Duration) -> SentinelBackend {
        SentinelBackend {
            sentinel: tokio::sync::Mutex::new(sentinel),
            current: std::sync::Mutex::new(None),
            connections_made: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            timeout,
        }
    }

    pub(crate) async fn connection(self: &Arc<Self>) -> RedisResult<MasterConn> {
        let master = match self.current()? {
            Some(master) => master,
            None => self.resolve(false).await?,
        };
        Ok(MasterConn {
            conn: master.conn,
            number: master.number,
            backend: Arc::clone(self),
        })
    }

    fn current(&self) -> RedisResult<Option<Master>> {
        Ok(self.lock_current()?.clone())
    }

    fn lock_current(&self) -> RedisResult<std::sync::MutexGuard<'_, Option<Master>>> {
        self.current
            .lock()
            .map_err(|_| RedisError::from((ErrorKind::Client, "sentinel state poisoned")))
    }

    /// Asks the sentinels for the master and connects to it, unless the connection in use
    /// already goes there. Without `ask_anyway`, a connection that another operation made
    /// while this one waited for the sentinels is taken as it is.
    async fn resolve(&self, ask_anyway: bool) -> RedisResult<Master> {
        let mut sentinel = self.sentinel.lock().await;
        let known = self.current()?;
        if let Some(master) = &known
            && !ask_anyway
        {
            return Ok(master.clone());
        }
        let connect = async {
            let client = sentinel.async_get_client().await?;
            let address = client.get_connection_info().addr().to_string();
            if let Some(master) = known.filter(|master| master.address == address) {
                return Ok(master);
            }
            let conn = connect_to_master(&client, self.timeout).await?;
            let number = self.connections_made.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(master = %address, "redis sentinel: using master");
            Ok::<_, RedisError>(Master {
                number,
                address,
                conn,
            })
        };
        let master = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the sentinels or the master they named did not answer in time",
                ))
            })??;
        *self.lock_current()? = Some(master.clone());
        Ok(master)
    }

    /// An operation on connection `number` failed. A connection that cannot reach its server,
    /// or whose server may no longer be the master (`READONLY`, `MASTERDOWN`, or loading its
    /// data after a restart), is dropped: the next operation asks the sentinels. A master that
    /// refuses a write for now (out of memory, a failing disk) keeps its connection.
    fn failed(&self, number: u64, error: &RedisError) {
        let lost = error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal();
        let moved = matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
            )
        );
        if !(lost || moved) {
            return;
        }
        if let Ok(mut current) = self.lock_current()
            && current
                .as_ref()
                .is_some_and(|master| master.number == number)
        {
            *current = None;
        }
    }

    /// An operation ran past its deadline: the master may be hung or cut off while its
    /// connection looks open, so ask the sentinels in the background whether it moved.
    pub(crate) fn refresh_in_background(this: &Arc<SentinelBackend>) {
        if this.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(this);
        tokio::spawn(async move {
            if let Err(error) = this.resolve(true).await {
                tracing::warn!(%error, "redis sentinel: could not resolve the master");
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }
}

/// Connects to the server the sentinels named and uses the connection only if that server says
/// it is a master: the sentinels' answer may be out of date by the time it arrives.
async fn connect_to_master(
    client: &Client,
    timeout: Duration,
) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    match redis::cmd("ROLE").query_async::<Role>(&mut conn).await? {
        Role::Primary { .. } => Ok(conn),
        _ => Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::MasterDown),
            "the server the sentinels named is not a master",
        ))),
    }
}

impl MasterConn {
    fn report<'a, T: Send + 'a>(
        backend: &'a SentinelBackend,
        number: u64,
        reply: RedisFuture<'a, T>,
    ) -> RedisFuture<'a, T> {
        Box::pin(async move {
            let reply = reply.await;
            if let Err(error) = &reply {
                backend.failed(number, error);
            }
            reply
        })
    }
}

impl ConnectionLike for MasterConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let MasterConn {
            conn,
            number,
            backend,
        } = self;
        Self::report(backend, *number, conn.req_packed_command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let MasterConn {
            conn,
            number,
            backend,
        } = self;
        Self::report(
            backend,
            *number,
            conn.req_packed_commands(pipeline, offset, count),
        )
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
