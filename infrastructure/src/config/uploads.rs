//! The uploads section: where uploaded files' bytes are kept (a local directory by
//! default, an S3-compatible bucket in production), the limits on uploads, how long
//! files are kept, and what a model is shown of pictures; and its conversion into the
//! object store adapter's [`ObjectStoreConfig`] and the use-cases' [`FileSettings`].
//!
//! The S3 keys are secrets: they never appear in a message or in `Debug` output.

use std::path::PathBuf;
use std::time::Duration;

use chatbox_application::files::FileSettings;
use chatbox_domain::upload::UploadLimits;
use chatbox_object_store::{ObjectStoreConfig, S3Config};
use validator::Validate;

use super::reader::Reader;
use super::secret::Secret;

/// Where files' bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStore {
    /// `UPLOAD_STORE=local`: under `UPLOAD_DIR` (one replica, or a shared volume).
    Local(PathBuf),
    /// `UPLOAD_STORE=s3`: an S3 bucket, or any S3-compatible server.
    S3 {
        /// `UPLOAD_S3_BUCKET`.
        bucket: String,
        /// `UPLOAD_S3_REGION`.
        region: String,
        /// `UPLOAD_S3_ENDPOINT`, for S3-compatible servers.
        endpoint: Option<String>,
        /// `UPLOAD_S3_ACCESS_KEY_ID` and `UPLOAD_S3_SECRET_ACCESS_KEY`; none: the
        /// usual AWS credentials of the environment or instance.
        keys: Option<(Secret, Secret)>,
    },
}

/// `UPLOAD_*`, `LLM_IMAGE_MAX_BYTES`, `LLM_IMAGES_MAX`.
#[derive(Debug, Clone, Validate)]
pub struct UploadsSection {
    /// `UPLOAD_STORE` and where.
    pub store: UploadStore,
    /// `UPLOAD_MAX_BYTES`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub upload_max_bytes: u64,
    /// `UPLOAD_FILES_PER_DAY`, per user.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub upload_files_per_day: u32,
    /// `UPLOAD_BYTES_PER_DAY`, per user.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub upload_bytes_per_day: u64,
    /// `UPLOAD_TIMEOUT`.
    pub upload_timeout: Duration,
    /// `UPLOAD_RETENTION`.
    pub upload_retention: Duration,
    /// `UPLOAD_ORPHAN_AGE`.
    pub upload_orphan_age: Duration,
    /// `UPLOAD_PRESIGNED_TTL`: with S3, downloads redirect to presigned URLs valid this
    /// long; unset: the service streams every download.
    pub upload_presigned_ttl: Option<Duration>,
    /// `UPLOAD_STORE_TIMEOUT`: the longest one call to object storage may take.
    pub upload_store_timeout: Duration,
    /// `LLM_IMAGE_MAX_BYTES`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub llm_image_max_bytes: u64,
    /// `LLM_IMAGES_MAX`.
    pub llm_images_max: usize,
}

impl UploadsSection {
    /// Reads the section.
    pub(super) fn read(r: &mut Reader<'_>) -> Self {
        let store = store(r);
        let presigned = r.text("UPLOAD_PRESIGNED_TTL").map(|_| r.duration("UPLOAD_PRESIGNED_TTL", "5m"));
        if presigned.is_some() && !matches!(store, UploadStore::S3 { .. }) {
            r.warnings
                .push("UPLOAD_PRESIGNED_TTL is ignored: only UPLOAD_STORE=s3 makes presigned URLs".into());
        }
        let section = Self {
            store,
            upload_max_bytes: r.number("UPLOAD_MAX_BYTES", 25 * 1024 * 1024),
            upload_files_per_day: r.number("UPLOAD_FILES_PER_DAY", 100),
            upload_bytes_per_day: r.number("UPLOAD_BYTES_PER_DAY", 500 * 1024 * 1024),
            upload_timeout: r.duration("UPLOAD_TIMEOUT", "2m"),
            upload_retention: r.duration("UPLOAD_RETENTION", "30d"),
            upload_orphan_age: r.duration("UPLOAD_ORPHAN_AGE", "1h"),
            upload_presigned_ttl: presigned,
            upload_store_timeout: r.duration("UPLOAD_STORE_TIMEOUT", "30s"),
            llm_image_max_bytes: r.number("LLM_IMAGE_MAX_BYTES", 5 * 1024 * 1024),
            llm_images_max: r.number("LLM_IMAGES_MAX", 4),
        };
        r.check_ranges(&section);
        section
    }

    /// The object store adapter's configuration.
    #[must_use]
    pub fn object_store(&self) -> ObjectStoreConfig {
        match &self.store {
            UploadStore::Local(dir) => ObjectStoreConfig::Local { dir: dir.clone() },
            UploadStore::S3 { bucket, region, endpoint, keys } => {
                let mut config = S3Config::new(bucket.clone(), region.clone());
                config.allow_http = endpoint.as_deref().is_some_and(|url| url.starts_with("http://"));
                config.endpoint.clone_from(endpoint);
                if let Some((id, secret)) = keys {
                    config.access_key_id = Some(id.clone());
                    config.secret_access_key = Some(secret.clone());
                }
                config.timeout = self.upload_store_timeout;
                ObjectStoreConfig::S3(config)
            }
        }
    }

