//! Graceful shutdown that loses no request the service has taken in.
//!
//! On SIGTERM (or SIGINT) the service:
//!
//! 1. starts *draining*: every response from now on says `Connection: close`, so keep-alive
//!    connections end after their current request instead of being cut between two;
//! 2. accepts the connections the kernel has already completed (the listen backlog), then
//!    closes the listening socket, so new connections are refused (a proxy or client retries them
//!    elsewhere) instead of being reset after the kernel had accepted them;
//! 3. waits until every connection it accepted has been answered at least once (a fresh
//!    connection may carry a request that has not been read yet; poem's own graceful stop would
//!    close such a connection unread);
//! 4. lets poem close the remaining idle connections and finish requests in flight;
//!
//! all within one deadline counted from the signal, after which whatever is left is dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The shutdown state shared by the acceptor, the middleware and the server loop.
#[derive(Clone, Default)]
pub struct Drain {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    draining: AtomicBool,
    listener_closed: AtomicBool,
    /// Connections accepted that have not written their first response yet.
    fresh: AtomicUsize,
    /// Woken on every change of the fields above.
    changed: Notify,
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Whether a shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.state.draining.load(Ordering::Acquire)
    }

    /// Begins draining now (the signal handler calls this; tests may too).
    pub fn start(&self) {
        if !self.state.draining.swap(true, Ordering::AcqRel) {
            tracing::info!("shutting down: refusing new connections, finishing the ones taken in");
        }
        self.state.changed.notify_waiters();
    }

    /// Waits until `condition` holds, re-checking whenever the state changes.
    async fn until(&self, condition: impl Fn(&State) -> bool) {
        loop {
            let changed = self.state.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change between the check and the wait is seen.
            changed.as_mut().enable();
            if condition(&self.state) {
                return;
            }
            changed.await;
        }
    }

    /// Completes once `signal` has fired and every connection taken in has been answered at
    /// least once: the moment for the server to close idle connections and stop.
    pub async fn after(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.start();
        self.until(|s| {
            s.listener_closed.load(Ordering::Acquire) && s.fresh.load(Ordering::Acquire) == 0
        })
        .await;
    }

    /// Runs `server` to its end, or until `grace` has passed since draining began, whichever
    /// comes first; `None` when the grace ran out (connections still open are then dropped).
    pub async fn bounded<T>(&self, server: impl Future<Output = T>, grace: Duration) -> Option<T> {
        let deadline = async {
            self.until(|s| s.draining.load(Ordering::Acquire)).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            out = server => Some(out),
            _ = deadline => None,
        }
    }
}

/// A TCP acceptor that, once draining, takes in the listen backlog and then closes its socket.
pub struct DrainingAcceptor {
    /// The same socket twice: tokio's side waits for connections, the std side takes in the
    /// backlog with plain non-blocking `accept` calls, which report an empty queue at once.
    listener: Option<(tokio::net::TcpListener, std::net::TcpListener)>,
    local: LocalAddr,
    drain: Drain,
}

impl DrainingAcceptor {
    pub fn new(listener: std::net::TcpListener, drain: Drain) -> io::Result<DrainingAcceptor> {
        listener.set_nonblocking(true)?;
        let local = LocalAddr(listener.local_addr()?.into());
        let waiting = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
        Ok(DrainingAcceptor {
            listener: Some((waiting, listener)),
            local,
            drain,
        })
    }

