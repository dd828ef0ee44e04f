//! The application: adapters wired by configuration, the HTTP server, the background
//! tasks, and the shutdown sequence.
//!
//! Shutdown, in order: readiness turns 503, new sockets are refused (503) and new
//! messages too (`SERVICE_UNAVAILABLE`); answers still running get until the deadline
//! (`SHUTDOWN_TIMEOUT` less a short grace) to finish, then are cancelled, and either way
//! are stored and end with their `done` frame; then every socket writes what is queued
//! for it and gets close 1001 "Server shutting down"; every tracked task (sockets,
//! session actors, cleanup loops) is awaited; the listener closes last, so probes keep
//! getting answers while the server drains.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chatbox_application::chat::ChatPorts;
use chatbox_application::limits::ConnectionGate;
use chatbox_application::ports::{
    Clock, IdGenerator, LlmProvider, Randomness, SessionCatalog, SessionRepository,
};
use chatbox_application::settings::{ModelInfo, RetryPolicy};
use chatbox_application::{ChatService, ChatSettings};
use chatbox_domain::rate_limit::Quota;
use chatbox_domain::{ModelId, Timestamp};
use chatbox_http::edge::{ClientIpPolicy, HttpLimiters, HttpQuotas, SecurityHeaders};
use chatbox_http::server::ServerLimits;
use chatbox_http::{HttpConfig, HttpState, JwtSettings, JwtVerifier};
use chatbox_llm::{AnthropicProvider, DemoProvider, DifyProvider, OpenAiProvider, ProviderConfig};
use chatbox_memory_store::MemorySessionRepository;
use chatbox_mongodb_store::{KeyRing, MongoConfig, MongoSessionRepository};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{ProviderKind, ProviderSettings, Settings, StorageBackend};
use crate::memory_report::MemoryProbe;

/// The longest one storage call may take before it counts as failed.
const STORAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Wall-clock time from the operating system, and monotonic time from the runtime's
/// clock: the same clock the runtime's timers use, so deadlines computed from
/// [`Clock::monotonic`] and the sleeps that wait for them always agree (also under a
/// paused test clock).
#[derive(Debug)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self { origin: tokio::time::Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Random 128-bit ids as 32 hex characters.
#[derive(Debug, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn new_id(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// Randomness from the thread-local generator.
#[derive(Debug, Default)]
pub struct ThreadRandomness;

