//! `textfile`: the metrics of `*.prom` files in `--collector.textfile.directory` (a directory
//! or a glob of directories; empty, the default, reads nothing), as node_exporter 1.5 serves
//! them: every family of every file that parses, `node_textfile_mtime_seconds{file}` for
//! each file read, and `node_textfile_scrape_error` 1 when a directory or a file could not
//! be read or parsed (that file is skipped, the others are served). A file with client-side
//! timestamps is refused whole. Families without HELP get "Metric read from <files>".
//!
//! Write files atomically (write `x.prom.tmp`, then rename), as for node_exporter.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;

use super::textformat::{self, Family};
use super::{CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct TextfileCollector {
    directory: String,
}

impl TextfileCollector {
    pub fn new(directory: String) -> Self {
        TextfileCollector { directory }
    }
}

impl Collector for TextfileCollector {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn update(&self, _paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut errored = false;
        let mut parsed: Vec<(PathBuf, Vec<Family>)> = Vec::new();
        let mut mtimes: Vec<(String, f64)> = Vec::new();
        let dirs = match glob_dirs(&self.directory) {
            d if d.is_empty() => vec![PathBuf::from(&self.directory)],
            d => d,
        };
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    if !self.directory.is_empty() {
                        errored = true;
                        tracing::error!(target: "lantern.exporter.node", path = %dir.display(), error = %e, "failed to read textfile collector directory");
                    }
                    continue;
                }
            };
            let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            for name in names.iter().filter(|n| n.ends_with(".prom")) {
                let path = dir.join(name);
                match read_file(&path) {
                    Ok((families, mtime)) => {
                        parsed.push((path.clone(), families));
                        mtimes.push((path.display().to_string(), mtime));
                    }
                    Err(e) => {
                        errored = true;
                        tracing::error!(target: "lantern.exporter.node", file = %name, error = %e, "failed to collect textfile data");
                    }
                }
            }
        }
        render(&parsed, &mtimes, errored, out);
        Ok(())
    }
}

/// One file's families and its mtime in whole seconds, or why it is skipped.
fn read_file(path: &Path) -> Result<(Vec<Family>, f64), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("failed to open textfile data file {path:?}: {e}"))?;
    let families = textformat::parse(&text).map_err(|e| format!("failed to parse textfile data from {path:?}: {e}"))?;
    if families.iter().any(|f| f.samples.iter().any(|s| s.timestamp_ms.is_some())) {
        return Err(format!("textfile {path:?} contains unsupported client-side timestamps, skipping entire file"));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("failed to stat {path:?}: {e}"))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()).unwrap_or(0);
    Ok((families, mtime as f64))
}

/// Families merged by name across files (sorted by name, each family's series sorted by
/// labels, as the Go registry gathers them), then the mtimes and the error flag.
pub fn render(parsed: &[(PathBuf, Vec<Family>)], mtimes: &[(String, f64)], errored: bool, out: &mut MetricWriter) {
    let mut merged: BTreeMap<&str, (Option<&str>, MetricType, Vec<String>, Vec<&textformat::Sample>)> = BTreeMap::new();
    for (path, families) in parsed {
        for f in families {
            let entry = merged.entry(f.name.as_str()).or_insert((f.help.as_deref(), f.kind, Vec::new(), Vec::new()));
            if entry.1 != f.kind {
                tracing::error!(target: "lantern.exporter.node", metric = %f.name, file = %path.display(), "textfile family has another type in an earlier file; dropped");
                continue;
            }
            entry.2.push(path.display().to_string());
            entry.3.extend(f.samples.iter());
        }
    }
    for (name, (help, kind, files, samples)) in merged {
        if samples.is_empty() {
            continue;
        }
        let help = help.map(str::to_string).unwrap_or_else(|| format!("Metric read from {}", files.join(", ")));
        // Every series carries every label name of its family; missing ones are empty.
        // A bucket's `le` and a quantile's `quantile` are not family labels: they come last.
        let special = |k: &str| matches!(kind, MetricType::Histogram | MetricType::Summary) && (k == "le" || k == "quantile");
        let mut label_names: Vec<&str> =
            samples.iter().flat_map(|s| s.labels.iter().map(|(k, _)| k.as_str())).filter(|k| !special(k)).collect();
        label_names.sort();
        label_names.dedup();
        let mut rows: Vec<(String, Vec<(&str, &str)>, f64)> = samples
            .iter()
            .map(|s| {
                let mut labels: Vec<(&str, &str)> = label_names
                    .iter()
                    .map(|k| (*k, s.labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("")))
                    .collect();
                labels.extend(s.labels.iter().filter(|(k, _)| special(k)).map(|(k, v)| (k.as_str(), v.as_str())));
                (s.name.clone(), labels, s.value)
            })
            .collect();
        rows.sort_by(|a, b| {
            let key = |r: &(String, Vec<(&str, &str)>, f64)| (r.1.iter().filter(|(k, _)| *k != "le" && *k != "quantile").map(|(_, v)| v.to_string()).collect::<Vec<_>>(), series_rank(name, &r.0));
            key(a).cmp(&key(b)).then_with(|| bound(&a.1).total_cmp(&bound(&b.1)))
        });
        out.family(name, &help, kind);
        for (series, labels, v) in rows {
            out.sample(&series, &labels, v);
        }
    }
    if !mtimes.is_empty() {
        out.family("node_textfile_mtime_seconds", "Unixtime mtime of textfiles successfully read.", MetricType::Gauge);
        let mut sorted: Vec<&(String, f64)> = mtimes.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (file, t) in sorted {
            out.sample("node_textfile_mtime_seconds", &[("file", file)], *t);
        }
    }
    out.single(
        "node_textfile_scrape_error",
        "1 if there was an error opening or reading a file, 0 otherwise",
        MetricType::Gauge,
        if errored { 1.0 } else { 0.0 },
    );
}

