//! The chat use-cases driven without sockets: an in-memory repository, a scripted
//! provider, and socket handles whose queues the tests read.
//!
//! Every test runs on tokio's paused clock, and so does everything under test (the
//! answer actor's timeouts, the retries, the test clock below). Time only moves when
//! every task is waiting, straight to the next timer: a scripted pause, a timeout or a
//! "nothing arrives within 200 ms" check then costs no real time, and gives the same
//! result on a loaded machine as on an idle one. Such a check is meaningful because the
//! clock only advances once nothing else can run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatbox_application::chat::{ChatPorts, Connection};
use chatbox_application::commands::{ClientCommand, SendMessage};
use chatbox_application::events::{AnswerStyle, Frame, ServerEvent};
use chatbox_application::ports::{
    AnswerStream, ChatRequest, Clock, HelpAlert, IdGenerator, LlmProvider, Notifier, NotifyError,
    ProviderError, Randomness, Role, SessionCatalog, SessionRepository, StreamEvent,
};
use chatbox_application::settings::{ModelInfo, RetryPolicy};
use chatbox_application::socket::{CloseReason, OutboundQueue, SocketBudget, SocketHandle};
use chatbox_application::{ChatError, ChatService, ChatSettings};
use chatbox_domain::rate_limit::Quota;
use chatbox_domain::validation::{MessageContent, Metadata};
use chatbox_domain::{
    ClientMessageId, ErrorCode, FinishReason, ModelId, Sender, Seq, SessionId, Timestamp, UserId,
};
use chatbox_memory_store::MemorySessionRepository;
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// One step of a scripted answer.
#[derive(Clone, Debug)]
enum Step {
    Say(&'static str),
    Wait(Duration),
    Fail,
    Stall,
    /// As the first step: the request itself is refused with this error.
    Refuse(Refusal),
    /// A stream error of this kind (before or after tokens).
    Break(Refusal),
    Conversation(&'static str),
}

#[derive(Clone, Copy, Debug)]
enum Refusal {
    RateLimited(Duration),
    Server,
    Unauthorized,
    Overloaded,
}

impl Refusal {
    fn error(self) -> ProviderError {
        match self {
            Self::RateLimited(wait) => ProviderError::RateLimited { retry_after: Some(wait) },
            Self::Server => ProviderError::Server { status: 503 },
            Self::Unauthorized => ProviderError::Rejected { status: 401 },
            Self::Overloaded => ProviderError::Overloaded,
        }
    }
}

/// A provider that plays a script per call and records every request and every dropped
/// stream (a dropped stream is an aborted provider request).
#[derive(Default)]
struct ScriptedProvider {
    scripts: Mutex<Vec<Vec<Step>>>,
    requests: Mutex<Vec<ChatRequest>>,
    request_times: Mutex<Vec<Instant>>,
    dropped: Arc<AtomicUsize>,
}

struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl ScriptedProvider {
    fn push(&self, script: Vec<Step>) {
        self.scripts.lock().expect("lock").push(script);
    }
}

#[async_trait]
impl LlmProvider for ScriptedProvider {
    async fn stream(&self, request: ChatRequest) -> Result<AnswerStream, ProviderError> {
        self.requests.lock().expect("lock").push(request);
        self.request_times.lock().expect("lock").push(Instant::now());
        let script = {
            let mut scripts = self.scripts.lock().expect("lock");
            if scripts.is_empty() { vec![Step::Say("ok")] } else { scripts.remove(0) }
        };
        if let Some(Step::Refuse(refusal)) = script.first() {
            return Err(refusal.error());
        }
        let guard = DropCounter(Arc::clone(&self.dropped));
        let stream = futures::stream::unfold((script.into_iter(), guard), |(mut steps, guard)| async move {
            loop {
                match steps.next()? {
                    Step::Say(text) => {
                        return Some((Ok(StreamEvent::Delta(text.to_owned())), (steps, guard)));
                    }
                    Step::Wait(pause) => tokio::time::sleep(pause).await,
                    Step::Break(refusal) => return Some((Err(refusal.error()), (steps, guard))),
                    Step::Conversation(id) => {
                        return Some((Ok(StreamEvent::Conversation(id.to_owned())), (steps, guard)));
                    }
                    Step::Refuse(_) => {}
                    Step::Fail => {
                        return Some((
                            Err(ProviderError::Stream("boom: secret body".into())),
                            (steps, guard),
                        ));
                    }
                    Step::Stall => futures::future::pending::<()>().await,
                }
            }
        });
        Ok(stream.boxed())
    }
}

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

#[derive(Default)]
struct CountingIds(AtomicUsize);

impl IdGenerator for CountingIds {
    fn new_id(&self) -> String {
        format!("id{:04}", self.0.fetch_add(1, Ordering::SeqCst))
    }
}

struct HalfRandom;

impl Randomness for HalfRandom {
    fn unit(&self) -> f64 {
        0.5
    }
}

/// What the storage does with message writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    Works,
    Fails,
    Stalls,
}

/// The memory store, with message writes that can be made to fail or stall.
struct FlakyRepository {
    inner: Arc<MemorySessionRepository>,
    mode: Mutex<Storage>,
}

impl FlakyRepository {
    async fn gate(&self) -> Result<(), chatbox_application::ports::RepositoryError> {
        let mode = *self.mode.lock().expect("lock");
        match mode {
            Storage::Works => Ok(()),
            Storage::Fails => Err(chatbox_application::ports::RepositoryError::Unavailable("down".into())),
            Storage::Stalls => futures::future::pending().await,
        }
    }
}

#[async_trait]
impl SessionRepository for FlakyRepository {
    async fn create(
        &self,
        session: &chatbox_domain::Session,
    ) -> Result<(), chatbox_application::ports::RepositoryError> {
        self.inner.create(session).await
    }
    async fn load(
        &self,
        id: &SessionId,
    ) -> Result<Option<chatbox_domain::Session>, chatbox_application::ports::RepositoryError> {
        self.inner.load(id).await
    }
    async fn append_message(
        &self,
        id: &SessionId,
        message: &chatbox_domain::StoredMessage,
        effects: &chatbox_domain::MessageEffects,
    ) -> Result<(), chatbox_application::ports::RepositoryError> {
        self.gate().await?;
        self.inner.append_message(id, message, effects).await
    }
    async fn set_model(
        &self,
        id: &SessionId,
        model: &chatbox_domain::ModelId,
        at: chatbox_domain::Timestamp,
    ) -> Result<(), chatbox_application::ports::RepositoryError> {
        self.gate().await?;
        self.inner.set_model(id, model, at).await
    }
    async fn set_handoff(
        &self,
        id: &SessionId,
        handoff: &chatbox_domain::HandoffState,
        at: chatbox_domain::Timestamp,
    ) -> Result<(), chatbox_application::ports::RepositoryError> {
        self.gate().await?;
        self.inner.set_handoff(id, handoff, at).await
    }
    async fn end(
        &self,
        id: &SessionId,
        at: chatbox_domain::Timestamp,
    ) -> Result<(), chatbox_application::ports::RepositoryError> {
        self.gate().await?;
        self.inner.end(id, at).await
    }
    async fn messages_after(
        &self,
        id: &SessionId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<chatbox_domain::StoredMessage>, chatbox_application::ports::RepositoryError> {
        self.inner.messages_after(id, after, limit).await
    }
    async fn recent_messages(
        &self,
        id: &SessionId,
        limit: usize,
    ) -> Result<Vec<chatbox_domain::StoredMessage>, chatbox_application::ports::RepositoryError> {
        self.inner.recent_messages(id, limit).await
    }
    async fn ping(&self) -> Result<(), chatbox_application::ports::RepositoryError> {
        self.inner.ping().await
    }
}

struct Harness {
    service: ChatService,
    repo: Arc<MemorySessionRepository>,
    storage: Arc<FlakyRepository>,
    provider: Arc<ScriptedProvider>,
}

fn settings() -> ChatSettings {
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
        admin_panel_url: None,
    }
}

fn harness_with(settings: ChatSettings) -> Harness {
    harness_alerting(settings, Vec::new())
}

fn harness_alerting(settings: ChatSettings, notifiers: Vec<Arc<dyn Notifier>>) -> Harness {
    let repo = Arc::new(MemorySessionRepository::new(100));
    let provider = Arc::new(ScriptedProvider::default());
    let mut providers: HashMap<ModelId, Arc<dyn LlmProvider>> = HashMap::new();
    for model in settings.models.iter() {
        providers.insert(model.id.clone(), Arc::clone(&provider) as Arc<dyn LlmProvider>);
    }
    let storage = Arc::new(FlakyRepository { inner: Arc::clone(&repo), mode: Mutex::new(Storage::Works) });
    let ports = ChatPorts {
        repository: Arc::clone(&storage) as Arc<dyn SessionRepository>,
        providers,
        clock: Arc::new(TestClock(Instant::now())),
        ids: Arc::new(CountingIds::default()),
        random: Arc::new(HalfRandom),
        catalog: Arc::clone(&repo) as Arc<dyn SessionCatalog>,
        notifiers,
        metrics: Arc::new(chatbox_application::ports::NoMetrics),
        hub: Arc::new(chatbox_memory_store::LocalHub::new()),
    };
    Harness { service: ChatService::new(ports, settings, TaskTracker::new()), repo, storage, provider }
}

fn harness() -> Harness {
    harness_with(settings())
}

/// Frames are sized by their debug text: the real wire encoder lives in the HTTP
/// adapter, and the byte budget only needs a size that grows with the content.
fn encode(frame: &Frame) -> String {
    format!("{:?}", frame.event)
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("user")
}

struct Client {
    connection: Connection,
    frames: OutboundQueue,
    buffered: std::collections::VecDeque<ServerEvent>,
}

impl Client {
    async fn next(&mut self) -> ServerEvent {
        self.next_within(Duration::from_secs(5)).await.expect("a frame in time")
    }

