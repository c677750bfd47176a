//! Cuts off clients that send their request headers too slowly (slowloris): hyper, as poem
//! runs it, has no header read timeout, so a client trickling one byte a second would hold its
//! connection for ever.
//!
//! The guard sits between the acceptor and hyper and watches the plaintext bytes (after TLS). A
//! deadline starts when a connection is accepted and when the first byte of a further request
//! arrives; it ends when the blank line closing the headers (`\r\n\r\n`) has been read. Missing
//! it fails the read, and hyper closes the connection. Bodies are bounded by the request
//! timeout instead; idle keep-alive connections between requests have no deadline. HTTP/2 is
//! recognised by its preface and left to h2's own flow control and limits.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Wraps every connection of `inner` in a [`HeaderDeadline`].
pub struct HeaderDeadlineAcceptor<A> {
    inner: A,
    limit: Duration,
}

impl<A> HeaderDeadlineAcceptor<A> {
    pub fn new(inner: A, limit: Duration) -> Self {
        HeaderDeadlineAcceptor { inner, limit }
    }
}

impl<A: Acceptor> Acceptor for HeaderDeadlineAcceptor<A> {
    type Io = HeaderDeadline<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((HeaderDeadline::new(io, self.limit), local, remote, scheme))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers, against the deadline.
    Headers,
    /// Headers complete (the body, if any, is the request timeout's business).
    Body,
    /// A response has been written; the next byte starts a new request.
    Idle,
    /// HTTP/2: no deadline.
    Off,
}

/// A connection whose request headers must arrive within a limit.
pub struct HeaderDeadline<T> {
    inner: T,
    limit: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// The last bytes read, to find `\r\n\r\n` split across reads.
    tail: [u8; 3],
    /// Bytes read on this connection so far, up to the length of the HTTP/2 preface.
    seen: usize,
    first: [u8; 14],
}

impl<T> HeaderDeadline<T> {
    fn new(inner: T, limit: Duration) -> Self {
        HeaderDeadline {
            inner,
            limit,
            phase: Phase::Headers,
            deadline: Box::pin(tokio::time::sleep(limit)),
            tail: [0; 3],
            seen: 0,
            first: [0; 14],
        }
    }

    /// Follows the request through the bytes just read.
    fn observe(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.phase == Phase::Off {
            return;
        }
        if self.seen < self.first.len() {
            let take = (self.first.len() - self.seen).min(bytes.len());
            self.first[self.seen..self.seen + take].copy_from_slice(&bytes[..take]);
            self.seen += take;
            if self.seen == self.first.len() && self.first == HTTP2_PREFACE {
                self.phase = Phase::Off;
                return;
            }
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Headers;
            self.tail = [0; 3];
            self.deadline.as_mut().reset(Instant::now() + self.limit);
        }
        if self.phase != Phase::Headers {
            return;
        }
        // The previous read's last three bytes joined to this read's first three: a
        // terminator split across reads shows up here, one within the read below.
        let head = bytes.len().min(3);
        let mut seam = [0u8; 6];
        seam[..3].copy_from_slice(&self.tail);
        seam[3..3 + head].copy_from_slice(&bytes[..head]);
        let seam = &seam[..3 + head];
        let terminator = |w: &[u8]| w == b"\r\n\r\n";
        if seam.windows(4).any(terminator) || bytes.windows(4).any(terminator) {
            self.phase = Phase::Body;
        }
        let source = if bytes.len() >= 3 { bytes } else { seam };
        self.tail.copy_from_slice(&source[source.len() - 3..]);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeaderDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled()[before..].to_vec();
                this.observe(&filled);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Headers && this.deadline.as_mut().poll(cx).is_ready() {
                    tracing::debug!("a client sent its request headers too slowly; closing");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request headers not received in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeaderDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if matches!(this.phase, Phase::Headers | Phase::Body) && !buf.is_empty() {
            this.phase = Phase::Idle;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if matches!(this.phase, Phase::Headers | Phase::Body) && bufs.iter().any(|b| !b.is_empty())
        {
            this.phase = Phase::Idle;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
