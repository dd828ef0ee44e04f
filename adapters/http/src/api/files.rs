//! Files in conversations over HTTP: `POST P/uploads` (access level User; also at
//! `/api/upload`, where the earlier web client posts) takes one multipart field `file`
//! and streams it to the upload use-case; `GET P/files/{file_id}` (access level Public,
//! counted per address) serves a file to whoever may read it.
//!
//! A download names its reader by one credential: a bearer token (the uploader, the
//! session's owner, the admin assisting it) or `?share_token=` (a live share link of
//! the file's session). Both are checked by the use-case; a file the reader may not
//! read answers 404 like a missing one.
//!
//! Every file is served with its sniffed `Content-Type`, `X-Content-Type-Options:
//! nosniff` (a header of every reply), `Content-Disposition` (inline for images, as an
//! attachment for anything else) and the strict content policy of every non-page reply,
//! so nothing uploaded can run as a page of this origin.

use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use chatbox_application::ChatError;
use chatbox_application::chat::{Download, FileReader};
use chatbox_application::files::UploadBodyError;
use chatbox_domain::upload::ByteRange;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::{ApiError, ApiRequest, ApiResult};
use crate::access::{UserCaller, Visitor};
use crate::reply::{HttpResponse, authenticate_http, json_response};

/// The multipart field that holds the file.
const FILE_FIELD: &str = "file";
/// Bytes a request may carry besides the file (boundaries, part headers, other fields).
const FRAMING_BYTES: u64 = 64 * 1024;

/// A request body, as the router hands it over: not read yet.
pub(crate) struct RequestBody(BoxStream<'static, Result<Bytes, UploadBodyError>>);

impl RequestBody {
    /// The body `stream` (warp's), as chunks of bytes.
    pub(crate) fn new<B: Buf>(stream: impl Stream<Item = Result<B, warp::Error>> + Send + 'static) -> Self {
        Self(
            stream
                .map(|chunk| {
                    chunk
                        .map(|mut data| data.copy_to_bytes(data.remaining()))
                        .map_err(|error| UploadBodyError::Broken(error.to_string()))
                })
                .boxed(),
        )
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestBody")
    }
}

impl Stream for RequestBody {
    type Item = Result<Bytes, UploadBodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_next_unpin(cx)
    }
}

/// `POST P/uploads`.
pub(crate) async fn upload(request: ApiRequest, caller: UserCaller) -> ApiResult {
    let user = caller.user();
    let chat = &request.state.chat;
    let max_bytes =
        chat.upload_max_bytes().ok_or(ApiError::BadParam("uploads are not enabled on this server"))?;
    let declared = request
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_bytes.saturating_add(FRAMING_BYTES)) {
        // Refused before a byte is read; the connection is closed rather than drained.
        return Err(
            ChatError::Upload(chatbox_domain::upload::UploadRefusal::TooLarge { max: max_bytes }).into()
        );
    }
    let boundary = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| multer::parse_boundary(value).ok())
        .ok_or(ApiError::BadParam("the body must be multipart/form-data with a field named file"))?;
    let body = request.body.ok_or(ApiError::BadParam("the body must hold a file"))?;
    let limits = multer::SizeLimit::new()
        .whole_stream(max_bytes.saturating_add(FRAMING_BYTES))
        .per_field(FRAMING_BYTES)
        .for_field(FILE_FIELD, max_bytes.saturating_add(1));
    let mut form = multer::Multipart::with_constraints(
        body,
        boundary,
        multer::Constraints::new().allowed_fields(vec![FILE_FIELD]).size_limit(limits),
    );
    let wait = chat.upload_timeout().unwrap_or_default();
    let field = match tokio::time::timeout(wait, form.next_field()).await {
        Err(_) => return Err(ChatError::UploadTimeout.into()),
        Ok(Err(_)) | Ok(Ok(None)) => {
            return Err(ApiError::BadParam("the body must be multipart/form-data with a field named file"));
        }
        Ok(Ok(Some(field))) => field,
    };
    let name = field.file_name().unwrap_or_default().to_owned();
    let file = field
        .map_err(|error| match error {
            multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
                UploadBodyError::TooLarge
            }
            other => UploadBodyError::Broken(other.to_string()),
        })
        .boxed();
    let uploaded = chat.upload(&user.id, &name, file).await?;
    let mut response = json_response(
        StatusCode::CREATED,
        &json!({
            "file_id": uploaded.file.id.as_str(),
            "file_url": uploaded.url,
            "name": &*uploaded.file.name,
            "size": uploaded.file.size,
            "type": uploaded.file.media_type.essence(),
            "sha256": uploaded.file.sha256,
        }),
    );
    if let Ok(location) = HeaderValue::from_str(&uploaded.url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET P/files/{file_id}`.
pub(crate) async fn download(request: ApiRequest, _: Visitor) -> ApiResult {
    let share_token = request.query.get("share_token").map(String::as_str);
    let user = if request.headers.contains_key(header::AUTHORIZATION) || share_token.is_none() {
        Some(authenticate_http(&request.state.jwt, &request.headers).map_err(ApiError::Auth)?)
    } else {
        None
    };
    let reader = match (&user, share_token) {
        (Some(user), _) => FileReader::User { id: &user.id, admin: user.is_admin() },
        (None, Some(token))
            if !token.is_empty()
                && token.len() <= 128
                && token.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            FileReader::Shared(token)
        }
        (None, _) => return Err(ApiError::NotFound("File not found")),
    };
    let range = request
        .headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(ByteRange::parse_header);
    let download = match request.state.chat.download(reader, request.path_param("file_id"), range).await {
        Err(ChatError::RangeNotSatisfiable { size }) => return Ok(unsatisfiable(size)),
        other => other?,
    };
    Ok(match download {
        Download::Redirect(url) => redirect(&url),
        Download::Bytes { file, read, partial } => {
            let length = read.range.end - read.range.start;
            let mut response = streamed(read.body.map_err(|error| std::io::Error::other(error.to_string())));
            *response.status_mut() = if partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.media_type.essence()));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", file.sha256)) {
                headers.insert(header::ETAG, etag);
            }
            if let Ok(disposition) = HeaderValue::from_str(&file.content_disposition()) {
                headers.insert(header::CONTENT_DISPOSITION, disposition);
            }
            if partial
                && let Ok(range) = HeaderValue::from_str(&format!(
                    "bytes {}-{}/{}",
                    read.range.start,
                    read.range.end - 1,
                    file.size
                ))
            {
                headers.insert(header::CONTENT_RANGE, range);
            }
            response
        }
    })
}

/// 416 with the file's size.
fn unsatisfiable(size: u64) -> HttpResponse {
    let mut response = ApiError::Chat(ChatError::RangeNotSatisfiable { size }).response();
    if let Ok(range) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, range);
    }
    response
}

/// 302 to a presigned URL of the store, never cached.
fn redirect(url: &str) -> HttpResponse {
    let mut response = HttpResponse::new(Bytes::new().into());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A reply whose body is `body`, streamed.
fn streamed(body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static) -> HttpResponse {
    warp::reply::Reply::into_response(warp::reply::stream(Exclusive(Mutex::new(body.boxed()))))
}

/// A stream that is `Sync` because nothing reaches it through a shared reference: it
/// is only polled through `&mut` (the `Mutex` is never locked).
struct Exclusive<S>(Mutex<S>);

impl<S: Stream + Unpin> Stream for Exclusive<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(stream) => stream.poll_next_unpin(cx),
            Err(poisoned) => poisoned.into_inner().poll_next_unpin(cx),
        }
    }
}
