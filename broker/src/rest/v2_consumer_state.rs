//! One Confluent v2 consumer instance as a plain state machine: its configuration, what it
//! follows (topics, a pattern or manual partitions), its membership of the Kafka consumer group
//! (member id, generation, whether it must (re)join), its assignment and positions, and the
//! timers (heartbeat, auto-commit, idle expiry), with time passed in as milliseconds. The async
//! code (`v2_consumer_group`, `v2_consumers`) asks it what to do next and reports what the
//! brokers answered; it decides nothing itself. Kafka's RangeAssignor, which the instance runs
//! when the coordinator makes it the group's leader, is here too.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

/// A topic-partition.
pub type Tp = (String, i32);

/// How keys and values are embedded in the records answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Binary,
    Json,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Binary => "application/vnd.kafka.binary.v2+json",
            Format::Json => "application/vnd.kafka.json.v2+json",
        }
    }
}

/// `auto.offset.reset`: where a partition with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    Earliest,
    Latest,
    /// No committed offset is an error (Kafka's NoOffsetForPartitionException).
    None,
}

/// What the instance was created with (Confluent's `CreateConsumerInstanceRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub format: Format,
    pub reset: Reset,
    pub auto_commit: bool,
    /// Bytes a records request waits for before answering (at most its timeout); 1: answer as
    /// soon as anything arrived.
    pub fetch_min_bytes: usize,
    /// How long a records request without `timeout` waits.
    pub request_timeout: Duration,
}

/// Why a create body was refused: `(error_code, message)` (42204, or 40001 for a value out of
/// range, as Confluent).
pub type ConfigError = (u32, String);

/// A number or a string holding one (Confluent takes both: `"fetch.min.bytes": "1024"`).
fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl InstanceConfig {
    /// Reads a create body: `name`, `format`, `auto.offset.reset`, `auto.commit.enable`,
    /// `fetch.min.bytes`, `consumer.request.timeout.ms`. Returns the name too (None: chosen).
    pub fn parse(body: &Value) -> Result<(Option<String>, Self), ConfigError> {
        let bad = |why: String| (42204, format!("Invalid consumer configuration: {why}"));
        let obj = body.as_object().ok_or_else(|| bad("expected a JSON object".into()))?;
        let text = |k: &str| -> Result<Option<String>, ConfigError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v @ (Value::Bool(_) | Value::Number(_))) => Ok(Some(v.to_string())),
                Some(_) => Err(bad(format!("{k} must be a string"))),
            }
        };
        // Confluent's old `id` field names the instance as `name` does.
        let name = match text("name")? {
            Some(n) => Some(n),
            None => text("id")?,
        };
        if let Some(n) = &name {
            if n.is_empty() || n.len() > 200 || !n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                return Err(bad(format!("name {n:?}: use 1 to 200 of [A-Za-z0-9._-]")));
            }
        }
        let format = match text("format")?.map(|f| f.to_ascii_lowercase()).as_deref() {
            None | Some("binary") => Format::Binary,
            Some("json") => Format::Json,
            Some(f @ ("avro" | "jsonschema" | "protobuf")) => return Err(bad(format!("format {f} needs a schema registry, which Lantern does not have"))),
            Some(f) => return Err((42204, format!("Invalid format type. {f:?}: expected binary or json"))),
        };
        let reset = match text("auto.offset.reset")?.as_deref() {
            None | Some("latest") => Reset::Latest,
            Some("earliest") => Reset::Earliest,
            Some("none") => Reset::None,
            Some(r) => return Err(bad(format!("auto.offset.reset {r:?}: expected earliest, latest or none"))),
        };
        let auto_commit = match text("auto.commit.enable")?.as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(v) => return Err(bad(format!("auto.commit.enable {v:?}: expected true or false"))),
        };
        let ranged = |k: &str, lo: i64, hi: i64, default: i64| -> Result<i64, ConfigError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => match number(v) {
                    Some(n) if (lo..=hi).contains(&n) => Ok(n),
                    Some(-1) => Ok(default),
                    _ => Err((40001, format!("Invalid consumer configuration constraint: {k} {v}: expected {lo} to {hi}"))),
                },
            }
        };
        let fetch_min_bytes = ranged("fetch.min.bytes", 1, 1 << 30, 1)? as usize;
        let timeout_ms = ranged("consumer.request.timeout.ms", 0, 3_600_000, 1000)?;
        Ok((name, Self { format, reset, auto_commit, fetch_min_bytes, request_timeout: Duration::from_millis(timeout_ms as u64) }))
    }
}

