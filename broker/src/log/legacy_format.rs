//! Kafka's message formats before record batch v2: magic 0 (Kafka 0.8-0.9) and magic 1
//! (0.10, KIP-32 timestamps), which clients still send in Produce v0-2 and expect in Fetch
//! v0-3. Lantern stores only v2 batches; `format_conversion.rs` converts at the edges, and this
//! module reads and writes the old message sets.
//!
//! A message set is a sequence of entries (all big-endian):
//!
//! | field       | type | note                                              |
//! |-------------|------|---------------------------------------------------|
//! | offset      | i64  |                                                   |
//! | messageSize | i32  | bytes of the message that follows                 |
//! | crc         | u32  | CRC-32 (IEEE) of everything after it              |
//! | magic       | i8   | 0 or 1                                            |
//! | attributes  | i8   | bits 0-2 codec, bit 3 LogAppendTime (magic 1)     |
//! | timestamp   | i64  | magic 1 only                                      |
//! | key         | i32 length + bytes, -1 for null                        ||
//! | value       | i32 length + bytes, -1 for null                        ||
//!
//! A compressed message ("wrapper") holds in its value a compressed message set of
//! uncompressed inner messages of the same magic. Magic 1 inner offsets are relative (0..n-1)
//! and the wrapper's offset is that of its last inner message; magic 0 inner offsets are
//! absolute. Magic 0 LZ4 frames carry the header checksum computed over the frame magic too
//! (KAFKA-3160): read and written here as Kafka 0.8-0.9 clients expect.
use thiserror::Error;

use super::record_batch::{Compression, NO_TIMESTAMP};
use super::records::{decompress, RecordError};
use crate::error_code;

/// Bytes before each message: offset and messageSize.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest message: crc, magic, attributes, key and value lengths (+ timestamp for magic 1).
const MIN_MESSAGE_V0: usize = 4 + 1 + 1 + 4 + 4;
const MIN_MESSAGE_V1: usize = MIN_MESSAGE_V0 + 8;
const ATTR_CODEC_MASK: i8 = 0x07;
const ATTR_LOG_APPEND_TIME: i8 = 0x08;

/// Why an old-format message set is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LegacyFormatError {
    #[error("message at byte {at} is malformed: {what}; the message set is corrupt")]
    Malformed { at: usize, what: &'static str },
    #[error("message at byte {at} has CRC {stored:#010x} but its bytes hash to {computed:#010x}; it was corrupted in transit")]
    CrcMismatch { at: usize, stored: u32, computed: u32 },
    #[error("message at byte {at} has magic {magic}; old message sets hold magic 0 or 1 only")]
    UnknownMagic { at: usize, magic: i8 },
    #[error("message at byte {at} uses compression codec {codec}, which messages before format v2 cannot use (zstd needs Produce v7 and record batches)")]
    UnsupportedCompression { at: usize, codec: i8 },
    #[error("compressed message at byte {at} holds {what}; a wrapper holds uncompressed messages of its own magic")]
    InvalidWrapper { at: usize, what: &'static str },
    #[error("cannot decompress the message at byte {at}: {reason}")]
    Decompress { at: usize, reason: String },
    #[error("the message set holds no complete message")]
    Empty,
    #[error("the message set holds more than {max} records; send smaller requests")]
    TooManyRecords { max: usize },
    #[error("the message set decompresses to more than {max} bytes; send smaller requests")]
    DecompressedTooLarge { max: usize },
    #[error("cannot write the converted records: {reason}")]
    Encode { reason: String },
}

impl LegacyFormatError {
    /// The error code Kafka answers with (LogValidator's exceptions).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LegacyFormatError::UnsupportedCompression { .. } => error_code::UNSUPPORTED_COMPRESSION_TYPE,
            LegacyFormatError::InvalidWrapper { .. } | LegacyFormatError::Empty => error_code::INVALID_RECORD,
            LegacyFormatError::TooManyRecords { .. } | LegacyFormatError::DecompressedTooLarge { .. } => error_code::MESSAGE_TOO_LARGE,
            LegacyFormatError::Encode { .. } => error_code::UNKNOWN_SERVER_ERROR,
            _ => error_code::CORRUPT_MESSAGE,
        }
    }
}

/// One (inner or uncompressed) message, borrowed from the set or a decompressed wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyRecord<'a> {
    pub offset: i64,
    pub magic: i8,
    /// `NO_TIMESTAMP` for magic 0.
    pub timestamp: i64,
    pub log_append_time: bool,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// One top-level message of a set: either a plain record or a compressed wrapper.
