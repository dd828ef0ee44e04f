//! Opening a connection to a provider: TCP within the connect timeout, with
//! `TCP_NODELAY` (a request is one write, and nothing should wait behind it), then TLS
//! for `https` with the platform's certificate verifier and aws-lc-rs, as reqwest sets it
//! up, offering only HTTP/1.1.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::ClientError;

/// Where a connection goes: a pooled connection serves only requests to its own origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    https: bool,
    host: Arc<str>,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URL.
    ///
    /// # Errors
    /// When the URL is not one.
    pub fn of(uri: &Uri) -> Result<Self, ClientError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(ClientError::Url("only http and https URLs are supported")),
        };
        let host =
            uri.host().filter(|host| !host.is_empty()).ok_or(ClientError::Url("the URL has no host"))?;
        // An IPv6 literal comes bracketed; the connect and TLS calls want it bare.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self { https, host: Arc::from(host), port })
    }

    /// The `Host` header's value: the port only when it is not the scheme's own.
    pub fn host_header(&self) -> String {
        let default_port = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.to_string() };
        if self.port == default_port { host } else { format!("{host}:{}", self.port) }
    }
}

/// A provider connection: plain TCP or TLS over it.
#[derive(Debug)]
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(stream) => stream.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens connections.
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector that trusts what the platform trusts, and `extra_roots` too (for
    /// tests with their own certificate authority).
    ///
    /// # Errors
    /// When the platform's verifier cannot be set up.
    pub fn new(timeout: Duration, extra_roots: Vec<CertificateDer<'static>>) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = if extra_roots.is_empty() {
            rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, Arc::clone(&provider))
        }
        .map_err(ClientError::Tls)?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { tls: TlsConnector::from(Arc::new(config)), timeout })
    }

    /// A new connection to `origin`, within the connect timeout.
    ///
    /// # Errors
    /// When it cannot be opened in time, or TLS fails.
    pub async fn connect(&self, origin: &Origin) -> Result<Io, ClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let open = async {
            let tcp = connect_tcp(origin, deadline).await?;
            tcp.set_nodelay(true).map_err(ClientError::Connect)?;
            if !origin.https {
                return Ok(Io::Plain(tcp));
            }
            let name = ServerName::try_from(origin.host.to_string())
                .map_err(|_| ClientError::Url("the host is not a valid TLS server name"))?;
            let tls = self.tls.connect(name, tcp).await.map_err(ClientError::Connect)?;
            Ok(Io::Tls(Box::new(tls)))
        };
        tokio::time::timeout_at(deadline, open).await.map_err(|_| ClientError::ConnectTimeout)?
    }
}

/// The least time an address is given before the next one is tried.
const ATTEMPT_AT_LEAST: Duration = Duration::from_secs(1);

/// Connects to the first of the host's addresses that answers, IPv4 ones first: where
/// IPv6 is announced but not routed (many clusters), its attempt would otherwise take
/// the whole timeout. Each address gets an equal share of what is left of the timeout
/// (at least [`ATTEMPT_AT_LEAST`]).
async fn connect_tcp(origin: &Origin, deadline: tokio::time::Instant) -> Result<TcpStream, ClientError> {
    let mut addresses: Vec<_> =
        tokio::net::lookup_host((&*origin.host, origin.port)).await.map_err(ClientError::Connect)?.collect();
    addresses.sort_by_key(std::net::SocketAddr::is_ipv6);
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let count = addresses.len();
    for (tried, address) in addresses.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let untried = u32::try_from(count - tried).unwrap_or(u32::MAX);
        let share = (left / untried).max(ATTEMPT_AT_LEAST);
        match tokio::time::timeout(share, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(error)) => last_error = error,
            Err(_) => {
                last_error = io::Error::new(io::ErrorKind::TimedOut, format!("{address} did not answer"))
            }
        }
    }
    Err(ClientError::Connect(last_error))
}