    fn take_in(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> (Tracked, LocalAddr, RemoteAddr, Scheme) {
        let state = self.drain.state.clone();
        state.fresh.fetch_add(1, Ordering::AcqRel);
        let stream = Tracked {
            stream,
            fresh: Some(Fresh(state)),
        };
        (
            stream,
            self.local.clone(),
            RemoteAddr(peer.into()),
            Scheme::HTTP,
        )
    }

    fn close(&mut self) {
        if self.listener.take().is_some() {
            self.drain
                .state
                .listener_closed
                .store(true, Ordering::Release);
            self.drain.state.changed.notify_waiters();
            tracing::info!("stopped accepting connections");
        }
    }
}

impl Acceptor for DrainingAcceptor {
    type Io = Tracked;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> io::Result<(Tracked, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let Some((waiting, backlog)) = &self.listener else {
                // Closed: poem's loop keeps polling until the shutdown future completes.
                return std::future::pending().await;
            };
            if self.drain.is_draining() {
                match backlog.accept() {
                    Ok((stream, peer)) => {
                        // Accepted sockets do not inherit the listener's non-blocking mode.
                        stream.set_nonblocking(true)?;
                        let stream = TcpStream::from_std(stream)?;
                        return Ok(self.take_in(stream, peer));
                    }
                    // A peer that gave up while queued; the next one may be fine.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Empty (or broken): nothing more to take in.
                    Err(_) => self.close(),
                }
                continue;
            }
            tokio::select! {
                accepted = waiting.accept() => {
                    let (stream, peer) = accepted?;
                    return Ok(self.take_in(stream, peer));
                }
                _ = self.drain.until(|s| s.draining.load(Ordering::Acquire)) => continue,
            }
        }
    }
}

/// Marks a connection as not answered yet; dropping it says it has been (or is gone).
struct Fresh(Arc<State>);

impl Drop for Fresh {
    fn drop(&mut self) {
        if self.0.fresh.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

/// A connection that reports when it first writes: the start of its first response.
pub struct Tracked {
    stream: TcpStream,
    fresh: Option<Fresh>,
}

impl Tracked {
    fn wrote(&mut self, result: &Poll<io::Result<usize>>) {
        if matches!(result, Poll::Ready(Ok(n)) if *n > 0) {
            self.fresh = None;
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn bound() -> (std::net::TcpListener, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        (listener, address)
    }

    #[tokio::test]
    async fn connections_queued_before_the_drain_are_taken_in_and_later_ones_refused() {
        let (listener, address) = bound();
        let drain = Drain::new();
        let mut acceptor = DrainingAcceptor::new(listener, drain.clone()).unwrap();
        // Completed by the kernel, never accepted by the service yet.
        let mut queued = Vec::new();
        for _ in 0..3 {
            queued.push(tokio::net::TcpStream::connect(address).await.unwrap());
        }
        drain.start();
        for _ in 0..3 {
            let (mut stream, ..) = acceptor.accept().await.unwrap();
            stream.write_all(b"x").await.unwrap();
        }
        let more = tokio::time::timeout(Duration::from_millis(100), acceptor.accept()).await;
        assert!(more.is_err(), "a closed acceptor has nothing more to give");
        let refused = tokio::net::TcpStream::connect(address).await;
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
        for mut stream in queued {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            assert_eq!(&byte, b"x");
        }
    }

    #[tokio::test]
    async fn the_drain_completes_only_when_every_connection_taken_in_has_answered() {
        let (listener, address) = bound();
        let drain = Drain::new();
        let mut acceptor = DrainingAcceptor::new(listener, drain.clone()).unwrap();
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut served, ..) = acceptor.accept().await.unwrap();
        let (fired, signal) = tokio::sync::oneshot::channel::<()>();
        let drained = tokio::spawn(drain.clone().after(async {
            let _ = signal.await;
        }));
        fired.send(()).unwrap();
        // The acceptor closes once polled while draining (poem polls it all the time).
        let closed = tokio::time::timeout(Duration::from_millis(100), acceptor.accept()).await;
        assert!(closed.is_err());
        assert!(!drained.is_finished(), "a connection is still unanswered");
        served.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("the drain completes once the connection answered")
            .unwrap();
    }

    #[tokio::test]
    async fn the_grace_bounds_a_server_that_never_finishes() {
        let drain = Drain::new();
        drain.start();
        let out = drain
            .bounded(std::future::pending::<()>(), Duration::from_millis(20))
            .await;
        assert!(out.is_none());
    }
}
