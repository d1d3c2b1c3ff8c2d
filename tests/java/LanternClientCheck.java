// End-to-end check of a Kafka-wire-compatible broker with the official Apache Kafka Java
// client (kafka-clients 3.x / 4.x), using only the public client API. Compiled and run by
// tests/test_java_client.py (see tests/java/setup.sh for where the jars come from).
//
//   java LanternClientCheck --bootstrap=H:P --topic=T --mode=roundtrip --count=N
//        [--compression=none|gzip|snappy|lz4|zstd] [--consume=group|assign] [--partitions=6]
//     Admin.createTopics (P partitions); an idempotent acks=all producer sends N keyed
//     messages (with a header) in the given compression; then a KafkaConsumer in a consumer
//     group (subscribe, poll until all arrived, commitSync) -- or with --consume=assign,
//     assign()+seekToBeginning without a group -- reads them back. Verifies count, byte-exact
//     keys/values/headers, exactly-once, per-partition contiguous offsets, per-key order,
//     that every delivery report's (partition, offset) is where the record was fetched, and
//     (group mode) the committed offsets via the consumer and via Admin. If the group path
//     fails, the exact error is reported and the records are read again with assign() so the
//     produce/fetch path is still checked; the run fails either way.
//
//   java LanternClientCheck --bootstrap=H:P,... --topic=T1,T2 --mode=cluster
//     What Admin sees of a cluster: describeCluster (cluster id, nodes, controller) and
//     describeTopics of the listed topics (leader, replicas, ISR of each partition), reported
//     in the summary for the caller to check.
//
//   java LanternClientCheck --bootstrap=H:P,... --topic=T --mode=produce --input=FILE
//     An idempotent acks=all producer sends the records of FILE (one `key<TAB>value` line
//     each, UTF-8) to T in file order; reports how many were acknowledged and the failures.
//
//   java LanternClientCheck --bootstrap=H:P --topic=T --mode=meta [--node-id=1]
//     describeCluster, createTopics with a config, describeTopics, describeConfigs (topic and
//     broker), records with chosen timestamps, Admin.listOffsets (earliest, latest,
//     forTimestamp, maxTimestamp), the consumer's beginningOffsets/endOffsets/offsetsForTimes,
//     and deleteTopics.
//
//   java LanternClientCheck --bootstrap=H:P,... --topic=T --mode=reassign --partition=N --replicas=A,B,C [--wait=false]
//     alterPartitionReassignments, then listPartitionReassignments until it is done.
//
//   java LanternClientCheck --bootstrap=H:P --topic=T --mode=move-log-dir --partition=N --broker=ID --dir=PATH
//     alterReplicaLogDirs, then describeReplicaLogDirs until the replica is in PATH with no
//     future replica left; reports whether the future replica was seen on the way.
//
// The last line on stdout is always `LANTERN_RESULT {json}`; exit 0 only if every check
// passed (1: a check failed, 2: bad arguments, 3: an unexpected exception).

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.AppInfoParser;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

@SuppressWarnings("deprecation")
public class LanternClientCheck {
    static final int N_KEYS = 1000;
    static final String HEADER = "lantern-index";

    final Map<String, String> opt;
    final String bootstrap;
    final String topic;
    final Map<String, Object> summary = new LinkedHashMap<>();
    final List<String> errors = new ArrayList<>();

    LanternClientCheck(Map<String, String> opt) {
        this.opt = opt;
        this.bootstrap = need("bootstrap");
        this.topic = need("topic");
    }

    // ------------------------------------------------------------------ main
    public static void main(String[] args) {
        Map<String, String> opt = new HashMap<>();
        for (String a : args) {
            if (!a.startsWith("--") || !a.contains("=")) usage("bad argument " + a);
            opt.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
        }
        LanternClientCheck c;
        try {
            c = new LanternClientCheck(opt);
        } catch (IllegalArgumentException e) {
            usage(e.getMessage());
            return;
        }
        int rc;
        c.summary.put("client_version", AppInfoParser.getVersion());
        c.summary.put("client_commit", AppInfoParser.getCommitId());
        c.summary.put("mode", opt.getOrDefault("mode", "roundtrip"));
        long t0 = System.nanoTime();
        try {
            switch (opt.getOrDefault("mode", "roundtrip")) {
                case "roundtrip": c.roundtrip(); break;
                case "meta": c.meta(); break;
                case "cluster": c.cluster(); break;
                case "produce": c.produceFile(); break;
                case "reassign": c.reassign(); break;
                case "move-log-dir": c.moveLogDir(); break;
                case "admin-compat": c.adminCompat(); break;
                case "record-errors": c.recordErrors(); break;
                case "describe-producers": c.describeProducers(); break;
                default: usage("unknown --mode " + opt.get("mode"));
            }
            rc = c.errors.isEmpty() ? 0 : 1;
        } catch (Throwable t) {
            c.errors.add("unexpected exception: " + describe(t));
            System.err.println("LanternClientCheck: unexpected exception");
            t.printStackTrace();
            rc = 3;
        }
        c.summary.put("total_s", secs(t0));
        c.summary.put("ok", c.errors.isEmpty());
        c.summary.put("errors", c.errors);
        for (String e : c.errors) System.err.println("CHECK FAILED: " + e);
        System.out.println("LANTERN_RESULT " + json(c.summary));
        System.out.flush();
        // Client threads (e.g. a consumer stuck in a rebalance) must not keep the JVM alive.
        Runtime.getRuntime().halt(rc);
    }

    static void usage(String why) {
        System.err.println("usage: LanternClientCheck --bootstrap=H:P --topic=T --mode=roundtrip|meta|cluster|produce|reassign|move-log-dir|admin-compat|record-errors|describe-producers "
                + "[--count=N] [--compression=none|gzip|snappy|lz4|zstd] [--consume=group|assign] "
                + "[--partitions=6] [--node-id=1] [--input=FILE] [--rate=RECORDS_PER_S] [--partition=N] [--replicas=A,B] [--broker=ID] [--dir=PATH]\n" + why);
        Runtime.getRuntime().halt(2);
    }

