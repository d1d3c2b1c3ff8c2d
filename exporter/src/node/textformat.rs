//! A parser for the Prometheus text exposition format (0.0.4), for the textfile collector:
//! `# HELP`/`# TYPE` lines and samples, grouped into families the way Go's `expfmt.TextParser`
//! groups them (a histogram's `_bucket`/`_sum`/`_count` and a summary's `_sum`/`_count` belong
//! to the family named by their `# TYPE`). Anything it cannot parse is an error for the whole
//! file, as in node_exporter.
use crate::exposition::MetricType;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series name as written (`x_bucket` for a histogram `x`).
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub samples: Vec<Sample>,
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("text format parsing error in line {line}: {detail}")]
pub struct ParseError {
    pub line: usize,
    pub detail: String,
}

/// The families of one text, in order of first appearance.
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    let mut families: Vec<Family> = Vec::new();
    let mut typed: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |detail: String| ParseError { line: i + 1, detail };
        let line = raw.trim_start_matches([' ', '\t']);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start_matches([' ', '\t']).splitn(2, [' ', '\t']);
            let keyword = words.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // any other comment
            }
            let rest = words.next().unwrap_or("").trim_start_matches([' ', '\t']);
            let (name, arg) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            if !valid_metric_name(name) {
                return Err(err(format!("invalid metric name in {keyword} line: {name:?}")));
            }
            let idx = family_index(&mut families, name);
            let f = &mut families[idx];
            if keyword == "HELP" {
                if f.help.is_some() {
                    return Err(err(format!("second HELP line for metric name {name:?}")));
                }
                f.help = Some(unescape(arg.trim_start_matches([' ', '\t']), false).map_err(err)?);
            } else {
                if !f.samples.is_empty() {
                    return Err(err(format!("TYPE line for {name:?} after its samples")));
                }
                if typed.iter().any(|t| t == name) {
                    return Err(err(format!("second TYPE line for metric name {name:?}")));
                }
                typed.push(name.to_string());
                f.kind = match arg.trim() {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "untyped" => MetricType::Untyped,
                    "histogram" => MetricType::Histogram,
                    "summary" => MetricType::Summary,
                    t => return Err(err(format!("unknown metric type {t:?}"))),
                };
            }
            continue;
        }
        let sample = parse_sample(line).map_err(err)?;
        let family = family_of(&families, &sample.name);
        let idx = family_index(&mut families, &family);
        let f = &mut families[idx];
        match f.kind {
            MetricType::Histogram if sample.name.ends_with("_bucket") && !sample.labels.iter().any(|(k, _)| k == "le") => {
                return Err(err(format!("{} has no le label", sample.name)))
            }
            MetricType::Summary if sample.name == f.name && !sample.labels.iter().any(|(k, _)| k == "quantile") => {
                return Err(err(format!("{} has no quantile label", sample.name)))
            }
            _ => {}
        }
        f.samples.push(sample);
    }
    Ok(families)
}

/// The family a series belongs to: itself, or for `x_sum`/`x_count`/`x_bucket` the
/// summary or histogram `x` if one was declared.
fn family_of(families: &[Family], series: &str) -> String {
    for suffix in ["_sum", "_count", "_bucket"] {
        if let Some(base) = series.strip_suffix(suffix) {
            let declared = families.iter().find(|f| f.name == base).map(|f| f.kind);
            match declared {
                Some(MetricType::Histogram) => return base.to_string(),
                Some(MetricType::Summary) if suffix != "_bucket" => return base.to_string(),
                _ => {}
            }
        }
    }
    series.to_string()
}

fn family_index(families: &mut Vec<Family>, name: &str) -> usize {
    if let Some(i) = families.iter().position(|f| f.name == name) {
        return i;
    }
    families.push(Family { name: name.to_string(), help: None, kind: MetricType::Untyped, samples: Vec::new() });
    families.len() - 1
}

