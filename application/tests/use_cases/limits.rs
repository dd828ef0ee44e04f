//! Limits (`chat/submit`, `socket`): the per-user message rate limit, and a socket that
//! cannot keep up is closed rather than silently losing chunks, and costs at most one
//! shared catch-up frame.

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::commands::ClientCommand;
use chatbox_application::events::ServerEvent;
use chatbox_application::socket::{CloseReason, OutboundQueue, SocketBudget, SocketHandle};
use chatbox_domain::rate_limit::Quota;
use chatbox_domain::{ErrorCode, FinishReason};

use crate::support::{Step, done_of, encode, harness, harness_with, settings, user};

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

/// The per-connection command budget (`COMMAND_QUOTA` units, each command its cost —
/// typing costs 1): over it a command is refused with `retry_after`, and a socket that
/// keeps sending far past it (more than 30 refusals in a row) is flooding.
#[tokio::test(start_paused = true)]
async fn the_command_budget_refuses_then_calls_it_flooding() {
    let mut s = settings();
    s.command_quota = Quota::new(3, Duration::from_secs(60)).expect("quota");
    let h = harness_with(s);
    let mut client = h.connect("u1", None, None).await;
    let typing = || ClientCommand::Typing { session_id: None, typing: true };
    for _ in 0..3 {
        h.service.handle(&mut client.connection, typing()).await.expect("within the budget");
    }
    for _ in 0..30 {
        let refused = h.service.handle(&mut client.connection, typing()).await;
        assert!(matches!(refused, Err(ChatError::RateLimited { .. })), "{refused:?}");
    }
    let flooding = h.service.handle(&mut client.connection, typing()).await;
    assert!(matches!(flooding, Err(ChatError::Flooding)), "{flooding:?}");
}

/// The memory reports: live sessions, message-limiter keys, users with sockets; and the
/// limiter forgets a user once their quota recovered.
#[tokio::test(start_paused = true)]
async fn memory_reports_count_live_state_and_recovered_limiter_keys_are_forgotten() {
    let h = harness();
    let mut phone = h.connect("u1", None, None).await;
    let _laptop = h.connect("u1", None, None).await;
    let mut other = h.connect("u2", None, None).await;
    assert_eq!(h.service.users_with_sockets(), 2, "two users, one with two sockets");
    assert_eq!(h.service.live_sessions(), 0, "nothing live before a message");
    h.say(&mut phone, "hi").await.expect("u1");
    h.say(&mut other, "hi").await.expect("u2");
    phone.until_done().await;
    other.until_done().await;
    assert_eq!(h.service.live_sessions(), 2);
    assert_eq!(h.service.running_actors(), 2, "one actor per live session");
    assert_eq!(h.service.rate_limiter_keys(), 2);
    assert_eq!(h.service.cleanup_rate_limiter(), (2, 2), "neither recovered yet");
    // 100 messages a minute: one message is recovered after 0.6 s.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.service.cleanup_rate_limiter(), (2, 0));
    assert_eq!(h.service.rate_limiter_keys(), 0);
}

/// A refused connection is explained to the user's other sockets.
#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_announced_to_the_users_sockets() {
    let h = harness();
    let mut phone = h.connect("u1", None, None).await;
    let mut laptop = h.connect("u1", None, None).await;
    let mut other = h.connect("u2", None, None).await;
    h.service.notify_connection_refused(&user("u1"));
    for client in [&mut phone, &mut laptop] {
        match client.next().await {
            ServerEvent::Notification { content } => assert_eq!(
                &*content,
                "Connection limit reached: a new connection was refused. Close another tab or device to connect it."
            ),
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert!(other.is_quiet().await, "only that user's sockets");
}

#[tokio::test(start_paused = true)]
async fn a_closed_socket_leaves_the_user_directory() {
    let h = harness();
    let phone = h.connect("u1", None, None).await;
    let laptop = h.connect("u1", None, None).await;
    let other = h.connect("u2", None, None).await;
    assert_eq!(h.service.users_with_sockets(), 2);
    h.service.disconnect(phone.connection);
    assert_eq!(h.service.users_with_sockets(), 2, "the laptop is still there");
    h.service.disconnect(laptop.connection);
    assert_eq!(h.service.users_with_sockets(), 1, "the user went with their last socket");
    h.service.disconnect(other.connection);
    assert_eq!(h.service.users_with_sockets(), 0);
}