#[derive(Debug, Clone, Copy)]
pub struct LegacyMessage<'a> {
    /// Position of the entry in the set (for error messages).
    pub at: usize,
    pub record: LegacyRecord<'a>,
    pub codec: Compression,
}

/// The complete top-level messages of `set`, CRCs checked. A trailing partial entry is ignored
/// (a fetch-sized cut, as Kafka trims it); nothing complete is `Empty`.
pub fn messages(set: &[u8]) -> Result<Vec<LegacyMessage<'_>>, LegacyFormatError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while set.len() - at >= LOG_OVERHEAD {
        let offset = be_i64(&set[at..]);
        let size = be_i32(&set[at + 8..]);
        let size = usize::try_from(size).map_err(|_| LegacyFormatError::Malformed { at, what: "negative message size" })?;
        if size < MIN_MESSAGE_V0 {
            return Err(LegacyFormatError::Malformed { at, what: "message smaller than its fixed fields" });
        }
        let Some(body) = set.get(at + LOG_OVERHEAD..at + LOG_OVERHEAD + size) else { break };
        let (record, codec) = parse_message(offset, body, at)?;
        out.push(LegacyMessage { at, record, codec });
        at += LOG_OVERHEAD + size;
    }
    if out.is_empty() {
        return Err(LegacyFormatError::Empty);
    }
    Ok(out)
}

/// Whether `set` starts with an old-format message (magic 0 or 1) rather than a v2 batch.
pub fn is_legacy(set: &[u8]) -> bool {
    set.get(16).is_some_and(|magic| *magic < 2)
}

/// The inner records of a compressed wrapper, decompressed into `buf` (at most `cap` bytes),
/// with absolute offsets and the wrapper's timestamp where it says LogAppendTime.
pub fn inner_records<'b>(wrapper: &LegacyMessage<'_>, buf: &'b mut Vec<u8>, cap: usize) -> Result<Vec<LegacyRecord<'b>>, LegacyFormatError> {
    let at = wrapper.at;
    let compressed = wrapper.record.value.unwrap_or_default();
    *buf = decompress_legacy(wrapper.codec, wrapper.record.magic, compressed, cap).map_err(|e| match e {
        RecordError::TooLarge { limit } => LegacyFormatError::DecompressedTooLarge { max: limit },
        e => LegacyFormatError::Decompress { at, reason: e.to_string() },
    })?;
    let inner = messages(buf).map_err(|e| match e {
        LegacyFormatError::Empty => LegacyFormatError::InvalidWrapper { at, what: "no message" },
        other => other,
    })?;
    let last = inner.last().map_or(0, |m| m.record.offset);
    let mut out = Vec::with_capacity(inner.len());
    for m in inner {
        if m.codec != Compression::None {
            return Err(LegacyFormatError::InvalidWrapper { at, what: "a compressed message" });
        }
        if m.record.magic != wrapper.record.magic {
            return Err(LegacyFormatError::InvalidWrapper { at, what: "a message of another magic" });
        }
        let mut r = m.record;
        if r.magic >= 1 {
            // Hostile offsets must not overflow; the log assigns its own anyway.
            r.offset = wrapper.record.offset.wrapping_sub(last).wrapping_add(r.offset);
        }
        if wrapper.record.log_append_time {
            r.timestamp = wrapper.record.timestamp;
            r.log_append_time = true;
        }
        out.push(r);
    }
    Ok(out)
}

fn parse_message(offset: i64, body: &[u8], at: usize) -> Result<(LegacyRecord<'_>, Compression), LegacyFormatError> {
    let stored = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let computed = crc32fast::hash(&body[4..]);
    if stored != computed {
        return Err(LegacyFormatError::CrcMismatch { at, stored, computed });
    }
    let magic = body[4] as i8;
    let attributes = body[5] as i8;
    let (timestamp, mut pos) = match magic {
        0 => (NO_TIMESTAMP, 6),
        1 if body.len() >= MIN_MESSAGE_V1 => (be_i64(&body[6..]), 14),
        1 => return Err(LegacyFormatError::Malformed { at, what: "magic 1 message without room for its timestamp" }),
        other => return Err(LegacyFormatError::UnknownMagic { at, magic: other }),
    };
    let key = bytes_field(body, &mut pos).ok_or(LegacyFormatError::Malformed { at, what: "key length past the message end" })?;
    let value = bytes_field(body, &mut pos).ok_or(LegacyFormatError::Malformed { at, what: "value length past the message end" })?;
    if pos != body.len() {
        return Err(LegacyFormatError::Malformed { at, what: "bytes after the value" });
    }
    let codec = match attributes & ATTR_CODEC_MASK {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        other => return Err(LegacyFormatError::UnsupportedCompression { at, codec: other }),
    };
    let log_append_time = magic >= 1 && attributes & ATTR_LOG_APPEND_TIME != 0;
    Ok((LegacyRecord { offset, magic, timestamp, log_append_time, key, value }, codec))
}

