//! The metrics-overhead estimate (issue 4's "metrics cost under 3%"), with its method fixed
//! before any measurement, so that the verdict cannot be chosen after seeing the numbers:
//!
//! - Runs come in pairs, one broker with metrics and one with `--metrics.enabled=false`, the
//!   order alternating from pair to pair (on/off, off/on, ...), each run the same produce
//!   config for the same time, at the same paced load ([`PACED_BYTES_PER_S`]). (Until
//!   2026-12-07 the producer ran flat out. Broker and client then split 2 cores differently
//!   in every run, the broker's CPU seconds stayed about the same while throughput moved, and
//!   CPU per byte varied by 8-9% from pair to pair: 20 pairs gave +5.4% +-6 points
//!   (inconclusive), 40 pairs -0.4% +-3 points (met by the rule, but three times wider than
//!   aimed for). The pacing, chosen after those two runs to cut that variance, and 6 s runs
//!   (about 1.3 broker CPU s each, so /proc's 10 ms ticks stay within 2% a run) are the only
//!   changes; the estimator, the stopping rule and the verdict rule did not change.) One warm-up pair first is not counted (the first runs after a
//!   build pay for cold files and page cache).
//! - Estimator: the broker's CPU seconds (user + system) per byte acknowledged; per pair
//!   d = on / off - 1. The kernel keeps a process's total CPU time exact (cputime_adjust
//!   scales the tick-sampled user/system split to the measured runtime); /proc shows each
//!   part in 10 ms units, so a run's reading is within +-20 ms (about +-1% of a 3 s run's
//!   ~2 CPU s: noise, not bias). The user share alone is tick-sampled (+-20% on a ~0.3 s
//!   share), so it is reported but not judged. Throughput is not judged either: on
//!   2 shared cores it mostly measures the client and the page cache.
//! - The estimate is the mean of d over the pairs, with a two-sided 95% Student-t interval
//!   (approximately 95%: stopping when the sample happens to vary little costs a point or two
//!   of coverage, 93-95% in a simulation of this rule).
//! - How many pairs: at least [`MIN_PAIRS`], then more until the interval's half-width is at
//!   most [`TARGET_HALF_WIDTH`] at an even count (so that both orders weigh the same and a
//!   linear drift cancels), or `--pairs` (the maximum) is reached. The stopping rule looks
//!   only at the width, never at where the interval lies.
//! - Verdict against the 3% goal: **met** if the whole interval is under 3%, **missed** if it
//!   is wholly above, **inconclusive** otherwise.

use std::fmt::Write as _;

use serde_json::json;

use crate::kafka::ProduceResult;
use crate::sys::Usage;

/// The goal: metrics cost less than this fraction.
pub const GOAL: f64 = 0.03;
/// The load of every run: value bytes per second offered by a paced producer, well under
/// what one producer reaches on this machine (about 800 MB/s at 1 KiB x 8 partitions), so
/// that neither the broker nor the client runs out of CPU and the broker's CPU per byte
/// measures its work rather than how the two shared the cores in that run.
pub const PACED_BYTES_PER_S: f64 = 300e6;
/// Pairs are added until the 95% half-width is at most this...
pub const TARGET_HALF_WIDTH: f64 = 0.01;
/// ...after at least this many.
pub const MIN_PAIRS: usize = 10;

pub struct MetricsRun {
    pub metrics: bool,
    /// Which pair the run belongs to; pair 0 is the warm-up.
    pub pair: usize,
    pub r: ProduceResult,
    pub u: Usage,
}

impl MetricsRun {
    fn user_cpu_per_gb(&self) -> f64 {
        self.u.broker_user_cpu_s / (self.r.bytes as f64 / 1e9)
    }
    fn cpu_per_gb(&self) -> f64 {
        self.u.broker_cpu_s / (self.r.bytes as f64 / 1e9)
    }
}

/// Mean and 95% half-width of a sample (Student t, n - 1 degrees of freedom).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub n: usize,
    pub mean: f64,
    pub half_width: f64,
}

impl Interval {
    pub fn low(&self) -> f64 {
        self.mean - self.half_width
    }
    pub fn high(&self) -> f64 {
        self.mean + self.half_width
    }
}