/// Within one label set: quantiles/buckets, then `_sum`, then `_count`.
fn series_rank(family: &str, series: &str) -> u8 {
    match series.strip_prefix(family) {
        Some("_sum") => 1,
        Some("_count") => 2,
        _ => 0,
    }
}

/// The numeric `le` or `quantile` of a series (buckets and quantiles in ascending order).
fn bound(labels: &[(&str, &str)]) -> f64 {
    labels
        .iter()
        .find(|(k, _)| *k == "le" || *k == "quantile")
        .and_then(|(_, v)| if *v == "+Inf" { Some(f64::INFINITY) } else { v.parse().ok() })
        .unwrap_or(0.0)
}

/// The directories a glob pattern (`*`, `?`, `[...]` in any component) names, sorted; empty
/// when the pattern names none (then the pattern is read as a plain directory).
pub fn glob_dirs(pattern: &str) -> Vec<PathBuf> {
    if pattern.is_empty() || !pattern.contains(['*', '?', '[']) {
        return Vec::new();
    }
    let mut current: Vec<PathBuf> = vec![if pattern.starts_with('/') { PathBuf::from("/") } else { PathBuf::from(".") }];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if !component.contains(['*', '?', '[']) {
            next = current.iter().map(|d| d.join(component)).filter(|p| p.exists()).collect();
        } else if let Ok(re) = Regex::new(&glob_to_regex(component)) {
            for d in &current {
                let Ok(entries) = std::fs::read_dir(d) else { continue };
                let mut found: Vec<PathBuf> = entries
                    .flatten()
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        !n.starts_with('.') && re.is_match(&n)
                    })
                    .map(|e| e.path())
                    .collect();
                found.sort();
                next.extend(found);
            }
        }
        current = next;
    }
    current
}

