//! The cluster part of the configuration: process roles, the controller quorum and which
//! listener does what. Checked as a whole at start-up, so an inconsistent setting stops the
//! node with a message naming the property before any data is touched.
use std::collections::BTreeMap;

use super::Listener;

/// What this node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

/// One member of `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The quorum settings, validated.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub roles: Roles,
    /// Empty when `controller.quorum.voters` is unset: this node alone is the quorum and needs
    /// no controller listener (the embedded single-node default).
    pub voters: Vec<Voter>,
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: String,
    pub heartbeat_interval_ms: u64,
    pub session_timeout_ms: u64,
    pub election_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub snapshot_interval_records: u64,
}

impl ClusterConfig {
    /// True when this node is the only voter and talks to no other controller.
    pub fn is_standalone(&self) -> bool {
        self.voters.is_empty()
    }

    /// The voter ids; a standalone node is its own single voter.
    pub fn voter_ids(&self, node_id: i32) -> Vec<i32> {
        if self.voters.is_empty() {
            vec![node_id]
        } else {
            self.voters.iter().map(|v| v.id).collect()
        }
    }

    pub fn voter(&self, id: i32) -> Option<&Voter> {
        self.voters.iter().find(|v| v.id == id)
    }
}

/// Parses and cross-checks the cluster properties. `get` reads an effective property value.
/// Errors are `(property, value, reason)`.
pub fn parse(
    get: &dyn Fn(&str) -> Option<String>,
    node_id: i32,
    listeners: &[Listener],
) -> Result<ClusterConfig, (String, String, String)> {
    let err = |p: &str, reason: String| (p.to_string(), get(p).unwrap_or_default(), reason);
    let roles_value = get("process.roles").unwrap_or_default();
    let mut roles = Roles { broker: false, controller: false };
    for r in roles_value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match r {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => return Err(err("process.roles", format!("'{other}' is not a role; use broker, controller or both"))),
        }
    }
    if !roles.broker && !roles.controller {
        return Err(err("process.roles", "at least one of broker and controller is needed".into()));
    }
    let protocol_map = parse_protocol_map(&get("listener.security.protocol.map").unwrap_or_default())
        .map_err(|r| err("listener.security.protocol.map", r))?;
    for l in listeners {
        match protocol_map.get(&l.name).map(String::as_str) {
            Some("PLAINTEXT") => {}
            Some(p) => return Err(err("listeners", format!("listener {} uses {p}; only PLAINTEXT is supported", l.name))),
            None => {
                return Err(err(
                    "listeners",
                    format!("listener {} has no entry in listener.security.protocol.map; add {}:PLAINTEXT", l.name, l.name),
                ))
            }
        }
    }
    let controller_listener_names: Vec<String> = split(&get("controller.listener.names").unwrap_or_default());
    let voters = match get("controller.quorum.voters") {
        Some(v) if !v.trim().is_empty() => parse_voters(&v).map_err(|r| err("controller.quorum.voters", r))?,
        _ => Vec::new(),
    };
    let controller_listener = listeners.iter().find(|l| controller_listener_names.contains(&l.name));
    if !voters.is_empty() && roles.controller {
        let Some(own) = voters.iter().find(|v| v.id == node_id) else {
            return Err(err(
                "controller.quorum.voters",
                format!("this node (node.id={node_id}) has the controller role but is not one of the voters"),
            ));
        };
        let Some(listener) = controller_listener else {
            return Err(err(
                "listeners",
                format!(
                    "a controller in a quorum needs a listener named in controller.listener.names ({}), e.g. CONTROLLER://{}",
                    controller_listener_names.join(","),
                    own.address()
                ),
            ));
        };
        if listener.port != own.port {
            return Err(err(
                "controller.quorum.voters",
                format!(
                    "the entry for node {node_id} ({}) does not match this node's controller listener port {}",
                    own.address(),
                    listener.port
                ),
            ));
        }
    }
    if !voters.is_empty() && !roles.controller && voters.iter().any(|v| v.id == node_id) {
        return Err(err(
            "process.roles",
            format!("node {node_id} is listed in controller.quorum.voters but process.roles has no controller"),
        ));
    }
    if voters.is_empty() && !(roles.broker && roles.controller) {
        return Err(err(
            "controller.quorum.voters",
            "a node that is not both broker and controller needs controller.quorum.voters to find the quorum".into(),
        ));
    }
    let kafka_listeners: Vec<&Listener> = listeners.iter().filter(|l| !controller_listener_names.contains(&l.name)).collect();
    if !roles.broker {
        if let Some(l) = kafka_listeners.first() {
            return Err(err(
                "listeners",
                format!(
                    "a controller-only node (process.roles=controller) listens only on controller listeners ({}); remove {} or add the broker role",
                    controller_listener_names.join(","),
                    l.name
                ),
            ));
        }
    }
    if roles.broker && kafka_listeners.is_empty() {
        return Err(err("listeners", "a broker needs at least one listener that is not a controller listener".into()));
    }
    let inter_broker_listener_name = match get("inter.broker.listener.name") {
        Some(name) => {
            if roles.broker && !kafka_listeners.iter().any(|l| l.name == name) {
                return Err(err("inter.broker.listener.name", format!("no broker listener is named {name}")));
            }
            name
        }
        None => kafka_listeners.first().map(|l| l.name.clone()).unwrap_or_else(|| "PLAINTEXT".into()),
    };
    let num = |p: &str| get(p).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
    let heartbeat_interval_ms = num("broker.heartbeat.interval.ms");
    let session_timeout_ms = num("broker.session.timeout.ms");
    if session_timeout_ms < 2 * heartbeat_interval_ms {
        return Err(err(
            "broker.session.timeout.ms",
            format!("must be at least twice broker.heartbeat.interval.ms ({heartbeat_interval_ms})"),
        ));
    }
    Ok(ClusterConfig {
        roles,
        voters,
        controller_listener_names,
        inter_broker_listener_name,
        heartbeat_interval_ms,
        session_timeout_ms,
        election_timeout_ms: num("controller.quorum.election.timeout.ms"),
        request_timeout_ms: num("controller.quorum.request.timeout.ms"),
        snapshot_interval_records: num("metadata.log.max.snapshot.interval.records"),
    })
}