/// What the instance follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Nothing,
    /// Group-managed: these topics.
    Topics(Vec<String>),
    /// Group-managed: the topics whose names match (the pattern, and the names it matched).
    Pattern(String, Vec<String>),
    /// Manual assignment: no group membership.
    Partitions(Vec<Tp>),
}

/// A subscription or assignment refused because another kind is in place (Confluent's 40903,
/// "Illegal state: Subscription to topics, partitions and pattern are mutually exclusive").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutuallyExclusive;

/// A seek to be resolved with ListOffsets before the next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    Beginning,
    End,
}

/// What the background task should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Idle too long: commit `commit` (auto-commit), leave the group if a member, then remove.
    Expire { commit: Vec<(Tp, i64)> },
    /// Commit `commit` (auto-commit), then JoinGroup and SyncGroup for these topics.
    Join { topics: Vec<String>, commit: Vec<(Tp, i64)> },
    /// Not following topics any more: leave the group.
    Leave,
    Heartbeat,
    AutoCommit(Vec<(Tp, i64)>),
    /// Nothing until this time (or until woken).
    Wait(u64),
}

/// Group timings the instance uses (Kafka's consumer defaults, a shorter heartbeat so a
/// rebalance started by another member is joined promptly).
pub const SESSION_TIMEOUT_MS: u64 = 10_000;
pub const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
pub const AUTO_COMMIT_INTERVAL_MS: u64 = 5_000;
/// After a failed Join or Heartbeat, the next try (Kafka's retry.backoff.ms, a little longer).
pub const RETRY_BACKOFF_MS: u64 = 200;

#[derive(Debug, Clone)]
pub struct Instance {
    pub group: String,
    pub config: InstanceConfig,
    pub target: Target,
    /// Kafka member id ("" before the coordinator gave one) and generation (-1: none).
    pub member_id: String,
    pub generation: i32,
    /// A member of the group with a current assignment.
    pub joined: bool,
    /// Must JoinGroup again (subscription changed, the coordinator rebalances, an error).
    rejoin: bool,
    pub assignment: Vec<Tp>,
    /// Next offset to read of each assigned partition that has one.
    positions: BTreeMap<Tp, i64>,
    seeks: BTreeMap<Tp, Seek>,
    /// Positions as last committed by this instance (auto-commit skips what has not moved).
    committed: BTreeMap<Tp, i64>,
    last_used_ms: u64,
    idle_timeout_ms: u64,
    next_heartbeat_ms: u64,
    next_auto_commit_ms: u64,
    /// Before this time a failed Join is not retried.
    retry_at_ms: u64,
}

impl Instance {
    pub fn new(group: String, config: InstanceConfig, idle_timeout: Duration, now_ms: u64) -> Self {
        Self {
            group,
            config,
            target: Target::Nothing,
            member_id: String::new(),
            generation: -1,
            joined: false,
            rejoin: false,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            seeks: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_used_ms: now_ms,
            idle_timeout_ms: idle_timeout.as_millis() as u64,
            next_heartbeat_ms: 0,
            next_auto_commit_ms: now_ms + AUTO_COMMIT_INTERVAL_MS,
            retry_at_ms: 0,
        }
    }

    /// A request used the instance: its idle time starts again.
    pub fn touch(&mut self, now_ms: u64) {
        self.last_used_ms = self.last_used_ms.max(now_ms);
    }

    pub fn expires_at(&self) -> u64 {
        self.last_used_ms.saturating_add(self.idle_timeout_ms)
    }

    fn group_managed(&self) -> bool {
        matches!(self.target, Target::Topics(_) | Target::Pattern(..))
    }

