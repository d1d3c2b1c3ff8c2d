//! `sockstat`: node_sockstat_<PROTO>_<field> from /proc/net/sockstat and sockstat6, plus
//! `_mem_bytes` (pages × page size) for protocols that report `mem`, and
//! node_sockstat_sockets_used. A missing file (IPv6 disabled) is skipped, as in node_exporter.
use super::{CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

/// The per-protocol fields node_exporter exports, in its order.
const FIELDS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

pub struct SockstatCollector;

#[derive(Debug, Default, PartialEq)]
pub struct Sockstat {
    pub used: Option<f64>,
    /// (protocol, [(field, value)])
    pub protocols: Vec<(String, Vec<(String, f64)>)>,
}

impl Collector for SockstatCollector {
    fn name(&self) -> &'static str {
        "sockstat"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page_size = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as f64,
            _ => 4096.0,
        };
        let mut lines: Vec<(String, String, f64)> = Vec::new();
        for (file, ipv6) in [("net/sockstat", false), ("net/sockstat6", true)] {
            let path = paths.proc(file);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(CollectError::read(&path, e)),
            };
            let s = parse_sockstat(&text)?;
            if let (false, Some(used)) = (ipv6, s.used) {
                lines.push(("node_sockstat_sockets_used".into(), "Number of IPv4 sockets in use.".into(), used));
            }
            for (proto, fields) in s.protocols {
                let mut values: Vec<(String, f64)> = FIELDS
                    .iter()
                    .filter_map(|f| fields.iter().find(|(k, _)| k == f).map(|(k, v)| (k.clone(), *v)))
                    .collect();
                if let Some((_, mem)) = values.iter().find(|(k, _)| k == "mem") {
                    values.push(("mem_bytes".into(), mem * page_size));
                }
                for (field, v) in values {
                    lines.push((
                        format!("node_sockstat_{proto}_{field}"),
                        format!("Number of {proto} sockets in state {field}."),
                        v,
                    ));
                }
            }
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        lines.dedup_by(|a, b| a.0 == b.0);
        for (name, help, v) in lines {
            out.single(&name, &help, MetricType::Gauge, v);
        }
        Ok(())
    }
}

/// `sockets: used N` and `PROTO: key value key value ...` lines.
pub fn parse_sockstat(text: &str) -> Result<Sockstat, CollectError> {
    let mut s = Sockstat::default();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() % 2 != 0 {
            return Err(CollectError::parse("sockstat", format!("odd number of fields in {line:?}")));
        }
        let mut kvs = Vec::new();
        for pair in f.chunks(2) {
            let v: f64 = pair[1].parse().map_err(|_| CollectError::parse("sockstat", format!("not a number in {line:?}")))?;
            kvs.push((pair[0].to_string(), v));
        }
        if proto == "sockets" {
            s.used = kvs.iter().find(|(k, _)| k == "used").map(|(_, v)| *v);
        } else {
            s.protocols.push((proto.to_string(), kvs));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_used_sockets() {
        let s = parse_sockstat("sockets: used 20\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 146\nFRAG: inuse 0 memory 0\n").unwrap();
        assert_eq!(s.used, Some(20.0));
        assert_eq!(s.protocols.len(), 2);
        assert_eq!(s.protocols[0].0, "TCP");
        assert_eq!(s.protocols[0].1[4], ("mem".to_string(), 146.0));
        assert!(parse_sockstat("TCP: inuse\n").is_err());
    }
}
