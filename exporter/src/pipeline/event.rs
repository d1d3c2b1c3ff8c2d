//! One log line -> one event: parses the broker's JSON log lines (`--log-format json`) and
//! request-log lines (Kafka's "Completed request" fields), pulls out the facts the derived
//! metrics need, and enriches the event with where it came from before it is shipped.
use serde_json::{Map, Value};

use super::timefmt;

/// Which kind of file a line came from (the flag that named the file says it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// `--pipeline.log-file`: the broker's JSON log (timestamp, level, target, message, fields).
    BrokerLog,
    /// `--pipeline.request-log`: one "Completed request" object per line.
    RequestLog,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::BrokerLog => "broker",
            SourceKind::RequestLog => "request",
        }
    }
}

/// What a request-log line says about its request.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestFacts {
    pub api: String,
    pub client_id: String,
    pub software_name: String,
    pub software_version: String,
    pub correlation_id: i64,
    pub total_time_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Error name -> count, NONE excluded.
    pub errors: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Facts {
    Log { level: String, logger: String },
    Request(RequestFacts),
}

/// A parsed line: its facts and the JSON object that is shipped.
#[derive(Debug)]
pub enum Parsed {
    Event { facts: Facts, timestamp_ms: Option<i64>, object: Map<String, Value> },
    /// Not a JSON object of the expected shape; shipped as `{"log_type":"invalid","message":..}`.
    Invalid { raw: String },
    /// An empty line: neither an event nor an error.
    Blank,
}

pub fn parse_line(kind: SourceKind, text: &[u8]) -> Parsed {
    let trimmed = text.strip_suffix(b"\r").unwrap_or(text);
    if trimmed.iter().all(|b| b.is_ascii_whitespace()) {
        return Parsed::Blank;
    }
    let invalid = || Parsed::Invalid { raw: String::from_utf8_lossy(trimmed).into_owned() };
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(trimmed) else {
        return invalid();
    };
    let timestamp_ms = object.get("timestamp").and_then(Value::as_str).and_then(timefmt::parse_rfc3339_ms);
    let facts = match kind {
        SourceKind::BrokerLog => {
            let s = |k: &str, default: &str| object.get(k).and_then(Value::as_str).unwrap_or(default).to_string();
            Facts::Log { level: s("level", "UNKNOWN"), logger: s("target", "unknown") }
        }
        SourceKind::RequestLog => match request_facts(&object) {
            Some(f) => Facts::Request(f),
            None => return invalid(),
        },
    };
    Parsed::Event { facts, timestamp_ms, object }
}

