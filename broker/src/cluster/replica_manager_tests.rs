//! ReplicaManager tests: applying images to real logs in a temporary directory, and start-up
//! over what changes applied part-way leave on disk.
use super::*;
use crate::controller::{PartitionImage, TopicImage};
use crate::log::test_util::{encode_batch, BatchSpec};

fn config(dir: &std::path::Path) -> BrokerConfig {
    let raw = [("log.dirs".to_string(), (dir.display().to_string(), crate::config::Origin::Flag))].into_iter().collect();
    BrokerConfig::from_properties(raw).unwrap()
}

fn image(leader: i32, leader_epoch: i32) -> MetadataImage {
    let id = uuid::Uuid::from_u128(7);
    let mut img = MetadataImage::default();
    let p = PartitionImage { leader, leader_epoch, replicas: vec![1], isr: vec![1], partition_epoch: leader_epoch, ..Default::default() };
    img.topic_names.insert(id, "t".into());
    img.topics.insert("t".into(), TopicImage { name: "t".into(), id, partitions: vec![p], configs: Default::default() });
    img
}

/// A produce that picked up the partition before a leadership change must not leave the
/// high watermark behind: the change is applied in place, not by a new partition object.
#[tokio::test]
async fn leadership_changes_in_place_so_in_flight_appends_advance_the_same_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    assert!(rm.apply_image(&image(1, 0), &cfg).is_empty());
    let held = rm.partition("t", 0).unwrap();
    assert!(held.is_leader());
    assert!(rm.apply_image(&image(-1, 1), &cfg).is_empty());
    assert!(!held.is_leader(), "a holder sees the leader go away");
    assert!(rm.apply_image(&image(1, 2), &cfg).is_empty());
    let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"a", b"b"])));
    held.append(&batch, 0).await.unwrap();
    let now = rm.partition("t", 0).unwrap();
    assert_eq!((now.leader_epoch(), now.high_watermark()), (2, 2));
}


/// A restarted broker resumes each high watermark from the checkpoint (at most the log
/// end), not from the log end: records past it were never known to be committed.
#[tokio::test]
async fn high_watermarks_resume_from_the_checkpoint_not_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        assert!(rm.apply_image(&image(1, 0), &cfg).is_empty());
        let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"a", b"b", b"c"])));
        rm.partition("t", 0).unwrap().append(&batch, 0).await.unwrap();
        rm.close_all();
    }
    super::super::hw_checkpoint::write(dir.path(), &[("t".into(), 0, 1)]).unwrap();
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    let p = rm.partition("t", 0).unwrap();
    assert_eq!((p.log_end_offset(), p.high_watermark()), (3, 1));
    // A checkpoint past the log end (a truncated log) is capped at it.
    drop(rm);
    super::super::hw_checkpoint::write(dir.path(), &[("t".into(), 0, 99)]).unwrap();
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    assert_eq!(rm.partition("t", 0).unwrap().high_watermark(), 3);
    // What the broker writes back is what it has.
    rm.checkpoint_high_watermarks(&cfg.log_dirs);
    assert_eq!(super::super::hw_checkpoint::read(dir.path()).unwrap()[&("t".to_string(), 0)], 3);
}

/// Two applies race (a handler's and the metadata follower's): the older image, applied
/// last, must not delete the log of a topic the newer one created.
#[tokio::test]
async fn an_older_image_applied_late_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    let mut newer = image(1, 0);
    newer.last_offset = 10;
    assert!(rm.apply_image(&newer, &cfg).is_empty());
    let older = MetadataImage { last_offset: 5, ..Default::default() };
    assert!(rm.apply_image(&older, &cfg).is_empty());
    assert!(rm.partition("t", 0).is_some());
}

/// A log left from a deleted topic (forgotten at start-up) does not block a new topic of
/// the same name, and none of its records are served under the new topic.
#[tokio::test]
async fn a_leftover_log_of_a_deleted_topic_does_not_block_or_leak_into_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        assert!(rm.apply_image(&image(1, 0), &cfg).is_empty());
        let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"old"])));
        rm.partition("t", 0).unwrap().append(&batch, 0).await.unwrap();
        rm.close_all();
    }
    let (rm, loaded) = ReplicaManager::open(&cfg).unwrap();
    assert_eq!(loaded.len(), 1);
    rm.forget("t", 0); // start-up: no topic t in the metadata
    let mut recreated = image(1, 0);
    let id = uuid::Uuid::from_u128(8);
    let t = recreated.topics.get_mut("t").unwrap();
    t.id = id;
    recreated.topic_names = [(id, "t".to_string())].into();
    assert!(rm.apply_image(&recreated, &cfg).is_empty());
    let p = rm.partition("t", 0).unwrap();
    assert_eq!((p.topic_id, p.log().lock().log_end_offset()), (id, 0));
}

