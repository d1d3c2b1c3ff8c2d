//! The table of broker properties Lantern accepts: Kafka's names, defaults and value kinds.
//!
//! Every property listed here is honoured by the broker, except the broker-level defaults of
//! topic configs that are stored only (their text says so, and docs/configuration.md why); a
//! property that is not listed is refused at start-up rather than silently ignored.

/// How a property's value is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Long,
    Bool,
    Str,
    /// Comma-separated list.
    List,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A 32-bit integer within these bounds (both included).
    IntBetween(i64, i64),
    /// Kafka's gzip level: 1 to 9, or -1 for the codec's default.
    GzipLevel,
    /// A decimal between 0 and 1.
    Ratio,
}

/// One accepted property.
#[derive(Debug)]
pub struct PropertyDef {
    pub name: &'static str,
    pub kind: Kind,
    /// `None`: no default (derived from other properties or optional).
    pub default: Option<&'static str>,
    /// Smallest accepted value for numeric kinds.
    pub min: Option<i64>,
    pub doc: &'static str,
}

const fn p(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    min: Option<i64>,
    doc: &'static str,
) -> PropertyDef {
    PropertyDef { name, kind, default, min, doc }
}

/// Every property the broker accepts.
pub const PROPERTIES: &[PropertyDef] = &[
    p("node.id", Kind::Int, Some("1"), Some(0), "This broker's id in the cluster."),
    p("broker.rack", Kind::Str, None, None, "Rack of this broker, reported in Metadata."),
    p(
        "listeners",
        Kind::List,
        Some("PLAINTEXT://0.0.0.0:9092"),
        None,
        "Kafka listeners, NAME://host:port. Only PLAINTEXT is supported.",
    ),
    p(
        "advertised.listeners",
        Kind::List,
        None,
        None,
        "Addresses given to clients; defaults to listeners, with 0.0.0.0 advertised as localhost.",
    ),
    p(
        "http.listener",
        Kind::Str,
        Some("0.0.0.0:9404"),
        None,
        "host:port of the HTTP endpoints (/metrics, /health/live, /health/ready).",
    ),
    p("log.dirs", Kind::List, None, None, "Data directories; partitions are spread across them."),
    p("log.dir", Kind::Str, Some("./data"), None, "Single data directory, used when log.dirs is unset."),
    p(
        "metadata.log.dir",
        Kind::Str,
        None,
        None,
        "Where cluster metadata is kept; defaults to the first of log.dirs.",
    ),
    p("num.partitions", Kind::Int, Some("1"), Some(1), "Partitions of an auto-created topic."),
    p(
        "default.replication.factor",
        Kind::Int,
        Some("1"),
        Some(1),
        "Replication factor of auto-created topics and of CreateTopics asking for -1.",
    ),
    p(
        "auto.create.topics.enable",
        Kind::Bool,
        Some("true"),
        None,
        "Create a topic when a client asks Metadata for one that does not exist.",
    ),
    p("delete.topic.enable", Kind::Bool, Some("true"), None, "Allow DeleteTopics."),
    p(
        "socket.request.max.bytes",
        Kind::Int,
        Some("104857600"),
        Some(64),
        "Largest request frame accepted; a larger length prefix closes the connection before any allocation.",
    ),
    p(
        "num.io.threads",
        Kind::Int,
        Some("8"),
        Some(1),
        "Request handler slots: requests handled at once (fsyncs included); more wait in the request queue (RequestQueueSize).",
    ),
    p("message.max.bytes", Kind::Int, Some("1048588"), Some(0), "Largest record batch accepted (topic max.message.bytes)."),
    p("fetch.max.bytes", Kind::Int, Some("57671680"), Some(1024), "Largest Fetch response, whatever the client asks."),
    p("log.segment.bytes", Kind::Int, Some("1073741824"), Some(1024), "Segment size before a roll."),
    p("log.roll.ms", Kind::Long, None, Some(1), "Segment age before a roll; overrides log.roll.hours."),
    p("log.roll.hours", Kind::Int, Some("168"), Some(1), "Segment age before a roll, in hours."),
    p("log.retention.ms", Kind::Long, None, Some(-1), "Time retention; -1 keeps forever. Overrides minutes and hours."),
    p("log.retention.minutes", Kind::Int, None, Some(-1), "Time retention in minutes."),
    p("log.retention.hours", Kind::Int, Some("168"), Some(-1), "Time retention in hours."),
    p("log.retention.bytes", Kind::Long, Some("-1"), Some(-1), "Size retention per partition; -1 unlimited."),
    p(
        "log.retention.check.interval.ms",
        Kind::Long,
        Some("300000"),
        Some(1),
        "How often retention and time-based rolls are checked.",
    ),
    p("log.index.interval.bytes", Kind::Int, Some("4096"), Some(0), "Bytes between offset index entries."),
    p("log.index.size.max.bytes", Kind::Int, Some("10485760"), Some(4), "Default segment.index.bytes: the most an offset or time index of a segment may hold; a segment whose index is full rolls."),
    p("log.roll.jitter.ms", Kind::Long, None, Some(0), "Default segment.jitter.ms: the most a partition's time-based roll is brought forward, so that partitions created together do not all roll at once. Overrides log.roll.jitter.hours."),
    p("log.roll.jitter.hours", Kind::Int, Some("0"), Some(0), "log.roll.jitter.ms in hours."),
    p("log.segment.delete.delay.ms", Kind::Long, Some("60000"), Some(0), "Default file.delete.delay.ms: how long a segment removed by retention or compaction stays on disk (renamed .deleted) before its files are deleted."),
    p("log.preallocate", Kind::Bool, Some("false"), None, "Default preallocate: create each new segment file at its full segment.bytes size."),
    p("compression.type", Kind::Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), Some("producer"), None, "Default compression.type: the codec batches are stored with; producer keeps the producer's, another value recompresses batches that differ."),
    p("compression.gzip.level", Kind::GzipLevel, Some("-1"), None, "Default compression.gzip.level (1-9, -1 the codec's default) of batches the broker recompresses to gzip."),
    p("compression.lz4.level", Kind::IntBetween(1, 17), Some("9"), None, "Default compression.lz4.level; stored only (Lantern's lz4 encoder has one level)."),
    p("compression.zstd.level", Kind::IntBetween(-131072, 22), Some("3"), None, "Default compression.zstd.level of batches the broker recompresses to zstd."),
    p("log.message.timestamp.type", Kind::Choice(&["CreateTime", "LogAppendTime"]), Some("CreateTime"), None, "Default message.timestamp.type: LogAppendTime stamps each batch with the broker's clock at append."),
    p("log.message.timestamp.difference.max.ms", Kind::Long, Some("9223372036854775807"), Some(0), "Default message.timestamp.difference.max.ms (deprecated by Kafka in favour of the before/after pair, which win when set)."),
    p("log.message.timestamp.before.max.ms", Kind::Long, Some("9223372036854775807"), Some(0), "Default message.timestamp.before.max.ms: CreateTime records older than this are refused (INVALID_TIMESTAMP)."),
    p("log.message.timestamp.after.max.ms", Kind::Long, Some("9223372036854775807"), Some(0), "Default message.timestamp.after.max.ms: CreateTime records this far in the future are refused (INVALID_TIMESTAMP)."),
    p("log.message.format.version", Kind::Str, Some("3.0-IV1"), None, "Default message.format.version; stored only (deprecated by Kafka; Lantern writes record format v2 only)."),
    p("log.message.downconversion.enable", Kind::Bool, Some("true"), None, "Default message.downconversion.enable; stored only (Lantern never down-converts)."),
    p("log.local.retention.ms", Kind::Long, Some("-2"), Some(-2), "Default local.retention.ms; stored only (no tiered storage)."),
    p("log.local.retention.bytes", Kind::Long, Some("-2"), Some(-2), "Default local.retention.bytes; stored only (no tiered storage)."),
    p(
        "log.flush.interval.messages",
        Kind::Long,
        Some("9223372036854775807"),
        Some(1),
        "fsync after this many messages; 1 means fsync every batch before acknowledging it.",
    ),
    p(
        "log.flush.interval.ms",
        Kind::Long,
        Some("1000"),
        Some(1),
        "fsync data older than this many milliseconds (Lantern's default: 1000).",
    ),
    p(
        "log.cleanup.policy",
        Kind::Choice(&["delete", "compact", "compact,delete", "delete,compact"]),
        Some("delete"),
        None,
        "Default cleanup.policy of topics.",
    ),
    p("group.initial.rebalance.delay.ms", Kind::Int, Some("3000"), Some(0), "How long a new group waits for more members before its first rebalance."),
    p("group.min.session.timeout.ms", Kind::Int, Some("6000"), Some(1), "Smallest session.timeout.ms a consumer may ask for."),
    p("group.max.session.timeout.ms", Kind::Int, Some("1800000"), Some(1), "Largest session.timeout.ms a consumer may ask for."),
    p("offsets.topic.num.partitions", Kind::Int, Some("50"), Some(1), "Partitions of __consumer_offsets (fixed once the topic exists)."),
    p(
        "offsets.topic.replication.factor",
        Kind::Int,
        Some("1"),
        Some(1),
        "Replication factor of __consumer_offsets, created on the first FindCoordinator once this many brokers are live (until then FindCoordinator answers COORDINATOR_NOT_AVAILABLE, as Kafka). Kafka's default is 3; Lantern's is 1 so that a single node runs with no configuration: set 3 in a cluster.",
    ),
    p("offsets.topic.segment.bytes", Kind::Int, Some("104857600"), Some(1024), "Segment size of __consumer_offsets."),
    p("offsets.retention.minutes", Kind::Int, Some("10080"), Some(1), "How long an empty group's committed offsets are kept."),
    p("offsets.retention.check.interval.ms", Kind::Long, Some("600000"), Some(1), "How often offsets are checked for expiry."),
    p("producer.id.expiration.ms", Kind::Int, Some("86400000"), Some(1), "How long a partition remembers an idempotent producer after its last batch's timestamp."),
    p("producer.id.expiration.check.interval.ms", Kind::Int, Some("600000"), Some(1), "How often idle idempotent producers are forgotten."),
    p("offset.metadata.max.bytes", Kind::Int, Some("4096"), Some(0), "Largest metadata string of a committed offset."),
    p("log.cleaner.enable", Kind::Bool, Some("true"), None, "Run the log cleaner for compacted topics."),
    p("log.cleaner.backoff.ms", Kind::Long, Some("15000"), Some(1), "Pause between log cleaner passes."),
    p(
        "log.cleaner.dedupe.buffer.size",
        Kind::Long,
        Some("134217728"),
        Some(1024),
        "Memory for the cleaner's offset map (about 14,000 keys per MiB); when it fills, a clean stops at the last offset it mapped.",
    ),
    p("log.cleaner.delete.retention.ms", Kind::Long, Some("86400000"), Some(0), "Default delete.retention.ms: how long tombstones survive cleaning."),
    p("log.cleaner.min.compaction.lag.ms", Kind::Long, Some("0"), Some(0), "Default min.compaction.lag.ms."),
    p("log.cleaner.max.compaction.lag.ms", Kind::Long, Some("9223372036854775807"), Some(1), "Default max.compaction.lag.ms: a compacted log with a record this old still uncleaned is cleaned whatever its dirty ratio."),
    p("log.cleaner.min.cleanable.ratio", Kind::Ratio, Some("0.5"), None, "Default min.cleanable.dirty.ratio."),
    p("auto.rebalance.on.broker.join", Kind::Bool, Some("false"), None, "When a broker that holds no replica joins (registers and catches up), the active controller rebalances existing partitions onto it (the plan of lantern-admin rebalance execute, as reassignments)."),
    p("auto.leader.rebalance.enable", Kind::Bool, Some("true"), None, "The active controller gives preferred replicas their leadership back when a broker's imbalance is above leader.imbalance.per.broker.percentage."),
    p("leader.imbalance.check.interval.seconds", Kind::Long, Some("300"), Some(1), "How often the controller checks the leader imbalance."),
    p("leader.imbalance.per.broker.percentage", Kind::Int, Some("10"), Some(0), "The share of a broker's preferred partitions led elsewhere above which leadership is moved back."),
    p("controlled.shutdown.enable", Kind::Bool, Some("true"), None, "At SIGTERM, ask the controller to move this broker's leaderships to other in-sync replicas before stopping."),
    p("unclean.leader.election.enable", Kind::Bool, Some("false"), None, "Default unclean.leader.election.enable: elect a replica outside the ISR when no ISR member is alive (records only the old ISR had are lost)."),
    p("min.insync.replicas", Kind::Int, Some("1"), Some(1), "Default min.insync.replicas: the ISR size below which acks=all produces are refused (NOT_ENOUGH_REPLICAS)."),
    p("replica.high.watermark.checkpoint.interval.ms", Kind::Long, Some("5000"), Some(1), "How often each log directory's high watermarks are written to its replication-offset-checkpoint."),
    p("replica.lag.time.max.ms", Kind::Long, Some("30000"), Some(1), "A follower that has not caught up with its leader for this long leaves the ISR."),
    p("replica.fetch.wait.max.ms", Kind::Int, Some("500"), Some(0), "Longest a follower's fetch waits at the leader for new records."),
    p("leader.replication.throttled.rate", Kind::Long, Some("9223372036854775807"), Some(1), "Bytes a second a leader sends to throttled followers (those listed in a topic's leader.replication.throttled.replicas and not in sync); also settable at run time (IncrementalAlterConfigs on the broker)."),
    p("follower.replication.throttled.rate", Kind::Long, Some("9223372036854775807"), Some(1), "Bytes a second a follower fetches into throttled replicas (listed in follower.replication.throttled.replicas and not in sync); also settable at run time."),
    p("log.dir.failure.probe.interval.ms", Kind::Long, Some("2000"), Some(100), "How often each log directory is probed (a small file written, fsynced, removed); one that fails for any reason but a full disk is taken offline and its partitions' leadership moves to other brokers."),
    p("replica.fetch.backoff.ms", Kind::Int, Some("1000"), Some(0), "How long a follower leaves a partition out of its fetches after an error for it (a full disk, an error from the leader)."),
    p("replica.fetch.max.bytes", Kind::Int, Some("1048576"), Some(1), "Bytes a follower asks for per partition in one fetch (at least one batch is returned)."),
    p("replica.fetch.response.max.bytes", Kind::Int, Some("10485760"), Some(1), "Bytes a follower asks for in one whole fetch."),
    p("connections.max.idle.ms", Kind::Long, Some("600000"), Some(-1), "Close connections idle (nothing read or written) this long; -1 never."),
    p("max.connections", Kind::Int, Some("2147483647"), Some(0), "Open client connections across listeners; at the limit the broker stops accepting until one closes."),
    p("max.connections.per.ip", Kind::Int, Some("2147483647"), Some(0), "Open connections from one IP address; a further one is closed at once and counted."),
    p("metrics.enabled", Kind::Bool, Some("true"), None, "Record request and topic metrics (false only to measure what recording costs)."),
    p("metrics.naming", Kind::Choice(&["strimzi", "confluent"]), Some("strimzi"), None, "Prometheus names of broker metrics: as Strimzi's or Confluent's JMX exporter rules produce them."),
    p("request.log.path", Kind::Str, None, None, "Write the request log (one JSON line per request) to this file; off when unset. `--request-log` sets ./logs/kafka-request.log."),
    p("rest.listeners", Kind::List, Some("http://0.0.0.0:8082"), None, "REST proxy listeners, http://host:port or https://host:port (docs/rest-proxy.md); empty turns the proxy off. When the default cannot bind, the broker runs without it and says so."),
    p("rest.authentication", Kind::Choice(&["none", "basic", "bearer"]), Some("none"), None, "Who may use the REST proxy: none (anyone who reaches the port), basic (users of rest.authentication.basic.users.file) or bearer (JWTs verified with the configured keys)."),
    p("rest.authentication.basic.users.file", Kind::Str, None, None, "With rest.authentication=basic: a file of user:hash lines, bcrypt ($2b$...) or argon2 ($argon2id$...) hashes; read at start-up."),
    p("rest.authentication.bearer.jwks.file", Kind::Str, None, None, "With rest.authentication=bearer: a JWKS file (RSA and EC P-256/P-384 keys) that verifies the tokens; read at start-up."),
    p("rest.authentication.bearer.public.key.file", Kind::List, None, None, "With rest.authentication=bearer: PEM public key files (RSA or EC) that verify the tokens, beside or instead of a JWKS file."),
    p("rest.authentication.bearer.issuer", Kind::Str, None, None, "With rest.authentication=bearer: the iss a token must carry (required)."),
    p("rest.authentication.bearer.audience", Kind::Str, None, None, "With rest.authentication=bearer: the aud a token must include (required)."),
    p("rest.authentication.bearer.groups.claim", Kind::Str, Some("groups"), None, "The token claim listing the caller's groups (a list or a space-separated string; a dotted path such as realm_access.roles reaches into objects)."),
    p("rest.authentication.bearer.allowed.groups", Kind::List, None, None, "Groups allowed to use the REST proxy; a valid token in none of them gets 403. Unset: every valid token is allowed."),
    p("rest.tls.cert", Kind::Str, None, None, "PEM certificate chain of the https:// REST listeners (leaf first)."),
    p("rest.tls.key", Kind::Str, None, None, "PEM private key (PKCS#8, PKCS#1 or SEC1) of rest.tls.cert."),
    p("rest.max.request.bytes", Kind::Long, Some("16777216"), Some(1024), "Largest REST request body (and, in streaming produce, largest single record) accepted; larger ones get 413 before they are read."),
    p("rest.request.timeout.ms", Kind::Long, Some("30000"), Some(1), "A REST request body (in streaming produce: the next record) that takes longer to arrive is answered 408 and the connection closed."),
    p("rest.consumer.instance.timeout.ms", Kind::Long, Some("300000"), Some(1000), "A v2 REST consumer instance not used for this long is deleted and leaves its consumer group (Confluent's consumer.instance.timeout.ms)."),
    p("rest.consumer.max.instances", Kind::Int, Some("1000"), Some(0), "v2 REST consumer instances this broker's proxy keeps at once; creating one more answers 429."),
    p("cluster.id", Kind::Str, None, None, "Cluster id; generated and stored in meta.properties when unset."),
    p("process.roles", Kind::List, Some("broker,controller"), None, "broker, controller, or both: what this node does in the cluster."),
    p(
        "controller.quorum.voters",
        Kind::List,
        None,
        None,
        "The metadata quorum, id@host:port of each voter's CONTROLLER listener; unset: this node alone is the quorum.",
    ),
    p("controller.listener.names", Kind::List, Some("CONTROLLER"), None, "Names of the listeners the controllers' quorum traffic uses."),
    p("inter.broker.listener.name", Kind::Str, None, None, "Listener brokers use to reach each other; defaults to the first non-controller listener."),
    p(
        "listener.security.protocol.map",
        Kind::List,
        Some("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
        None,
        "NAME:PROTOCOL for each listener name; only PLAINTEXT is supported.",
    ),
    p("broker.heartbeat.interval.ms", Kind::Int, Some("400"), Some(10), "How often a broker heartbeats to the active controller."),
    p(
        "broker.session.timeout.ms",
        Kind::Int,
        Some("2000"),
        Some(100),
        "A broker that has not heartbeated for this long is fenced (removed from Metadata, its leaderships moved).",
    ),
    p("controller.quorum.election.timeout.ms", Kind::Int, Some("1000"), Some(50), "A voter that hears nothing from a leader for this long starts an election."),
    p(
        "controller.quorum.request.timeout.ms",
        Kind::Int,
        Some("2000"),
        Some(10),
        "How long a controller RPC (vote, append, forwarded write) may take before it is abandoned.",
    ),
    p("metadata.log.max.snapshot.interval.records", Kind::Long, Some("20000"), Some(10), "Take a metadata snapshot after this many records; the log before it is removed."),
];

/// Looks a property up by its Kafka name.
pub fn lookup(name: &str) -> Option<&'static PropertyDef> {
    PROPERTIES.iter().find(|d| d.name == name)
}
