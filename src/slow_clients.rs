//! Cuts off connections that hold the service without using it: clients that send their
//! request headers too slowly (slowloris), and connections that sit idle. hyper, as poem runs
//! it, has neither a header read timeout nor an idle timeout, for HTTP/1.1 or HTTP/2, so a
//! client trickling one byte a second, or sending the HTTP/2 preface and nothing else, would
//! hold its connection for ever.
//!
//! The guard sits between the acceptor and hyper and watches the plaintext bytes (after TLS),
//! in both directions. Two limits apply, to HTTP/1.1 and HTTP/2 alike:
//!
//! - `server.header_timeout`: a connection's first request headers must have arrived within it
//!   of the connection being accepted (this also bounds the TLS handshake), and so must every
//!   later request's, counted from its first byte (HTTP/1.1) or from its first `HEADERS` frame
//!   (HTTP/2, until the frame that carries `END_HEADERS` has been read in full);
//! - `server.idle_timeout`: a connection on which no request has arrived and no response has
//!   been written for that long is closed. It is longer than `server.request_timeout`, which
//!   bounds every request (body included), so a request in progress always writes its answer
//!   before its connection could count as idle. On HTTP/2, only requests and responses count
//!   (`HEADERS`, `CONTINUATION` and `DATA` frames), not pings, settings or window updates, so a
//!   client cannot keep an unused connection open with them.
//!
//! Missing a deadline fails the next read, and hyper closes the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The two limits a connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a request's headers may take to arrive.
    pub header: Duration,
    /// How long a connection may go without a request or a response.
    pub idle: Duration,
}

/// Wraps every connection of `inner` in a [`Deadlines`] guard.
pub struct DeadlineAcceptor<A> {
    inner: A,
    limits: Limits,
}

impl<A> DeadlineAcceptor<A> {
    pub fn new(inner: A, limits: Limits) -> Self {
        DeadlineAcceptor { inner, limits }
    }
}

impl<A: Acceptor> Acceptor for DeadlineAcceptor<A> {
    type Io = Deadlines<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((Deadlines::new(io, self.limits), local, remote, scheme))
    }
}

/// Where an HTTP/1.1 connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers, against the header deadline.
    Headers,
    /// Headers complete, no answer yet. The request timeout bounds this, well within the idle
    /// timeout, counted from the headers' end.
    Request,
    /// A response has been written; the next byte starts a new request.
    Idle,
}

#[derive(Debug)]
enum Protocol {
    /// Not known yet: this many bytes read so far, all of them the HTTP/2 preface's.
    Sniffing(usize),
    Http1 {
        phase: Phase,
        /// The last bytes read, to find `\r\n\r\n` split across reads.
        tail: [u8; 3],
    },
    Http2 {
        client: Frames,
        server: Frames,
        /// A header block has begun and its last frame has not been read in full.
        block_open: bool,
        /// A request's headers have been read in full.
        served: bool,
    },
}

/// Which limit a connection missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Header,
    Idle,
}

impl Limit {
    fn error(self) -> io::Error {
        let what = match self {
            Limit::Header => "request headers not received in time",
            Limit::Idle => "the connection was idle too long",
        };
        io::Error::new(io::ErrorKind::TimedOut, what)
    }
}

/// A connection held to [`Limits`].
pub struct Deadlines<T> {
    inner: T,
    limits: Limits,
    protocol: Protocol,
    /// When the request whose headers are awaited began (or the connection, for its first).
    headers_since: Instant,
    /// When a request's headers or a response were last seen.
    active_at: Instant,
    /// Fires at the deadline; moved later lazily, only when it fires early.
    timer: Pin<Box<Sleep>>,
    /// The limit this connection missed, once it has.
    missed: Option<Limit>,
}

impl<T> Deadlines<T> {
    fn new(inner: T, limits: Limits) -> Self {
        let now = Instant::now();
        Deadlines {
            inner,
            limits,
            protocol: Protocol::Sniffing(0),
            headers_since: now,
            active_at: now,
            timer: Box::pin(tokio::time::sleep(limits.header)),
            missed: None,
        }
    }