fn split(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// `id@host:port,...`, ids unique.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, String> {
    let mut out: Vec<Voter> = Vec::new();
    for item in split(value) {
        let (id, addr) = item.split_once('@').ok_or_else(|| format!("'{item}' is not id@host:port"))?;
        let id: i32 = id.trim().parse().map_err(|_| format!("'{id}' in '{item}' is not a node id"))?;
        if id < 0 {
            return Err(format!("node id {id} in '{item}' is negative"));
        }
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("'{item}' has no port"))?;
        let port: u16 = port.parse().map_err(|_| format!("'{port}' in '{item}' is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(format!("'{item}' has no host"));
        }
        if out.iter().any(|v| v.id == id) {
            return Err(format!("node id {id} is listed twice"));
        }
        out.push(Voter { id, host, port });
    }
    Ok(out)
}

fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in split(value) {
        let (name, protocol) = item.split_once(':').ok_or_else(|| format!("'{item}' is not NAME:PROTOCOL"))?;
        out.insert(name.trim().to_string(), protocol.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(spec: &[(&str, u16)]) -> Vec<Listener> {
        spec.iter().map(|(n, p)| Listener { name: n.to_string(), host: "127.0.0.1".into(), port: *p }).collect()
    }

    fn props<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()).or_else(|| {
                super::super::lookup(k).and_then(|d| d.default).map(str::to_string)
            })
        }
    }

    #[test]
    fn nothing_set_is_a_standalone_combined_node() {
        let c = parse(&props(&[]), 1, &listeners(&[("PLAINTEXT", 9092)])).unwrap();
        assert!(c.is_standalone());
        assert_eq!(c.roles, Roles { broker: true, controller: true });
        assert_eq!(c.voter_ids(1), vec![1]);
        assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
    }

    #[test]
    fn three_voters_with_controller_listener() {
        let p = [("controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293")];
        let c = parse(&props(&p), 2, &listeners(&[("PLAINTEXT", 9192), ("CONTROLLER", 9193)])).unwrap();
        assert_eq!(c.voter_ids(2), vec![1, 2, 3]);
        assert_eq!(c.voter(3).unwrap().address(), "127.0.0.1:9293");
    }

    #[test]
    fn controller_only_node_listens_on_its_controller_listener_alone() {
        let p = [("process.roles", "controller"), ("controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9193")];
        let c = parse(&props(&p), 1, &listeners(&[("CONTROLLER", 9093)])).unwrap();
        assert_eq!(c.roles, Roles { broker: false, controller: true });
        assert!(!c.is_standalone());
    }

    #[test]
    fn inconsistent_settings_name_the_property() {
        let cases: &[(&[(&str, &str)], &[(&str, u16)], &str)] = &[
            (&[("process.roles", "broker,zookeeper")], &[("PLAINTEXT", 1)], "process.roles"),
            (&[("controller.quorum.voters", "1@h:1,1@h:2")], &[("PLAINTEXT", 1)], "controller.quorum.voters"),
            (&[("controller.quorum.voters", "2@h:9093")], &[("PLAINTEXT", 1), ("CONTROLLER", 9093)], "controller.quorum.voters"),
            (&[("controller.quorum.voters", "1@h:9093")], &[("PLAINTEXT", 1)], "listeners"),
            (&[("controller.quorum.voters", "1@h:9093")], &[("PLAINTEXT", 1), ("CONTROLLER", 9094)], "controller.quorum.voters"),
            (&[("process.roles", "broker")], &[("PLAINTEXT", 1)], "controller.quorum.voters"),
            (&[("inter.broker.listener.name", "INTERNAL")], &[("PLAINTEXT", 1)], "inter.broker.listener.name"),
            (&[], &[("INTERNAL", 1)], "listener.security.protocol.map"),
            (&[("broker.session.timeout.ms", "500")], &[("PLAINTEXT", 1)], "broker.session.timeout.ms"),
            (
                &[("process.roles", "broker"), ("controller.quorum.voters", "1@h:9093")],
                &[("PLAINTEXT", 1)],
                "process.roles",
            ),
            (
                &[("process.roles", "controller"), ("controller.quorum.voters", "1@h:9093")],
                &[("PLAINTEXT", 1), ("CONTROLLER", 9093)],
                "listeners",
            ),
            (&[("process.roles", "controller")], &[("CONTROLLER", 9093)], "controller.quorum.voters"),
        ];
        for (pairs, ls, prop) in cases {
            let e = parse(&props(pairs), 1, &listeners(ls)).unwrap_err();
            let want = if *prop == "listener.security.protocol.map" { "listeners" } else { prop };
            assert_eq!(e.0, want, "{pairs:?} {ls:?}: {e:?}");
        }
    }
}
