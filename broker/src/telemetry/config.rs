//! Tracing configuration from the standard OpenTelemetry environment variables.
//!
//! Tracing is off unless asked for: `OTEL_TRACES_EXPORTER=otlp`, or an OTLP endpoint
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`) with
//! `OTEL_TRACES_EXPORTER` unset. `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true`
//! turn it off whatever else is set.
//!
//! opentelemetry-otlp reads the endpoint, headers and compression variables itself; this
//! module decides whether tracing is on and checks the values the crates would silently
//! ignore or replace by a default (an unknown protocol, sampler or compression, a malformed
//! ratio or number, an unreadable certificate): those stop start-up with a message naming
//! the variable, rather than tracing differently from what was asked.
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub const DEFAULT_SERVICE_NAME: &str = "lantern-broker";

#[derive(Debug, Error, PartialEq)]
pub enum TraceConfigError {
    #[error("OTEL_TRACES_EXPORTER={0:?} is not supported: set it to otlp or none")]
    Exporter(String),
    #[error("{var}={value:?} is not supported: expected grpc, http/protobuf or http/json")]
    Protocol { var: &'static str, value: String },
    #[error("{var}={value:?}: {expected}")]
    Invalid { var: &'static str, value: String, expected: &'static str },
}

/// How spans travel to the receiver (OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// Which root spans are recorded. The broker's request spans are always roots (producer
/// contexts are links, not parents), so a `parentbased_*` sampler acts as its root sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    pub protocol: Protocol,
    pub timeout: Duration,
    /// OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE: a PEM file of CAs trusted besides the system's.
    pub certificate: Option<PathBuf>,
    /// `None` when OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names the service (the SDK
    /// reads those); otherwise the broker's default name.
    pub default_service_name: Option<&'static str>,
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
        let first = |vars: [&'static str; 2]| vars.into_iter().find_map(|v| get(v).map(|s| (v, s)));
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = first(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]);
        match get("OTEL_TRACES_EXPORTER").map(str::to_ascii_lowercase).as_deref() {
            Some("none") => return Ok(None),
            Some("otlp") => {}
            None if endpoint.is_some() => {}
            None => return Ok(None),
            Some(other) => return Err(TraceConfigError::Exporter(other.to_string())),
        }
        // The spec's default is http/protobuf.
        let protocol = match first(["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
            None | Some((_, "http/protobuf")) => Protocol::HttpProtobuf,
            Some((_, "grpc")) => Protocol::Grpc,
            Some((_, "http/json")) => Protocol::HttpJson,
            Some((var, value)) => return Err(TraceConfigError::Protocol { var, value: value.to_string() }),
        };
        if let Some((var, value)) = endpoint {
            let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("http" | "https")) {
                return Err(TraceConfigError::Invalid { var, value: value.to_string(), expected: "expected an http:// or https:// URL" });
            }
        }
        if let Some((var, value)) = first(["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"]) {
            if !["gzip", "zstd", "none"].contains(&value.to_ascii_lowercase().as_str()) {
                return Err(TraceConfigError::Invalid { var, value: value.to_string(), expected: "expected gzip, zstd or none" });
            }
        }
        if let Some((var, value)) = first(["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"]) {
            // key=value pairs, comma-separated (the exporter would drop a malformed pair silently)
            if let Some(n) = value.split(',').position(|kv| kv.split_once('=').is_none_or(|(k, _)| k.trim().is_empty())) {
                // never the value itself: headers carry credentials
                return Err(TraceConfigError::Invalid {
                    var,
                    value: format!("<{} bytes, not shown>", value.len()),
                    expected: if n == 0 { "expected key=value pairs separated by commas; the 1st is not" } else { "expected key=value pairs separated by commas; one after the 1st is not" },
                });
            }
        }
        let timeout = match first(["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]) {
            Some((var, value)) => Duration::from_millis(number(var, value, 1, 600_000)?),
            None => Duration::from_secs(10),
        };
        let certificate = first(["OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"]).map(|(_, path)| PathBuf::from(path));
        let named_in_resource = get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| attrs.split(',').any(|kv| kv.split('=').next().map(str::trim) == Some("service.name")));
        let default_service_name = (get("OTEL_SERVICE_NAME").is_none() && !named_in_resource).then_some(DEFAULT_SERVICE_NAME);
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
            protocol,
            timeout,
            certificate,
            default_service_name,
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
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")]).unwrap().unwrap();
        assert_eq!((c.protocol, c.sampler, c.default_service_name), (Protocol::HttpProtobuf, Sampler::AlwaysOn, Some("lantern-broker")));
        assert_eq!((c.max_queue_size, c.max_export_batch_size), (2048, 512));
        assert_eq!((c.schedule_delay, c.timeout, c.certificate), (Duration::from_secs(5), Duration::from_secs(10), None));
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap().is_some());
    }

    #[test]
    fn protocols_and_the_per_signal_variables_win() {
        let p = |vars: &[(&str, &str)]| cfg(&[&[("OTEL_TRACES_EXPORTER", "otlp")], vars].concat()).map(|c| c.map(|c| c.protocol));
        assert_eq!(p(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), Ok(Some(Protocol::Grpc)));
        assert_eq!(p(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]), Ok(Some(Protocol::HttpJson)));
        assert_eq!(p(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), Ok(Some(Protocol::HttpJson)));
        let e = p(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")]).unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"thrift\" is not supported"), "{e}");
        let c = cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/ca.pem"), ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/x")]).unwrap().unwrap();
        assert_eq!(c.certificate, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn unsupported_choices_are_refused_with_the_variable_named() {
        assert!(matches!(cfg(&[("OTEL_TRACES_EXPORTER", "jaeger")]), Err(TraceConfigError::Exporter(_))));
        for bad in ["a:4318", "ftp://a:1", "localhost"] {
            let e = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", bad)]).unwrap_err();
            assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{bad:?}: {e}");
        }
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")]).is_err());
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]).is_ok());
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_BSP_SCHEDULE_DELAY", "soon")]).is_err());
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]).is_err());
        for bad in ["x-api-key", "a=1,b", "=v", "authorization=secret-token,tenant"] {
            let e = cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", bad)]).unwrap_err();
            assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"), "{bad:?}: {e}");
            assert!(!e.to_string().contains("secret"), "the error shows the headers: {e}");
        }
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc,tenant=7")]).is_ok());
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
    }

    #[test]
    fn the_service_name_default_yields_to_the_environment() {
        let name = |vars: &[(&str, &str)]| cfg(&[&[("OTEL_TRACES_EXPORTER", "otlp")], vars].concat()).unwrap().unwrap().default_service_name;
        assert_eq!(name(&[]), Some("lantern-broker"));
        assert_eq!(name(&[("OTEL_SERVICE_NAME", "mine")]), None);
        assert_eq!(name(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod, service.name=r")]), None);
        assert_eq!(name(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")]), Some("lantern-broker"));
    }
}
