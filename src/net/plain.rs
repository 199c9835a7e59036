//! The plain (no TLS) accept loop of the probes listener: health and
//! reflection for load balancers and orchestrators, which have no client
//! certificate.
//!
//! Anyone who reaches the port may connect, so it gets the bounds of the
//! mTLS listener that apply without a certificate: at most `max_open`
//! connections at once and `max_per_source` from one source (a connection
//! beyond either is closed at once), and a connection that sends nothing
//! for `idle_timeout` reads as ended and is closed. Without them a client
//! opening connections and sending nothing took every file descriptor of
//! the node, and with them the mTLS listener's ability to accept.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::sources::{InProgress, Source, SourceLimits, Sources};

/// The bounds of one plain listener.
#[derive(Clone, Copy, Debug)]
pub struct PlainLimits {
    /// Connections open at once.
    pub max_open: usize,
    /// Connections open at once from one source (an IPv4 address, an IPv6
    /// /64: [`Source`]).
    pub max_per_source: usize,
    /// How long a connection may send nothing before it is closed.
    pub idle_timeout: Duration,
}

/// Accepts on `listener` within `limits`: the stream of admitted
/// connections for `Server::serve_with_incoming*`. Accepting stops when
/// the stream is dropped (the server stopped).
pub fn incoming(
    listener: TcpListener,
    limits: PlainLimits,
) -> ReceiverStream<io::Result<PlainStream>> {
    let (tx, rx) = mpsc::channel(16);
    let sources = Sources::new(SourceLimits {
        max_handshakes_per_source: limits.max_per_source,
        refused_certificate_records_per_source: 0,
        max_connections_per_source: limits.max_per_source,
    });
    let open = Arc::new(Semaphore::new(limits.max_open.max(1)));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "probes listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let source = Source::of(remote.ip());
            let Some(per_source) = sources.open(source) else {
                sources.limit_reached("probes: connections per source", source);
                continue;
            };
            let Ok(slot) = open.clone().try_acquire_owned() else {
                sources.limit_reached("probes: connections", source);
                continue;
            };
            let stream = PlainStream {
                inner: tcp,
                remote,
                timeout: limits.idle_timeout,
                idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                _slots: (slot, per_source),
            };
            if tx.send(Ok(stream)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// An admitted plain connection: holds its slots until dropped, and reads
/// as ended once it has sent nothing for the idle timeout.
pub struct PlainStream {
    inner: TcpStream,
    remote: SocketAddr,
    timeout: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    _slots: (OwnedSemaphorePermit, InProgress),
}

impl Connected for PlainStream {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.inner.local_addr().ok(),
            remote_addr: Some(self.remote),
        }
    }
}

impl AsyncRead for PlainStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let at = tokio::time::Instant::now() + self.timeout;
                    self.idle.as_mut().reset(at);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Nothing to read: ended once idle too long (the timer wakes
            // this task then).
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for PlainStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
