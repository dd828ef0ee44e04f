//! No credential leaks: the configured keys appear neither in the errors of failing
//! operations (an unreachable endpoint, a bucket that does not exist) nor in the `Debug`
//! of the configuration or the store.

use std::time::Duration;

use bytes::Bytes;
use chatbox_application::ports::{FileStore, FileStoreError};
use chatbox_domain::Secret;
use chatbox_object_store::{ObjectFileStore, ObjectStoreConfig, S3Config};

use crate::common::{headers, new_id, s3_config};

const KEY_ID: &str = "AKIDLEAKCHECK0000001";
const SECRET: &str = "leak-check-secret-4b1d2c9e7f";

/// The configuration of `bucket` at `endpoint`, with the known keys.
fn config(endpoint: &str, bucket: &str) -> ObjectStoreConfig {
    ObjectStoreConfig::S3(S3Config {
        endpoint: Some(endpoint.to_owned()),
        access_key_id: Some(Secret::new(KEY_ID)),
        secret_access_key: Some(Secret::new(SECRET)),
        allow_http: true,
        timeout: Duration::from_secs(2),
        ..S3Config::new(bucket, "us-east-1")
    })
}

/// The texts of every error of `store`'s operations, which must fail (but a read or a
/// delete of what is not there may be "not found" and Ok).
async fn error_texts(store: &ObjectFileStore) -> Vec<String> {
    let mut errors: Vec<FileStoreError> = Vec::new();
    let id = new_id();
    match store.create(&id, &headers()).await {
        Err(error) => errors.push(error),
        Ok(mut writer) => {
            if let Err(error) = writer.write(Bytes::from_static(b"bytes")).await {
                errors.push(error);
            }
            errors.push(writer.finish().await.expect_err("finish in a missing bucket"));
        }
    }
    if let Err(error) = store.read(&id, None).await {
        errors.push(error);
    }
    if let Err(error) = store.delete(&id).await {
        errors.push(error);
    }
    assert!(!errors.is_empty(), "no operation failed");
    errors.iter().flat_map(|error| [error.to_string(), format!("{error:?}")]).collect()
}

fn assert_no_credential(texts: &[String]) {
    for text in texts {
        assert!(!text.contains(SECRET), "secret key in {text:?}");
        assert!(!text.contains(KEY_ID), "access key id in {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_leaks_no_credential() {
    // Port 1 on loopback: connections are refused at once.
    let config = config("http://127.0.0.1:1", "chatbox-test");
    let store = ObjectFileStore::open(&config).expect("opens without a request");
    let texts = error_texts(&store).await;
    assert!(texts.iter().any(|text| text.contains("127.0.0.1:1")), "errors say where: {texts:?}");
    assert_no_credential(&texts);
    assert_no_credential(&[format!("{config:?}"), format!("{store:?}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_leaks_no_credential() {
    let Some(real) = s3_config("a_missing_bucket_leaks_no_credential") else { return };
    let endpoint = real.endpoint.expect("endpoint");
    let config = config(&endpoint, "chatbox-no-such-bucket");
    let store = ObjectFileStore::open(&config).expect("opens without a request");
    let texts = error_texts(&store).await;
    assert_no_credential(&texts);
    assert_no_credential(&[format!("{config:?}"), format!("{store:?}")]);
}

#[test]
fn the_debug_of_an_s3_store_names_its_bucket_not_its_keys() {
    let config = config("https://s3.example.com", "bucket");
    let store = ObjectFileStore::open(&config).expect("opens without a request");
    let printed = format!("{store:?}");
    assert!(printed.contains("bucket"), "{printed}");
    assert_no_credential(&[printed, format!("{config:?}")]);
}
