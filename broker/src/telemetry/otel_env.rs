//! The OTEL_* environment variables that opentelemetry-otlp and opentelemetry_sdk read
//! themselves, checked the way those crates parse them, and the resource's service name
//! resolved the way the SDK environment specification says.
//!
//! One source file for both processes: the broker compiles it as `telemetry::otel_env`, the
//! exporter includes it by path as `pipeline::otel_env`, so traces and logs accept and refuse
//! the same settings. It uses only std, `http` and the opentelemetry crates both depend on.
//!
//! Why check at all: the crates ignore what they cannot parse (an unknown compression, a header
//! pair without `=`, a value with a space before it) and export differently from what was asked,
//! silently. A check that disagrees with the crate is as bad (it would pass `" gzip"`, which the
//! crate ignores), so nothing here trims what the crate does not trim.
//! An empty value counts as unset (the spec's rule, and the crate's for all but headers).
use std::str::FromStr;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

/// Reads one environment variable: `None` when unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment (a value that is not Unicode counts as unset, as in the crates'
/// readers of headers and timeouts).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable the crates would not use as given. `shown` is the value as the message shows it
/// (quoted, or a length only for headers, which carry credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={shown}: {expected}")]
pub struct EnvError {
    pub var: &'static str,
    pub shown: String,
    pub expected: &'static str,
}