    /// The use-cases' settings; `download_path` is where files are served (the path
    /// prefix's `/files/`).
    #[must_use]
    pub fn file_settings(&self, download_path: String) -> FileSettings {
        FileSettings {
            limits: UploadLimits {
                max_bytes: self.upload_max_bytes,
                files_per_day: self.upload_files_per_day,
                bytes_per_day: self.upload_bytes_per_day,
            },
            upload_timeout: self.upload_timeout,
            retention: self.upload_retention,
            orphan_age: self.upload_orphan_age,
            download_path,
            presigned_ttl: self.upload_presigned_ttl,
            model_image_max_bytes: self.llm_image_max_bytes,
            model_images_max: self.llm_images_max,
            storage_timeout: self.upload_store_timeout,
        }
    }
}

fn store(r: &mut Reader<'_>) -> UploadStore {
    // Every variable of the section is read whatever the store, so that a file key set
    // for the other store is not reported as unknown.
    let dir = r.text("UPLOAD_DIR");
    let bucket = r.text("UPLOAD_S3_BUCKET");
    let region = r.text("UPLOAD_S3_REGION");
    let endpoint = r.text("UPLOAD_S3_ENDPOINT");
    let keys = (r.text("UPLOAD_S3_ACCESS_KEY_ID"), r.text("UPLOAD_S3_SECRET_ACCESS_KEY"));
    match r.text("UPLOAD_STORE").map(|kind| kind.to_ascii_lowercase()).as_deref() {
        None | Some("local") => UploadStore::Local(PathBuf::from(dir.unwrap_or_else(|| "uploads".into()))),
        Some("s3") => {
            let bucket = bucket.unwrap_or_else(|| {
                r.fail("UPLOAD_S3_BUCKET", "is required with UPLOAD_STORE=s3");
                String::new()
            });
            if let Some(url) = &endpoint
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                r.fail("UPLOAD_S3_ENDPOINT", "must be an http:// or https:// URL");
            }
            let keys = match keys {
                (Some(id), Some(secret)) => Some((Secret::new(id), Secret::new(secret))),
                (None, None) => None,
                _ => {
                    r.fail(
                        "UPLOAD_S3_ACCESS_KEY_ID",
                        "and UPLOAD_S3_SECRET_ACCESS_KEY are set together or not at all",
                    );
                    None
                }
            };
            UploadStore::S3 { bucket, region: region.unwrap_or_else(|| "us-east-1".into()), endpoint, keys }
        }
        Some(other) => {
            r.fail("UPLOAD_STORE", format!("must be local or s3, got {other:?}"));
            UploadStore::Local(PathBuf::from("uploads"))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_from;

    const BASE: [(&str, &str); 3] = [
        ("JWT_SECRET", "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA"),
        ("LLM_PROVIDER_1_ID", "d"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().copied().chain(extra.iter().copied()).collect()
    }

    #[test]
    fn uploads_default_to_a_local_directory_with_the_documented_limits() {
        let settings = load_from(&with(&[]), false).settings.expect("valid");
        let uploads = settings.uploads;
        assert_eq!(uploads.store, super::UploadStore::Local("uploads".into()));
        assert_eq!(uploads.upload_max_bytes, 25 * 1024 * 1024);
        assert_eq!(uploads.upload_orphan_age, std::time::Duration::from_secs(3600));
        assert_eq!(uploads.upload_presigned_ttl, None);
    }

    #[test]
    fn s3_needs_a_bucket_and_both_keys_or_none_and_never_shows_them() {
        let problems = load_from(&with(&[("UPLOAD_STORE", "s3")]), false).settings.err().unwrap_or_default();
        assert!(problems.iter().any(|p| p.starts_with("UPLOAD_S3_BUCKET")), "{problems:?}");
        let problems = load_from(
            &with(&[
                ("UPLOAD_STORE", "s3"),
                ("UPLOAD_S3_BUCKET", "b"),
                ("UPLOAD_S3_SECRET_ACCESS_KEY", "Zq8-never-shown"),
            ]),
            false,
        )
        .settings
        .err()
        .unwrap_or_default();
        assert!(problems.iter().any(|p| p.starts_with("UPLOAD_S3_ACCESS_KEY_ID")), "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains("Zq8")), "{problems:?}");
        let settings = load_from(
            &with(&[
                ("UPLOAD_STORE", "s3"),
                ("UPLOAD_S3_BUCKET", "files"),
                ("UPLOAD_S3_ENDPOINT", "http://127.0.0.1:9000"),
                ("UPLOAD_S3_ACCESS_KEY_ID", "id"),
                ("UPLOAD_S3_SECRET_ACCESS_KEY", "Zq8-never-shown"),
                ("UPLOAD_PRESIGNED_TTL", "1m"),
            ]),
            false,
        )
        .settings
        .expect("valid");
        assert!(!format!("{:?}", settings.uploads).contains("Zq8"));
        assert!(!format!("{:?}", settings.uploads.object_store()).contains("Zq8"));
        assert_eq!(settings.uploads.upload_presigned_ttl, Some(std::time::Duration::from_secs(60)));
        let problems = load_from(&with(&[("UPLOAD_STORE", "ftp")]), false).settings.err().unwrap_or_default();
        assert!(problems.iter().any(|p| p.starts_with("UPLOAD_STORE")), "{problems:?}");
    }
}
