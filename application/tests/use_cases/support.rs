//! The in-memory wiring every use-case test drives: a [`ChatService`] over the memory
//! store (behind a write switch, [`Storage`]) and one [`ScriptedProvider`] for every
//! model, on the runtime's clock; a [`Client`] is one socket whose queue the test
//! reads, and the helpers below read the events it got.

mod logs;
mod metrics;
mod objects;
mod provider;
mod replicas;
mod shared;
mod storage;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatbox_application::chat::{ChatPorts, Connection};
use chatbox_application::commands::{ClientCommand, SendMessage};
use chatbox_application::events::{AnswerStyle, Frame, ServerEvent};
use chatbox_application::files::{FilePorts, FileSettings, Uploads};
use chatbox_application::ports::{
    Clock, FileCatalog, IdGenerator, LlmProvider, Notifier, Randomness, SessionCatalog, SessionHub,
    SessionRepository, SharedState,
};
use chatbox_application::settings::{ModelInfo, RetryPolicy};
use chatbox_application::shared_state::SharedStateClient;
use chatbox_application::socket::{OutboundQueue, SocketBudget, SocketHandle};
use chatbox_application::{ChatError, ChatService, ChatSettings};
use chatbox_domain::rate_limit::Quota;
use chatbox_domain::validation::{MessageContent, Metadata};
use chatbox_domain::{
    ClientMessageId, ErrorCode, FinishReason, ModelId, Seq, SessionId, StoredMessage, Timestamp, UserId,
};
use chatbox_memory_store::MemorySessionRepository;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

pub use logs::LogLines;
pub use metrics::RecordingMetrics;
pub use objects::MemoryObjects;
use objects::SharedObjects;
pub use provider::{Refusal, ScriptedProvider, Step};
pub use replicas::ReplicaBus;
pub use shared::{SharedMode, SharedStore};
use storage::FlakyRepository;
pub use storage::Storage;

/// The line a session's actor logs when it dies (a panic in an adapter).
pub const ACTOR_DIED: &str =
    "the session's actor died; its next message loads the session again, with a new actor";

