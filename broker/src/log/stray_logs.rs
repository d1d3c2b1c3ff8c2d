//! The `-stray` directories `log_manager::set_aside_stray` leaves in the `log.dirs` (logs
//! holding records of partitions the metadata no longer had at start-up), as the stray
//! partition metrics report them: what each one was (topic, partition, topic id) and its size.
//! Reading the disk is split from parsing the directory name, which is unit-tested.
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::log_manager::STRAY_SUFFIX;

/// One `-stray` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrayLog {
    pub dir: PathBuf,
    /// (topic, partition) from its name; `None` when `set_aside_stray` had to cut a long
    /// name short.
    pub topic_partition: Option<(String, i32)>,
    /// From its `partition.metadata`; `None` when it has none (or it does not parse).
    pub topic_id: Option<Uuid>,
    /// Bytes of the files in it.
    pub bytes: u64,
}

/// `<topic>-<partition>.<32 hex>-stray` -> (topic, partition); `None` for any other name.
pub fn parse_name(name: &str) -> Option<(String, i32)> {
    let base = name.strip_suffix(STRAY_SUFFIX)?;
    let (tp, marker) = base.rsplit_once('.')?;
    if marker.len() != 32 || !marker.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (topic, partition) = tp.rsplit_once('-')?;
    let partition: i32 = partition.parse().ok()?;
    (!topic.is_empty() && partition >= 0).then(|| (topic.to_string(), partition))
}

/// The stray logs in `dirs` (directories that cannot be read are skipped: a scrape never
/// fails on them). Blocking: lists the directories and stats their files.
pub fn scan(dirs: &[PathBuf]) -> Vec<StrayLog> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(STRAY_SUFFIX) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let topic_id = crate::cluster::partition_metadata::read(&path).ok().flatten();
            out.push(StrayLog { bytes: size_of(&path), dir: path, topic_partition: parse_name(&name), topic_id });
        }
    }
    out
}

fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|es| es.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_stray_directories_parse_and_others_do_not() {
        let marker = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_name(&format!("orders-3.{marker}-stray")), Some(("orders".to_string(), 3)));
        assert_eq!(parse_name(&format!("my-topic.v2-0.{marker}-stray")), Some(("my-topic.v2".to_string(), 0)));
        assert_eq!(parse_name("orders-3"), None);
        assert_eq!(parse_name(&format!("orders-3.{marker}-delete")), None);
        assert_eq!(parse_name("orders-3.nothex-stray"), None);
        assert_eq!(parse_name(&format!("orders-x.{marker}-stray")), None);
        assert_eq!(parse_name(&format!("-3.{marker}-stray")), None);
    }

    #[test]
    fn scan_finds_stray_directories_with_their_size_and_topic_id() {
        let root = tempfile::tempdir().unwrap();
        let stray = root.path().join("t-1.0123456789abcdef0123456789abcdef-stray");
        std::fs::create_dir(&stray).unwrap();
        std::fs::write(stray.join("00000000000000000000.log"), vec![0u8; 100]).unwrap();
        let id = Uuid::from_u128(7);
        crate::cluster::partition_metadata::write(&stray, id).unwrap();
        std::fs::create_dir(root.path().join("t-0")).unwrap();
        let found = scan(&[root.path().to_path_buf(), root.path().join("missing")]);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].topic_partition.clone(), found[0].topic_id), (Some(("t".to_string(), 1)), Some(id)));
        assert!(found[0].bytes > 100, "{}", found[0].bytes);
    }
}
