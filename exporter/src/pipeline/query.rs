//! `lantern-exporter logs`: reads the log topic back over Kafka (every partition, from its
//! earliest offset, or the first at --since, to its high watermark, each from its leader) and
//! answers an operator's questions: events in a time range filtered by level, logger and text,
//! as JSON lines or a table, or counts grouped by a field.
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::kafka::{self, Context};
use super::timefmt;

/// How long reading may go without a record before the command gives up (a partition whose
/// leader is down has nothing to give).
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

pub const USAGE: &str = "usage: lantern-exporter logs [flags]
Reads the events the pipeline shipped and prints those matching every filter given.
  --bootstrap-server=H:P[,H:P...]  brokers of the cluster to read from (default 127.0.0.1:9092)
  --topic=NAME             log topic (default __lantern_logs)
  --since=T --until=T      time range: RFC 3339 (2026-11-22T02:00:00Z) or a duration back
                           from now (90s, 15m, 2h, 7d); compared with the event's timestamp
  --level=L                level (INFO, WARN, ERROR...; case-insensitive)
  --logger=NAME            logger (JSON target), or a prefix of it ending at a dot
  --grep=TEXT              events whose JSON contains TEXT
  --count-by=FIELD         print counts per value of FIELD (level, target, host, apiName,
                           log_type, requestHeader.clientId...) instead of the events
  --output=table|json      readable table (default) or one JSON object per line";

#[derive(Debug, Default, PartialEq)]
pub struct Query {
    pub bootstrap: String,
    pub topic: String,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub level: Option<String>,
    pub logger: Option<String>,
    pub grep: Option<String>,
    pub count_by: Option<String>,
    pub json: bool,
    pub help: bool,
}

pub fn parse_args(args: &[String], now_ms: i64) -> Result<Query, String> {
    let mut q = Query { bootstrap: super::DEFAULT_BOOTSTRAP.into(), topic: super::DEFAULT_TOPIC.into(), ..Default::default() };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--") else { return Err(format!("unexpected argument {arg:?}: flags start with --")) };
        if flag == "help" {
            q.help = true;
            continue;
        }
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, v.to_string()),
            None => (flag, it.next().ok_or_else(|| format!("flag --{flag} needs a value"))?.clone()),
        };
        let time = |v: &str| timefmt::parse_time_bound(v, now_ms).ok_or_else(|| format!("--{name}: {v:?} is neither RFC 3339 nor a duration like 15m"));
        match name {
            "bootstrap-server" => q.bootstrap = value,
            "topic" => q.topic = value,
            "since" => q.since_ms = Some(time(&value)?),
            "until" => q.until_ms = Some(time(&value)?),
            "level" => q.level = Some(value),
            "logger" => q.logger = Some(value),
            "grep" => q.grep = Some(value),
            "count-by" => q.count_by = Some(value),
            "output" => {
                q.json = match value.as_str() {
                    "json" => true,
                    "table" => false,
                    _ => return Err(format!("--output: expected table or json, got {value:?}")),
                }
            }
            _ => return Err(format!("unknown flag --{name}")),
        }
    }
    Ok(q)
}

