//! The HTTP section: where the server listens, which origins and proxies it believes,
//! the headers it adds, the WebSocket keep-alive and buffers, and the HTTP server's own
//! limits; and its conversion into the HTTP adapter's configuration types.
//!
//! Fields are named after their variables: the range rules (`#[validate]`) report under
//! the field's name in upper case.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use chatbox_http::HttpConfig;
use chatbox_http::edge::{ClientIpPolicy, SecurityHeaders};
use chatbox_http::server::ServerLimits;
use ipnet::IpNet;
use validator::Validate;

use super::reader::{Reader, split_list};
use super::syntax::valid_prefix;

const DEFAULT_METRICS_NETWORKS: &str = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16";

/// `SERVER_*`, origins, proxies, headers, `WS_*` and `HTTP_*`.
#[derive(Debug, Clone, Validate)]
pub struct HttpSection {
    /// `SERVER_HOST`.
    pub server_host: IpAddr,
    /// `SERVER_PORT` (0 picks a free port).
    pub server_port: u16,
    /// `CHATBOX_PATH_PREFIX`.
    pub chatbox_path_prefix: String,
    /// `ALLOWED_ORIGINS` (alias `WS_ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// `CORS_ALLOWED_ORIGINS`.
    pub cors_allowed_origins: Vec<String>,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<IpNet>,
    /// `METRICS_ALLOWED_NETWORKS`: who may scrape the metrics (and is not rate limited).
    pub metrics_allowed_networks: Vec<IpNet>,
    /// `CSP_FRAME_ANCESTORS`: who may embed the service's responses (a CSP source list).
    pub csp_frame_ancestors: String,
    /// `HSTS_MAX_AGE`: `Strict-Transport-Security` max-age; unset sends none.
    pub hsts_max_age: Option<Duration>,
    /// `MAX_MESSAGE_SIZE`.
    #[validate(range(
        min = 1024,
        max = 16_777_216,
        message = "must be between 1 KiB (1024) and 16 MiB (16777216) bytes"
    ))]
    pub max_message_size: usize,
    /// `WS_PING_INTERVAL` (extension).
    pub ws_ping_interval: Duration,
    /// `WS_PONG_TIMEOUT` (extension).
    pub ws_pong_timeout: Duration,
    /// `WS_WRITE_TIMEOUT` (extension).
    pub ws_write_timeout: Duration,
    /// `WS_SEND_BUFFER` (extension): bytes a socket may have queued.
    #[validate(range(
        min = 16_384,
        max = 67_108_864,
        message = "must be between 16 KiB (16384) and 64 MiB (67108864) bytes"
    ))]
    pub ws_send_buffer: usize,
    /// `HTTP_HEADER_READ_TIMEOUT` (extension): time to receive a request's headers.
    pub http_header_read_timeout: Duration,
    /// `HTTP_KEEPALIVE_TIMEOUT` (extension): how long an idle keep-alive connection stays.
    pub http_keepalive_timeout: Duration,
    /// `HTTP_MAX_PENDING_CONNECTIONS` (extension): open connections not (yet) upgraded.
    #[validate(range(min = 1, max = 1_000_000, message = "must be between 1 and 1000000"))]
    pub http_max_pending_connections: usize,
}