    async fn next_within(&mut self, wait: Duration) -> Option<ServerEvent> {
        if let Some(event) = self.buffered.pop_front() {
            return Some(event);
        }
        let item = tokio::time::timeout(wait, self.frames.recv()).await.ok()??;
        self.buffered.extend(item.frames().iter().map(|f| f.event.clone()));
        self.buffered.pop_front()
    }

    /// Frames until (and including) the next `done`.
    async fn until_done(&mut self) -> Vec<ServerEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let done = matches!(event, ServerEvent::AnswerDone { .. });
            events.push(event);
            if done {
                return events;
            }
        }
    }

    fn session_id(&self) -> SessionId {
        self.connection.session_id().clone()
    }
}

impl Harness {
    async fn connect(&self, user_id: &str, session: Option<SessionId>, last_seq: Option<Seq>) -> Client {
        self.connect_with_capacity(user_id, session, last_seq, 64 * 1024).await
    }

    async fn connect_with_capacity(
        &self,
        user_id: &str,
        session: Option<SessionId>,
        last_seq: Option<Seq>,
        budget_bytes: usize,
    ) -> Client {
        let (socket, frames) =
            SocketHandle::new(user(user_id), SocketBudget { max_bytes: budget_bytes, encode });
        let connection = self.service.connect(socket, false, session, last_seq).await.expect("connect");
        let mut client = Client { connection, frames, buffered: Default::default() };
        match client.next().await {
            ServerEvent::ConnectionStatus { state, .. } => {
                assert!(state == "connected" || state == "resumed")
            }
            other => panic!("expected connection_status first, got {other:?}"),
        }
        client
    }