    /// The deadline that applies now.
    fn due(&self) -> (Instant, Limit) {
        let header = (self.headers_since + self.limits.header, Limit::Header);
        let idle = (self.active_at + self.limits.idle, Limit::Idle);
        let awaiting_headers = match &self.protocol {
            Protocol::Sniffing(_) => true,
            Protocol::Http1 { phase, .. } => *phase == Phase::Headers,
            Protocol::Http2 {
                block_open, served, ..
            } => *block_open || !*served,
        };
        if awaiting_headers { header } else { idle }
    }

    /// Whether the deadline that applies now has passed; if not, `cx` is woken when it does.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<Limit> {
        if let Some(missed) = self.missed {
            return Some(missed);
        }
        let (due, limit) = self.due();
        if due < self.timer.deadline() {
            self.timer.as_mut().reset(due);
        }
        loop {
            self.timer.as_mut().poll(cx).is_ready().then_some(())?;
            if due <= self.timer.deadline() {
                // Whatever the client sends from now on, this connection is over.
                self.missed = Some(limit);
                return Some(limit);
            }
            // The deadline moved on since the timer was set.
            self.timer.as_mut().reset(due);
        }
    }

    /// Follows the connection through bytes the client sent.
    fn on_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Protocol::Sniffing(seen) = self.protocol {
            let take = (HTTP2_PREFACE.len() - seen).min(bytes.len());
            if bytes[..take] != HTTP2_PREFACE[seen..seen + take] {
                self.protocol = Protocol::Http1 {
                    phase: Phase::Headers,
                    tail: [0; 3],
                };
                // The bytes taken for the preface's so far belong to the first request.
                self.on_read_http1(&HTTP2_PREFACE[..seen]);
                self.on_read_http1(bytes);
            } else if seen + take < HTTP2_PREFACE.len() {
                self.protocol = Protocol::Sniffing(seen + take);
            } else {
                self.protocol = Protocol::Http2 {
                    client: Frames::default(),
                    server: Frames::default(),
                    block_open: false,
                    served: false,
                };
                self.on_read_http2(&bytes[take..]);
            }
            return;
        }
        match self.protocol {
            Protocol::Http1 { .. } => self.on_read_http1(bytes),
            Protocol::Http2 { .. } => self.on_read_http2(bytes),
            Protocol::Sniffing(_) => {}
        }
    }

    fn on_read_http1(&mut self, bytes: &[u8]) {
        let Protocol::Http1 { phase, tail } = &mut self.protocol else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        if *phase == Phase::Idle {
            *phase = Phase::Headers;
            *tail = [0; 3];
            self.headers_since = Instant::now();
        }
        if *phase != Phase::Headers {
            return;
        }
        // The previous read's last three bytes joined to this read's first three: a
        // terminator split across reads shows up here, one within the read below.
        let head = bytes.len().min(3);
        let mut seam = [0u8; 6];
        seam[..3].copy_from_slice(tail);
        seam[3..3 + head].copy_from_slice(&bytes[..head]);
        let seam = &seam[..3 + head];
        let terminator = |w: &[u8]| w == b"\r\n\r\n";
        if seam.windows(4).any(terminator) || bytes.windows(4).any(terminator) {
            *phase = Phase::Request;
            self.active_at = Instant::now();
        }
        let source = if bytes.len() >= 3 { bytes } else { seam };
        tail.copy_from_slice(&source[source.len() - 3..]);
    }

    fn on_read_http2(&mut self, bytes: &[u8]) {
        let Protocol::Http2 {
            client,
            block_open,
            served,
            ..
        } = &mut self.protocol
        else {
            return;
        };
        let (headers_since, active_at) = (&mut self.headers_since, &mut self.active_at);
        client.feed(bytes, |event| match event {
            Frame::Start(HEADERS | CONTINUATION, _) if !*block_open => {
                *block_open = true;
                // The first request's headers are due counted from the connection's start.
                if *served {
                    *headers_since = Instant::now();
                }
            }
            Frame::End(kind @ (HEADERS | CONTINUATION | DATA), flags) => {
                if kind != DATA && flags & END_HEADERS != 0 {
                    *block_open = false;
                    *served = true;
                }
                *active_at = Instant::now();
            }
            _ => {}
        });
    }

    /// Follows the connection through bytes the service wrote.
    fn on_write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.protocol {
            Protocol::Http1 { phase, .. } => {
                // An informational answer (`100 Continue`) comes before the request's body, not
                // after the request.
                if *phase != Phase::Headers && !bytes.starts_with(b"HTTP/1.1 1") {
                    *phase = Phase::Idle;
                }
                self.active_at = Instant::now();
            }
            Protocol::Http2 { server, .. } => {
                let active_at = &mut self.active_at;
                server.feed(bytes, |event| {
                    if let Frame::End(HEADERS | CONTINUATION | DATA, _) = event {
                        *active_at = Instant::now();
                    }
                });
            }
            Protocol::Sniffing(_) => {}
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlines<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(missed) = this.missed {
            return Poll::Ready(Err(missed.error()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.on_read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.expired(cx) {
                Some(limit) => {
                    tracing::debug!(?limit, "closing a connection past its deadline");
                    Poll::Ready(Err(limit.error()))
                }
                None => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlines<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.on_write(&buf[..n]);
        }
        written
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
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = written {
            for buf in bufs {
                let part = n.min(buf.len());
                this.on_write(&buf[..part]);
                n -= part;
                if n == 0 {
                    break;
                }
            }
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// HTTP/2 frame types and flags (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// A frame's type and flags, when its 9-byte header has been read and when its payload has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Start(u8, u8),
    End(u8, u8),
}

/// Follows the frames of one direction of an HTTP/2 connection, across reads or writes of any
/// size, without keeping their payloads.
#[derive(Debug, Default)]
struct Frames {
    head: [u8; 9],
    /// Bytes of `head` read so far.
    filled: usize,
    /// Payload bytes of the current frame still to come, once its header is complete.
    left: u32,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8], mut on: impl FnMut(Frame)) {
        while !bytes.is_empty() {
            if self.filled < self.head.len() {
                let take = (self.head.len() - self.filled).min(bytes.len());
                self.head[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
                self.filled += take;
                bytes = &bytes[take..];
                if self.filled < self.head.len() {
                    return;
                }
                self.left = u32::from_be_bytes([0, self.head[0], self.head[1], self.head[2]]);
                on(Frame::Start(self.head[3], self.head[4]));
            } else {
                let take = bytes.len().min(self.left as usize);
                self.left -= take as u32;
                bytes = &bytes[take..];
            }
            if self.left == 0 {
                on(Frame::End(self.head[3], self.head[4]));
                self.filled = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut bytes = len.to_be_bytes()[1..].to_vec();
        bytes.extend([kind, flags]);
        bytes.extend(stream.to_be_bytes());
        bytes.extend(payload);
        bytes
    }

    fn events(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut frames = Frames::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            frames.feed(chunk, |e| seen.push(e));
        }
        seen
    }

    #[test]
    fn frames_are_followed_across_reads_of_any_size() {
        let mut stream = frame(0x4, 0, 0, &[]);
        stream.extend(frame(HEADERS, 0x1, 1, b"abc"));
        stream.extend(frame(CONTINUATION, END_HEADERS, 1, b"de"));
        let expected = vec![
            Frame::Start(0x4, 0),
            Frame::End(0x4, 0),
            Frame::Start(HEADERS, 0x1),
            Frame::End(HEADERS, 0x1),
            Frame::Start(CONTINUATION, END_HEADERS),
            Frame::End(CONTINUATION, END_HEADERS),
        ];
        assert_eq!(events(&[&stream]), expected);
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&bytewise), expected);
        let (a, b) = stream.split_at(13);
        assert_eq!(events(&[a, b]), expected);
    }

    #[test]
    fn a_frame_ends_only_when_its_payload_is_in() {
        let headers = frame(HEADERS, END_HEADERS, 1, &[0; 100]);
        assert_eq!(
            events(&[&headers[..50]]),
            vec![Frame::Start(HEADERS, END_HEADERS)]
        );
    }

    const LIMITS: Limits = Limits {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn limit(guard: &Deadlines<()>) -> Limit {
        guard.due().1
    }

    #[tokio::test]
    async fn http1_requests_are_held_to_the_header_deadline_and_idle_connections_to_the_idle_one() {
        let mut guard = Deadlines::new((), LIMITS);
        assert_eq!(limit(&guard), Limit::Header);
        guard.on_read(b"GET / HTTP/1.1\r\nhost: x\r\n");
        assert!(matches!(guard.protocol, Protocol::Http1 { .. }));
        assert_eq!(limit(&guard), Limit::Header);
        guard.on_read(b"\r");
        guard.on_read(b"\n");
        assert_eq!(limit(&guard), Limit::Idle, "counted from the headers' end");
        assert!(matches!(
            guard.protocol,
            Protocol::Http1 {
                phase: Phase::Request,
                ..
            }
        ));
        guard.on_write(b"HTTP/1.1 100 Continue\r\n\r\n");
        guard.on_read(b"a body");
        assert!(matches!(
            guard.protocol,
            Protocol::Http1 {
                phase: Phase::Request,
                ..
            }
        ));
        guard.on_write(b"HTTP/1.1 200 OK\r\n");
        assert!(matches!(
            guard.protocol,
            Protocol::Http1 {
                phase: Phase::Idle,
                ..
            }
        ));
        guard.on_read(b"G");
        assert_eq!(limit(&guard), Limit::Header);
    }

    #[tokio::test]
    async fn http2_header_blocks_are_held_to_the_header_deadline_until_they_end() {
        let mut guard = Deadlines::new((), LIMITS);
        guard.on_read(&HTTP2_PREFACE[..10]);
        assert!(matches!(guard.protocol, Protocol::Sniffing(10)));
        guard.on_read(&HTTP2_PREFACE[10..]);
        guard.on_read(&frame(0x4, 0, 0, &[]));
        assert_eq!(limit(&guard), Limit::Header, "no request yet");
        let started = guard.headers_since;
        guard.on_read(&frame(HEADERS, 0x1, 1, b"x"));
        assert_eq!(limit(&guard), Limit::Header, "no END_HEADERS yet");
        assert_eq!(
            guard.headers_since, started,
            "counted from the connection's start"
        );
        guard.on_read(&frame(CONTINUATION, END_HEADERS, 1, b"y"));
        assert_eq!(limit(&guard), Limit::Idle);

        // Pings and settings are not activity; responses are.
        let active = guard.active_at;
        // So that a later `Instant::now()` differs.
        tokio::time::sleep(Duration::from_millis(5)).await;
        guard.on_read(&frame(0x6, 0, 0, &[0; 8]));
        guard.on_write(&frame(0x6, 0x1, 0, &[0; 8]));
        assert_eq!(guard.active_at, active);
        guard.on_write(&frame(HEADERS, END_HEADERS, 1, b"z"));
        assert!(guard.active_at > active);

        // A later block is due counted from its own first frame, and until its payload is in.
        let headers = frame(HEADERS, END_HEADERS | 0x1, 3, &[0; 20]);
        guard.on_read(&headers[..15]);
        assert_eq!(limit(&guard), Limit::Header);
        assert!(guard.headers_since > started);
        guard.on_read(&headers[15..]);
        assert_eq!(limit(&guard), Limit::Idle);
    }

    #[tokio::test]
    async fn bytes_that_only_begin_like_the_preface_are_http1() {
        let mut guard = Deadlines::new((), LIMITS);
        guard.on_read(b"PRI * HTTP/2.0\r\n\r\nXX");
        assert!(matches!(
            guard.protocol,
            Protocol::Http1 {
                phase: Phase::Request,
                ..
            }
        ));
    }
}
