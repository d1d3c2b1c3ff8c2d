//! The cost of broker-side recompression (`compression.type` other than `producer`): the
//! same produce run against brokers whose default compression.type differs, so the broker
//! decompresses each batch from the producer's codec and compresses it again in its own.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::kafka::{self, ProduceResult, ProduceSpec};
use crate::sys::{BrokerOpts, Fsync, Meter, Usage};
use crate::Bench;

/// The broker's compression.type of each run; `producer` (stored as sent) first, the baseline.
pub const TOPIC_CODECS: [&str; 4] = ["producer", "zstd", "gzip", "uncompressed"];

pub struct RecompressRow {
    pub topic_codec: &'static str,
    pub spec: ProduceSpec,
    pub r: ProduceResult,
    pub u: Usage,
    /// Bytes of the partition's segment files at the end of the run.
    pub stored_bytes: u64,
}

impl Bench {
    pub(crate) fn run_recompress(&mut self, spec: ProduceSpec, topic_codec: &'static str) {
        let what = format!("produce {} B {} with broker compression.type={topic_codec}", spec.size, spec.compression);
        self.guarded(&what, |b| {
            let opts = BrokerOpts {
                partitions: spec.partitions,
                fsync: Fsync::Off,
                metrics: true,
                extra: vec![format!("--compression.type={topic_codec}")],
                env: vec![],
            };
            let mut broker = b.start_broker("recompress", &opts);
            let m = Meter::start(broker.pid);
            let r = kafka::produce(&broker.bootstrap, "bench", &spec);
            let u = m.stop();
            let stored_bytes = segment_bytes(&broker.dir.join("data"));
            eprintln!("[bench]   {:.1} MB/s {:.0} msg/s, stored {stored_bytes} B, {u:?}", r.mb_s(), r.msg_s());
            broker.stop();
            assert!(r.failed == 0, "{} deliveries failed: {:?}", r.failed, r.first_error);
            b.recompress.push(RecompressRow { topic_codec, spec, r, u, stored_bytes });
        });
    }
}

/// Total size of the `.log` files under `dir`.
fn segment_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                segment_bytes(&p)
            } else if p.extension().is_some_and(|x| x == "log") {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}

/// The results table, and its JSON.
pub fn report(rows: &[RecompressRow], w: &mut String) -> serde_json::Value {
    let Some(first) = rows.first() else { return json!([]) };
    let s = &first.spec;
    let _ = writeln!(
        w,
        "### Broker-side recompression (compression.type; produce {} B x {} partition, acks={}, producer {}, fsync off)\n",
        s.size, s.partitions, s.acks, s.compression
    );
    let _ = writeln!(w, "The broker's `--compression.type` is the topic's default: `producer` stores the batches as sent (the baseline); any other codec makes the broker decompress every batch and compress it again before the append (off the log's lock, on a blocking thread). \"stored\" is the size of the segment files at the end, per byte of record values.\n");
    let _ = writeln!(w, "| broker compression.type | msg/s | MB/s | vs producer | broker CPU s (per GB) | stored (per value byte) | broker peak RSS | client CPU s | other CPU s |\n|---|---|---|---|---|---|---|---|---|");
    let base = rows.iter().find(|r| r.topic_codec == "producer").map(|r| r.r.mb_s());
    for row in rows {
        let gb = row.r.bytes as f64 / 1e9;
        let vs = base.map_or("-".to_string(), |b| format!("{:+.0}%", (row.r.mb_s() / b - 1.0) * 100.0));
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:.1} | {} | {:.2} ({:.2}) | {} B ({:.2}) | {:.0} MiB | {:.2} | {:.2} |",
            row.topic_codec,
            row.r.msg_s(),
            row.r.mb_s(),
            vs,
            row.u.broker_cpu_s,
            row.u.broker_cpu_s / gb.max(1e-9),
            row.stored_bytes,
            row.stored_bytes as f64 / (row.r.bytes as f64).max(1.0),
            row.u.broker_peak_rss_mib,
            row.u.client_cpu_s,
            row.u.other_cpu_s
        );
    }
    let _ = writeln!(w);
    json!(rows
        .iter()
        .map(|row| json!({"topic_codec": row.topic_codec, "mb_s": row.r.mb_s(), "msg_s": row.r.msg_s(), "stored_bytes": row.stored_bytes,
            "value_bytes": row.r.bytes, "usage": crate::report::usage_json(&row.u)}))
        .collect::<Vec<_>>())
}
