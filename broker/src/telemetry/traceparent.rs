//! Producer trace contexts carried in record headers: W3C `traceparent` (and `tracestate`)
//! as OpenTelemetry's Kafka instrumentation writes them, read from the first record of each
//! produced batch and extracted by the SDK's `TraceContextPropagator`.
//!
//! Everything here reads untrusted bytes. Batches are decoded with `log::records` under a
//! decompression cap far below the general one (a batch too big to inspect is simply not
//! linked); header lists are walked with bounds checks and a count limit; only short
//! printable-ASCII values reach the propagator; a malformed value is ignored, never an error
//! for the produce request.
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Link, SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::log::record_batch::BatchHeader;
use crate::log::records::BatchRecords;

/// Decompressed size up to which a batch is inspected for a producer context.
pub const MAX_INSPECTED_BYTES: usize = 4 << 20;
/// Headers looked at per record before giving up on finding `traceparent`.
const MAX_HEADERS: usize = 64;
/// W3C: vendors may cap tracestate at 512 characters; no valid traceparent is longer.
const MAX_VALUE: usize = 512;

/// The two headers the propagator reads, as found in one record.
#[derive(Default)]
struct RecordHeaders<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for RecordHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = Vec::with_capacity(2);
        keys.extend(self.traceparent.map(|_| "traceparent"));
        keys.extend(self.tracestate.map(|_| "tracestate"));
        keys
    }
}

/// A header value the propagator may see: short printable ASCII.
fn printable(value: &[u8]) -> Option<&str> {
    if value.is_empty() || value.len() > MAX_VALUE || !value.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// W3C's layout of a `traceparent`: `vv-<32>-<16>-ff` in lowercase hex, a version-00 value
/// exactly 55 characters, a later one possibly followed by `-`-prefixed fields. The SDK's
/// propagator checks the rest (version `ff`, all-zero ids) but takes fields of any length
/// and a leading `+` (it parses with `from_str_radix`), so the layout is checked first.
fn w3c_layout(value: &[u8]) -> bool {
    let hex = |b: &[u8]| b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    value.len() >= 55
        && (value.len() == 55 || (value[..2] != *b"00" && value[55] == b'-'))
        && value[2] == b'-'
        && value[35] == b'-'
        && value[52] == b'-'
        && [&value[..2], &value[3..35], &value[36..52], &value[53..55]].into_iter().all(hex)
}

/// The producer's span context from a `traceparent` (and optional `tracestate`) value, as the
/// SDK's W3C propagator reads it; `None` for an invalid one.
pub fn extract(traceparent: &[u8], tracestate: Option<&[u8]>) -> Option<SpanContext> {
    if !w3c_layout(traceparent) {
        return None;
    }
    let headers = RecordHeaders { traceparent: Some(printable(traceparent)?), tracestate: tracestate.and_then(printable) };
    let cx = TraceContextPropagator::new().extract(&headers);
    let span_context = cx.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
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
            if !links.iter().any(|l| l.span_context == link.span_context) {
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
            (b"traceparent", Some(v)) if parent.is_none() => parent = Some(v),
            (b"tracestate", Some(v)) if state.is_none() => state = Some(v),
            _ => {}
        }
    }
    extract(parent?, state).map(Link::with_context)
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

    fn parse_traceparent(v: &[u8]) -> Option<SpanContext> {
        extract(v, None)
    }

    #[test]
    fn parses_the_spec_example() {
        let c = extract(VALID, Some(b"rojo=00f067aa0ba902b7")).expect("valid");
        assert_eq!(c.trace_id().to_bytes(), [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36]);
        assert_eq!(c.span_id().to_bytes(), [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert!(c.is_sampled() && c.is_remote());
        assert_eq!(c.trace_state().header(), "rojo=00f067aa0ba902b7");
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
            let c = parse_traceparent(value.as_bytes()).expect("valid");
            prop_assert_eq!((c.trace_id().to_bytes(), c.span_id().to_bytes(), c.is_sampled()), (trace, span, flags & 1 == 1));
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
        assert_eq!(links[0].span_context, extract(VALID, Some(b"rojo=1")).unwrap());
        assert_eq!(links[0].span_context.trace_state().header(), "rojo=1");
        assert_eq!(links[1].span_context.trace_id().to_bytes(), [0x11; 16]);
        assert_eq!(links[1].span_context.trace_state().header(), "");
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
        assert_eq!(links[0].span_context.trace_id().to_bytes(), [0x11; 16]);
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
        assert_eq!(link.span_context.trace_state().header(), "");
    }
}
