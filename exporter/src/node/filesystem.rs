//! `filesystem`: node_filesystem_*{device,fstype,mountpoint} for every mount in
//! `<procfs>/1/mounts` (falling back to `<procfs>/mounts`, as node_exporter does under
//! hidepid) that node_exporter's default exclude patterns keep, sized with statfs(2) on
//! `<rootfs>/<mountpoint>`.
//!
//! statfs can block forever on a dead NFS server. Each call runs on its own thread and is
//! given `--collector.filesystem.mount-timeout` (5 s); a mount that does not answer in time
//! is reported with `node_filesystem_device_error 1` and is not asked again until the stuck
//! call returns, so one dead mount costs one blocked thread, not one per scrape. This is
//! node_exporter's stuck-mount rule.
//!
//! The syscall sits behind [`StatFs`], so tests size mounts deterministically.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use regex::Regex;

use super::options::NodeOptions;
use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

/// What statfs(2) says about a mounted filesystem; block counts are in units of `bsize`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FsStats {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub bsize: u64,
    pub files: u64,
    pub ffree: u64,
}

/// statfs(2), or a stand-in for it.
pub trait StatFs: Send + Sync + 'static {
    fn statfs(&self, path: &Path) -> std::io::Result<FsStats>;
}

/// The real syscall. node_exporter multiplies by `f_bsize` (it uses statfs, not statvfs's
/// `f_frsize`); so does this, so sizes agree even where the two differ.
pub struct LibcStatFs;

impl StatFs for LibcStatFs {
    fn statfs(&self, path: &Path) -> std::io::Result<FsStats> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: an all-zero statfs is a valid value of this plain C struct, `c` is a valid
        // NUL-terminated path and `buf` a valid, writable statfs for the duration of the call.
        let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statfs(c.as_ptr(), &mut buf) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FsStats {
            blocks: buf.f_blocks as u64,
            bfree: buf.f_bfree as u64,
            bavail: buf.f_bavail as u64,
            bsize: buf.f_bsize as u64,
            files: buf.f_files as u64,
            ffree: buf.f_ffree as u64,
        })
    }
}

