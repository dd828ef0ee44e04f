//! Files in conversations, as the use-cases see them (docs/protocol.md, "HTTP routes"):
//! uploads counted and refused as bytes arrive with nothing kept of a refusal, the type
//! decided by content, pictures stripped, time limits, attachment by id, who may read a
//! file, ranges and presigned redirects, the deletion of expired files, and pictures
//! for models that see them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chatbox_application::ChatError;
use chatbox_application::chat::{Download, FileReader, Uploaded};
use chatbox_application::commands::{AttachedFile, Attachment, ClientCommand};
use chatbox_application::files::{FileSettings, UploadBodyError};
use chatbox_application::ports::FileCatalog;
use chatbox_domain::upload::{ByteRange, FileId, UploadLimits, UploadRefusal};
use chatbox_domain::validation::Metadata;
use chatbox_domain::{MessageKind, UserId};
use futures::{Stream, StreamExt, stream};
use sha2::{Digest, Sha256};

use crate::support::{Client, Harness, MemoryObjects, harness_with_files, settings, user};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(data.len()).expect("short").to_be_bytes().to_vec();
    bytes.extend_from_slice(kind);
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]);
    bytes
}

/// A PNG whose pixels are `pixels` bytes, with a location in a text chunk; and the same
/// PNG as it must be stored.
fn png(pixels: usize) -> (Vec<u8>, Vec<u8>) {
    let mut sent = PNG_SIGNATURE.to_vec();
    let mut stored = sent.clone();
    for (part, kept) in [
        (chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]), true),
        (chunk(b"tEXt", b"Location\0Paris"), false),
        (chunk(b"IDAT", &vec![7; pixels]), true),
        (chunk(b"IEND", b""), true),
    ] {
        sent.extend_from_slice(&part);
        if kept {
            stored.extend_from_slice(&part);
        }
    }
    (sent, stored)
}

fn limits(max_bytes: u64) -> UploadLimits {
    UploadLimits { max_bytes, files_per_day: 3, bytes_per_day: 100_000 }
}

fn file_settings() -> FileSettings {
    FileSettings {
        limits: limits(20_000),
        upload_timeout: Duration::from_secs(10),
        retention: Duration::from_secs(3600),
        orphan_age: Duration::from_secs(600),
        download_path: "/chat/files/".into(),
        presigned_ttl: None,
        model_image_max_bytes: 600,
        model_images_max: 1,
        storage_timeout: Duration::from_secs(2),
    }
}

fn files_harness() -> (Harness, Arc<MemoryObjects>) {
    harness_with_files(settings(), file_settings())
}

/// `bytes` in chunks of `size`, counting the chunks taken.
fn body(
    bytes: &[u8],
    size: usize,
    taken: Arc<AtomicUsize>,
) -> impl Stream<Item = Result<Bytes, UploadBodyError>> + Unpin {
    let chunks: Vec<_> = bytes.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(chunks).inspect(move |_| {
        taken.fetch_add(1, Ordering::SeqCst);
    })
}

async fn upload(h: &Harness, owner: &str, name: &str, bytes: &[u8]) -> Result<Uploaded, ChatError> {
    h.service.upload(&user(owner), name, body(bytes, 700, Arc::default())).await
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Attaches `file` in `client`'s session.
async fn attach(h: &Harness, client: &mut Client, file: &FileId) -> Result<(), ChatError> {
    let command = ClientCommand::Attachment(Attachment {
        kind: MessageKind::File,
        session_id: None,
        file: AttachedFile::Upload(file.clone()),
        content: String::new(),
        metadata: Metadata::new(),
        client_message_id: None,
    });
    h.service.handle(&mut client.connection, command).await
}

async fn read_all(download: Download) -> (Vec<u8>, bool, std::ops::Range<u64>) {
    match download {
        Download::Bytes { read, partial, .. } => {
            let range = read.range.clone();
            let chunks: Vec<_> = read.body.collect().await;
            let bytes = chunks.into_iter().flat_map(|c| c.expect("chunk").to_vec()).collect();
            (bytes, partial, range)
        }
        Download::Redirect(url) => panic!("expected bytes, got a redirect to {url}"),
    }
}

fn reader(id: &UserId) -> FileReader<'_> {
    FileReader::User { id, admin: false }
}

