//! What tracing costs the broker (issue 19): pairs of runs with tracing on at 100% sampling
//! (every request a root span, exported over OTLP http/protobuf to [`crate::otlp_sink`]) and
//! off, both with metrics on, measured and estimated exactly as the metrics overhead
//! ([`crate::overhead`]: broker CPU per byte, alternating pairs, a warm-up pair, a 95% t
//! interval, the same stopping rule). There is no goal to judge: the figure is reported.
//! Each run also reports the broker's own span counters, so a run that dropped spans (and
//! so did less work than exporting them all) shows it.

use std::fmt::Write as _;

use serde_json::json;

use crate::overhead::{diffs, pm, t_interval, MetricsRun};

/// The broker's span counters at the end of a run with tracing on (all 0 with it off).
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanCounts {
    pub queued: f64,
    pub exported: f64,
    pub dropped: f64,
    pub sink_requests: u64,
}

/// Writes the runs table and the estimate; `runs[i]` and `spans[i]` are the same run.
pub fn report(runs: &[MetricsRun], spans: &[SpanCounts], spec_label: &str, w: &mut String) -> serde_json::Value {
    let _ = writeln!(
        w,
        "### Tracing on (100% sampled, OTLP http/protobuf to a loopback sink) vs off ({spec_label}; metrics on in both; pairs in alternating order, first pair a warm-up)\n"
    );
    let _ = writeln!(
        w,
        "| run | pair | tracing | MB/s | broker CPU s | CPU s per GB | spans queued | exported | dropped | export requests |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (i, (m, s)) in runs.iter().zip(spans).enumerate() {
        let pair = if m.pair == 0 { "warm-up".to_string() } else { m.pair.to_string() };
        let _ = writeln!(
            w,
            "| {} | {pair} | {} | {:.1} | {:.2} | {:.3} | {:.0} | {:.0} | {:.0} | {} |",
            i + 1,
            if m.metrics { "on" } else { "off" },
            m.r.mb_s(),
            m.u.broker_cpu_s,
            m.u.broker_cpu_s / (m.r.bytes as f64 / 1e9),
            s.queued,
            s.exported,
            s.dropped,
            s.sink_requests
        );
    }
    let (total, _, thr) = diffs(runs);
    let (ci_total, ci_thr) = (t_interval(&total), t_interval(&thr));
    let on: Vec<&SpanCounts> = runs.iter().zip(spans).filter(|(m, _)| m.metrics && m.pair > 0).map(|(_, s)| s).collect();
    let queued: f64 = on.iter().map(|s| s.queued).sum();
    let dropped: f64 = on.iter().map(|s| s.dropped).sum();
    let exported: f64 = on.iter().map(|s| s.exported).sum();
    let drop_share = if queued + dropped > 0.0 { dropped / (queued + dropped) } else { 0.0 };
    let _ = writeln!(
        w,
        "\n{} pairs counted. Broker CPU per byte with tracing on: **{}**; throughput loss {}. \
         The counted runs with tracing on finished {:.0} spans: {:.0} exported, {:.0} dropped at the full queue \
         ({:.1}%; dropped spans cost less than exported ones, so a high share understates the cost of exporting all). \
         Per pair, CPU per byte: {}.\n",
        ci_total.n,
        pm(&ci_total),
        pm(&ci_thr),
        queued + dropped,
        exported,
        dropped,
        drop_share * 100.0,
        total.iter().map(|d| format!("{:+.1}%", d * 100.0)).collect::<Vec<_>>().join(", ")
    );
    let ci_json = |c: &crate::overhead::Interval| json!({"n": c.n, "mean": c.mean, "low": c.low(), "high": c.high()});
    json!({
        "runs": runs.iter().zip(spans).map(|(m, s)| json!({"tracing": m.metrics, "pair": m.pair, "mb_s": m.r.mb_s(),
            "broker_cpu_s": m.u.broker_cpu_s, "spans_queued": s.queued, "spans_exported": s.exported,
            "spans_dropped": s.dropped, "sink_requests": s.sink_requests})).collect::<Vec<_>>(),
        "cpu_per_byte": ci_json(&ci_total), "throughput_loss": ci_json(&ci_thr), "dropped_share": drop_share,
    })
}
