//! The metric catalogue: every metric the broker knows, with its Kafka MBean identity
//! (domain, type, name, keys), shape, help and status. `/metrics`, the naming profiles and
//! docs/metrics.md are all generated from this one table.
//!
//! Metrics of parts not built yet are listed with `Status::Planned` and never exported.

/// How the metric behaves, as Kafka's metrics library models it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A Yammer Meter (`…PerSec`), exported from its Count attribute: a counter.
    Meter,
    /// A Yammer Gauge (Value attribute).
    Gauge,
    /// A Yammer Histogram or Timer: percentiles plus Count, exported as a summary.
    Histogram,
    /// An attribute of a Kafka-metrics bean without `name=` (socket-server-metrics,
    /// raft-metrics, ...); `name` is the attribute, e.g. `connection-count`. Attributes ending
    /// in `-total` are counters; `-avg`, `-max` and `-rate` ones are Kafka's sampled statistics
    /// over the last 30 to 60 seconds (`metrics::windowed`), exported as gauges.
    Attribute,
    /// A string-valued attribute (raft-metrics `current-state`): one series whose label, named
    /// after the attribute, carries the value, and whose value is 1 (the JMX exporter's
    /// `value: 1` rule in Strimzi's kafka-metrics.yaml).
    StateAttribute,
    /// A native Prometheus metric named as-is (process metrics, kafka_exporter's names).
    NativeCounter,
    NativeGauge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exported,
    /// Listed for completeness; not exported until the named work lands.
    Planned(&'static str),
}

#[derive(Debug)]
pub struct MetricDef {
    /// `kafka.server`, `kafka.network`, …; empty for native metrics.
    pub domain: &'static str,
    /// The MBean `type=`.
    pub bean_type: &'static str,
    /// The MBean `name=` (or attribute, or native name).
    pub name: &'static str,
    /// MBean keys after name, in Kafka's order; they become labels.
    pub keys: &'static [&'static str],
    /// Meters with a `topic` key also exist without it (the all-topics MBean).
    pub also_without_keys: bool,
    pub shape: Shape,
    pub help: &'static str,
    pub status: Status,
}