/// The topic was deleted and re-created under the same name (new id, this broker again a
/// replica) while this broker was down: at restart the image has a topic `t`, but not the
/// one its log belongs to. The log's partition.metadata says so; the old records go.
#[tokio::test]
async fn a_log_of_a_topic_recreated_while_the_broker_was_down_is_not_served_as_the_new_topic() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        assert!(rm.apply_image(&image(1, 0), &cfg).is_empty());
        let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"old", b"older"])));
        rm.partition("t", 0).unwrap().append(&batch, 0).await.unwrap();
        rm.close_all();
    }
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    assert_eq!(rm.partition("t", 0).unwrap().topic_id, uuid::Uuid::from_u128(7), "the id comes from partition.metadata");
    let mut recreated = image(1, 0);
    let id = uuid::Uuid::from_u128(8);
    recreated.topics.get_mut("t").unwrap().id = id;
    recreated.topic_names = [(id, "t".to_string())].into();
    assert!(rm.apply_image(&recreated, &cfg).is_empty());
    let p = rm.partition("t", 0).unwrap();
    assert_eq!((p.topic_id, p.log().lock().log_end_offset()), (id, 0));
    let dir = p.log().lock().dir().to_path_buf();
    assert_eq!(partition_metadata::read(&dir).unwrap(), Some(id));

    // And the same log kept across a restart under the same topic keeps its records.
    let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"new"])));
    p.append(&batch, 0).await.unwrap();
    rm.close_all();
    drop((p, rm));
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    assert!(rm.apply_image(&recreated, &cfg).is_empty());
    let p = rm.partition("t", 0).unwrap();
    assert_eq!(p.log().lock().log_end_offset(), 1);
    assert!(p.is_leader(), "a log loaded at start-up leads when the image says this broker leads");
}

fn topic(img: &mut MetadataImage, name: &str, id: u128, partitions: usize, configs: &[(&str, &str)]) {
    let id = uuid::Uuid::from_u128(id);
    let p = PartitionImage { leader: 1, leader_epoch: 0, replicas: vec![1], isr: vec![1], partition_epoch: 0, ..Default::default() };
    img.topic_names.insert(id, name.into());
    let configs = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    img.topics.insert(name.into(), TopicImage { name: name.into(), id, partitions: vec![p; partitions], configs });
}

/// A log that cannot be created (here its log directory has gone) is reported and its
/// replica is offline; the rest of the image is still applied (before, the first failure
/// ended the apply, so topic "b"'s new config never reached its log while the client that
/// changed it was told success), and nothing half-created is left.
#[tokio::test]
async fn a_log_that_cannot_be_created_is_an_offline_replica_and_the_rest_of_the_image_applies() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let cfg = config(&data);
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    let mut img = MetadataImage { last_offset: 1, ..Default::default() };
    topic(&mut img, "b", 2, 1, &[]);
    assert!(rm.apply_image(&img, &cfg).is_empty());
    std::fs::remove_dir_all(&data).unwrap();
    let mut img = MetadataImage { last_offset: 2, ..img };
    topic(&mut img, "a", 1, 2, &[]);
    topic(&mut img, "b", 2, 1, &[("max.message.bytes", "1234")]);
    let failed = rm.apply_image(&img, &cfg);
    assert_eq!(failed.iter().map(|f| (f.topic.as_str(), f.partition, f.action)).collect::<Vec<_>>(), vec![("a", 0, "create"), ("a", 1, "create")]);
    assert!(failed[0].error.contains("No such file"), "{}", failed[0].error);
    assert_eq!(rm.partition("b", 0).unwrap().log().lock().config().max_message_bytes, 1234, "the other topic's change applied");
    assert!(rm.partition("a", 0).is_none() && rm.is_offline("a", 0) && rm.offline_replica("a", 1).is_some());
    // Not tried again (and not reported again) until a restart.
    std::fs::create_dir_all(&data).unwrap();
    assert!(rm.apply_image(&MetadataImage { last_offset: 3, ..img.clone() }, &cfg).is_empty());
    assert!(rm.partition("a", 0).is_none());
    assert!(!data.join("a-0").exists(), "no partial partition directory");
    // Deleted from the metadata: the offline replica is forgotten, and the name is free.
    let mut gone = MetadataImage { last_offset: 4, ..img.clone() };
    gone.topics.remove("a");
    assert!(rm.apply_image(&gone, &cfg).is_empty());
    assert!(!rm.is_offline("a", 0));
    let mut again = MetadataImage { last_offset: 5, ..gone };
    topic(&mut again, "a", 3, 1, &[]);
    assert!(rm.apply_image(&again, &cfg).is_empty());
    assert!(rm.partition("a", 0).is_some());
}