/// The value at a dotted path (`requestHeader.clientId`) as text.
fn field(event: &Value, path: &str) -> Option<String> {
    let mut v = event;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Query {
    /// Whether an event (its JSON text and parsed value; `record_ts` if it has no timestamp) matches.
    pub fn matches(&self, raw: &str, event: &Value, record_ts: i64) -> bool {
        let ts = event.get("timestamp").and_then(Value::as_str).and_then(timefmt::parse_rfc3339_ms).unwrap_or(record_ts);
        if self.since_ms.is_some_and(|s| ts < s) || self.until_ms.is_some_and(|u| ts > u) {
            return false;
        }
        if let Some(level) = &self.level {
            if !field(event, "level").is_some_and(|l| l.eq_ignore_ascii_case(level)) {
                return false;
            }
        }
        if let Some(logger) = &self.logger {
            let ok = field(event, "target").is_some_and(|t| t == *logger || t.starts_with(&format!("{logger}.")));
            if !ok {
                return false;
            }
        }
        if let Some(text) = &self.grep {
            if !raw.contains(text.as_str()) {
                return false;
            }
        }
        true
    }
}

/// Runs the command, printing to `out`.
pub fn run(q: &Query, out: &mut impl Write) -> Result<(), String> {
    let reader = TopicReader::open(q)?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let w = |r: std::io::Result<()>| r.map_err(|e| format!("cannot write the output: {e}"));
    if q.count_by.is_none() && !q.json {
        w(writeln!(out, "{:<27} {:<5} {:<32} {:<12} MESSAGE", "TIMESTAMP", "LEVEL", "LOGGER", "HOST"))?;
    }
    reader.read(|raw, record_ts| {
        let event: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        if !q.matches(raw, &event, record_ts) {
            return Ok(());
        }
        match &q.count_by {
            Some(f) => *counts.entry(field(&event, f).unwrap_or_else(|| "(none)".into())).or_default() += 1,
            None if q.json => w(writeln!(out, "{raw}"))?,
            None => {
                let get = |k: &str| field(&event, k).unwrap_or_else(|| "-".into());
                let ts = event.get("timestamp").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| timefmt::format_rfc3339_ms(record_ts));
                let level = field(&event, "level").unwrap_or_else(|| get("log_type"));
                let logger = field(&event, "target").or_else(|| field(&event, "apiName")).unwrap_or_else(|| "-".into());
                w(writeln!(out, "{:<27} {:<5} {:<32} {:<12} {}", ts, level, logger, get("host"), get("message")))?;
            }
        }
        Ok(())
    })?;
    if q.count_by.is_some() {
        let mut rows: Vec<(String, u64)> = counts.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (value, n) in rows {
            if q.json {
                w(writeln!(out, "{}", serde_json::json!({"value": value, "count": n})))?;
            } else {
                w(writeln!(out, "{n:>10}  {value}"))?;
            }
        }
    }
    Ok(())
}

/// The topic's records from where the query starts to each partition's high watermark as it was
/// when the command started, read by a librdkafka consumer from each partition's leader.
struct TopicReader<'q> {
    q: &'q Query,
    consumer: BaseConsumer<Context>,
    /// (partition, first offset to read, high watermark)
    ranges: Vec<(i32, i64, i64)>,
}

