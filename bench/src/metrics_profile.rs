//! Where the broker's CPU goes at the metrics pairs' load: the share of its samples spent in
//! the metrics path. The on/off pairs ([`crate::overhead`]) compare two whole runs whose CPU
//! per byte varies by about 9% from pair to pair, so their interval stays about as wide as the
//! 3% goal; a profile of one long run counts the metrics code's own samples instead.
//!
//! Method: the broker runs with metrics on, under the same paced load as the pairs, with
//! /metrics scraped every [`SCRAPE_EVERY_S`] seconds as Prometheus would; `perf record -e
//! cpu-clock --call-graph dwarf -p <broker>` samples it. A sample is the metrics path's when any
//! frame of its stack is in [`METRICS_FRAMES`]: the whole `metrics` module (recording, the
//! windowed histograms, the /metrics renderer and the process figures) and the per-topic
//! recording functions of the produce and fetch handlers, all kept out of line
//! (`#[inline(never)]`) so that they have frames. Not attributed: single atomic adds inlined
//! into the request path (the network-busy and handler-time counters) and the clock reads
//! around them, which stay when `metrics.enabled=false`. The share's interval is Wilson's 95%
//! binomial interval over the samples: it states the sampling error, not the method's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;

/// Prometheus's usual scrape interval.
pub const SCRAPE_EVERY_S: f64 = 15.0;
/// The profiled run's length.
pub const PROFILE_SECS: f64 = 60.0;
/// Sampling frequency (Hz).
pub const FREQUENCY: u32 = 499;

/// A frame whose symbol starts with one of these is the metrics path's.
pub const METRICS_FRAMES: &[&str] = &[
    "lantern_broker::metrics::",
    "lantern_broker::api::produce::count_produce_requests",
    "lantern_broker::api::produce::record_append",
    "lantern_broker::api::fetch::record_topic_stats",
    "lantern_broker::rest::observe::",
];

/// Samples counted from `perf script` output.
#[derive(Debug, Default, PartialEq)]
pub struct Attribution {
    pub samples: u64,
    pub metrics: u64,
    /// Samples whose stack had no resolved lantern_broker frame at all (kernel-only stacks,
    /// unwinding that stopped at once): counted in `samples`, shown so a reader can judge.
    pub without_broker_frame: u64,
    /// Metrics samples by the outermost metrics frame (the entry point that was called).
    pub by_entry: BTreeMap<String, u64>,
}

/// The function name of one `perf script` frame line (`\t addr symbol+0xoff (dso)`), without
/// the offset and Rust's hash suffix.
fn frame_symbol(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let (_addr, rest) = rest.split_once(char::is_whitespace)?;
    let sym = match rest.rfind(" (") {
        Some(i) => &rest[..i],
        None => rest,
    };
    let sym = sym.rsplit_once("+0x").map_or(sym, |(s, _)| s);
    let sym = match sym.rfind("::h") {
        Some(i) if sym[i + 3..].len() == 16 && sym[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => &sym[..i],
        _ => sym,
    };
    Some(sym.trim())
}

fn is_metrics(sym: &str) -> bool {
    METRICS_FRAMES.iter().any(|p| sym.starts_with(p) || sym.starts_with(&format!("<{p}")))
}

/// Counts the samples of `perf script` output (a header line per sample, then one line per
/// frame, leaf first; samples separated by blank lines).
pub fn attribute(script: &str) -> Attribution {
    let mut a = Attribution::default();
    let mut frames: Vec<&str> = Vec::new();
    let mut in_sample = false;
    let finish = |frames: &mut Vec<&str>, a: &mut Attribution| {
        a.samples += 1;
        if !frames.iter().any(|f| f.contains("lantern_broker::")) {
            a.without_broker_frame += 1;
        }
        // Leaf first: the last metrics frame is the outermost, the entry point.
        if let Some(entry) = frames.iter().rev().find(|f| is_metrics(f)) {
            a.metrics += 1;
            *a.by_entry.entry(entry.to_string()).or_default() += 1;
        }
        frames.clear();
    };
    for line in script.lines() {
        if line.trim().is_empty() {
            if in_sample {
                finish(&mut frames, &mut a);
                in_sample = false;
            }
        } else if line.starts_with(char::is_whitespace) {
            if let Some(s) = frame_symbol(line) {
                frames.push(s);
            }
        } else {
            if in_sample {
                finish(&mut frames, &mut a);
            }
            in_sample = true;
        }
    }
    if in_sample {
        finish(&mut frames, &mut a);
    }
    a
}

/// Wilson's 95% interval for a share k/n.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.959_964_f64);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (centre - half, centre + half)
}

/// One profiled run.
pub struct Profiled {
    pub load: String,
    pub a: Attribution,
    pub mb_s: f64,
    /// Requests the broker counted during the run (all APIs).
    pub requests: f64,
    pub broker_cpu_s: f64,
}

impl Profiled {
    /// Broker CPU µs per request in the metrics path: its samples' time over the requests.
    fn metrics_us_per_request(&self) -> f64 {
        self.a.metrics as f64 / FREQUENCY as f64 * 1e6 / self.requests.max(1.0)
    }
}

fn verdict(a: &Attribution) -> &'static str {
    let (lo, hi) = wilson(a.metrics, a.samples);
    if a.samples < 1000 {
        "too few samples for a verdict"
    } else if hi < crate::overhead::GOAL {
        "under the 3% goal"
    } else if lo > crate::overhead::GOAL {
        "**over the 3% goal**"
    } else {
        "inconclusive"
    }
}

