//! Prometheus text exposition (format 0.0.4): the one writer every collector and the
//! pipeline use, so HELP/TYPE lines, label escaping and number formatting are written once.
//!
//! A family is opened with [`MetricWriter::family`] and its samples follow it; the writer
//! keeps a family's samples contiguous because callers write one family at a time.
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Untyped => "untyped",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
        }
    }
}

/// Accumulates exposition text. Cheap to create; collectors get one each so a failing
/// collector's partial output can be dropped without touching the others.
#[derive(Default, Debug)]
pub struct MetricWriter {
    buf: String,
}

impl MetricWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a metric family: writes its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        let _ = writeln!(self.buf, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.buf, "# TYPE {name} {}", kind.as_str());
    }

    /// Writes one sample of the family opened last (or, for histograms and summaries, one of
    /// its `_bucket`/`_sum`/`_count` series: pass the full series name).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.buf.push_str(name);
        if !labels.is_empty() {
            self.buf.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(',');
                }
                self.buf.push_str(k);
                self.buf.push_str("=\"");
                escape_label_value_into(&mut self.buf, v);
                self.buf.push('"');
            }
            self.buf.push('}');
        }
        self.buf.push(' ');
        write_value(&mut self.buf, value);
        self.buf.push('\n');
    }

    /// A family with exactly one unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: MetricType, value: f64) {
        self.family(name, help, kind);
        self.sample(name, &[], value);
    }

    /// Appends everything another writer holds (a collector's output into the scrape).
    pub fn append(&mut self, other: MetricWriter) {
        self.buf.push_str(&other.buf);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.buf
    }

    pub fn into_string(self) -> String {
        self.buf
    }
}

/// Go's strconv 'g'-like formatting as node_exporter prints: integers without a fraction,
/// large and small values in exponent form, and Prometheus' spellings of the specials.
pub fn write_value(buf: &mut String, v: f64) {
    if v.is_nan() {
        buf.push_str("NaN");
    } else if v.is_infinite() {
        buf.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == v.trunc() && v.abs() < 1e15 {
        let _ = write!(buf, "{}", v as i64);
    } else if v != 0.0 && (v.abs() >= 1e21 || v.abs() < 1e-4) {
        let _ = write!(buf, "{v:e}");
    } else {
        let _ = write!(buf, "{v}");
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value_into(buf: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '"' => buf.push_str("\\\""),
            '\n' => buf.push_str("\\n"),
            c => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_samples_are_written_in_text_format() {
        let mut w = MetricWriter::new();
        w.family("node_load1", "1m load average.", MetricType::Gauge);
        w.sample("node_load1", &[], 0.25);
        w.family("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", MetricType::Counter);
        w.sample("node_cpu_seconds_total", &[("cpu", "0"), ("mode", "idle")], 12345.0);
        assert_eq!(
            w.as_str(),
            "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.25\n\
             # HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
             # TYPE node_cpu_seconds_total counter\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12345\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut w = MetricWriter::new();
        w.sample("x", &[("path", "a\"b\\c\nd")], 1.0);
        assert_eq!(w.as_str(), "x{path=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn values_are_formatted_like_prometheus() {
        let f = |v: f64| {
            let mut s = String::new();
            write_value(&mut s, v);
            s
        };
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-3.0), "-3");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(1.8446744073709552e19), "18446744073709552000");
        assert_eq!(f(1e-7), "1e-7");
    }
}
