//! Presigned URLs: S3 hands out one that a plain HTTP client can read the object with,
//! answered with the headers stored at creation; a local directory has none.

use std::time::Duration;

use chatbox_application::ports::FileStore;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};

use crate::common::{headers, new_id, put, subjects};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_url_serves_the_object_with_its_headers() {
    for subject in subjects("a_presigned_url_serves_the_object_with_its_headers") {
        let id = new_id();
        let data = b"%PDF-1.7 a small document";
        put(&subject.store, &id, &[&data[..10], &data[10..]]).await;
        let url = subject.store.presigned_url(&id, Duration::from_secs(300)).await.expect("presign");
        if subject.dir.is_some() {
            assert_eq!(url, None, "a local directory has no presigned URL");
            continue;
        }
        let url = url.expect("S3 presigns");
        assert!(url.contains(&format!("files/{id}")), "the URL names the object: {url}");
        let response = reqwest::get(&url).await.expect("GET the presigned URL");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let header =
            |name| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
        assert_eq!(header(CONTENT_TYPE).as_deref(), Some(headers().content_type));
        assert_eq!(header(CONTENT_DISPOSITION), Some(headers().content_disposition));
        let body = response.bytes().await.expect("body");
        assert_eq!(&body[..], &data[..]);
    }
}
