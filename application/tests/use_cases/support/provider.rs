//! The scripted LLM provider: each call plays the next script pushed (or answers "ok"),
//! and records the request, when it came, and how many of its answer streams have been
//! dropped (one dropped before its script ends is an aborted provider request).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatbox_application::ports::{AnswerStream, ChatRequest, LlmProvider, ProviderError, StreamEvent};
use chatbox_domain::Usage;
use futures::StreamExt;
use tokio::time::Instant;

/// One step of a scripted answer.
#[derive(Clone, Debug)]
pub enum Step {
    Say(&'static str),
    Wait(Duration),
    Fail,
    Stall,
    /// As the first step: the request itself is refused with this error.
    Refuse(Refusal),
    /// A stream error of this kind (before or after tokens).
    Break(Refusal),
    Conversation(&'static str),
    /// The provider reports the answer's usage (prompt, completion tokens).
    Usage(u64, u64),
    /// The stream panics (a bug in a provider adapter): the session's actor dies.
    Panic,
}

#[derive(Clone, Copy, Debug)]
pub enum Refusal {
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
/// stream.
#[derive(Default)]
pub struct ScriptedProvider {
    scripts: Mutex<Vec<Vec<Step>>>,
    requests: Mutex<Vec<ChatRequest>>,
    request_times: Mutex<Vec<Instant>>,
    dropped: Arc<AtomicUsize>,
    /// The model takes pictures.
    sees: std::sync::atomic::AtomicBool,
}

struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl ScriptedProvider {
    /// From now on the model takes pictures.
    pub fn see_images(&self) {
        self.sees.store(true, Ordering::SeqCst);
    }

    /// Queues the script of a later call.
    pub fn push(&self, script: Vec<Step>) {
        self.scripts.lock().expect("lock").push(script);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().expect("lock").clone()
    }

    /// When each request was received, in order.
    pub fn request_times(&self) -> Vec<Instant> {
        self.request_times.lock().expect("lock").clone()
    }

    /// How many answer streams were dropped (ended or aborted) so far.
    pub fn dropped_streams(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl LlmProvider for ScriptedProvider {
    fn sees_images(&self) -> bool {
        self.sees.load(Ordering::SeqCst)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<AnswerStream, ProviderError> {
        self.requests.lock().expect("lock").push(request.clone());
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
                    Step::Usage(prompt_tokens, completion_tokens) => {
                        let usage = Usage { prompt_tokens, completion_tokens, estimated: false };
                        return Some((Ok(StreamEvent::Usage(usage)), (steps, guard)));
                    }
                    Step::Refuse(_) => {}
                    Step::Fail => {
                        return Some((
                            Err(ProviderError::Stream("boom: secret body".into())),
                            (steps, guard),
                        ));
                    }
                    Step::Stall => futures::future::pending::<()>().await,
                    Step::Panic => panic!("a provider adapter's bug (scripted)"),
                }
            }
        });
        Ok(stream.boxed())
    }
}
