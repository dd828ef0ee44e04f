//! The writer of one socket: drains the socket's byte-bounded queue (everything queued in
//! one write), sends protocol pings, closes a silent client or one whose token expired,
//! and ends the socket with the right close code: 1001 on shutdown, 1008 for a slow
//! consumer, an expired token, a silent client or a flood, 1009 for an oversized frame.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use chatbox_application::events::{Frame, ServerEvent};
use chatbox_application::socket::{CloseReason, Dequeued, OutboundQueue, SocketHandle};
use chatbox_application::wait::Dormant;
use chatbox_domain::ErrorCode;
use tokio::time::{Instant, Sleep, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::frame_type::sent_type;
use crate::state::HttpState;

use super::control::Control;
use super::halves::{CLOSE_TIMEOUT, Halves, ReadEnd};
use super::outgoing::Outgoing;

/// Writes what the socket's queue holds, pings the client, closes a silent socket or
/// one whose token expired, and ends the socket; returns the close frame it sent for a
/// server-side reason.
///
/// A plain `fn` returning the future, for the reason given at `serve`: the writer's
/// state is part of every idle socket's task.
pub(super) fn write_loop<'a>(
    state: &'a HttpState,
    mut outgoing: Outgoing,
    mut queue: OutboundQueue,
    handle: &'a SocketHandle,
    expiry: Option<Instant>,
    halves: &'a Halves,
) -> impl Future<Output = Option<CloseFrame>> + Send + 'a {
    let mut next_ping = Instant::now() + state.config.ping_interval;
    // Everything the writer keeps lives as long as the socket: the settings are read
    // from `state` where needed rather than copied in.
    async move {
        // One timer for the next ping, the client's silence and the token's expiry,
        // whichever comes first: every idle socket holds its timers for its whole life.
        let mut timer = pin!(sleep_until(writer_due(state, halves, next_ping, expiry)));
        // The rare ends are waited for by futures made once, not once per frame: each
        // would register with its signal, or with the timer wheel, and leave it again.
        let mut reader_stopped = pin!(halves.reader_done());
        // The shutdown wait is polled only when shutdown wakes it: polled at every
        // frame, tokio-util's token would take two locks each time.
        let mut shutting_down = pin!(Dormant::new(state.shutdown.cancelled()));
        let close = loop {
            match next_duty(
                handle,
                &mut queue,
                outgoing.control(),
                timer.as_mut(),
                reader_stopped.as_mut(),
                shutting_down.as_mut(),
            )
            .await
            {
                Duty::Close => break Some(handle.close_reason()),
                Duty::Write(item) => {
                    // Everything queued goes in one write; its bytes count against the
                    // socket's budget until written.
                    match write_queued(state, &mut outgoing, item.frames(), handle).await {
                        Written::Done => {}
                        Written::Failed => break None,
                        Written::Closed => break Some(handle.close_reason()),
                    }
                }
                Duty::Control => {
                    // Pongs (or the reply to a client's close) the reader's protocol
                    // layer made while no frames were queued.
                    if !in_time(state, outgoing.send_control()).await {
                        break None;
                    }
                }
                Duty::ReaderStopped => break None,
                Duty::ShutDown => break Some(Some(CloseReason::ShuttingDown)),
                Duty::Timer => {
                    let now = Instant::now();
                    if expiry.is_some_and(|at| at <= now) {
                        let expired = state.chat.frame(ServerEvent::Error {
                            session_id: None,
                            code: ErrorCode::TokenExpired,
                            message: "Authentication token expired".into(),
                            retry_after: None,
                        });
                        Box::pin(write_within(state, &mut outgoing, &[expired])).await;
                        break Some(Some(CloseReason::TokenExpired));
                    }
                    if halves.silent_at(state.config.pong_timeout).is_some_and(|at| at <= now) {
                        // The reader finds the writer done and stops; the close frame is
                        // the read end's.
                        halves.client_went_silent();
                        break None;
                    }
                    if next_ping <= now {
                        if !in_time(state, outgoing.send_ping()).await {
                            break None;
                        }
                        next_ping = Instant::now() + state.config.ping_interval;
                    }
                    timer.as_mut().reset(writer_due(state, halves, next_ping, expiry));
                }
            }
        };
        if close == Some(Some(CloseReason::SlowConsumer)) {
            state.metrics.recorder.slow_consumer_disconnected();
        }
        let read_end = halves.read_end();
        // What is still queued is delivered before the close when it explains or completes
        // it: at shutdown, the answers' last frames (shutdown waited for them); for an
        // internal error or a flood, the error frame saying why.
        let deliver_queue = match close {
            Some(reason) => reason == Some(CloseReason::ShuttingDown),
            None => matches!(read_end, ReadEnd::Internal | ReadEnd::Flooding),
        };
        if deliver_queue && let Some(pending) = queue.try_recv_all() {
            Box::pin(write_within(state, &mut outgoing, pending.frames())).await;
        }
        let frame = match close {
            Some(reason) => Some(close_frame(reason)),
            None => read_end.close_frame(),
        };
        // From here on the use-cases see the socket as gone.
        handle.close(CloseReason::Disconnected);
        // The reply to a client's close, if it sent one, goes first; then the server's own
        // close frame, unless a close frame went already. Dropping the write half ends it
        // (the reader still waits for the client's close frame).
        let _ = timeout(CLOSE_TIMEOUT, outgoing.send_close(frame.as_ref())).await;
        halves.writer_stopped();
        frame
    }
}