#[tokio::test(start_paused = true)]
async fn a_picture_is_stored_stripped_with_the_servers_record() {
    let (h, objects) = files_harness();
    let (sent, stored) = png(50);
    let uploaded = upload(&h, "alice", "C:\\photos\\cat.png", &sent).await.expect("taken");
    let file = &uploaded.file;
    assert_eq!(uploaded.url, format!("/chat/files/{}", file.id));
    assert_eq!(&*file.name, "cat.png", "no directory part");
    assert_eq!(file.media_type.essence(), "image/png");
    assert_eq!((file.size, file.sha256.as_str()), (stored.len() as u64, sha256_hex(&stored).as_str()));
    assert_eq!(objects.bytes(&file.id), Some(stored.clone()), "the location is gone");
    let headers = objects.headers(&file.id).expect("headers");
    assert_eq!(headers.content_type, "image/png");
    assert!(headers.content_disposition.starts_with("inline; filename=\"cat.png\""), "{headers:?}");
    assert_eq!(h.repo.file(&file.id).await.expect("catalog").as_ref(), Some(file), "recorded");
    assert_eq!(*h.metrics.files.lock().expect("lock"), [format!("uploaded Image {}", stored.len())]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_upload_leaves_nothing_and_is_counted_by_its_code() {
    let (h, objects) = files_harness();
    let refused = |result: Result<Uploaded, ChatError>| match result {
        Err(ChatError::Upload(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(upload(&h, "alice", "x.png", b"#!/bin/sh\necho hi\n").await),
        UploadRefusal::UnsupportedType
    );
    assert_eq!(refused(upload(&h, "alice", "x.png", b"").await), UploadRefusal::Empty);
    let mut broken = png(10).0;
    broken.truncate(20);
    assert_eq!(
        refused(upload(&h, "alice", "x.png", &broken).await),
        UploadRefusal::UnsupportedType,
        "a PNG cut short"
    );
    // Over the limit after the store was opened: cut off at the first chunk over it.
    let mut big = png(10).0;
    big.resize(30_000, 1);
    let taken = Arc::new(AtomicUsize::new(0));
    let result = h.service.upload(&user("alice"), "big.png", body(&big, 1000, Arc::clone(&taken))).await;
    assert_eq!(refused(result), UploadRefusal::TooLarge { max: 20_000 });
    assert_eq!(taken.load(Ordering::SeqCst), 21, "read up to the first byte over, not to the end");
    // Both the PNG cut short (refused at its end) and this one were being written: both
    // were given up.
    assert_eq!((objects.count(), objects.open_writers(), objects.given_up()), (0, 0, 2), "aborted");
    assert_eq!(objects.aborted(), 2, "given up by an abort, not left to a drop");
    assert_eq!(
        *h.metrics.files.lock().expect("lock"),
        [
            "refused UNSUPPORTED_MEDIA_TYPE",
            "refused BAD_REQUEST",
            "refused UNSUPPORTED_MEDIA_TYPE",
            "refused FILE_TOO_LARGE"
        ]
    );
    let totals = h.repo.uploaded_since(&user("alice"), chrono::DateTime::UNIX_EPOCH).await.expect("totals");
    assert_eq!((totals.files, totals.bytes), (0, 0), "nothing recorded");
}

#[tokio::test(start_paused = true)]
async fn a_users_uploads_are_limited_per_day_by_count_and_by_bytes() {
    let (h, _) = files_harness();
    for _ in 0..3 {
        upload(&h, "alice", "a.png", &png(10).0).await.expect("within the day's count");
    }
    let fourth = upload(&h, "alice", "a.png", &png(10).0).await;
    assert!(
        matches!(fourth, Err(ChatError::Upload(UploadRefusal::DailyCountReached { max: 3 }))),
        "{fourth:?}"
    );
    upload(&h, "bob", "b.png", &png(10).0).await.expect("another user has their own count");
    // A new UTC day starts a new count.
    tokio::time::advance(Duration::from_secs(86_400)).await;
    upload(&h, "alice", "a.png", &png(10).0).await.expect("the next day");

    let (h, _) = harness_with_files(
        settings(),
        FileSettings {
            limits: UploadLimits { max_bytes: 20_000, files_per_day: 100, bytes_per_day: 15_000 },
            ..file_settings()
        },
    );
    upload(&h, "carol", "a.png", &png(9_000).0).await.expect("9 kB of 15");
    let second = upload(&h, "carol", "b.png", &png(9_000).0).await;
    assert!(
        matches!(second, Err(ChatError::Upload(UploadRefusal::DailyBytesReached { max: 15_000 }))),
        "{second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upload_that_stalls_or_whose_store_stalls_ends_at_the_timeout_and_keeps_nothing() {
    let (h, objects) = files_harness();
    let (sent, _) = png(9_000);
    // The client sends part of the file, then nothing.
    let part: Vec<Result<Bytes, UploadBodyError>> = vec![Ok(Bytes::copy_from_slice(&sent[..9_000]))];
    let stalled = stream::iter(part).chain(stream::pending());
    let result = h.service.upload(&user("alice"), "a.png", Box::pin(stalled)).await;
    assert!(matches!(result, Err(ChatError::UploadTimeout)), "{result:?}");
    assert_eq!(
        (objects.count(), objects.open_writers(), objects.given_up(), objects.aborted()),
        (0, 0, 1, 1)
    );
    // The store stops answering.
    objects.stall_writes(true);
    let result = upload(&h, "alice", "a.png", &sent).await;
    assert!(matches!(result, Err(ChatError::UploadTimeout)), "{result:?}");
    assert_eq!((objects.count(), objects.open_writers(), objects.given_up()), (0, 0, 2));
    objects.stall_writes(false);
    // The store fails.
    objects.fail_writes(true);
    let result = upload(&h, "alice", "a.png", &sent).await;
    assert!(matches!(result, Err(ChatError::FileStorage)), "{result:?}");
    assert_eq!(
        (objects.count(), objects.open_writers(), objects.given_up(), objects.aborted()),
        (0, 0, 3, 3)
    );
    objects.fail_writes(false);
    // The client goes away; or its framing says the body is too large.
    for (error, expected) in [
        (UploadBodyError::Broken("reset".into()), "BAD_REQUEST"),
        (UploadBodyError::TooLarge, "FILE_TOO_LARGE"),
    ] {
        let cut = stream::iter(vec![Ok(Bytes::copy_from_slice(&sent[..9_000])), Err(error)]);
        let result = h.service.upload(&user("alice"), "a.png", cut).await;
        assert_eq!(result.expect_err("refused").code().as_str(), expected);
    }
    assert_eq!((objects.count(), objects.open_writers()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_file_is_read_by_its_uploader_its_sessions_owner_the_assisting_admin_and_a_share_link_only() {
    let (h, _) = files_harness();
    let (alice_id, bob_id, ada_id) = (user("alice"), user("bob"), user("ada"));
    let (_, stored) = png(40);
    let uploaded = upload(&h, "alice", "cat.png", &png(40).0).await.expect("taken");
    let id = uploaded.file.id.as_str();

    // Unattached: only its uploader.
    let (bytes, partial, _) =
        read_all(h.service.download(reader(&alice_id), id, None).await.expect("alice")).await;
    assert_eq!((bytes, partial), (stored.clone(), false));
    for denied in [reader(&bob_id), FileReader::User { id: &ada_id, admin: true }] {
        assert!(matches!(h.service.download(denied, id, None).await, Err(ChatError::FileNotFound)));
    }
    assert!(matches!(
        h.service.download(reader(&alice_id), "nope", None).await,
        Err(ChatError::FileNotFound)
    ));

    // Bob cannot attach it; Alice attaches it in her session.
    let mut bob = h.connect("bob", None, None).await;
    assert!(matches!(attach(&h, &mut bob, &uploaded.file.id).await, Err(ChatError::FileNotFound)));
    let mut alice = h.answered("alice", "hello").await;
    attach(&h, &mut alice, &uploaded.file.id).await.expect("attached");
    h.say(&mut alice, "what is it?").await.expect("asked");
    alice.until_done().await;
    let session = alice.session_id();
    let message = h.stored(&session).await.into_iter().find(|m| m.kind == MessageKind::File).expect("stored");
    assert_eq!(message.file_url.as_deref(), Some(uploaded.url.as_str()));
    assert_eq!(message.metadata.get("filename").map(String::as_str), Some("cat.png"));
    assert_eq!(message.metadata.get("size"), Some(&stored.len().to_string()));
    assert_eq!(message.metadata.get("type").map(String::as_str), Some("image/png"));
    // Never moved to another session, not even by Alice.
    let mut elsewhere = h.connect("alice", None, None).await;
    assert!(matches!(attach(&h, &mut elsewhere, &uploaded.file.id).await, Err(ChatError::FileNotFound)));

    // An admin who does not assist it: no; once assisting: yes.
    let ada = FileReader::User { id: &ada_id, admin: true };
    assert!(matches!(h.service.download(ada, id, None).await, Err(ChatError::FileNotFound)));
    h.service.take_over(&ada_id, "Ada", &session).await.expect("take over");
    assert!(h.service.download(ada, id, None).await.is_ok(), "the assisting admin");
    assert!(matches!(h.service.download(reader(&bob_id), id, None).await, Err(ChatError::FileNotFound)));

    // A share link's holder, until it is revoked.
    h.ids.queue(&[&"a".repeat(32), &"b".repeat(32)]);
    let (token, _) = h.service.share(&alice_id, &session).await.expect("share");
    assert!(h.service.download(FileReader::Shared(&token), id, None).await.is_ok());
    assert!(matches!(
        h.service.download(FileReader::Shared("someothertoken"), id, None).await,
        Err(ChatError::FileNotFound)
    ));
    h.service.revoke_share(&alice_id, &session).await.expect("revoke");
    assert!(matches!(
        h.service.download(FileReader::Shared(&token), id, None).await,
        Err(ChatError::FileNotFound)
    ));
}

#[tokio::test(start_paused = true)]
async fn ranges_are_served_and_presigned_redirects_only_for_whole_files() {
    let (h, objects) = harness_with_files(
        settings(),
        FileSettings { presigned_ttl: Some(Duration::from_secs(60)), ..file_settings() },
    );
    let alice = user("alice");
    let (_, stored) = png(40);
    let uploaded = upload(&h, "alice", "cat.png", &png(40).0).await.expect("taken");
    let id = uploaded.file.id.as_str();
    let size = stored.len() as u64;
    let (bytes, partial, range) =
        read_all(h.service.download(reader(&alice), id, Some(ByteRange::FromTo(1, 3))).await.expect("range"))
            .await;
    assert_eq!((bytes.as_slice(), partial, range), (&stored[1..4], true, 1..4));
    let (bytes, _, _) =
        read_all(h.service.download(reader(&alice), id, Some(ByteRange::Last(2))).await.expect("suffix"))
            .await;
    assert_eq!(bytes, &stored[stored.len() - 2..]);
    let past = h.service.download(reader(&alice), id, Some(ByteRange::From(size))).await;
    assert!(matches!(past, Err(ChatError::RangeNotSatisfiable { size: s }) if s == size), "{past:?}");
    // The store makes no presigned URLs: streamed.
    assert!(matches!(h.service.download(reader(&alice), id, None).await, Ok(Download::Bytes { .. })));
    objects.make_presigned_urls();
    match h.service.download(reader(&alice), id, None).await.expect("whole") {
        Download::Redirect(url) => assert_eq!(url, format!("https://store.example/files/{id}?expires=60")),
        other => panic!("expected a redirect, got {other:?}"),
    }
    assert!(matches!(
        h.service.download(reader(&alice), id, Some(ByteRange::From(2))).await,
        Ok(Download::Bytes { partial: true, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn orphans_and_the_files_of_long_ended_sessions_are_deleted_and_counted() {
    let (h, objects) = files_harness();
    let orphan = upload(&h, "alice", "orphan.png", &png(10).0).await.expect("taken").file;
    let kept = upload(&h, "alice", "kept.png", &png(10).0).await.expect("taken").file;
    let mut alice = h.answered("alice", "hello").await;
    attach(&h, &mut alice, &kept.id).await.expect("attached");
    h.say(&mut alice, "and?").await.expect("asked");
    alice.until_done().await;
    let session = alice.session_id();

    let deleted = h.service.cleanup_files().await.expect("cleanup");
    assert_eq!((deleted.orphans, deleted.retained), (0, 0), "nothing is due yet");
    tokio::time::advance(Duration::from_secs(601)).await;
    let deleted = h.service.cleanup_files().await.expect("cleanup");
    assert_eq!((deleted.orphans, deleted.retained), (1, 0), "the orphan, past UPLOAD_ORPHAN_AGE");
    assert_eq!((objects.bytes(&orphan.id), h.repo.file(&orphan.id).await.expect("catalog")), (None, None));
    assert!(objects.bytes(&kept.id).is_some(), "an attached file of a live session stays");

    h.service.end_session(&user("alice"), &session).await.expect("ended");
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert_eq!(h.service.cleanup_files().await.expect("cleanup").retained, 0, "within UPLOAD_RETENTION");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(h.service.cleanup_files().await.expect("cleanup").retained, 1);
    assert_eq!((objects.count(), h.repo.file(&kept.id).await.expect("catalog")), (0, None));
    let files = h.metrics.files.lock().expect("lock").clone();
    assert_eq!(&files[files.len() - 2..], ["deleted orphan", "deleted retention"]);

    // A store that fails to delete keeps the record, for the next run.
    let again = upload(&h, "alice", "again.png", &png(10).0).await.expect("taken").file;
    tokio::time::advance(Duration::from_secs(601)).await;
    objects.fail_writes(true);
    assert_eq!(h.service.cleanup_files().await.expect("cleanup").orphans, 0);
    assert!(h.repo.file(&again.id).await.expect("catalog").is_some());
    objects.fail_writes(false);
    assert_eq!(h.service.cleanup_files().await.expect("cleanup").orphans, 1);
}

#[tokio::test(start_paused = true)]
async fn a_model_that_sees_images_is_shown_the_newest_small_pictures_and_told_the_rest_by_name() {
    // Four attachments queue behind one another in the session.
    let roomy = chatbox_application::ChatSettings { answer_queue_limit: 10, ..settings() };
    let (h, _) = harness_with_files(
        roomy,
        FileSettings {
            limits: UploadLimits { max_bytes: 20_000, files_per_day: 100, bytes_per_day: 100_000 },
            ..file_settings()
        },
    );
    h.provider.see_images();
    let mut alice = h.answered("alice", "hello").await;
    let (_, first_stored) = png(40);
    let (_, second_stored) = png(60);
    let first = upload(&h, "alice", "first.png", &png(40).0).await.expect("taken").file;
    let second = upload(&h, "alice", "second.png", &png(60).0).await.expect("taken").file;
    let large = upload(&h, "alice", "large.png", &png(2_000).0).await.expect("taken").file;
    let report = upload(&h, "alice", "report.pdf", b"%PDF-1.7\n1 0 obj\n").await.expect("taken").file;
    for file in [&first, &second, &large, &report] {
        attach(&h, &mut alice, &file.id).await.expect("attached");
    }
    h.say(&mut alice, "what are these?").await.expect("asked");
    alice.until_done().await;
    let request = h.provider.requests().last().expect("asked the model").clone();
    let shown: Vec<_> = request.history.iter().flat_map(|turn| turn.images.iter()).collect();
    // LLM_IMAGES_MAX = 1 and `large` is over LLM_IMAGE_MAX_BYTES: only `second` is shown.
    assert_eq!(shown.len(), 1, "{:?}", request.history);
    assert_eq!((shown[0].media_type, shown[0].data.as_ref()), ("image/png", second_stored.as_slice()));
    let texts: Vec<&str> = request.history.iter().map(|turn| turn.content.as_str()).collect();
    assert!(
        texts
            .contains(&format!("[attachment: first.png (image/png, {} bytes)]", first_stored.len()).as_str()),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.starts_with("[attachment: report.pdf (application/pdf,")), "{texts:?}");
    assert!(texts.iter().all(|t| !t.contains("/chat/files/")), "no URL reaches the model");

    // A model that does not see images gets the names only.
    let (h, _) = files_harness();
    let mut bob = h.answered("bob", "hello").await;
    let picture = upload(&h, "bob", "p.png", &png(40).0).await.expect("taken").file;
    attach(&h, &mut bob, &picture.id).await.expect("attached");
    h.say(&mut bob, "and this?").await.expect("asked");
    bob.until_done().await;
    let request = h.provider.requests().last().expect("asked").clone();
    assert!(request.history.iter().all(|turn| turn.images.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_upload_is_taken_and_the_type_is_decided_after_the_first_8_kib() {
    let (h, objects) = files_harness();
    assert_eq!(h.service.upload_max_bytes(), Some(20_000));
    assert_eq!(h.service.upload_timeout(), Some(Duration::from_secs(10)));
    let (sent, stored) = png(9_000);
    // A chunk a second: slow, and within UPLOAD_TIMEOUT (10 s) as a whole.
    let chunks: Vec<_> = sent.chunks(1_500).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let slow = stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        chunk
    });
    let uploaded = h.service.upload(&user("alice"), "slow.png", Box::pin(slow)).await.expect("taken");
    assert_eq!(objects.bytes(&uploaded.file.id), Some(stored));
    // Exactly 8 KiB, then nothing: the type is known, so the store is written before
    // the body stalls (and the write is given up when it does).
    let (sent, _) = png(9_000);
    let first: Vec<Result<Bytes, UploadBodyError>> =
        sent[..8 * 1024].chunks(1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let stalled = stream::iter(first).chain(stream::pending());
    let result = h.service.upload(&user("alice"), "a.png", Box::pin(stalled)).await;
    assert!(matches!(result, Err(ChatError::UploadTimeout)), "{result:?}");
    assert_eq!(objects.aborted(), 1, "the store was written to, then given up");

    let (plain, _) = crate::support::harness_with_files(settings(), file_settings());
    let without = crate::support::harness();
    assert_eq!(plain.service.upload_max_bytes(), Some(20_000));
    assert_eq!((without.service.upload_max_bytes(), without.service.upload_timeout()), (None, None));
}

#[tokio::test(start_paused = true)]
async fn a_cleanup_works_through_more_than_one_page_and_stops_on_a_page_it_cannot_delete() {
    let (h, objects) = harness_with_files(
        settings(),
        FileSettings {
            limits: UploadLimits { max_bytes: 20_000, files_per_day: 1_000, bytes_per_day: 10_000_000 },
            ..file_settings()
        },
    );
    for _ in 0..150 {
        upload(&h, "alice", "a.png", &png(1).0).await.expect("taken");
    }
    tokio::time::advance(Duration::from_secs(601)).await;
    objects.fail_writes(true);
    assert_eq!(h.service.cleanup_files().await.expect("cleanup").orphans, 0);
    assert_eq!(objects.deletes(), 100, "one page tried, not asked again and again");
    objects.fail_writes(false);
    assert_eq!(h.service.cleanup_files().await.expect("cleanup").orphans, 150, "two pages in one run");
    assert_eq!(objects.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_picture_that_storage_returns_short_is_named_not_shown() {
    let (h, objects) = files_harness();
    h.provider.see_images();
    let mut alice = h.answered("alice", "hello").await;
    let picture = upload(&h, "alice", "p.png", &png(40).0).await.expect("taken").file;
    attach(&h, &mut alice, &picture.id).await.expect("attached");
    objects.truncate(&picture.id, 10);
    h.say(&mut alice, "and this?").await.expect("asked");
    alice.until_done().await;
    let request = h.provider.requests().last().expect("asked").clone();
    assert!(request.history.iter().all(|turn| turn.images.is_empty()), "{:?}", request.history);
    assert!(request.history.iter().any(|turn| turn.content.starts_with("[attachment: p.png")));
}