/// The runtime's clock, as the service's own clock is: paused time moves both.
struct TestClock(Instant);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")
            + chrono::Duration::from_std(self.0.elapsed()).expect("dur")
    }
    fn monotonic(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Counting ids (`id0000`, `id0001`, …), unless a test queued the next ones.
#[derive(Default)]
pub struct CountingIds {
    count: AtomicUsize,
    queued: std::sync::Mutex<VecDeque<String>>,
}

impl CountingIds {
    /// The next ids handed out are these, in order.
    pub fn queue(&self, ids: &[&str]) {
        self.queued.lock().expect("lock").extend(ids.iter().map(|id| (*id).to_owned()));
    }
}

impl IdGenerator for CountingIds {
    fn new_id(&self) -> String {
        if let Some(id) = self.queued.lock().expect("lock").pop_front() {
            return id;
        }
        format!("id{:04}", self.count.fetch_add(1, Ordering::SeqCst))
    }
}

struct HalfRandom;

impl Randomness for HalfRandom {
    fn unit(&self) -> f64 {
        0.5
    }
}

pub struct Harness {
    pub service: ChatService,
    /// The store itself, for reading what was stored (never switched off).
    pub repo: Arc<MemorySessionRepository>,
    storage: Arc<FlakyRepository>,
    pub provider: Arc<ScriptedProvider>,
    /// The service's id generator.
    pub ids: Arc<CountingIds>,
    /// What the service counted.
    pub metrics: Arc<RecordingMetrics>,
}

pub fn settings() -> ChatSettings {
    ChatSettings {
        models: Arc::from(vec![
            ModelInfo { id: ModelId::parse("scripted").expect("id"), name: "Scripted".into() },
            ModelInfo { id: ModelId::parse("other").expect("id"), name: "Other".into() },
        ]),
        max_content_chars: 100,
        message_quota: Quota::new(100, Duration::from_secs(60)).expect("quota"),
        command_quota: Quota::new(1_000, Duration::from_secs(60)).expect("quota"),
        answer_queue_limit: 3,
        stream_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(2),
        context_messages: 20,
        context_max_chars: 10_000,
        system_prompt: Some("Be brief.".into()),
        session_ttl: Duration::from_secs(60),
        reconnect_timeout: Duration::from_secs(60),
        max_answer_chars: 10_000,
        replay_page_size: 100,
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        fallbacks: HashMap::new(),
        storage_timeout: Duration::from_secs(5),
        max_active_sessions_per_user: 20,
        share_ttl: Duration::from_secs(3600),
        help_alert_quota: Quota::new(5, Duration::from_secs(300)).expect("quota"),
        help_alert_user_quota: Quota::new(10, Duration::from_secs(3600)).expect("quota"),
        admin_panel_url: None,
    }
}

pub fn harness_with(settings: ChatSettings) -> Harness {
    harness_alerting(settings, Vec::new())
}

pub fn harness_alerting(settings: ChatSettings, notifiers: Vec<Arc<dyn Notifier>>) -> Harness {
    build(settings, notifiers, None)
}

/// A service whose limits live in `shared` (as replicas sharing a store), its calls
/// ended after `SHARED_TIMEOUT`.
pub fn harness_sharing(settings: ChatSettings, shared: Arc<dyn SharedState>) -> Harness {
    build(settings, Vec::new(), Some(shared))
}

/// How long a call to the shared state may take in the tests.
pub const SHARED_TIMEOUT: Duration = Duration::from_secs(2);

/// What replicas share: the store (behind its write switch), the provider, the ids.
#[derive(Clone)]
struct Shared {
    repo: Arc<MemorySessionRepository>,
    storage: Arc<FlakyRepository>,
    provider: Arc<ScriptedProvider>,
    ids: Arc<CountingIds>,
    /// Files in conversations, when a test turns them on.
    files: Option<(Arc<MemoryObjects>, FileSettings)>,
}

impl Shared {
    fn new() -> Self {
        let repo = Arc::new(MemorySessionRepository::new(100));
        let storage = Arc::new(FlakyRepository::new(Arc::clone(&repo)));
        Self { repo, storage, provider: Arc::default(), ids: Arc::default(), files: None }
    }
}

fn build(
    settings: ChatSettings,
    notifiers: Vec<Arc<dyn Notifier>>,
    shared: Option<Arc<dyn SharedState>>,
) -> Harness {
    build_on(&Shared::new(), settings, notifiers, shared, Arc::new(chatbox_memory_store::LocalHub::new()))
}

/// `n` services sharing one store, provider and id generator, their sessions' copies
/// connected by an in-process stand-in for Redis ([`ReplicaBus`]): replicas of one
/// cluster.
pub fn replicas(settings: &ChatSettings, n: usize) -> (Vec<Harness>, ReplicaBus) {
    let shared = Shared::new();
    let bus = ReplicaBus::default();
    let harnesses = (0..n)
        .map(|replica| build_on(&shared, settings.clone(), Vec::new(), None, Arc::new(bus.hub(replica))))
        .collect();
    (harnesses, bus)
}

fn build_on(
    parts: &Shared,
    settings: ChatSettings,
    notifiers: Vec<Arc<dyn Notifier>>,
    shared: Option<Arc<dyn SharedState>>,
    hub: Arc<dyn SessionHub>,
) -> Harness {
    let Shared { repo, storage, provider, ids, files } = parts.clone();
    let mut providers: HashMap<ModelId, Arc<dyn LlmProvider>> = HashMap::new();
    for model in settings.models.iter() {
        providers.insert(model.id.clone(), Arc::clone(&provider) as Arc<dyn LlmProvider>);
    }
    let metrics = Arc::new(RecordingMetrics::default());
    let ports = ChatPorts {
        repository: Arc::clone(&storage) as Arc<dyn SessionRepository>,
        providers,
        clock: Arc::new(TestClock(Instant::now())),
        ids: Arc::clone(&ids) as Arc<dyn IdGenerator>,
        random: Arc::new(HalfRandom),
        catalog: Arc::clone(&repo) as Arc<dyn SessionCatalog>,
        uploads: files.map(|(objects, settings)| Uploads {
            ports: FilePorts {
                store: Arc::new(SharedObjects(objects)),
                catalog: Arc::clone(&repo) as Arc<dyn FileCatalog>,
            },
            settings,
        }),
        notifiers,
        metrics: Arc::clone(&metrics) as Arc<dyn chatbox_application::ports::Metrics>,
        hub,
        shared: shared.map(|store| {
            let metrics = Arc::clone(&metrics) as Arc<dyn chatbox_application::ports::Metrics>;
            Arc::new(SharedStateClient::new(store, metrics, SHARED_TIMEOUT))
        }),
    };
    Harness {
        service: ChatService::new(ports, settings, TaskTracker::new()),
        repo,
        storage,
        provider,
        ids,
        metrics,
    }
}

pub fn harness() -> Harness {
    harness_with(settings())
}

/// A service that takes files (`files`), kept in the returned memory object store and
/// recorded in the memory session store.
pub fn harness_with_files(settings: ChatSettings, files: FileSettings) -> (Harness, Arc<MemoryObjects>) {
    let objects = Arc::new(MemoryObjects::default());
    let mut shared = Shared::new();
    shared.files = Some((Arc::clone(&objects), files));
    let hub = Arc::new(chatbox_memory_store::LocalHub::new());
    (build_on(&shared, settings, Vec::new(), None, hub), objects)
}

/// Frames are sized by their debug text: the real wire encoder lives in the HTTP
/// adapter, and the byte budget only needs a size that grows with the content.
pub fn encode(frame: &Frame) -> String {
    format!("{:?}", frame.event)
}

pub fn user(id: &str) -> UserId {
    UserId::parse(id).expect("user")
}

pub struct Client {
    pub connection: Connection,
    frames: OutboundQueue,
    buffered: VecDeque<Arc<Frame>>,
}

impl Client {
    pub async fn next(&mut self) -> ServerEvent {
        self.next_within(Duration::from_secs(5)).await.expect("a frame in time")
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<ServerEvent> {
        self.frame_within(wait).await.map(|frame| frame.event.clone())
    }

    /// The next frame itself (its stamps as well as its event).
    pub async fn next_frame(&mut self) -> Arc<Frame> {
        self.frame_within(Duration::from_secs(5)).await.expect("a frame in time")
    }

    async fn frame_within(&mut self, wait: Duration) -> Option<Arc<Frame>> {
        if let Some(frame) = self.buffered.pop_front() {
            return Some(frame);
        }
        let item = tokio::time::timeout(wait, self.frames.recv()).await.ok()?;
        self.buffered.extend(item.frames().iter().cloned());
        self.buffered.pop_front()
    }

    /// Nothing arrives within 200 ms.
    pub async fn is_quiet(&mut self) -> bool {
        self.next_within(Duration::from_millis(200)).await.is_none()
    }

    /// Frames until (and including) the next `done`.
    pub async fn until_done(&mut self) -> Vec<ServerEvent> {
        self.until(|event| matches!(event, ServerEvent::AnswerDone { .. })).await
    }

    /// Frames until (and including) the first for which `last` is true; each must come
    /// within [`Self::next`]'s wait.
    pub async fn until(&mut self, mut last: impl FnMut(&ServerEvent) -> bool) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let found = last(&event);
            events.push(event);
            if found {
                return events;
            }
        }
    }

    pub fn session_id(&self) -> SessionId {
        self.connection.session_id().clone()
    }
}

