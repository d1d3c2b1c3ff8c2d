use super::*;
use crate::log::legacy_format::{compress_inner, messages, inner_records};
use crate::log::record_batch::{validate_produce_records, NO_TIMESTAMP};
use crate::log::records::DEFAULT_MAX_DECOMPRESSED;
use crate::log::test_util::{encode_batch, BatchSpec};

fn v2_records(batch: &[u8]) -> Vec<(i64, i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let decoded = BatchRecords::decode(batch, DEFAULT_MAX_DECOMPRESSED).unwrap();
    decoded.iter().map(|r| r.unwrap()).map(|r| (r.offset, r.timestamp, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))).collect()
}

/// (offset, timestamp, key, value) of every record of an old-format set, wrappers opened.
fn legacy_records(set: &[u8]) -> Vec<(i64, i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for m in messages(set).unwrap() {
        if m.codec == Compression::None {
            out.push((m.record.offset, m.record.timestamp, m.record.key.map(<[u8]>::to_vec), m.record.value.map(<[u8]>::to_vec)));
            continue;
        }
        let mut buf = Vec::new();
        for r in inner_records(&m, &mut buf, DEFAULT_MAX_DECOMPRESSED).unwrap() {
            out.push((r.offset, r.timestamp, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)));
        }
    }
    out
}

#[test]
fn an_uncompressed_magic_1_set_becomes_one_valid_v2_batch() {
    let mut w = LegacyWriter::new(1);
    w.push(0, 2000, false, Compression::None, Some(b"k0"), Some(b"v0"));
    w.push(1, 1500, false, Compression::None, None, Some(b"v1"));
    w.push(2, 2500, false, Compression::None, Some(b"k2"), None);
    let batch = up_convert(&w.finish(), DEFAULT_MAX_DECOMPRESSED).unwrap();
    let headers = validate_produce_records(&batch, 1 << 20).unwrap();
    assert_eq!(headers.len(), 1);
    let h = headers[0];
    assert_eq!((h.records_count, h.last_offset_delta, h.base_timestamp, h.max_timestamp, h.producer_id), (3, 2, 2000, 2500, -1));
    assert_eq!(h.compression(), Ok(Compression::None));
    assert_eq!(
        v2_records(&batch),
        vec![
            (0, 2000, Some(b"k0".to_vec()), Some(b"v0".to_vec())),
            (1, 1500, None, Some(b"v1".to_vec())),
            (2, 2500, Some(b"k2".to_vec()), None)
        ]
    );
}

#[test]
fn magic_0_records_have_no_timestamp_and_wrappers_keep_their_codec() {
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        let mut inner = LegacyWriter::new(0);
        for i in 0..4 {
            inner.push(i, 0, false, Compression::None, Some(format!("k{i}").as_bytes()), Some(b"value"));
        }
        let value = compress_inner(codec, 0, &inner.finish()).unwrap();
        let mut w = LegacyWriter::new(0);
        w.push(3, 0, false, codec, None, Some(&value));
        let batch = up_convert(&w.finish(), DEFAULT_MAX_DECOMPRESSED).unwrap();
        let h = validate_produce_records(&batch, 1 << 20).unwrap()[0];
        assert_eq!(h.compression(), Ok(codec));
        assert_eq!((h.records_count, h.max_timestamp), (4, NO_TIMESTAMP));
        let got = v2_records(&batch);
        assert_eq!(got.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), vec![(0, -1), (1, -1), (2, -1), (3, -1)], "{codec:?}");
        assert_eq!(got[3].2.as_deref(), Some(&b"k3"[..]));
    }
}

#[test]
fn a_producer_claiming_log_append_time_keeps_the_bit_for_the_validator_to_refuse() {
    let mut w = LegacyWriter::new(1);
    w.push(0, 99, true, Compression::None, None, Some(b"v"));
    let batch = up_convert(&w.finish(), DEFAULT_MAX_DECOMPRESSED).unwrap();
    let h = validate_produce_records(&batch, 1 << 20).unwrap()[0];
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
}

/// What an old consumer reading from `from` to the end gets over as many fetches as it takes
/// (each down-converted set is at most the size of the batches read, as with Kafka).
fn down_convert_all(stored: &[u8], magic: i8, mut from: i64) -> (Vec<u8>, u64) {
    let (mut all, mut total) = (Vec::new(), 0);
    loop {
        let mut at = 0;
        while at < stored.len() {
            let h = BatchHeader::parse(&stored[at..]).unwrap();
            if h.last_offset() >= from {
                break;
            }
            at += h.total_size();
        }
        if at >= stored.len() {
            return (all, total);
        }
        let (set, n) = down_convert(&stored[at..], magic, from, DEFAULT_MAX_DECOMPRESSED).unwrap();
        assert!(n > 0, "every fetch makes progress");
        from = legacy_records(&set).last().unwrap().0 + 1;
        all.extend(set);
        total += n;
    }
}

