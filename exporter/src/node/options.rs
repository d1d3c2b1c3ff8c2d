//! The collectors' own flags, `--collector.<name>.<option>`, with node_exporter 1.5's names
//! and defaults. The table [`OPTIONS`] is what the command line consults to know whether an
//! option takes a value, and what `--help` lists.
use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// `--collector.x.y` / `--no-collector.x.y`
    Switch,
    /// `--collector.x.y=value`
    Value,
}

pub struct OptionSpec {
    pub flag: &'static str,
    pub kind: OptionKind,
    pub default: &'static str,
    pub help: &'static str,
}

pub const DISKSTATS_EXCLUDE_DEFAULT: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
pub const MOUNT_POINTS_EXCLUDE_DEFAULT: &str =
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
pub const FS_TYPES_EXCLUDE_DEFAULT: &str = r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
pub const VMSTAT_FIELDS_DEFAULT: &str = r"^(oom_kill|pgpg|pswp|pg.*fault).*";
pub const NETSTAT_FIELDS_DEFAULT: &str = r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec { flag: "collector.arp.device-include", kind: OptionKind::Value, default: "", help: "Regexp of arp devices to include (mutually exclusive to device-exclude)." },
    OptionSpec { flag: "collector.arp.device-exclude", kind: OptionKind::Value, default: "", help: "Regexp of arp devices to exclude (mutually exclusive to device-include)." },
    OptionSpec { flag: "collector.cpu.guest", kind: OptionKind::Switch, default: "true", help: "Enables metric node_cpu_guest_seconds_total" },
    OptionSpec { flag: "collector.diskstats.device-exclude", kind: OptionKind::Value, default: DISKSTATS_EXCLUDE_DEFAULT, help: "Regexp of diskstats devices to exclude (mutually exclusive to device-include)." },
    OptionSpec { flag: "collector.diskstats.device-include", kind: OptionKind::Value, default: "", help: "Regexp of diskstats devices to include (mutually exclusive to device-exclude)." },
    OptionSpec { flag: "collector.filesystem.mount-points-exclude", kind: OptionKind::Value, default: MOUNT_POINTS_EXCLUDE_DEFAULT, help: "Regexp of mount points to exclude for filesystem collector." },
    OptionSpec { flag: "collector.filesystem.fs-types-exclude", kind: OptionKind::Value, default: FS_TYPES_EXCLUDE_DEFAULT, help: "Regexp of filesystem types to exclude for filesystem collector." },
    OptionSpec { flag: "collector.filesystem.mount-timeout", kind: OptionKind::Value, default: "5s", help: "How long to wait for a mount to respond before marking it as stale." },
    OptionSpec { flag: "collector.netclass.ignored-devices", kind: OptionKind::Value, default: "^$", help: "Regexp of net devices to ignore for netclass collector." },
    OptionSpec { flag: "collector.netclass.ignore-invalid-speed", kind: OptionKind::Switch, default: "false", help: "Ignore devices where the speed is invalid." },
    OptionSpec { flag: "collector.netdev.device-exclude", kind: OptionKind::Value, default: "", help: "Regexp of net devices to exclude (mutually exclusive to device-include)." },
    OptionSpec { flag: "collector.netdev.device-include", kind: OptionKind::Value, default: "", help: "Regexp of net devices to include (mutually exclusive to device-exclude)." },
    OptionSpec { flag: "collector.netstat.fields", kind: OptionKind::Value, default: NETSTAT_FIELDS_DEFAULT, help: "Regexp of fields to return for netstat collector." },
    OptionSpec { flag: "collector.textfile.directory", kind: OptionKind::Value, default: "", help: "Directory to read text files with metrics from." },
    OptionSpec { flag: "collector.vmstat.fields", kind: OptionKind::Value, default: VMSTAT_FIELDS_DEFAULT, help: "Regexp of fields to return for vmstat collector." },
];