/// `name{label="value",...} value [timestamp]`
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(|c: char| c == '{' || c == ' ' || c == '\t').unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("label without a value")?;
            let key = rest[..eq].trim_end_matches([' ', '\t']);
            if !valid_label_name(key) {
                return Err(format!("invalid label name {key:?}"));
            }
            rest = rest[eq + 1..].trim_start_matches([' ', '\t']);
            rest = rest.strip_prefix('"').ok_or("label value not quoted")?;
            let (value, after) = take_quoted(rest)?;
            if labels.iter().any(|(k, _)| k == key) {
                return Err(format!("duplicate label name {key:?}"));
            }
            labels.push((key.to_string(), value));
            rest = after.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("expected , or } after a label".into());
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("sample without a value")?;
    let value = parse_float(value).ok_or_else(|| format!("invalid value {value:?}"))?;
    let timestamp_ms = match fields.next() {
        Some(t) => Some(t.parse::<i64>().map_err(|_| format!("invalid timestamp {t:?}"))?),
        None => None,
    };
    if fields.next().is_some() {
        return Err("unexpected text after the timestamp".into());
    }
    Ok(Sample { name: name.to_string(), labels, value, timestamp_ms })
}

/// Go's `strconv.ParseFloat` as expfmt uses it: numbers, `NaN`, `[+-]Inf`.
fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        l if l.contains("inf") || l.contains("nan") => None,
        _ => s.parse().ok(),
    }
}

/// A label value up to its closing quote: (unescaped value, the text after the quote).
fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, '"') => return Ok((unescape(&s[..i], true)?, &s[i + 1..])),
            _ => escaped = false,
        }
    }
    Err("unterminated label value".into())
}

/// `\\` and `\n` (and `\"` in label values).
fn unescape(s: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(o) => return Err(format!("invalid escape sequence \\{o}")),
            None => return Err("escape at the end".into()),
        }
    }
    Ok(out)
}

pub fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':') && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_with_help_type_and_labels() {
        let text = "# HELP backup_last_success_seconds Last good backup.\n# TYPE backup_last_success_seconds gauge\n\
                    backup_last_success_seconds{job=\"db\",path=\"a\\\"b\\\\c\"} 1.7e9\n\
                    # a comment\n\nraid_ok 1\n";
        let f = parse(text).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].help.as_deref(), Some("Last good backup."));
        assert_eq!(f[0].kind, MetricType::Gauge);
        assert_eq!(f[0].samples[0].labels, vec![("job".into(), "db".into()), ("path".into(), "a\"b\\c".into())]);
        assert_eq!(f[0].samples[0].value, 1.7e9);
        assert_eq!((f[1].name.as_str(), f[1].kind, f[1].help.clone()), ("raid_ok", MetricType::Untyped, None));
    }

    #[test]
    fn histogram_and_summary_series_join_their_family() {
        let text = "# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 3\nlat_sum 0.7\nlat_count 3\n\
                    # TYPE rpc summary\nrpc{quantile=\"0.5\"} 2\nrpc_sum 9\nrpc_count 4\nother_count 1\n";
        let f = parse(text).unwrap();
        let names: Vec<(&str, usize)> = f.iter().map(|f| (f.name.as_str(), f.samples.len())).collect();
        assert_eq!(names, vec![("lat", 4), ("rpc", 3), ("other_count", 1)]);
        assert!(parse("# TYPE lat histogram\nlat_bucket 1\n").is_err());
    }

    #[test]
    fn timestamps_specials_and_errors() {
        let f = parse("x 1 1700000000000\ny NaN\nz -Inf\n").unwrap();
        assert_eq!(f[0].samples[0].timestamp_ms, Some(1_700_000_000_000));
        assert!(f[1].samples[0].value.is_nan());
        assert_eq!(f[2].samples[0].value, f64::NEG_INFINITY);
        for bad in [
            "x{a=\"1\" 1\n",
            "x{a=1} 1\n",
            "0x 1\n",
            "x one\n",
            "x 1 2 3\n",
            "# TYPE x foo\n",
            "# HELP x a\n# HELP x b\n",
            "x 1\n# TYPE x gauge\n",
            "x{a=\"1\",a=\"2\"} 1\n",
            "x{a=\"\\q\"} 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(parse("x{a=\"1\" 1\n").unwrap_err().line, 1);
    }
}
