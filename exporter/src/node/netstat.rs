//! `netstat`: node_netstat_<Protocol>_<Field> from /proc/net/netstat, /proc/net/snmp and
//! /proc/net/snmp6 (TCP retransmits, listen overflows and drops, UDP buffer errors, ...), for
//! the fields matching `--collector.netstat.fields`. Untyped, as node_exporter exposes them,
//! with its help text "Statistic <Protocol><Field>.".
//!
//! netstat and snmp are pairs of lines (`Proto: names...` then `Proto: values...`); snmp6 is
//! one `Proto6Field value` per line and is missing when IPv6 is disabled.
use std::collections::BTreeMap;

use regex::Regex;

use super::{read_text, read_text_if_exists, CollectError, Collector, Paths};
use crate::exposition::{MetricType, MetricWriter};

/// protocol -> field -> value, as read (the value is parsed when exported).
pub type NetStats = BTreeMap<String, BTreeMap<String, String>>;

pub struct NetstatCollector {
    fields: Regex,
}

impl NetstatCollector {
    pub fn new(fields: Regex) -> Self {
        NetstatCollector { fields }
    }
}

impl Collector for NetstatCollector {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn update(&self, paths: &Paths, out: &mut MetricWriter) -> Result<(), CollectError> {
        let mut stats = parse_paired(&read_text(&paths.proc("net/netstat"))?, "/proc/net/netstat")?;
        stats.extend(parse_paired(&read_text(&paths.proc("net/snmp"))?, "/proc/net/snmp")?);
        if let Some(text) = read_text_if_exists(&paths.proc("net/snmp6"))? {
            stats.extend(parse_snmp6(&text));
        }
        for (name, help, value) in select(&stats, &self.fields)? {
            out.single(&name, &help, MetricType::Untyped, value);
        }
        Ok(())
    }
}

/// The (metric name, help, value) of every field whose `Protocol_Field` matches `fields`,
/// sorted by name. A selected value that is not a number fails the collector, as in
/// node_exporter (which checks before filtering; a kernel never writes one).
pub fn select(stats: &NetStats, fields: &Regex) -> Result<Vec<(String, String, f64)>, CollectError> {
    let mut out = Vec::new();
    for (protocol, values) in stats {
        for (field, raw) in values {
            let v: f64 = raw
                .parse()
                .map_err(|_| CollectError::parse("netstat", format!("invalid value {raw:?} of {protocol} {field}")))?;
            let key = format!("{protocol}_{field}");
            if fields.is_match(&key) {
                out.push((format!("node_netstat_{key}"), format!("Statistic {protocol}{field}."), v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `Proto: A B C` followed by `Proto: 1 2 3`, for each protocol (netstat, snmp).
pub fn parse_paired(text: &str, file: &str) -> Result<NetStats, CollectError> {
    let mut stats = NetStats::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(names) = lines.next() {
        let values = lines.next().unwrap_or("");
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        let protocol = names.first().map(|p| p.trim_end_matches(':')).unwrap_or_default();
        if names.len() != values.len() || values.first().map(|p| p.trim_end_matches(':')) != Some(protocol) {
            return Err(CollectError::parse(file, format!("field count or protocol mismatch for {protocol}")));
        }
        let fields = names[1..].iter().zip(&values[1..]).map(|(n, v)| (n.to_string(), v.to_string())).collect();
        stats.insert(protocol.to_string(), fields);
    }
    Ok(stats)
}

/// `Ip6InReceives 123` lines: the protocol is the name up to and including its first `6`.
pub fn parse_snmp6(text: &str) -> NetStats {
    let mut stats = NetStats::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            continue;
        }
        if let Some(six) = f[0].find('6') {
            let (protocol, field) = f[0].split_at(six + 1);
            stats.entry(protocol.to_string()).or_default().insert(field.to_string(), f[1].to_string());
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::options::NETSTAT_FIELDS_DEFAULT;

    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPTimeouts TCPOFOQueue\n\
                           TcpExt: 0 3 4 17 99\n\
                           IpExt: InNoRoutes InOctets OutOctets\n\
                           IpExt: 0 123456 654321\n";
    const SNMP: &str = "Tcp: RtoAlgorithm MaxConn ActiveOpens RetransSegs InErrs CurrEstab\n\
                        Tcp: 1 -1 10 7 0 3\n\
                        Udp: InDatagrams NoPorts InErrors RcvbufErrors\n\
                        Udp: 100 2 1 1\n";
    const SNMP6: &str = "Ip6InReceives                   \t14\nIp6InOctets 1400\nIcmp6InMsgs 2\nUdp6InDatagrams 5\nUdpLite6InErrors 0\n";

    #[test]
    fn paired_lines_become_protocol_fields() {
        let s = parse_paired(SNMP, "snmp").unwrap();
        assert_eq!(s["Tcp"]["MaxConn"], "-1");
        assert_eq!(s["Udp"]["RcvbufErrors"], "1");
        assert!(parse_paired("Tcp: A B\nTcp: 1\n", "snmp").is_err());
        assert!(parse_paired("Tcp: A\nUdp: 1\n", "snmp").is_err());
    }

    #[test]
    fn snmp6_splits_after_the_six() {
        let s = parse_snmp6(SNMP6);
        assert_eq!(s["Ip6"]["InOctets"], "1400");
        assert_eq!(s["UdpLite6"]["InErrors"], "0");
        assert_eq!(s["Icmp6"]["InMsgs"], "2");
    }

    #[test]
    fn the_default_fields_select_what_dashboards_use() {
        let mut stats = parse_paired(NETSTAT, "netstat").unwrap();
        stats.extend(parse_paired(SNMP, "snmp").unwrap());
        stats.extend(parse_snmp6(SNMP6));
        let re = Regex::new(NETSTAT_FIELDS_DEFAULT).unwrap();
        let got = select(&stats, &re).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "node_netstat_Icmp6_InMsgs",
                "node_netstat_Ip6_InOctets",
                "node_netstat_IpExt_InOctets",
                "node_netstat_IpExt_OutOctets",
                "node_netstat_TcpExt_ListenDrops",
                "node_netstat_TcpExt_ListenOverflows",
                "node_netstat_TcpExt_SyncookiesSent",
                "node_netstat_TcpExt_TCPTimeouts",
                "node_netstat_Tcp_ActiveOpens",
                "node_netstat_Tcp_CurrEstab",
                "node_netstat_Tcp_InErrs",
                "node_netstat_Tcp_RetransSegs",
                "node_netstat_Udp6_InDatagrams",
                "node_netstat_UdpLite6_InErrors",
                "node_netstat_Udp_InDatagrams",
                "node_netstat_Udp_InErrors",
                "node_netstat_Udp_NoPorts",
                "node_netstat_Udp_RcvbufErrors",
            ]
        );
        let retrans = got.iter().find(|(n, _, _)| n == "node_netstat_Tcp_RetransSegs").unwrap();
        assert_eq!((retrans.1.as_str(), retrans.2), ("Statistic TcpRetransSegs.", 7.0));
    }

    #[test]
    fn a_non_number_fails() {
        let stats = parse_paired("Tcp: A\nTcp: x\n", "snmp").unwrap();
        assert!(select(&stats, &Regex::new("^$").unwrap()).is_err());
    }
}