/// The 0.975 quantile of Student's t (for a two-sided 95% interval) with `df` degrees of freedom (exact table to
/// 30, then the Cornish-Fisher expansion, within 0.001 of the exact value from 31 on).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        _ => {
            let z = 1.959_964_f64;
            let n = df as f64;
            z + (z.powi(3) + z) / (4.0 * n) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

pub fn t_interval(xs: &[f64]) -> Interval {
    let n = xs.len();
    if n == 0 {
        return Interval { n, mean: f64::NAN, half_width: f64::NAN };
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Interval { n, mean, half_width: f64::INFINITY };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Interval { n, mean, half_width: t975(n - 1) * (var / n as f64).sqrt() }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    Inconclusive,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The pre-registered rule: the whole 95% interval on one side of the goal, or no verdict.
pub fn verdict(ci: &Interval, goal: f64) -> Verdict {
    if !ci.half_width.is_finite() {
        Verdict::Inconclusive
    } else if ci.high() < goal {
        Verdict::Met
    } else if ci.low() > goal {
        Verdict::Missed
    } else {
        Verdict::Inconclusive
    }
}

/// The counted pairs (warm-up left out; a pair with a failed run too), as (on, off).
fn pairs(runs: &[MetricsRun]) -> Vec<(&MetricsRun, &MetricsRun)> {
    let last = runs.iter().map(|r| r.pair).max().unwrap_or(0);
    (1..=last)
        .filter_map(|p| {
            let on = runs.iter().find(|r| r.pair == p && r.metrics)?;
            let off = runs.iter().find(|r| r.pair == p && !r.metrics)?;
            Some((on, off))
        })
        .collect()
}

/// Relative differences per pair: (total CPU per byte, user CPU per byte, throughput loss).
pub fn diffs(runs: &[MetricsRun]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let ps = pairs(runs);
    let total = ps.iter().map(|(on, off)| on.cpu_per_gb() / off.cpu_per_gb() - 1.0).collect();
    let user = ps.iter().map(|(on, off)| on.user_cpu_per_gb() / off.user_cpu_per_gb() - 1.0).collect();
    let thr = ps.iter().map(|(on, off)| 1.0 - on.r.mb_s() / off.r.mb_s()).collect();
    (total, user, thr)
}

/// Whether the runs so far are enough (the stopping rule of the module doc).
pub fn enough_pairs(runs: &[MetricsRun], max_pairs: usize) -> bool {
    let (total, _, _) = diffs(runs);
    let counted = total.len();
    counted >= max_pairs
        || (counted >= MIN_PAIRS && counted % 2 == 0 && t_interval(&total).half_width <= TARGET_HALF_WIDTH)
}

pub fn pm(ci: &Interval) -> String {
    format!("{:+.1}% (95% CI {:+.1}% .. {:+.1}%)", ci.mean * 100.0, ci.low() * 100.0, ci.high() * 100.0)
}

pub struct Summary {
    pub measured: String,
    pub verdict: Verdict,
    pub margin: String,
    pub json: serde_json::Value,
}

/// Writes the runs table and the estimate; returns the target's figures.
pub fn report(runs: &[MetricsRun], spec_label: &str, w: &mut String) -> Summary {
    let _ = writeln!(w, "### Metrics on vs off ({spec_label}; pairs in alternating order, first pair a warm-up)\n");
    let _ = writeln!(w, "| run | pair | metrics | MB/s | broker CPU s | broker user CPU s | CPU s per GB | other CPU s |\n|---|---|---|---|---|---|---|---|");
    for (i, m) in runs.iter().enumerate() {
        let pair = if m.pair == 0 { "warm-up".to_string() } else { m.pair.to_string() };
        let _ = writeln!(
            w,
            "| {} | {pair} | {} | {:.1} | {:.2} | {:.2} | {:.3} | {:.2} |",
            i + 1,
            if m.metrics { "on" } else { "off" },
            m.r.mb_s(),
            m.u.broker_cpu_s,
            m.u.broker_user_cpu_s,
            m.cpu_per_gb(),
            m.u.other_cpu_s
        );
    }
    let (total, user, thr) = diffs(runs);
    let (ci_total, ci_user, ci_thr) = (t_interval(&total), t_interval(&user), t_interval(&thr));
    let v = verdict(&ci_total, GOAL);
    let wide = if ci_total.half_width > TARGET_HALF_WIDTH {
        format!(" The interval is wider than the +-{:.1} points aimed for: the pair limit (or failed runs) came first.", TARGET_HALF_WIDTH * 100.0)
    } else {
        String::new()
    };
    let _ = writeln!(
        w,
        "\n{} pairs counted. Broker CPU per byte with metrics: **{}** (the estimator fixed before measuring; \
         verdict against the 3% goal: **{}**: met only if the whole interval is under 3%).{wide} Not judged: user CPU per byte {} \
         (tick-sampled); throughput loss {}. Per pair, CPU per byte: {}.\n",
        ci_total.n,
        pm(&ci_total),
        v.word().trim_matches('*'),
        pm(&ci_user),
        pm(&ci_thr),
        total.iter().map(|d| format!("{:+.1}%", d * 100.0)).collect::<Vec<_>>().join(", ")
    );
    let margin = match v {
        Verdict::Met => format!("interval top {:.1} points under", (GOAL - ci_total.high()) * 100.0),
        Verdict::Missed => format!("interval bottom {:.1} points over", (ci_total.low() - GOAL) * 100.0),
        Verdict::Inconclusive => format!("interval spans {:.1}% .. {:.1}%", ci_total.low() * 100.0, ci_total.high() * 100.0),
    };
    let ci_json = |c: &Interval| json!({"n": c.n, "mean": c.mean, "low": c.low(), "high": c.high()});
    Summary {
        measured: format!("broker CPU per byte {} over {} pairs", pm(&ci_total), ci_total.n),
        verdict: v,
        margin,
        json: json!({
            "runs": runs.iter().map(|m| json!({"metrics": m.metrics, "pair": m.pair, "mb_s": m.r.mb_s(),
                "broker_user_cpu_s": m.u.broker_user_cpu_s, "broker_cpu_s": m.u.broker_cpu_s, "other_cpu_s": m.u.other_cpu_s})).collect::<Vec<_>>(),
            "user_cpu_per_byte": ci_json(&ci_user), "cpu_per_byte": ci_json(&ci_total), "throughput_loss": ci_json(&ci_thr),
            "per_pair_cpu_per_byte": total, "verdict": format!("{v:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_table_and_the_normal_limit() {
        assert_eq!(t975(1), 12.706);
        assert_eq!(t975(19), 2.093);
        assert!((t975(40) - 2.021).abs() < 0.001, "{}", t975(40));
        assert!((t975(60) - 2.000).abs() < 0.001, "{}", t975(60));
        assert!((t975(100_000) - 1.960).abs() < 0.001);
    }

    #[test]
    fn interval_of_a_known_sample() {
        // mean 0.02, sample sd 0.01, n = 4: half-width 3.182 * 0.01 / 2
        let xs = [0.01, 0.02, 0.03, 0.02 + 0.0];
        let sd = ((0.0001 + 0.0 + 0.0001 + 0.0) / 3.0f64).sqrt();
        let ci = t_interval(&xs);
        assert!((ci.mean - 0.02).abs() < 1e-12);
        assert!((ci.half_width - 3.182 * sd / 2.0).abs() < 1e-12);
    }

    #[test]
    fn the_verdict_needs_the_whole_interval_on_one_side() {
        let ci = |mean, half_width| Interval { n: 20, mean, half_width };
        assert_eq!(verdict(&ci(0.01, 0.015), GOAL), Verdict::Met);
        assert_eq!(verdict(&ci(0.01, 0.025), GOAL), Verdict::Inconclusive);
        assert_eq!(verdict(&ci(0.05, 0.01), GOAL), Verdict::Missed);
        assert_eq!(verdict(&ci(0.029, 0.0), GOAL), Verdict::Met);
        assert_eq!(verdict(&ci(0.01, f64::INFINITY), GOAL), Verdict::Inconclusive);
        // The earlier report's per-pair throughput figures (-11%..+6%): no verdict.
        let old = t_interval(&[0.047, -0.112, 0.062, -0.025, 0.024]);
        assert_eq!(verdict(&old, GOAL), Verdict::Inconclusive, "{old:?}");
    }
}
