//! The stored layout itself (MongoDB only), where reading through the adapter could hide
//! a problem: analytics fields stored flat and typed, the response-time window bounded
//! in the document (the domain would also cut it on reading), sticky handoff flags,
//! messages as documents of their own, and the indexes.

use std::time::Duration;

use chatbox_domain::{HandoffState, MessageEffects, Usage, UserId};
use chatbox_mongodb_store::mongodb::bson::{Bson, doc};

use crate::support::{at, mongo, session, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_flat_bounded_and_indexed() {
    let Some(store) = mongo("layout").await else {
        return;
    };
    let repo = store.repository();
    let s = session("s-layout");
    repo.create(&s).await.expect("create");
    for seq in 1..=105u64 {
        let effects = MessageEffects::answer(
            Usage { prompt_tokens: 1, completion_tokens: 1, estimated: false },
            Duration::from_millis(seq),
            None,
        );
        repo.append_message(&s.id, &text("s-layout", seq, "a"), &effects).await.expect("append");
    }
    let admin = HandoffState::AdminAssisting {
        admin_id: UserId::parse("admin-1").expect("id"),
        admin_name: "Ann".into(),
    };
    for state in [HandoffState::HelpRequested, admin, HandoffState::Ai] {
        repo.set_handoff(&s.id, &state, at(1)).await.expect("handoff");
    }
    repo.end(&s.id, at(200_000)).await.expect("end");

    let mongo = store.mongo();
    let stored = mongo
        .sessions_collection()
        .find_one(doc! { "_id": "s-layout" })
        .await
        .expect("find")
        .expect("exists");
    let window = stored.get_array("response_times_ms").expect("window");
    assert_eq!(window.len(), 100, "the stored window is bounded");
    assert_eq!(window.first(), Some(&Bson::Int64(6)));
    assert_eq!(stored.get_i64("message_count"), Ok(105));
    assert_eq!(stored.get_i64("last_seq"), Ok(105));
    assert_eq!(stored.get_i64("total_tokens"), Ok(210));
    assert_eq!(stored.get_str("status"), Ok("ended"));
    assert!(stored.get_datetime("ended_at").is_ok() && stored.get_datetime("created_at").is_ok());
    assert!(stored.get_datetime("last_activity").is_ok());
    assert_eq!(stored.get_str("handoff"), Ok("ai"));
    assert_eq!(stored.get_bool("help_requested"), Ok(true), "help was requested once: the flag stays");
    assert_eq!(stored.get_bool("admin_assisted"), Ok(true), "an admin assisted once: the flag stays");
    assert_eq!(stored.get_str("assisting_admin_id"), Ok("admin-1"));
    assert!(stored.get("msgs").is_none() && stored.get("messages").is_none(), "no embedded messages");
    let messages =
        mongo.messages_collection().count_documents(doc! { "session_id": "s-layout" }).await.expect("count");
    assert_eq!(messages, 105, "one document per message");

    let session_indexes = mongo.sessions_collection().list_index_names().await.expect("indexes");
    for name in [
        "user_last_activity",
        "status_last_activity",
        "created_at",
        "help_requested_created_at",
        "admin_assisted_created_at",
        "schema",
    ] {
        assert!(session_indexes.iter().any(|n| n == name), "index {name} in {session_indexes:?}");
    }
    let message_indexes = mongo.messages_collection().list_index_names().await.expect("indexes");
    assert!(message_indexes.iter().any(|n| n == "session_seq"), "{message_indexes:?}");
    store.drop_database().await;
}
