//! Records as the REST APIs carry them: the v3 JSON form (`{"partition_id", "headers",
//! "key": {"type", "data"}, "value": {...}, "timestamp"}`) parsed into [`ProducerRecord`]s
//! with errors that name the offending field, the v2 record batch they are written as, and
//! the Java producer's key partitioner (murmur2), so a keyed record lands where a Java or
//! Confluent client would put it.
use base64::Engine;
use serde_json::Value;

use crate::log::record_batch::{encode_batch, put_varint, BatchHeader};

/// How a key or value is given in JSON and so how its bytes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `data` is base64.
    Binary,
    /// `data` is any JSON value, written as compact JSON text.
    Json,
    /// `data` is a string, written as UTF-8.
    String,
}

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            DataType::Binary => "BINARY",
            DataType::Json => "JSON",
            DataType::String => "STRING",
        }
    }
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerRecord {
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub key_type: Option<DataType>,
    pub value_type: Option<DataType>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Epoch milliseconds; `None`: the time it is produced.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// Key and value bytes (what the REST metrics count in and out).
    pub fn payload_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// A body that is not what the API expects: the field path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub why: String,
}

fn field_error(field: impl Into<String>, why: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), why: why.into() }
}

pub fn base64_decode(field: &str, text: &str) -> Result<Vec<u8>, FieldError> {
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| field_error(field, format!("not base64 ({e})")))
}

/// A v3 key or value: `null`/absent, or `{"type": "BINARY"|"JSON"|"STRING", "data": ...}`
/// (no type: JSON, as Confluent's proxy does without a schema registry).
fn v3_data(field: &str, v: Option<&Value>) -> Result<(Option<Vec<u8>>, Option<DataType>), FieldError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(field_error(field, "expected an object with type and data")),
    };
    let data_type = match obj.get("type") {
        None | Some(Value::Null) => DataType::Json,
        Some(Value::String(t)) => match t.as_str() {
            "BINARY" => DataType::Binary,
            "JSON" => DataType::Json,
            "STRING" => DataType::String,
            "AVRO" | "JSONSCHEMA" | "PROTOBUF" => return Err(field_error(format!("{field}.type"), format!("{t} needs a schema registry, which Lantern does not have"))),
            other => return Err(field_error(format!("{field}.type"), format!("unknown type {other:?}; expected BINARY, JSON or STRING"))),
        },
        Some(_) => return Err(field_error(format!("{field}.type"), "expected a string")),
    };
    for k in ["schema", "schema_id", "schema_version", "subject", "subject_name_strategy"] {
        if obj.get(k).is_some_and(|v| !v.is_null()) {
            return Err(field_error(format!("{field}.{k}"), "schemas need a schema registry, which Lantern does not have"));
        }
    }
    let data = obj.get("data");
    let bytes = match (data_type, data) {
        (_, None | Some(Value::Null)) => None,
        (DataType::Binary, Some(Value::String(s))) => Some(base64_decode(&format!("{field}.data"), s)?),
        (DataType::Binary, Some(_)) => return Err(field_error(format!("{field}.data"), "BINARY data must be a base64 string")),
        (DataType::String, Some(Value::String(s))) => Some(s.as_bytes().to_vec()),
        (DataType::String, Some(_)) => return Err(field_error(format!("{field}.data"), "STRING data must be a string")),
        (DataType::Json, Some(v)) => Some(json_bytes(v).map_err(|e| field_error(format!("{field}.data"), e.to_string()))?),
    };
    Ok((bytes, Some(data_type)))
}

thread_local! {
    /// Where JSON data is written before it is copied out at its exact size: written straight
    /// into a new vector it grew (and was copied) about ten times on the way to 1 KiB.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// Scratch space kept between records; a larger record's is given back.
const SCRATCH_KEPT: usize = 1 << 20;

/// `v` as compact JSON text.
fn json_bytes(v: &Value) -> Result<Vec<u8>, serde_json::Error> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        let written = serde_json::to_writer(&mut *scratch, v).map(|()| scratch.to_vec());
        if scratch.capacity() > SCRATCH_KEPT {
            *scratch = Vec::new();
        }
        written
    })
}

/// A partition number from JSON: absent/null, or a non-negative 32-bit integer.
pub fn partition_field(field: &str, v: Option<&Value>) -> Result<Option<i32>, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| field_error(field, format!("{n} is not a partition number"))),
        Some(_) => Err(field_error(field, "expected an integer")),
    }
}

