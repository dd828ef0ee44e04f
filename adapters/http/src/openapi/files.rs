//! The descriptions of the file routes: the upload (and the earlier client's path for
//! it) and the download.

use serde_json::json;

use super::{Described, error_response, ok, operation, path_param, query_param};
use crate::routes::route::Method;

/// The upload's operation (at both of its paths).
fn upload(id: &str) -> serde_json::Value {
    let mut upload = operation(
        id,
        "Uploads one file (multipart field `file`); its type is decided from its content",
        vec![],
        json!({
            "201": ok("Stored", "Upload"),
            "400": error_response("Not multipart/form-data with a field `file`, an empty file, or a broken body"),
            "408": error_response("The upload did not finish within UPLOAD_TIMEOUT"),
            "413": error_response("Larger than UPLOAD_MAX_BYTES"),
            "415": error_response("A kind of file that is not taken"),
            "503": error_response("Storage unavailable"),
        }),
    );
    if let Some(map) = upload.as_object_mut() {
        map.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "multipart/form-data": { "schema": {
                    "type": "object", "required": ["file"],
                    "properties": { "file": { "type": "string", "contentMediaType": "application/octet-stream" } }
                } } }
            }),
        );
    }
    upload
}

/// The file routes' descriptions.
pub(super) fn described() -> Vec<Described> {
    let bytes =
        json!({ "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } });
    vec![
        Described { method: Method::Post, template: "/uploads", operation: upload("upload") },
        Described { method: Method::Post, template: "/api/upload", operation: upload("uploadEarlierPath") },
        Described {
            method: Method::Get,
            template: "/files/{file_id}",
            operation: operation(
                "download",
                "A file, for its uploader, its session's owner, the admin assisting it, or a share link's holder",
                vec![
                    path_param("file_id"),
                    query_param("share_token", &json!({ "type": "string" })),
                    json!({ "name": "Range", "in": "header", "required": false, "schema": { "type": "string" } }),
                ],
                json!({
                    "200": { "description": "The file", "content": bytes },
                    "206": { "description": "The range asked for", "content": bytes },
                    "302": { "description": "Read it from object storage at a presigned URL (`Location`)" },
                    "400": error_response("Conflicting credentials"),
                    "401": error_response("No credential, or an invalid token"),
                    "404": error_response("No such file, or not one the caller may read"),
                    "416": error_response("The range asks for no byte of the file"),
                    "503": error_response("Storage unavailable"),
                }),
            ),
        },
    ]
}
