use super::*;
use crate::log::records::DEFAULT_MAX_DECOMPRESSED;
use proptest::prelude::*;

/// A magic 0 message written byte by byte from the format table (not by LegacyWriter).
fn hand_written_v0(offset: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut msg = vec![0u8, 0u8]; // magic, attributes
    msg.extend_from_slice(&(key.len() as i32).to_be_bytes());
    msg.extend_from_slice(key);
    msg.extend_from_slice(&(value.len() as i32).to_be_bytes());
    msg.extend_from_slice(value);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&msg);
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&((msg.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

#[test]
fn reads_a_hand_written_magic_0_message_and_writes_the_same_bytes() {
    let bytes = hand_written_v0(7, b"key", b"value");
    let m = messages(&bytes).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].record, LegacyRecord { offset: 7, magic: 0, timestamp: NO_TIMESTAMP, log_append_time: false, key: Some(b"key"), value: Some(b"value") });
    let mut w = LegacyWriter::new(0);
    w.push(7, 12345, false, Compression::None, Some(b"key"), Some(b"value"));
    assert_eq!(w.finish(), bytes, "magic 0 has no timestamp: the writer must not write one");
}

#[test]
fn magic_1_keeps_timestamps_nulls_and_the_log_append_time_bit() {
    let mut w = LegacyWriter::new(1);
    w.push(0, 1_700_000_000_000, false, Compression::None, None, Some(b"a"));
    w.push(1, 1_700_000_000_001, true, Compression::None, Some(b"k"), None);
    let bytes = w.finish();
    let m = messages(&bytes).unwrap();
    assert_eq!(m[0].record.timestamp, 1_700_000_000_000);
    assert_eq!((m[0].record.key, m[0].record.value), (None, Some(&b"a"[..])));
    assert!(!m[0].record.log_append_time && m[1].record.log_append_time);
    assert_eq!((m[1].record.key, m[1].record.value), (Some(&b"k"[..]), None));
}

#[test]
fn a_flipped_bit_is_a_crc_mismatch() {
    let mut bytes = hand_written_v0(0, b"k", b"value");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let e = messages(&bytes).unwrap_err();
    assert!(matches!(e, LegacyFormatError::CrcMismatch { at: 0, .. }), "{e}");
    assert_eq!(e.kafka_error_code(), error_code::CORRUPT_MESSAGE);
}

#[test]
fn a_trailing_partial_message_is_ignored_but_nothing_complete_is_refused() {
    let mut bytes = hand_written_v0(0, b"k", b"v");
    let second = hand_written_v0(1, b"k", b"v");
    bytes.extend_from_slice(&second[..second.len() - 3]);
    assert_eq!(messages(&bytes).unwrap().len(), 1);
    assert_eq!(messages(&second[..second.len() - 3]).unwrap_err(), LegacyFormatError::Empty);
}

#[test]
fn hostile_lengths_are_refused_without_allocating() {
    let mut bytes = hand_written_v0(0, b"k", b"v");
    bytes[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(messages(&bytes), Err(LegacyFormatError::Malformed { .. })));
    // A key length far past the end, CRC fixed up so the length itself is what is checked.
    let mut bytes = hand_written_v0(0, b"k", b"v");
    bytes[18..22].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(messages(&bytes), Err(LegacyFormatError::Malformed { what: "key length past the message end", .. })));
}

fn wrapper(magic: i8, codec: Compression, base: i64, values: &[&[u8]]) -> Vec<u8> {
    let mut inner = LegacyWriter::new(magic);
    for (i, v) in values.iter().enumerate() {
        let offset = if magic == 0 { base + i as i64 } else { i as i64 };
        inner.push(offset, 1000 + i as i64, false, Compression::None, None, Some(v));
    }
    let value = compress_inner(codec, magic, &inner.finish()).unwrap();
    let mut w = LegacyWriter::new(magic);
    w.push(base + values.len() as i64 - 1, 1000 + values.len() as i64 - 1, false, codec, None, Some(&value));
    w.finish()
}

#[test]
fn wrappers_of_every_old_codec_give_their_records_absolute_offsets() {
    for magic in [0, 1] {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
            let set = wrapper(magic, codec, 40, &[b"a", b"b", b"c"]);
            let m = messages(&set).unwrap();
            assert_eq!((m.len(), m[0].codec, m[0].record.offset), (1, codec, 42));
            let mut buf = Vec::new();
            let inner = inner_records(&m[0], &mut buf, DEFAULT_MAX_DECOMPRESSED).unwrap();
            let got: Vec<(i64, &[u8])> = inner.iter().map(|r| (r.offset, r.value.unwrap())).collect();
            assert_eq!(got, vec![(40, &b"a"[..]), (41, &b"b"[..]), (42, &b"c"[..])], "magic {magic} {codec:?}");
        }
    }
}

