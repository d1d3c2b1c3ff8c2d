//! Kafka wire protocol: request decoding and response encoding on whole frames, no I/O.
//!
//! `network` hands a frame (the bytes after the 4-byte length prefix) to [`decode_request`];
//! the API layer answers with a [`ResponseKind`] that [`encode_response`] frames again.
mod response_frame;
mod versions;

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

pub use response_frame::ResponseFrame;
pub use versions::{supported, Supported, SUPPORTED};

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Why a frame could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api:?} is not implemented by this broker")]
    NotImplemented { api: ApiKey, correlation_id: i32 },
    #[error("{api:?} version {version} is not supported (supported: {min}..={max})")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16, correlation_id: i32 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
}

/// Decodes a request frame. Errors say whether the protocol has an answer for the client
/// (`UnsupportedVersion` of ApiVersions) or the connection must be closed.
pub fn decode_request(mut frame: Bytes) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| DecodeError::UnknownApiKey(raw_key))?;
    let range = supported(api_key).ok_or(DecodeError::NotImplemented { api: api_key, correlation_id })?;
    if version < range.decode_min || version > range.max {
        return Err(DecodeError::UnsupportedVersion {
            api: api_key,
            version,
            min: range.min,
            max: range.max,
            correlation_id,
        });
    }
    let malformed = |e: anyhow::Error| DecodeError::Malformed { api: api_key, version, reason: format!("{e:#}") };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version)).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(Request { api_key, header, body })
}

/// Encodes a response, length prefix included, ready to write to the socket. Record sets
/// are referenced, not copied (see [`ResponseFrame`]).
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<ResponseFrame> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let mut frame = ResponseFrame::new();
    frame.put_i32(0);
    header.encode(&mut frame, header_version)?;
    body.encode(&mut frame, version)?;
    let len = i32::try_from(frame.len() - 4)?;
    frame.patch(0, &len.to_be_bytes());
    Ok(frame)
}

/// A request as a client sends it: length prefix, header, body.
pub fn encode_request<Req: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, client_id: &'static str, request: &Req) -> anyhow::Result<bytes::BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str(client_id)));
    let mut buf = bytes::BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, api_key.request_header_version(version))?;
    request.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// A response frame (the bytes after its length prefix) as a client reads it: checked to
/// answer `correlation_id`. Trailing bytes are returned as their count (a newer broker may
/// add fields the codec skips).
pub fn decode_response<Resp: Decodable>(mut frame: Bytes, api_key: ApiKey, version: i16, correlation_id: i32) -> anyhow::Result<(Resp, usize)> {
    use bytes::Buf;
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
    if header.correlation_id != correlation_id {
        anyhow::bail!("{api_key:?} response has correlation id {} for request {correlation_id}", header.correlation_id);
    }
    let response = Resp::decode(&mut frame, version)?;
    Ok((response, frame.remaining()))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod legacy_tests;