const fn m(domain: &'static str, bean_type: &'static str, name: &'static str, keys: &'static [&'static str], shape: Shape, help: &'static str) -> MetricDef {
    MetricDef { domain, bean_type, name, keys, also_without_keys: false, shape, help, status: Status::Exported }
}
const fn topic_meter(name: &'static str, help: &'static str) -> MetricDef {
    MetricDef { domain: "kafka.server", bean_type: "BrokerTopicMetrics", name, keys: &["topic"], also_without_keys: true, shape: Shape::Meter, help, status: Status::Exported }
}
#[allow(dead_code)] // kept for metrics of parts not built yet (Status::Planned)
const fn planned(domain: &'static str, bean_type: &'static str, name: &'static str, keys: &'static [&'static str], shape: Shape, help: &'static str, why: &'static str) -> MetricDef {
    MetricDef { domain, bean_type, name, keys, also_without_keys: false, shape, help, status: Status::Planned(why) }
}
const fn request_hist(name: &'static str, help: &'static str) -> MetricDef {
    m("kafka.network", "RequestMetrics", name, &["request"], Shape::Histogram, help)
}

use Shape::*;

// The REST proxy (docs/rest-proxy.md). `endpoint` is the method and route template.
pub static REST_REQUESTS: MetricDef = m("kafka.rest", "RestMetrics", "RequestsPerSec", &["endpoint"], Meter, "REST proxy requests answered, by endpoint (METHOD /route template; `unmatched` for paths no route has).");
pub static REST_ERRORS: MetricDef = m("kafka.rest", "RestMetrics", "ErrorsPerSec", &["endpoint", "status"], Meter, "REST proxy requests answered with an HTTP status of 400 or more, by endpoint and status.");
pub static REST_LATENCY: MetricDef = m("kafka.rest", "RestMetrics", "RequestLatencyMs", &["endpoint"], Histogram, "REST proxy request time until the response head, ms (a streamed produce response goes on after it).");
pub static REST_RECORDS_IN: MetricDef = m("kafka.rest", "RestMetrics", "RecordsInPerSec", &[], Meter, "Records the REST proxy produced (acknowledged by their leaders).");
pub static REST_BYTES_IN: MetricDef = m("kafka.rest", "RestMetrics", "BytesInPerSec", &[], Meter, "Key and value bytes of the records the REST proxy produced.");
pub static REST_RECORDS_OUT: MetricDef = m("kafka.rest", "RestMetrics", "RecordsOutPerSec", &[], Meter, "Records the REST proxy returned to consumers (the v1 consume route).");
pub static REST_AUTH_FAILURES: MetricDef = m("kafka.rest", "RestMetrics", "AuthenticationFailuresPerSec", &["mode", "reason"], Meter, "REST proxy requests refused by rest.authentication, by mode (basic, bearer) and reason (missing, malformed, bad_credentials, expired, not_yet_valid, bad_signature, wrong_issuer, wrong_audience, unknown_key, bad_algorithm, missing_claim: 401; group_not_allowed: 403).");
pub static REST_BYTES_OUT: MetricDef = m("kafka.rest", "RestMetrics", "BytesOutPerSec", &[], Meter, "Key and value bytes of the records the REST proxy returned to consumers.");

// BrokerTopicMetrics
pub static MESSAGES_IN: MetricDef = topic_meter("MessagesInPerSec", "Messages appended to logs.");
pub static BYTES_IN: MetricDef = topic_meter("BytesInPerSec", "Record batch bytes received from producers.");
pub static BYTES_OUT: MetricDef = topic_meter("BytesOutPerSec", "Record batch bytes sent to consumers.");
pub static BYTES_REJECTED: MetricDef = topic_meter("BytesRejectedPerSec", "Record batch bytes refused (too large, corrupt, out of order).");
pub static TOTAL_PRODUCE_REQUESTS: MetricDef = topic_meter("TotalProduceRequestsPerSec", "Produce requests, counted per topic-partition they address.");
pub static TOTAL_FETCH_REQUESTS: MetricDef = topic_meter("TotalFetchRequestsPerSec", "Fetch requests, counted per topic-partition they address.");
pub static FAILED_PRODUCE_REQUESTS: MetricDef = topic_meter("FailedProduceRequestsPerSec", "Produce partitions answered with an error.");
pub static FAILED_FETCH_REQUESTS: MetricDef = topic_meter("FailedFetchRequestsPerSec", "Fetch partitions answered with an error.");
pub static INVALID_CRC: MetricDef = topic_meter("InvalidMessageCrcRecordsPerSec", "Batches refused because their CRC did not match.");
pub static INVALID_OFFSET_OR_SEQUENCE: MetricDef = topic_meter("InvalidOffsetOrSequenceRecordsPerSec", "Batches refused for an out-of-order idempotent sequence.");
pub static INVALID_MAGIC_NUMBER: MetricDef = topic_meter("InvalidMagicNumberRecordsPerSec", "Batches refused for their magic byte: not 2 in a Produce v3+ request (the formats before v2 come only in Produce v0-2, which are converted), or no format Kafka has.");
pub static NO_KEY_COMPACTED: MetricDef = topic_meter("NoKeyCompactedTopicRecordsPerSec", "Records without a key refused by a compacted topic (cleanup.policy=compact).");
pub static REPLICATION_BYTES_IN: MetricDef = topic_meter("ReplicationBytesInPerSec", "Bytes fetched from leaders by this follower.");
pub static REPLICATION_BYTES_OUT: MetricDef = topic_meter("ReplicationBytesOutPerSec", "Bytes sent to followers (not counted in BytesOutPerSec).");
pub static REASSIGNMENT_BYTES_IN: MetricDef = topic_meter("ReassignmentBytesInPerSec", "Bytes fetched by this broker into replicas a reassignment is adding (part of ReplicationBytesInPerSec).");
pub static PRODUCE_MESSAGE_CONVERSIONS: MetricDef = topic_meter("ProduceMessageConversionsPerSec", "Records up-converted from the message formats before v2 (magic 0/1, Produce v0-2) to record batch v2.");
pub static FETCH_MESSAGE_CONVERSIONS: MetricDef = topic_meter("FetchMessageConversionsPerSec", "Records down-converted to magic 0/1 for consumers fetching below v4.");
pub static REASSIGNMENT_BYTES_OUT: MetricDef = topic_meter("ReassignmentBytesOutPerSec", "Bytes sent to replicas a reassignment is adding (part of ReplicationBytesOutPerSec).");

// RequestMetrics
pub static REQUESTS: MetricDef = m("kafka.network", "RequestMetrics", "RequestsPerSec", &["request", "version"], Meter, "Requests received, by API and version.");
pub static ERRORS: MetricDef = m("kafka.network", "RequestMetrics", "ErrorsPerSec", &["request", "error"], Meter, "Error codes in responses, by API and error name (NONE counts successes).");
pub static TOTAL_TIME: MetricDef = request_hist("TotalTimeMs", "Time from the request being read to its response being sent, ms.");
pub static REQUEST_QUEUE_TIME: MetricDef = request_hist("RequestQueueTimeMs", "Time a read request waited before handling, ms.");
pub static LOCAL_TIME: MetricDef = request_hist("LocalTimeMs", "Time the broker spent handling the request itself, ms.");
pub static REMOTE_TIME: MetricDef = request_hist("RemoteTimeMs", "Time a request waited on others (long-poll fetch wait, group rebalance), ms.");
pub static RESPONSE_QUEUE_TIME: MetricDef = request_hist("ResponseQueueTimeMs", "Time a response waited before sending, ms.");
pub static RESPONSE_SEND_TIME: MetricDef = request_hist("ResponseSendTimeMs", "Time to write the response to the socket, ms.");
pub static REQUEST_BYTES: MetricDef = request_hist("RequestBytes", "Size of requests, bytes.");
pub static REQUEST_QUEUE_SIZE: MetricDef = m("kafka.network", "RequestChannel", "RequestQueueSize", &[], Gauge, "Requests read from clients and waiting for a request handler slot (num.io.threads), new ones and ones resuming after a remote wait.");
pub static RESPONSE_QUEUE_SIZE: MetricDef = m("kafka.network", "RequestChannel", "ResponseQueueSize", &[], Gauge, "Responses handled and not yet being written to their connection (ResponseQueueTimeMs is their wait). Each connection's task encodes and writes its own response as soon as it is handled, so this is the responses being encoded: near 0.");
pub static NETWORK_IDLE: MetricDef = m("kafka.network", "SocketServer", "NetworkProcessorAvgIdlePercent", &[], Gauge, "1 - (time the worker threads spent inside socket reads and writes and decoding requests) / (elapsed time x worker threads), over the time since the previous scrape (at least 1 s), 0..1.");
pub static HANDLER_IDLE: MetricDef = m("kafka.server", "KafkaRequestHandlerPool", "RequestHandlerAvgIdlePercent", &[], Gauge, "1 - (request handler slot time held by requests) / (elapsed time x num.io.threads), over the time since the previous scrape (at least 1 s), 0..1. A request holds a slot while it is handled, fsyncs and blocking reads included, not while it waits on others (RemoteTimeMs).");

// socket-server-metrics
pub static CONNECTION_COUNT: MetricDef = m("kafka.server", "socket-server-metrics", "connection-count", &["listener", "networkProcessor"], Attribute, "Open client connections.");
pub static CONNECTION_CREATION_TOTAL: MetricDef = m("kafka.server", "socket-server-metrics", "connection-creation-total", &["listener", "networkProcessor"], Attribute, "Connections accepted.");
pub static CONNECTION_CLOSE_TOTAL: MetricDef = m("kafka.server", "socket-server-metrics", "connection-close-total", &["listener", "networkProcessor"], Attribute, "Connections closed.");
pub static CONNECTION_CREATION_RATE: MetricDef = m("kafka.server", "socket-server-metrics", "connection-creation-rate", &["listener", "networkProcessor"], Attribute, "Connections accepted per second over the last 30-60 s.");
pub static CONNECTION_CLOSE_RATE: MetricDef = m("kafka.server", "socket-server-metrics", "connection-close-rate", &["listener", "networkProcessor"], Attribute, "Connections closed per second over the last 30-60 s.");
pub static ACCEPTOR_BLOCKED: MetricDef = m("kafka.network", "Acceptor", "AcceptorBlockedPercent", &["listener"], Gauge, "Share of time the listener's acceptor waited for a slot under max.connections, 0..1 (since the previous scrape, windows of at least 1 s).");
pub static CONNECTIONS_BY_SOFTWARE: MetricDef = m("kafka.server", "socket-server-metrics", "connections", &["clientSoftwareName", "clientSoftwareVersion", "listener", "networkProcessor"], Attribute, "Open connections by the client software they announced (ApiVersions v3+).");

// ReplicaManager and partitions
pub static PARTITION_COUNT: MetricDef = m("kafka.server", "ReplicaManager", "PartitionCount", &[], Gauge, "Partitions hosted by this broker.");
pub static LEADER_COUNT: MetricDef = m("kafka.server", "ReplicaManager", "LeaderCount", &[], Gauge, "Partitions this broker leads.");
pub static UNDER_REPLICATED: MetricDef = m("kafka.server", "ReplicaManager", "UnderReplicatedPartitions", &[], Gauge, "Led partitions whose ISR is smaller than their replication factor (replicas being removed by a reassignment not counted).");
pub static LEADER_REPLICATION_BYTE_RATE: MetricDef = m("kafka.server", "LeaderReplication", "byte-rate", &[], Attribute, "Bytes a second this broker sent to throttled followers (leader.replication.throttled.replicas, not in sync) over the last second.");
pub static FOLLOWER_REPLICATION_BYTE_RATE: MetricDef = m("kafka.server", "FollowerReplication", "byte-rate", &[], Attribute, "Bytes a second this broker fetched into throttled replicas (follower.replication.throttled.replicas, not in sync) over the last second.");
pub static LEADER_REPLICATION_THROTTLE: MetricDef = m("kafka.server", "LeaderReplication", "throttled-rate", &[], Attribute, "The leader.replication.throttled.rate in force, bytes a second (9.2e18: none).");
pub static FOLLOWER_REPLICATION_THROTTLE: MetricDef = m("kafka.server", "FollowerReplication", "throttled-rate", &[], Attribute, "The follower.replication.throttled.rate in force, bytes a second (9.2e18: none).");
pub static SHARED_DOMAIN_PARTITIONS: MetricDef = m("kafka.server", "ReplicaManager", "SharedDomainPartitionCount", &[], Gauge, "Led partitions with two replicas in one fault domain, update domain or rack while another live one holds none (see lantern-admin rebalance).");
pub static REASSIGNING_PARTITIONS: MetricDef = m("kafka.server", "ReplicaManager", "ReassigningPartitions", &[], Gauge, "Led partitions with a reassignment in progress (replicas being added or removed).");
pub static UNDER_MIN_ISR_COUNT: MetricDef = m("kafka.server", "ReplicaManager", "UnderMinIsrPartitionCount", &[], Gauge, "Led partitions whose ISR is below min.insync.replicas.");
pub static AT_MIN_ISR_COUNT: MetricDef = m("kafka.server", "ReplicaManager", "AtMinIsrPartitionCount", &[], Gauge, "Led partitions whose ISR equals min.insync.replicas.");
pub static OFFLINE_REPLICA_COUNT: MetricDef = m("kafka.server", "ReplicaManager", "OfflineReplicaCount", &[], Gauge, "Replicas whose log could not be opened.");
pub static STRAY_PARTITIONS: MetricDef = m("kafka.server", "ReplicaManager", "StrayPartitionsCount", &[], Gauge, "Logs of partitions the metadata no longer had at start-up that held records: set aside as `-stray` directories in the log.dirs, never served, kept until an operator removes them.");
pub static STRAY_PARTITIONS_SIZE: MetricDef = m("kafka.server", "ReplicaManager", "StrayPartitionsTotalSize", &[], Gauge, "Bytes of the `-stray` directories in the log.dirs.");
pub static STRAY_PARTITIONS_MISCLASSIFIED: MetricDef = m("kafka.server", "ReplicaManager", "StrayPartitionsMisclassifiedCount", &[], Gauge, "`-stray` directories whose partition (same topic id, per their partition.metadata) the current metadata assigns to this broker after all: set aside wrongly (a bug), or since re-created under the same id.");
pub static ISR_SHRINKS: MetricDef = m("kafka.server", "ReplicaManager", "IsrShrinksPerSec", &[], Meter, "ISR shrinks of partitions this broker leads.");
pub static ISR_EXPANDS: MetricDef = m("kafka.server", "ReplicaManager", "IsrExpandsPerSec", &[], Meter, "ISR expansions of partitions this broker leads.");
// As Kafka's Partition: every hosted replica has these, and only the leader's carry values
// (a follower's are 0), so that a sum over the cluster counts each partition once.
pub static PARTITION_UNDER_MIN_ISR: MetricDef = m("kafka.cluster", "Partition", "UnderMinIsr", &["topic", "partition"], Gauge, "1 on the leader when the partition's ISR is below min.insync.replicas (0 on followers).");
pub static PARTITION_AT_MIN_ISR: MetricDef = m("kafka.cluster", "Partition", "AtMinIsr", &["topic", "partition"], Gauge, "1 on the leader when the partition's ISR equals min.insync.replicas (0 on followers).");
pub static PARTITION_REPLICAS_COUNT: MetricDef = m("kafka.cluster", "Partition", "ReplicasCount", &["topic", "partition"], Gauge, "Replicas of the partition, on its leader (0 on followers).");
pub static PARTITION_IN_SYNC_COUNT: MetricDef = m("kafka.cluster", "Partition", "InSyncReplicasCount", &["topic", "partition"], Gauge, "In-sync replicas of the partition, on its leader (0 on followers).");
pub static PARTITION_UNDER_REPLICATED: MetricDef = m("kafka.cluster", "Partition", "UnderReplicated", &["topic", "partition"], Gauge, "1 on the leader when the partition's ISR is smaller than its replicas (0 on followers).");
pub static PARTITION_LSO_LAG: MetricDef = m("kafka.cluster", "Partition", "LastStableOffsetLag", &["topic", "partition"], Gauge, "High watermark minus last stable offset, on the leader; 0 while Lantern has no transactions (the last stable offset is the high watermark).");

// Controller. As in Kafka's KRaft controllers (ControllerMetadataMetrics), every controller
// reports the cluster-wide counts from the metadata it has applied; only
// ActiveControllerCount is 1 on the active controller alone. Brokers that are not controllers
// have none of the kafka.controller metrics.
pub static ACTIVE_CONTROLLER_COUNT: MetricDef = m("kafka.controller", "KafkaController", "ActiveControllerCount", &[], Gauge, "1 on the active controller (the quorum leader, while a majority acknowledges it), else 0.");
pub static OFFLINE_PARTITIONS: MetricDef = m("kafka.controller", "KafkaController", "OfflinePartitionsCount", &[], Gauge, "Partitions without a leader, in the metadata this controller applied.");
pub static GLOBAL_TOPIC_COUNT: MetricDef = m("kafka.controller", "KafkaController", "GlobalTopicCount", &[], Gauge, "Topics in the cluster, in the metadata this controller applied.");
pub static GLOBAL_PARTITION_COUNT: MetricDef = m("kafka.controller", "KafkaController", "GlobalPartitionCount", &[], Gauge, "Partitions in the cluster, in the metadata this controller applied.");
pub static ACTIVE_BROKER_COUNT: MetricDef = m("kafka.controller", "KafkaController", "ActiveBrokerCount", &[], Gauge, "Brokers registered and unfenced, in the metadata this controller applied.");
pub static FENCED_BROKER_COUNT: MetricDef = m("kafka.controller", "KafkaController", "FencedBrokerCount", &[], Gauge, "Brokers registered but fenced (missed their session, or not caught up yet), in the metadata this controller applied.");
pub static PREFERRED_REPLICA_IMBALANCE: MetricDef = m("kafka.controller", "KafkaController", "PreferredReplicaImbalanceCount", &[], Gauge, "Partitions whose leader is not their first replica.");
pub static METADATA_ERROR_COUNT: MetricDef = m("kafka.controller", "KafkaController", "MetadataErrorCount", &[], Gauge, "Metadata records this node skipped because they did not fit its image (a controller bug; every node counts the same ones).");
pub static LAST_APPLIED_RECORD_OFFSET: MetricDef = m("kafka.controller", "KafkaController", "LastAppliedRecordOffset", &[], Gauge, "Offset of the last metadata record this node applied.");
pub static LAST_APPLIED_RECORD_TIMESTAMP: MetricDef = m("kafka.controller", "KafkaController", "LastAppliedRecordTimestamp", &[], Gauge, "Time the active controller wrote the last metadata record this node applied, ms since the epoch.");
pub static LAST_APPLIED_RECORD_LAG_MS: MetricDef = m("kafka.controller", "KafkaController", "LastAppliedRecordLagMs", &[], Gauge, "Now minus LastAppliedRecordTimestamp, ms. Lantern writes no no-op records (as Kafka with metadata.max.idle.interval.ms=0), so on an idle cluster this is the time since the last metadata change; compare LastAppliedRecordOffset across nodes for a node that falls behind.");
pub static UNCLEAN_LEADER_ELECTIONS: MetricDef = m("kafka.controller", "ControllerStats", "UncleanLeaderElectionsPerSec", &[], Meter, "Leaders elected from outside the ISR: by the controller for topics with unclean.leader.election.enable, or asked for with ElectLeaders (the unclean type).");
pub static FETCHER_MAX_LAG: MetricDef = m("kafka.server", "ReplicaFetcherManager", "MaxLag", &["clientId"], Gauge, "The largest lag, in messages, of a partition this broker follows: the leader's high watermark minus this replica's log end offset at its last fetch.");
pub static FETCHER_MIN_FETCH_RATE: MetricDef = m("kafka.server", "ReplicaFetcherManager", "MinFetchRate", &["clientId"], Gauge, "The lowest rate, in fetch requests a second over the last 30-60 s, of this broker's replica fetchers (one per leader it follows partitions from); 0 when it follows none.");
// Lantern answers every Fetch with session id 0 (full fetches, as a Kafka broker does when its
// cache has no slot): it keeps no KIP-227 incremental fetch sessions, so these are truly 0.
pub static FETCH_SESSIONS: MetricDef = m("kafka.server", "FetchSessionCache", "NumIncrementalFetchSessions", &[], Gauge, "Incremental fetch sessions cached: always 0, Lantern answers every Fetch with session id 0 (a full fetch, which clients handle as a broker without free session slots).");
pub static FETCH_SESSION_EVICTIONS: MetricDef = m("kafka.server", "FetchSessionCache", "IncrementalFetchSessionEvictionsPerSec", &[], Meter, "Incremental fetch sessions evicted from the cache: always 0, Lantern caches none (see NumIncrementalFetchSessions).");
pub static ALTER_LOG_DIRS_MAX_LAG: MetricDef = m("kafka.server", "ReplicaAlterLogDirsManager", "MaxLag", &["clientId"], Gauge, "The largest lag, in messages, of a replica being moved to another log directory (AlterReplicaLogDirs): the log end offset minus the copy's; 0 when no move is under way.");
pub static LEADER_ELECTION_TIME: MetricDef = m("kafka.controller", "ControllerStats", "LeaderElectionRateAndTimeMs", &[], Histogram, "Partitions given a new leader by the active controller (Count), and the time from its decision to the commit of the change, ms.");
pub static EVENT_QUEUE_TIME: MetricDef = m("kafka.controller", "ControllerEventManager", "EventQueueTimeMs", &[], Histogram, "Time a metadata decision waited for the active controller's write lock (its event queue), ms.");
pub static EVENT_QUEUE_PROCESSING_TIME: MetricDef = m("kafka.controller", "ControllerEventManager", "EventQueueProcessingTimeMs", &[], Histogram, "Time a metadata decision held the active controller's write lock: deciding, committing through the quorum and applying, ms.");

// The metadata quorum (Kafka's KafkaRaftMetrics and the raft client's channel).
const fn raft(name: &'static str, help: &'static str) -> MetricDef {
    m("kafka.server", "raft-metrics", name, &[], Attribute, help)
}
const fn raft_channel(name: &'static str, help: &'static str) -> MetricDef {
    m("kafka.server", "raft-channel-metrics", name, &[], Attribute, help)
}
pub static RAFT_CURRENT_LEADER: MetricDef = raft("current-leader", "Id of the metadata quorum's leader (the active controller), -1 while unknown.");
pub static RAFT_CURRENT_VOTE: MetricDef = raft("current-vote", "This node's id while it leads or campaigns, the candidate it voted for while no leader is known, else -1.");
pub static RAFT_CURRENT_EPOCH: MetricDef = raft("current-epoch", "The quorum epoch (Raft term).");
pub static RAFT_CURRENT_STATE: MetricDef = MetricDef { shape: StateAttribute, ..raft("current-state", "1, with this node's quorum state in the label: leader, candidate, voted, follower, unattached or observer.") };
pub static RAFT_HIGH_WATERMARK: MetricDef = raft("high-watermark", "Offset after the last metadata log entry this node knows is committed, -1 while unknown.");
pub static RAFT_LOG_END_OFFSET: MetricDef = raft("log-end-offset", "Offset after the last entry of this node's metadata log.");
pub static RAFT_COMMIT_LATENCY_AVG: MetricDef = raft("commit-latency-avg", "Average time from handing a batch of records to the quorum to its commit and apply, as leader, over the last 30-60 s, ms (NaN when none).");
pub static RAFT_COMMIT_LATENCY_MAX: MetricDef = raft("commit-latency-max", "Maximum commit latency as leader over the last 30-60 s, ms (NaN when none). A gauge: Strimzi's rule types -max attributes as counters, but the value falls.");
pub static RAFT_ELECTION_LATENCY_AVG: MetricDef = raft("election-latency-avg", "Average time this node campaigned before a leader was known, over the last 30-60 s, ms (NaN when none).");
pub static RAFT_ELECTION_LATENCY_MAX: MetricDef = raft("election-latency-max", "Maximum election time over the last 30-60 s, ms (NaN when none).");
pub static RAFT_APPEND_RECORDS_RATE: MetricDef = raft("append-records-rate", "Metadata records appended per second as leader, over the last 30-60 s (Kafka's Rate: a gauge, the JMX exporter exports its value).");
pub static RAFT_FETCH_RECORDS_RATE: MetricDef = raft("fetch-records-rate", "Metadata records received from the leader per second as follower, over the last 30-60 s.");
pub static RAFT_CHANNEL_REQUESTS: MetricDef = raft_channel("request-total", "Requests this node sent other voters (append, vote, snapshot).");
pub static RAFT_CHANNEL_RESPONSES: MetricDef = raft_channel("response-total", "Responses this node received from other voters.");
pub static RAFT_CHANNEL_OUTGOING_BYTES: MetricDef = raft_channel("outgoing-byte-total", "Bytes of the requests this node sent other voters.");
pub static RAFT_CHANNEL_INCOMING_BYTES: MetricDef = raft_channel("incoming-byte-total", "Bytes of the responses this node received from other voters.");

// The broker's side of the metadata (Kafka's BrokerServerMetrics).
const fn broker_metadata(name: &'static str, help: &'static str) -> MetricDef {
    m("kafka.server", "broker-metadata-metrics", name, &[], Attribute, help)
}
pub static BROKER_LAST_APPLIED_OFFSET: MetricDef = broker_metadata("last-applied-record-offset", "Offset of the last metadata record this broker applied.");
pub static BROKER_LAST_APPLIED_TIMESTAMP: MetricDef = broker_metadata("last-applied-record-timestamp", "Time the last metadata record this broker applied was written, ms since the epoch.");
pub static BROKER_LAST_APPLIED_LAG_MS: MetricDef = broker_metadata("last-applied-record-lag-ms", "Now minus last-applied-record-timestamp, ms (see LastAppliedRecordLagMs).");
pub static BROKER_METADATA_LOAD_ERRORS: MetricDef = broker_metadata("metadata-load-error-count", "Metadata records this broker could not apply to its image (skipped).");
pub static BROKER_METADATA_APPLY_ERRORS: MetricDef = broker_metadata("metadata-apply-error-count", "Times this broker failed to bring its local logs in line with a new metadata image (creating, deleting or re-leading partitions).");

// Log
pub static LOG_SIZE: MetricDef = m("kafka.log", "Log", "Size", &["topic", "partition"], Gauge, "Bytes on disk of the partition's log.");
pub static LOG_SEGMENTS: MetricDef = m("kafka.log", "Log", "NumLogSegments", &["topic", "partition"], Gauge, "Segments of the partition's log.");
pub static LOG_START_OFFSET: MetricDef = m("kafka.log", "Log", "LogStartOffset", &["topic", "partition"], Gauge, "First offset in the log.");
pub static LOG_END_OFFSET: MetricDef = m("kafka.log", "Log", "LogEndOffset", &["topic", "partition"], Gauge, "Offset after the last record in the log.");
pub static OFFLINE_LOG_DIRS: MetricDef = m("kafka.log", "LogManager", "OfflineLogDirectoryCount", &[], Gauge, "Data directories taken offline after an I/O failure (found by the log.dir.failure.probe.interval.ms probe); their partitions are served by other brokers until a restart.");
pub static LOG_FLUSH: MetricDef = m("kafka.log", "LogFlushStats", "LogFlushRateAndTimeMs", &[], Histogram, "fsync calls of log segments and their duration, ms.");
pub static PURGATORY_SIZE: MetricDef = m("kafka.server", "DelayedOperationPurgatory", "PurgatorySize", &["delayedOperation"], Gauge, "Requests waiting: Fetch (long poll), Produce (fsync), Rebalance (JoinGroup/SyncGroup).");

// Group coordinator
pub static NUM_GROUPS: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "NumGroups", &[], Gauge, "Consumer groups known to the coordinator.");
pub static NUM_GROUPS_STABLE: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "NumGroupsStable", &[], Gauge, "Groups in state Stable.");
pub static NUM_GROUPS_PREPARING: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "NumGroupsPreparingRebalance", &[], Gauge, "Groups in state PreparingRebalance.");
pub static NUM_GROUPS_COMPLETING: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "NumGroupsCompletingRebalance", &[], Gauge, "Groups in state CompletingRebalance.");
pub static NUM_GROUPS_EMPTY: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "NumGroupsEmpty", &[], Gauge, "Groups in state Empty.");
pub static NUM_GROUPS_DEAD: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "NumGroupsDead", &[], Gauge, "Groups in state Dead.");
pub static NUM_OFFSETS: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "NumOffsets", &[], Gauge, "Committed offsets held by the coordinator.");
// Kafka has no MBean for this; named in the style of FailedProduceRequestsPerSec, on the
// GroupMetadataManager that does the writes.
pub static FAILED_GROUP_METADATA_WRITES: MetricDef = m("kafka.coordinator.group", "GroupMetadataManager", "FailedGroupMetadataWritesPerSec", &[], Meter, "Writes to __consumer_offsets by the group coordinator that failed (group metadata from JoinGroup/SyncGroup or session expiry, committed offsets, tombstones); the member that asked got an error, and each failure is logged.");