impl HttpSection {
    /// Reads the section. `--dev` prints live tokens for loopback URLs, so it listens on
    /// loopback unless told otherwise: those tokens are then no open door on every
    /// interface.
    pub(super) fn read(r: &mut Reader<'_>, dev: bool) -> Self {
        let default_host = if dev { "127.0.0.1" } else { "0.0.0.0" };
        let server_host = r.text("SERVER_HOST").unwrap_or_else(|| default_host.into());
        let server_host = server_host.parse::<IpAddr>().unwrap_or_else(|_| {
            r.fail("SERVER_HOST", format!("{server_host:?} is not an IP address"));
            IpAddr::from([0, 0, 0, 0])
        });
        let server_port = r.number::<u16>("SERVER_PORT", 8080);
        let chatbox_path_prefix = r.text("CHATBOX_PATH_PREFIX").unwrap_or_else(|| "/chat".into());
        if !valid_prefix(&chatbox_path_prefix) {
            r.fail(
                "CHATBOX_PATH_PREFIX",
                "must start with /, not end with /, and use only URL-safe characters",
            );
        }

        let (origin_name, origins_raw) = r
            .source
            .get_any(&["ALLOWED_ORIGINS", "WS_ALLOWED_ORIGINS"])
            .unwrap_or(("ALLOWED_ORIGINS", String::new()));
        let allowed_origins = r.origins(origin_name, split_list(&origins_raw));
        if allowed_origins.is_empty() {
            r.warnings
                .push("ALLOWED_ORIGINS is empty: WebSocket connections are accepted from any origin".into());
        }
        let cors = r.list("CORS_ALLOWED_ORIGINS");
        let cors_allowed_origins = r.origins("CORS_ALLOWED_ORIGINS", cors);
        let trusted_proxies = r.cidrs("TRUSTED_PROXIES", "");
        let metrics_allowed_networks = r.cidrs("METRICS_ALLOWED_NETWORKS", DEFAULT_METRICS_NETWORKS);

        let csp_frame_ancestors = r.text("CSP_FRAME_ANCESTORS").unwrap_or_else(|| "'self'".to_owned());
        if csp_frame_ancestors.contains([';', ','])
            || csp_frame_ancestors.chars().any(|c| c.is_control() || !c.is_ascii())
        {
            r.fail("CSP_FRAME_ANCESTORS", "must be a CSP source list: ASCII, without ';' or ','");
        }
        let hsts_max_age = r.source.get("HSTS_MAX_AGE").is_some().then(|| r.duration("HSTS_MAX_AGE", "365d"));

        if r.source.names().any(|name| name == "WS_SEND_QUEUE") {
            r.warnings.push(
                "WS_SEND_QUEUE is no longer read: a socket's queue is bounded in bytes by WS_SEND_BUFFER"
                    .into(),
            );
        }
        let section = Self {
            server_host,
            server_port,
            chatbox_path_prefix,
            allowed_origins,
            cors_allowed_origins,
            trusted_proxies,
            metrics_allowed_networks,
            csp_frame_ancestors,
            hsts_max_age,
            max_message_size: r.number("MAX_MESSAGE_SIZE", 1_048_576),
            ws_ping_interval: r.duration("WS_PING_INTERVAL", "54s"),
            ws_pong_timeout: r.duration("WS_PONG_TIMEOUT", "60s"),
            ws_write_timeout: r.duration("WS_WRITE_TIMEOUT", "10s"),
            ws_send_buffer: r.number("WS_SEND_BUFFER", 262_144),
            http_header_read_timeout: r.duration("HTTP_HEADER_READ_TIMEOUT", "10s"),
            http_keepalive_timeout: r.duration("HTTP_KEEPALIVE_TIMEOUT", "60s"),
            http_max_pending_connections: r.number("HTTP_MAX_PENDING_CONNECTIONS", 1024),
        };
        if section.ws_ping_interval >= section.ws_pong_timeout {
            r.fail("WS_PING_INTERVAL", "must be shorter than WS_PONG_TIMEOUT");
        }
        r.check_ranges(&section);
        section
    }

    /// The address to bind.
    #[must_use]
    pub const fn bind_address(&self) -> SocketAddr {
        SocketAddr::new(self.server_host, self.server_port)
    }

    /// The routes' and sockets' configuration; `enforce_token_expiry` is
    /// `JWT_ENFORCE_EXPIRY_ON_OPEN_SOCKETS`, of the auth section.
    #[must_use]
    pub fn http_config(&self, enforce_token_expiry: bool) -> HttpConfig {
        HttpConfig {
            path_prefix: self.chatbox_path_prefix.clone(),
            allowed_origins: self.allowed_origins.clone(),
            cors_allowed_origins: self.cors_allowed_origins.clone(),
            max_message_size: self.max_message_size,
            ping_interval: self.ws_ping_interval,
            pong_timeout: self.ws_pong_timeout,
            write_timeout: self.ws_write_timeout,
            enforce_token_expiry,
            send_buffer_bytes: self.ws_send_buffer,
        }
    }

    /// The HTTP server's connection limits.
    #[must_use]
    pub const fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: self.http_header_read_timeout,
            keepalive_timeout: self.http_keepalive_timeout,
            max_pending: self.http_max_pending_connections,
        }
    }

    /// Whose `X-Forwarded-For` is believed.
    #[must_use]
    pub fn client_ip_policy(&self) -> ClientIpPolicy {
        ClientIpPolicy::new(self.trusted_proxies.clone())
    }

    /// The headers added to every response.
    ///
    /// # Errors
    /// When `CSP_FRAME_ANCESTORS` cannot be a header value (validation refuses such
    /// values first).
    pub fn security_headers(&self) -> anyhow::Result<SecurityHeaders> {
        SecurityHeaders::new(&self.csp_frame_ancestors, self.hsts_max_age.map_or(0, |age| age.as_secs()))
            .context("CSP_FRAME_ANCESTORS")
    }
}