    async fn say(&self, client: &mut Client, text: &str) -> Result<(), ChatError> {
        self.say_with(client, text, None).await
    }

    async fn say_with(
        &self,
        client: &mut Client,
        text: &str,
        client_id: Option<&str>,
    ) -> Result<(), ChatError> {
        let command = ClientCommand::SendMessage(SendMessage {
            session_id: None,
            content: MessageContent::parse(text, 100).expect("content"),
            model_id: None,
            client_message_id: client_id.map(|id| ClientMessageId::parse(id).expect("id")),
            metadata: Metadata::new(),
            style: AnswerStyle::AiResponse,
        });
        self.service.handle(&mut client.connection, command).await
    }

    async fn stored(&self, session: &SessionId) -> Vec<chatbox_domain::StoredMessage> {
        self.repo.messages_after(session, Seq(0), 1000).await.expect("messages")
    }
}

fn answer_text(events: &[ServerEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::AnswerChunk { delta, .. } => Some(delta.to_string()),
            _ => None,
        })
        .collect()
}

fn done_of(events: &[ServerEvent]) -> (Option<Seq>, FinishReason) {
    match events.last() {
        Some(ServerEvent::AnswerDone { seq, finish_reason, .. }) => (*seq, *finish_reason),
        other => panic!("expected done, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_is_stored_answered_in_chunks_and_the_answer_stored_once() {
    let h = harness();
    h.provider.push(vec![Step::Say("Hello "), Step::Say("there.")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "Hi bot").await.expect("accepted");
    let events = client.until_done().await;
    assert!(matches!(events[0], ServerEvent::Loading { .. }), "loading first: {events:?}");
    let ids: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Loading { message_id, .. }
            | ServerEvent::AnswerChunk { message_id, .. }
            | ServerEvent::AnswerDone { message_id, .. } => Some(message_id.clone()),
            _ => None,
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one message id per answer");
    assert_eq!(answer_text(&events), "Hello there.");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Stop));

    let stored = h.stored(&client.session_id()).await;
    assert_eq!(stored.len(), 2);
    assert_eq!((stored[0].sender, stored[0].content.as_str()), (Sender::User, "Hi bot"));
    assert_eq!((stored[1].sender, stored[1].content.as_str()), (Sender::Ai, "Hello there."));
    assert!(stored[1].usage.expect("usage").estimated, "scripted provider reports none");
    let session = h.repo.load(&client.session_id()).await.expect("load").expect("exists");
    assert_eq!(session.name.as_deref(), Some("Hi bot"));
    assert_eq!(session.response_times.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_provider_sees_the_history_and_the_system_prompt() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "first question").await.expect("accepted");
    client.until_done().await;
    h.say(&mut client, "second question").await.expect("accepted");
    client.until_done().await;
    let requests = h.provider.requests.lock().expect("lock");
    let last = requests.last().expect("a request");
    let turns: Vec<(Role, &str)> = last.history.iter().map(|t| (t.role, t.content.as_str())).collect();
    assert_eq!(
        turns,
        vec![(Role::User, "first question"), (Role::Assistant, "ok"), (Role::User, "second question")]
    );
    assert_eq!(last.system_prompt.as_deref(), Some("Be brief."));
    assert_eq!(last.user_id, user("u1"));
}

#[tokio::test(start_paused = true)]
async fn other_sockets_of_the_session_get_the_echo_and_the_stream_but_the_sender_no_echo() {
    let h = harness();
    let mut phone = h.connect("u1", None, None).await;
    h.say(&mut phone, "hello").await.expect("accepted");
    phone.until_done().await;
    let mut laptop = h.connect("u1", Some(phone.session_id()), None).await;
    h.say(&mut phone, "from phone").await.expect("accepted");
    let laptop_events = laptop.until_done().await;
    assert!(
        matches!(&laptop_events[0], ServerEvent::Stored { message, .. } if message.content == "from phone")
    );
    let phone_events = phone.until_done().await;
    assert!(phone_events.iter().all(|e| !matches!(e, ServerEvent::Stored { .. })), "no echo to the sender");
    assert_eq!(answer_text(&phone_events), answer_text(&laptop_events));
}

#[tokio::test(start_paused = true)]
async fn stop_cancels_the_provider_request_stores_the_partial_and_ends_with_done() {
    let h = harness();
    h.provider.push(vec![Step::Say("partial "), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "tell me").await.expect("accepted");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    h.service.handle(&mut client.connection, ClientCommand::Stop { session_id: None }).await.expect("stop");
    let events = client.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Cancelled);
    assert_eq!(h.provider.dropped.load(Ordering::SeqCst), 1, "the provider stream was dropped");
    let stored = h.stored(&client.session_id()).await;
    assert_eq!(stored[1].content, "partial ");
    assert!(stored[1].is_partial());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_provider_times_out_with_an_error_then_done_and_the_partial_is_kept() {
    let mut s = settings();
    s.idle_timeout = Duration::from_millis(150);
    let h = harness_with(s);
    h.provider.push(vec![Step::Say("so far"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "slow one").await.expect("accepted");
    let events = client.until_done().await;
    let error = events.iter().find_map(|e| match e {
        ServerEvent::Error { code, message, .. } => Some((*code, message.clone())),
        _ => None,
    });
    assert_eq!(error.map(|e| e.0), Some(ErrorCode::LlmTimeout));
    assert!(matches!(events[events.len() - 2], ServerEvent::Error { .. }), "error comes right before done");
    assert_eq!(done_of(&events).1, FinishReason::Timeout);
    assert_eq!(h.stored(&client.session_id()).await[1].content, "so far");
}

#[tokio::test(start_paused = true)]
async fn the_whole_answer_deadline_applies_even_while_chunks_keep_coming() {
    let mut s = settings();
    s.stream_timeout = Duration::from_millis(300);
    let h = harness_with(s);
    let mut script = Vec::new();
    for _ in 0..100 {
        script.push(Step::Say("x"));
        script.push(Step::Wait(Duration::from_millis(20)));
    }
    h.provider.push(script);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "long").await.expect("accepted");
    let events = client.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Timeout);
    let chunks = answer_text(&events).len();
    assert!((3..60).contains(&chunks), "stopped part-way: {chunks} chunks");
}

#[tokio::test(start_paused = true)]
async fn a_provider_failure_mid_stream_sends_an_error_without_internal_text_then_done() {
    let h = harness();
    h.provider.push(vec![Step::Say("half"), Step::Fail]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "go").await.expect("accepted");
    let events = client.until_done().await;
    let Some(ServerEvent::Error { code, message, .. }) =
        events.iter().find(|e| matches!(e, ServerEvent::Error { .. }))
    else {
        panic!("an error frame: {events:?}");
    };
    assert_eq!(*code, ErrorCode::LlmUnavailable);
    assert!(!message.contains("secret"), "provider text never reaches the client");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Error));
    assert!(h.stored(&client.session_id()).await[1].is_partial());
}