// KafkaServer
pub static BROKER_STATE: MetricDef = m("kafka.server", "KafkaServer", "BrokerState", &[], Gauge, "Kafka's broker state: 1 starting, 2 recovering logs, 3 running, 7 shutting down.");
pub static DISK_READ_BYTES: MetricDef = m("kafka.server", "KafkaServer", "linux-disk-read-bytes", &[], Gauge, "Bytes the broker process read from disk (/proc/self/io).");
pub static DISK_WRITE_BYTES: MetricDef = m("kafka.server", "KafkaServer", "linux-disk-write-bytes", &[], Gauge, "Bytes the broker process wrote to disk (/proc/self/io).");

// Lantern's own network refusals (no Kafka MBean exists for these).
pub static MALFORMED_REQUESTS: MetricDef = m("", "", "lantern_network_malformed_requests_total", &[], NativeCounter, "Requests that could not be decoded; each closed its connection.");
pub static CONTROLLER_MALFORMED_REQUESTS: MetricDef = m("", "", "lantern_controller_malformed_requests_total", &[], NativeCounter, "Frames on the controller listener that could not be decoded or were over a limit (the frame size, a snapshot chunk past the snapshot size); each closed its connection or was refused.");
pub static OVERSIZED_REQUESTS: MetricDef = m("", "", "lantern_network_oversized_requests_total", &[], NativeCounter, "Length prefixes outside 0..=socket.request.max.bytes; each closed its connection.");
pub static UNSUPPORTED_REQUESTS: MetricDef = m("", "", "lantern_network_unsupported_requests_total", &[], NativeCounter, "Requests for unknown APIs or unsupported versions.");
// Kafka counts these only in connection-close-total (idle expiry) or not at all (it logs a
// rejection at max.connections.per.ip); Lantern counts them apart as well.
pub static IDLE_CONNECTIONS_CLOSED: MetricDef = m("", "", "lantern_network_idle_connections_closed_total", &["listener"], NativeCounter, "Connections closed after connections.max.idle.ms with nothing read or written; also in connection-close-total.");
pub static REJECTED_CONNECTIONS: MetricDef = m("", "", "lantern_network_rejected_connections_total", &["listener"], NativeCounter, "Connections closed as soon as accepted because their address already had max.connections.per.ip open.");

