use super::*;
use crate::error_code;
use crate::log::record_batch::{validate_produce_records, verify_crc};
use crate::log::records::DEFAULT_MAX_DECOMPRESSED;
use crate::log::test_util::{encode_batch, encode_batch_with_payload, encode_records, BatchSpec};
use proptest::prelude::*;

const ALL: [Compression; 5] = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
const NOW: i64 = 1_800_000_000_000;

fn run(policy: &AppendPolicy, bytes: &[u8]) -> Result<(Vec<u8>, Vec<BatchHeader>, i64), BatchError> {
    let headers = validate_produce_records(bytes, 1 << 20)?;
    apply(policy, bytes.to_vec(), headers, NOW, DEFAULT_MAX_DECOMPRESSED)
}

/// (offset, timestamp, key, value) of every record of every batch.
fn contents(bytes: &[u8]) -> Vec<(i64, i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let decoded = BatchRecords::decode(&bytes[at..], DEFAULT_MAX_DECOMPRESSED).unwrap();
        for r in decoded.iter() {
            let r = r.unwrap();
            out.push((r.offset, r.timestamp, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)));
        }
        at += decoded.header().total_size();
    }
    out
}

fn log_append_time() -> AppendPolicy {
    AppendPolicy { log_append_time: true, ..AppendPolicy::default() }
}

fn bounded(before: i64, after: i64) -> AppendPolicy {
    AppendPolicy { before_max_ms: before, after_max_ms: after, ..AppendPolicy::default() }
}

fn to(codec: Compression) -> AppendPolicy {
    AppendPolicy { compression: TopicCompression::Codec(codec, if codec == Compression::Zstd { 3 } else { -1 }), ..AppendPolicy::default() }
}

#[test]
fn the_default_policy_leaves_batches_alone() {
    for codec in ALL {
        let bytes = encode_batch(&BatchSpec::timestamps(&[1, 2, 3]).with_compression(codec));
        let (out, headers, append_time) = run(&AppendPolicy::default(), &bytes).unwrap();
        assert_eq!((out, headers.len(), append_time), (bytes, 1, -1));
    }
}

#[test]
fn log_append_time_sets_the_type_bit_and_max_timestamp_and_keeps_the_records() {
    for codec in ALL {
        let mut set = encode_batch(&BatchSpec::timestamps(&[5, 9, 7]).with_compression(codec));
        set.extend(encode_batch(&BatchSpec::timestamps(&[11]).with_compression(codec)));
        let (out, headers, append_time) = run(&log_append_time(), &set).unwrap();
        assert_eq!(append_time, NOW);
        assert_eq!(out.len(), set.len(), "{codec:?}: stamped in place, not recompressed");
        assert_eq!(headers.len(), 2);
        let mut at = 0;
        for h in &headers {
            assert_eq!((h.timestamp_type(), h.max_timestamp), (TimestampType::LogAppendTime, NOW), "{codec:?}");
            assert_eq!(h.compression().unwrap(), codec);
            verify_crc(h, &out[at..at + h.total_size()]).unwrap();
            at += h.total_size();
        }
        assert!(contents(&out).iter().all(|(_, ts, _, _)| *ts == NOW), "readers take every record's timestamp from the batch");
        let values: Vec<_> = contents(&out).into_iter().map(|r| r.3).collect();
        let before: Vec<_> = contents(&set).into_iter().map(|r| r.3).collect();
        assert_eq!(values, before);
    }
}

#[test]
fn a_producer_may_not_claim_log_append_time() {
    let spec = BatchSpec { attributes_extra: 0x08, ..BatchSpec::timestamps(&[NOW]) };
    let e = run(&log_append_time(), &encode_batch(&spec)).unwrap_err();
    assert_eq!(e.kafka_error_code(), error_code::INVALID_TIMESTAMP);
    assert!(e.to_string().contains("Producer should not set timestamp type to LogAppendTime"), "{e}");
    // On a CreateTime topic its maxTimestamp is every record's timestamp, checked as such.
    run(&AppendPolicy::default(), &encode_batch(&spec)).unwrap();
    run(&bounded(1000, 1000), &encode_batch(&spec)).unwrap();
}

#[test]
fn timestamps_outside_the_bounds_are_refused_as_kafka_refuses_them() {
    for codec in ALL {
        let ok = encode_batch(&BatchSpec::timestamps(&[NOW - 1000, NOW + 500, -1]).with_compression(codec));
        run(&bounded(1000, 500), &ok).unwrap();
        let old = encode_batch(&BatchSpec::timestamps(&[NOW, NOW - 1001]).with_compression(codec));
        let e = run(&bounded(1000, 500), &old).unwrap_err();
        assert_eq!(e.kafka_error_code(), error_code::INVALID_TIMESTAMP, "{codec:?}");
        assert_eq!(
            e.to_string(),
            format!("Timestamp {} of message with offset 1 is out of range. The timestamp should be within [{}, {}]", NOW - 1001, NOW - 1000, NOW + 500)
        );
        assert_eq!(e.record_errors("t-0"), vec![(1, e.to_string())], "KIP-467: the record at fault, by its position");
        let future = encode_batch(&BatchSpec::timestamps(&[NOW + 501]).with_compression(codec));
        assert_eq!(run(&bounded(1000, 500), &future).unwrap_err().kafka_error_code(), error_code::INVALID_TIMESTAMP);
        // Unbounded on one side.
        run(&bounded(i64::MAX, 500), &encode_batch(&BatchSpec::timestamps(&[0]).with_compression(codec))).unwrap();
        // LogAppendTime topics do not check the producer's timestamps.
        run(&AppendPolicy { log_append_time: true, ..bounded(0, 0) }, &old).unwrap();
    }
}

