//! Producer trace contexts carried in record headers: W3C `traceparent` (and `tracestate`)
//! as OpenTelemetry's Kafka instrumentation writes them, read from the first record of each
//! produced batch.
//!
//! Everything here reads untrusted bytes. Batches are decoded with `log::records` under a
//! decompression cap far below the general one (a batch too big to inspect is simply not
//! linked); header lists are walked with bounds checks and a count limit; a malformed value
//! is ignored, never an error for the produce request.
use crate::log::record_batch::BatchHeader;
use crate::log::records::BatchRecords;

use super::{Link, SpanContext};

/// Decompressed size up to which a batch is inspected for a producer context.
pub const MAX_INSPECTED_BYTES: usize = 4 << 20;
/// Headers looked at per record before giving up on finding `traceparent`.
const MAX_HEADERS: usize = 64;
/// W3C: vendors may cap tracestate at 512 characters.
const MAX_TRACESTATE: usize = 512;

/// Parses a W3C `traceparent` value: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
/// Follows the spec's rules: lowercase hex only, version `ff` and all-zero ids invalid, a
/// version-00 value has exactly 55 characters, a later version may append `-`-prefixed fields.
pub fn parse_traceparent(value: &[u8]) -> Option<SpanContext> {
    if value.len() < 55 {
        return None;
    }
    let (head, rest) = value.split_at(55);
    let version = hex_byte(&head[0..2])?;
    let well_formed = head[2] == b'-' && head[35] == b'-' && head[52] == b'-';
    let length_ok = match version {
        0xff => false,
        0x00 => rest.is_empty(),
        _ => rest.is_empty() || rest[0] == b'-',
    };
    if !well_formed || !length_ok {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = hex_byte(&head[3 + 2 * i..5 + 2 * i])?;
    }
    let mut span_id = [0u8; 8];
    for (i, b) in span_id.iter_mut().enumerate() {
        *b = hex_byte(&head[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&head[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(SpanContext { trace_id, span_id, flags })
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match two {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

/// A `tracestate` kept only if it is short printable ASCII (it is echoed to the receiver).
fn valid_tracestate(value: &[u8]) -> Option<String> {
    if value.is_empty() || value.len() > MAX_TRACESTATE || !value.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    String::from_utf8(value.to_vec()).ok()
}

/// The producer contexts of a produce partition's record set: one per batch whose first
/// record has a valid `traceparent` header, in batch order, without repeats, at most `max`.
pub fn producer_links(records: &[u8], max: usize) -> Vec<Link> {
    let mut links: Vec<Link> = Vec::new();
    let mut at = 0usize;
    while at < records.len() && links.len() < max {
        let Some(rest) = records.get(at..) else { break };
        let Ok(header) = BatchHeader::parse(rest) else { break };
        let size = header.total_size();
        let Some(batch) = rest.get(..size) else { break };
        at = at.saturating_add(size);
        let Ok(decoded) = BatchRecords::decode(batch, MAX_INSPECTED_BYTES) else { continue };
        let Some(Ok(first)) = decoded.iter().next() else { continue };
        if let Some(link) = link_in_fields(first.encoded_fields) {
            if !links.contains(&link) {
                links.push(link);
            }
        }
    }
    links
}

/// Finds `traceparent` (and `tracestate`) among a record's headers. `fields` is the record
/// from its key on: key, value, header count, headers (Kafka's v2 record layout).
fn link_in_fields(fields: &[u8]) -> Option<Link> {
    let mut r = Reader { data: fields, pos: 0 };
    r.nullable_bytes()?; // key
    r.nullable_bytes()?; // value
    let count = usize::try_from(r.varint()?).ok()?;
    let mut parent = None;
    let mut state = None;
    for _ in 0..count.min(MAX_HEADERS) {
        let key_len = usize::try_from(r.varint()?).ok()?;
        let key = r.take(key_len)?;
        let value = r.nullable_bytes()?;
        match (key, value) {
            (b"traceparent", Some(v)) if parent.is_none() => parent = Some(parse_traceparent(v)?),
            (b"tracestate", Some(v)) if state.is_none() => state = valid_tracestate(v),
            _ => {}
        }
    }
    parent.map(|context| Link { context, trace_state: state })
}

/// Bounds-checked reader of Kafka's zig-zag varints and length-prefixed bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<i32> {
        let mut raw: u64 = 0;
        for i in 0..5 {
            let byte = *self.data.get(self.pos)?;
            self.pos += 1;
            raw |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
                return i32::try_from(v).ok();
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len())?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Some(out)
    }

    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.varint()?;
        if len < 0 {
            return Some(None);
        }
        self.take(len as usize).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util;
    use crate::log::Compression;
    use proptest::prelude::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let c = parse_traceparent(VALID).expect("valid");
        assert_eq!(c.trace_id, [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36]);
        assert_eq!(c.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(c.flags, 1);
        // A future version may append fields after a dash.
        assert!(parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds").is_some());
    }

    #[test]
    fn refuses_hostile_and_malformed_values() {
        let bad: &[&[u8]] = &[
            b"",
            b"00",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            b"00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01".as_bytes(),
            b"\xff\xfe\x00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ];
        for b in bad {
            assert_eq!(parse_traceparent(b), None, "{:?} accepted", String::from_utf8_lossy(b));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_traceparent(&bytes);
            let _ = link_in_fields(&bytes);
            let _ = producer_links(&bytes, 4);
        }

        #[test]
        fn round_trips_any_nonzero_context(trace in any::<[u8; 16]>(), span in any::<[u8; 8]>(), flags in any::<u8>()) {
            prop_assume!(trace != [0; 16] && span != [0; 8]);
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let value = format!("00-{}-{}-{:02x}", hex(&trace), hex(&span), flags);
            prop_assert_eq!(parse_traceparent(value.as_bytes()), Some(SpanContext { trace_id: trace, span_id: span, flags }));
        }
    }

    /// One v2 record (key "k", value "v") with `headers`, length-prefixed.
    fn record(offset_delta: i64, headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut body = vec![0u8];
        test_util::put_varint(&mut body, 0);
        test_util::put_varint(&mut body, offset_delta);
        for field in [&b"k"[..], b"v"] {
            test_util::put_varint(&mut body, field.len() as i64);
            body.extend_from_slice(field);
        }
        test_util::put_varint(&mut body, headers.len() as i64);
        for (k, v) in headers {
            test_util::put_varint(&mut body, k.len() as i64);
            body.extend_from_slice(k);
            match v {
                Some(v) => {
                    test_util::put_varint(&mut body, v.len() as i64);
                    body.extend_from_slice(v);
                }
                None => test_util::put_varint(&mut body, -1),
            }
        }
        let mut out = Vec::new();
        test_util::put_varint(&mut out, body.len() as i64);
        out.extend(body);
        out
    }

    fn batch(base_offset: i64, codec: Compression, records: &[Vec<u8>]) -> Vec<u8> {
        let mut spec = test_util::BatchSpec::values(&vec![&b"v"[..]; records.len()]).with_compression(codec);
        spec.base_offset = base_offset;
        test_util::encode_batch_with_payload(&spec, &test_util::compress(codec, &records.concat()))
    }

    #[test]
    fn finds_the_first_records_traceparent_and_tracestate_in_each_batch() {
        let tp2 = b"00-11111111111111111111111111111111-2222222222222222-00";
        let a = batch(0, Compression::None, &[record(0, &[(b"other", Some(b"x")), (b"traceparent", Some(VALID)), (b"tracestate", Some(b"rojo=1"))])]);
        let b = batch(1, Compression::Zstd, &[record(0, &[(b"traceparent", Some(tp2))]), record(1, &[(b"traceparent", Some(VALID))])]);
        let dup = batch(3, Compression::Gzip, &[record(0, &[(b"traceparent", Some(tp2))])]);
        let none = batch(4, Compression::None, &[record(0, &[(b"traceparent", None)])]);
        let bad = batch(5, Compression::None, &[record(0, &[(b"traceparent", Some(b"00-zz"))])]);
        let all: Vec<u8> = [a, b, dup, none, bad].concat();
        let links = producer_links(&all, 8);
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].context, parse_traceparent(VALID).unwrap());
        assert_eq!(links[0].trace_state.as_deref(), Some("rojo=1"));
        assert_eq!(links[1].context.trace_id, [0x11; 16]);
        assert_eq!(links[1].trace_state, None);
        assert_eq!(producer_links(&all, 1).len(), 1);
    }

    #[test]
    fn a_batch_too_large_to_inspect_is_skipped_not_fatal() {
        let tp = b"00-11111111111111111111111111111111-2222222222222222-01";
        // attributes, timestamp delta, offset delta, null key, then a value that decompresses
        // past MAX_INSPECTED_BYTES, then no headers.
        let mut huge = Vec::new();
        let mut body = vec![0u8, 0, 0, 1];
        test_util::put_varint(&mut body, (MAX_INSPECTED_BYTES + 1) as i64);
        body.resize(body.len() + MAX_INSPECTED_BYTES + 1, 0);
        body.push(0);
        test_util::put_varint(&mut huge, body.len() as i64);
        huge.extend(body);
        let all = [batch(0, Compression::Zstd, &[huge]), batch(1, Compression::None, &[record(0, &[(b"traceparent", Some(tp))])])].concat();
        let links = producer_links(&all, 4);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].context.trace_id, [0x11; 16]);
    }

    #[test]
    fn truncated_or_lying_headers_yield_nothing() {
        let batch = batch(0, Compression::None, &[record(0, &[(b"traceparent", Some(VALID))])]);
        for cut in [0, 10, 61, 70, batch.len() - 1] {
            assert!(producer_links(&batch[..cut], 4).is_empty(), "cut at {cut}");
        }
        // A header count far beyond the bytes present.
        let mut fields = vec![2, b'k', 2, b'v'];
        fields.extend([0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(link_in_fields(&fields), None);
        // A tracestate with control characters is dropped, the traceparent kept.
        let mut fields = vec![1, 1, 4]; // null key, null value, 2 headers
        for (k, v) in [(&b"traceparent"[..], VALID), (b"tracestate", b"a=1\r\nx")] {
            fields.push((k.len() as u8) << 1);
            fields.extend_from_slice(k);
            fields.push((v.len() as u8) << 1);
            fields.extend_from_slice(v);
        }
        let link = link_in_fields(&fields).expect("traceparent found");
        assert_eq!(link.trace_state, None);
    }
}