/// One signal's variables, the signal-specific one first: it wins over the general one.
#[derive(Debug, Clone, Copy)]
pub struct SignalVars {
    pub endpoint: [&'static str; 2],
    pub headers: [&'static str; 2],
    pub compression: [&'static str; 2],
    pub timeout: [&'static str; 2],
    /// A PEM file of CAs trusted besides the system's (read by Lantern, not by the crate).
    pub certificate: [&'static str; 2],
}

pub const TRACES: SignalVars = SignalVars {
    endpoint: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"],
    headers: ["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"],
    compression: ["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"],
    timeout: ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"],
    certificate: ["OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"],
};

pub const LOGS: SignalVars = SignalVars {
    endpoint: ["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"],
    headers: ["OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"],
    compression: ["OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"],
    timeout: ["OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"],
    certificate: ["OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"],
};

/// OTEL_EXPORTER_OTLP_TIMEOUT's default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The first of `vars` set to a non-empty value, with its name.
pub fn first(env: Env, vars: [&'static str; 2]) -> Option<(&'static str, String)> {
    vars.into_iter().find_map(|var| env(var).filter(|v| !v.is_empty()).map(|v| (var, v)))
}

/// An http:// or https:// URL with something after the scheme (the crates parse the rest).
pub fn is_http_url(url: &str) -> bool {
    match url.split_once("://") {
        Some((scheme, rest)) => (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) && !rest.is_empty(),
        None => false,
    }
}

/// The endpoint variables, when set, hold http:// or https:// URLs.
pub fn check_endpoint(env: Env, vars: &SignalVars) -> Result<Option<String>, EnvError> {
    match first(env, vars.endpoint) {
        Some((var, value)) if !is_http_url(&value) => Err(EnvError { var, shown: format!("{value:?}"), expected: "expected an http:// or https:// URL" }),
        other => Ok(other.map(|(_, v)| v)),
    }
}

/// Compression: `gzip`, `zstd` or `none` in any case, exactly (the crate lowercases but does
/// not trim, and skips a value it does not know).
pub fn check_compression(env: Env, vars: &SignalVars) -> Result<(), EnvError> {
    match first(env, vars.compression) {
        Some((var, value)) if !["gzip", "zstd", "none"].contains(&value.to_ascii_lowercase().as_str()) => {
            Err(EnvError { var, shown: format!("{value:?}"), expected: "expected gzip, zstd or none" })
        }
        _ => Ok(()),
    }
}

/// The export timeout: a whole number of milliseconds from 1 to 600000 (the crate parses a
/// u64 without trimming and falls back to the default on anything else), else 10 s.
pub fn export_timeout(env: Env, vars: &SignalVars) -> Result<Duration, EnvError> {
    match first(env, vars.timeout) {
        None => Ok(DEFAULT_TIMEOUT),
        Some((var, value)) => value.parse::<u64>().ok().filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms)).map(Duration::from_millis).ok_or(EnvError {
            var,
            shown: format!("{value:?}"),
            expected: "expected a whole number of milliseconds from 1 to 600000",
        }),
    }
}

/// Headers: comma-separated `key=value` pairs, each of which the crate turns into a request
/// header. The crate reads the signal variable whenever it is set, even empty, and the general
/// one only otherwise; it drops, silently, a pair without `=`, with an empty key or value
/// (after trimming both and percent-decoding the value), or whose name or value HTTP forbids.
/// Errors never show the value: headers carry credentials.
pub fn check_headers(env: Env, vars: &SignalVars) -> Result<(), EnvError> {
    let [signal, general] = vars.headers;
    let (var, value) = match (env(signal), env(general)) {
        (Some(s), g) if s.is_empty() => {
            return match g.filter(|g| !g.is_empty()) {
                Some(_) => Err(EnvError {
                    var: signal,
                    shown: "\"\"".into(),
                    expected: "set but empty, so opentelemetry-otlp would send none of the general headers variable's headers: unset it",
                }),
                None => Ok(()),
            };
        }
        (Some(s), _) => (signal, s),
        (None, Some(g)) => (general, g),
        (None, None) => return Ok(()),
    };
    // An empty entry (`a=1,,b=2`, a trailing comma) loses nothing and is allowed.
    let bad = value.split_terminator(',').map(str::trim).filter(|e| !e.is_empty()).position(|entry| header_pair(entry).is_none());
    match bad {
        None => Ok(()),
        Some(n) => Err(EnvError {
            var,
            shown: format!("<{} bytes, not shown>", value.len()),
            expected: if n == 0 {
                "expected key=value pairs separated by commas, valid as HTTP headers; the 1st is not"
            } else {
                "expected key=value pairs separated by commas, valid as HTTP headers; one after the 1st is not"
            },
        }),
    }
}

/// One trimmed `key=value` entry as the crate reads it, `None` where it drops the entry.
fn header_pair(entry: &str) -> Option<(http::HeaderName, http::HeaderValue)> {
    let (key, raw) = entry.split_once('=')?;
    let key = key.trim();
    // the crate keeps the untrimmed text when percent-decoding fails
    let value = percent_decode(raw.trim()).unwrap_or_else(|| raw.to_string());
    if key.is_empty() || value.is_empty() {
        return None;
    }
    Some((http::HeaderName::from_str(key).ok()?, http::HeaderValue::from_str(&value).ok()?))
}

/// `%XX` sequences to bytes; `None` for a truncated or non-hex escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The service name, by the SDK environment specification: OTEL_SERVICE_NAME, else
/// `service.name` in OTEL_RESOURCE_ATTRIBUTES (parsed as the SDK's detector parses it: the last
/// `key=value` entry whose trimmed key is `service.name`, its value trimmed), else `default`.
/// opentelemetry_sdk's `Resource::builder()` gets the first two the wrong way round.
pub fn service_name(env: Env, default: &str) -> String {
    if let Some(name) = env("OTEL_SERVICE_NAME").filter(|n| !n.is_empty()) {
        return name;
    }
    let attrs = env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let from_attrs = attrs.split_terminator(',').filter_map(|e| e.split_once('=')).filter(|(k, _)| k.trim() == "service.name").map(|(_, v)| v.trim()).last();
    from_attrs.unwrap_or(default).to_string()
}

/// The resource: the SDK's (telemetry.sdk.*, OTEL_RESOURCE_ATTRIBUTES from the process
/// environment), each of `defaults` whose key the environment does not set, and `service_name`
/// (from [`service_name`]) over whatever the SDK chose.
pub fn resource(service_name: String, defaults: Vec<KeyValue>) -> Resource {
    let from_env = Resource::builder().build();
    let missing: Vec<KeyValue> = defaults.into_iter().filter(|kv| from_env.get(&kv.key).is_none()).collect();
    Resource::builder().with_attributes(missing).with_service_name(service_name).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn otel_service_name_wins_over_the_resource_attributes() {
        let name = |pairs: &[(&str, &str)]| service_name(&env(pairs), "lantern-broker");
        assert_eq!(name(&[]), "lantern-broker");
        assert_eq!(name(&[("OTEL_SERVICE_NAME", "mine")]), "mine");
        assert_eq!(name(&[("OTEL_SERVICE_NAME", "mine"), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=theirs")]), "mine");
        assert_eq!(name(&[("OTEL_SERVICE_NAME", ""), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=theirs")]), "theirs");
    }

    #[test]
    fn a_service_name_is_found_where_the_sdk_finds_one_and_nowhere_else() {
        let name = |attrs: &str| service_name(&env(&[("OTEL_RESOURCE_ATTRIBUTES", attrs)]), "lantern-broker");
        // given: spaces around the key and value, not first, repeated (the last wins), empty
        assert_eq!(name("service.name=r"), "r");
        assert_eq!(name("deployment.environment=prod, service.name = r "), "r");
        assert_eq!(name("service.name=a,service.name=b"), "b");
        assert_eq!(name("service.name="), "");
        // not given: another key ending so, the text in a value, an entry without '='
        assert_eq!(name("my.service.name=x"), "lantern-broker");
        assert_eq!(name("note=service.name=x"), "lantern-broker");
        assert_eq!(name("service.name"), "lantern-broker");
        assert_eq!(name("deployment.environment=prod"), "lantern-broker");
    }

    #[test]
    fn headers_are_refused_where_the_crate_would_drop_them_without_showing_them() {
        let check = |pairs: &[(&str, &str)]| check_headers(&env(pairs), &LOGS);
        let general = |v: &str| check(&[("OTEL_EXPORTER_OTLP_HEADERS", v)]);
        for good in ["x-api-key=abc,tenant=7", "authorization=Basic%20dXNlcg==", " a = 1 ", "a=1,", "a=1,,b=2", "A=1", "a=%zz", ""] {
            assert_eq!(general(good), Ok(()), "{good:?}");
        }
        for bad in ["x-api-key", "a=1,b", "=v", "a=", "a= ", "authorization=secret-token,tenant", "bad key=1", "a=%0Asecret", "a\u{7f}=1"] {
            let e = general(bad).unwrap_err();
            assert_eq!(e.var, "OTEL_EXPORTER_OTLP_HEADERS", "{bad:?}");
            assert!(!e.to_string().contains("secret"), "the error shows the headers: {e}");
        }
        let e = check(&[("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k"), ("OTEL_EXPORTER_OTLP_HEADERS", "a=1")]).unwrap_err();
        assert_eq!(e.var, "OTEL_EXPORTER_OTLP_LOGS_HEADERS");
        // set but empty: the crate would then ignore the general variable
        let e = check(&[("OTEL_EXPORTER_OTLP_LOGS_HEADERS", ""), ("OTEL_EXPORTER_OTLP_HEADERS", "a=1")]).unwrap_err();
        assert_eq!(e.var, "OTEL_EXPORTER_OTLP_LOGS_HEADERS");
        assert_eq!(check(&[("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "")]), Ok(()));
        assert_eq!(check(&[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "k")]), Ok(()), "another signal's variable");
    }

    #[test]
    fn values_are_taken_as_the_crate_takes_them_untrimmed() {
        let compression = |v: &str| check_compression(&env(&[("OTEL_EXPORTER_OTLP_COMPRESSION", v)]), &TRACES);
        for good in ["gzip", "GZIP", "zstd", "none", "None", ""] {
            assert_eq!(compression(good), Ok(()), "{good:?}");
        }
        for bad in [" gzip", "gzip ", "brotli", " "] {
            assert_eq!(compression(bad).unwrap_err().var, "OTEL_EXPORTER_OTLP_COMPRESSION", "{bad:?}");
        }
        let timeout = |pairs: &[(&str, &str)]| export_timeout(&env(pairs), &LOGS);
        assert_eq!(timeout(&[]), Ok(DEFAULT_TIMEOUT));
        assert_eq!(timeout(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "30000")]), Ok(Duration::from_secs(30)));
        assert_eq!(timeout(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"), ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "500")]), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "10s", "1.5", " 500", "600001"] {
            assert_eq!(timeout(&[("OTEL_EXPORTER_OTLP_TIMEOUT", bad)]).unwrap_err().var, "OTEL_EXPORTER_OTLP_TIMEOUT", "{bad:?}");
        }
        let endpoint = |v: &str| check_endpoint(&env(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", v)]), &LOGS);
        assert_eq!(endpoint("HTTPS://c:4318/v1/logs"), Ok(Some("HTTPS://c:4318/v1/logs".into())));
        assert_eq!(endpoint(""), Ok(None));
        for bad in ["c:4318", "ftp://c:1", "http://", " http://c:4318", "localhost"] {
            assert!(endpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percent_decoding_matches_the_crates() {
        assert_eq!(percent_decode("a%20b"), Some("a b".into()));
        assert_eq!(percent_decode("%e2%82%ac"), Some("\u{20ac}".into()));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("a%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