// Span export (docs/tracing.md); 0 while tracing is off. Kafka has no MBean for
// this; the counts are the ones the OpenTelemetry SDK's own metrics keep
// (otel.sdk.processor.span.processed, otel.sdk.exporter.span.exported).
pub static SPANS_QUEUED: MetricDef = m("", "", "lantern_tracing_spans_queued_total", &[], NativeCounter, "Finished, sampled spans put on the export queue.");
pub static SPANS_DROPPED: MetricDef = m("", "", "lantern_tracing_spans_dropped_total", &[], NativeCounter, "Sampled spans dropped because the export queue (OTEL_BSP_MAX_QUEUE_SIZE) was full: the receiver is slow or down, or spans finish faster than they are exported. The request path never waits for the queue.");
pub static SPANS_EXPORTED: MetricDef = m("", "", "lantern_tracing_spans_exported_total", &[], NativeCounter, "Spans in batches the receiver accepted.");
pub static SPANS_EXPORT_FAILED: MetricDef = m("", "", "lantern_tracing_spans_export_failed_total", &[], NativeCounter, "Spans in batches the receiver refused or that could not be delivered (each failure is logged at most once a minute).");

// kafka_exporter's names. kafka_exporter is one process per cluster; here every broker serves
// a share, so that summing over the cluster counts each thing once: the cluster-wide families
// come from the live broker with the lowest id, a partition's from its leader, a group's from
// its coordinator.
pub static KE_BROKERS: MetricDef = m("", "", "kafka_brokers", &[], NativeGauge, "Live (registered, unfenced) brokers in the cluster (kafka_exporter; served by the live broker with the lowest id).");
pub static KE_BROKER_INFO: MetricDef = m("", "", "kafka_broker_info", &["address", "id"], NativeGauge, "1 for each live broker, with its address (kafka_exporter; served by the live broker with the lowest id).");
pub static KE_TOPIC_PARTITIONS: MetricDef = m("", "", "kafka_topic_partitions", &["topic"], NativeGauge, "Partitions of a topic (kafka_exporter; served by the live broker with the lowest id).");
pub static KE_PARTITION_CURRENT_OFFSET: MetricDef = m("", "", "kafka_topic_partition_current_offset", &["topic", "partition"], NativeGauge, "Latest offset of a partition, its high watermark (kafka_exporter; served by the partition's leader).");
pub static KE_PARTITION_OLDEST_OFFSET: MetricDef = m("", "", "kafka_topic_partition_oldest_offset", &["topic", "partition"], NativeGauge, "Oldest offset of a partition (kafka_exporter; served by the partition's leader).");
pub static KE_PARTITION_LEADER: MetricDef = m("", "", "kafka_topic_partition_leader", &["topic", "partition"], NativeGauge, "Leader broker id of a partition (kafka_exporter; served by the partition's leader).");
pub static KE_PARTITION_REPLICAS: MetricDef = m("", "", "kafka_topic_partition_replicas", &["topic", "partition"], NativeGauge, "Replicas of a partition (kafka_exporter; served by the partition's leader).");
pub static KE_PARTITION_IN_SYNC: MetricDef = m("", "", "kafka_topic_partition_in_sync_replica", &["topic", "partition"], NativeGauge, "In-sync replicas of a partition (kafka_exporter; served by the partition's leader).");
pub static KE_PARTITION_LEADER_PREFERRED: MetricDef = m("", "", "kafka_topic_partition_leader_is_preferred", &["topic", "partition"], NativeGauge, "1 if a partition is led by its preferred (first) replica (kafka_exporter; served by the partition's leader).");
pub static KE_PARTITION_UNDER_REPLICATED: MetricDef = m("", "", "kafka_topic_partition_under_replicated_partition", &["topic", "partition"], NativeGauge, "1 if a partition has fewer in-sync replicas than replicas (kafka_exporter; served by the partition's leader).");
pub static KE_GROUP_CURRENT_OFFSET: MetricDef = m("", "", "kafka_consumergroup_current_offset", &["consumergroup", "topic", "partition"], NativeGauge, "Committed offset of a group on a partition (kafka_exporter).");
pub static KE_GROUP_CURRENT_OFFSET_SUM: MetricDef = m("", "", "kafka_consumergroup_current_offset_sum", &["consumergroup", "topic"], NativeGauge, "Committed offsets of a group summed over a topic's partitions (kafka_exporter).");
pub static KE_GROUP_LAG: MetricDef = m("", "", "kafka_consumergroup_lag", &["consumergroup", "topic", "partition"], NativeGauge, "Messages a group has not consumed on a partition (kafka_exporter).");
pub static KE_GROUP_LAG_SUM: MetricDef = m("", "", "kafka_consumergroup_lag_sum", &["consumergroup", "topic"], NativeGauge, "Lag of a group summed over a topic's partitions (kafka_exporter).");
pub static KE_GROUP_MEMBERS: MetricDef = m("", "", "kafka_consumergroup_members", &["consumergroup"], NativeGauge, "Members of a group (kafka_exporter).");

