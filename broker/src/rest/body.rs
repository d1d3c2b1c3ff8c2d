//! Request bodies, read with the limits every handler needs: a declared Content-Length over
//! `rest.max.request.bytes` is refused (413) before a byte of it is read, a body that grows
//! past it while arriving is cut off there, and each piece must arrive within
//! `rest.request.timeout.ms` (408), so a client that stops sending holds nothing for long.
use axum::body::Body;
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;

use super::error::RestError;
use super::RestConfig;

/// The Content-Length a client declared, if it declared one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse().ok())
}

/// 413 when the declared length is over the limit (nothing read yet).
pub fn check_declared(headers: &HeaderMap, config: &RestConfig) -> Result<(), RestError> {
    match declared_length(headers) {
        Some(n) if n > config.max_request_bytes as u64 => Err(RestError::too_large(config.max_request_bytes)),
        _ => Ok(()),
    }
}

/// The whole body, within the limits.
pub async fn read_all(headers: &HeaderMap, body: Body, config: &RestConfig) -> Result<Vec<u8>, RestError> {
    check_declared(headers, config)?;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(config.request_timeout, stream.next()).await.map_err(|_| RestError::timed_out("The request body"))?;
        match next {
            None => return Ok(out),
            Some(Ok(chunk)) => {
                if out.len() + chunk.len() > config.max_request_bytes {
                    return Err(RestError::too_large(config.max_request_bytes));
                }
                out.extend_from_slice(&chunk);
            }
            Some(Err(e)) => return Err(RestError::bad_request(format!("could not read the request body: {e}"))),
        }
    }
}

/// The body as one JSON value: 422 naming where it stops being JSON.
pub async fn read_json(headers: &HeaderMap, body: Body, config: &RestConfig) -> Result<serde_json::Value, RestError> {
    let bytes = read_all(headers, body, config).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::invalid("body", "Request body is empty. Data is required."));
    }
    serde_json::from_slice(&bytes).map_err(|e| RestError::invalid("body", format!("invalid JSON ({e})")))
}