#[tokio::test(start_paused = true)]
async fn answers_queue_in_order_up_to_the_limit_and_then_busy() {
    let h = harness();
    h.provider.push(vec![Step::Say("A1 "), Step::Wait(Duration::from_millis(200)), Step::Say("A2")]);
    h.provider.push(vec![Step::Say("B")]);
    h.provider.push(vec![Step::Say("C")]);
    h.provider.push(vec![Step::Say("D")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "a").await.expect("a");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    for text in ["b", "c", "d"] {
        h.say(&mut client, text).await.expect("queued");
    }
    assert!(matches!(h.say(&mut client, "e").await, Err(ChatError::Busy)));
    let mut answers = vec![answer_text(&client.until_done().await)];
    for _ in 0..3 {
        answers.push(answer_text(&client.until_done().await));
    }
    assert_eq!(answers, vec!["A1 A2", "B", "C", "D"], "never interleaved, in order");
    let stored: Vec<String> = h.stored(&client.session_id()).await.into_iter().map(|m| m.content).collect();
    assert_eq!(stored, ["a", "A1 A2", "b", "B", "c", "C", "d", "D"], "each answer follows its question");
    let requests = h.provider.requests.lock().expect("lock");
    let last_questions: Vec<&str> =
        requests.iter().map(|r| r.history.last().expect("question").content.as_str()).collect();
    assert_eq!(last_questions, ["a", "b", "c", "d"], "each answer sees the history up to its question");
}

#[tokio::test(start_paused = true)]
async fn the_message_rate_limit_answers_with_retry_after() {
    let mut s = settings();
    s.message_quota = Quota::new(2, Duration::from_secs(60)).expect("quota");
    s.answer_queue_limit = 10;
    let h = harness_with(s);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "one").await.expect("one");
    h.say(&mut client, "two").await.expect("two");
    let error = h.say(&mut client, "three").await.expect_err("limited");
    assert_eq!(error.code(), ErrorCode::TooManyRequests);
    let retry_after = error.retry_after().expect("retry_after");
    assert!(
        retry_after > Duration::from_secs(20) && retry_after <= Duration::from_secs(30),
        "{retry_after:?}"
    );
    let mut other = h.connect("u2", None, None).await;
    h.say(&mut other, "unaffected").await.expect("another user is not limited");
}

#[tokio::test(start_paused = true)]
async fn the_same_client_message_id_is_stored_and_answered_once() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    h.say_with(&mut client, "once", Some("c-1")).await.expect("first");
    let first = client.until_done().await;
    let ServerEvent::MessageAck { message_id, seq: Seq(1), .. } = &first[0] else {
        panic!("the stored message is acknowledged first: {first:?}")
    };
    let stored_id = message_id.clone();
    h.say_with(&mut client, "once", Some("c-1")).await.expect("duplicate is accepted");
    match client.next_within(Duration::from_millis(200)).await {
        Some(ServerEvent::MessageAck { message_id, seq: Seq(1), .. }) => {
            assert_eq!(message_id, stored_id, "the repeat is acknowledged as the stored message");
        }
        other => panic!("expected the acknowledgement again, got {other:?}"),
    }
    assert!(client.next_within(Duration::from_millis(200)).await.is_none(), "no second answer");
    assert_eq!(h.stored(&client.session_id()).await.len(), 2);
    assert_eq!(h.provider.requests.lock().expect("lock").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn resume_mid_answer_replays_stored_then_partial_then_live_without_loss_or_doubling() {
    let h = harness();
    h.provider.push(vec![Step::Say("first answer")]);
    let mut script = vec![];
    for _ in 0..10 {
        script.push(Step::Say("w "));
        script.push(Step::Wait(Duration::from_millis(30)));
    }
    h.provider.push(script);
    let mut client = h.connect("u1", None, None).await;
    let session = client.session_id();
    h.say(&mut client, "q1").await.expect("q1");
    let (first_seq, _) = done_of(&client.until_done().await);
    h.say(&mut client, "q2").await.expect("q2");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    for _ in 0..3 {
        assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    }
    h.service.disconnect(client.connection);

    // The input: 70 ms away (virtual), during which the answer streams on unwatched.
    tokio::time::sleep(Duration::from_millis(70)).await;
    let mut back = h.connect("u1", Some(session.clone()), first_seq).await;
    let events = back.until_done().await;
    match &events[0] {
        ServerEvent::Stored { message, .. } => assert_eq!(message.content, "q2"),
        other => panic!("replay of the stored question first, got {other:?}"),
    }
    assert!(matches!(events[1], ServerEvent::Loading { .. }));
    let streamed = answer_text(&events[2..]);
    assert_eq!(streamed, "w ".repeat(10), "partial + live = exactly the answer");
    let (seq, reason) = done_of(&events);
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(h.stored(&session).await.last().map(|m| m.seq), seq);
}

#[tokio::test(start_paused = true)]
async fn a_disconnected_session_keeps_answering_and_stores_the_answer() {
    let h = harness();
    h.provider.push(vec![Step::Say("still "), Step::Wait(Duration::from_millis(100)), Step::Say("here")]);
    let mut client = h.connect("u1", None, None).await;
    let session = client.session_id();
    h.say(&mut client, "q").await.expect("q");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    h.service.disconnect(client.connection);
    // Nothing waited for: after the disconnect, the answer is unwatched. Coming back
    // finds it still running (`loading`, the text so far, the rest live): it must end
    // as the whole answer, stored, not cancelled by the disconnect.
    let mut back = h.connect("u1", Some(session.clone()), Some(Seq(1))).await;
    let events = back.until_done().await;
    assert!(matches!(events[0], ServerEvent::Loading { .. }), "{events:?}");
    assert_eq!(answer_text(&events), "still here");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Stop));
    let stored = h.stored(&session).await;
    assert_eq!(stored.last().map(|m| m.content.as_str()), Some("still here"));
}

