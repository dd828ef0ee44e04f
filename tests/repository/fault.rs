//! An outage in the middle of a sequence of appends: the server is stopped while one
//! writer appends, and started again on the same port with the same data.
//!
//! The writer behaves as the session actor does: it appends message `seq`, and on a
//! failure tries the same message again. Every failure during the outage must be
//! `Unavailable` (never a wrong answer like `Conflict`), `ping` fails during the outage
//! and succeeds after, and at the end every message is stored exactly once with gapless
//! sequence numbers and counters that match.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chatbox_application::ports::{RepositoryError, SessionRepository};
use chatbox_domain::{MessageEffects, Seq};
use chatbox_mongodb_store::{MongoSessionRepository, RetryPolicy};

use crate::server::PrivateServer;
use crate::support::{config, session, test_keys, text, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);
/// Appends after the restart before the writer stops.
const AFTER_RESTART: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_a_server_outage_exactly_once() {
    let Some(server) = PrivateServer::start("fault").await else {
        return;
    };
    let mut settings = config(&server.uri(), "fault", Some(test_keys()));
    // Fail fast during the outage, so the test stays short.
    settings.connect_timeout = Duration::from_millis(500);
    settings.retry =
        RetryPolicy { attempts: 2, delay: Duration::from_millis(20), max_delay: Duration::from_millis(50) };
    let repo = Arc::new(MongoSessionRepository::connect(settings).await.expect("connect"));
    let s = session("s-fault");
    repo.create(&s).await.expect("create");

    // The writer appends 1, 2, 3, … until told to stop, retrying a message until it is
    // stored, as the session actor does.
    let stored = Arc::new(AtomicU64::new(0));
    let outage_errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (repo, stored, outage_errors, stop) =
            (repo.clone(), stored.clone(), outage_errors.clone(), stop.clone());
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let id = session("s-fault").id;
            let mut seq = 0;
            while !stop.load(Ordering::SeqCst) {
                seq += 1;
                let message = text("s-fault", seq, &format!("message {seq}"));
                let effects = MessageEffects { tokens: 2, ..MessageEffects::default() };
                loop {
                    match repo.append_message(&id, &message, &effects).await {
                        Ok(()) => break,
                        Err(RepositoryError::Unavailable(_)) => {
                            outage_errors.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(other) => panic!("append {seq} gave {other:?}, not Unavailable"),
                    }
                    assert!(start.elapsed() < DEADLINE, "append {seq} never succeeded again");
                }
                stored.store(seq, Ordering::SeqCst);
            }
            seq
        })
    };

    wait_until("a few appends before the outage", DEADLINE, || async { stored.load(Ordering::SeqCst) >= 5 })
        .await;
    server.stop().await;
    wait_until("an append failing during the outage", DEADLINE, || async {
        outage_errors.load(Ordering::SeqCst) >= 1
    })
    .await;
    let ping = repo.ping().await;
    assert!(matches!(ping, Err(RepositoryError::Unavailable(_))), "ping during the outage: {ping:?}");
    server.restart().await;
    wait_until("ping after the restart", DEADLINE, || async { repo.ping().await.is_ok() }).await;
    let at_restart = stored.load(Ordering::SeqCst);
    wait_until("appends after the restart", DEADLINE, || async {
        stored.load(Ordering::SeqCst) >= at_restart + AFTER_RESTART
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let last = tokio::time::timeout(DEADLINE, writer).await.expect("the writer finishes").expect("writer");

    let session = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!((session.last_seq, session.message_count, session.total_tokens), (Seq(last), last, 2 * last));
    let messages = repo.messages_after(&s.id, Seq(0), 100_000).await.expect("read");
    assert_eq!(messages.iter().map(|m| m.seq.0).collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>());
    assert!(
        messages.iter().all(|m| m.content == format!("message {}", m.seq)),
        "each message is the one written"
    );
    repo.database().drop().await.expect("drop");
}