fn request_facts(o: &Map<String, Value>) -> Option<RequestFacts> {
    let api = o.get("apiName")?.as_str()?.to_string();
    let header = o.get("requestHeader").and_then(Value::as_object);
    let client = o.get("clientInformation").and_then(Value::as_object);
    let str_in = |m: Option<&Map<String, Value>>, k: &str| {
        m.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or("unknown").to_string()
    };
    let errors = o
        .get("errorCodes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(name, _)| name.as_str() != "NONE")
                .filter_map(|(name, n)| Some((name.clone(), n.as_u64()?)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    Some(RequestFacts {
        api,
        client_id: str_in(header, "clientId"),
        software_name: str_in(client, "softwareName"),
        software_version: str_in(client, "softwareVersion"),
        correlation_id: header.and_then(|h| h.get("correlationId")).and_then(Value::as_i64).unwrap_or(-1),
        total_time_ms: o.get("totalTimeMs").and_then(Value::as_f64).unwrap_or(0.0),
        request_bytes: o.get("requestBytes").and_then(Value::as_u64).unwrap_or(0),
        response_bytes: o.get("responseBytes").and_then(Value::as_u64).unwrap_or(0),
        errors,
    })
}

/// Where an event came from, added to every shipped event.
#[derive(Clone, Debug)]
pub struct Origin {
    pub host: String,
    pub broker_id: Option<String>,
}

/// The shipped form of a line: the original fields plus `host`, `broker_id`, `log_type`
/// (`broker`, `request` or `invalid`) and `log_file`. Fields the line already has win, except
/// that these four names are the pipeline's.
pub fn enrich(parsed: Parsed, kind: SourceKind, origin: &Origin, file: &str) -> Option<String> {
    let (mut object, log_type) = match parsed {
        Parsed::Event { object, .. } => (object, kind.as_str()),
        Parsed::Invalid { raw } => {
            let mut m = Map::new();
            m.insert("message".into(), Value::String(raw));
            (m, "invalid")
        }
        Parsed::Blank => return None,
    };
    object.insert("host".into(), Value::String(origin.host.clone()));
    if let Some(id) = &origin.broker_id {
        object.insert("broker_id".into(), Value::String(id.clone()));
    }
    object.insert("log_type".into(), Value::String(log_type.into()));
    object.insert("log_file".into(), Value::String(file.into()));
    serde_json::to_string(&object).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKER: &str = r#"{"timestamp":"2026-11-22T02:38:17.136151Z","level":"INFO","message":"created log","topic":"__consumer_offsets","partition":0,"target":"state.change.logger"}"#;
    const REQUEST: &str = r#"{"timestamp":"2026-11-22T02:38:18.641Z","message":"Completed request","requestHeader":{"requestApiKey":0,"requestApiVersion":7,"correlationId":3,"clientId":"rdkafka"},"apiName":"Produce","connection":"127.0.0.1:39092-127.0.0.1:54600-0","listener":"PLAINTEXT","securityProtocol":"PLAINTEXT","principal":"User:ANONYMOUS","clientInformation":{"softwareName":"librdkafka","softwareVersion":"2.0.2"},"totalTimeMs":4.83803,"requestQueueTimeMs":0.036684999999999995,"localTimeMs":0.088282,"remoteTimeMs":0.0,"throttleTimeMs":0.0,"responseQueueTimeMs":0.002043,"sendTimeMs":4.708895999999999,"requestBytes":121,"responseBytes":56,"errorCodes":{"NONE":1,"UNKNOWN_TOPIC_OR_PARTITION":2}}"#;

    #[test]
    fn broker_line_gives_level_and_logger() {
        let Parsed::Event { facts, timestamp_ms, .. } = parse_line(SourceKind::BrokerLog, BROKER.as_bytes()) else {
            panic!("not an event")
        };
        assert_eq!(facts, Facts::Log { level: "INFO".into(), logger: "state.change.logger".into() });
        assert_eq!(timestamp_ms, Some(1_795_315_097_136));
    }

    #[test]
    fn request_line_gives_request_facts_without_none_errors() {
        let Parsed::Event { facts: Facts::Request(f), .. } = parse_line(SourceKind::RequestLog, REQUEST.as_bytes()) else {
            panic!("not a request")
        };
        assert_eq!(f.api, "Produce");
        assert_eq!((f.client_id.as_str(), f.software_name.as_str(), f.software_version.as_str()), ("rdkafka", "librdkafka", "2.0.2"));
        assert_eq!((f.correlation_id, f.request_bytes, f.response_bytes), (3, 121, 56));
        assert!((f.total_time_ms - 4.83803).abs() < 1e-9);
        assert_eq!(f.errors, vec![("UNKNOWN_TOPIC_OR_PARTITION".to_string(), 2)]);
    }

    #[test]
    fn garbage_is_invalid_and_blank_is_nothing() {
        assert!(matches!(parse_line(SourceKind::BrokerLog, b"not json {"), Parsed::Invalid { .. }));
        assert!(matches!(parse_line(SourceKind::BrokerLog, b"[1,2]"), Parsed::Invalid { .. }));
        assert!(matches!(parse_line(SourceKind::RequestLog, BROKER.as_bytes()), Parsed::Invalid { .. }));
        assert!(matches!(parse_line(SourceKind::BrokerLog, b"  \r"), Parsed::Blank));
    }

    #[test]
    fn enrichment_adds_origin() {
        let origin = Origin { host: "h1".into(), broker_id: Some("7".into()) };
        let s = enrich(parse_line(SourceKind::BrokerLog, BROKER.as_bytes()), SourceKind::BrokerLog, &origin, "/x.log").unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!((v["host"].as_str(), v["broker_id"].as_str(), v["log_type"].as_str()), (Some("h1"), Some("7"), Some("broker")));
        assert_eq!(v["target"], "state.change.logger");
    }
}