// Process
pub static PROCESS_CPU: MetricDef = m("", "", "process_cpu_seconds_total", &[], NativeCounter, "User and system CPU time of the broker process, seconds.");
pub static PROCESS_RSS: MetricDef = m("", "", "process_resident_memory_bytes", &[], NativeGauge, "Resident memory of the broker process, bytes.");
pub static PROCESS_VMS: MetricDef = m("", "", "process_virtual_memory_bytes", &[], NativeGauge, "Virtual memory of the broker process, bytes.");
pub static PROCESS_OPEN_FDS: MetricDef = m("", "", "process_open_fds", &[], NativeGauge, "Open file descriptors.");
pub static PROCESS_MAX_FDS: MetricDef = m("", "", "process_max_fds", &[], NativeGauge, "File descriptor limit.");
pub static PROCESS_START_TIME: MetricDef = m("", "", "process_start_time_seconds", &[], NativeGauge, "Start time of the process since the Unix epoch, seconds.");

/// What Confluent's jmx-monitoring-stacks dashboards for KRaft clusters (kafka-cluster-kraft.json,
/// kafka-topics-kraft.json, kraft.json, and their dashboards-old-exporter versions) query and Lantern does not serve, because the thing they
/// measure does not exist here: (Prometheus name, why). docs/metrics.md lists them, and
/// tests/test_confluent_dashboards.py reads its allow-list from there.
pub static NOT_SERVED: &[(&str, &str)] = &[
    ("kafka_log_log_tiersize", TIERED),
    ("kafka_tier_tasks_archive_tierarchiver_bytespersec", TIERED),
    ("kafka_tier_tasks_archive_tierarchiver_retriespersec", TIERED),
    ("kafka_tier_tasks_archive_tierarchiver_totallag", TIERED),
    ("kafka_tier_tasks_tiertasks_numpartitionsinerror", TIERED),
    ("jvm_memory_used_bytes", JVM),
    ("jvm_memory_bytes_used", JVM),
    ("jvm_memory_bytes_max", JVM),
    ("jvm_gc_collection_seconds_sum", JVM),
];
const TIERED: &str = "Confluent Server's Tiered Storage: Lantern keeps every segment on the broker's own disks, so there is no tiered size, archiver or tier task (`kafka_log_log_size` is the whole log).";
const JVM: &str = "The JVM's heap and garbage collector: Lantern is a native process with neither (`process_resident_memory_bytes` and `process_cpu_seconds_total` are served).";