impl<'q> TopicReader<'q> {
    fn open(q: &'q Query) -> Result<TopicReader<'q>, String> {
        let consumer: BaseConsumer<Context> = kafka::base_config(&q.bootstrap)
            // librdkafka assigns partitions only to a consumer with a group id; this one never
            // joins the group and never commits.
            .set("group.id", "lantern-exporter-logs")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .create_with_context(Context::default())
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
        let md = consumer
            .fetch_metadata(Some(&q.topic), kafka::REQUEST_TIMEOUT)
            .map_err(|e| format!("cannot read the metadata of {} from {}: {e}", q.topic, q.bootstrap))?;
        let topic = md.topics().iter().find(|t| t.name() == q.topic).ok_or("the brokers returned no metadata for the topic")?;
        if let Some(err) = topic.error() {
            return Err(format!(
                "topic {} is not readable ({}); has the pipeline shipped anything yet? (--topic names another topic)",
                q.topic,
                RDKafkaErrorCode::from(err)
            ));
        }
        let mut ranges = Vec::new();
        let mut since = TopicPartitionList::new();
        for p in topic.partitions() {
            let (earliest, latest) = consumer
                .fetch_watermarks(&q.topic, p.id(), kafka::REQUEST_TIMEOUT)
                .map_err(|e| format!("cannot read the offsets of partition {}: {e}", p.id()))?;
            ranges.push((p.id(), earliest, latest));
            if let Some(ms) = q.since_ms {
                since.add_partition_offset(&q.topic, p.id(), Offset::Offset(ms)).map_err(|e| e.to_string())?;
            }
        }
        if q.since_ms.is_some() {
            // Records are stamped when shipped, which is never before the event happened, so the
            // first record stamped at or after --since is where matching events can begin.
            let found = consumer.offsets_for_times(since, kafka::REQUEST_TIMEOUT).map_err(|e| format!("cannot look up offsets by time: {e}"))?;
            for (p, from, latest) in &mut ranges {
                *from = match found.find_partition(&q.topic, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.max(*from),
                    // No record at or after --since.
                    _ => *latest,
                };
            }
        }
        Ok(TopicReader { q, consumer, ranges })
    }

    /// Calls `each(value, record timestamp)` for every record of every partition's range.
    fn read(&self, mut each: impl FnMut(&str, i64) -> Result<(), String>) -> Result<(), String> {
        let mut assignment = TopicPartitionList::new();
        let mut left: BTreeMap<i32, i64> = BTreeMap::new();
        for &(p, from, latest) in &self.ranges {
            if from < latest {
                assignment.add_partition_offset(&self.q.topic, p, Offset::Offset(from)).map_err(|e| e.to_string())?;
                left.insert(p, latest);
            }
        }
        self.consumer.assign(&assignment).map_err(|e| format!("cannot assign the partitions: {e}"))?;
        let mut last_progress = Instant::now();
        while !left.is_empty() {
            match self.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    let Some(&latest) = left.get(&m.partition()) else { continue };
                    if m.offset() < latest {
                        if let Some(value) = m.payload() {
                            each(&String::from_utf8_lossy(value), m.timestamp().to_millis().unwrap_or(0))?;
                        }
                    }
                    if m.offset() + 1 >= latest {
                        left.remove(&m.partition());
                    }
                }
                // The partition's end as of this fetch: nothing more below its old high watermark.
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    left.remove(&p);
                }
                Some(Err(e)) => return Err(format!("cannot read {}: {e}", self.q.topic)),
                None if last_progress.elapsed() > STALL_TIMEOUT => {
                    let parts: Vec<String> = left.keys().map(i32::to_string).collect();
                    return Err(format!(
                        "no records from partition(s) {} of {} for {STALL_TIMEOUT:?}: is their leader down?",
                        parts.join(", "),
                        self.q.topic
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_filters() {
        let args: Vec<String> = ["--since=15m", "--level", "warn", "--logger=kafka.log", "--grep=disk"].iter().map(|s| s.to_string()).collect();
        let q = parse_args(&args, 1_000_000).unwrap();
        assert_eq!(q.since_ms, Some(100_000));
        let ev = |level: &str, target: &str, msg: &str| {
            let raw = serde_json::json!({"timestamp": "1970-01-01T00:05:00Z", "level": level, "target": target, "message": msg}).to_string();
            let v: Value = serde_json::from_str(&raw).unwrap();
            q.matches(&raw, &v, 0)
        };
        assert!(ev("WARN", "kafka.log.LogCleaner", "disk full"));
        assert!(!ev("INFO", "kafka.log.LogCleaner", "disk full"));
        assert!(!ev("WARN", "kafka.logx", "disk full"));
        assert!(!ev("WARN", "kafka.log", "fine"));
        assert!(parse_args(&["--since=yesterday".to_string()], 0).is_err());
    }

    #[test]
    fn dotted_fields() {
        let v = serde_json::json!({"requestHeader": {"clientId": "c1", "correlationId": 4}});
        assert_eq!(field(&v, "requestHeader.clientId").as_deref(), Some("c1"));
        assert_eq!(field(&v, "requestHeader.correlationId").as_deref(), Some("4"));
        assert_eq!(field(&v, "level"), None);
    }
}
