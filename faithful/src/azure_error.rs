//! Error responses shaped as Azure Storage sends them, so that SDKs parse the error code: XML
//! `<Error><Code>` for blobs, OData JSON `odata.error` for tables, and `x-ms-error-code` on both.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::request::Service;

pub type Body = Full<Bytes>;

pub fn response(service: Service, status: u16, code: &str, message: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body) = match service {
        Service::Blob => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code>\
                 <Message>{message}</Message></Error>"
            ),
        ),
        Service::Table => (
            "application/json;odata=minimalmetadata;streaming=true;charset=utf-8",
            serde_json::json!({
                "odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}
            })
            .to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert("x-ms-error-code", v);
    }
    h.insert("x-ms-version", HeaderValue::from_static("2025-11-05"));
    resp
}
