//! The socket's queue: bounded in bytes, taken whole by the writer, empty of memory
//! when idle; and the socket's close, first reason first.

use super::*;
use crate::events::ServerEvent;

/// A stand-in encoder: the frame's size is its notification's length.
fn encode(frame: &Frame) -> String {
    match &frame.event {
        ServerEvent::Notification { content } => content.clone(),
        _ => String::new(),
    }
}

pub(crate) fn budget(max_bytes: usize) -> SocketBudget {
    SocketBudget { max_bytes, encode }
}

fn note(bytes: usize) -> Arc<Frame> {
    Frame::new(ServerEvent::Notification { content: "x".repeat(bytes) }, chatbox_domain::Timestamp::default())
}

#[test]
fn the_queue_is_bounded_in_bytes_and_frees_them_when_the_writer_is_done() {
    let (socket, mut queue) = SocketHandle::new(UserId::parse("u").expect("id"), budget(1000));
    assert!(socket.send(note(10)) && socket.send(note(5000)), "one item of any size lands within budget");
    assert!(!socket.send(note(10)), "nothing fits behind it");
    assert_eq!(socket.close_reason(), Some(CloseReason::SlowConsumer));

    let (socket, mut queue_two) = SocketHandle::new(UserId::parse("u").expect("id"), budget(1000));
    assert!(socket.send(note(400)) && socket.send(note(400)));
    assert_eq!(socket.queued_bytes(), 800 + 2 * FRAME_OVERHEAD_BYTES);
    let first = queue_two.try_recv().expect("queued");
    assert_eq!(socket.queued_bytes(), 800 + 2 * FRAME_OVERHEAD_BYTES, "counted until written");
    drop(first);
    assert_eq!(socket.queued_bytes(), 400 + FRAME_OVERHEAD_BYTES);
    assert!(socket.send(note(400)), "room again once the writer is done");
    assert!(socket.send(note(400)), "within budget before it: lands");
    assert!(!socket.send(note(10)), "over the budget: a slow consumer");
    assert_eq!(socket.queued_bytes(), 1200 + 3 * FRAME_OVERHEAD_BYTES, "budget plus one item at most");
    assert!(socket.is_closing());
    drop(queue.try_recv());
}

fn user() -> UserId {
    UserId::parse("u").expect("id")
}

fn contents(taken: &Dequeued) -> Vec<usize> {
    taken
        .frames()
        .iter()
        .map(|frame| match &frame.event {
            ServerEvent::Notification { content } => content.len(),
            _ => usize::MAX,
        })
        .collect()
}

#[test]
fn the_writer_takes_everything_queued_in_order_and_frees_its_bytes_once_done() {
    let (socket, mut queue) = SocketHandle::new(user(), budget(10_000));
    assert!(queue.try_recv_all().is_none(), "nothing queued");
    assert!(socket.send(note(1)) && socket.send_batch(vec![note(2), note(3)]) && socket.send(note(4)));
    let taken = queue.try_recv_all().expect("queued");
    assert_eq!(contents(&taken), [1, 2, 3, 4], "every item, the batch's frames in place");
    assert_eq!(socket.queued_bytes(), 10 + 4 * FRAME_OVERHEAD_BYTES, "counted until written");
    assert!(queue.try_recv_all().is_none(), "all of it was taken");
    drop(taken);
    assert_eq!(socket.queued_bytes(), 0);
}

#[test]
fn a_drained_queue_gives_back_a_bursts_memory_and_keeps_a_few_slots() {
    let (socket, mut queue) = SocketHandle::new(user(), budget(1 << 20));
    assert_eq!(socket.held_slots(), 0, "an idle socket's queue holds nothing");
    for _ in 0..2 {
        assert!(socket.send(note(1)));
    }
    drop(queue.try_recv_all());
    assert_eq!(socket.held_slots(), KEPT_SLOTS, "a few slots are kept for the next frames");
    for _ in 0..100 {
        assert!(socket.send(note(1)));
    }
    drop(queue.try_recv());
    assert!(socket.held_slots() >= 99, "a queue still holding items keeps its slots");
    drop(queue.try_recv_all());
    assert_eq!(socket.held_slots(), 0, "a drained burst gives its memory back");
}

#[test]
fn dropping_the_writers_end_closes_the_socket() {
    let (socket, queue) = SocketHandle::new(user(), budget(1000));
    drop(queue);
    assert!(socket.is_closing());
    assert_eq!(socket.close_reason(), Some(CloseReason::Disconnected));
    assert!(!socket.send(note(1)), "nothing can be written any more");
    let shown = format!("{socket:?}");
    assert!(shown.contains("SocketHandle") && shown.contains("closing: true"), "{shown}");
}

