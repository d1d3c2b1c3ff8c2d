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
//! header, ratio or number): those stop start-up with a message naming the variable, rather
//! than tracing differently from what was asked. The variables the crate reads are checked
//! by `otel_env`, shared with lantern-exporter, exactly as the crate parses them.
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::otel_env;

pub const DEFAULT_SERVICE_NAME: &str = "lantern-broker";

#[derive(Debug, Error, PartialEq)]
pub enum TraceConfigError {
    #[error("OTEL_TRACES_EXPORTER={0:?} is not supported: set it to otlp or none")]
    Exporter(String),
    #[error("{var}={value:?} is not supported: expected grpc, http/protobuf or http/json")]
    Protocol { var: &'static str, value: String },
    #[error("{var}={value:?}: {expected}")]
    Invalid { var: &'static str, value: String, expected: &'static str },
    #[error("{0}")]
    Env(#[from] otel_env::EnvError),
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
    /// OTEL_SERVICE_NAME, else `service.name` in OTEL_RESOURCE_ATTRIBUTES, else the broker's
    /// default name (the spec's precedence: see otel_env::service_name).
    pub service_name: String,
    pub sampler: Sampler,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub schedule_delay: Duration,
}

impl TraceConfig {
    /// Reads the OTEL_* variables from `vars`. `Ok(None)`: tracing is off.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Option<TraceConfig>, TraceConfigError> {
        let raw: HashMap<String, String> = vars.into_iter().filter(|(k, _)| k.starts_with("OTEL_")).collect();
        let raw_get = |k: &str| raw.get(k).cloned();
        let env: otel_env::Env = &raw_get;
        // The spec treats an empty value as unset. The variables the broker reads itself are
        // trimmed; those opentelemetry-otlp reads are checked as it parses them (otel_env).
        let get = |k: &str| raw.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let first = |vars: [&'static str; 2]| vars.into_iter().find_map(|v| get(v).map(|s| (v, s)));
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = otel_env::first(env, otel_env::TRACES.endpoint);
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
        otel_env::check_endpoint(env, &otel_env::TRACES)?;
        otel_env::check_compression(env, &otel_env::TRACES)?;
        otel_env::check_headers(env, &otel_env::TRACES)?;
        let timeout = otel_env::export_timeout(env, &otel_env::TRACES)?;
        let certificate = otel_env::first(env, otel_env::TRACES.certificate).map(|(_, path)| PathBuf::from(path));
        let service_name = otel_env::service_name(env, DEFAULT_SERVICE_NAME);
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
            service_name,
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
        assert_eq!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]), Ok(None));
        // not empty: opentelemetry-otlp would try it as a URL
        assert!(cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]).is_err());
    }

    #[test]
    fn an_endpoint_or_otlp_turns_it_on_with_spec_defaults() {
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")]).unwrap().unwrap();
        assert_eq!((c.protocol, c.sampler, c.service_name.as_str()), (Protocol::HttpProtobuf, Sampler::AlwaysOn, "lantern-broker"));
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
        // the crate does not trim: " gzip" would be ignored, not used
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_COMPRESSION", " gzip")]).is_err());
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_BSP_SCHEDULE_DELAY", "soon")]).is_err());
        assert!(cfg(&[("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]).is_err());
        for bad in ["x-api-key", "a=1,b", "=v", "authorization=secret-token,tenant", "bad key=secret"] {
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
    fn the_service_name_follows_the_spec_precedence() {
        let name = |vars: &[(&str, &str)]| cfg(&[&[("OTEL_TRACES_EXPORTER", "otlp")], vars].concat()).unwrap().unwrap().service_name;
        assert_eq!(name(&[]), "lantern-broker");
        assert_eq!(name(&[("OTEL_SERVICE_NAME", "mine")]), "mine");
        assert_eq!(name(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod, service.name=r")]), "r");
        assert_eq!(name(&[("OTEL_SERVICE_NAME", "mine"), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=r")]), "mine");
        assert_eq!(name(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")]), "lantern-broker");
        // an entry without '=' names nothing (the SDK skips it)
        assert_eq!(name(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name")]), "lantern-broker");
    }
}