#[tokio::test(start_paused = true)]
async fn a_foreign_session_id_starts_a_new_session_and_reveals_nothing() {
    let h = harness();
    let mut owner = h.connect("owner", None, None).await;
    h.say(&mut owner, "private").await.expect("owner");
    owner.until_done().await;
    let victim = owner.session_id();

    let mut intruder = h.connect("intruder", Some(victim.clone()), Some(Seq(0))).await;
    assert_ne!(intruder.session_id(), victim, "not bound to the foreign session");
    let command = ClientCommand::SendMessage(SendMessage {
        session_id: Some(victim.clone()),
        content: MessageContent::parse("hijack", 100).expect("content"),
        model_id: None,
        client_message_id: None,
        metadata: Metadata::new(),
        style: AnswerStyle::AiResponse,
    });
    h.service.handle(&mut intruder.connection, command).await.expect("accepted into a new session");
    let status = intruder.next().await;
    let ServerEvent::ConnectionStatus { session_id, .. } = status else {
        panic!("status with the new id: {status:?}")
    };
    assert_ne!(session_id, victim);
    intruder.until_done().await;
    assert_eq!(h.stored(&victim).await.len(), 2, "the victim's session is untouched");
    assert!(owner.next_within(Duration::from_millis(100)).await.is_none(), "nothing reaches the owner");
    h.service
        .handle(&mut intruder.connection, ClientCommand::Stop { session_id: Some(victim) })
        .await
        .expect("stop is a no-op");
}

#[tokio::test(start_paused = true)]
async fn an_ended_session_refuses_messages_and_notifies_its_sockets() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "hello").await.expect("hello");
    client.until_done().await;
    let session = client.session_id();
    assert!(matches!(h.service.end_session(&user("other"), &session).await, Err(ChatError::NotFound)));
    h.service.end_session(&user("u1"), &session).await.expect("end");
    h.service.end_session(&user("u1"), &session).await.expect("idempotent");
    assert!(matches!(client.next().await, ServerEvent::ConnectionStatus { state: "ended", .. }));
    assert!(matches!(h.say(&mut client, "more").await, Err(ChatError::SessionEnded)));
}

#[tokio::test(start_paused = true)]
async fn cleanup_evicts_idle_live_state_but_keeps_the_session_stored() {
    let mut s = settings();
    s.session_ttl = Duration::from_millis(50);
    let h = harness_with(s);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "hello").await.expect("hello");
    client.until_done().await;
    assert_eq!(h.service.cleanup_sessions(), 0, "a bound socket keeps it live");
    let session = client.session_id();
    h.service.disconnect(client.connection);
    // The input: the session stays idle past its TTL.
    tokio::time::advance(Duration::from_millis(80)).await;
    assert_eq!(h.service.cleanup_sessions(), 1);
    assert_eq!(h.service.live_sessions(), 0);
    let mut back = h.connect("u1", Some(session.clone()), Some(Seq(0))).await;
    assert_eq!(back.session_id(), session, "loaded again from storage");
    assert!(matches!(back.next().await, ServerEvent::Stored { .. }));
    h.say(&mut back, "again").await.expect("works after eviction");
    assert_eq!(done_of(&back.until_done().await).0, Some(Seq(4)), "sequence continues");
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_is_closed_instead_of_losing_chunks_silently() {
    let h = harness();
    let mut script = Vec::new();
    for _ in 0..50 {
        script.push(Step::Say("chunk "));
        script.push(Step::Wait(Duration::from_millis(5)));
    }
    h.provider.push(script);
    let mut fast = h.connect("u1", None, None).await;
    let session = fast.session_id();
    h.say(&mut fast, "go").await.expect("go");
    assert!(matches!(fast.next().await, ServerEvent::Loading { .. }));
    let slow = h.connect_with_capacity("u1", Some(session), None, 1024).await;
    let events = fast.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Stop, "the fast socket is unaffected");
    assert!(slow.connection.socket().is_closing());
    assert_eq!(slow.connection.socket().close_reason(), Some(CloseReason::SlowConsumer));
}