    /// The topics a JoinGroup names.
    pub fn subscribed_topics(&self) -> Vec<String> {
        match &self.target {
            Target::Topics(t) | Target::Pattern(_, t) => t.clone(),
            _ => Vec::new(),
        }
    }

    pub fn subscribe(&mut self, topics: Vec<String>) -> Result<(), MutuallyExclusive> {
        if matches!(self.target, Target::Partitions(_) | Target::Pattern(..)) {
            return Err(MutuallyExclusive);
        }
        let mut topics = topics;
        topics.sort();
        topics.dedup();
        if self.target != Target::Topics(topics.clone()) {
            self.target = Target::Topics(topics);
            self.rejoin = true;
        }
        Ok(())
    }

    /// Subscribes to a pattern; `matched` are the topics it matches now.
    pub fn subscribe_pattern(&mut self, pattern: String, matched: Vec<String>) -> Result<(), MutuallyExclusive> {
        if matches!(self.target, Target::Partitions(_) | Target::Topics(_)) {
            return Err(MutuallyExclusive);
        }
        self.target = Target::Pattern(pattern, matched);
        self.rejoin = true;
        Ok(())
    }

    /// The topics the pattern matches now (metadata changed): a different set rejoins.
    pub fn pattern_matches(&mut self, matched: Vec<String>) {
        if let Target::Pattern(_, old) = &mut self.target {
            if *old != matched {
                *old = matched;
                self.rejoin = true;
            }
        }
    }

    pub fn pattern(&self) -> Option<&str> {
        match &self.target {
            Target::Pattern(p, _) => Some(p),
            _ => None,
        }
    }

    /// Unsubscribes (and drops a manual assignment, as Kafka's `unsubscribe` does).
    pub fn unsubscribe(&mut self) {
        self.target = Target::Nothing;
        self.set_assignment(Vec::new());
        self.rejoin = false;
    }

    pub fn assign(&mut self, partitions: Vec<Tp>) -> Result<(), MutuallyExclusive> {
        if self.group_managed() {
            return Err(MutuallyExclusive);
        }
        let mut partitions = partitions;
        partitions.sort();
        partitions.dedup();
        self.target = Target::Partitions(partitions.clone());
        self.set_assignment(partitions);
        Ok(())
    }

    /// A new assignment: positions and seeks of partitions no longer assigned are forgotten.
    fn set_assignment(&mut self, mut partitions: Vec<Tp>) {
        // Kept sorted, so that membership is a binary search (a client may name 10,000).
        partitions.sort();
        partitions.dedup();
        let keep: BTreeSet<&Tp> = partitions.iter().collect();
        self.positions.retain(|tp, _| keep.contains(tp));
        self.seeks.retain(|tp, _| keep.contains(tp));
        self.committed.retain(|tp, _| keep.contains(tp));
        self.assignment = partitions;
    }

    /// What the background task should do at `now_ms`.
    pub fn next_action(&mut self, now_ms: u64) -> Action {
        if now_ms >= self.expires_at() {
            return Action::Expire { commit: self.auto_commit_offsets() };
        }
        if self.group_managed() {
            if (self.rejoin || !self.joined) && now_ms >= self.retry_at_ms {
                return Action::Join { topics: self.subscribed_topics(), commit: if self.joined { self.auto_commit_offsets() } else { Vec::new() } };
            }
        } else if self.joined || !self.member_id.is_empty() {
            return Action::Leave;
        }
        if self.joined && now_ms >= self.next_heartbeat_ms {
            self.next_heartbeat_ms = now_ms + HEARTBEAT_INTERVAL_MS;
            return Action::Heartbeat;
        }
        if now_ms >= self.next_auto_commit_ms {
            self.next_auto_commit_ms = now_ms + AUTO_COMMIT_INTERVAL_MS;
            let commit = self.auto_commit_offsets();
            if !commit.is_empty() {
                return Action::AutoCommit(commit);
            }
        }
        let mut wake = self.expires_at().min(self.next_auto_commit_ms);
        if self.joined {
            wake = wake.min(self.next_heartbeat_ms);
        }
        if self.group_managed() && (self.rejoin || !self.joined) {
            wake = wake.min(self.retry_at_ms);
        }
        Action::Wait(wake.max(now_ms + 1))
    }