impl Randomness for ThreadRandomness {
    fn unit(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// Connects to MongoDB per `MONGO_*` and `ENCRYPTION_*`: waits for a server (with the
/// retries), creates the indexes; fails with a clear error (never the URI) otherwise.
///
/// # Errors
/// When MongoDB is not configured, unreachable after the retries, or its indexes cannot
/// be created.
pub async fn mongo_repository(settings: &Settings) -> anyhow::Result<MongoSessionRepository> {
    let mongo = settings.mongo.as_ref().context("MongoDB storage needs MONGO_URI")?;
    let keys = match &settings.encryption {
        None => None,
        Some(encryption) => Some(
            KeyRing::new(encryption.key_id.clone(), &encryption.key, &encryption.old_keys)
                .context("ENCRYPTION_OLD_KEYS")?,
        ),
    };
    let config = MongoConfig {
        uri: mongo.uri.clone(),
        database: mongo.database.clone(),
        collection: mongo.collection.clone(),
        connect_timeout: mongo.connect_timeout,
        retry: chatbox_mongodb_store::RetryPolicy {
            attempts: mongo.retry_attempts,
            delay: mongo.retry_delay,
            max_delay: mongo.retry_max_delay,
        },
        keys,
    };
    let repository = MongoSessionRepository::connect(config).await.context("cannot use MongoDB storage")?;
    info!(database = %mongo.database, collection = %mongo.collection, "MongoDB storage ready");
    Ok(repository)
}

/// A built application: listening, not yet serving.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    listener: TcpListener,
    address: SocketAddr,
    chat: ChatService,
    http: Arc<HttpState>,
    tasks: TaskTracker,
    /// The memory backend, when it is the one in use (for [`Self::memory_probe`]).
    memory_store: Option<Arc<MemorySessionRepository>>,
}

impl Application {
    /// Wires everything and binds the listener.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tasks = TaskTracker::new();
        // One store serves both ports: the chat path's writes (timed by the metrics) and
        // the API's reads. The memory store is also kept for the memory probe.
        let metrics = crate::metrics::ServiceMetrics::new(&settings)?;
        let memory_store = (settings.storage_backend == StorageBackend::Memory)
            .then(|| Arc::new(MemorySessionRepository::new(settings.memory_store_max_sessions)));
        let (repository, catalog): (Arc<dyn SessionRepository>, Arc<dyn SessionCatalog>) = match &memory_store
        {
            Some(store) => (
                Arc::clone(store) as Arc<dyn SessionRepository>,
                Arc::clone(store) as Arc<dyn SessionCatalog>,
            ),
            None => {
                let store = Arc::new(mongo_repository(&settings).await?.with_metrics(metrics.recorder()));
                (Arc::clone(&store) as Arc<dyn SessionRepository>, store)
            }
        };
        let repository = metrics.timed(repository);
        let mut providers: HashMap<ModelId, Arc<dyn LlmProvider>> = HashMap::new();
        let mut models = Vec::with_capacity(settings.providers.len());
        for provider in &settings.providers {
            let adapter = provider_adapter(provider)
                .with_context(|| format!("cannot set up provider {}", provider.id))?;
            providers.insert(provider.id.clone(), adapter);
            models.push(ModelInfo { id: provider.id.clone(), name: provider.name.clone() });
        }
        let quota = Quota::new(settings.rate_limit, settings.rate_window)
            .context("RATE_LIMIT and RATE_WINDOW must be positive")?;
        let command_quota = Quota::new(settings.ws_command_budget, Duration::from_secs(60))
            .context("WS_COMMAND_BUDGET must be positive")?;
        let chat_settings = ChatSettings {
            models: Arc::from(models),
            max_content_chars: settings.max_content_chars,
            message_quota: quota,
            command_quota,
            answer_queue_limit: settings.answer_queue_limit,
            stream_timeout: settings.llm_stream_timeout,
            idle_timeout: settings.llm_idle_timeout,
            context_messages: settings.llm_context_messages,
            context_max_chars: settings.llm_context_max_chars,
            system_prompt: settings.llm_system_prompt.clone(),
            session_ttl: settings.session_ttl,
            reconnect_timeout: settings.reconnect_timeout,
            max_answer_chars: settings.max_answer_chars,
            replay_page_size: 200,
            retry: RetryPolicy {
                max_retries: settings.llm_max_retries,
                base_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(5),
            },
            fallbacks: settings
                .providers
                .iter()
                .filter_map(|p| p.fallback.clone().map(|fallback| (p.id.clone(), fallback)))
                .collect(),
            storage_timeout: STORAGE_TIMEOUT,
            max_active_sessions_per_user: settings.max_active_sessions_per_user,
            share_ttl: settings.share_ttl,
            help_alert_quota: Quota::new(HELP_ALERTS_PER_SESSION, HELP_ALERT_WINDOW)
                .context("the help alert quota")?,
            admin_panel_url: settings.alerts.admin_panel_url.clone(),
        };
        let ports = ChatPorts {
            repository,
            providers,
            clock: Arc::new(SystemClock::default()),
            ids: Arc::new(RandomIds),
            random: Arc::new(ThreadRandomness),
            catalog,
            notifiers: crate::alerts::notifiers(&settings.alerts)?,
            metrics: metrics.recorder(),
        };
        let chat = ChatService::new(ports, chat_settings, tasks.clone());
        let jwt = JwtVerifier::new(&JwtSettings {
            secret: settings.jwt_secret.clone(),
            algorithms: settings.jwt_algorithms.clone(),
            require_exp: settings.jwt_require_exp,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            leeway: settings.jwt_leeway,
        });
        let http = Arc::new(HttpState {
            chat: chat.clone(),
            gate: ConnectionGate::new(settings.max_connections, settings.max_connections_per_user),
            jwt,
            config: HttpConfig {
                path_prefix: settings.chatbox_path_prefix.clone(),
                allowed_origins: settings.allowed_origins.clone(),
                cors_allowed_origins: settings.cors_allowed_origins.clone(),
                max_message_size: settings.max_message_size,
                ping_interval: settings.ws_ping_interval,
                pong_timeout: settings.ws_pong_timeout,
                write_timeout: settings.ws_write_timeout,
                enforce_token_expiry: settings.jwt_enforce_expiry_on_open_sockets,
                send_buffer_bytes: settings.ws_send_buffer,
            },
            tasks: tasks.clone(),
            shutdown: CancellationToken::new(),
            limiters: HttpLimiters::new(http_quotas(&settings)?, settings.metrics_allowed_networks.clone()),
            client_ip: ClientIpPolicy::new(settings.trusted_proxies.clone()),
            security_headers: SecurityHeaders::new(
                &settings.csp_frame_ancestors,
                settings.hsts_max_age.map_or(0, |age| age.as_secs()),
            )
            .context("CSP_FRAME_ANCESTORS")?,
            metrics: metrics.http(&settings),
        });
        metrics.observe(&http);
        let listener = listen(settings.bind_address())
            .with_context(|| format!("cannot listen on {}", settings.bind_address()))?;
        let address = listener.local_addr()?;
        Ok(Self { settings, listener, address, chat, http, tasks, memory_store })
    }

