//! Upgrade from a single-node Lantern that kept its metadata in `lantern-metadata.json`
//! (before the quorum): the file's topics, ids, configs and producer id block become the
//! first records of the new metadata log, so existing logs stay served under their topic ids.
use std::path::Path;

use super::image::MetadataImage;
use super::records::{ConfigResource, MetadataRecord};

const FILE_NAME: &str = "lantern-metadata.json";

/// Renames the old file once its records are committed, so it is never imported twice.
pub fn mark_imported(dir: &Path) {
    let path = dir.join(FILE_NAME);
    if let Err(e) = std::fs::rename(&path, dir.join(format!("{FILE_NAME}.imported"))) {
        tracing::warn!(target: "org.apache.kafka.controller.QuorumController", error = %e, path = %path.display(), "could not rename the imported metadata file");
    }
}

/// The records that recreate the old file's metadata, or `None` when there is no such file.
pub fn import(dir: &Path, node_id: i32) -> Result<Option<Vec<MetadataRecord>>, String> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let old: MetadataImage = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is corrupt ({e}); restore it from a backup or move it away to start with no topics", path.display()))?;
    let mut records = Vec::new();
    if !old.cluster_id.is_empty() {
        records.push(MetadataRecord::ClusterId { cluster_id: old.cluster_id.clone() });
    }
    for t in old.topics.values() {
        records.push(MetadataRecord::Topic { name: t.name.clone(), topic_id: t.id });
        for (i, _) in t.partitions.iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id: t.id,
                partition: i as i32,
                replicas: vec![node_id],
                isr: vec![node_id],
                leader: node_id,
            });
        }
        for (k, v) in &t.configs {
            records.push(MetadataRecord::Config { resource: ConfigResource::Topic, name: t.name.clone(), key: k.clone(), value: Some(v.clone()) });
        }
    }
    if old.next_producer_id > 0 {
        records.push(MetadataRecord::ProducerIds { broker_id: node_id, next_producer_id: old.next_producer_id });
    }
    Ok(Some(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_file_becomes_records_with_the_same_ids() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(import(dir.path(), 1), Ok(None));
        let id = uuid::Uuid::new_v4();
        let old = serde_json::json!({
            "cluster_id": "abc", "next_producer_id": 2000,
            "topics": {"t": {"name": "t", "id": id, "configs": {"retention.ms": "5"},
                "partitions": [{"leader": 1, "leader_epoch": 0, "replicas": [1], "isr": [1]}]}}
        });
        std::fs::write(dir.path().join(FILE_NAME), old.to_string()).unwrap();
        let mut img = MetadataImage::default();
        for r in import(dir.path(), 1).unwrap().unwrap() {
            img.apply(&r, 1, 0).unwrap();
        }
        assert_eq!(img.cluster_id, "abc");
        assert_eq!(img.topic_by_id(id).unwrap().configs["retention.ms"], "5");
        assert_eq!(img.partition("t", 0).unwrap().leader, 1);
        assert_eq!(img.next_producer_id, 2000);
        std::fs::write(dir.path().join(FILE_NAME), b"{").unwrap();
        assert!(import(dir.path(), 1).unwrap_err().contains("corrupt"));
    }
}
