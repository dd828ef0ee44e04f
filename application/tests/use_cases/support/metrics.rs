//! Metrics that record what the answers report (docs/operations.md: answer duration by
//! finish reason, time to first token, tokens used) and the shared state's changes of
//! reachability; everything else goes nowhere.

use std::sync::Mutex;
use std::time::Duration;

use chatbox_application::ports::{
    FrameCounter, FrameDirection, Limiter, LlmErrorKind, Metrics, NoMetrics, StorageOutcome,
};
use chatbox_domain::upload::FileKind;
use chatbox_domain::{FinishReason, ModelId};

#[derive(Default)]
pub struct RecordingMetrics {
    /// Every `answer_finished`: provider and finish reason.
    pub answers: Mutex<Vec<(ModelId, FinishReason)>>,
    /// Every `time_to_first_token`: provider.
    pub first_tokens: Mutex<Vec<ModelId>>,
    /// Every `tokens_used`: provider, prompt and completion tokens.
    pub tokens: Mutex<Vec<(ModelId, u64, u64)>>,
    /// Every `shared_state_reachable`, in order.
    pub shared_state: Mutex<Vec<bool>>,
    /// Every file event: `uploaded <kind> <bytes>`, `refused <code>`, `deleted <reason>`.
    pub files: Mutex<Vec<String>>,
}

impl Metrics for RecordingMetrics {
    fn socket_opened(&self) {}
    fn socket_closed(&self, _: Duration) {}
    fn frame_counter(&self, direction: FrameDirection, frame_type: &'static str) -> FrameCounter {
        NoMetrics.frame_counter(direction, frame_type)
    }
    fn slow_consumer_disconnected(&self) {}
    fn session_created(&self) {}
    fn session_ended(&self) {}
    fn llm_request(&self, _: &ModelId) {}
    fn llm_error(&self, _: &ModelId, _: LlmErrorKind) {}
    fn llm_retry(&self, _: &ModelId) {}
    fn time_to_first_token(&self, provider: &ModelId, _: Duration) {
        self.first_tokens.lock().expect("lock").push(provider.clone());
    }
    fn gateway_latency(&self, _: Duration) {}
    fn answer_finished(&self, provider: &ModelId, reason: FinishReason, _: Duration) {
        self.answers.lock().expect("lock").push((provider.clone(), reason));
    }
    fn tokens_used(&self, provider: &ModelId, prompt: u64, completion: u64) {
        self.tokens.lock().expect("lock").push((provider.clone(), prompt, completion));
    }
    fn rate_limited(&self, _: Limiter) {}
    fn storage_operation(&self, _: &'static str, _: StorageOutcome, _: Duration) {}
    fn storage_retry(&self, _: &'static str) {}
    fn http_request(&self, _: &'static str, _: &str, _: u16, _: Duration) {}
    fn takeover(&self) {}
    fn help_requested(&self) {}
    fn alert(&self, _: &'static str, _: bool) {}
    fn shared_state_reachable(&self, reachable: bool) {
        self.shared_state.lock().expect("lock").push(reachable);
    }
    fn file_uploaded(&self, kind: FileKind, bytes: u64) {
        self.files.lock().expect("lock").push(format!("uploaded {kind:?} {bytes}"));
    }
    fn upload_refused(&self, code: &'static str) {
        self.files.lock().expect("lock").push(format!("refused {code}"));
    }
    fn file_deleted(&self, reason: &'static str) {
        self.files.lock().expect("lock").push(format!("deleted {reason}"));
    }
}
