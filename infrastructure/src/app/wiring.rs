//! Wiring: the [`Application`] built from the [`Settings`]: the store, the providers, the
//! chat use-cases, the HTTP state, the listener; then serving until a shutdown signal.
//!
//! Each section of the settings converts itself into its adapter's configuration; this
//! file only connects the results. The chat use-cases are built in one place,
//! `chat_service`, from the ports and the chat settings.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use chatbox_application::ChatService;
use chatbox_application::chat::ChatPorts;
use chatbox_application::files::{FilePorts, Uploads};
use chatbox_application::ports::LlmProvider;
use chatbox_domain::ModelId;
use chatbox_http::edge::HttpLimiters;
use chatbox_http::{HttpState, JwtVerifier};
use chatbox_llm::{AnthropicProvider, DemoProvider, DifyProvider, OpenAiProvider};
use chatbox_memory_store::MemorySessionRepository;
use chatbox_mongodb_store::MongoSessionRepository;
use chatbox_object_store::ObjectFileStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use super::background::Cleanup;
use super::listener::{Server, listen};
use super::shared::{self, Replicas};
use super::shutdown::{Running, shut_down};
use super::storage::{self, Stores};
use super::system::{RandomIds, SystemClock, ThreadRandomness};
use crate::config::{ProviderKind, ProviderSettings, ProvidersSection, Settings, UploadStore};
use crate::memory_report::MemoryProbe;
use crate::metrics::ServiceMetrics;

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
    /// The MongoDB store, when in use: shutdown closes it last.
    mongo: Option<Arc<MongoSessionRepository>>,
}

impl Application {
    /// Wires everything and binds the listener.
    ///
    /// # Errors
    /// When the storage cannot be used, an adapter cannot be set up, or the address
    /// cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tasks = TaskTracker::new();
        let metrics = ServiceMetrics::new(&settings.providers)?;
        let stores = storage::open(&settings.storage, &metrics).await?;
        let models: Arc<[_]> = Arc::from(settings.providers.models());
        let replicas = shared::open(&settings.hub, models, metrics.recorder()).await?;
        let shared_state = replicas.shared_state.clone();
        let chat = chat_service(&settings, &stores, replicas, &metrics, &tasks)?;
        let http = Arc::new(HttpState {
            chat: chat.clone(),
            gate: settings.limits.connection_gate(),
            jwt: JwtVerifier::new(&settings.auth.jwt_settings()),
            config: settings.http.http_config(settings.auth.jwt_enforce_expiry_on_open_sockets),
            tasks: tasks.clone(),
            shutdown: CancellationToken::new(),
            limiters: HttpLimiters::new(
                settings.limits.http_quotas()?,
                settings.http.metrics_allowed_networks.clone(),
                shared_state,
            ),
            client_ip: settings.http.client_ip_policy(),
            security_headers: settings.http.security_headers()?,
            metrics: metrics.http(&settings.http),
        });
        metrics.observe(&http);
        let bind = settings.http.bind_address();
        let listener = listen(bind).with_context(|| format!("cannot listen on {bind}"))?;
        let address = listener.local_addr()?;
        Ok(Self {
            settings,
            listener,
            address,
            chat,
            http,
            tasks,
            memory_store: stores.memory,
            mongo: stores.mongo,
        })
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
    /// `SHUTDOWN_TIMEOUT` (see the `shutdown` module for the order).
    ///
    /// # Errors
    /// Never at present; the signature leaves room for start-up failures.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self { settings, listener, address, chat, http, tasks, mongo, .. } = self;
        let cleanup = Cleanup::start(&tasks, &chat, &http, &settings.chat, &settings.limits);
        let server = Server::start(listener, &http, settings.http.server_limits());
        info!("Server listening on {address}");
        shutdown.await;
        shut_down(Running { chat, http, tasks, cleanup, server, mongo }, settings.shutdown_timeout).await;
        Ok(())
    }
}

/// The chat use-cases: their ports (the store behind its two ports, one adapter per
/// provider, the system's clock, ids and randomness, the alert channels, the metrics)
/// and their settings; their tasks (session actors) are tracked by `tasks`.
fn chat_service(
    settings: &Settings,
    stores: &Stores,
    replicas: Replicas,
    metrics: &ServiceMetrics,
    tasks: &TaskTracker,
) -> anyhow::Result<ChatService> {
    let ports = ChatPorts {
        repository: Arc::clone(&stores.repository),
        providers: llm_providers(&settings.providers)?,
        clock: Arc::new(SystemClock::default()),
        ids: Arc::new(RandomIds),
        random: Arc::new(ThreadRandomness),
        catalog: Arc::clone(&stores.catalog),
        uploads: Some(uploads(settings, stores)?),
        notifiers: crate::alerts::notifiers(&settings.alerts)?,
        metrics: metrics.recorder(),
        hub: replicas.hub,
        shared: replicas.shared_state,
    };
    let chat_settings = settings.chat.chat_settings(
        &settings.limits,
        &settings.providers,
        settings.alerts.admin_panel_url.clone(),
    )?;
    Ok(ChatService::new(ports, chat_settings, tasks.clone()))
}

/// Files in conversations: the configured object store, the records in the session
/// store.
///
/// # Errors
/// When the object store cannot be opened (a directory that cannot be created, an S3
/// configuration the client refuses).
fn uploads(settings: &Settings, stores: &Stores) -> anyhow::Result<Uploads> {
    let store =
        ObjectFileStore::open(&settings.uploads.object_store()).context("cannot open the upload store")?;
    match &settings.uploads.store {
        UploadStore::Local(dir) => info!(dir = %dir.display(), "uploads are kept in a local directory"),
        UploadStore::S3 { bucket, .. } => info!(%bucket, "uploads are kept in S3"),
    }
    let download_path = format!("{}/files/", settings.http.chatbox_path_prefix.trim_end_matches('/'));
    Ok(Uploads {
        ports: FilePorts { store: Arc::new(store), catalog: Arc::clone(&stores.files) },
        settings: settings.uploads.file_settings(download_path),
    })
}

/// One adapter per configured provider, by model id.
fn llm_providers(providers: &ProvidersSection) -> anyhow::Result<HashMap<ModelId, Arc<dyn LlmProvider>>> {
    providers
        .list
        .iter()
        .map(|provider| {
            let adapter = provider_adapter(provider)
                .with_context(|| format!("cannot set up provider {}", provider.id))?;
            Ok((provider.id.clone(), adapter))
        })
        .collect()
}

/// The adapter for one configured provider.
fn provider_adapter(provider: &ProviderSettings) -> anyhow::Result<Arc<dyn LlmProvider>> {
    Ok(match provider.kind {
        ProviderKind::Demo => Arc::new(DemoProvider::new(provider.delay)),
        ProviderKind::OpenAi => Arc::new(OpenAiProvider::new(provider.provider_config())?),
        ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(provider.provider_config())?),
        ProviderKind::Dify => Arc::new(DifyProvider::new(provider.provider_config())?),
    })
}
