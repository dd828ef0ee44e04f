//! The catalog on MongoDB only, where the stored layout matters: the derived fields and
//! their indexes, documents written before those fields existed (read correctly, filled
//! in by the migration), sessions of the earlier Go service (not listed, summarised,
//! their plain share token dead), and a name that does not decrypt.

use std::sync::Arc;

use chatbox_application::ports::{SessionCatalog, SessionQuery, SessionSort, ShareGrant};
use chatbox_domain::{HandoffState, MessageEffects, SessionId};
use chatbox_mongodb_store::migrate::migrate_all;
use chatbox_mongodb_store::mongodb::bson::{Bson, doc};
use chatbox_mongodb_store::{EncryptionKey, KeyId, KeyRing, MongoSessionRepository};

use crate::catalog::{Repo, answer, append, create, ids, query, sid};
use crate::legacy::{go_session, keys};
use crate::support::{Store, at, config, fresh_database, mongo, reachable_mongo_uri};

const DERIVED: [&str; 4] = ["duration_ms", "response_count", "response_sum_ms", "response_max_ms"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_fields_are_stored_indexed_and_filled_in_by_the_migration() {
    let Some(store) = mongo("catalog-derived").await else {
        return;
    };
    let repo: Repo = store.store();
    let mongo = store.mongo();
    create(&repo, "s-old", "u-a", 0).await;
    append(&repo, "s-old", 1, 1_000, answer(5, 200)).await;
    append(&repo, "s-old", 2, 2_000, answer(5, 400)).await;
    repo.end(&sid("s-old"), at(9_000)).await.expect("end");
    create(&repo, "s-new", "u-a", 0).await;
    append(&repo, "s-new", 1, 5_000, MessageEffects::default()).await;

    let stored =
        mongo.sessions_collection().find_one(doc! { "_id": "s-old" }).await.expect("find").expect("exists");
    assert_eq!(stored.get_i64("duration_ms"), Ok(9_000));
    assert_eq!(
        (
            stored.get_i64("response_count"),
            stored.get_i64("response_sum_ms"),
            stored.get_i64("response_max_ms")
        ),
        (Ok(2), Ok(600), Ok(400))
    );
    let fresh =
        mongo.sessions_collection().find_one(doc! { "_id": "s-new" }).await.expect("find").expect("exists");
    assert_eq!(fresh.get("response_max_ms"), Some(&Bson::Null), "no answer yet");

    let indexes = mongo.sessions_collection().list_index_names().await.expect("indexes");
    for name in [
        "last_activity_id",
        "created_at_id",
        "ended_at_id",
        "duration_id",
        "message_count_id",
        "total_tokens_id",
        "user_id_id",
        "share_digest",
    ] {
        assert!(indexes.iter().any(|n| n == name), "index {name} in {indexes:?}");
    }

    // A session written by an earlier version, without the derived fields.
    let unset: chatbox_mongodb_store::mongodb::bson::Document =
        DERIVED.iter().map(|f| ((*f).to_owned(), Bson::String(String::new()))).collect();
    mongo
        .sessions_collection()
        .update_one(doc! { "_id": "s-old" }, doc! { "$unset": unset })
        .await
        .expect("unset");
    let old = repo.summary(&sid("s-old")).await.expect("summary").expect("exists");
    assert_eq!((old.duration_ms, old.avg_response_ms, old.max_response_ms), (9_000, Some(300), Some(400)));
    let listed = repo.list_sessions(&query(SessionSort::StartTime, false)).await.expect("list");
    assert_eq!(listed.sessions.iter().find(|s| s.id == sid("s-old")), Some(&old), "listed from its window");
    let stats = repo.stats(None, None).await.expect("stats");
    assert_eq!((stats.total_sessions, stats.avg_response_ms, stats.max_response_ms), (2, 300, 400));
    let by_duration = repo.list_sessions(&query(SessionSort::Duration, true)).await.expect("list");
    assert_eq!(ids(&by_duration), ["s-new", "s-old"], "without its duration it sorts as the shortest");

    let report = migrate_all(mongo, |_| {}).await.expect("migrate");
    assert_eq!((report.found, report.backfilled), (0, 1), "{report:?}");
    let by_duration = repo.list_sessions(&query(SessionSort::Duration, true)).await.expect("list");
    assert_eq!(ids(&by_duration), ["s-old", "s-new"], "filled in: 9000 before 5000");
    let filled =
        mongo.sessions_collection().find_one(doc! { "_id": "s-old" }).await.expect("find").expect("exists");
    assert_eq!((filled.get_i64("duration_ms"), filled.get_i64("response_sum_ms")), (Ok(9_000), Ok(600)));
    assert_eq!(migrate_all(mongo, |_| {}).await.expect("again").backfilled, 0, "nothing left");

    // The next write repairs an active session too, without the migration.
    mongo
        .sessions_collection()
        .update_one(doc! { "_id": "s-new" }, doc! { "$unset": { "duration_ms": "" } })
        .await
        .expect("unset");
    repo.set_handoff(&sid("s-new"), &HandoffState::HelpRequested, at(1_000)).await.expect("handoff");
    let repaired =
        mongo.sessions_collection().find_one(doc! { "_id": "s-new" }).await.expect("find").expect("exists");
    assert_eq!(
        repaired.get_i64("duration_ms"),
        Ok(5_000),
        "from the last activity, not the write's earlier time"
    );
    store.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sessions_are_summarised_but_not_listed_and_their_share_token_is_dead() {
    let Some(uri) = reachable_mongo_uri().await else {
        return;
    };
    let database = fresh_database("catalog-legacy");
    let mongo = Arc::new(
        MongoSessionRepository::connect(config(&uri, &database, Some(keys()))).await.expect("connect"),
    );
    let repo: Arc<dyn Store> = mongo.clone();
    let id = "g".repeat(32);
    let mut old = go_session(&id, "hello");
    old.insert("adminAssisted", true);
    old.insert("assistingAdminName", "Ann");
    mongo.sessions_collection().insert_one(old).await.expect("insert a Go document");
    let session_id = SessionId::parse(&id).expect("id");

    let listed = repo
        .list_sessions(&SessionQuery { with_total: true, ..SessionQuery::recent(10) })
        .await
        .expect("list");
    assert_eq!((listed.sessions.len(), listed.total), (0, Some(0)), "listings cover the current layout");
    assert_eq!(repo.stats(None, None).await.expect("stats").total_sessions, 0);
    let summary = repo.summary(&session_id).await.expect("summary").expect("mapped");
    assert_eq!((summary.message_count, summary.total_tokens, summary.duration_ms), (3, 12, 3_000));
    assert_eq!(summary.name.as_deref(), Some("Question about"));
    assert!(summary.help_requested && summary.admin_assisted);
    assert_eq!(summary.assisting_admin_name.as_deref(), Some("Ann"));
    assert_eq!((summary.avg_response_ms, summary.max_response_ms), (None, None));

    // Converted: listed, flags kept, the plain token stored but never found.
    let report = migrate_all(&mongo, |_| {}).await.expect("migrate");
    assert_eq!(report.converted, 1, "{report:?}");
    let listed = repo.list_sessions(&SessionQuery::recent(10)).await.expect("list");
    assert_eq!(listed.sessions, vec![summary], "the same summary once converted");
    for token in ["share-1", "0000000000000000000000000000000000000000000000000000000000000000"] {
        assert_eq!(repo.find_shared(token, at(0)).await.expect("find"), None, "{token}");
    }
    repo.set_share(
        &session_id,
        Some(&ShareGrant { token_digest: "d".repeat(64), expires_at: at(1_000_000_000) }),
    )
    .await
    .expect("share");
    let shared =
        mongo.sessions_collection().find_one(doc! { "_id": &id }).await.expect("find").expect("exists");
    assert!(shared.get("share_token").is_none(), "the dead plain token goes with the first grant");
    assert_eq!(repo.find_shared(&"d".repeat(64), at(0)).await.expect("find"), Some(session_id));
    mongo.database().drop().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_decrypt_fails_the_read() {
    let Some(store) = mongo("catalog-keys").await else {
        return;
    };
    let repo: Repo = store.store();
    create(&repo, "s-secret", "u-a", 0).await;
    let named = MessageEffects { name: Some("A private question".into()), ..MessageEffects::default() };
    append(&repo, "s-secret", 1, 1_000, named).await;
    let Some(uri) = reachable_mongo_uri().await else {
        return;
    };
    let other_keys =
        KeyRing::new(KeyId::parse("test-2").expect("id"), &EncryptionKey::from_bytes([8; 32]), &[])
            .expect("ring");
    let database = store.mongo().database().name().to_owned();
    let wrong =
        MongoSessionRepository::connect(config(&uri, &database, Some(other_keys))).await.expect("connect");
    let listed = wrong.list_sessions(&SessionQuery::recent(10)).await;
    let error = listed.expect_err("a name that does not open is an error");
    assert!(!error.to_string().contains("private"), "{error}");
    assert!(wrong.summary(&sid("s-secret")).await.is_err());
    let page = repo.list_sessions(&SessionQuery::recent(10)).await.expect("the right key");
    assert_eq!(page.sessions[0].name.as_deref(), Some("A private question"));
    store.drop_database().await;
}