#[test]
fn a_queue_holding_its_whole_budget_is_full() {
    // Two items of 436 + 64 bytes: exactly the 1000-byte budget.
    let (socket, _queue) = SocketHandle::new(user(), budget(1000));
    assert!(socket.send(note(436)) && socket.send(note(436)));
    assert_eq!(socket.queued_bytes(), 1000);
    assert!(!socket.send(note(0)), "at the budget: a slow consumer");
    assert_eq!(socket.close_reason(), Some(CloseReason::SlowConsumer));

    let (socket, _queue) = SocketHandle::new(user(), budget(1000));
    assert!(socket.send(note(436)) && socket.send(note(435)));
    assert_eq!(socket.queued_bytes(), 999);
    assert!(socket.send(note(0)), "one byte under the budget: one more item lands");
    assert!(!socket.is_closing());
}

#[test]
fn frames_encoded_ahead_keep_the_sockets_encoding() {
    let (socket, _queue) = SocketHandle::new(user(), budget(1000));
    let frame = note(3);
    socket.encode_ahead([&frame]);
    assert_eq!(&frame.encoded(|_| String::new())[..], b"xxx", "serialised once, by the socket's encoder");
}

#[tokio::test(start_paused = true)]
async fn a_socket_is_open_until_closed_and_the_first_reason_wins() {
    let patience = std::time::Duration::from_secs(60);
    let (socket, _queue) = SocketHandle::new(user(), budget(1000));
    assert!(!socket.is_closing());
    assert_eq!(socket.close_reason(), None);
    assert!(tokio::time::timeout(patience, socket.closed()).await.is_err(), "open: closed() waits");
    // The writer waits in a task of its own: the close wakes it.
    let writer = tokio::spawn({
        let socket = Arc::clone(&socket);
        async move { socket.closed().await }
    });
    tokio::task::yield_now().await;
    socket.close(CloseReason::TokenExpired);
    socket.close(CloseReason::SlowConsumer);
    tokio::time::timeout(patience, writer).await.expect("woken by the close").expect("task");
    tokio::time::timeout(patience, socket.closed()).await.expect("closing");
    assert!(socket.is_closing());
    assert_eq!(socket.close_reason(), Some(CloseReason::TokenExpired));
    assert!(!socket.send(note(1)), "a closing socket takes nothing");
}

#[tokio::test(start_paused = true)]
async fn a_replay_waits_until_at_most_half_the_budget_is_queued() {
    let patience = std::time::Duration::from_secs(60);
    let writer_pause = std::time::Duration::from_secs(1);

    // 436 + 64 bytes: exactly half of 1000.
    let (socket, _queue) = SocketHandle::new(user(), budget(1000));
    assert!(socket.send(note(436)));
    tokio::time::timeout(patience, socket.wait_for_room()).await.expect("half the budget queued: room");

    // One byte past half: it waits until the writer is done with an item.
    let (socket, mut queue) = SocketHandle::new(user(), budget(1000));
    assert!(socket.send(note(437)));
    assert_eq!(socket.queued_bytes(), 501);
    assert!(tokio::time::timeout(patience, socket.wait_for_room()).await.is_err(), "over half: waits");
    // The replay waits in a task of its own, so only a wake moves it on.
    let replay = tokio::spawn({
        let socket = Arc::clone(&socket);
        async move { socket.wait_for_room().await }
    });
    tokio::time::sleep(writer_pause).await;
    drop(queue.try_recv().expect("queued"));
    tokio::time::timeout(patience, replay).await.expect("room once the writer is done").expect("task");

    // A socket that closes meanwhile stops the wait too.
    let (socket, _queue) = SocketHandle::new(user(), budget(1000));
    assert!(socket.send(note(437)));
    let replay = tokio::spawn({
        let socket = Arc::clone(&socket);
        async move { socket.wait_for_room().await }
    });
    tokio::time::sleep(writer_pause).await;
    socket.close(CloseReason::Disconnected);
    tokio::time::timeout(patience, replay).await.expect("no waiting on a closing socket").expect("task");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_writer_is_woken_by_the_next_frame_and_takes_everything_queued() {
    let (socket, mut queue) = SocketHandle::new(user(), budget(1000));
    let writer = tokio::spawn(async move {
        let first = queue.recv().await.frames().len();
        let second = queue.recv().await.frames().len();
        (first, second)
    });
    tokio::task::yield_now().await;
    assert!(!writer.is_finished(), "nothing queued yet");
    assert!(socket.send(note(1)));
    tokio::task::yield_now().await;
    assert!(socket.send(note(1)) && socket.send(note(1)));
    let taken =
        tokio::time::timeout(std::time::Duration::from_secs(60), writer).await.expect("woken").expect("task");
    assert_eq!(taken, (1, 2), "the first frame alone, then the two queued meanwhile together");
}
