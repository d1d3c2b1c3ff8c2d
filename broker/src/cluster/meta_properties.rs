//! `meta.properties` in every data directory, as Kafka keeps it: which node and which cluster
//! the directory belongs to. A node started with another node's directory, or joined to another
//! cluster, stops before it touches the data.
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "meta.properties";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub node_id: i32,
    pub cluster_id: String,
}

fn parse(text: &str) -> Option<MetaProperties> {
    let mut node_id = None;
    let mut cluster_id = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=')?;
        match k.trim() {
            "node.id" => node_id = v.trim().parse().ok(),
            "cluster.id" => cluster_id = Some(v.trim().to_string()),
            _ => {}
        }
    }
    Some(MetaProperties { node_id: node_id?, cluster_id: cluster_id? })
}

/// Reads each directory's file; `Err` names the directory whose file is unreadable.
pub fn read_all(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, MetaProperties)>, String> {
    let mut out = Vec::new();
    for dir in dirs {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&text) {
                Some(m) => out.push((dir.clone(), m)),
                None => return Err(format!("{} has no node.id and cluster.id lines; fix or remove it", path.display())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    Ok(out)
}

/// Refuses directories that belong to another node or cluster. `cluster_id` is the configured
/// or replicated cluster id when known.
pub fn check(found: &[(PathBuf, MetaProperties)], node_id: i32, cluster_id: Option<&str>) -> Result<(), String> {
    // Directories that disagree with each other (one copied from another cluster's node) are
    // refused before the metadata quorum starts on any of them.
    if let (Some((d1, m1)), Some((d2, m2))) = (found.first(), found.iter().find(|(_, m)| m.cluster_id != found[0].1.cluster_id)) {
        return Err(format!(
            "{} belongs to cluster {} but {} to cluster {}; every data directory of a node must belong to the same cluster",
            d1.display(),
            m1.cluster_id,
            d2.display(),
            m2.cluster_id
        ));
    }
    for (dir, m) in found {
        if m.node_id != node_id {
            return Err(format!(
                "{} belongs to node {} (its meta.properties), but this node has node.id={node_id}; give each node its own log.dirs",
                dir.display(),
                m.node_id
            ));
        }
        if let Some(c) = cluster_id.filter(|c| !c.is_empty()) {
            if m.cluster_id != c {
                return Err(format!(
                    "{} belongs to cluster {} (its meta.properties), but this node is in cluster {c}; use empty log.dirs to join another cluster",
                    dir.display(),
                    m.cluster_id
                ));
            }
        }
    }
    Ok(())
}

/// Writes the file into every directory that lacks it.
pub fn write_missing(dirs: &[PathBuf], meta: &MetaProperties) -> std::io::Result<()> {
    if meta.cluster_id.is_empty() {
        return Err(std::io::Error::other("the cluster id is not known yet"));
    }
    for dir in dirs {
        let path = dir.join(FILE_NAME);
        if path.exists() {
            continue;
        }
        crate::durable_fs::create_dir_all(dir)?;
        let text = format!("#Written by lantern-broker\nversion=1\nnode.id={}\ncluster.id={}\n", meta.node_id, meta.cluster_id);
        write_durably(Path::new(&path), text.as_bytes())?;
    }
    Ok(())
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_nodes_or_clusters_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        assert!(read_all(&dirs).unwrap().is_empty());
        write_missing(&dirs, &MetaProperties { node_id: 2, cluster_id: "abc".into() }).unwrap();
        let found = read_all(&dirs).unwrap();
        assert_eq!(found[0].1, MetaProperties { node_id: 2, cluster_id: "abc".into() });
        assert!(check(&found, 2, Some("abc")).is_ok());
        assert!(check(&found, 2, None).is_ok());
        assert!(check(&found, 1, None).unwrap_err().contains("node.id=1"));
        assert!(check(&found, 2, Some("xyz")).unwrap_err().contains("cluster xyz"));
        let other = tempfile::tempdir().unwrap();
        write_missing(&[other.path().to_path_buf()], &MetaProperties { node_id: 2, cluster_id: "def".into() }).unwrap();
        let both = read_all(&[dir.path().to_path_buf(), other.path().to_path_buf()]).unwrap();
        assert!(check(&both, 2, None).unwrap_err().contains("same cluster"));
    }
}