/// One glob path component as an anchored regex.
fn glob_to_regex(component: &str) -> String {
    let mut re = String::from("^");
    let mut in_class = false;
    for c in component.chars() {
        match (in_class, c) {
            (false, '*') => re.push_str("[^/]*"),
            (false, '?') => re.push_str("[^/]"),
            (false, '[') => {
                in_class = true;
                re.push('[');
            }
            (true, ']') => {
                in_class = false;
                re.push(']');
            }
            (true, '^') => re.push_str("\\^"),
            (true, c) => re.push(c),
            (false, c) => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_merge_across_files_with_label_union_and_default_help() {
        let a = textformat::parse("backup_ok{job=\"db\"} 1\n# HELP raid_ok RAID healthy.\n# TYPE raid_ok gauge\nraid_ok{md=\"md0\"} 1\n").unwrap();
        let b = textformat::parse("backup_ok{host=\"x\",job=\"www\"} 0\n").unwrap();
        let parsed = vec![(PathBuf::from("/t/a.prom"), a), (PathBuf::from("/t/b.prom"), b)];
        let mut w = MetricWriter::new();
        render(&parsed, &[("/t/b.prom".into(), 20.0), ("/t/a.prom".into(), 10.0)], false, &mut w);
        assert_eq!(
            w.as_str(),
            "# HELP backup_ok Metric read from /t/a.prom, /t/b.prom\n# TYPE backup_ok untyped\n\
             backup_ok{host=\"\",job=\"db\"} 1\nbackup_ok{host=\"x\",job=\"www\"} 0\n\
             # HELP raid_ok RAID healthy.\n# TYPE raid_ok gauge\nraid_ok{md=\"md0\"} 1\n\
             # HELP node_textfile_mtime_seconds Unixtime mtime of textfiles successfully read.\n# TYPE node_textfile_mtime_seconds gauge\n\
             node_textfile_mtime_seconds{file=\"/t/a.prom\"} 10\nnode_textfile_mtime_seconds{file=\"/t/b.prom\"} 20\n\
             # HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise\n\
             # TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0\n"
        );
    }

    #[test]
    fn histograms_keep_bucket_order_then_sum_and_count() {
        let h = textformat::parse("# TYPE lat histogram\nlat_sum{op=\"r\"} 0.7\nlat_count{op=\"r\"} 3\nlat_bucket{le=\"+Inf\",op=\"r\"} 3\nlat_bucket{op=\"r\",le=\"10\"} 2\nlat_bucket{op=\"r\",le=\"2.5\"} 1\n").unwrap();
        let mut w = MetricWriter::new();
        render(&[(PathBuf::from("/t/h.prom"), h)], &[], true, &mut w);
        let lines: Vec<&str> = w.as_str().lines().filter(|l| l.starts_with("lat")).collect();
        assert_eq!(lines, vec![
                "lat_bucket{op=\"r\",le=\"2.5\"} 1",
                "lat_bucket{op=\"r\",le=\"10\"} 2",
                "lat_bucket{op=\"r\",le=\"+Inf\"} 3",
                "lat_sum{op=\"r\"} 0.7",
                "lat_count{op=\"r\"} 3"
            ]);
        assert!(w.as_str().ends_with("node_textfile_scrape_error 1\n"));
        assert!(!w.as_str().contains("node_textfile_mtime_seconds"), "no file read, no mtime family");
    }

    #[test]
    fn a_directory_of_files_good_bad_and_stamped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.prom"), "# HELP job_ok Job state.\njob_ok 1\n").unwrap();
        std::fs::write(dir.path().join("bad.prom"), "job_broken{ 1\n").unwrap();
        std::fs::write(dir.path().join("stamped.prom"), "job_stamped 1 1700000000000\n").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "not_read 1\n").unwrap();
        let c = TextfileCollector::new(dir.path().display().to_string());
        let mut w = MetricWriter::new();
        c.update(&Paths::default(), &mut w).unwrap();
        let text = w.into_string();
        assert!(text.contains("job_ok 1\n"), "{text}");
        assert!(!text.contains("job_stamped") && !text.contains("not_read") && !text.contains("job_broken"), "{text}");
        assert!(text.contains(&format!("node_textfile_mtime_seconds{{file=\"{}\"}}", dir.path().join("good.prom").display())), "{text}");
        assert!(text.ends_with("node_textfile_scrape_error 1\n"), "{text}");

        // The default (no directory) reads nothing and is no error; a missing one is.
        let mut w = MetricWriter::new();
        TextfileCollector::new(String::new()).update(&Paths::default(), &mut w).unwrap();
        assert!(w.as_str().ends_with("node_textfile_scrape_error 0\n"));
        let mut w = MetricWriter::new();
        TextfileCollector::new(dir.path().join("nope").display().to_string()).update(&Paths::default(), &mut w).unwrap();
        assert!(w.as_str().ends_with("node_textfile_scrape_error 1\n"));
    }

    #[test]
    fn globs_name_directories() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a1", "a2", "b1"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let got = glob_dirs(&format!("{}/a*", dir.path().display()));
        assert_eq!(got, vec![dir.path().join("a1"), dir.path().join("a2")]);
        assert_eq!(glob_dirs(&format!("{}/[ab]1", dir.path().display())).len(), 2);
        assert!(glob_dirs(&format!("{}/c*", dir.path().display())).is_empty());
        assert!(glob_dirs("/plain/dir").is_empty());
    }
}