/// Every metric, in the order /metrics renders them.
pub static CATALOGUE: &[&MetricDef] = &[
    &MESSAGES_IN, &BYTES_IN, &BYTES_OUT, &BYTES_REJECTED, &TOTAL_PRODUCE_REQUESTS, &TOTAL_FETCH_REQUESTS,
    &FAILED_PRODUCE_REQUESTS, &FAILED_FETCH_REQUESTS, &INVALID_CRC, &INVALID_OFFSET_OR_SEQUENCE, &INVALID_MAGIC_NUMBER, &NO_KEY_COMPACTED,
    &REPLICATION_BYTES_IN, &REPLICATION_BYTES_OUT, &REASSIGNMENT_BYTES_IN, &REASSIGNMENT_BYTES_OUT,
    &PRODUCE_MESSAGE_CONVERSIONS, &FETCH_MESSAGE_CONVERSIONS,
    &REQUESTS, &ERRORS, &TOTAL_TIME, &REQUEST_QUEUE_TIME, &LOCAL_TIME, &REMOTE_TIME, &RESPONSE_QUEUE_TIME,
    &RESPONSE_SEND_TIME, &REQUEST_BYTES, &REQUEST_QUEUE_SIZE, &RESPONSE_QUEUE_SIZE, &NETWORK_IDLE, &HANDLER_IDLE,
    &CONNECTION_COUNT, &CONNECTION_CREATION_TOTAL, &CONNECTION_CLOSE_TOTAL, &CONNECTION_CREATION_RATE, &CONNECTION_CLOSE_RATE, &CONNECTIONS_BY_SOFTWARE, &ACCEPTOR_BLOCKED,
    &PARTITION_COUNT, &LEADER_COUNT, &UNDER_REPLICATED, &REASSIGNING_PARTITIONS, &SHARED_DOMAIN_PARTITIONS, &LEADER_REPLICATION_BYTE_RATE,
    &FOLLOWER_REPLICATION_BYTE_RATE, &LEADER_REPLICATION_THROTTLE, &FOLLOWER_REPLICATION_THROTTLE, &UNDER_MIN_ISR_COUNT, &AT_MIN_ISR_COUNT,
    &OFFLINE_REPLICA_COUNT, &STRAY_PARTITIONS, &STRAY_PARTITIONS_SIZE, &STRAY_PARTITIONS_MISCLASSIFIED, &ISR_SHRINKS, &ISR_EXPANDS,
    &PARTITION_UNDER_MIN_ISR, &PARTITION_AT_MIN_ISR, &PARTITION_REPLICAS_COUNT, &PARTITION_IN_SYNC_COUNT, &PARTITION_UNDER_REPLICATED, &PARTITION_LSO_LAG,
    &ACTIVE_CONTROLLER_COUNT, &OFFLINE_PARTITIONS, &GLOBAL_TOPIC_COUNT, &GLOBAL_PARTITION_COUNT, &UNCLEAN_LEADER_ELECTIONS,
    &ACTIVE_BROKER_COUNT, &FENCED_BROKER_COUNT, &PREFERRED_REPLICA_IMBALANCE, &METADATA_ERROR_COUNT,
    &LAST_APPLIED_RECORD_OFFSET, &LAST_APPLIED_RECORD_TIMESTAMP, &LAST_APPLIED_RECORD_LAG_MS,
    &EVENT_QUEUE_TIME, &EVENT_QUEUE_PROCESSING_TIME, &LEADER_ELECTION_TIME, &FETCHER_MAX_LAG, &FETCHER_MIN_FETCH_RATE, &FETCH_SESSIONS, &FETCH_SESSION_EVICTIONS, &ALTER_LOG_DIRS_MAX_LAG,
    &RAFT_CURRENT_LEADER, &RAFT_CURRENT_VOTE, &RAFT_CURRENT_EPOCH, &RAFT_CURRENT_STATE, &RAFT_HIGH_WATERMARK,
    &RAFT_LOG_END_OFFSET, &RAFT_COMMIT_LATENCY_AVG, &RAFT_COMMIT_LATENCY_MAX, &RAFT_ELECTION_LATENCY_AVG,
    &RAFT_ELECTION_LATENCY_MAX, &RAFT_APPEND_RECORDS_RATE, &RAFT_FETCH_RECORDS_RATE,
    &RAFT_CHANNEL_REQUESTS, &RAFT_CHANNEL_RESPONSES, &RAFT_CHANNEL_OUTGOING_BYTES, &RAFT_CHANNEL_INCOMING_BYTES,
    &BROKER_LAST_APPLIED_OFFSET, &BROKER_LAST_APPLIED_TIMESTAMP, &BROKER_LAST_APPLIED_LAG_MS,
    &BROKER_METADATA_LOAD_ERRORS, &BROKER_METADATA_APPLY_ERRORS,
    &LOG_SIZE, &LOG_SEGMENTS, &LOG_START_OFFSET, &LOG_END_OFFSET, &OFFLINE_LOG_DIRS, &LOG_FLUSH, &PURGATORY_SIZE,
    &NUM_GROUPS, &NUM_GROUPS_STABLE, &NUM_GROUPS_PREPARING, &NUM_GROUPS_COMPLETING, &NUM_GROUPS_EMPTY,
    &NUM_GROUPS_DEAD, &NUM_OFFSETS, &FAILED_GROUP_METADATA_WRITES,
    &BROKER_STATE, &DISK_READ_BYTES, &DISK_WRITE_BYTES,
    &MALFORMED_REQUESTS, &CONTROLLER_MALFORMED_REQUESTS, &OVERSIZED_REQUESTS, &UNSUPPORTED_REQUESTS, &IDLE_CONNECTIONS_CLOSED, &REJECTED_CONNECTIONS,
    &SPANS_QUEUED, &SPANS_DROPPED, &SPANS_EXPORTED, &SPANS_EXPORT_FAILED,
    &KE_BROKERS, &KE_BROKER_INFO, &KE_TOPIC_PARTITIONS, &KE_PARTITION_CURRENT_OFFSET, &KE_PARTITION_OLDEST_OFFSET,
    &KE_PARTITION_LEADER, &KE_PARTITION_REPLICAS, &KE_PARTITION_IN_SYNC, &KE_PARTITION_LEADER_PREFERRED, &KE_PARTITION_UNDER_REPLICATED,
    &KE_GROUP_CURRENT_OFFSET, &KE_GROUP_CURRENT_OFFSET_SUM, &KE_GROUP_LAG, &KE_GROUP_LAG_SUM, &KE_GROUP_MEMBERS,
    &REST_REQUESTS, &REST_ERRORS, &REST_LATENCY, &REST_RECORDS_IN, &REST_BYTES_IN,
    &REST_RECORDS_OUT, &REST_BYTES_OUT, &REST_AUTH_FAILURES,
    &PROCESS_CPU, &PROCESS_RSS, &PROCESS_VMS, &PROCESS_OPEN_FDS, &PROCESS_MAX_FDS, &PROCESS_START_TIME,
];