#[test]
fn magic_0_lz4_uses_the_broken_header_checksum_both_ways() {
    let inner = {
        let mut w = LegacyWriter::new(0);
        w.push(0, 0, false, Compression::None, None, Some(b"x"));
        w.finish()
    };
    let framed = compress_inner(Compression::Lz4, 0, &inner).unwrap();
    // A standard LZ4 reader refuses Kafka 0.8's frame...
    assert!(decompress(Compression::Lz4, &framed, 1 << 20).is_err());
    // ...and this module reads it.
    assert_eq!(decompress_legacy(Compression::Lz4, 0, &framed, 1 << 20).unwrap(), inner);
    // Magic 1 frames are standard.
    let standard = compress_inner(Compression::Lz4, 1, &inner).unwrap();
    assert_eq!(decompress(Compression::Lz4, &standard, 1 << 20).unwrap(), inner);
}

#[test]
fn a_log_append_time_wrapper_gives_its_timestamp_to_every_inner_record() {
    let mut inner = LegacyWriter::new(1);
    inner.push(0, 5, false, Compression::None, None, Some(b"a"));
    inner.push(1, 6, false, Compression::None, None, Some(b"b"));
    let value = compress_inner(Compression::Gzip, 1, &inner.finish()).unwrap();
    let mut w = LegacyWriter::new(1);
    w.push(9, 777, true, Compression::Gzip, None, Some(&value));
    let set = w.finish();
    let m = messages(&set).unwrap();
    let mut buf = Vec::new();
    let records = inner_records(&m[0], &mut buf, 1 << 20).unwrap();
    assert!(records.iter().all(|r| r.timestamp == 777 && r.log_append_time));
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![8, 9]);
}

#[test]
fn nested_compression_and_mixed_magic_wrappers_are_refused() {
    let nested = wrapper(1, Compression::Gzip, 0, &[b"a"]);
    let value = compress_inner(Compression::Gzip, 1, &nested).unwrap();
    let mut w = LegacyWriter::new(1);
    w.push(0, 0, false, Compression::Gzip, None, Some(&value));
    let set = w.finish();
    let m = messages(&set).unwrap();
    let e = inner_records(&m[0], &mut Vec::new(), 1 << 20).unwrap_err();
    assert!(matches!(e, LegacyFormatError::InvalidWrapper { what: "a compressed message", .. }), "{e}");
    assert_eq!(e.kafka_error_code(), error_code::INVALID_RECORD);

    let mut inner = LegacyWriter::new(0);
    inner.push(0, 0, false, Compression::None, None, Some(b"a"));
    let value = compress_inner(Compression::Gzip, 1, &inner.finish()).unwrap();
    let mut w = LegacyWriter::new(1);
    w.push(0, 0, false, Compression::Gzip, None, Some(&value));
    let set = w.finish();
    let m = messages(&set).unwrap();
    assert!(matches!(inner_records(&m[0], &mut Vec::new(), 1 << 20), Err(LegacyFormatError::InvalidWrapper { what: "a message of another magic", .. })));
}

#[test]
fn zstd_and_unknown_codecs_are_refused_as_kafka_does() {
    let mut bytes = hand_written_v0(0, b"k", b"v");
    bytes[17] = 4; // attributes: zstd
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_be_bytes());
    let e = messages(&bytes).unwrap_err();
    assert_eq!(e.kafka_error_code(), error_code::UNSUPPORTED_COMPRESSION_TYPE, "{e}");
}

#[test]
fn a_decompression_bomb_is_capped() {
    let big = vec![b'x'; 1 << 20];
    let set = wrapper(1, Compression::Gzip, 0, &[&big]);
    let m = messages(&set).unwrap();
    let e = inner_records(&m[0], &mut Vec::new(), 64 * 1024).unwrap_err();
    assert_eq!(e, LegacyFormatError::DecompressedTooLarge { max: 64 * 1024 });
    assert_eq!(e.kafka_error_code(), error_code::MESSAGE_TOO_LARGE);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = messages(&bytes) {
            for w in m.iter().filter(|w| w.codec != Compression::None) {
                let _ = inner_records(w, &mut Vec::new(), 1 << 16);
            }
        }
    }

    #[test]
    fn written_messages_read_back(values in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)), 1..20), magic in 0i8..2) {
        let mut w = LegacyWriter::new(magic);
        for (i, (null, v)) in values.iter().enumerate() {
            w.push(i as i64, 100 + i as i64, false, Compression::None, None, if *null { None } else { Some(v) });
        }
        let set = w.finish();
        let m = messages(&set).unwrap();
        prop_assert_eq!(m.len(), values.len());
        for (i, (msg, (null, v))) in m.iter().zip(&values).enumerate() {
            prop_assert_eq!(msg.record.offset, i as i64);
            prop_assert_eq!(msg.record.value, if *null { None } else { Some(&v[..]) });
            prop_assert_eq!(msg.record.timestamp, if magic == 0 { NO_TIMESTAMP } else { 100 + i as i64 });
        }
    }
}