/// The kind of a `collector.<name>.<option>` flag, or None if there is no such option.
pub fn option_kind(flag: &str) -> Option<OptionKind> {
    OPTIONS.iter().find(|o| o.flag == flag).map(|o| o.kind)
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionError {
    #[error("flag --{flag}: {detail}")]
    Bad { flag: String, detail: String },
}

/// Include or exclude devices by name (node_exporter's `deviceFilter`): at most one of the
/// two is set; an empty pattern means "not set".
#[derive(Clone, Debug, Default)]
pub struct DeviceFilter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl DeviceFilter {
    pub fn new(include: Option<Regex>, exclude: Option<Regex>) -> Self {
        DeviceFilter { include, exclude }
    }

    pub fn ignored(&self, name: &str) -> bool {
        if let Some(ex) = &self.exclude {
            if ex.is_match(name) {
                return true;
            }
        }
        if let Some(inc) = &self.include {
            if !inc.is_match(name) {
                return true;
            }
        }
        false
    }
}

/// Every collector option, parsed and validated once at start-up.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub arp_devices: DeviceFilter,
    pub cpu_guest: bool,
    pub diskstats_devices: DeviceFilter,
    pub mount_points_exclude: Regex,
    pub fs_types_exclude: Regex,
    pub mount_timeout: Duration,
    pub netclass_ignored_devices: Regex,
    pub netclass_ignore_invalid_speed: bool,
    pub netdev_devices: DeviceFilter,
    pub netstat_fields: Regex,
    /// `--collector.textfile.directory`: a directory or a glob of directories; empty: none.
    pub textfile_directory: String,
    pub vmstat_fields: Regex,
}

impl Default for NodeOptions {
    fn default() -> Self {
        // The defaults are constants that are tested to parse.
        match NodeOptions::from_flags(&BTreeMap::new()) {
            Ok(o) => o,
            Err(e) => unreachable!("default collector options do not parse: {e}"),
        }
    }
}

impl NodeOptions {
    /// `flags` maps a full flag name (`collector.diskstats.device-exclude`) to its value as
    /// given; switches carry "true" or "false". Unset options take node_exporter's defaults.
    pub fn from_flags(flags: &BTreeMap<String, String>) -> Result<Self, OptionError> {
        let get = |flag: &str| -> &str {
            flags.get(flag).map(String::as_str).unwrap_or_else(|| {
                OPTIONS.iter().find(|o| o.flag == flag).map(|o| o.default).unwrap_or("")
            })
        };
        let bad = |flag: &str, detail: String| OptionError::Bad { flag: flag.to_string(), detail };
        let regex = |flag: &str| -> Result<Regex, OptionError> {
            Regex::new(get(flag)).map_err(|e| bad(flag, format!("not a regular expression: {e}")))
        };
        let optional_regex = |flag: &str| -> Result<Option<Regex>, OptionError> {
            if get(flag).is_empty() {
                Ok(None)
            } else {
                regex(flag).map(Some)
            }
        };
        let switch = |flag: &str| -> Result<bool, OptionError> {
            match get(flag) {
                "true" => Ok(true),
                "false" => Ok(false),
                v => Err(bad(flag, format!("expected true or false, got {v:?}"))),
            }
        };
        let filter = |include: &str, exclude: &str| -> Result<DeviceFilter, OptionError> {
            let inc = optional_regex(include)?;
            let exc = optional_regex(exclude)?;
            if inc.is_some() && exc.is_some() {
                // node_exporter refuses both; with a default exclude, giving an include
                // means "instead of the default", which is what a user expects.
                if flags.contains_key(exclude) {
                    return Err(bad(include, format!("is mutually exclusive with --{exclude}")));
                }
                return Ok(DeviceFilter::new(inc, None));
            }
            Ok(DeviceFilter::new(inc, exc))
        };
        let timeout_flag = "collector.filesystem.mount-timeout";
        let mount_timeout = parse_duration(get(timeout_flag)).map_err(|d| bad(timeout_flag, d))?;
        Ok(NodeOptions {
            arp_devices: filter("collector.arp.device-include", "collector.arp.device-exclude")?,
            cpu_guest: switch("collector.cpu.guest")?,
            diskstats_devices: filter("collector.diskstats.device-include", "collector.diskstats.device-exclude")?,
            mount_points_exclude: regex("collector.filesystem.mount-points-exclude")?,
            fs_types_exclude: regex("collector.filesystem.fs-types-exclude")?,
            mount_timeout,
            netclass_ignored_devices: regex("collector.netclass.ignored-devices")?,
            netclass_ignore_invalid_speed: switch("collector.netclass.ignore-invalid-speed")?,
            netdev_devices: filter("collector.netdev.device-include", "collector.netdev.device-exclude")?,
            netstat_fields: regex("collector.netstat.fields")?,
            textfile_directory: get("collector.textfile.directory").to_string(),
            vmstat_fields: regex("collector.vmstat.fields")?,
        })
    }
}

