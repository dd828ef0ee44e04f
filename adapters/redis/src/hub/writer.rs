//! The writer: one task that appends this replica's entries to the sessions' streams in
//! the order they were published, a batch per round trip (one script), and gives writer
//! leases back in that same order, after the entries published before.
//!
//! The queue is bounded in bytes (the entries' text) and in count. Publishing never
//! waits: past a bound an entry is dropped and one warning is logged until the queue has
//! room again. A batch Redis refuses is dropped the same way (the store keeps every
//! message; the other replicas' copies catch up from it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::connection::RedisConnection;
use chatbox_domain::SessionId;
use redis::Script;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Shared;
use crate::lease::Grant;

/// At most this many entries per round trip.
const BATCH: usize = 128;
/// At most this many writes wait, whatever their size.
const QUEUE_LEN: usize = 65_536;
/// A session's stream (and its answer-start record) is forgotten after this long
/// without a new entry.
const STREAM_TTL_MS: u64 = 60 * 60 * 1000;

/// Appends each entry and keeps the record of where the session's answer in progress
/// started. KEYS: per entry, its stream and its answer-start record. ARGV[1] the streams'
/// length, ARGV[2] this replica, ARGV[3] the time to live in ms, then per entry its text
/// and its mark (`start`, `end` or empty).
const APPEND: &str = r#"
local count = #KEYS / 2
for i = 1, count do
  local stream, answering = KEYS[2 * i - 1], KEYS[2 * i]
  local text, mark = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local id = redis.call("XADD", stream, "MAXLEN", "~", ARGV[1], "*", "origin", ARGV[2], "frame", text)
  redis.call("PEXPIRE", stream, ARGV[3])
  if mark == "start" then
    redis.call("SET", answering, id, "PX", ARGV[3])
  elseif mark == "end" then
    redis.call("DEL", answering)
  end
end
return count
"#;

/// What an entry does to the record of the session's answer in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    /// Nothing.
    None,
    /// An answer starts at this entry.
    AnswerStarts,
    /// The answer ends.
    AnswerEnds,
}

/// One queued write.
pub(super) enum Write {
    /// An entry for a session's stream.
    Entry { session: SessionId, text: String, mark: Mark },
    /// A lease to give back once the entries before it are written.
    Release(Grant),
}

/// The sending side of the queue.
pub(super) struct Outbox {
    sender: mpsc::Sender<(Write, usize)>,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    dropping: AtomicBool,
}

/// The receiving side, for [`run`].
pub(super) struct Queued {
    receiver: mpsc::Receiver<(Write, usize)>,
    bytes: Arc<AtomicUsize>,
}

impl Outbox {
    pub(super) fn new(max_bytes: usize) -> (Self, Queued) {
        let (sender, receiver) = mpsc::channel(QUEUE_LEN);
        let bytes = Arc::new(AtomicUsize::new(0));
        let outbox = Self { sender, bytes: Arc::clone(&bytes), max_bytes, dropping: AtomicBool::new(false) };
        (outbox, Queued { receiver, bytes })
    }

    /// Queues `write` without waiting; an entry past the bounds is dropped. A lease to
    /// give back is never dropped for size (it is small); if the queue is closed it
    /// expires by itself.
    pub(super) fn push(&self, write: Write) {
        let size = match &write {
            Write::Entry { text, .. } => text.len(),
            Write::Release(_) => 0,
        };
        let queued = self.bytes.fetch_add(size, Ordering::AcqRel).saturating_add(size);
        if size > 0 && queued > self.max_bytes {
            self.bytes.fetch_sub(size, Ordering::AcqRel);
            self.dropped();
            return;
        }
        match self.sender.try_send((write, size)) {
            Ok(()) => {
                if self.dropping.swap(false, Ordering::AcqRel) {
                    info!("replica fan-out queue has room again");
                }
            }
            Err(_) => {
                self.bytes.fetch_sub(size, Ordering::AcqRel);
                self.dropped();
            }
        }
    }

    fn dropped(&self) {
        if !self.dropping.swap(true, Ordering::AcqRel) {
            warn!("replica fan-out queue full: frames for the other replicas are dropped until it drains");
        }
    }
}

/// Writes the queue until the hub is dropped.
pub(super) async fn run(shared: Arc<Shared>, mut connection: RedisConnection, mut queued: Queued) {
    let script = Script::new(APPEND);
    let mut failing = false;
    let mut batch: Vec<(SessionId, String, Mark)> = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            () = shared.stopped.cancelled() => return,
            next = queued.receiver.recv() => next,
        };
        let Some(mut next) = first else { return };
        loop {
            let (write, size) = next;
            queued.bytes.fetch_sub(size, Ordering::AcqRel);
            match write {
                Write::Entry { session, text, mark } => batch.push((session, text, mark)),
                Write::Release(grant) => {
                    failing = append(&shared, &mut connection, &script, &mut batch, failing).await;
                    // Best effort: a lease not given back expires.
                    let _ = shared.leases.release(grant).await;
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            match queued.receiver.try_recv() {
                Ok(more) => next = more,
                Err(_) => break,
            }
        }
        failing = append(&shared, &mut connection, &script, &mut batch, failing).await;
    }
}

/// Appends `batch` (emptied); returns whether Redis is failing, logging each change.
async fn append(
    shared: &Shared,
    connection: &mut RedisConnection,
    script: &Script,
    batch: &mut Vec<(SessionId, String, Mark)>,
    failing: bool,
) -> bool {
    if batch.is_empty() {
        return failing;
    }
    let settings = &shared.settings;
    let mut invocation = script.prepare_invoke();
    invocation.arg(settings.stream_len).arg(&settings.replica).arg(STREAM_TTL_MS);
    for (session, text, mark) in batch.drain(..) {
        let [stream, answering] = shared.streams.keys(&session);
        invocation.key(stream).key(answering);
        let mark = match mark {
            Mark::None => "",
            Mark::AnswerStarts => "start",
            Mark::AnswerEnds => "end",
        };
        invocation.arg(text).arg(mark);
    }
    match invocation.invoke_async::<u64>(connection).await {
        Ok(_) => {
            if failing {
                info!("replica fan-out writes to Redis again");
            }
            false
        }
        Err(error) => {
            if !failing {
                let error = crate::RedisStateError::from(error);
                warn!(%error, "replica fan-out cannot write to Redis: the other replicas miss frames until it can");
            }
            true
        }
    }
}