/// What the writer does next.
enum Duty {
    /// The socket was closed from outside (a slow consumer, shutdown, the session's end).
    Close,
    /// The timer is due: a ping, the client's silence or the token's expiry.
    Timer,
    /// Frames are queued.
    Write(Dequeued),
    /// Control frames from the reader's protocol layer wait to be written.
    Control,
    /// The reader has stopped.
    ReaderStopped,
    /// The process is shutting down.
    ShutDown,
}

/// Waits for the writer's next duty, looking in order of precedence.
///
/// A due timer comes before queued frames: a client that keeps the queue busy must still
/// be pinged, and closed when silent or when its token expires. Queued frames come before
/// the rare ends: a frame in flight is written, then the socket closes (at shutdown, what
/// is still queued is delivered after the loop).
async fn next_duty(
    handle: &SocketHandle,
    queue: &mut OutboundQueue,
    control: &Control,
    timer: Pin<&mut Sleep>,
    reader_stopped: Pin<&mut impl Future<Output = ()>>,
    shutting_down: Pin<&mut impl Future<Output = ()>>,
) -> Duty {
    tokio::select! {
        biased;
        () = handle.closed() => Duty::Close,
        () = timer => Duty::Timer,
        item = queue.recv() => Duty::Write(item),
        () = control.pending() => Duty::Control,
        () = reader_stopped => Duty::ReaderStopped,
        () = shutting_down => Duty::ShutDown,
    }
}

/// When the writer's timer must fire, given the socket's settings and its halves.
fn writer_due(state: &HttpState, halves: &Halves, next_ping: Instant, expiry: Option<Instant>) -> Instant {
    timer_due(next_ping, halves.silent_at(state.config.pong_timeout), expiry)
}

/// When the writer's one timer must fire: at the next ping, or when the client counts
/// as silent or the token expires, if that comes first.
fn timer_due(next_ping: Instant, silent_at: Option<Instant>, expiry: Option<Instant>) -> Instant {
    [silent_at, expiry].into_iter().flatten().fold(next_ping, Instant::min)
}

/// The close frame for a server-side reason.
fn close_frame(reason: Option<CloseReason>) -> CloseFrame {
    match reason {
        Some(CloseReason::ShuttingDown | CloseReason::Disconnected) | None => {
            CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("Server shutting down") }
        }
        Some(CloseReason::SlowConsumer) => {
            CloseFrame { code: CloseCode::Policy, reason: Utf8Bytes::from_static("Slow consumer") }
        }
        Some(CloseReason::TokenExpired) => {
            CloseFrame { code: CloseCode::Policy, reason: Utf8Bytes::from_static("Token expired") }
        }
    }
}

/// How a write of queued frames ended.
enum Written {
    Done,
    /// The client did not take the frames in time, or the connection broke.
    Failed,
    /// The socket was closed from outside while the client was slow to take them.
    Closed,
}

