//! Test-only encoder for v2 record batches, so storage tests build real Kafka bytes
//! (including every compression codec) without a client library.

use super::record_batch::Compression;
use std::io::Write;

/// One record to encode: timestamp, key, value.
#[derive(Clone, Debug)]
pub struct TestRecord {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Everything a test may want to control in a batch.
#[derive(Clone, Debug)]
pub struct BatchSpec {
    pub base_offset: i64,
    pub records: Vec<TestRecord>,
    pub compression: Compression,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Overrides the lastOffsetDelta written in the header (default: count - 1).
    pub last_offset_delta: Option<i32>,
    /// Extra attribute bits (timestamp type, transactional, control).
    pub attributes_extra: i16,
}

impl BatchSpec {
    /// A non-idempotent, uncompressed batch with the given values and timestamps 1000, 1001, ...
    pub fn values(values: &[&[u8]]) -> BatchSpec {
        let records = values
            .iter()
            .enumerate()
            .map(|(i, v)| TestRecord {
                timestamp: 1000 + i as i64,
                key: None,
                value: Some(v.to_vec()),
            })
            .collect();
        BatchSpec {
            base_offset: 0,
            records,
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            last_offset_delta: None,
            attributes_extra: 0,
        }
    }

    /// A batch with one record per timestamp (value = "v<i>").
    pub fn timestamps(timestamps: &[i64]) -> BatchSpec {
        let mut spec = BatchSpec::values(&[]);
        spec.records = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| TestRecord {
                timestamp: *ts,
                key: Some(format!("k{i}").into_bytes()),
                value: Some(format!("v{i}").into_bytes()),
            })
            .collect();
        spec
    }

    pub fn with_compression(mut self, compression: Compression) -> BatchSpec {
        self.compression = compression;
        self
    }

    pub fn idempotent(mut self, producer_id: i64, epoch: i16, base_sequence: i32) -> BatchSpec {
        self.producer_id = producer_id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }
}

/// The record format's varint, as the broker writes it.
pub use super::record_batch::put_varint;

fn put_bytes(out: &mut Vec<u8>, b: &Option<Vec<u8>>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Encodes the uncompressed records section.
pub fn encode_records(records: &[TestRecord], base_timestamp: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, r.timestamp - base_timestamp);
        put_varint(&mut body, i as i64);
        put_bytes(&mut body, &r.key);
        put_bytes(&mut body, &r.value);
        put_varint(&mut body, 1); // one header
        put_varint(&mut body, 1);
        body.extend_from_slice(b"h");
        put_varint(&mut body, 2);
        body.extend_from_slice(b"hv");
        put_varint(&mut out, body.len() as i64);
        out.extend(body);
    }
    out
}

/// Xerial-framed snappy, as the Java client writes it.
pub fn xerial_snappy(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    for chunk in data.chunks(32 * 1024) {
        let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend(block);
    }
    out
}

pub fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Snappy => xerial_snappy(data),
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

fn codec_bits(c: Compression) -> i16 {
    match c {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Builds a batch around an already-encoded (possibly compressed) records section.
pub fn encode_batch_with_payload(spec: &BatchSpec, payload: &[u8]) -> Vec<u8> {
    let base_ts = spec.records.iter().map(|r| r.timestamp).min().unwrap_or(-1);
    let max_ts = spec.records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let count = spec.records.len() as i32;
    let mut b = Vec::new();
    b.extend_from_slice(&spec.base_offset.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // length, patched below
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    b.extend_from_slice(&(codec_bits(spec.compression) | spec.attributes_extra).to_be_bytes());
    b.extend_from_slice(&spec.last_offset_delta.unwrap_or(count - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(payload);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Encodes a complete v2 batch for `spec`.
pub fn encode_batch(spec: &BatchSpec) -> Vec<u8> {
    let base_ts = spec.records.iter().map(|r| r.timestamp).min().unwrap_or(-1);
    let raw = encode_records(&spec.records, base_ts);
    encode_batch_with_payload(spec, &compress(spec.compression, &raw))
}
