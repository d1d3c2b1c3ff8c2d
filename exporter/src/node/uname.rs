//! `uname`: node_uname_info{domainname,machine,nodename,release,sysname,version}.
//!
//! node_exporter calls uname(2). Lantern reads the same strings from
//! `<procfs>/sys/kernel/{ostype,hostname,osrelease,version,domainname,arch}` so a fixture
//! tree can supply them; the kernel fills those files from the reader's UTS namespace, exactly
//! as it fills uname(2), so on a live system the two agree (the side-by-side test checks it).
//! `arch` appeared in Linux 6.1; on older kernels `machine` comes from uname(2).
use super::{read_text, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

pub struct UnameCollector;

#[derive(Debug, PartialEq)]
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

impl Collector for UnameCollector {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let read = |f: &str| read_text(&paths.proc(&format!("sys/kernel/{f}"))).map(|s| s.trim_end_matches('\n').to_string());
        let machine = match read("arch") {
            Ok(m) => m,
            Err(_) => machine_from_syscall()?,
        };
        let u = Uname {
            sysname: read("ostype")?,
            nodename: read("hostname")?,
            release: read("osrelease")?,
            version: read("version")?,
            machine,
            domainname: read("domainname")?,
        };
        render(&u, out);
        Ok(())
    }
}

pub fn render(u: &Uname, out: &mut MetricWriter) {
    out.family("node_uname_info", "Labeled system information as provided by the uname system call.", MetricType::Gauge);
    out.sample(
        "node_uname_info",
        &[
            ("domainname", &u.domainname),
            ("machine", &u.machine),
            ("nodename", &u.nodename),
            ("release", &u.release),
            ("sysname", &u.sysname),
            ("version", &u.version),
        ],
        1.0,
    );
}

fn machine_from_syscall() -> Result<String, CollectError> {
    // SAFETY: utsname is a plain C struct of char arrays; zeroed is valid and uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(CollectError::parse("uname(2)", std::io::Error::last_os_error().to_string()));
    }
    let bytes: Vec<u8> = u.machine.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_in_node_exporter_order() {
        let u = Uname {
            sysname: "Linux".into(),
            nodename: "broker-1".into(),
            release: "6.1.0-18-amd64".into(),
            version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)".into(),
            machine: "x86_64".into(),
            domainname: "(none)".into(),
        };
        let mut w = MetricWriter::new();
        render(&u, &mut w);
        assert!(w.as_str().ends_with(
            "node_uname_info{domainname=\"(none)\",machine=\"x86_64\",nodename=\"broker-1\",release=\"6.1.0-18-amd64\",sysname=\"Linux\",version=\"#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\"} 1\n"
        ));
    }

    #[test]
    fn the_syscall_fallback_names_a_machine() {
        assert!(!machine_from_syscall().unwrap().is_empty());
    }
}
