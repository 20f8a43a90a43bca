//! Lambda function URL events (payload format 2.0) in and out of [`Ingest::handle`].
//!
//! The method comes from `requestContext.http.method`, the path from `rawPath`, the query from
//! `rawQueryString` (the earlier implementation's `?prefix=&counter_key=` form lives there) and
//! the client address from `requestContext.http.sourceIp`. Function URLs lower-case header
//! names, which [`HeaderMap`] does too. A body marked `isBase64Encoded` is decoded here, because
//! the signature covers the raw bytes. An event that cannot be decoded or has no valid method gets
//! a 400 response without reaching [`Ingest::handle`], which responds to everything else.

use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use tracing::warn;

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};

use crate::ingest::{Ingest, IngestRequest, IngestResponse};

/// Client address logged when the event carries none.
const UNKNOWN_SOURCE: &str = "unknown";

/// Why an event got a 400 response before reaching [`Ingest::handle`].
#[derive(Debug, thiserror::Error)]
pub enum FunctionUrlError {
    #[error("body is marked base64-encoded but is not valid base64: {0}")]
    InvalidBase64(#[from] base64::DecodeError),
    #[error("invalid or missing HTTP method {0:?}")]
    InvalidMethod(String),
}

/// The parts of a function URL event that [`IngestRequest`] borrows.
#[derive(Debug, Clone)]
pub struct FunctionUrlRequest {
    pub method: Method,
    pub path: String,
    /// Raw query string without the `?`, or `None` when empty.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub source: String,
}

impl FunctionUrlRequest {
    pub fn as_ingest_request(&self) -> IngestRequest<'_> {
        IngestRequest {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
            source: &self.source,
        }
    }
}

/// Handles one function URL event: parses it, calls [`Ingest::handle`] and converts the response.
pub async fn handle_function_url(
    ingest: &Ingest,
    event: LambdaFunctionUrlRequest,
) -> LambdaFunctionUrlResponse {
    let source = event.request_context.http.source_ip.clone();
    let request = match parse_function_url(event) {
        Ok(request) => request,
        Err(error) => {
            let source = source.as_deref().unwrap_or(UNKNOWN_SOURCE);
            warn!(status = 400, source, %error, "webhook request rejected");
            let body = serde_json::json!({ "error": error.to_string() }).to_string();
            return function_url_response(IngestResponse {
                status: StatusCode::BAD_REQUEST,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            });
        }
    };

    let response = ingest.handle(request.as_ingest_request()).await;
    function_url_response(response)
}

/// Takes a function URL event apart into what [`IngestRequest`] borrows.
pub fn parse_function_url(
    event: LambdaFunctionUrlRequest,
) -> Result<FunctionUrlRequest, FunctionUrlError> {
    let http = event.request_context.http;
    let method_name = http.method.unwrap_or_default();
    let method = Method::from_bytes(method_name.as_bytes())
        .map_err(|_| FunctionUrlError::InvalidMethod(method_name))?;

    let body = match (event.body, event.is_base64_encoded) {
        (None, _) => Vec::new(),
        (Some(body), false) => body.into_bytes(),
        (Some(body), true) => base64::engine::general_purpose::STANDARD.decode(body)?,
    };

    Ok(FunctionUrlRequest {
        method,
        path: event.raw_path.or(http.path).unwrap_or_else(|| "/".into()),
        query: event.raw_query_string.filter(|query| !query.is_empty()),
        headers: event.headers,
        body,
        source: http.source_ip.unwrap_or_else(|| UNKNOWN_SOURCE.into()),
    })
}

/// Converts the response. A header that is not valid in HTTP is logged and left out.
pub fn function_url_response(response: IngestResponse) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    for (name, value) in &response.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => warn!(header = %name, "response header is not valid HTTP; left out"),
        }
    }

    let mut converted = LambdaFunctionUrlResponse::default();
    converted.status_code = i64::from(response.status.as_u16());
    converted.headers = headers;
    converted.body = Some(response.body);
    converted.is_base64_encoded = false;
    converted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A function URL event in payload format 2.0, as Lambda sends it.
    fn event(
        body: &str,
        is_base64_encoded: bool,
        raw_query_string: &str,
    ) -> LambdaFunctionUrlRequest {
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/webhooks/BUG",
            "rawQueryString": raw_query_string,
            "headers": {
                "content-type": "application/json",
                "x-hook-signature": "abc123",
                "x-forwarded-for": "203.0.113.9"
            },
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "urlid",
                "domainName": "urlid.lambda-url.us-east-1.on.aws",
                "domainPrefix": "urlid",
                "http": {
                    "method": "POST",
                    "path": "/webhooks/BUG",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.9",
                    "userAgent": "Asana"
                },
                "requestId": "c2e0f6a4-5d1b-4c1e-9a63-0f3f1d2d9c11",
                "routeKey": "$default",
                "stage": "$default",
                "time": "02/Mar/2026:10:12:25 +0000",
                "timeEpoch": 1772446345000_i64
            },
            "body": body,
            "isBase64Encoded": is_base64_encoded
        });
        serde_json::from_value(event).expect("a valid function URL event")
    }

    #[test]
    fn base64_body_is_decoded() {
        let raw = br#"{"events":[]}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);

        let request = parse_function_url(event(&encoded, true, "")).unwrap();

        assert_eq!(request.body, raw);
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/webhooks/BUG");
        assert_eq!(request.query, None);
        assert_eq!(request.source, "203.0.113.9");
        assert_eq!(request.headers.get("x-hook-signature").unwrap(), "abc123");
    }

    #[test]
    fn plain_body_is_kept_byte_for_byte() {
        let raw = r#"{"events":[{"resource":{"gid":"1\/2"}}]}"#;
        let request = parse_function_url(event(raw, false, "")).unwrap();
        assert_eq!(request.body, raw.as_bytes());
    }

    #[test]
    fn invalid_base64_is_rejected() {
        let error = parse_function_url(event("not base64!", true, "")).unwrap_err();
        assert!(
            matches!(error, FunctionUrlError::InvalidBase64(_)),
            "{error}"
        );
    }

    #[test]
    fn raw_query_string_is_kept() {
        let request = parse_function_url(event("", false, "prefix=BUG&counter_key=bugs")).unwrap();
        assert_eq!(
            request.query.as_deref(),
            Some("prefix=BUG&counter_key=bugs")
        );
    }

    #[test]
    fn response_keeps_status_headers_and_body() {
        let response = function_url_response(IngestResponse {
            status: StatusCode::OK,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("X-Hook-Secret".into(), "s3cret".into()),
                ("bad header".into(), "dropped".into()),
            ],
            body: "{}".into(),
        });

        assert_eq!(response.status_code, 200);
        assert_eq!(response.headers.get("x-hook-secret").unwrap(), "s3cret");
        assert_eq!(
            response.headers.get("content-type").unwrap(),
            "application/json"
        );
        assert_eq!(response.headers.len(), 2);
        assert_eq!(response.body.as_deref(), Some("{}"));
        assert!(!response.is_base64_encoded);
    }
}