impl Harness {
    pub async fn connect(&self, user_id: &str, session: Option<SessionId>, last_seq: Option<Seq>) -> Client {
        self.connect_with_capacity(user_id, session, last_seq, 64 * 1024).await
    }

    pub async fn connect_with_capacity(
        &self,
        user_id: &str,
        session: Option<SessionId>,
        last_seq: Option<Seq>,
        budget_bytes: usize,
    ) -> Client {
        self.connect_as(user_id, false, session, last_seq, budget_bytes).await
    }

    /// A socket whose token carries an admin role.
    pub async fn connect_admin(
        &self,
        user_id: &str,
        session: Option<SessionId>,
        last_seq: Option<Seq>,
    ) -> Client {
        self.connect_as(user_id, true, session, last_seq, 64 * 1024).await
    }

    async fn connect_as(
        &self,
        user_id: &str,
        admin: bool,
        session: Option<SessionId>,
        last_seq: Option<Seq>,
        budget_bytes: usize,
    ) -> Client {
        let (socket, frames) =
            SocketHandle::new(user(user_id), SocketBudget { max_bytes: budget_bytes, encode });
        let connection = self.service.connect(socket, admin, session, last_seq).await.expect("connect");
        let mut client = Client { connection, frames, buffered: Default::default() };
        match client.next().await {
            ServerEvent::ConnectionStatus { state, .. } => {
                assert!(state == "connected" || state == "resumed")
            }
            other => panic!("expected connection_status first, got {other:?}"),
        }
        client
    }