/// One v3 produce request (one record); `prefix` names its place in a batch (`entries[3]`).
pub fn parse_v3(prefix: &str, v: &Value) -> Result<ProducerRecord, FieldError> {
    let at = |f: &str| if prefix.is_empty() { f.to_string() } else { format!("{prefix}.{f}") };
    let obj = v.as_object().ok_or_else(|| field_error(if prefix.is_empty() { "body" } else { prefix }, "expected a JSON object"))?;
    let partition = partition_field(&at("partition_id"), obj.get("partition_id"))?;
    let (key, key_type) = v3_data(&at("key"), obj.get("key"))?;
    let (value, value_type) = v3_data(&at("value"), obj.get("value"))?;
    let mut headers = Vec::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(hs)) => {
            for (i, h) in hs.iter().enumerate() {
                let f = at(&format!("headers[{i}]"));
                let name = h.get("name").and_then(Value::as_str).ok_or_else(|| field_error(format!("{f}.name"), "expected a string"))?;
                let value = match h.get("value") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(base64_decode(&format!("{f}.value"), s)?),
                    Some(_) => return Err(field_error(format!("{f}.value"), "expected a base64 string")),
                };
                headers.push((name.to_string(), value));
            }
        }
        Some(_) => return Err(field_error(at("headers"), "expected an array")),
    }
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(super::time::parse_ms(s).ok_or_else(|| field_error(at("timestamp"), format!("{s:?} is not an RFC 3339 date-time")))?),
        Some(_) => return Err(field_error(at("timestamp"), "expected an RFC 3339 date-time string")),
    };
    Ok(ProducerRecord { partition, key, value, key_type, value_type, headers, timestamp })
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// One uncompressed v2 record batch (no producer id, CreateTime) of `records`, whose
/// timestamps are already resolved.
pub fn encode(records: &[(&ProducerRecord, i64)]) -> Vec<u8> {
    let base_timestamp = records.first().map_or(0, |r| r.1);
    let max_timestamp = records.iter().map(|r| r.1).max().unwrap_or(base_timestamp);
    let mut section = Vec::with_capacity(records.iter().map(|(r, _)| r.payload_bytes() + 24).sum());
    let mut body = Vec::new();
    for (i, (r, ts)) in records.iter().enumerate() {
        body.clear();
        body.push(0); // record attributes
        put_varint(&mut body, ts - base_timestamp);
        put_varint(&mut body, i as i64);
        put_bytes(&mut body, r.key.as_deref());
        put_bytes(&mut body, r.value.as_deref());
        put_varint(&mut body, r.headers.len() as i64);
        for (name, value) in &r.headers {
            put_bytes(&mut body, Some(name.as_bytes()));
            put_bytes(&mut body, value.as_deref());
        }
        put_varint(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    let header = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records.len().saturating_sub(1) as i32,
        base_timestamp,
        max_timestamp,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: records.len() as i32,
    };
    // The section is bounded by rest.max.request.bytes (at most i32::MAX), so this cannot fail.
    encode_batch(&header, &section).unwrap_or_default()
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The Java producer's partition for a keyed record: `toPositive(murmur2(key)) % partitions`.
pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (&[b'a', b'b', b'c'], 479470107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn the_three_types_make_their_bytes() {
        let r = parse_v3("", &json!({
            "partition_id": 2,
            "key": {"type": "BINARY", "data": "AAEC/w=="},
            "value": {"type": "JSON", "data": {"a": [1, "x"]}},
            "headers": [{"name": "h", "value": "aGk="}, {"name": "n", "value": null}],
            "timestamp": "2021-02-05T19:14:42Z"
        }))
        .unwrap();
        assert_eq!(r.partition, Some(2));
        assert_eq!(r.key.as_deref(), Some(&[0u8, 1, 2, 255][..]));
        assert_eq!(r.value.as_deref(), Some(&br#"{"a":[1,"x"]}"#[..]));
        assert_eq!(r.headers, vec![("h".to_string(), Some(b"hi".to_vec())), ("n".to_string(), None)]);
        assert_eq!(r.timestamp, Some(1_612_552_482_000));
        let s = parse_v3("", &json!({"value": {"type": "STRING", "data": "héllo"}})).unwrap();
        assert_eq!((s.key, s.value.as_deref()), (None, Some("héllo".as_bytes())));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!([]), "body"),
            (json!({"key": {"type": "BINARY", "data": "%%%"}}), "key.data"),
            (json!({"value": {"type": "STRING", "data": 5}}), "value.data"),
            (json!({"value": {"type": "AVRO", "data": 5}}), "value.type"),
            (json!({"value": {"type": "NOPE"}}), "value.type"),
            (json!({"value": 7}), "value"),
            (json!({"partition_id": -1}), "partition_id"),
            (json!({"partition_id": "1"}), "partition_id"),
            (json!({"partition_id": 4294967296u64}), "partition_id"),
            (json!({"headers": [{"value": "aGk="}]}), "headers[0].name"),
            (json!({"headers": [{"name": "x", "value": "!"}]}), "headers[0].value"),
            (json!({"timestamp": "now"}), "timestamp"),
        ];
        for (body, field) in cases {
            assert_eq!(parse_v3("", &body).unwrap_err().field, field, "{body}");
        }
        assert_eq!(parse_v3("entries[3]", &json!({"timestamp": 1})).unwrap_err().field, "entries[3].timestamp");
    }

    #[test]
    fn a_batch_decodes_back_to_its_records() {
        let a = ProducerRecord { partition: None, key: Some(b"k".to_vec()), value: None, key_type: None, value_type: None, headers: vec![("h".into(), Some(b"v".to_vec()))], timestamp: None };
        let b = ProducerRecord { key: None, value: Some(vec![7; 300]), headers: vec![], ..a.clone() };
        let batch = encode(&[(&a, 1000), (&b, 1005)]);
        let headers = crate::log::record_batch::validate_produce_records(&batch, 1 << 20).unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!((headers[0].records_count, headers[0].base_timestamp, headers[0].max_timestamp), (2, 1000, 1005));
    }
}