/// Go-style durations as node_exporter's flags take them: `5s`, `500ms`, `1m`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?} is not a duration such as 5s or 500ms");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_parse_and_match_node_exporter() {
        let o = NodeOptions::default();
        assert!(o.cpu_guest);
        assert!(o.diskstats_devices.ignored("loop0"));
        assert!(o.diskstats_devices.ignored("sda1"));
        assert!(o.diskstats_devices.ignored("nvme0n1p2"));
        assert!(!o.diskstats_devices.ignored("sda"));
        assert!(!o.diskstats_devices.ignored("nvme0n1"));
        assert!(!o.diskstats_devices.ignored("dm-0"));
        assert!(o.mount_points_exclude.is_match("/run/user/1000"));
        assert!(o.mount_points_exclude.is_match("/sys"));
        assert!(!o.mount_points_exclude.is_match("/"));
        assert!(!o.mount_points_exclude.is_match("/devices"));
        assert!(o.fs_types_exclude.is_match("cgroup2"));
        assert!(!o.fs_types_exclude.is_match("ext4"));
        assert!(!o.netdev_devices.ignored("lo"));
        assert_eq!(o.mount_timeout, Duration::from_secs(5));
        assert!(o.netstat_fields.is_match("TcpExt_ListenDrops"));
        assert!(o.netstat_fields.is_match("Tcp_RetransSegs"));
        assert!(o.netstat_fields.is_match("Udp6_RcvbufErrors"));
        assert!(!o.netstat_fields.is_match("Tcp_MaxConn"));
        assert!(!o.netstat_fields.is_match("TcpExt_TCPOFOQueue"));
        assert!(!o.arp_devices.ignored("eth0"));
        assert_eq!(o.textfile_directory, "");
        let both = flags(&[("collector.arp.device-include", "^eth"), ("collector.arp.device-exclude", "^lo$")]);
        assert!(NodeOptions::from_flags(&both).is_err());
    }

    #[test]
    fn include_replaces_the_default_exclude_but_not_an_explicit_one() {
        let o = NodeOptions::from_flags(&flags(&[("collector.diskstats.device-include", "^sd")])).unwrap();
        assert!(!o.diskstats_devices.ignored("sda1"));
        assert!(o.diskstats_devices.ignored("vda"));
        let both = flags(&[("collector.netdev.device-include", "^eth"), ("collector.netdev.device-exclude", "^lo$")]);
        assert!(NodeOptions::from_flags(&both).is_err());
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = NodeOptions::from_flags(&flags(&[("collector.vmstat.fields", "(")])).unwrap_err();
        assert!(e.to_string().contains("collector.vmstat.fields"), "{e}");
        assert!(NodeOptions::from_flags(&flags(&[("collector.filesystem.mount-timeout", "5")])).is_err());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").is_err());
    }
}