    /// The bound address (with the real port when `SERVER_PORT=0`).
    #[must_use]
    pub const fn address(&self) -> SocketAddr {
        self.address
    }

    /// Reads the sizes of the in-memory state, now and after serving started.
    #[must_use]
    pub fn memory_probe(&self) -> MemoryProbe {
        MemoryProbe {
            chat: self.chat.clone(),
            gate: Arc::clone(&self.http.gate),
            tasks: self.tasks.clone(),
            memory_store: self.memory_store.clone(),
        }
    }

    /// Serves until `shutdown` completes, then drains and stops within
    /// `SHUTDOWN_TIMEOUT`.
    ///
    /// # Errors
    /// Never at present; the signature leaves room for start-up failures.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self { settings, listener, address, chat, http, tasks, .. } = self;
        let stop_background = CancellationToken::new();
        spawn_session_cleanup(&tasks, &chat, &settings, stop_background.clone());
        spawn_rate_limiter_cleanup(&tasks, &chat, &http, &settings, stop_background.clone());

        let server_done = CancellationToken::new();
        let routes = chatbox_http::routes(Arc::clone(&http));
        let limits = ServerLimits {
            header_read_timeout: settings.http_header_read_timeout,
            keepalive_timeout: settings.http_keepalive_timeout,
            max_pending: settings.http_max_pending_connections,
        };
        let server = tokio::spawn(chatbox_http::server::serve(listener, routes, limits, server_done.clone()));
        info!("Server listening on {address}");

        shutdown.await;
        let deadline = Instant::now() + settings.shutdown_timeout;
        info!(timeout = %humantime::format_duration(settings.shutdown_timeout), "Shutdown started: draining");
        http.gate.start_draining();
        stop_background.cancel();
        chat.begin_shutdown();
        tasks.close();

        // The answers finish (or are cut at their deadline, leaving a short grace so the
        // cut ones are still stored) while their sockets stay open to receive them...
        let grace =
            (settings.shutdown_timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(3));
        let answers_deadline = deadline.checked_sub(grace).unwrap_or(deadline);
        if tokio::time::timeout_at(answers_deadline.into(), chat.actors_stopped()).await.is_err() {
            warn!("Shutdown deadline reached: cancelling the answers still running");
            chat.cancel_running_answers();
            let _ = tokio::time::timeout_at(deadline.into(), chat.actors_stopped()).await;
        }
        // ...then every socket writes what is queued for it (the answers' last frames
        // included) and closes with 1001.
        http.shutdown.cancel();
        if tokio::time::timeout_at(deadline.into(), tasks.wait()).await.is_err() {
            warn!(
                remaining = tasks.len() + chat.running_actors(),
                "Shutdown deadline passed with tasks still running"
            );
        }
        server_done.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
        // The last line: how many tracked tasks (sockets, actors, loops) were left behind.
        info!(tasks_running = tasks.len() + chat.running_actors(), "Shutdown complete");
        Ok(())
    }
}

