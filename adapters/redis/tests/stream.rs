//! Session frame streams against a real `redis-server` (`REDIS_URL`): frames from several
//! replicas read back in publication order with their origin, a reader continuing from
//! the last entry it saw gets each later frame once, the length stays bounded, a removed
//! stream is empty, and frames come back byte for byte.

mod support;

use chatbox_domain::SessionId;
use chatbox_redis::{FROM_START, SessionStreams, StreamEntry, connect};
use support::{fresh_prefix, redis_url};

async fn streams(url: &str, max_len: usize) -> SessionStreams {
    SessionStreams::new(connect(url).await.expect("Redis answers"), fresh_prefix(), max_len)
}

fn session(id: &str) -> SessionId {
    SessionId::parse(id).expect("a session id")
}

fn frames(entries: &[StreamEntry]) -> Vec<(&str, &str)> {
    entries.iter().map(|entry| (entry.origin.as_str(), entry.frame.as_str())).collect()
}

#[tokio::test]
async fn frames_of_two_replicas_come_back_in_order_and_a_reader_continues_exactly() {
    let Some(url) = redis_url("stream order") else { return };
    let streams = streams(&url, 1_000).await;
    let s = session("s1");
    let mut published = Vec::new();
    for index in 0..20 {
        let origin = if index % 3 == 0 { "replica-b" } else { "replica-a" };
        let frame = format!(r#"{{"type":"ai_response","content":"token {index}"}}"#);
        streams.append(&s, origin, &frame).await.expect("appended");
        published.push((origin, frame));
    }
    let all = streams.read_after(&s, FROM_START, 100).await.expect("read");
    let expected: Vec<(&str, &str)> = published.iter().map(|(o, f)| (*o, f.as_str())).collect();
    assert_eq!(frames(&all), expected);

    // A reader that saw the first 7 reads the rest once, in pages of 5.
    let mut after = all[6].id.clone();
    let mut rest = Vec::new();
    // 13 entries are left: three pages of 5, 5 and 3, then an empty one. More pages mean
    // an entry was read twice.
    for _ in 0..4 {
        let page = streams.read_after(&s, &after, 5).await.expect("read");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 5, "a page holds at most its count");
        after = last.id.clone();
        rest.extend(page);
    }
    assert_eq!(frames(&rest), expected[7..].to_vec());
    assert!(streams.read_after(&session("another"), FROM_START, 10).await.expect("read").is_empty());
}

#[tokio::test]
async fn a_stream_keeps_about_its_last_entries_and_is_forgotten_when_removed() {
    let Some(url) = redis_url("stream bound") else { return };
    let streams = streams(&url, 10).await;
    let s = session("long-answer");
    for index in 0..1_000 {
        streams.append(&s, "replica-a", &format!("frame {index}")).await.expect("appended");
    }
    let kept = streams.read_after(&s, FROM_START, 10_000).await.expect("read");
    // Trimming is by whole nodes of the stream (100 entries by default): about 10 kept,
    // never the thousand, and always the newest.
    assert!((10..=110).contains(&kept.len()), "{} kept", kept.len());
    assert_eq!(kept.last().map(|entry| entry.frame.as_str()), Some("frame 999"));
    streams.remove(&s).await.expect("removed");
    assert!(streams.read_after(&s, FROM_START, 10).await.expect("read").is_empty());
}

#[tokio::test]
async fn frames_come_back_byte_for_byte() {
    let Some(url) = redis_url("stream bytes") else { return };
    let streams = streams(&url, 100).await;
    let s = session("unicode");
    let frame = "{\"content\":\"日本語 🦀 \\n \\\"quoted\\\" \\u0000\"}";
    streams.append(&s, "replica-☃", frame).await.expect("appended");
    let read = streams.read_after(&s, FROM_START, 1).await.expect("read");
    assert_eq!(frames(&read), vec![("replica-☃", frame)]);
}