/// The report section.
pub fn report(runs: &[Profiled], w: &mut String) -> serde_json::Value {
    let _ = writeln!(w, "### The metrics path in a profile of the broker
");
    let _ = writeln!(
        w,
        "{PROFILE_SECS:.0} s per load with metrics on, /metrics scraped every {SCRAPE_EVERY_S:.0} s, \
         `perf record -e cpu-clock -F {FREQUENCY} --call-graph dwarf` on the broker. A sample is the metrics path's when a frame \
         of its stack is one of: {}. Samples without any resolved lantern_broker frame (kernel work such as socket and \
         page-cache copies, and stacks perf could not unwind) stay in the denominator. The interval is Wilson's 95% \
         binomial interval over the samples.\n",
        METRICS_FRAMES.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        w,
        "| load | MB/s | requests | broker CPU s (under perf) | samples | no broker frame | metrics-path samples | of broker CPU (95% interval) | metrics µs per request | verdict |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut js = Vec::new();
    for r in runs {
        let a = &r.a;
        let share = a.metrics as f64 / a.samples.max(1) as f64;
        let (lo, hi) = wilson(a.metrics, a.samples);
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:.0} | {:.2} | {} | {:.1}% | {} | **{:.2}%** ({:.2}% .. {:.2}%) | {:.2} | {} |",
            r.load,
            r.mb_s,
            r.requests,
            r.broker_cpu_s,
            a.samples,
            a.without_broker_frame as f64 * 100.0 / a.samples.max(1) as f64,
            a.metrics,
            share * 100.0,
            lo * 100.0,
            hi * 100.0,
            r.metrics_us_per_request(),
            verdict(a)
        );
        js.push(json!({"load": r.load, "samples": a.samples, "metrics_samples": a.metrics, "share": share, "low": lo, "high": hi,
            "without_broker_frame": a.without_broker_frame, "by_entry": a.by_entry, "verdict": verdict(a),
            "mb_s": r.mb_s, "requests": r.requests, "broker_cpu_s": r.broker_cpu_s, "metrics_us_per_request": r.metrics_us_per_request()}));
    }
    let _ = writeln!(w, "\nWhere the metrics path's samples were, by entry point (its outermost metrics frame):\n");
    let _ = writeln!(w, "| load | entry point | samples | of broker CPU |\n|---|---|---|---|");
    for (i, r) in runs.iter().enumerate() {
        let mut entries: Vec<_> = r.a.by_entry.iter().collect();
        entries.sort_by(|x, y| y.1.cmp(x.1));
        for (name, n) in entries.iter().take(8) {
            let _ = writeln!(w, "| {} | `{name}` | {n} | {:.2}% |", i + 1, **n as f64 * 100.0 / r.a.samples.max(1) as f64);
        }
    }
    let _ = writeln!(w);
    json!(js)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "\
lantern-broker 1234 [000] 1.000: 2002002 cpu-clock:
\t    55d0 lantern_broker::metrics::histogram::Histogram::record_in::h0123456789abcdef+0x20 (/b)
\t    55e0 lantern_broker::metrics::requests::RequestMetrics::record_completed::h0123456789abcdef+0x10 (/b)
\t    55f0 lantern_broker::network::connection::serve_request::{{closure}}::h0123456789abcdef+0x99 (/b)

lantern-broker 1234 [001] 1.002: 2002002 cpu-clock:
\t    1000 __memmove_avx_unaligned_erms+0x1 (/usr/lib/libc.so.6)
\t    2000 lantern_broker::log::segment::Segment::append::h0123456789abcdef+0x5 (/b)

lantern-broker 1234 [001] 1.004: 2002002 cpu-clock:
\t ffffffff81000000 copy_user_enhanced_fast_string+0x1 ([kernel.kallsyms])

tokio-rt 1234 [000] 1.006: 2002002 cpu-clock:
\t    3000 __vdso_clock_gettime+0x1 ([vdso])
\t    3001 <lantern_broker::metrics::windowed::Meter as core::fmt::Debug>::fmt::h0123456789abcdef+0x1 (/b)
\t    3002 lantern_broker::api::produce::record_append::h0123456789abcdef+0x1 (/b)
\t    3003 lantern_broker::api::produce::handle::{{closure}}::h0123456789abcdef+0x1 (/b)
";

    #[test]
    fn a_sample_is_the_metrics_paths_when_any_frame_is() {
        let a = attribute(SCRIPT);
        assert_eq!(a.samples, 4);
        assert_eq!(a.metrics, 2);
        assert_eq!(a.without_broker_frame, 1);
        assert_eq!(a.by_entry.get("lantern_broker::metrics::requests::RequestMetrics::record_completed"), Some(&1));
        assert_eq!(a.by_entry.get("lantern_broker::api::produce::record_append"), Some(&1));
    }

    #[test]
    fn frame_symbols_lose_offset_hash_and_dso() {
        assert_eq!(frame_symbol("\t 55d0 a::b::c::h0123456789abcdef+0x20 (/b)"), Some("a::b::c"));
        assert_eq!(frame_symbol("\t 55d0 [unknown] (/b)"), Some("[unknown]"));
        assert_eq!(frame_symbol("\t 55d0 a::h12+0x2 (/b)"), Some("a::h12"));
    }

    #[test]
    fn wilson_matches_a_known_value() {
        // 10 of 100: 5.52% .. 17.44% (Wilson, z = 1.96).
        let (lo, hi) = wilson(10, 100);
        assert!((lo - 0.0552).abs() < 0.0005 && (hi - 0.1744).abs() < 0.0005, "{lo} {hi}");
    }
}
