//! The multipart uploads the S3 test server still holds for an object: started and
//! neither completed nor aborted. Asked with S3's ListMultipartUploads through a URL
//! signed by `object_store` (the adapter exposes no listing).

use std::time::Duration;

use chatbox_domain::upload::FileId;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer as _};

use crate::common::s3_config;

/// How many uploads of the object of `id` are pending; 0 without S3.
pub async fn pending_uploads(id: &FileId) -> usize {
    let Some(config) = s3_config("pending_uploads") else { return 0 };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_allow_http(config.allow_http);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let (Some(key_id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        builder = builder.with_access_key_id(key_id.expose()).with_secret_access_key(secret.expose());
    }
    let s3 = builder.build().expect("S3 client");
    let query =
        SignedUrlOptions::new().with_query([("uploads", String::new()), ("prefix", format!("files/{id}"))]);
    let url = s3
        .signed_url_opts(Method::GET, &Path::ROOT, Duration::from_secs(60), &query)
        .await
        .expect("signed ListMultipartUploads");
    let response = reqwest::get(url).await.expect("ListMultipartUploads");
    assert!(response.status().is_success(), "ListMultipartUploads: {}", response.status());
    let body = response.text().await.expect("ListMultipartUploads body");
    body.matches("<UploadId>").count()
}