/// A directory of the same name left on disk by a deletion that failed is never adopted by
/// the new topic (before, the new topic was served the old topic's records).
#[tokio::test]
async fn a_leftover_directory_of_a_failed_deletion_is_not_adopted_by_a_new_topic() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    assert!(rm.apply_image(&image(1, 0), &cfg).is_empty());
    let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"old"])));
    rm.partition("t", 0).unwrap().append(&batch, 0).await.unwrap();
    // What a deletion whose rename failed leaves: no longer hosted, its files in place.
    rm.logs.lock().release("t", 0);
    rm.forget("t", 0);
    let mut recreated = image(1, 0);
    let id = uuid::Uuid::from_u128(8);
    recreated.topics.get_mut("t").unwrap().id = id;
    recreated.topic_names = [(id, "t".to_string())].into();
    assert!(rm.apply_image(&recreated, &cfg).is_empty());
    assert_eq!(rm.partition("t", 0).unwrap().log_end_offset(), 0);
}

/// Start-up over half-applied states: a log that cannot be opened, an unreadable
/// partition.metadata, and logs the metadata no longer has. None stops the broker.
#[tokio::test]
async fn start_up_recovers_from_half_applied_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut img = MetadataImage { last_offset: 1, ..Default::default() };
    for (i, name) in ["kept", "broken", "torn-id", "torn-id-empty", "gone-empty", "gone-full"].iter().enumerate() {
        topic(&mut img, name, 10 + i as u128, 1, &[]);
    }
    {
        let (rm, _) = ReplicaManager::open(&cfg).unwrap();
        assert!(rm.apply_image(&img, &cfg).is_empty());
        let batch = bytes::Bytes::from(encode_batch(&BatchSpec::values(&[b"x"])));
        for name in ["kept", "torn-id", "gone-full"] {
            rm.partition(name, 0).unwrap().append(&batch, 0).await.unwrap();
        }
        rm.close_all();
    }
    let p = |name: &str| dir.path().join(format!("{name}-0"));
    // A segment that cannot be opened (a directory where the file should be).
    let seg = p("broken").join("00000000000000000000.log");
    std::fs::remove_file(&seg).unwrap();
    std::fs::create_dir(&seg).unwrap();
    std::fs::write(p("torn-id").join(partition_metadata::FILE), "").unwrap();
    std::fs::write(p("torn-id-empty").join(partition_metadata::FILE), "version: 0\ntopic_id").unwrap();
    std::fs::create_dir_all(dir.path().join("t-0.0123-delete")).unwrap();
    // Without their partition.metadata, index files or segment: still logs.
    std::fs::remove_file(p("kept").join(partition_metadata::FILE)).unwrap();
    for f in std::fs::read_dir(p("kept")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "index" || e == "timeindex") {
            std::fs::remove_file(f).unwrap();
        }
    }
    std::fs::remove_file(p("gone-empty").join("00000000000000000000.log")).unwrap();
    img.topics.remove("gone-empty");
    img.topics.remove("gone-full");

    let (rm, _) = ReplicaManager::open(&cfg).unwrap();
    let mut offline: Vec<String> = rm.offline_replicas().into_iter().map(|f| f.topic).collect();
    offline.sort();
    assert_eq!(offline, vec!["broken", "torn-id"]);
    rm.set_aside_strays(&img);
    assert!(rm.apply_image(&img, &cfg).is_empty());
    assert_eq!(rm.partition("kept", 0).unwrap().log_end_offset(), 1);
    assert_eq!(partition_metadata::read(&p("kept")).unwrap(), Some(uuid::Uuid::from_u128(10)), "written again");
    assert_eq!(partition_metadata::read(&p("torn-id-empty")).unwrap(), Some(uuid::Uuid::from_u128(13)));
    assert!(rm.partition("broken", 0).is_none() && rm.is_offline("broken", 0));
    assert!(p("broken").exists() && p("torn-id").exists(), "an unreadable log is left for an operator");
    assert!(!p("gone-empty").exists(), "an empty stray is removed");
    assert!(!p("gone-full").exists() && !dir.path().join("t-0.0123-delete").exists());
    let kept_aside: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with("-stray")).collect();
    assert!(kept_aside.len() == 1 && kept_aside[0].starts_with("gone-full-0."), "{kept_aside:?}");
    drop(rm);
    let (_, loaded) = ReplicaManager::open(&cfg).unwrap();
    assert!(!loaded.iter().any(|(t, _)| t.starts_with("gone")), "a stray is never loaded again");
}