fn lock_set(m: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One line of a mounts file, as node_exporter reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

pub struct FilesystemCollector {
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    timeout: Duration,
    statfs: Arc<dyn StatFs>,
    stuck: Arc<Mutex<HashSet<String>>>,
}

impl FilesystemCollector {
    pub fn new(opts: &NodeOptions) -> Self {
        Self::with_statfs(opts, Arc::new(LibcStatFs))
    }

    pub fn with_statfs(opts: &NodeOptions, statfs: Arc<dyn StatFs>) -> Self {
        FilesystemCollector {
            mount_points_exclude: opts.mount_points_exclude.clone(),
            fs_types_exclude: opts.fs_types_exclude.clone(),
            timeout: opts.mount_timeout,
            statfs,
            stuck: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// statfs with the stuck-mount rule from the module docs. Err means "device error".
    fn stat_with_timeout(&self, mountpoint: &str, path: PathBuf) -> Result<FsStats, ()> {
        if lock_set(&self.stuck).contains(mountpoint) {
            return Err(());
        }
        let (tx, rx) = mpsc::channel();
        let statfs = Arc::clone(&self.statfs);
        let stuck = Arc::clone(&self.stuck);
        let mp = mountpoint.to_string();
        let spawned = std::thread::Builder::new().name("statfs".into()).spawn(move || {
            let r = statfs.statfs(&path);
            // Recovered (or never stuck): let later scrapes ask again. Sending under the
            // lock orders this against the scraper's timeout branch below.
            let mut s = lock_set(&stuck);
            s.remove(&mp);
            let _ = tx.send(r);
        });
        if spawned.is_err() {
            return Err(());
        }
        let result = match rx.recv_timeout(self.timeout) {
            Ok(r) => r,
            Err(_) => {
                let mut stuck = lock_set(&self.stuck);
                match rx.try_recv() {
                    Ok(r) => r, // answered just as the timeout fired
                    Err(_) => {
                        stuck.insert(mountpoint.to_string());
                        tracing::warn!(target: "lantern.exporter.node", mountpoint, "mount point timed out, it is being labeled as stale and will not be monitored until it responds");
                        return Err(());
                    }
                }
            }
        };
        result.map_err(|e| {
            tracing::debug!(target: "lantern.exporter.node", mountpoint, error = %e, "statfs failed");
        })
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let text = match std::fs::read_to_string(paths.proc("1/mounts")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => read_text(&paths.proc("mounts"))?,
            other => other.map_err(|e| CollectError::read(&paths.proc("1/mounts"), e))?,
        };
        let rootfs = paths.rootfs.to_string_lossy().to_string();
        let mut seen = HashSet::new();
        // (mount, stats or device error)
        let mut rows: Vec<(Mount, Option<FsStats>)> = Vec::new();
        for mut m in parse_mounts(&text)? {
            m.mountpoint = strip_rootfs(&rootfs, &m.mountpoint);
            if self.mount_points_exclude.is_match(&m.mountpoint) || self.fs_types_exclude.is_match(&m.fstype) {
                continue;
            }
            if !seen.insert(m.clone()) {
                continue; // the same mount listed twice is exposed once
            }
            let path = paths.rootfs.join(m.mountpoint.trim_start_matches('/'));
            let stats = self.stat_with_timeout(&m.mountpoint, path).ok();
            rows.push((m, stats));
        }
        rows.sort_by(|a, b| (&a.0.mountpoint, &a.0.device).cmp(&(&b.0.mountpoint, &b.0.device)));

        let labels = |m: &Mount| [("device", m.device.clone()), ("fstype", m.fstype.clone()), ("mountpoint", m.mountpoint.clone())];
        let mut family = |name: &str, help: &str, value: &dyn Fn(&Mount, &FsStats) -> f64, errors_too: bool| {
            let samples: Vec<_> = rows.iter().filter(|(_, s)| errors_too || s.is_some()).collect();
            if samples.is_empty() {
                return;
            }
            out.family(name, help, MetricType::Gauge);
            for (m, s) in samples {
                let l = labels(m);
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let v = match s {
                    Some(s) => value(m, s),
                    None => 1.0, // only device_error reaches here
                };
                out.sample(name, &l, v);
            }
        };
        family("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", &|_, s| s.bavail as f64 * s.bsize as f64, false);
        family("node_filesystem_device_error", "Whether an error occurred while getting statistics for the given device.", &|_, _| 0.0, true);
        family("node_filesystem_files", "Filesystem total file nodes.", &|_, s| s.files as f64, false);
        family("node_filesystem_files_free", "Filesystem total free file nodes.", &|_, s| s.ffree as f64, false);
        family("node_filesystem_free_bytes", "Filesystem free space in bytes.", &|_, s| s.bfree as f64 * s.bsize as f64, false);
        family("node_filesystem_readonly", "Filesystem read-only status.", &|m, _| if m.options.split(',').any(|o| o == "ro") { 1.0 } else { 0.0 }, false);
        family("node_filesystem_size_bytes", "Filesystem size in bytes.", &|_, s| s.blocks as f64 * s.bsize as f64, false);
        Ok(())
    }
}

/// The mounts file (`/proc/1/mounts` format, fstab(5) escapes): device, mount point,
/// type and options of each line.
pub fn parse_mounts(text: &str) -> Result<Vec<Mount>, CollectError> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 4 {
            return Err(CollectError::parse("mounts", format!("malformed mount point information: {line:?}")));
        }
        mounts.push(Mount {
            device: f[0].to_string(),
            // node_exporter undoes exactly these two escapes
            mountpoint: f[1].replace("\\040", " ").replace("\\011", "\t"),
            fstype: f[2].to_string(),
            options: f[3].to_string(),
        });
    }
    Ok(mounts)
}

/// A mount point as seen from `--path.rootfs`: node_exporter strips the rootfs prefix so a
/// containerised exporter reports the host's paths.
fn strip_rootfs(rootfs: &str, mountpoint: &str) -> String {
    if rootfs == "/" {
        return mountpoint.to_string();
    }
    match mountpoint.strip_prefix(rootfs) {
        Some("") => "/".to_string(),
        Some(rest) => rest.to_string(),
        None => mountpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeStatFs(HashMap<PathBuf, FsStats>, Duration);

    impl StatFs for FakeStatFs {
        fn statfs(&self, path: &Path) -> std::io::Result<FsStats> {
            std::thread::sleep(self.1);
            self.0.get(path).copied().ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))
        }
    }

    const MOUNTS: &str = "/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw,relatime 0 0
tmpfs /run tmpfs rw,nosuid 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
/dev/vdb /data xfs ro,relatime 0 0
/dev/vdb /data xfs ro,relatime 0 0
nas:/x /srv/old\\040archive nfs4 rw 0 0
";

    fn stats(blocks: u64) -> FsStats {
        FsStats { blocks, bfree: blocks / 2, bavail: blocks / 4, bsize: 4096, files: 1000, ffree: 900 }
    }

    fn scrape(statfs: FakeStatFs, timeout: Duration) -> (FilesystemCollector, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mounts"), MOUNTS).unwrap();
        let opts = NodeOptions { mount_timeout: timeout, ..NodeOptions::default() };
        let c = FilesystemCollector::with_statfs(&opts, Arc::new(statfs));
        let paths = Paths { procfs: dir.path().into(), rootfs: "/r".into(), ..Paths::default() };
        let mut w = MetricWriter::new();
        c.update(&paths, &mut w).unwrap();
        (c, w.into_string())
    }

    #[test]
    fn mounts_parse_with_escapes() {
        let m = parse_mounts(MOUNTS).unwrap();
        assert_eq!(m.len(), 7);
        assert_eq!(m[6].mountpoint, "/srv/old archive");
        assert!(parse_mounts("/dev/vda /\n").is_err());
    }

    #[test]
    fn sizes_come_from_statfs_and_excluded_or_duplicate_mounts_are_skipped() {
        let fake = FakeStatFs(HashMap::from([("/r".into(), stats(1000)), ("/r/data".into(), stats(8))]), Duration::ZERO);
        let (_, text) = scrape(fake, Duration::from_secs(5));
        let want = "\
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 1024000
node_filesystem_avail_bytes{device=\"/dev/vdb\",fstype=\"xfs\",mountpoint=\"/data\"} 8192
# HELP node_filesystem_device_error Whether an error occurred while getting statistics for the given device.
# TYPE node_filesystem_device_error gauge
node_filesystem_device_error{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 0
node_filesystem_device_error{device=\"/dev/vdb\",fstype=\"xfs\",mountpoint=\"/data\"} 0
node_filesystem_device_error{device=\"nas:/x\",fstype=\"nfs4\",mountpoint=\"/srv/old archive\"} 1
";
        assert!(text.starts_with(want), "{text}");
        assert!(text.contains("node_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 4096000\n"));
        assert!(text.contains("node_filesystem_free_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 2048000\n"));
        assert!(text.contains("node_filesystem_files_free{device=\"/dev/vdb\",fstype=\"xfs\",mountpoint=\"/data\"} 900\n"));
        assert!(text.contains("node_filesystem_readonly{device=\"/dev/vdb\",fstype=\"xfs\",mountpoint=\"/data\"} 1\n"));
        assert!(text.contains("node_filesystem_readonly{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 0\n"));
        assert!(!text.contains("old archive\"} 0"), "an unreadable mount has only device_error: {text}");
        assert!(!text.contains("/run") && !text.contains("cgroup"), "{text}");
    }

    #[test]
    fn a_hanging_statfs_marks_the_mount_stale_instead_of_blocking_the_scrape() {
        let fake = FakeStatFs(HashMap::from([("/r".into(), stats(1000))]), Duration::from_millis(1500));
        let start = std::time::Instant::now();
        let (c, text) = scrape(fake, Duration::from_millis(50));
        // three mounts, each given 50 ms instead of 1.5 s
        assert!(start.elapsed() < Duration::from_millis(1400), "took {:?}", start.elapsed());
        assert!(text.contains("node_filesystem_device_error{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 1\n"), "{text}");
        assert!(c.stuck.lock().unwrap().contains("/"));
        // once the stuck call returns (after 1.5 s), the mount is asked again
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.stuck.lock().unwrap().contains("/") {
            assert!(std::time::Instant::now() < deadline, "the mount stayed marked stale after its statfs returned");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn rootfs_prefix_is_stripped() {
        assert_eq!(strip_rootfs("/host", "/host/var"), "/var");
        assert_eq!(strip_rootfs("/host", "/host"), "/");
        assert_eq!(strip_rootfs("/", "/var"), "/var");
    }
}