#[tokio::test(start_paused = true)]
async fn model_select_changes_the_model_that_answers() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    let other = ModelId::parse("other").expect("id");
    let select = ClientCommand::SelectModel { session_id: None, model_id: other.clone() };
    h.service.handle(&mut client.connection, select).await.expect("select");
    assert!(
        matches!(client.next().await, ServerEvent::ConnectionStatus { ref model_id, .. } if *model_id == other)
    );
    let unknown =
        ClientCommand::SelectModel { session_id: None, model_id: ModelId::parse("nope").expect("id") };
    assert!(matches!(h.service.handle(&mut client.connection, unknown).await, Err(ChatError::UnknownModel)));
    h.say(&mut client, "hi").await.expect("hi");
    let events = client.until_done().await;
    assert!(matches!(events.last(), Some(ServerEvent::AnswerDone { model_id, .. }) if *model_id == other));
    assert_eq!(h.provider.requests.lock().expect("lock")[0].model_id, other);
}

#[tokio::test(start_paused = true)]
async fn at_the_shutdown_deadline_running_answers_are_cancelled_and_stored() {
    let h = harness();
    h.provider.push(vec![Step::Say("half an answer"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    h.service.begin_shutdown();
    assert!(
        client.next_within(Duration::from_millis(200)).await.is_none(),
        "answers may finish before the deadline"
    );
    h.service.cancel_running_answers();
    let events = client.until_done().await;
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Cancelled));
    assert_eq!(h.stored(&client.session_id()).await[1].content, "half an answer");
}

fn error_code(events: &[ServerEvent]) -> Option<ErrorCode> {
    events.iter().find_map(|e| match e {
        ServerEvent::Error { code, .. } => Some(*code),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_start_is_retried_after_the_providers_retry_after() {
    let h = harness();
    h.provider.push(vec![Step::Refuse(Refusal::RateLimited(Duration::from_millis(300)))]);
    h.provider.push(vec![Step::Say("finally")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    assert_eq!(answer_text(&events), "finally");
    assert_eq!(error_code(&events), None, "a retried failure is invisible to the client");
    let times = h.provider.request_times.lock().expect("lock").clone();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_millis(300),
        "Retry-After honoured: {:?}",
        times[1] - times[0]
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_then_the_fallback_answers() {
    let mut s = settings();
    s.fallbacks.insert(ModelId::parse("scripted").expect("id"), ModelId::parse("other").expect("id"));
    let h = harness_with(s);
    for _ in 0..3 {
        h.provider.push(vec![Step::Refuse(Refusal::Server)]);
    }
    h.provider.push(vec![Step::Say("from the fallback")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    assert_eq!(answer_text(&events), "from the fallback");
    let Some(ServerEvent::AnswerDone { model_id, finish_reason, .. }) = events.last() else { panic!("done") };
    assert_eq!((model_id.as_str(), *finish_reason), ("other", FinishReason::Stop));
    let models: Vec<String> =
        h.provider.requests.lock().expect("lock").iter().map(|r| r.model_id.to_string()).collect();
    assert_eq!(
        models,
        ["scripted", "scripted", "scripted", "other"],
        "1 try + LLM_MAX_RETRIES=2, then the fallback"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_request_is_not_retried_and_fails_with_llm_unavailable() {
    let h = harness();
    h.provider.push(vec![Step::Refuse(Refusal::Unauthorized)]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    assert_eq!(error_code(&events), Some(ErrorCode::LlmUnavailable));
    assert_eq!(done_of(&events), (None, FinishReason::Error));
    assert_eq!(h.provider.requests.lock().expect("lock").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_error_before_the_first_token_is_retried_but_not_after_it() {
    let h = harness();
    h.provider.push(vec![Step::Break(Refusal::Overloaded)]);
    h.provider.push(vec![Step::Say("second try")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert_eq!(answer_text(&client.until_done().await), "second try");

    h.provider.push(vec![Step::Say("started "), Step::Break(Refusal::Overloaded)]);
    h.say(&mut client, "again").await.expect("again");
    let events = client.until_done().await;
    assert_eq!(error_code(&events), Some(ErrorCode::LlmUnavailable));
    assert_eq!(done_of(&events).1, FinishReason::Error);
    assert_eq!(h.provider.requests.lock().expect("lock").len(), 3, "no retry after the first token");
    assert!(h.stored(&client.session_id()).await.last().expect("answer").is_partial());
}

#[tokio::test(start_paused = true)]
async fn the_providers_conversation_id_is_kept_with_the_session_and_sent_back() {
    let h = harness();
    h.provider.push(vec![Step::Conversation("conv-7"), Step::Say("hello")]);
    h.provider.push(vec![Step::Say("again")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "one").await.expect("one");
    client.until_done().await;
    h.say(&mut client, "two").await.expect("two");
    client.until_done().await;
    let sent: Vec<Option<String>> =
        h.provider.requests.lock().expect("lock").iter().map(|r| r.conversation_id.clone()).collect();
    assert_eq!(sent, [None, Some("conv-7".to_owned())]);
    let session = h.repo.load(&client.session_id()).await.expect("load").expect("exists");
    assert_eq!(
        session.provider_conversation.map(|c| c.id).as_deref(),
        Some("conv-7"),
        "stored with the session"
    );
}

#[tokio::test(start_paused = true)]
async fn done_reports_time_to_first_token_and_duration() {
    let h = harness();
    h.provider.push(vec![
        Step::Wait(Duration::from_millis(100)),
        Step::Say("late"),
        Step::Wait(Duration::from_millis(100)),
    ]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    let Some(ServerEvent::AnswerDone { timing, .. }) = events.last() else { panic!("done") };
    let first = timing.first_token.expect("a first token");
    assert!(
        first >= Duration::from_millis(100) && timing.total >= first + Duration::from_millis(100),
        "{timing:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_answers_database_error_to_the_sender_and_a_retry_loses_nothing() {
    let h = harness();
    let mut phone = h.connect("u1", None, None).await;
    h.say(&mut phone, "first").await.expect("first");
    phone.until_done().await;
    let session = phone.session_id();
    let mut laptop = h.connect("u1", Some(session.clone()), None).await;

    *h.storage.mode.lock().expect("lock") = Storage::Fails;
    h.say_with(&mut phone, "important", Some("k-9")).await.expect("accepted");
    match phone.next().await {
        ServerEvent::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::DatabaseError);
            assert!(!message.contains("down"), "driver text stays inside: {message}");
        }
        other => panic!("expected DATABASE_ERROR, got {other:?}"),
    }
    assert!(
        laptop.next_within(Duration::from_millis(200)).await.is_none(),
        "nothing was stored, nothing fanned out"
    );
    assert_eq!(h.provider.requests.lock().expect("lock").len(), 1, "no answer to an unstored message");

    *h.storage.mode.lock().expect("lock") = Storage::Works;
    h.say_with(&mut phone, "important", Some("k-9")).await.expect("the same key is accepted again");
    let events = phone.until_done().await;
    assert!(
        matches!(&events[0], ServerEvent::MessageAck { seq: Seq(3), client_message_id, .. } if client_message_id.as_str() == "k-9"),
        "acknowledged once stored, before its answer: {events:?}"
    );
    assert_eq!(done_of(&events).1, FinishReason::Stop);
    let stored: Vec<String> = h.stored(&session).await.into_iter().map(|m| m.content).collect();
    assert_eq!(stored, ["first", "ok", "important", "ok"]);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_store_times_out_and_the_session_keeps_working() {
    let mut s = settings();
    s.storage_timeout = Duration::from_millis(200);
    let h = harness_with(s);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "hello").await.expect("hello");
    client.until_done().await;

    *h.storage.mode.lock().expect("lock") = Storage::Stalls;
    let started = Instant::now();
    h.say(&mut client, "stuck").await.expect("accepted");
    assert!(matches!(client.next().await, ServerEvent::Error { code: ErrorCode::DatabaseError, .. }));
    assert!(started.elapsed() >= Duration::from_millis(200));

    *h.storage.mode.lock().expect("lock") = Storage::Works;
    h.say(&mut client, "unstuck").await.expect("accepted");
    assert_eq!(done_of(&client.until_done().await).1, FinishReason::Stop);
}

#[tokio::test(start_paused = true)]
async fn an_answer_nobody_comes_back_for_is_cancelled_after_the_reconnect_timeout_and_stored() {
    let mut s = settings();
    s.reconnect_timeout = Duration::from_millis(150);
    let h = harness_with(s);
    let mut script = vec![Step::Say("part ")];
    for _ in 0..50 {
        script.push(Step::Wait(Duration::from_millis(20)));
        script.push(Step::Say("more "));
    }
    h.provider.push(script);
    let mut client = h.connect("u1", None, None).await;
    let session = client.session_id();
    h.say(&mut client, "long").await.expect("long");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    h.service.disconnect(client.connection);
    // The input: nobody comes back for 600 ms (virtual), four times the timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.provider.dropped.load(Ordering::SeqCst), 1, "the provider request was abandoned");
    let answer = h.stored(&session).await.pop().expect("the partial answer");
    assert_eq!(answer.finish_reason, Some(FinishReason::Cancelled));
    assert!(answer.content.starts_with("part ") && answer.content.len() < "part ".len() + 50 * 5);
}

#[tokio::test(start_paused = true)]
async fn a_long_history_is_replayed_page_by_page_without_loss_or_doubles() {
    let mut s = settings();
    s.replay_page_size = 3;
    let h = harness_with(s);
    let mut client = h.connect("u1", None, None).await;
    for n in 0..5 {
        h.say(&mut client, &format!("question {n}")).await.expect("accepted");
        client.until_done().await;
    }
    let session = client.session_id();
    let mut back = h.connect("u1", Some(session), Some(Seq(0))).await;
    let mut seqs = Vec::new();
    while let Some(event) = back.next_within(Duration::from_millis(200)).await {
        if let ServerEvent::Stored { message, .. } = event {
            seqs.push(message.seq.0);
        }
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>(), "every stored message once, in order, across 4 pages");
}

#[tokio::test]
async fn an_answer_is_cut_at_max_answer_chars_with_finish_reason_length_and_the_provider_stops() {
    let mut s = settings();
    s.max_answer_chars = 12;
    let h = harness_with(s);
    h.provider.push(vec![Step::Say("héllo wörld "), Step::Say("and more"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "talk a lot").await.expect("sent");
    let events = client.until_done().await;
    assert_eq!(answer_text(&events), "héllo wörld ", "exactly 12 characters, cut on a character boundary");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Length));
    assert_eq!(h.stored(&client.session_id()).await[1].content, "héllo wörld ");
    assert_eq!(h.provider.dropped.load(Ordering::SeqCst), 1, "the provider request ends with the answer");
}

#[tokio::test]
async fn a_slow_consumer_joining_a_long_answer_costs_one_shared_frame_at_most() {
    const CHUNK_CHARS: usize = 100_000;
    let mut s = settings();
    s.max_answer_chars = 2_000_000;
    let h = harness_with(s);
    let chunk: &'static str = Box::leak("x".repeat(CHUNK_CHARS).into_boxed_str());
    let mut script = vec![Step::Say(chunk); 10];
    script.push(Step::Stall);
    h.provider.push(script);
    let mut reader = h.connect_with_capacity("u1", None, None, 4 << 20).await;
    let session = reader.session_id();
    h.say(&mut reader, "long").await.expect("sent");
    assert!(matches!(reader.next().await, ServerEvent::Loading { .. }));
    for _ in 0..10 {
        assert!(matches!(reader.next().await, ServerEvent::AnswerChunk { .. }));
    }
    // A megabyte is streaming. Two sockets join and never read.
    let budget = SocketBudget { max_bytes: 64 * 1024, encode };
    let mut joined = Vec::new();
    for _ in 0..2 {
        let (socket, queue) = SocketHandle::new(user("u1"), budget);
        let connection =
            h.service.connect(Arc::clone(&socket), false, Some(session.clone()), None).await.expect("join");
        joined.push((socket, queue, connection));
    }
    let catch_up = |queue: &mut OutboundQueue| {
        let mut frames = Vec::new();
        while let Some(item) = queue.try_recv() {
            frames.extend(item.frames().iter().cloned());
        }
        frames
            .into_iter()
            .find(|f| matches!(f.event, ServerEvent::AnswerChunk { .. }))
            .expect("catch-up chunk")
    };
    let bytes: Vec<usize> = joined.iter().map(|(socket, _, _)| socket.queued_bytes()).collect();
    let one_frame = encode(&catch_up(&mut joined[0].1)).len();
    assert!(one_frame > 1_000_000, "the catch-up frame holds the whole answer so far");
    for queued in bytes {
        assert!(queued <= one_frame + 4096, "a joiner holds the catch-up once: {queued} bytes");
    }
    let first = catch_up(&mut joined[1].1);
    let (socket, mut queue, _connection) = joined.remove(0);
    assert_eq!(socket.queued_bytes(), 0, "freed once the writer took the frames");
    drop(queue.try_recv());
    // Both joiners got the same frame: joining copies nothing.
    let (again, mut again_queue) = SocketHandle::new(user("u1"), budget);
    let _third =
        h.service.connect(Arc::clone(&again), false, Some(session.clone()), None).await.expect("join");
    assert!(Arc::ptr_eq(&first, &catch_up(&mut again_queue)), "one catch-up frame per answer length");
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_finished_while_storage_failed_is_held_and_stored_once_when_it_returns() {
    let h = harness();
    h.provider.push(vec![Step::Say("part"), Step::Wait(Duration::from_millis(50)), Step::Say(" two")]);
    let mut client = h.connect("u1", None, None).await;
    let session = client.session_id();
    h.say(&mut client, "question").await.expect("sent");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    *h.storage.mode.lock().expect("lock") = Storage::Fails;
    let events = client.until_done().await;
    assert_eq!(error_code(&events), Some(ErrorCode::DatabaseError), "the client is told: {events:?}");
    assert_eq!(done_of(&events), (None, FinishReason::Stop), "not stored yet, so no seq");

    // While the answer is held, nothing else is stored after it.
    h.say(&mut client, "meanwhile").await.expect("accepted");
    assert!(matches!(client.next().await, ServerEvent::Error { code: ErrorCode::DatabaseError, .. }));
    assert_eq!(h.service.cleanup_sessions(), 0, "a session with a held answer stays live");

    *h.storage.mode.lock().expect("lock") = Storage::Works;
    // The actor retries on its own timer (virtual time moves while it waits).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.stored(&session).await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the held answer was never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: Vec<(u64, String)> =
        h.stored(&session).await.into_iter().map(|m| (m.seq.0, m.content)).collect();
    assert_eq!(stored, [(1, "question".to_owned()), (2, "part two".to_owned())]);
    h.say(&mut client, "again").await.expect("sent");
    assert_eq!(done_of(&client.until_done().await).0, Some(Seq(4)), "sequence numbers continue in order");
    let seqs: Vec<u64> = h.stored(&session).await.into_iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "stored exactly once, gapless");
}

/// An alert channel that records what it was asked to send, or fails every time.
struct RecordingChannel {
    name: &'static str,
    fails: bool,
    sent: tokio::sync::mpsc::UnboundedSender<HelpAlert>,
}

#[async_trait::async_trait]
impl Notifier for RecordingChannel {
    fn channel(&self) -> &'static str {
        self.name
    }

    async fn notify(&self, alert: &HelpAlert) -> Result<(), NotifyError> {
        let _ = self.sent.send(alert.clone());
        if self.fails { Err(NotifyError::Unavailable("down".into())) } else { Ok(()) }
    }
}

#[tokio::test(start_paused = true)]
async fn help_alerts_go_to_every_channel_and_are_limited_per_session() {
    let (email_tx, mut emails) = tokio::sync::mpsc::unbounded_channel();
    let (sms_tx, mut texts) = tokio::sync::mpsc::unbounded_channel();
    let channels: Vec<Arc<dyn Notifier>> = vec![
        Arc::new(RecordingChannel { name: "email", fails: true, sent: email_tx }),
        Arc::new(RecordingChannel { name: "sms", fails: false, sent: sms_tx }),
    ];
    let mut s = settings();
    s.admin_panel_url = Some("https://panel.example/admin".into());
    let h = harness_alerting(s, channels);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "hello").await.expect("hello");
    client.until_done().await;
    let session = client.session_id();
    let ask = || ClientCommand::HelpRequest { session_id: None };
    for _ in 0..6 {
        h.service.handle(&mut client.connection, ask()).await.expect("help");
    }
    // Let the alert tasks run (paused time: this only advances the clock).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let drain = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<HelpAlert>| {
        std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
    };
    let (tried, sent) = (drain(&mut emails), drain(&mut texts));
    assert_eq!(tried.len(), 5, "5 alerts per session per 5 minutes; the 6th is skipped");
    assert_eq!(sent.len(), 5, "the failing email channel never keeps the SMS from going out");
    assert_eq!(sent[0].session_id, session);
    assert_eq!(sent[0].user_id.as_str(), "u1");
    assert_eq!(
        sent[0].link.as_deref(),
        Some(format!("https://panel.example/admin?session_id={session}").as_str())
    );

    tokio::time::sleep(Duration::from_secs(300)).await;
    h.service.handle(&mut client.connection, ask()).await.expect("help");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(drain(&mut texts).len(), 1, "the quota refills");
}