fn bytes_field<'a>(body: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = be_i32(body.get(*pos..*pos + 4)?);
    *pos += 4;
    if len < 0 {
        return Some(None);
    }
    let field = body.get(*pos..*pos + len as usize)?;
    *pos += len as usize;
    Some(Some(field))
}

/// Decompresses a wrapper's value; magic 0 LZ4 frames get their header checksum corrected first.
fn decompress_legacy(codec: Compression, magic: i8, input: &[u8], cap: usize) -> Result<Vec<u8>, RecordError> {
    if codec == Compression::Lz4 && magic == 0 {
        let mut fixed = input.to_vec();
        set_lz4_header_checksum(&mut fixed, false);
        return decompress(codec, &fixed, cap);
    }
    decompress(codec, input, cap)
}

/// Writes an LZ4 frame's header checksum: over the frame descriptor (FLG..), or over the
/// magic number too (`broken`, Kafka's magic 0 framing). Frames too short to have one are
/// left as they are (the decoder refuses them).
pub fn set_lz4_header_checksum(frame: &mut [u8], broken: bool) {
    let Some(&flg) = frame.get(4) else { return };
    // FLG bit 3: content size (8 bytes); bit 0: dictionary id (4 bytes).
    let descriptor_end = 6 + if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 };
    if frame.len() <= descriptor_end {
        return;
    }
    let from = if broken { 0 } else { 4 };
    let hash = twox_hash::XxHash32::oneshot(0, &frame[from..descriptor_end]);
    frame[descriptor_end] = ((hash >> 8) & 0xff) as u8;
}

/// Writes old-format messages into a set.
pub struct LegacyWriter {
    magic: i8,
    out: Vec<u8>,
}

impl LegacyWriter {
    pub fn new(magic: i8) -> LegacyWriter {
        LegacyWriter { magic, out: Vec::new() }
    }

    /// Appends one uncompressed message (`codec` None) or wrapper (`value` the compressed set).
    pub fn push(&mut self, offset: i64, timestamp: i64, log_append_time: bool, codec: Compression, key: Option<&[u8]>, value: Option<&[u8]>) {
        let start = self.out.len();
        self.out.extend_from_slice(&offset.to_be_bytes());
        self.out.extend_from_slice(&[0; 8]); // messageSize and crc, set below
        let mut attributes = match codec {
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::None | Compression::Zstd => 0,
        };
        if self.magic >= 1 && log_append_time {
            attributes |= ATTR_LOG_APPEND_TIME;
        }
        self.out.push(self.magic as u8);
        self.out.push(attributes as u8);
        if self.magic >= 1 {
            self.out.extend_from_slice(&timestamp.to_be_bytes());
        }
        for field in [key, value] {
            match field {
                Some(b) => {
                    self.out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    self.out.extend_from_slice(b);
                }
                None => self.out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let size = (self.out.len() - start - LOG_OVERHEAD) as i32;
        self.out[start + 8..start + 12].copy_from_slice(&size.to_be_bytes());
        let crc = crc32fast::hash(&self.out[start + 16..]);
        self.out[start + 12..start + 16].copy_from_slice(&crc.to_be_bytes());
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// The bytes `push` would add for a message with these key and value lengths.
    pub fn entry_size(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
        let fixed = if self.magic >= 1 { MIN_MESSAGE_V1 } else { MIN_MESSAGE_V0 };
        LOG_OVERHEAD + fixed + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Compresses an inner message set for a wrapper of `magic`, as Kafka's clients of that era
/// read it.
pub fn compress_inner(codec: Compression, magic: i8, inner: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = super::log_validator::compress(codec, -1, inner)?;
    if codec == Compression::Lz4 && magic == 0 {
        set_lz4_header_checksum(&mut out, true);
    }
    Ok(out)
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
#[path = "legacy_format_tests.rs"]
mod tests;