#[test]
fn down_conversion_gives_old_consumers_every_record_at_its_offset() {
    for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        for magic in [0i8, 1] {
            let mut a = BatchSpec::timestamps(&[10, 30, 20]).with_compression(codec);
            a.base_offset = 100;
            let mut b = BatchSpec::timestamps(&[40, 50]).with_compression(codec);
            b.base_offset = 103;
            let mut stored = encode_batch(&a);
            stored.extend(encode_batch(&b));
            let (set, n) = down_convert_all(&stored, magic, 100);
            assert_eq!(n, 5);
            let got = legacy_records(&set);
            let ts = |t: i64| if magic == 0 { NO_TIMESTAMP } else { t };
            assert_eq!(
                got.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
                vec![(100, ts(10)), (101, ts(30)), (102, ts(20)), (103, ts(40)), (104, ts(50))],
                "{codec:?} magic {magic}"
            );
            assert_eq!(got[4].3.as_deref(), Some(&b"v1"[..]));
            let wrappers = messages(&set).unwrap();
            assert_eq!(wrappers.len(), if codec == Compression::None { 5 } else { 2 }, "one wrapper per stored batch");
        }
    }
}

#[test]
fn uncompressed_records_before_the_fetch_offset_are_left_out_and_control_batches_dropped() {
    let mut a = BatchSpec::timestamps(&[1, 2, 3, 4]);
    a.base_offset = 10;
    let mut control = BatchSpec::values(&[b"marker"]);
    control.base_offset = 14;
    control.attributes_extra = 0x20 | 0x10;
    control.producer_id = 7;
    control.producer_epoch = 0;
    let mut stored = encode_batch(&a);
    stored.extend(encode_batch(&control));
    let (set, n) = down_convert(&stored, 1, 12, DEFAULT_MAX_DECOMPRESSED).unwrap();
    assert_eq!(n, 2);
    assert_eq!(legacy_records(&set).iter().map(|r| r.0).collect::<Vec<_>>(), vec![12, 13]);
}

#[test]
fn a_compacted_batch_with_gaps_keeps_each_record_at_its_offset() {
    // Records at offsets 200, 203 and 205 of a batch whose last offset delta is 7.
    let mut spec = BatchSpec::timestamps(&[5, 6, 7]).with_compression(Compression::Gzip);
    spec.base_offset = 200;
    spec.last_offset_delta = Some(7);
    let raw = {
        use crate::log::test_util::put_varint;
        let mut out = Vec::new();
        for (i, delta) in [0i64, 3, 5].iter().enumerate() {
            let mut body = vec![0u8];
            put_varint(&mut body, i as i64);
            put_varint(&mut body, *delta);
            put_varint(&mut body, 1);
            body.push(b'k');
            put_varint(&mut body, 1);
            body.push(b'a' + i as u8);
            put_varint(&mut body, 0);
            put_varint(&mut out, body.len() as i64);
            out.extend(body);
        }
        out
    };
    let stored = crate::log::test_util::encode_batch_with_payload(&spec, &crate::log::test_util::compress(Compression::Gzip, &raw));
    let (set, _) = down_convert(&stored, 1, 200, DEFAULT_MAX_DECOMPRESSED).unwrap();
    assert_eq!(legacy_records(&set).iter().map(|r| r.0).collect::<Vec<_>>(), vec![200, 203, 205]);
}

#[test]
fn up_then_down_conversion_is_lossless_for_what_old_formats_carry() {
    let mut inner = LegacyWriter::new(1);
    for i in 0..50 {
        inner.push(i, 1_000 + i, false, Compression::None, Some(format!("key-{i}").as_bytes()), Some(format!("value-{i}").as_bytes()));
    }
    let value = compress_inner(Compression::Snappy, 1, &inner.finish()).unwrap();
    let mut w = LegacyWriter::new(1);
    w.push(49, 1_049, false, Compression::Snappy, None, Some(&value));
    let produced = w.finish();
    let mut batch = up_convert(&produced, DEFAULT_MAX_DECOMPRESSED).unwrap();
    crate::log::record_batch::stamp_batch(&mut batch, 500, 3);
    let (fetched, _) = down_convert(&batch, 1, 500, DEFAULT_MAX_DECOMPRESSED).unwrap();
    let want: Vec<_> = legacy_records(&produced).into_iter().map(|(o, t, k, v)| (o + 500, t, k, v)).collect();
    assert_eq!(legacy_records(&fetched), want);
}

