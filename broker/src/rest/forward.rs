//! Forwarding one REST request to another broker's proxy (the owner of a v2 consumer
//! instance), over plain HTTP/1.1 with `Connection: close`: the request line, the headers the
//! consumer routes read (Content-Type, Accept) and the client's Authorization, the body; the answer's status, Content-Type,
//! WWW-Authenticate (the owner's challenge on a 401) and body come back as they are. The answer is capped before it is read whole, and the whole
//! exchange is bounded in time. A forwarded request carries [`FORWARDED`] so that it is never
//! forwarded again.
use std::time::Duration;

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::{RestError, KAFKA_RETRIABLE};

/// Marks a request one broker forwarded to another.
pub const FORWARDED: &str = "x-lantern-forwarded";
/// Largest answer read from the owner (a records answer is at most its max_bytes, base64).
const ANSWER_CAP: usize = 64 << 20;

/// An answer from the owner: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    /// The owner's authentication challenge, kept so a client refused by the owner is told how
    /// to authenticate, as when it asks the owner directly.
    pub www_authenticate: Option<String>,
    pub body: Vec<u8>,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, self.content_type)], self.body).into_response();
        if let Some(value) = self.www_authenticate.and_then(|v| header::HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The request as sent on the wire.
pub fn request_bytes(method: &Method, path_and_query: &str, host: &str, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path_and_query} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{FORWARDED}: 1\r\nContent-Length: {}\r\n", body.len());
    // Authorization: the owner checks the client's credentials again (rest.authentication).
    for name in [header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION] {
        if let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok()) {
            // Header values with line breaks cannot reach here (hyper refuses them).
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Parses a whole HTTP/1.1 answer (read until the owner closed); chunked bodies are decoded.
pub fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let (mut content_type, mut chunked, mut length, mut www_authenticate) = (String::from("application/json"), false, None, None);
    for line in lines {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.to_string(),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "content-length" => length = v.parse::<usize>().ok(),
            "www-authenticate" => www_authenticate = Some(v.to_string()),
            _ => {}
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = pos + rest.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[pos..line_end]).ok()?.split(';').next()?.trim(), 16).ok()?;
            pos = line_end + 2;
            if size == 0 {
                break;
            }
            body.extend_from_slice(rest.get(pos..pos.checked_add(size)?)?);
            pos += size + 2;
        }
        body
    } else {
        match length {
            Some(n) => rest.get(..n)?.to_vec(),
            None => rest.to_vec(),
        }
    };
    Some(Answer { status: StatusCode::from_u16(status).ok()?, content_type, www_authenticate, body })
}

/// Sends the request to `host:port` and returns its answer; an owner that cannot be reached
/// or answers nonsense is a retriable 500.
pub async fn forward(host: &str, port: u16, method: &Method, path_and_query: &str, headers: &HeaderMap, body: &[u8], timeout: Duration) -> Result<Answer, RestError> {
    let fail = |why: String| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, KAFKA_RETRIABLE, format!("The broker owning this consumer instance ({host}:{port}) {why}"));
    let exchange = async {
        let mut stream = TcpStream::connect((host, port)).await.map_err(|e| fail(format!("cannot be reached: {e}")))?;
        stream.write_all(&request_bytes(method, path_and_query, &format!("{host}:{port}"), headers, body)).await.map_err(|e| fail(format!("failed: {e}")))?;
        let mut raw = Vec::new();
        let mut limited = (&mut stream).take(ANSWER_CAP as u64 + 1);
        limited.read_to_end(&mut raw).await.map_err(|e| fail(format!("failed: {e}")))?;
        if raw.len() > ANSWER_CAP {
            return Err(fail("answered more than the forwarding cap".into()));
        }
        parse_answer(&raw).ok_or_else(|| fail("answered something that is not HTTP".into()))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| fail(format!("did not answer within {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_marker_and_the_consumer_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, "application/vnd.kafka.json.v2+json".parse().unwrap());
        h.insert(header::COOKIE, "x".parse().unwrap());
        let raw = String::from_utf8(request_bytes(&Method::POST, "/consumers/g/instances/i/offsets?a=1", "h:1", &h, b"{}")).unwrap();
        assert!(raw.starts_with("POST /consumers/g/instances/i/offsets?a=1 HTTP/1.1\r\nHost: h:1\r\n"), "{raw}");
        assert!(raw.contains("x-lantern-forwarded: 1\r\n") && raw.contains("Content-Length: 2\r\n"));
        assert!(raw.contains("accept: application/vnd.kafka.json.v2+json\r\n") && !raw.contains("cookie"));
        assert!(raw.ends_with("\r\n\r\n{}"));
    }

    #[test]
    fn answers_parse_with_length_chunked_or_to_the_end() {
        let a = parse_answer(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{...}extra").unwrap();
        assert_eq!((a.status, a.content_type.as_str(), a.body.as_slice()), (StatusCode::NOT_FOUND, "application/json", &b"{...}"[..]));
        let a = parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(a.body, b"abcde");
        assert_eq!(parse_answer(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().body, b"");
        let refused = parse_answer(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"lantern\"\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(refused.www_authenticate.as_deref(), Some("Basic realm=\"lantern\""));
        let response = refused.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"lantern\"");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        for bad in [&b"garbage"[..], b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"] {
            assert_eq!(parse_answer(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