    String need(String k) {
        String v = opt.get(k);
        if (v == null || v.isEmpty()) throw new IllegalArgumentException("missing --" + k);
        return v;
    }

    int intOpt(String k, int dflt) {
        return opt.containsKey(k) ? Integer.parseInt(opt.get(k)) : dflt;
    }

    void check(boolean ok, String what) {
        if (!ok) errors.add(what);
    }

    // --------------------------------------------------------------- clients
    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "lantern-java-admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
        return Admin.create(p);
    }

    KafkaProducer<byte[], byte[]> producer(String compression, int lingerMs) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "lantern-java-producer");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        p.put(ProducerConfig.LINGER_MS_CONFIG, lingerMs);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    KafkaConsumer<byte[], byte[]> consumer(String groupId) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "lantern-java-consumer");
        if (groupId != null) p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(p);
    }

    TopicDescription createTopic(Admin admin, int partitions, Map<String, String> configs) throws Exception {
        NewTopic nt = new NewTopic(topic, partitions, (short) 1);
        if (configs != null) nt.configs(configs);
        CreateTopicsResult r = admin.createTopics(List.of(nt));
        r.all().get(30, TimeUnit.SECONDS);
        int reported = r.numPartitions(topic).get();
        check(reported == partitions, "CreateTopics reported " + reported + " partitions, asked for " + partitions);
        // Wait until Metadata shows every partition with a leader.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        TopicDescription td = null;
        Throwable last = null;
        while (System.nanoTime() < deadline) {
            try {
                td = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                if (td.partitions().size() == partitions
                        && td.partitions().stream().allMatch(p -> p.leader() != null && p.leader().id() >= 0)) {
                    return td;
                }
            } catch (ExecutionException e) {
                last = e.getCause();
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("topic " + topic + " not ready with " + partitions + " partitions after 30s: "
                + td + (last != null ? " last error " + describe(last) : ""));
    }

    // ------------------------------------------------------------- messages
    // Same shape as tests/clients.py keyed_messages(): key k<i % 1000>, value
    // "k<key>|<per-key seq, 6 digits>|<index, 7 digits>|<filler of i % 97 chars>".
    static final String ALPHABET;
    static {
        java.util.Random r = new java.util.Random(42);
        String chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 512; i++) sb.append(chars.charAt(r.nextInt(chars.length())));
        ALPHABET = sb.toString();
    }

    static byte[][][] keyedMessages(int n) {
        byte[][][] out = new byte[n][][];
        int[] seq = new int[N_KEYS];
        for (int i = 0; i < n; i++) {
            int k = i % N_KEYS;
            int s = seq[k]++;
            int start = (i * 7) % 256;
            String filler = ALPHABET.substring(start, start + (i % 97));
            out[i] = new byte[][]{("k" + k).getBytes(StandardCharsets.UTF_8),
                    String.format("k%d|%06d|%07d|%s", k, s, i, filler).getBytes(StandardCharsets.UTF_8)};
        }
        return out;
    }

    static int indexOf(byte[] value) {
        String v = new String(value, StandardCharsets.UTF_8);
        String[] parts = v.split("\\|", 4);
        if (parts.length != 4) return -1;
        try {
            return Integer.parseInt(parts[2]);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    static byte[] intBytes(int i) {
        return ByteBuffer.allocate(4).putInt(i).array();
    }

    // ------------------------------------------------------------ roundtrip
    void roundtrip() throws Exception {
        int n = intOpt("count", 20000);
        int partitions = intOpt("partitions", 6);
        String compression = opt.getOrDefault("compression", "none");
        String consume = opt.getOrDefault("consume", "group");
        summary.put("topic", topic);
        summary.put("count", n);
        summary.put("partitions", partitions);
        summary.put("compression", compression);
        summary.put("consume", consume);

        try (Admin admin = admin()) {
            long t = System.nanoTime();
            createTopic(admin, partitions, null);
            summary.put("create_topic_s", secs(t));
        }

        byte[][][] msgs = keyedMessages(n);
        int[] ackPartition = new int[n];
        long[] ackOffset = new long[n];
        Arrays.fill(ackPartition, -1);
        AtomicInteger acked = new AtomicInteger();
        AtomicReference<String> firstSendError = new AtomicReference<>();
        AtomicInteger sendErrors = new AtomicInteger();
        long tProduceStart = System.currentTimeMillis();
        long t = System.nanoTime();
        Map<String, Object> producerMetrics = new LinkedHashMap<>();
        try (KafkaProducer<byte[], byte[]> producer = producer(compression, 5)) {
            for (int i = 0; i < n; i++) {
                final int idx = i;
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(topic, null, msgs[i][0], msgs[i][1],
                        List.of(new RecordHeader(HEADER, intBytes(i))));
                producer.send(rec, (RecordMetadata md, Exception e) -> {
                    if (e != null) {
                        sendErrors.incrementAndGet();
                        firstSendError.compareAndSet(null, "record " + idx + ": " + describe(e));
                    } else {
                        ackPartition[idx] = md.partition();
                        ackOffset[idx] = md.offset();
                    }
                    acked.incrementAndGet();
                });
            }
            producer.flush();
            for (Map.Entry<MetricName, ? extends Metric> m : producer.metrics().entrySet()) {
                MetricName mn = m.getKey();
                if (mn.group().equals("producer-metrics") && (mn.name().equals("record-retry-total")
                        || mn.name().equals("record-error-total") || mn.name().equals("batch-size-avg")
                        || mn.name().equals("records-per-request-avg") || mn.name().equals("compression-rate-avg"))) {
                    producerMetrics.put(mn.name(), m.getValue().metricValue());
                }
            }
        }
        long tProduceEnd = System.currentTimeMillis();
        summary.put("produce_s", secs(t));
        summary.put("producer_metrics", producerMetrics);
        check(acked.get() == n, "only " + acked.get() + " of " + n + " sends completed after flush()");
        check(sendErrors.get() == 0, sendErrors.get() + " sends failed; first: " + firstSendError.get());
        if (!errors.isEmpty()) return;
        Object retries = producerMetrics.get("record-retry-total");
        check(retries instanceof Double && (Double) retries == 0.0,
                "producer needed retries (record-retry-total=" + retries + "): the broker answered some "
                        + "Produce requests with a retriable error; see the client's WARN log on stderr");

        Map<TopicPartition, Long> expectedEnd = new TreeMap<>(tpOrder());
        for (int p = 0; p < partitions; p++) expectedEnd.put(new TopicPartition(topic, p), 0L);
        for (int i = 0; i < n; i++) {
            TopicPartition tp = new TopicPartition(topic, ackPartition[i]);
            expectedEnd.put(tp, Math.max(expectedEnd.get(tp), ackOffset[i] + 1));
        }
        Map<String, Long> perPartition = new TreeMap<>();
        expectedEnd.forEach((tp, o) -> perPartition.put(String.valueOf(tp.partition()), o));
        summary.put("end_offsets", perPartition);

        boolean readOk = false;
        if (consume.equals("group")) {
            String groupId = "lantern-java-" + topic;
            String groupError = null;
            t = System.nanoTime();
            try {
                List<ConsumerRecord<byte[], byte[]>> got = consumeGroup(groupId, n, expectedEnd);
                summary.put("consume_s", secs(t));
                verify("group", msgs, ackPartition, ackOffset, got, tProduceStart, tProduceEnd);
                readOk = true;
                groupChecks(groupId, expectedEnd);
            } catch (GroupFailure e) {
                groupError = e.getMessage();
            } catch (Exception e) {
                groupError = describe(e);
                e.printStackTrace();
            }
            summary.put("group_error", groupError);
            if (groupError != null) {
                errors.add("consumer-group path failed: " + groupError);
                System.err.println("group path failed (" + groupError + "); reading again with assign()");
            }
        }
        if (!readOk) {
            t = System.nanoTime();
            List<ConsumerRecord<byte[], byte[]>> got = consumeAssign(n, expectedEnd);
            summary.put("assign_consume_s", secs(t));
            verify("assign", msgs, ackPartition, ackOffset, got, tProduceStart, tProduceEnd);
        }
    }

    static java.util.Comparator<TopicPartition> tpOrder() {
        return java.util.Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition);
    }

    static class GroupFailure extends Exception {
        GroupFailure(String m) { super(m); }
    }

    List<ConsumerRecord<byte[], byte[]>> consumeGroup(String groupId, int n, Map<TopicPartition, Long> expectedEnd)
            throws Exception {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>(n);
        List<String> rebalances = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = consumer(groupId)) {
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                    if (!ps.isEmpty()) rebalances.add("revoked " + ps.size());
                }
                public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                    rebalances.add("assigned " + ps.size());
                }
            });
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            long firstRecord = -1;
            long t0 = System.nanoTime();
            while (got.size() < n && System.nanoTime() < deadline) {
                ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(500));
                for (ConsumerRecord<byte[], byte[]> r : rs) got.add(r);
                if (firstRecord < 0 && !got.isEmpty()) firstRecord = System.nanoTime();
            }
            summary.put("group_rebalance_events", rebalances);
            summary.put("group_join_s", firstRecord < 0 ? null : (firstRecord - t0) / 1e9);
            if (got.size() < n) {
                throw new GroupFailure("consumer group " + groupId + " received " + got.size() + " of " + n
                        + " records in 60s; assignment " + c.assignment() + ", rebalance events " + rebalances);
            }
            Set<TopicPartition> assigned = c.assignment();
            if (!assigned.equals(expectedEnd.keySet())) {
                throw new GroupFailure("single group member was assigned " + assigned
                        + ", expected all of " + expectedEnd.keySet());
            }
            c.commitSync(Duration.ofSeconds(30));
            // The positions after reading everything are the end offsets; the committed
            // offsets (OffsetFetch) must equal them.
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(expectedEnd.keySet(), Duration.ofSeconds(30));
            for (Map.Entry<TopicPartition, Long> e : expectedEnd.entrySet()) {
                long pos = c.position(e.getKey());
                OffsetAndMetadata om = committed.get(e.getKey());
                if (pos != e.getValue()) {
                    throw new GroupFailure("position of " + e.getKey() + " after reading all is " + pos
                            + ", expected " + e.getValue());
                }
                if (om == null || om.offset() != e.getValue()) {
                    throw new GroupFailure("committed offset of " + e.getKey() + " read back via the consumer is "
                            + om + ", expected " + e.getValue());
                }
            }
            Map<TopicPartition, Long> end = c.endOffsets(expectedEnd.keySet(), Duration.ofSeconds(30));
            if (!new HashMap<>(end).equals(new HashMap<>(expectedEnd))) {
                errors.add("consumer endOffsets " + end + " != delivery-report ends " + expectedEnd);
            }
        }
        return got;
    }

    // Admin view of the group after the member left: committed offsets (OffsetFetch) and
    // the group's state and members (DescribeGroups).
    void groupChecks(String groupId, Map<TopicPartition, Long> expectedEnd) throws Exception {
        try (Admin admin = admin()) {
            Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(groupId)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            Map<TopicPartition, Long> plain = new TreeMap<>(tpOrder());
            offs.forEach((tp, om) -> plain.put(tp, om == null ? null : om.offset()));
            if (!new HashMap<>(plain).equals(new HashMap<>(expectedEnd))) {
                throw new GroupFailure("Admin.listConsumerGroupOffsets(" + groupId + ") = " + plain
                        + ", expected " + expectedEnd);
            }
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(groupId)).describedGroups()
                    .get(groupId).get(30, TimeUnit.SECONDS);
            summary.put("group_state_after_close", String.valueOf(d.state()));
            if (!d.members().isEmpty() || !String.valueOf(d.state()).equalsIgnoreCase("Empty")) {
                throw new GroupFailure("after the only member closed, describeConsumerGroups says state "
                        + d.state() + " with " + d.members().size() + " members (expected Empty, 0)");
            }
        }
    }

    List<ConsumerRecord<byte[], byte[]>> consumeAssign(int n, Map<TopicPartition, Long> expectedEnd) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>(n);
        try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
            c.assign(expectedEnd.keySet());
            c.seekToBeginning(expectedEnd.keySet());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (got.size() < n && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) got.add(r);
            }
            // Anything beyond n would be a duplicate; give it a moment to show up.
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) got.add(r);
        }
        return got;
    }

    void verify(String how, byte[][][] msgs, int[] ackPartition, long[] ackOffset,
                List<ConsumerRecord<byte[], byte[]>> got, long tStart, long tEnd) {
        int n = msgs.length;
        int before = errors.size();
        boolean[] seen = new boolean[n];
        int dups = 0, corrupt = 0, wrongKey = 0, wrongHeader = 0, misplaced = 0, badTs = 0;
        List<String> examples = new ArrayList<>();
        Map<Integer, Long> nextOffset = new HashMap<>();
        Map<String, Integer> nextSeq = new HashMap<>();
        int offsetGaps = 0, keyOrder = 0;
        for (ConsumerRecord<byte[], byte[]> r : got) {
            int i = indexOf(r.value());
            if (i < 0 || i >= n || !Arrays.equals(r.value(), msgs[i][1])) {
                corrupt++;
                if (examples.size() < 5) examples.add("value at " + r.partition() + "/" + r.offset() + " is not a sent value: "
                        + new String(r.value(), StandardCharsets.UTF_8));
                continue;
            }
            if (seen[i]) {
                dups++;
                if (examples.size() < 5) examples.add("record " + i + " received twice (again at " + r.partition() + "/" + r.offset() + ")");
            }
            seen[i] = true;
            if (!Arrays.equals(r.key(), msgs[i][0])) {
                wrongKey++;
                if (examples.size() < 5) examples.add("record " + i + " has key " + (r.key() == null ? null
                        : new String(r.key(), StandardCharsets.UTF_8)));
            }
            Header[] hs = r.headers().toArray();
            if (hs.length != 1 || !hs[0].key().equals(HEADER) || !Arrays.equals(hs[0].value(), intBytes(i))) {
                wrongHeader++;
                if (examples.size() < 5) examples.add("record " + i + " has headers " + Arrays.toString(hs));
            }
            if (r.partition() != ackPartition[i] || r.offset() != ackOffset[i]) {
                misplaced++;
                if (examples.size() < 5) examples.add("record " + i + " acked at " + ackPartition[i] + "/" + ackOffset[i]
                        + " but fetched at " + r.partition() + "/" + r.offset());
            }
            if (r.timestampType() != TimestampType.CREATE_TIME || r.timestamp() < tStart - 1000 || r.timestamp() > tEnd + 1000) {
                badTs++;
                if (examples.size() < 5) examples.add("record " + i + " has timestamp " + r.timestamp() + " ("
                        + r.timestampType() + "), produced between " + tStart + " and " + tEnd);
            }
            long expectOff = nextOffset.getOrDefault(r.partition(), 0L);
            if (r.offset() != expectOff) {
                offsetGaps++;
                if (examples.size() < 5) examples.add("partition " + r.partition() + ": offset " + r.offset()
                        + " follows " + (expectOff - 1));
            }
            nextOffset.put(r.partition(), r.offset() + 1);
            String key = new String(msgs[i][0], StandardCharsets.UTF_8);
            int seq = Integer.parseInt(new String(msgs[i][1], StandardCharsets.UTF_8).split("\\|")[1]);
            int expectSeq = nextSeq.getOrDefault(key, 0);
            if (seq != expectSeq) {
                keyOrder++;
                if (examples.size() < 5) examples.add("key " + key + ": seq " + seq + " arrived when " + expectSeq + " was next");
            }
            nextSeq.put(key, seq + 1);
        }
        int missing = 0;
        for (boolean s : seen) if (!s) missing++;
        check(got.size() == n, how + ": received " + got.size() + " records, sent " + n);
        check(missing == 0, how + ": " + missing + " sent records never received");
        check(dups == 0, how + ": " + dups + " duplicate records");
        check(corrupt == 0, how + ": " + corrupt + " records with values never sent (corrupt)");
        check(wrongKey == 0, how + ": " + wrongKey + " records with the wrong key");
        check(wrongHeader == 0, how + ": " + wrongHeader + " records with wrong headers");
        check(misplaced == 0, how + ": " + misplaced + " records not at their delivery-report partition/offset");
        check(badTs == 0, how + ": " + badTs + " records with an unexpected timestamp/type");
        check(offsetGaps == 0, how + ": " + offsetGaps + " offset gaps/reorderings within partitions");
        check(keyOrder == 0, how + ": " + keyOrder + " per-key order violations");
        if (errors.size() > before) errors.add(how + ": examples " + examples);
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("received", got.size());
        v.put("missing", missing);
        v.put("duplicates", dups);
        v.put("corrupt", corrupt);
        v.put("keys", nextSeq.size());
        v.put("ok", errors.size() == before);
        summary.put("verified_" + how, v);
    }

    // ----------------------------------------------------------------- meta
    void meta() throws Exception {
        int partitions = intOpt("partitions", 6);
        int nodeId = intOpt("node-id", 1);
        String host = bootstrap.substring(0, bootstrap.lastIndexOf(':'));
        int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
        summary.put("topic", topic);
        try (Admin admin = admin()) {
            // describeCluster
            DescribeClusterResult dc = admin.describeCluster();
            String clusterId = dc.clusterId().get(30, TimeUnit.SECONDS);
            Collection<Node> nodes = dc.nodes().get();
            Node controller = dc.controller().get();
            summary.put("cluster_id", clusterId);
            summary.put("nodes", nodes.toString());
            summary.put("controller", String.valueOf(controller));
            check(clusterId != null && !clusterId.isEmpty(), "describeCluster: empty cluster id");
            check(nodes.size() == 1, "describeCluster: expected 1 node, got " + nodes);
            for (Node nd : nodes) {
                check(nd.id() == nodeId && nd.host().equals(host) && nd.port() == port,
                        "describeCluster: node " + nd + " is not " + nodeId + "@" + host + ":" + port);
            }
            check(controller != null && controller.id() == nodeId, "describeCluster: controller " + controller
                    + ", expected node " + nodeId);

            // createTopics with configs, describeTopics
            Map<String, String> cfg = Map.of("retention.ms", "123456789", "cleanup.policy", "delete");
            TopicDescription td = createTopic(admin, partitions, cfg);
            check(!td.isInternal(), "describeTopics: topic marked internal");
            for (TopicPartitionInfo p : td.partitions()) {
                check(p.leader().id() == nodeId && p.replicas().size() == 1 && p.isr().size() == 1,
                        "describeTopics: partition " + p + " not led by / replicated on node " + nodeId);
            }
            summary.put("topic_id", String.valueOf(td.topicId()));

            // describeConfigs: topic (dynamic overrides and defaults) and broker
            ConfigResource tr = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            ConfigResource br = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(nodeId));
            Map<ConfigResource, Config> cs = admin.describeConfigs(List.of(tr, br)).all().get(30, TimeUnit.SECONDS);
            Config tc = cs.get(tr);
            for (Map.Entry<String, String> e : cfg.entrySet()) {
                ConfigEntry ce = tc.get(e.getKey());
                check(ce != null && e.getValue().equals(ce.value()) && ce.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                        "describeConfigs(topic): " + e.getKey() + " = " + ce + ", expected " + e.getValue()
                                + " from DYNAMIC_TOPIC_CONFIG");
            }
            ConfigEntry seg = tc.get("segment.bytes");
            check(seg != null && seg.value() != null && Long.parseLong(seg.value()) > 0,
                    "describeConfigs(topic): segment.bytes entry " + seg);
            Config bc = cs.get(br);
            summary.put("topic_config_entries", tc.entries().size());
            summary.put("broker_config_entries", bc.entries().size());
            check(bc.entries().size() > 0, "describeConfigs(broker " + nodeId + "): no entries");
            ConfigEntry np = bc.get("num.partitions");
            check(np != null && np.value() != null, "describeConfigs(broker): no num.partitions entry");

            // Records with chosen timestamps in partition 0: ts[i] = T0 + 10 i, except
            // ts[70] = T0 + 5000 (the maximum, out of order). Four separate batches.
            long t0 = System.currentTimeMillis() - 3_600_000L;
            int m = 100;
            long[] ts = new long[m];
            for (int i = 0; i < m; i++) ts[i] = t0 + 10L * i;
            ts[70] = t0 + 5000;
            try (KafkaProducer<byte[], byte[]> producer = producer("lz4", 0)) {
                for (int i = 0; i < m; i++) {
                    producer.send(new ProducerRecord<>(topic, 0, ts[i], ("t" + i).getBytes(StandardCharsets.UTF_8),
                            ("timestamped-" + i).getBytes(StandardCharsets.UTF_8))).get(30, TimeUnit.SECONDS);
                    if (i % 25 == 24) producer.flush();
                }
                // and 7 records to partition 1 with "now" timestamps
                for (int i = 0; i < 7; i++) {
                    producer.send(new ProducerRecord<>(topic, 1, null, ("p1-" + i).getBytes(StandardCharsets.UTF_8)));
                }
                producer.flush();
            }
            TopicPartition p0 = new TopicPartition(topic, 0), p1 = new TopicPartition(topic, 1), p2 = new TopicPartition(topic, 2);
            Map<String, Object> got = new LinkedHashMap<>();
            listOffsetsCheck(admin, "earliest p0", p0, OffsetSpec.earliest(), 0, -2, got);
            listOffsetsCheck(admin, "latest p0", p0, OffsetSpec.latest(), m, -2, got);
            listOffsetsCheck(admin, "earliest p1", p1, OffsetSpec.earliest(), 0, -2, got);
            listOffsetsCheck(admin, "latest p1", p1, OffsetSpec.latest(), 7, -2, got);
            listOffsetsCheck(admin, "earliest p2 (empty)", p2, OffsetSpec.earliest(), 0, -2, got);
            listOffsetsCheck(admin, "latest p2 (empty)", p2, OffsetSpec.latest(), 0, -2, got);
            listOffsetsCheck(admin, "forTimestamp(ts[0]) p0", p0, OffsetSpec.forTimestamp(t0), 0, t0, got);
            listOffsetsCheck(admin, "forTimestamp(ts[0]-1h) p0", p0, OffsetSpec.forTimestamp(t0 - 3_600_000L), 0, t0, got);
            listOffsetsCheck(admin, "forTimestamp(ts[50]) p0", p0, OffsetSpec.forTimestamp(t0 + 500), 50, t0 + 500, got);
            listOffsetsCheck(admin, "forTimestamp(ts[50]+5) p0", p0, OffsetSpec.forTimestamp(t0 + 505), 51, t0 + 510, got);
            listOffsetsCheck(admin, "forTimestamp(ts[69]+1) p0", p0, OffsetSpec.forTimestamp(t0 + 691), 70, t0 + 5000, got);
            listOffsetsCheck(admin, "forTimestamp(ts[99]) p0", p0, OffsetSpec.forTimestamp(t0 + 990), 70, t0 + 5000, got);
            listOffsetsCheck(admin, "forTimestamp(max+1) p0", p0, OffsetSpec.forTimestamp(t0 + 5001), -1, -1, got);
            listOffsetsCheck(admin, "maxTimestamp p0", p0, OffsetSpec.maxTimestamp(), 70, t0 + 5000, got);
            summary.put("list_offsets", got);

            // The consumer's own offset look-ups (ListOffsets through the consumer's fetcher).
            try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
                Set<TopicPartition> tps = Set.of(p0, p1, p2);
                Map<TopicPartition, Long> b = c.beginningOffsets(tps, Duration.ofSeconds(30));
                Map<TopicPartition, Long> e = c.endOffsets(tps, Duration.ofSeconds(30));
                check(b.equals(Map.of(p0, 0L, p1, 0L, p2, 0L)), "consumer.beginningOffsets = " + b);
                check(e.equals(Map.of(p0, (long) m, p1, 7L, p2, 0L)), "consumer.endOffsets = " + e);
                Map<TopicPartition, OffsetAndTimestamp> ft = c.offsetsForTimes(Map.of(p0, t0 + 505, p2, t0), Duration.ofSeconds(30));
                OffsetAndTimestamp f0 = ft.get(p0);
                check(f0 != null && f0.offset() == 51 && f0.timestamp() == t0 + 510,
                        "consumer.offsetsForTimes(p0, ts[50]+5) = " + f0 + ", expected offset 51 timestamp " + (t0 + 510));
                check(ft.get(p2) == null, "consumer.offsetsForTimes(empty p2) = " + ft.get(p2) + ", expected null");
                // and the records themselves carry their timestamps
                c.assign(List.of(p0));
                c.seek(p0, 68);
                List<ConsumerRecord<byte[], byte[]>> rs = new ArrayList<>();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (rs.size() < 3 && System.nanoTime() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) rs.add(r);
                }
                check(rs.size() >= 3, "fetch from p0 offset 68 returned " + rs.size() + " records");
                for (ConsumerRecord<byte[], byte[]> r : rs.subList(0, Math.min(3, rs.size()))) {
                    int i = (int) r.offset();
                    check(r.timestamp() == ts[i] && r.timestampType() == TimestampType.CREATE_TIME
                                    && new String(r.value(), StandardCharsets.UTF_8).equals("timestamped-" + i),
                            "record p0/" + i + ": timestamp " + r.timestamp() + " " + r.timestampType() + " value "
                                    + new String(r.value(), StandardCharsets.UTF_8) + ", expected " + ts[i]);
                }
            }

            // deleteTopics
            admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            boolean gone = false;
            while (!gone && System.nanoTime() < deadline) {
                gone = !admin.listTopics().names().get().contains(topic);
                if (!gone) Thread.sleep(100);
            }
            check(gone, "deleteTopics: " + topic + " still listed after 30s");
        }
    }

    // -------------------------------------------------------------- cluster
    void cluster() throws Exception {
        try (Admin admin = admin()) {
            DescribeClusterResult dc = admin.describeCluster();
            summary.put("cluster_id", dc.clusterId().get(30, TimeUnit.SECONDS));
            List<Map<String, Object>> nodes = new ArrayList<>();
            for (Node nd : dc.nodes().get(30, TimeUnit.SECONDS)) nodes.add(node(nd));
            summary.put("nodes", nodes);
            Node controller = dc.controller().get(30, TimeUnit.SECONDS);
            summary.put("controller", controller == null ? null : controller.id());
            Map<String, Object> topics = new TreeMap<>();
            List<String> names = Arrays.asList(topic.split(","));
            Map<String, TopicDescription> tds = admin.describeTopics(names).allTopicNames().get(30, TimeUnit.SECONDS);
            for (String name : names) {
                List<Map<String, Object>> parts = new ArrayList<>();
                for (TopicPartitionInfo p : tds.get(name).partitions()) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("partition", p.partition());
                    m.put("leader", p.leader() == null ? null : p.leader().id());
                    m.put("replicas", p.replicas().stream().map(Node::id).collect(java.util.stream.Collectors.toList()));
                    m.put("isr", p.isr().stream().map(Node::id).collect(java.util.stream.Collectors.toList()));
                    parts.add(m);
                }
                topics.put(name, parts);
            }
            summary.put("topics", topics);
        }
    }

    // ------------------------------------------------------------- reassign
    /** --partition=P --replicas=a,b,c: moves the partition with the Admin client's own
     *  reassignment API (KIP-455), lists it while it moves, waits until it is done
     *  (--wait=false: only submits). */
    void reassign() throws Exception {
        int partition = Integer.parseInt(need("partition"));
        List<Integer> target = new ArrayList<>();
        for (String r : need("replicas").split(",")) target.add(Integer.parseInt(r.trim()));
        TopicPartition tp = new TopicPartition(topic, partition);
        try (Admin admin = admin()) {
            Map<TopicPartition, java.util.Optional<org.apache.kafka.clients.admin.NewPartitionReassignment>> ask = new HashMap<>();
            ask.put(tp, java.util.Optional.of(new org.apache.kafka.clients.admin.NewPartitionReassignment(target)));
            admin.alterPartitionReassignments(ask).all().get(30, TimeUnit.SECONDS);
            if (opt.getOrDefault("wait", "true").equals("false")) return;
            boolean listed = false;
            long deadline = System.nanoTime() + 90_000_000_000L;
            while (true) {
                Map<TopicPartition, org.apache.kafka.clients.admin.PartitionReassignment> ongoing =
                    admin.listPartitionReassignments().reassignments().get(30, TimeUnit.SECONDS);
                if (ongoing.containsKey(tp)) {
                    listed = true;
                    summary.put("adding", ongoing.get(tp).addingReplicas());
                    summary.put("removing", ongoing.get(tp).removingReplicas());
                } else {
                    break;
                }
                if (System.nanoTime() > deadline) { errors.add("reassignment still in progress after 90 s"); break; }
                Thread.sleep(200);
            }
            summary.put("listed_while_moving", listed);
            TopicPartitionInfo info = admin.describeTopics(java.util.List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS)
                .get(topic).partitions().get(partition);
            summary.put("final_replicas", info.replicas().stream().map(Node::id).collect(java.util.stream.Collectors.toList()));
            summary.put("final_isr", info.isr().stream().map(Node::id).collect(java.util.stream.Collectors.toList()));
            summary.put("final_leader", info.leader() == null ? null : info.leader().id());
        }
    }

    // ------------------------------------------------------- move-log-dir
    /** AlterReplicaLogDirs with the admin client's own API, then describeReplicaLogDirs until
     * the replica is in --dir with no future replica left (what kafka-reassign-partitions.sh
     * --verify checks for log_dirs). */
    void moveLogDir() throws Exception {
        int partition = Integer.parseInt(need("partition"));
        int brokerId = Integer.parseInt(need("broker"));
        String dir = need("dir");
        org.apache.kafka.common.TopicPartitionReplica replica = new org.apache.kafka.common.TopicPartitionReplica(topic, partition, brokerId);
        try (Admin admin = admin()) {
            long t = System.nanoTime();
            admin.alterReplicaLogDirs(java.util.Map.of(replica, dir)).all().get(30, TimeUnit.SECONDS);
            boolean futureSeen = false;
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (true) {
                org.apache.kafka.clients.admin.DescribeReplicaLogDirsResult.ReplicaLogDirInfo info =
                    admin.describeReplicaLogDirs(java.util.List.of(replica)).all().get(30, TimeUnit.SECONDS).get(replica);
                if (info.getFutureReplicaLogDir() != null) {
                    futureSeen = true;
                    summary.put("future_dir", info.getFutureReplicaLogDir());
                }
                if (dir.equals(info.getCurrentReplicaLogDir()) && info.getFutureReplicaLogDir() == null) {
                    summary.put("current_dir", info.getCurrentReplicaLogDir());
                    break;
                }
                if (System.nanoTime() > deadline) {
                    errors.add("replica not in " + dir + " after 120 s: current " + info.getCurrentReplicaLogDir() + ", future " + info.getFutureReplicaLogDir());
                    break;
                }
                Thread.sleep(50);
            }
            summary.put("future_seen", futureSeen);
            summary.put("move_s", secs(t));
        }
    }

    /** The legacy Admin.alterConfigs (deprecated in 3.x, gone in 4.x: called by reflection so
     *  this file compiles against both) replaces a topic's whole set of configs; then
     *  describeConfigs shows what it left, an invalid value is refused, and
     *  Admin.describeProducers reports the idempotent producer that wrote 10 records. */
    void adminCompat() throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of("retention.ms", "100000", "cleanup.policy", "compact"))))
                .all().get(30, TimeUnit.SECONDS);
            java.lang.reflect.Method alter;
            try {
                alter = admin.getClass().getMethod("alterConfigs", Map.class);
            } catch (NoSuchMethodException e) {
                alter = null;
            }
            summary.put("legacy_alter_configs", alter != null);
            if (alter != null) {
                Object result = alter.invoke(admin, Map.of(res, new Config(List.of(new ConfigEntry("retention.bytes", "12345")))));
                ((org.apache.kafka.clients.admin.AlterConfigsResult) result).all().get(30, TimeUnit.SECONDS);
                Config after = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
                Map<String, Object> seen = new LinkedHashMap<>();
                for (String k : List.of("retention.bytes", "retention.ms", "cleanup.policy")) {
                    ConfigEntry e = after.get(k);
                    seen.put(k, e == null ? null : e.value() + " " + e.source());
                }
                summary.put("configs_after_alter", seen);
                Object bad = alter.invoke(admin, Map.of(res, new Config(List.of(new ConfigEntry("retention.bytes", "lots")))));
                try {
                    ((org.apache.kafka.clients.admin.AlterConfigsResult) bad).all().get(30, TimeUnit.SECONDS);
                    summary.put("invalid_value", "accepted");
                } catch (java.util.concurrent.ExecutionException e) {
                    summary.put("invalid_value", e.getCause().getClass().getSimpleName());
                }
            }
            try (KafkaProducer<byte[], byte[]> producer = producer("none", 0)) {
                for (int i = 0; i < 10; i++) {
                    producer.send(new ProducerRecord<>(topic, 0, ("k" + i).getBytes(StandardCharsets.UTF_8), ("v" + i).getBytes(StandardCharsets.UTF_8))).get(30, TimeUnit.SECONDS);
                }
            }
            summary.put("producers", producersOf(admin, tp));
        }
    }

    /** Admin.describeProducers of partition 0 of --topic. */
    void describeProducers() throws Exception {
        try (Admin admin = admin()) {
            summary.put("producers", producersOf(admin, new TopicPartition(topic, 0)));
        }
    }

    static List<Map<String, Object>> producersOf(Admin admin, TopicPartition tp) throws Exception {
        List<Map<String, Object>> producers = new ArrayList<>();
        for (org.apache.kafka.clients.admin.ProducerState ps : admin.describeProducers(List.of(tp)).partitionResult(tp).get(30, TimeUnit.SECONDS).activeProducers()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("producer_id", ps.producerId());
            m.put("epoch", ps.producerEpoch());
            m.put("last_sequence", ps.lastSequence());
            m.put("last_timestamp", ps.lastTimestamp());
            m.put("txn_start", ps.currentTransactionStartOffset().isPresent());
            producers.add(m);
        }
        return producers;
    }

    /** KIP-467: one batch of 100 records to a compacted topic, every tenth (3, 13, ...) without
     *  a key. Reports, by exception class, which record indexes failed and how. */
    void recordErrors() throws Exception {
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of("cleanup.policy", "compact"))))
                .all().get(30, TimeUnit.SECONDS);
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 2000);
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, 1 << 20);
        p.put(ProducerConfig.RETRIES_CONFIG, 0);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        Map<String, List<Integer>> failedBy = new TreeMap<>();
        Map<String, String> messageBy = new TreeMap<>();
        List<Integer> ok = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                byte[] key = i % 10 == 3 ? null : ("k" + i).getBytes(StandardCharsets.UTF_8);
                sent.add(producer.send(new ProducerRecord<>(topic, 0, key, ("v" + i).getBytes(StandardCharsets.UTF_8))));
            }
            producer.flush();
            for (int i = 0; i < sent.size(); i++) {
                try {
                    sent.get(i).get(30, TimeUnit.SECONDS);
                    ok.add(i);
                } catch (ExecutionException e) {
                    String cls = e.getCause().getClass().getSimpleName();
                    failedBy.computeIfAbsent(cls, k -> new ArrayList<>()).add(i);
                    messageBy.putIfAbsent(cls, String.valueOf(e.getCause().getMessage()));
                }
            }
        }
        summary.put("acked", ok.size());
        summary.put("failed_by", failedBy);
        summary.put("message_by", messageBy);
    }

    static Map<String, Object> node(Node nd) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", nd.id());
        m.put("host", nd.host());
        m.put("port", nd.port());
        m.put("rack", nd.rack());
        return m;
    }

    // -------------------------------------------------------------- produce
    void produceFile() throws Exception {
        List<String[]> recs = new ArrayList<>();
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of(need("input")), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) continue;
            String[] kv = line.split("\t", 2);
            if (kv.length != 2) throw new IllegalArgumentException("input line without a tab: " + line);
            recs.add(kv);
        }
        AtomicInteger acked = new AtomicInteger();
        AtomicInteger failed = new AtomicInteger();
        AtomicReference<String> firstError = new AtomicReference<>();
        long t = System.nanoTime();
        Map<String, Object> producerMetrics = new LinkedHashMap<>();
        // --rate=N: at most N records a second (a producer still writing while a fault lands).
        double rate = Double.parseDouble(opt.getOrDefault("rate", "0"));
        try (KafkaProducer<byte[], byte[]> producer = producer("none", 5)) {
            System.err.println("LanternClientCheck: producing " + recs.size() + " records");
            System.err.flush();
            for (int i = 0; i < recs.size(); i++) {
                final int idx = i;
                if (rate > 0) {
                    long due = t + (long) (i / rate * 1e9);
                    long wait = due - System.nanoTime();
                    if (wait > 0) Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
                producer.send(new ProducerRecord<>(topic, recs.get(i)[0].getBytes(StandardCharsets.UTF_8),
                        recs.get(i)[1].getBytes(StandardCharsets.UTF_8)), (md, e) -> {
                    if (e != null) {
                        failed.incrementAndGet();
                        firstError.compareAndSet(null, "record " + idx + ": " + describe(e));
                    } else {
                        acked.incrementAndGet();
                    }
                });
            }
            producer.flush();
            for (Map.Entry<MetricName, ? extends Metric> m : producer.metrics().entrySet()) {
                MetricName mn = m.getKey();
                if (mn.group().equals("producer-metrics")
                        && (mn.name().equals("record-retry-total") || mn.name().equals("record-error-total"))) {
                    producerMetrics.put(mn.name(), m.getValue().metricValue());
                }
            }
        }
        summary.put("produce_s", secs(t));
        summary.put("count", recs.size());
        summary.put("acked", acked.get());
        summary.put("producer_metrics", producerMetrics);
        check(failed.get() == 0, failed.get() + " sends failed; first: " + firstError.get());
        check(acked.get() == recs.size(), "only " + acked.get() + " of " + recs.size() + " sends were acknowledged");
    }

    void listOffsetsCheck(Admin admin, String name, TopicPartition tp, OffsetSpec spec, long offset, long timestamp,
                          Map<String, Object> got) throws Exception {
        try {
            ListOffsetsResult.ListOffsetsResultInfo info = admin.listOffsets(Map.of(tp, spec)).partitionResult(tp)
                    .get(30, TimeUnit.SECONDS);
            got.put(name, info.offset() + "@" + info.timestamp());
            check(info.offset() == offset && (timestamp == -2 || info.timestamp() == timestamp),
                    "listOffsets " + name + ": offset " + info.offset() + " timestamp " + info.timestamp()
                            + ", expected offset " + offset + (timestamp == -2 ? "" : " timestamp " + timestamp));
        } catch (ExecutionException e) {
            got.put(name, describe(e.getCause()));
            errors.add("listOffsets " + name + " failed: " + describe(e.getCause()));
        }
    }

    // ------------------------------------------------------------------ util
    static double secs(long t0) {
        return Math.round((System.nanoTime() - t0) / 1e6) / 1e3;
    }

    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        Throwable c = t;
        int depth = 0;
        while (c != null && depth++ < 5) {
            if (sb.length() > 0) sb.append(" / caused by ");
            sb.append(c.getClass().getName()).append(": ").append(c.getMessage());
            c = c.getCause() == c ? null : c.getCause();
        }
        return sb.toString();
    }

    static String json(Object o) {
        if (o == null) return "null";
        if (o instanceof Boolean || o instanceof Integer || o instanceof Long) return o.toString();
        if (o instanceof Double) {
            double d = (Double) o;
            return Double.isFinite(d) ? o.toString() : "null";
        }
        if (o instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (sb.length() > 1) sb.append(", ");
                sb.append(json(String.valueOf(e.getKey()))).append(": ").append(json(e.getValue()));
            }
            return sb.append("}").toString();
        }
        if (o instanceof Collection) {
            StringBuilder sb = new StringBuilder("[");
            for (Object x : (Collection<?>) o) {
                if (sb.length() > 1) sb.append(", ");
                sb.append(json(x));
            }
            return sb.append("]").toString();
        }
        String s = o.toString();
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (ch < 0x20) sb.append(String.format("\\u%04x", (int) ch));
                    else sb.append(ch);
            }
        }
        return sb.append('"').toString();
    }
}