#[test]
fn every_refused_record_is_reported_by_its_position_in_the_record_set() {
    let mut set = encode_batch(&BatchSpec::timestamps(&[NOW, NOW - 5000, NOW]));
    set.extend(encode_batch(&BatchSpec::timestamps(&[NOW - 6000, NOW]).with_compression(Compression::Zstd)));
    let e = run(&bounded(1000, 1000), &set).unwrap_err();
    let positions: Vec<i32> = e.record_errors("t-0").into_iter().map(|(i, _)| i).collect();
    assert_eq!(positions, vec![1, 3]);
}

#[test]
fn batches_are_recompressed_to_the_topic_codec_with_their_records_and_producer_fields() {
    for from in ALL {
        for target in ALL {
            let spec = BatchSpec::timestamps(&[10, 30, 20, 40]).with_compression(from).idempotent(7, 2, 100);
            let bytes = encode_batch(&spec);
            let (out, headers, append_time) = run(&to(target), &bytes).unwrap();
            assert_eq!(append_time, -1);
            let (h, before) = (headers[0], BatchHeader::parse(&bytes).unwrap());
            verify_crc(&h, &out).unwrap();
            assert_eq!(h.compression().unwrap(), target, "{from:?} -> {target:?}");
            if from == target {
                assert_eq!(out, bytes, "a batch already in the topic's codec is stored as sent");
            }
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence, h.records_count, h.last_offset_delta, h.base_timestamp, h.max_timestamp),
                (before.producer_id, before.producer_epoch, before.base_sequence, before.records_count, before.last_offset_delta, before.base_timestamp, before.max_timestamp)
            );
            assert_eq!(contents(&out), contents(&bytes), "{from:?} -> {target:?}");
        }
    }
}

#[test]
fn recompression_and_log_append_time_together() {
    let bytes = encode_batch(&BatchSpec::timestamps(&[1, 2]).with_compression(Compression::Gzip));
    let policy = AppendPolicy { log_append_time: true, ..to(Compression::Zstd) };
    let (out, headers, _) = run(&policy, &bytes).unwrap();
    assert_eq!((headers[0].compression().unwrap(), headers[0].timestamp_type()), (Compression::Zstd, TimestampType::LogAppendTime));
    verify_crc(&headers[0], &out).unwrap();
}

#[test]
fn a_batch_with_fewer_records_than_it_counts_is_not_recompressed() {
    let spec = BatchSpec::timestamps(&[1, 2, 3, 4]);
    let three = encode_records(&spec.records[..3], 1);
    let e = run(&to(Compression::Zstd), &encode_batch_with_payload(&spec, &three)).unwrap_err();
    assert_eq!(e.kafka_error_code(), error_code::CORRUPT_MESSAGE);
}

#[test]
fn lz4_frames_are_what_kafkas_java_reader_accepts() {
    let framed = compress(Compression::Lz4, 9, &vec![7u8; 200_000]).unwrap();
    assert_eq!(&framed[..4], &0x184D2204u32.to_le_bytes());
    let (flg, bd) = (framed[4], framed[5]);
    assert_eq!(flg >> 6, 1, "version 01");
    assert_ne!(flg & 0x20, 0, "independent blocks");
    assert_eq!(flg & 0x04, 0, "no content checksum");
    assert_eq!((bd >> 4) & 7, 4, "64 KiB blocks");
    assert_eq!(decompress(Compression::Lz4, &framed, 1 << 20).unwrap(), vec![7u8; 200_000]);
}

#[test]
fn levels_change_gzip_and_zstd_output() {
    let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_be_bytes()).collect();
    assert!(compress(Compression::Zstd, 19, &data).unwrap().len() < compress(Compression::Zstd, -5, &data).unwrap().len());
    assert!(compress(Compression::Gzip, 9, &data).unwrap().len() < compress(Compression::Gzip, 1, &data).unwrap().len());
}

proptest! {
    #[test]
    fn hostile_batches_never_panic(idx in 61usize..300, val in any::<u8>(), from in 0usize..5, target in 0usize..5) {
        let mut bytes = encode_batch(&BatchSpec::timestamps(&[1, 5, 9, 12]).with_compression(ALL[from]));
        let i = idx % bytes.len();
        bytes[i] = val;
        // Fix the CRC so the mutation reaches the records.
        let crc = crc32c::crc32c(&bytes[CRC_START..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        if let Ok(headers) = validate_produce_records(&bytes, 1 << 20) {
            let policy = AppendPolicy { log_append_time: true, before_max_ms: 10, after_max_ms: 10, compression: to(ALL[target]).compression };
            let _ = apply(&policy, bytes.clone(), headers, NOW, 1 << 20);
        }
    }
}