/// Writes frames taken from the queue, giving up after the write timeout or when the
/// socket is closed from outside (a slow consumer, shutdown).
///
/// A write nearly always completes at once, the socket having room. Only a write the
/// client is slow to take waits for the timeout or a close, and what that wait needs (a
/// timer, a wait for the close) is boxed then: inline, it would be part of every idle
/// socket's task.
// An `async fn` would keep a second copy of its arguments beside the locals it moves
// them into (as `serve` explains), 40 bytes of every idle socket's task.
#[expect(clippy::manual_async_fn)]
fn write_queued<'a>(
    state: &'a HttpState,
    outgoing: &'a mut Outgoing,
    frames: &'a [Arc<Frame>],
    handle: &'a SocketHandle,
) -> impl Future<Output = Written> + Send + 'a {
    async move {
        let mut write = pin!(outgoing.send_frames(frames));
        let result = match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
            Poll::Ready(result) => result,
            Poll::Pending => {
                let slow = Box::pin(async {
                    tokio::select! {
                        biased;
                        () = handle.closed() => Written::Closed,
                        () = sleep(state.config.write_timeout) => Written::Failed,
                    }
                });
                tokio::select! {
                    biased;
                    end = slow => return end,
                    result = write => result,
                }
            }
        };
        if result.is_err() {
            return Written::Failed;
        }
        record_written(state, frames);
        Written::Done
    }
}

/// Writes frames on the way to a close (the token's expiry, what shutdown delivers),
/// within the write timeout. Called boxed: it happens once in a socket's life, and its
/// timer inline would be part of every idle socket's task.
async fn write_within(state: &HttpState, outgoing: &mut Outgoing, frames: &[Arc<Frame>]) {
    if in_time(state, outgoing.send_frames(frames)).await {
        record_written(state, frames);
    }
}

/// True when `write` succeeded within the write timeout.
async fn in_time(state: &HttpState, write: impl Future<Output = std::io::Result<()>>) -> bool {
    matches!(timeout(state.config.write_timeout, write).await, Ok(Ok(())))
}

/// Counts frames written to the client, and for an answer's first chunk the gateway's
/// own latency: from its token's arrival from the provider to now, written.
fn record_written(state: &HttpState, frames: &[Arc<Frame>]) {
    for frame in frames {
        state.metrics.frames().sent(sent_type(&frame.event));
        if let Some(arrived) = frame.first_token_at() {
            state.metrics.recorder.gateway_latency(state.chat.clock().monotonic().saturating_sub(arrived));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_timer_fires_at_the_next_ping_or_earlier_at_the_silence_or_the_expiry() {
        let now = Instant::now();
        let (soon, later) = (now + Duration::from_secs(1), now + Duration::from_secs(30));
        assert_eq!(timer_due(later, None, None), later, "no silence or expiry: the ping");
        assert_eq!(timer_due(later, None, Some(soon)), soon, "the expiry first");
        assert_eq!(timer_due(later, Some(soon), None), soon, "the silence first");
        assert_eq!(timer_due(later, Some(later), Some(soon)), soon, "the earliest of all");
        assert_eq!(timer_due(soon, Some(later), Some(later)), soon, "the ping first");
    }

    fn notice() -> Arc<Frame> {
        Frame::new(ServerEvent::Notification { content: "busy".into() }, chatbox_domain::Timestamp::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_timer_comes_before_queued_frames_and_a_closed_socket_before_both() {
        let budget =
            chatbox_application::socket::SocketBudget { max_bytes: 1 << 20, encode: crate::wire::encode };
        let user = chatbox_domain::UserId::parse("busy-reader").expect("a user id");
        let (handle, mut queue) = SocketHandle::new(user, budget);
        let control = Control::default();
        let mut timer = pin!(tokio::time::sleep(Duration::from_secs(1)));
        let mut never_stops = pin!(std::future::pending::<()>());
        let mut never_shuts_down = pin!(std::future::pending::<()>());
        let mut next = async || {
            next_duty(
                &handle,
                &mut queue,
                &control,
                timer.as_mut(),
                never_stops.as_mut(),
                never_shuts_down.as_mut(),
            )
            .await
        };

        assert!(handle.send(notice()));
        assert!(matches!(next().await, Duty::Write(_)), "frames queued, the timer not yet due");
        // A client that keeps the queue busy: frames are queued whenever the writer looks.
        assert!(handle.send(notice()));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(matches!(next().await, Duty::Timer), "the due timer first, though frames wait");

        handle.close(CloseReason::SlowConsumer);
        assert!(matches!(next().await, Duty::Close), "a closed socket before anything");
    }
}
