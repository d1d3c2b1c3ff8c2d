//! The Markdown results section and the raw JSON of a run: the targets table first, then
//! each measured section in the order the runs happened.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;

use crate::sys::{Fsync, Usage};
use crate::{fsync_label, kafka, overhead, Bench, MB};

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}%", x * 100.0)
    } else {
        "n/a".into()
    }
}

pub fn usage_json(u: &Usage) -> serde_json::Value {
    json!({"wall_s": u.wall_s, "broker_cpu_s": u.broker_cpu_s, "client_cpu_s": u.client_cpu_s,
           "other_cpu_s": u.other_cpu_s, "broker_peak_rss_mib": u.broker_peak_rss_mib})
}

struct Target {
    name: String,
    measured: String,
    goal: String,
    met: Option<bool>,
    margin: String,
}

pub fn report(b: &Bench, total_s: f64) -> (String, serde_json::Value) {
    let mut md = String::new();
    let mut js = BTreeMap::new();
    let l = b.limits.clone();
    let w = &mut md;

    let _ = writeln!(
        w,
        "Run took {total_s:.0} s. Load average (1/5/15 min) {}.\n",
        b.load
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let _ = writeln!(
        w,
        "Before every run the harness waits until other work uses at most {:.0}% of the CPUs (0.5 s sample): it waited {:.0} s in all{}.\n",
        b.a.quiet * 100.0,
        b.waited_s,
        if b.busy_starts.is_empty() {
            String::from("; every run started on a quiet machine")
        } else {
            format!(", and gave up waiting before: {}", b.busy_starts.join(", "))
        }
    );

    // Machine limits.
    if let Some(l) = &l {
        let _ = writeln!(w, "### Machine limits (same run)\n");
        let _ = writeln!(w, "| limit | value | how |\n|---|---|---|");
        let _ = writeln!(
            w,
            "| loopback TCP, 1 stream | {:.0} MB/s | {} , 5 s |",
            l.tcp_bps / MB,
            l.tcp_tool
        );
        let _ = writeln!(w, "| loopback TCP round trip, 1 KiB ping-pong | p50 {:.0} us, p99 {:.0} us | built-in, 2 s |", l.rtt_p50_us, l.rtt_p99_us);
        let _ = writeln!(w, "| sequential write, buffered (no fsync) | {:.0} MB/s | 1 MiB writes to a new file on the data-dir filesystem, up to 4 GiB or 5 s, one pass |", l.seq_buffered_bps / MB);
        let _ = writeln!(w, "| (the same, straight after, into the pages just freed) | {:.0} MB/s | up to 1 GiB or 2 s: not a limit, shows the VM's first-touch cost |", l.seq_buffered_warm_bps / MB);
        let _ = writeln!(w, "| sequential write + fdatasync at end | {:.0} MB/s | 1 MiB writes, up to 2 GiB or 4 s, then fdatasync (timed) |", l.seq_fsync_bps / MB);
        let _ = writeln!(w, "| 4 KiB append + fdatasync | p50 {:.2} ms, p99 {:.2} ms | 3 s of appends, each synced |", l.fsync4k_p50_us / 1e3, l.fsync4k_p99_us / 1e3);
        let _ = writeln!(w, "\nThese are for reference: each produce run is judged against its own limit, measured right after it (see the produce table).\n");
        js.insert("limits", json!({"tcp_bytes_s": l.tcp_bps, "tcp_tool": l.tcp_tool, "rtt_p50_us": l.rtt_p50_us,
            "rtt_p99_us": l.rtt_p99_us, "seq_buffered_bytes_s": l.seq_buffered_bps, "seq_buffered_warm_bytes_s": l.seq_buffered_warm_bps, "seq_fsync_bytes_s": l.seq_fsync_bps,
            "fsync4k_p50_us": l.fsync4k_p50_us, "fsync4k_p99_us": l.fsync4k_p99_us}));
    }

    // Produce.
    let mut pj = vec![];
    if !b.produce.is_empty() {
        let _ = writeln!(w, "### Produce throughput\n");
        let _ = writeln!(w, "MB = 10^6 bytes of record values (keys are null). \"of limit\": the bytes the broker stored per second (batches as sent, after compression: batches x mean batch size), as a fraction of the smaller of loopback TCP (measured once, at the start) and the **same bytes appended bare right after the run**: the run's data dir deleted, then, after waiting as long as the run started after the step before it had deleted its data (\"wait\"), chunks of the run's mean batch size appended to one new, growing file per partition (fdatasync after each append and a writer per file in fsync-per-batch runs; min(partitions, cores) writers without), into the pages just freed. The page-cache state can still differ (the step before a run may have freed fewer bytes than the run writes): \"busy\" is the machine's busy CPU seconds while the limit was measured (its own writers included), and a result over 100% is marked. CPU columns are seconds over the whole phase (broker: and per GB of values); \"other\" is CPU used by everything else on the machine meanwhile (noise).\n");
        let _ = writeln!(w, "| record | partitions | acks | compression | fsync | msg/s | MB/s | stored MB/s | of limit | limit: wait, busy | mean batch | broker CPU s (per GB) | broker peak RSS | client CPU s | other CPU s |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for p in &b.produce {
            let limit = p.limit_bps(l.as_ref());
            let of = p.of_limit(l.as_ref());
            let _ = writeln!(
                w,
                "| {} B | {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {}{} of {:.0} MB/s | {:.1} s, {:.2} CPU s | {:.0} B / {:.0} msgs | {:.2} ({:.2}) | {:.0} MiB | {:.2} | {:.2} |",
                p.spec.size, p.partitions_label, p.spec.acks, p.spec.compression, fsync_label(p.fsync), p.r.msg_s(), p.r.mb_s(),
                p.stored_bps / MB, pct(of), if of > 1.0 { " (**over its limit**)" } else { "" }, limit / MB, p.since_free_s, p.limit_busy_s, p.r.avg_batch_bytes, p.r.avg_batch_msgs, p.u.broker_cpu_s,
                p.u.broker_cpu_s / (p.r.bytes as f64 / 1e9), p.u.broker_peak_rss_mib, p.u.client_cpu_s, p.u.other_cpu_s
            );
            pj.push(json!({"size": p.spec.size, "partitions": p.spec.partitions, "acks": p.spec.acks,
                "compression": p.spec.compression, "fsync": fsync_label(p.fsync), "msgs": p.r.msgs, "bytes": p.r.bytes,
                "secs": p.r.secs, "mb_s": p.r.mb_s(), "msg_s": p.r.msg_s(), "stored_bytes_s": p.stored_bps,
                "storage_limit_bytes_s": p.storage_limit_bps, "limit_busy_cpu_s": p.limit_busy_s, "since_free_s": p.since_free_s, "limit_bytes_s": limit, "fraction_of_limit": of,
                "avg_batch_bytes": p.r.avg_batch_bytes, "avg_batch_msgs": p.r.avg_batch_msgs,
                "usage": usage_json(&p.u),
                "consume": p.consume.as_ref().map(|(c, u)| json!({"msgs": c.msgs, "bytes": c.bytes, "secs": c.secs,
                    "mb_s": c.mb_s(), "msg_s": c.msg_s(), "usage": usage_json(u)})),
                "consume_small_fetch": p.consume_small_fetch.as_ref().map(|(c, u)| json!({"fetch_max_bytes": kafka::SMALL_FETCH_MAX_BYTES,
                    "msgs": c.msgs, "bytes": c.bytes, "secs": c.secs, "mb_s": c.mb_s(), "msg_s": c.msg_s(), "usage": usage_json(u)}))}));
        }
        let _ = writeln!(w);
    }
    js.insert("produce", json!(pj));

    // Consume.
    if b.produce.iter().any(|p| p.consume.is_some()) {
        let _ = writeln!(
            w,
            "### Consume throughput (page cache, right after the produce run of the same row)\n"
        );
        let _ = writeln!(w, "| data set | msg/s | MB/s | x produce | of loopback TCP | broker CPU s (per GB) | broker peak RSS | client CPU s | other CPU s |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|");
        for p in &b.produce {
            let small = p.consume_small_fetch.iter().map(|c| (format!(", consumer fetch.max.bytes={}", kafka::SMALL_FETCH_MAX_BYTES), c));
            for (setting, (c, u)) in p.consume.iter().map(|c| (String::new(), c)).chain(small) {
                let tcp = l.as_ref().map_or(f64::NAN, |l| l.tcp_bps);
                let _ = writeln!(
                    w,
                    "| {} B x {} partitions, acks={}, {}{setting} ({:.2} GB) | {:.0} | {:.1} | {:.2}x | {} | {:.2} ({:.2}) | {:.0} MiB | {:.2} | {:.2} |",
                    p.spec.size, p.partitions_label, p.spec.acks, p.spec.compression, c.bytes as f64 / 1e9, c.msg_s(), c.mb_s(),
                    c.mb_s() / p.r.mb_s(), pct(c.mb_s() * MB / tcp), u.broker_cpu_s, u.broker_cpu_s / (c.bytes as f64 / 1e9),
                    u.broker_peak_rss_mib, u.client_cpu_s, u.other_cpu_s
                );
            }
        }
        let _ = writeln!(w);
    }

    // Latency.
    let mut lj = vec![];
    if !b.latency.is_empty() {
        let _ = writeln!(
            w,
            "### End-to-end latency, 10,000 msg/s of 1 KiB, acks=all, linger.ms=0\n"
        );
        let _ = writeln!(w, "Producer send call to consumer receive, timestamps in the payload (one process, one monotonic clock); the first second is warm-up and not counted. Floor: loopback 1 KiB round trip p50 {}.\n",
            l.as_ref().map_or("n/a".into(), |l| format!("{:.0} us", l.rtt_p50_us)));
        let _ = writeln!(w, "| setup | rate achieved | measured msgs | p50 | p99 | p99.9 | max | broker CPU s | broker peak RSS | other CPU s |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &b.latency {
            let _ = writeln!(
                w,
                "| {} | {:.0} msg/s | {} of {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} | {:.0} MiB | {:.2} |",
                r.label, r.r.rate, r.r.measured, r.r.sent, r.r.p50_ms, r.r.p99_ms, r.r.p999_ms, r.r.max_ms, r.u.broker_cpu_s,
                r.u.broker_peak_rss_mib, r.u.other_cpu_s
            );
            lj.push(json!({"label": r.label, "partitions": r.partitions, "fsync": fsync_label(r.fsync), "sent": r.r.sent,
                "received": r.r.received, "measured": r.r.measured, "rate": r.r.rate, "p50_ms": r.r.p50_ms, "p99_ms": r.r.p99_ms,
                "p999_ms": r.r.p999_ms, "max_ms": r.r.max_ms, "usage": usage_json(&r.u)}));
        }
        let _ = writeln!(w);
    }
    js.insert("latency", json!(lj));

    // Metrics on/off.
    let metrics_overhead = (!b.metrics.is_empty()).then(|| {
        let o = overhead::report(&b.metrics, "produce 1 KiB x 8 partitions paced at 300 MB/s, acks=1, none, fsync off; throughput equal by construction", w);
        js.insert("metrics", o.json.clone());
        o
    });

    if !b.metrics_profiles.is_empty() {
        let pj = crate::metrics_profile::report(&b.metrics_profiles, w);
        js.insert("metrics_profile", pj);
    }

    if !b.tracing.is_empty() {
        let tj = crate::tracing_cost::report(&b.tracing, &b.tracing_spans, "produce 1 KiB x 8 partitions paced at 300 MB/s, acks=1, none, fsync off", w);
        js.insert("tracing", tj);
    }

    if !b.recompress.is_empty() {
        let rj = crate::recompress::report(&b.recompress, w);
        js.insert("recompress", rj);
    }

    if !b.profiles.is_empty() {
        let _ = writeln!(w, "### Profiles (perf record -e cpu-clock -a, whole machine; separate runs, not in the tables above)\n");
        let _ = writeln!(w, "Thread names: `tokio-rt-worker` (and other non-`rdk:` threads but `lantern-bench`) are the broker, `rdk:*` librdkafka's threads and `lantern-bench` the harness's own (client) thread; `swapper` is idle.\n");
        for p in &b.profiles {
            let _ = writeln!(
                w,
                "**{}**\n\n```\n{}\n\n{}\n```\n",
                p.label, p.by_comm, p.top
            );
        }
    }
    if let Some(a) = &b.broker_args {
        let _ = writeln!(w, "First broker's command line (others differ in ports, dir, partitions, flush and metrics flags):\n\n```\n{a}\n```\n");
    }

    // Targets.
    let mut t: Vec<Target> = vec![];
    for p in b.produce.iter().filter(|p| {
        p.fsync == Fsync::Off
            && p.spec.size == 1024
            && p.spec.acks == "1"
            && p.spec.compression == "none"
            && p.spec.partitions <= 8
    }) {
        let f = p.of_limit(l.as_ref());
        t.push(Target {
            name: format!("produce 1 KiB, acks=1, none, fsync off, {} partition(s)", p.spec.partitions),
            measured: format!(
                "{:.0} MB/s of values, {:.0} MB/s stored = {} of {:.0} MB/s (its bytes appended bare right after it)",
                p.r.mb_s(),
                p.stored_bps / MB,
                pct(f),
                p.limit_bps(l.as_ref()) / MB
            ),
            goal: ">= 60% of the run's limit".into(),
            met: Some(f >= 0.6),
            margin: format!("{:+.0} points", (f - 0.6) * 100.0),
        });
    }
    for p in b.produce.iter().filter(|p| p.fsync == Fsync::PerBatch) {
        let f = p.of_limit(l.as_ref());
        let off = b
            .produce
            .iter()
            .find(|o| {
                o.fsync == Fsync::Off
                    && o.spec.size == p.spec.size
                    && o.spec.partitions == p.spec.partitions
                    && o.spec.acks == p.spec.acks
                    && o.spec.compression == p.spec.compression
            })
            .map_or(String::new(), |o| format!("; {:.2}x the same run with fsync off", p.r.mb_s() / o.r.mb_s()));
        t.push(Target {
            name: format!("produce {} B, acks=all, fsync per batch, {} partition(s)", p.spec.size, p.spec.partitions),
            measured: format!(
                "{:.0} MB/s stored = {} of {:.0} MB/s (its {:.0} kB batches appended bare right after it, one writer per partition, fdatasync after each){off}",
                p.stored_bps / MB,
                pct(f),
                p.limit_bps(l.as_ref()) / MB,
                p.r.avg_batch_bytes / 1e3
            ),
            goal: "within 2x of the write+fsync limit (>= 50%)".into(),
            met: Some(f >= 0.5),
            margin: format!("{:.2}x of the 0.5 floor", f / 0.5),
        });
    }
    for r in b
        .latency
        .iter()
        .filter(|r| r.fsync == Fsync::Off && r.partitions == 1)
    {
        t.push(Target {
            name: "end-to-end p99, 10k msg/s x 1 KiB, acks=all, fsync off".into(),
            measured: format!("{:.2} ms", r.r.p99_ms),
            goal: "< 10 ms".into(),
            met: Some(r.r.p99_ms < 10.0),
            margin: format!(
                "{:.1} ms {}",
                (10.0 - r.r.p99_ms).abs(),
                if r.r.p99_ms < 10.0 { "under" } else { "over" }
            ),
        });
    }
    for p in b.produce.iter().filter(|p| p.spec.compression == "none") {
        let small = p.consume_small_fetch.iter().map(|c| (format!(", consumer fetch.max.bytes={}", kafka::SMALL_FETCH_MAX_BYTES), c));
        for (setting, (c, _)) in p.consume.iter().map(|c| (String::new(), c)).chain(small) {
            let x = c.mb_s() / p.r.mb_s();
            t.push(Target {
                name: format!(
                    "consume vs produce, {} B x {} partition(s){setting}",
                    p.spec.size, p.spec.partitions
                ),
                measured: format!("{:.0} vs {:.0} MB/s = {:.2}x", c.mb_s(), p.r.mb_s(), x),
                goal: ">= 1.5x".into(),
                met: Some(x >= 1.5),
                margin: format!("{:+.2}x", x - 1.5),
            });
        }
    }
    let rss100 = b
        .produce
        .iter()
        .filter(|p| p.spec.partitions == 100)
        .flat_map(|p| {
            std::iter::once(p.u.broker_peak_rss_mib)
                .chain(p.consume.as_ref().map(|c| c.1.broker_peak_rss_mib))
                .chain(p.consume_small_fetch.as_ref().map(|c| c.1.broker_peak_rss_mib))
        })
        .chain(
            b.latency
                .iter()
                .filter(|r| r.partitions == 100)
                .map(|r| r.u.broker_peak_rss_mib),
        )
        .fold(f64::NAN, f64::max);
    if rss100.is_finite() {
        t.push(Target {
            name: "broker peak RSS, 100 partitions (produce, consume, latency runs)".into(),
            measured: format!("{rss100:.0} MiB"),
            goal: "< 256 MiB".into(),
            met: Some(rss100 < 256.0),
            margin: format!(
                "{:.0} MiB {}",
                (256.0 - rss100).abs(),
                if rss100 < 256.0 { "under" } else { "over" }
            ),
        });
    }
    if let Some(o) = &metrics_overhead {
        t.push(Target {
            name: "metrics on vs off, broker CPU per byte (issue 4)".into(),
            measured: o.measured.clone(),
            goal: "< 3% (the whole 95% interval)".into(),
            met: match o.verdict {
                overhead::Verdict::Met => Some(true),
                overhead::Verdict::Missed => Some(false),
                overhead::Verdict::Inconclusive => None,
            },
            margin: o.margin.clone(),
        });
    }
    let mut tw = String::new();
    let _ = writeln!(
        tw,
        "### Targets (issue 7, and issue 4's metrics overhead)\n"
    );
    let _ = writeln!(
        tw,
        "| target | measured | goal | met | margin |\n|---|---|---|---|---|"
    );
    for x in &t {
        let met = match x.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "inconclusive",
        };
        let _ = writeln!(
            tw,
            "| {} | {} | {} | {} | {} |",
            x.name, x.measured, x.goal, met, x.margin
        );
    }
    let _ = writeln!(tw);
    js.insert(
        "targets",
        json!(t
            .iter()
            .map(|x| json!({"name": x.name, "measured": x.measured, "goal": x.goal, "met": x.met}))
            .collect::<Vec<_>>()),
    );
    if !b.failures.is_empty() {
        let _ = writeln!(tw, "**Runs that failed:**\n");
        for f in &b.failures {
            let _ = writeln!(tw, "- {f}");
        }
        let _ = writeln!(tw);
    }
    js.insert("failures", json!(b.failures));
    js.insert("load", json!(b.load));
    js.insert("waited_s", json!(b.waited_s));
    js.insert("busy_starts", json!(b.busy_starts));
    js.insert("total_s", json!(total_s));
    // Targets first, then the detail.
    (tw + &md, json!(js))
}
