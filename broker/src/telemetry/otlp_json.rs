//! OTLP/HTTP JSON encoding of an `ExportTraceServiceRequest`: the protobuf JSON mapping with
//! OTLP's exceptions (trace and span ids as lowercase hex, enum values as integers), 64-bit
//! integers as decimal strings, and no fields for unset values.
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{Link, SpanData, Value};

/// The instrumentation scope the spans are reported under.
pub const SCOPE_NAME: &str = "lantern-broker";

/// Encodes one request carrying `spans` under a single resource.
pub fn encode(resource: &[(String, String)], spans: &[SpanData]) -> Result<Vec<u8>, serde_json::Error> {
    let resource: Vec<KeyValue<'_>> = resource.iter().map(|(k, v)| KeyValue { key: k, value: Any::Str(v) }).collect();
    let request = ExportRequest {
        resource_spans: [ResourceSpans {
            resource: Resource { attributes: resource },
            scope_spans: [ScopeSpans {
                scope: Scope { name: SCOPE_NAME, version: env!("CARGO_PKG_VERSION") },
                spans: spans.iter().map(JsonSpan).collect(),
            }],
        }],
    };
    serde_json::to_vec(&request)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRequest<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<JsonSpan<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: Any<'a>,
}

/// OTLP `AnyValue`: a one-field object naming the variant.
enum Any<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
}

impl Serialize for Any<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Any::Str(v) => m.serialize_entry("stringValue", v)?,
            Any::Int(v) => m.serialize_entry("intValue", &v.to_string())?,
            Any::Bool(v) => m.serialize_entry("boolValue", v)?,
        }
        m.end()
    }
}

fn any(v: &Value) -> Any<'_> {
    match v {
        Value::Str(s) => Any::Str(s),
        Value::Int(i) => Any::Int(*i),
        Value::Bool(b) => Any::Bool(*b),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

struct JsonSpan<'a>(&'a SpanData);

impl Serialize for JsonSpan<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("traceId", &hex(&d.context.trace_id))?;
        m.serialize_entry("spanId", &hex(&d.context.span_id))?;
        if let Some(parent) = &d.parent_span_id {
            m.serialize_entry("parentSpanId", &hex(parent))?;
        }
        m.serialize_entry("name", &d.name)?;
        m.serialize_entry("kind", &(d.kind as i32))?;
        m.serialize_entry("startTimeUnixNano", &d.start_unix_nanos.to_string())?;
        m.serialize_entry("endTimeUnixNano", &d.end_unix_nanos.to_string())?;
        let attributes: Vec<KeyValue<'_>> = d.attributes.iter().map(|(k, v)| KeyValue { key: k, value: any(v) }).collect();
        m.serialize_entry("attributes", &attributes)?;
        if !d.links.is_empty() {
            m.serialize_entry("links", &d.links.iter().map(JsonLink).collect::<Vec<_>>())?;
        }
        if d.dropped_links > 0 {
            m.serialize_entry("droppedLinksCount", &d.dropped_links)?;
        }
        if let Some(message) = &d.error {
            m.serialize_entry("status", &Status { code: 2, message })?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Status<'a> {
    /// STATUS_CODE_ERROR.
    code: i32,
    message: &'a str,
}

struct JsonLink<'a>(&'a Link);

impl Serialize for JsonLink<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("traceId", &hex(&l.context.trace_id))?;
        m.serialize_entry("spanId", &hex(&l.context.span_id))?;
        if let Some(state) = &l.trace_state {
            m.serialize_entry("traceState", state)?;
        }
        // Link.flags: bits 0-7 are the W3C trace flags; bits 8-9 say the linked context
        // was remote (it came from a producer's record header).
        m.serialize_entry("flags", &(u32::from(l.context.flags) | 0x300))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SpanContext, SpanKind};
    use super::*;
    use std::borrow::Cow;

    fn span() -> SpanData {
        SpanData {
            context: SpanContext { trace_id: [0xab; 16], span_id: [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08], flags: 1 },
            parent_span_id: Some([0xff, 0, 0, 0, 0, 0, 0, 0x0a]),
            name: Cow::Borrowed("log.append"),
            kind: SpanKind::Internal,
            start_unix_nanos: 1_700_000_000_000_000_001,
            end_unix_nanos: 1_700_000_000_000_500_000,
            attributes: vec![
                ("messaging.destination.name", Value::Str("orders \"eu\"\n".into())),
                ("messaging.kafka.offset", Value::Int(-1)),
                ("big", Value::Int(i64::MAX)),
                ("lantern.append.duplicate", Value::Bool(true)),
            ],
            links: vec![Link {
                context: SpanContext { trace_id: [0x4b; 16], span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7], flags: 1 },
                trace_state: Some("rojo=00f067aa0ba902b7".into()),
            }],
            dropped_links: 0,
            error: Some("NOT_LEADER_OR_FOLLOWER".into()),
        }
    }

    /// Golden output: the exact bytes a receiver gets for one span.
    #[test]
    fn golden_export_request() {
        let json = encode(&[("service.name".into(), "lantern-broker".into())], &[span()]).expect("encodes");
        let expected = concat!(
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"lantern-broker"}}]},"#,
            r#""scopeSpans":[{"scope":{"name":"lantern-broker","version":""#,
            env!("CARGO_PKG_VERSION"),
            r#""},"spans":[{"traceId":"abababababababababababababababab","spanId":"0102030405060708","parentSpanId":"ff0000000000000a","#,
            r#""name":"log.append","kind":1,"startTimeUnixNano":"1700000000000000001","endTimeUnixNano":"1700000000000500000","#,
            r#""attributes":[{"key":"messaging.destination.name","value":{"stringValue":"orders \"eu\"\n"}},"#,
            r#"{"key":"messaging.kafka.offset","value":{"intValue":"-1"}},{"key":"big","value":{"intValue":"9223372036854775807"}},"#,
            r#"{"key":"lantern.append.duplicate","value":{"boolValue":true}}],"#,
            r#""links":[{"traceId":"4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b","spanId":"00f067aa0ba902b7","traceState":"rojo=00f067aa0ba902b7","flags":769}],"#,
            r#""status":{"code":2,"message":"NOT_LEADER_OR_FOLLOWER"}}]}]}]}"#
        );
        assert_eq!(String::from_utf8(json).expect("utf-8"), expected);
    }

    #[test]
    fn unset_fields_are_left_out() {
        let mut s = span();
        s.parent_span_id = None;
        s.links.clear();
        s.error = None;
        s.kind = SpanKind::Server;
        s.dropped_links = 3;
        let v: serde_json::Value = serde_json::from_slice(&encode(&[], &[s]).expect("encodes")).expect("valid JSON");
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        for absent in ["parentSpanId", "links", "status"] {
            assert!(span.get(absent).is_none(), "{absent} present: {span}");
        }
        assert_eq!(span["kind"], 2);
        assert_eq!(span["droppedLinksCount"], 3);
        assert_eq!(v["resourceSpans"][0]["resource"]["attributes"], serde_json::json!([]));
    }

    #[test]
    fn hostile_strings_stay_valid_json() {
        let mut s = span();
        s.name = Cow::Owned("\u{0}\u{1f}\"\\\u{2028}é😀".into());
        s.attributes = vec![("k", Value::Str("\u{7f}</script>".into()))];
        let bytes = encode(&[("a\"b".into(), "\\".into())], &[s]).expect("encodes");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"], "\u{0}\u{1f}\"\\\u{2028}é😀");
    }
}