    pub async fn say(&self, client: &mut Client, text: &str) -> Result<(), ChatError> {
        self.say_with(client, text, None).await
    }

    /// A new client of `user_id` whose first message, `text`, has been answered: its
    /// session exists, stored, with one exchange.
    pub async fn answered(&self, user_id: &str, text: &str) -> Client {
        let mut client = self.connect(user_id, None, None).await;
        self.say(&mut client, text).await.expect("the first message is accepted");
        client.until_done().await;
        client
    }

    /// A client whose answer to `question` (`first`, then after 50 ms `rest`) ended while
    /// storage failed: the actor holds it unstored. Storage is left failing. Returns the
    /// client and the answer's events up to its `done`.
    pub async fn held_answer(
        &self,
        question: &str,
        first: &'static str,
        rest: &'static str,
    ) -> (Client, Vec<ServerEvent>) {
        self.provider.push(vec![Step::Say(first), Step::Wait(Duration::from_millis(50)), Step::Say(rest)]);
        let mut client = self.connect("u1", None, None).await;
        self.say(&mut client, question).await.expect("the question is accepted");
        assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
        assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
        self.set_storage(Storage::Fails);
        let events = client.until_done().await;
        (client, events)
    }

    pub async fn say_with(
        &self,
        client: &mut Client,
        text: &str,
        client_id: Option<&str>,
    ) -> Result<(), ChatError> {
        let mut message = message(text);
        message.client_message_id = client_id.map(|id| ClientMessageId::parse(id).expect("id"));
        self.service.handle(&mut client.connection, ClientCommand::SendMessage(message)).await
    }

    /// Sends `text` naming session `session`.
    pub async fn say_in(
        &self,
        client: &mut Client,
        session: &SessionId,
        text: &str,
    ) -> Result<(), ChatError> {
        let mut message = message(text);
        message.session_id = Some(session.clone());
        self.service.handle(&mut client.connection, ClientCommand::SendMessage(message)).await
    }

    pub async fn stored(&self, session: &SessionId) -> Vec<StoredMessage> {
        self.repo.messages_after(session, Seq(0), 1000).await.expect("messages")
    }

    /// How many times the service read a session whole from storage.
    pub fn session_loads(&self) -> usize {
        self.storage.loads()
    }

    /// From now on, the service's storage writes do what `mode` says.
    pub fn set_storage(&self, mode: Storage) {
        self.storage.set(mode);
    }

    /// Completes once a write held by [`Storage::LandsThenWaits`] is in the store.
    pub async fn write_landed(&self) {
        self.storage.write_landed().await;
    }

    /// Lets the held writes return, and later writes work.
    pub fn release_writes(&self) {
        self.storage.set(Storage::Works);
        self.storage.release_writes();
    }
}

/// A `user_message` with `text`, for the connection's session, no key, the default model.
pub fn message(text: &str) -> SendMessage {
    SendMessage {
        session_id: None,
        content: MessageContent::parse(text, 100).expect("content"),
        model_id: None,
        client_message_id: None,
        metadata: Metadata::new(),
        style: AnswerStyle::AiResponse,
    }
}

pub fn answer_text(events: &[ServerEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::AnswerChunk { delta, .. } => Some(delta.to_string()),
            _ => None,
        })
        .collect()
}

pub fn done_of(events: &[ServerEvent]) -> (Option<Seq>, FinishReason) {
    match events.last() {
        Some(ServerEvent::AnswerDone { seq, finish_reason, .. }) => (*seq, *finish_reason),
        other => panic!("expected done, got {other:?}"),
    }
}

pub fn error_code(events: &[ServerEvent]) -> Option<ErrorCode> {
    events.iter().find_map(|e| match e {
        ServerEvent::Error { code, .. } => Some(*code),
        _ => None,
    })
}
