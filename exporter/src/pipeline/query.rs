//! `lantern-exporter logs`: reads the log topic back over Kafka (ListOffsets, then Fetch from
//! the earliest to the high watermark of every partition) and answers an operator's questions:
//! events in a time range filtered by level, logger and text, as JSON lines or a table, or
//! counts grouped by a field.
use std::collections::BTreeMap;
use std::io::Write;

use kafka_protocol::messages::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use serde_json::Value;

use super::kafka::{self, Connection};
use super::timefmt;

pub const USAGE: &str = "usage: lantern-exporter logs [flags]
Reads the events the pipeline shipped and prints those matching every filter given.
  --bootstrap-server=H:P   broker to read from (default 127.0.0.1:9092)
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
pub async fn run(q: &Query, out: &mut impl Write) -> Result<(), String> {
    let mut conn = Connection::connect(&q.bootstrap).await.map_err(|e| e.to_string())?;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(kafka::topic_name(&q.topic)))]))
        .with_allow_auto_topic_creation(false);
    let md: MetadataResponse = conn.send(ApiKey::Metadata, &req).await.map_err(|e| e.to_string())?;
    let topic = md.topics.first().ok_or("the broker returned no metadata for the topic")?;
    if topic.error_code != 0 {
        return Err(format!(
            "topic {} is not readable (error code {}); has the pipeline shipped anything yet? (--topic names another topic)",
            q.topic, topic.error_code
        ));
    }
    let partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let w = |r: std::io::Result<()>| r.map_err(|e| format!("cannot write the output: {e}"));
    if q.count_by.is_none() && !q.json {
        w(writeln!(out, "{:<27} {:<5} {:<32} {:<12} MESSAGE", "TIMESTAMP", "LEVEL", "LOGGER", "HOST"))?;
    }
    for p in partitions {
        let earliest = list_offset(&mut conn, &q.topic, p, -2).await?;
        let latest = list_offset(&mut conn, &q.topic, p, -1).await?;
        // Records are stamped when shipped, which is never before the event happened, so the
        // first record stamped at or after --since is where matching events can begin.
        let from_since = match q.since_ms {
            Some(since) => list_offset(&mut conn, &q.topic, p, since).await?,
            None => earliest,
        };
        let mut offset = if from_since < 0 { latest } else { from_since.max(earliest) };
        while offset < latest {
            let records = fetch(&mut conn, &q.topic, p, offset).await?;
            let Some(last) = records.last().map(|r| r.offset) else { break };
            for r in records.iter().filter(|r| r.offset >= offset && r.offset < latest) {
                let Some(value) = &r.value else { continue };
                let raw = String::from_utf8_lossy(value);
                let event: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
                if !q.matches(&raw, &event, r.timestamp) {
                    continue;
                }
                match &q.count_by {
                    Some(f) => *counts.entry(field(&event, f).unwrap_or_else(|| "(none)".into())).or_default() += 1,
                    None if q.json => w(writeln!(out, "{raw}"))?,
                    None => {
                        let get = |k: &str| field(&event, k).unwrap_or_else(|| "-".into());
                        let ts = event.get("timestamp").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| timefmt::format_rfc3339_ms(r.timestamp));
                        let level = field(&event, "level").unwrap_or_else(|| get("log_type"));
                        let logger = field(&event, "target").or_else(|| field(&event, "apiName")).unwrap_or_else(|| "-".into());
                        w(writeln!(out, "{:<27} {:<5} {:<32} {:<12} {}", ts, level, logger, get("host"), get("message")))?;
                    }
                }
            }
            offset = last + 1;
        }
    }
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

async fn list_offset(conn: &mut Connection, topic: &str, partition: i32, timestamp: i64) -> Result<i64, String> {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(kafka::topic_name(topic))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp)])]);
    let resp: ListOffsetsResponse = conn.send(ApiKey::ListOffsets, &req).await.map_err(|e| e.to_string())?;
    let p = resp.topics.iter().flat_map(|t| t.partitions.iter()).find(|x| x.partition_index == partition).ok_or("ListOffsets answered no partition")?;
    if p.error_code != 0 {
        return Err(format!("ListOffsets for partition {partition} failed with error code {}", p.error_code));
    }
    Ok(p.offset)
}

async fn fetch(conn: &mut Connection, topic: &str, partition: i32, offset: i64) -> Result<Vec<kafka_protocol::records::Record>, String> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(8 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(kafka::topic_name(topic))
            .with_partitions(vec![FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(4 * 1024 * 1024)])]);
    let resp: FetchResponse = conn.send(ApiKey::Fetch, &req).await.map_err(|e| e.to_string())?;
    let p = resp.responses.iter().flat_map(|t| t.partitions.iter()).find(|x| x.partition_index == partition).ok_or("Fetch answered no partition")?;
    if p.error_code != 0 {
        return Err(format!("Fetch of partition {partition} at offset {offset} failed with error code {}", p.error_code));
    }
    match &p.records {
        Some(r) => kafka::decode_batches(r.clone()),
        None => Ok(Vec::new()),
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