    /// Offsets auto-commit would commit now: positions that moved since the last commit.
    fn auto_commit_offsets(&self) -> Vec<(Tp, i64)> {
        if !self.config.auto_commit || !self.joined_or_manual() {
            return Vec::new();
        }
        self.positions.iter().filter(|(tp, o)| self.committed.get(*tp) != Some(*o)).map(|(tp, o)| (tp.clone(), *o)).collect()
    }

    fn joined_or_manual(&self) -> bool {
        self.joined || matches!(self.target, Target::Partitions(_))
    }

    /// The coordinator gave a member id (JoinGroup's MEMBER_ID_REQUIRED, or its answer).
    pub fn on_member_id(&mut self, member_id: String) {
        self.member_id = member_id;
    }

    /// JoinGroup and SyncGroup succeeded: `assignment` is this member's for `generation`.
    pub fn on_joined(&mut self, generation: i32, assignment: Vec<Tp>, now_ms: u64) {
        self.generation = generation;
        self.joined = true;
        self.rejoin = false;
        self.next_heartbeat_ms = now_ms + HEARTBEAT_INTERVAL_MS;
        let mut assignment = assignment;
        assignment.sort();
        assignment.dedup();
        self.set_assignment(assignment);
    }

    /// The coordinator rebalances (REBALANCE_IN_PROGRESS): join again, keeping the member id.
    pub fn on_rebalance(&mut self) {
        self.rejoin = true;
    }

    /// The membership is gone (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, a left group): start over.
    pub fn on_membership_lost(&mut self) {
        self.member_id.clear();
        self.generation = -1;
        self.joined = false;
        self.rejoin = self.group_managed();
        if self.group_managed() {
            self.set_assignment(Vec::new());
        }
    }

    /// A Join or Heartbeat failed for another reason (coordinator moving, unreachable).
    pub fn on_failure(&mut self, now_ms: u64) {
        self.retry_at_ms = now_ms + RETRY_BACKOFF_MS;
    }

    /// LeaveGroup sent (or unneeded).
    pub fn on_left(&mut self) {
        self.member_id.clear();
        self.generation = -1;
        self.joined = false;
    }

    /// Offsets committed by this instance (explicitly or automatically).
    pub fn on_committed(&mut self, offsets: &[(Tp, i64)]) {
        for (tp, o) in offsets {
            self.committed.insert(tp.clone(), *o);
        }
    }

    /// Assigned partitions that need a position before they can be read: those to seek to
    /// the beginning or end, and those with neither a position nor a seek (to be found from
    /// the committed offset, else `auto.offset.reset`).
    pub fn unpositioned(&self) -> (Vec<(Tp, Seek)>, Vec<Tp>) {
        let seeks = self.seeks.iter().map(|(tp, s)| (tp.clone(), *s)).collect();
        let fresh = self.assignment.iter().filter(|tp| !self.positions.contains_key(*tp) && !self.seeks.contains_key(*tp)).cloned().collect();
        (seeks, fresh)
    }

    pub fn is_assigned(&self, tp: &Tp) -> bool {
        self.assignment.binary_search(tp).is_ok()
    }

    /// Sets a partition's position; only an assigned partition has one.
    pub fn set_position(&mut self, tp: &Tp, offset: i64) -> bool {
        if !self.is_assigned(tp) {
            return false;
        }
        self.seeks.remove(tp);
        self.positions.insert(tp.clone(), offset);
        true
    }

    /// A seek to the beginning or end, resolved before the next read.
    pub fn seek_to(&mut self, tp: &Tp, seek: Seek) -> bool {
        if !self.is_assigned(tp) {
            return false;
        }
        self.positions.remove(tp);
        self.seeks.insert(tp.clone(), seek);
        true
    }

    /// The partitions to read and their positions.
    pub fn readable(&self) -> Vec<(Tp, i64)> {
        self.assignment.iter().filter_map(|tp| Some((tp.clone(), *self.positions.get(tp)?))).collect()
    }

