//! Tracing configuration from the standard OpenTelemetry environment variables.
//!
//! Tracing is off unless asked for: `OTEL_TRACES_EXPORTER=otlp`, or an OTLP endpoint
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`) with
//! `OTEL_TRACES_EXPORTER` unset. `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true`
//! turn it off whatever else is set. Values the broker cannot honour (another exporter or
//! protocol, an https endpoint, a malformed number) stop start-up with a message naming the
//! variable, rather than silently tracing differently from what was asked.
use std::collections::HashMap;
use std::time::Duration;

use thiserror::Error;

/// The spec's default OTLP/HTTP endpoint, used with `OTEL_TRACES_EXPORTER=otlp` alone.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
pub const DEFAULT_SERVICE_NAME: &str = "lantern-broker";

#[derive(Debug, Error, PartialEq)]
pub enum TraceConfigError {
    #[error("OTEL_TRACES_EXPORTER={0:?} is not supported: set it to otlp (OTLP over HTTP with JSON bodies) or none")]
    Exporter(String),
    #[error("{var}={value:?} is not supported: Lantern exports OTLP/HTTP with JSON bodies only; set {var}=http/json (an OpenTelemetry Collector accepts it on port 4318)")]
    Protocol { var: &'static str, value: String },
    #[error("{var}={value:?}: {reason}")]
    Endpoint { var: &'static str, value: String, reason: String },
    #[error("{var}={value:?}: {expected}")]
    Invalid { var: &'static str, value: String, expected: &'static str },
}

/// Which root spans are recorded. The broker's request spans are always roots (producer
/// contexts are links, not parents), so the `parentbased_*` samplers act as their root sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    /// Keeps a trace when the low 8 bytes of its id, as a number, fall below ratio * 2^64.
    TraceIdRatio(f64),
}

impl Sampler {
    pub fn samples(&self, trace_id: &[u8; 16]) -> bool {
        match *self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) if ratio >= 1.0 => true,
            Sampler::TraceIdRatio(ratio) => {
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id[8..]);
                (u64::from_be_bytes(low) as f64) < ratio * (u64::MAX as f64)
            }
        }
    }
}

/// Where spans are posted: a plain-HTTP URL split into what a request line needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// host:port to connect to (IPv6 literals in brackets).
    pub authority: String,
    /// Path (and query) of the POST, starting with '/'.
    pub path: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    pub endpoint: Endpoint,
    /// Extra request headers (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS), e.g. authorization.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub service_name: String,
    /// OTEL_RESOURCE_ATTRIBUTES, without service.name (that is `service_name`).
    pub resource: Vec<(String, String)>,
    pub sampler: Sampler,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub schedule_delay: Duration,
}

impl TraceConfig {
    /// Reads the OTEL_* variables from `vars`. `Ok(None)`: tracing is off.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Option<TraceConfig>, TraceConfigError> {
        // The spec treats an empty value as unset.
        let env: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, v)| k.starts_with("OTEL_") && !v.trim().is_empty())
            .map(|(k, v)| (k, v.trim().to_string()))
            .collect();
        let get = |k: &str| env.get(k).map(String::as_str);
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let traces_endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let base_endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT");
        match get("OTEL_TRACES_EXPORTER").map(str::to_ascii_lowercase).as_deref() {
            Some("none") => return Ok(None),
            Some("otlp") => {}
            None if traces_endpoint.is_some() || base_endpoint.is_some() => {}
            None => return Ok(None),
            Some(other) => return Err(TraceConfigError::Exporter(other.to_string())),
        }
        for var in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(value) = get(var) {
                if value != "http/json" {
                    return Err(TraceConfigError::Protocol { var, value: value.to_string() });
                }
                break;
            }
        }
        let endpoint = match (traces_endpoint, base_endpoint) {
            (Some(url), _) => parse_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, false)?,
            (None, Some(url)) => parse_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", url, true)?,
            (None, None) => parse_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT, true)?,
        };
        let headers = match ["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"].into_iter().find_map(|v| get(v).map(|s| (v, s))) {
            Some((var, value)) => parse_headers(var, value)?,
            None => Vec::new(),
        };
        let timeout = match ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"].into_iter().find_map(|v| get(v).map(|s| (v, s))) {
            Some((var, value)) => Duration::from_millis(number(var, value, 1, 600_000)?),
            None => Duration::from_secs(10),
        };
        let mut resource = match get("OTEL_RESOURCE_ATTRIBUTES") {
            Some(value) => parse_pairs("OTEL_RESOURCE_ATTRIBUTES", value)?,
            None => Vec::new(),
        };
        let resource_name = resource.iter().position(|(k, _)| k == "service.name").map(|i| resource.remove(i).1);
        let service_name = get("OTEL_SERVICE_NAME").map(str::to_string).or(resource_name).unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        let max_queue_size = match get("OTEL_BSP_MAX_QUEUE_SIZE") {
            Some(v) => number("OTEL_BSP_MAX_QUEUE_SIZE", v, 1, 1 << 20)? as usize,
            None => 2048,
        };
        let max_export_batch_size = match get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            Some(v) => number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", v, 1, 1 << 20)? as usize,
            None => 512,
        }
        .min(max_queue_size);
        let schedule_delay = match get("OTEL_BSP_SCHEDULE_DELAY") {
            Some(v) => Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", v, 1, 3_600_000)?),
            None => Duration::from_secs(5),
        };
        Ok(Some(TraceConfig {
            endpoint,
            headers,
            timeout,
            service_name,
            resource,
            sampler: parse_sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?,
            max_queue_size,
            max_export_batch_size,
            schedule_delay,
        }))
    }
}

fn number(var: &'static str, value: &str, min: u64, max: u64) -> Result<u64, TraceConfigError> {
    value.parse::<u64>().ok().filter(|n| (min..=max).contains(n)).ok_or(TraceConfigError::Invalid {
        var,
        value: value.to_string(),
        expected: "expected a whole number in range (milliseconds for delays and timeouts)",
    })
}

fn parse_sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, TraceConfigError> {
    let ratio = || match arg {
        None => Ok(1.0),
        Some(a) => a.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or(TraceConfigError::Invalid {
            var: "OTEL_TRACES_SAMPLER_ARG",
            value: a.to_string(),
            expected: "expected a sampling probability between 0 and 1",
        }),
    };
    match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("always_on") | Some("parentbased_always_on") => Ok(Sampler::AlwaysOn),
        Some("always_off") | Some("parentbased_always_off") => Ok(Sampler::AlwaysOff),
        Some("traceidratio") | Some("parentbased_traceidratio") => Ok(Sampler::TraceIdRatio(ratio()?)),
        Some(other) => Err(TraceConfigError::Invalid {
            var: "OTEL_TRACES_SAMPLER",
            value: other.to_string(),
            expected: "expected always_on, always_off, traceidratio or their parentbased_ forms",
        }),
    }
}

/// Parses an http:// URL. With `append_signal_path` (the base endpoint variable) the spec's
/// `v1/traces` is appended to its path; the per-signal variable is used as given.
pub fn parse_endpoint(var: &'static str, url: &str, append_signal_path: bool) -> Result<Endpoint, TraceConfigError> {
    let fail = |reason: &str| TraceConfigError::Endpoint { var, value: url.to_string(), reason: reason.to_string() };
    if url.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(fail("the URL contains spaces or control characters"));
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(fail("https is not supported (the broker has no TLS client); send to an OpenTelemetry Collector over http:// on the same host or network"))
        }
        _ => return Err(fail("expected a URL of the form http://host:port[/path]")),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if path.contains('#') {
        return Err(fail("a URL fragment ('#') has no meaning here"));
    }
    if authority.contains('@') {
        return Err(fail("credentials in the URL are not supported; use OTEL_EXPORTER_OTLP_HEADERS"));
    }
    let port_of = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| fail("the port must be a number from 1 to 65535"));
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, tail) = bracketed.split_once(']').ok_or_else(|| fail("an IPv6 address is missing its closing ']'"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(fail("the host is not a valid IPv6 address"));
        }
        let port = match tail {
            "" => 80,
            t => port_of(t.strip_prefix(':').ok_or_else(|| fail("expected ':port' after the IPv6 address"))?)?,
        };
        (format!("[{v6}]"), port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err(fail("put an IPv6 address in brackets, e.g. http://[::1]:4318"));
        }
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, port_of(p)?),
            None => (authority, 80),
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_') {
            return Err(fail("the host is empty or not a valid host name or IP address"));
        }
        (host.to_string(), port)
    };
    let mut path = if path.is_empty() { "/".to_string() } else { path.to_string() };
    if !path.starts_with('/') {
        path.insert(0, '/'); // "http://h:1?x" -> "/?x"
    }
    if append_signal_path {
        if path.contains('?') {
            return Err(fail("a query string cannot be combined with the appended v1/traces path; use OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str("v1/traces");
    }
    Ok(Endpoint { authority: format!("{host}:{port}"), path })
}

/// `key=value,key2=value2` with percent-encoded values (W3C Baggage style, as the spec says).
fn parse_pairs(var: &'static str, value: &str) -> Result<Vec<(String, String)>, TraceConfigError> {
    let bad = |expected| TraceConfigError::Invalid { var, value: value.to_string(), expected };
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or(bad("expected comma-separated key=value pairs"))?;
        let k = k.trim();
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic() && !b"\",;\\".contains(&b)) {
            return Err(bad("a key is empty or contains spaces, quotes, ';' or '\\'"));
        }
        let v = percent_decode(v.trim()).ok_or(bad("a value has a malformed %-escape or is not UTF-8"))?;
        if v.chars().any(char::is_control) {
            return Err(bad("a value contains control characters"));
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn parse_headers(var: &'static str, value: &str) -> Result<Vec<(String, String)>, TraceConfigError> {
    let pairs = parse_pairs(var, value)?;
    const RESERVED: [&str; 5] = ["host", "content-length", "content-type", "connection", "transfer-encoding"];
    let token = |k: &str| k.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !token(k)) {
        return Err(TraceConfigError::Invalid { var, value: k.clone(), expected: "a header name may only contain letters, digits and !#$%&'*+-.^_`|~" });
    }
    if let Some((k, _)) = pairs.iter().find(|(k, _)| RESERVED.contains(&k.to_ascii_lowercase().as_str())) {
        return Err(TraceConfigError::Invalid {
            var,
            value: k.clone(),
            expected: "this header is set by the exporter itself and cannot be overridden",
        });
    }
    Ok(pairs)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<Option<TraceConfig>, TraceConfigError> {
        TraceConfig::from_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn off_unless_asked_for() {
        assert_eq!(cfg(&[]), Ok(None));
        assert_eq!(cfg(&[("OTEL_SERVICE_NAME", "x"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), Ok(None));
        assert_eq!(cfg(&[("OTEL_TRACES_EXPORTER", "none"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]), Ok(None));
        assert_eq!(cfg(&[("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "otlp")]), Ok(None));
        assert_eq!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]), Ok(None));
    }

    #[test]
    fn an_endpoint_or_otlp_turns_it_on_with_spec_defaults() {
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]).unwrap().unwrap();
        assert_eq!(c.endpoint.to_string(), "http://collector:4318/v1/traces");
        assert_eq!((c.service_name.as_str(), c.sampler), ("lantern-broker", Sampler::AlwaysOn));
        assert_eq!((c.max_queue_size, c.max_export_batch_size), (2048, 512));
        assert_eq!((c.schedule_delay, c.timeout), (Duration::from_secs(5), Duration::from_secs(10)));
        let c = cfg(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap().unwrap();
        assert_eq!(c.endpoint.to_string(), "http://localhost:4318/v1/traces");
    }

    #[test]
    fn the_traces_endpoint_is_used_as_given_and_wins() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1/base/"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://[::1]:4318/custom/path?x=1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, Endpoint { authority: "[::1]:4318".into(), path: "/custom/path?x=1".into() });
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1/base")]).unwrap().unwrap();
        assert_eq!(c.endpoint.path, "/base/v1/traces");
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a")]).unwrap().unwrap();
        assert_eq!(c.endpoint, Endpoint { authority: "a:80".into(), path: "/v1/traces".into() });
    }

    #[test]
    fn unsupported_choices_are_refused_with_the_variable_named() {
        let e = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/protobuf\" is not supported"), "{e}");
        assert!(e.to_string().contains("http/json"));
        // The per-signal protocol wins over the general one.
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).is_ok());
        assert!(matches!(cfg(&[("OTEL_TRACES_EXPORTER", "jaeger")]), Err(TraceConfigError::Exporter(_))));
        let e = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://a:4318")]).unwrap_err();
        assert!(e.to_string().contains("https is not supported"), "{e}");
        for bad in ["a:4318", "http://", "http://a:0", "http://a:99999", "http://u:p@a:1", "http://a b:1", "http://a:1/x\r\nHost: evil", "http://::1:4318", "http://[zz]:1", "http://a:1/#f"] {
            assert!(matches!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", bad)]), Err(TraceConfigError::Endpoint { .. })), "{bad:?} accepted");
        }
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_BSP_SCHEDULE_DELAY", "soon")]).is_err());
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]).is_err());
    }

    #[test]
    fn samplers() {
        let s = |name: &str, arg: Option<&str>| {
            let mut v = vec![("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_TRACES_SAMPLER", name)];
            v.extend(arg.map(|a| ("OTEL_TRACES_SAMPLER_ARG", a)));
            cfg(&v).map(|c| c.map(|c| c.sampler))
        };
        assert_eq!(s("always_off", None), Ok(Some(Sampler::AlwaysOff)));
        assert_eq!(s("parentbased_always_on", None), Ok(Some(Sampler::AlwaysOn)));
        assert_eq!(s("traceidratio", Some("0.25")), Ok(Some(Sampler::TraceIdRatio(0.25))));
        assert!(s("traceidratio", Some("1.5")).is_err());
        assert!(s("traceidratio", Some("NaN")).is_err());
        assert!(s("sometimes", None).is_err());
        let mut id = [0u8; 16];
        assert!(Sampler::TraceIdRatio(0.5).samples(&id));
        id[8] = 0xff;
        assert!(!Sampler::TraceIdRatio(0.5).samples(&id));
        assert!(!Sampler::TraceIdRatio(0.0).samples(&[0; 16]));
        assert!(Sampler::TraceIdRatio(1.0).samples(&[0xff; 16]));
    }

    #[test]
    fn service_name_headers_and_resource() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-resource, deployment.environment=prod%20eu"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc,x-tenant=7"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.service_name, "from-resource");
        assert_eq!(c.resource, vec![("deployment.environment".to_string(), "prod eu".to_string())]);
        assert_eq!(c.headers, vec![("Authorization".to_string(), "Bearer abc".to_string()), ("x-tenant".to_string(), "7".to_string())]);
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"), ("OTEL_SERVICE_NAME", "mine"), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=r")]).unwrap().unwrap();
        assert_eq!(c.service_name, "mine");
        for bad in ["x-a=%0d%0aHost: evil", "Host=evil", "noequals", "x-a=%zz", "bad key=1"] {
            assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"), ("OTEL_EXPORTER_OTLP_HEADERS", bad)]).is_err(), "{bad:?} accepted");
        }
    }
}