#[test]
fn fetch_versions_map_to_kafkas_magic() {
    assert_eq!((fetch_magic(0), fetch_magic(1), fetch_magic(2), fetch_magic(3), fetch_magic(4)), (Some(0), Some(0), Some(1), Some(1), None));
}

/// A message set of `wrappers` gzip wrappers, each holding one record of `value_len` zero bytes
/// (a few hundred bytes compressed each).
fn gzip_bombs(wrappers: i64, value_len: usize) -> Vec<u8> {
    let value = vec![0u8; value_len];
    let mut w = LegacyWriter::new(1);
    for i in 0..wrappers {
        let mut inner = LegacyWriter::new(1);
        inner.push(0, 1, false, Compression::None, None, Some(&value));
        let compressed = compress_inner(Compression::Gzip, 1, &inner.finish()).unwrap();
        w.push(i, 1, false, Compression::Gzip, None, Some(&compressed));
    }
    w.finish()
}

#[test]
fn the_decompression_cap_bounds_the_whole_set_not_each_wrapper() {
    // Each wrapper stays under the cap, but together they would make the converted batch (and
    // the memory behind it) grow with every wrapper a hostile producer adds.
    let set = gzip_bombs(8, 300 << 10);
    assert!(set.len() < 64 << 10, "the request is small: {} bytes", set.len());
    let err = up_convert(&set, 1 << 20).expect_err("8 x 300 KiB decompressed is over a 1 MiB cap");
    assert_eq!(err.kafka_error_code(), crate::error_code::MESSAGE_TOO_LARGE, "{err}");
    // Under the cap, the same kind of set converts.
    assert!(up_convert(&gzip_bombs(3, 300 << 10), 1 << 20).is_ok());
}

#[test]
fn a_down_converted_set_is_no_larger_than_what_was_read_but_holds_at_least_one_message() {
    // Small records grow by ~30 bytes each as magic 1 messages: a fetch sized by the stored v2
    // bytes would exceed the consumer's limits (Kafka's LazyDownConversionRecords sends at most
    // the unconverted size, and the first message whole).
    let values: Vec<&[u8]> = vec![b"v"; 400];
    let mut spec = BatchSpec::values(&values);
    spec.base_offset = 1000;
    let stored = encode_batch(&spec);
    for magic in [0i8, 1] {
        let (set, n) = down_convert(&stored, magic, 1000, DEFAULT_MAX_DECOMPRESSED).unwrap();
        assert!(set.len() <= stored.len(), "magic {magic}: {} converted bytes for {} read", set.len(), stored.len());
        let offsets: Vec<i64> = legacy_records(&set).iter().map(|r| r.0).collect();
        assert_eq!(offsets.len() as u64, n, "magic {magic}: the count is of what was sent");
        assert!(n > 0 && n < 400, "magic {magic}: {n}");
        assert_eq!(offsets, (1000..1000 + n as i64).collect::<Vec<_>>(), "magic {magic}: a prefix, in order");
    }
}

#[test]
fn only_uncompressed_batches_count_as_cheap_to_convert() {
    let plain = encode_batch(&BatchSpec::values(&[b"a", b"b"]));
    let gzip = encode_batch(&BatchSpec::values(&[b"a", b"b"]).with_compression(Compression::Gzip));
    assert!(is_uncompressed(&plain));
    assert!(!is_uncompressed(&gzip));
    let mut both = plain.clone();
    both.extend(&gzip);
    assert!(!is_uncompressed(&both), "a compressed batch after an uncompressed one");
    assert!(!is_uncompressed(&plain[..20]), "unreadable bytes are not assumed cheap");
}

#[test]
fn down_conversion_stops_before_a_wrapper_that_would_pass_the_read_size() {
    // Many small gzip batches of incompressible-ish records: each wrapper is about as large as
    // its stored batch plus the wrapper overhead, so the whole read cannot fit converted.
    let mut stored = Vec::new();
    for i in 0..20i64 {
        let values: Vec<Vec<u8>> = (0..3).map(|j| format!("{i}-{j}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let mut spec = BatchSpec::values(&refs).with_compression(Compression::Gzip);
        spec.base_offset = i * 3;
        stored.extend(encode_batch(&spec));
    }
    let (set, n) = down_convert(&stored, 0, 0, DEFAULT_MAX_DECOMPRESSED).unwrap();
    assert!(set.len() <= stored.len(), "{} converted bytes for {} read", set.len(), stored.len());
    let offsets: Vec<i64> = legacy_records(&set).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..n as i64).collect::<Vec<_>>());
    assert_eq!(n % 3, 0, "whole wrappers only");
}