    /// A read of `tp` from `from` returned records up to `next`: the position moves on unless
    /// it changed meanwhile (a seek, a rebalance), in which case the records are dropped.
    pub fn on_read(&mut self, tp: &Tp, from: i64, next: i64) -> bool {
        match self.positions.get_mut(tp) {
            Some(p) if *p == from => {
                *p = next;
                true
            }
            _ => false,
        }
    }

    /// What "commit everything consumed" commits: every assigned partition's position.
    pub fn consumed(&self) -> Vec<(Tp, i64)> {
        self.readable()
    }
}

/// Kafka's RangeAssignor: for each topic, its members (sorted by member id) get consecutive
/// ranges of partitions, the first `partitions % members` one more. `members` gives each
/// member's subscribed topics; `partitions` each topic's partition count (unknown topics get
/// nothing).
pub fn range_assign(members: &[(String, Vec<String>)], partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Vec<Tp>> {
    let mut out: BTreeMap<String, Vec<Tp>> = members.iter().map(|(m, _)| (m.clone(), Vec::new())).collect();
    let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (m, topics) in members {
        for t in topics.iter().collect::<BTreeSet<_>>() {
            by_topic.entry(t).or_default().push(m);
        }
    }
    for (topic, mut ms) in by_topic {
        let Some(&n) = partitions.get(topic) else { continue };
        ms.sort();
        let (per, extra) = (n / ms.len() as i32, n % ms.len() as i32);
        for (i, m) in ms.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if let Some(list) = out.get_mut(*m) {
                list.extend((start..start + len).map(|p| (topic.to_string(), p)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> InstanceConfig {
        InstanceConfig::parse(&json!({})).unwrap().1
    }

    fn instance(now: u64) -> Instance {
        Instance::new("g".into(), config(), Duration::from_millis(60_000), now)
    }

    fn tp(t: &str, p: i32) -> Tp {
        (t.to_string(), p)
    }

    #[test]
    fn create_bodies_parse_with_confluents_defaults_and_codes() {
        let (name, c) = InstanceConfig::parse(&json!({})).unwrap();
        assert_eq!(name, None);
        assert_eq!((c.format, c.reset, c.auto_commit, c.fetch_min_bytes, c.request_timeout), (Format::Binary, Reset::Latest, true, 1, Duration::from_secs(1)));
        let (name, c) = InstanceConfig::parse(&json!({"name": "my_c-1", "format": "JSON", "auto.offset.reset": "earliest", "auto.commit.enable": "false",
            "fetch.min.bytes": "100", "consumer.request.timeout.ms": 250}))
        .unwrap();
        assert_eq!(name.as_deref(), Some("my_c-1"));
        assert_eq!((c.format, c.reset, c.auto_commit, c.fetch_min_bytes, c.request_timeout), (Format::Json, Reset::Earliest, false, 100, Duration::from_millis(250)));
        for (body, code) in [
            (json!({"format": "avro"}), 42204),
            (json!({"format": "xml"}), 42204),
            (json!({"auto.offset.reset": "smallest"}), 42204),
            (json!({"auto.commit.enable": "yes"}), 42204),
            (json!({"name": "a/b"}), 42204),
            (json!({"name": ""}), 42204),
            (json!({"name": ["x"]}), 42204),
            (json!({"fetch.min.bytes": 0}), 40001),
            (json!({"consumer.request.timeout.ms": "soon"}), 40001),
            (json!([1]), 42204),
        ] {
            assert_eq!(InstanceConfig::parse(&body).unwrap_err().0, code, "{body}");
        }
    }

    #[test]
    fn range_assignor_matches_kafkas() {
        // Kafka's RangeAssignorTest: 3 partitions, 2 consumers -> [0,1] and [2].
        let counts: BTreeMap<String, i32> = [("t1".to_string(), 3), ("t2".to_string(), 2)].into_iter().collect();
        let members = vec![("b".to_string(), vec!["t1".to_string(), "t2".to_string()]), ("a".to_string(), vec!["t1".to_string(), "t2".to_string()])];
        let a = range_assign(&members, &counts);
        assert_eq!(a["a"], vec![tp("t1", 0), tp("t1", 1), tp("t2", 0)]);
        assert_eq!(a["b"], vec![tp("t1", 2), tp("t2", 1)]);
        // A topic only one member follows, an unknown topic, more members than partitions.
        let members = vec![("a".into(), vec!["t2".into(), "nope".into()]), ("b".into(), vec!["t1".into()]), ("c".into(), vec!["t2".into()])];
        let a = range_assign(&members, &counts);
        assert_eq!((a["a"].clone(), a["b"].len(), a["c"].clone()), (vec![tp("t2", 0)], 3, vec![tp("t2", 1)]));
        let many: Vec<(String, Vec<String>)> = (0..5).map(|i| (format!("m{i}"), vec!["t2".to_string()])).collect();
        let a = range_assign(&many, &counts);
        assert_eq!(a.values().map(Vec::len).sum::<usize>(), 2);
        assert_eq!(a["m0"], vec![tp("t2", 0)]);
    }

    #[test]
    fn range_assignor_gives_every_partition_once() {
        for members in 1..7usize {
            for n in 0..20 {
                let counts: BTreeMap<String, i32> = [("t".to_string(), n)].into_iter().collect();
                let ms: Vec<(String, Vec<String>)> = (0..members).map(|i| (format!("m{i}"), vec!["t".to_string()])).collect();
                let a = range_assign(&ms, &counts);
                let mut all: Vec<i32> = a.values().flatten().map(|(_, p)| *p).collect();
                all.sort();
                assert_eq!(all, (0..n).collect::<Vec<_>>());
                let sizes: Vec<usize> = a.values().map(Vec::len).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }

    #[test]
    fn subscribing_joins_then_heartbeats_on_schedule() {
        let mut i = instance(0);
        assert!(matches!(i.next_action(0), Action::Wait(_)));
        i.subscribe(vec!["b".into(), "a".into(), "a".into()]).unwrap();
        assert_eq!(i.next_action(10), Action::Join { topics: vec!["a".into(), "b".into()], commit: vec![] });
        i.on_member_id("m-1".into());
        i.on_joined(1, vec![tp("a", 1), tp("a", 0)], 20);
        assert_eq!(i.assignment, vec![tp("a", 0), tp("a", 1)]);
        assert_eq!(i.next_action(21), Action::Wait(20 + HEARTBEAT_INTERVAL_MS));
        assert_eq!(i.next_action(20 + HEARTBEAT_INTERVAL_MS), Action::Heartbeat);
        assert!(matches!(i.next_action(21 + HEARTBEAT_INTERVAL_MS), Action::Wait(_)));
        // The coordinator rebalances: join again with the same member id.
        i.on_rebalance();
        assert!(matches!(i.next_action(2000), Action::Join { .. }));
        assert_eq!(i.member_id, "m-1");
        // The membership is lost: the member id goes, the assignment too.
        i.on_membership_lost();
        assert_eq!((i.member_id.as_str(), i.assignment.len()), ("", 0));
        i.on_failure(3000);
        assert!(matches!(i.next_action(3000 + RETRY_BACKOFF_MS - 1), Action::Wait(t) if t == 3000 + RETRY_BACKOFF_MS));
        assert!(matches!(i.next_action(3000 + RETRY_BACKOFF_MS), Action::Join { .. }));
    }

    #[test]
    fn subscriptions_and_assignments_exclude_each_other() {
        let mut i = instance(0);
        i.subscribe(vec!["a".into()]).unwrap();
        assert_eq!(i.assign(vec![tp("a", 0)]), Err(MutuallyExclusive));
        assert_eq!(i.subscribe_pattern("a.*".into(), vec![]), Err(MutuallyExclusive));
        i.unsubscribe();
        i.assign(vec![tp("a", 0)]).unwrap();
        assert_eq!(i.subscribe(vec!["a".into()]), Err(MutuallyExclusive));
        i.unsubscribe();
        i.subscribe_pattern("a.*".into(), vec!["ab".into()]).unwrap();
        assert_eq!(i.subscribed_topics(), vec!["ab".to_string()]);
        assert_eq!(i.subscribe(vec!["a".into()]), Err(MutuallyExclusive));
    }

    #[test]
    fn a_pattern_that_matches_new_topics_rejoins() {
        let mut i = instance(0);
        i.subscribe_pattern("t.*".into(), vec!["t1".into()]).unwrap();
        i.on_joined(1, vec![tp("t1", 0)], 0);
        i.pattern_matches(vec!["t1".into()]);
        assert!(matches!(i.next_action(1), Action::Wait(_)));
        i.pattern_matches(vec!["t1".into(), "t2".into()]);
        assert_eq!(i.next_action(2), Action::Join { topics: vec!["t1".into(), "t2".into()], commit: vec![] });
    }

    #[test]
    fn an_unsubscribed_member_leaves() {
        let mut i = instance(0);
        i.subscribe(vec!["a".into()]).unwrap();
        i.on_member_id("m".into());
        i.on_joined(1, vec![tp("a", 0)], 0);
        i.unsubscribe();
        assert_eq!(i.next_action(1), Action::Leave);
        i.on_left();
        assert!(matches!(i.next_action(2), Action::Wait(_)));
    }

    #[test]
    fn positions_follow_reads_seeks_and_assignments() {
        let mut i = instance(0);
        i.assign(vec![tp("a", 0), tp("a", 1)]).unwrap();
        assert_eq!(i.unpositioned(), (vec![], vec![tp("a", 0), tp("a", 1)]));
        assert!(i.set_position(&tp("a", 0), 5));
        assert!(!i.set_position(&tp("b", 0), 5));
        assert!(i.seek_to(&tp("a", 1), Seek::End));
        assert_eq!(i.unpositioned(), (vec![(tp("a", 1), Seek::End)], vec![]));
        assert_eq!(i.readable(), vec![(tp("a", 0), 5)]);
        assert!(i.on_read(&tp("a", 0), 5, 9));
        // A read that raced a seek is dropped.
        i.set_position(&tp("a", 0), 2);
        assert!(!i.on_read(&tp("a", 0), 9, 12));
        assert_eq!(i.consumed(), vec![(tp("a", 0), 2)]);
        i.assign(vec![tp("a", 1)]).unwrap();
        assert_eq!(i.readable(), vec![]);
    }

    #[test]
    fn auto_commit_commits_moved_positions_and_expiry_commits_last() {
        let mut i = instance(0);
        i.assign(vec![tp("a", 0)]).unwrap();
        i.set_position(&tp("a", 0), 3);
        assert_eq!(i.next_action(AUTO_COMMIT_INTERVAL_MS), Action::AutoCommit(vec![(tp("a", 0), 3)]));
        i.on_committed(&[(tp("a", 0), 3)]);
        assert!(matches!(i.next_action(2 * AUTO_COMMIT_INTERVAL_MS), Action::Wait(_)));
        i.on_read(&tp("a", 0), 3, 4);
        assert_eq!(i.next_action(60_000), Action::Expire { commit: vec![(tp("a", 0), 4)] });
        let mut off = Instance::new("g".into(), InstanceConfig { auto_commit: false, ..config() }, Duration::from_millis(60_000), 0);
        off.assign(vec![tp("a", 0)]).unwrap();
        off.set_position(&tp("a", 0), 3);
        assert!(matches!(off.next_action(AUTO_COMMIT_INTERVAL_MS), Action::Wait(_)));
        assert_eq!(off.next_action(60_000), Action::Expire { commit: vec![] });
    }

    #[test]
    fn use_postpones_expiry_and_waits_never_pass_it() {
        let mut i = instance(0);
        assert_eq!(i.expires_at(), 60_000);
        i.touch(50_000);
        i.touch(10);
        assert_eq!(i.expires_at(), 110_000);
        assert!(matches!(i.next_action(100_000), Action::Wait(t) if t <= 110_000));
        assert!(matches!(i.next_action(110_000), Action::Expire { .. }));
        i.subscribe(vec!["a".into()]).unwrap();
        assert!(matches!(i.next_action(110_001), Action::Expire { .. }), "expiry wins over joining");
    }
}