/// The listening socket. `TCP_NODELAY` is set on it so that every accepted connection
/// inherits it (Linux and the BSDs copy it to accepted sockets): streamed chunks are small
/// writes, and Nagle's algorithm would hold each one back until the previous was
/// acknowledged, adding up to 40 ms (the peer's delayed ACK) per chunk.
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Help alerts per session (and per [`HELP_ALERT_WINDOW`]); more are skipped and logged.
const HELP_ALERTS_PER_SESSION: u32 = 5;
/// The window of [`HELP_ALERTS_PER_SESSION`].
const HELP_ALERT_WINDOW: Duration = Duration::from_secs(300);
/// Requests per user per minute on the user routes.
const USER_HTTP_REQUESTS_PER_MINUTE: u32 = 120;

fn http_quotas(settings: &Settings) -> anyhow::Result<HttpQuotas> {
    let minute = Duration::from_secs(60);
    Ok(HttpQuotas {
        admin: Quota::new(settings.admin_rate_limit, settings.admin_rate_window)
            .context("ADMIN_RATE_LIMIT and ADMIN_RATE_WINDOW must be positive")?,
        user: Quota::new(USER_HTTP_REQUESTS_PER_MINUTE, minute).context("the user route quota")?,
        public: Quota::new(settings.public_rate_limit, minute)
            .context("PUBLIC_RATE_LIMIT must be positive")?,
    })
}

/// The adapter for one configured provider.
fn provider_adapter(provider: &ProviderSettings) -> anyhow::Result<Arc<dyn LlmProvider>> {
    let config = || ProviderConfig {
        endpoint: provider.endpoint.clone().unwrap_or_default(),
        api_key: provider.api_key.clone(),
        model: provider.model.clone(),
        max_tokens: provider.max_tokens,
        temperature: provider.temperature,
    };
    Ok(match provider.kind {
        ProviderKind::Demo => Arc::new(DemoProvider::new(provider.delay)),
        ProviderKind::OpenAi => Arc::new(OpenAiProvider::new(config())?),
        ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(config())?),
        ProviderKind::Dify => Arc::new(DifyProvider::new(config())?),
    })
}

fn spawn_session_cleanup(
    tasks: &TaskTracker,
    chat: &ChatService,
    settings: &Settings,
    stop: CancellationToken,
) {
    let interval = settings.session_cleanup_interval;
    info!(
        "Starting session cleanup task interval={} ttl={}",
        humantime::format_duration(interval),
        humantime::format_duration(settings.session_ttl)
    );
    let chat = chat.clone();
    spawn_periodic(tasks, interval, stop, move || {
        let count = chat.cleanup_sessions();
        info!("Cleaned up expired sessions count={count}");
    });
}

/// Cleans every limiter: messages per user, help alerts per session, and the HTTP
/// limiters per admin, user and client address; the log line reports their sum.
fn spawn_rate_limiter_cleanup(
    tasks: &TaskTracker,
    chat: &ChatService,
    http: &Arc<HttpState>,
    settings: &Settings,
    stop: CancellationToken,
) {
    let interval = settings.rate_limit_cleanup_interval;
    info!("Starting rate limiter cleanup task interval={}", humantime::format_duration(interval));
    let chat = chat.clone();
    let http = Arc::clone(http);
    spawn_periodic(tasks, interval, stop, move || {
        let counts = [
            chat.cleanup_rate_limiter(),
            chat.cleanup_alert_limiter(),
            http.limiters.cleanup(chat.clock().monotonic()),
        ];
        let (before, after) = counts.iter().fold((0, 0), |(b, a), (before, after)| (b + before, a + after));
        info!(
            "Rate limiter cleanup completed before={before} after={after} removed={}",
            before.saturating_sub(after)
        );
    });
}

/// Runs `job` every `interval` (first run after one interval) until `stop`, as a tracked
/// task. `job` is quick and synchronous, so stopping never waits on it for long.
fn spawn_periodic(
    tasks: &TaskTracker,
    interval: Duration,
    stop: CancellationToken,
    mut job: impl FnMut() + Send + 'static,
) {
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => job(),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_inherit_tcp_nodelay() {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
        let address = listener.local_addr().expect("address");
        let client = tokio::net::TcpStream::connect(address);
        let (accepted, _client) = tokio::join!(listener.accept(), client);
        let (stream, _) = accepted.expect("accept");
        assert!(stream.nodelay().expect("nodelay"), "small streamed frames must not wait for Nagle");
    }
}
