//! Tests of `Segment`: append, scans, recovery, sealing, deletion.

use super::*;
use crate::log::record_batch::stamp_batch;
use crate::log::test_util::{encode_batch, BatchSpec};

/// Appends `n` batches of two records each, offsets assigned from the segment's end.
fn fill(seg: &mut Segment, n: usize) {
    for i in 0..n {
        let mut b = encode_batch(&BatchSpec::timestamps(&[10 * i as i64, 10 * i as i64 + 5]));
        stamp_batch(&mut b, seg.next_offset(), 0);
        seg.append(&b).unwrap();
    }
}

#[test]
fn append_scan_and_find() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = Segment::create(dir.path(), 50, 200, 0).unwrap();
    assert!(dir.path().join("00000000000000000050.log").exists());
    fill(&mut seg, 20);
    assert_eq!(seg.next_offset(), 90);
    assert_eq!(seg.max_timestamp(), 195);
    assert!(!seg.index().offset_entries().is_empty());
    let headers: Vec<_> = seg.headers_from(0).map(|h| h.unwrap().1.base_offset).collect();
    assert_eq!(headers, (50..90).step_by(2).collect::<Vec<_>>());
    let (pos, h) = seg.find_batch(77).unwrap().unwrap();
    assert_eq!(h.base_offset, 76);
    let mut buf = vec![0u8; h.total_size()];
    seg.read_exact_at(pos, &mut buf).unwrap();
    assert_eq!(BatchHeader::parse(&buf).unwrap(), h);
    assert!(seg.find_batch(90).unwrap().is_none());
}

#[test]
fn rejects_offsets_going_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = Segment::create(dir.path(), 0, 4096, 0).unwrap();
    fill(&mut seg, 1);
    let b = encode_batch(&BatchSpec::values(&[b"x"]));
    assert!(matches!(seg.append(&b), Err(LogError::InvalidAppend { .. })));
    assert_eq!(
        seg.size() as usize,
        seg.headers_from(0).next().unwrap().unwrap().1.total_size()
    );
}

#[test]
fn recover_truncates_garbage_and_torn_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = Segment::create(dir.path(), 0, 100, 0).unwrap();
    fill(&mut seg, 5);
    let good = seg.size();
    let path = seg.path().to_path_buf();
    drop(seg);

    // Garbage after the last batch.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 100]).unwrap();
    let (mut seg, needs) = Segment::open(dir.path(), 0, 100, 0).unwrap();
    assert!(needs, "no index files yet");
    let report = seg.recover(0).unwrap();
    assert_eq!(
        (report.valid_bytes, report.truncated_bytes, report.batches),
        (good, 100, 5)
    );
    assert_eq!(seg.next_offset(), 10);
    assert_eq!(fs::metadata(&path).unwrap().len(), good);

    // A torn last batch: cut the file in the middle of batch 5.
    let mut b = encode_batch(&BatchSpec::values(&[b"torn", b"batch"]));
    stamp_batch(&mut b, 10, 0);
    seg.append(&b).unwrap();
    seg.data.file.set_len(good + 30).unwrap();
    let report = seg.recover(0).unwrap();
    assert_eq!(report.truncated_bytes, 30);
    assert_eq!(seg.next_offset(), 10);

    // A flipped byte in batch 3 cuts there (CRC).
    let pos3 = seg.headers_from(0).nth(3).unwrap().unwrap().0;
    seg.data.file.write_all_at(&[0xFF], pos3 + 70).unwrap();
    let report = seg.recover(0).unwrap();
    assert_eq!(report.batches, 3);
    assert!(report.reason.unwrap().contains("CRC"));
    assert_eq!(seg.next_offset(), 6);
}

#[test]
fn sealed_segment_reopens_from_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = Segment::create(dir.path(), 0, 150, 0).unwrap();
    fill(&mut seg, 12);
    seg.seal().unwrap();
    let entries = seg.index().offset_entries().to_vec();
    let (next, size, max_ts) = (seg.next_offset(), seg.size(), seg.max_timestamp());
    drop(seg);
    let (seg, needs) = Segment::open(dir.path(), 0, 150, 1_000).unwrap();
    assert!(!needs);
    assert_eq!(
        (seg.next_offset(), seg.size(), seg.max_timestamp()),
        (next, size, max_ts)
    );
    assert_eq!(seg.index().offset_entries(), &entries[..]);
    assert_eq!(seg.rolling_base_ms(), 5, "first batch's max timestamp");

    // An index that disagrees with the log (log cut short) forces recovery.
    seg.data.file.set_len(size - 10).unwrap();
    drop(seg);
    let (_, needs) = Segment::open(dir.path(), 0, 150, 0).unwrap();
    assert!(needs);
}

proptest::proptest! {
    #[test]
    fn recovery_of_random_files_never_panics_and_leaves_a_scannable_log(
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        cut in 0usize..400,
        keep_valid in proptest::prelude::any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 64, 0).unwrap();
        if keep_valid {
            fill(&mut seg, 3);
        }
        let valid = seg.size();
        seg.data.file.write_all_at(&garbage, valid).unwrap();
        seg.data.file.set_len(valid + (cut.min(garbage.len())) as u64).unwrap();
        drop(seg);
        let (mut seg, _) = Segment::open(dir.path(), 0, 64, 0).unwrap();
        let report = seg.recover(0).unwrap();
        proptest::prop_assert!(report.valid_bytes >= valid);
        for item in seg.headers_from(0) {
            proptest::prop_assert!(item.is_ok());
        }
        let _ = seg.find_batch(2);
    }
}

#[test]
fn delete_removes_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = Segment::create(dir.path(), 7, 4096, 0).unwrap();
    fill(&mut seg, 2);
    seg.seal().unwrap();
    seg.delete().unwrap();
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}
