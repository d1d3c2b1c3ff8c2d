//! The REST proxy every broker serves on `rest.listeners` (docs/rest-proxy.md): Confluent's v3
//! API over HTTP, answered by a Kafka client of this broker's own cluster (`client`), so any
//! broker serves any topic. This module owns the configuration, the listener and the layer
//! every request passes (body limits, metrics, the request log); one module per API family
//! holds the handlers; `auth` and `tls` say who may use it and how it is reached.
mod admin;
pub mod auth;
mod body;
mod client;
mod confluent_v1;
mod error;
mod fetch;
mod observe;
mod produce;
mod records;
mod time;
pub mod tls;
mod v3;
mod v3_configs;
mod v3_configs_all;
mod v3_groups;
mod v3_records;
mod v3_stream;
mod v1;
mod v2;
mod v2_consumer_group;
mod v2_consumer_records;
mod v2_consumer_state;
mod v2_consumers;
mod forward;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use client::KafkaClient;
pub use error::RestError;

use crate::broker::Broker;
use crate::config::Origin;

/// The OpenAPI 3 document of every route served, kept beside the code (and served at
/// `/openapi.yaml`); tests/test_rest_proxy.py checks the two agree.
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// The proxy's part of the configuration (`rest.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// Each `http://` or `https://` listener; empty: the proxy is off.
    pub listeners: Vec<RestListener>,
    /// Whether `rest.listeners` was set: a default listener that cannot bind (another broker on
    /// this machine has it) leaves the broker running without the proxy; a configured one stops
    /// start-up, as the Kafka listeners do.
    pub explicit: bool,
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    /// `rest.authentication*`.
    pub auth: auth::AuthConfig,
    /// `rest.tls.cert` and `rest.tls.key`: set whenever a listener is `https://`.
    pub tls: Option<tls::TlsFiles>,
    /// `rest.consumer.instance.timeout.ms`: an idle v2 consumer instance is deleted after it.
    pub consumer_instance_timeout: Duration,
    /// `rest.consumer.max.instances`.
    pub consumer_max_instances: usize,
}

/// The name of the endpoint a broker registers for its REST proxy (not a Kafka listener).
pub const REST_ENDPOINT: &str = "__rest_proxy";

/// The REST endpoint this broker registers: the first plain `http://` address of
/// `rest.listeners` (forwarding speaks plain HTTP; a broker with only `https://` listeners
/// registers none, and its v2 consumer instances are reachable only through it), its host
/// replaced by `fallback_host` (the first advertised Kafka listener's) when it is a wildcard.
pub fn advertised_rest_endpoint(config: &RestConfig, fallback_host: Option<&str>) -> Option<crate::controller::Endpoint> {
    let (host, port) = config.listeners.iter().find(|l| !l.tls)?.address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host {
        "0.0.0.0" | "[::]" | "::" | "" => fallback_host?.to_string(),
        h => h.to_string(),
    };
    Some(crate::controller::Endpoint { name: REST_ENDPOINT.to_string(), host, port })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestListener {
    /// `host:port`.
    pub address: String,
    pub tls: bool,
}

impl RestConfig {
    /// Reads the `rest.*` properties; the error names the property, its value and why.
    pub fn parse<'a>(get: &dyn Fn(&str) -> Option<(&'a str, Origin)>) -> Result<Self, (&'static str, String, String)> {
        let (value, origin) = get("rest.listeners").unwrap_or(("", Origin::Default));
        let mut listeners = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |why: &str| ("rest.listeners", value.to_string(), why.to_string());
            let Some((scheme, address)) = item.split_once("://") else { return Err(bad("expected http://host:port")) };
            let tls = match scheme {
                "http" => false,
                "https" => true,
                _ => return Err(bad("expected http://host:port or https://host:port")),
            };
            let Some((host, port)) = address.rsplit_once(':') else { return Err(bad("expected http://host:port")) };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("expected http://host:port"));
            }
            listeners.push(RestListener { address: address.to_string(), tls });
        }
        let file = |n: &'static str| get(n).map(|(v, _)| v.trim()).filter(|v| !v.is_empty()).map(String::from);
        let tls = match (file("rest.tls.cert"), file("rest.tls.key")) {
            (Some(cert), Some(key)) => Some(tls::TlsFiles { cert, key }),
            (None, _) if listeners.iter().any(|l| l.tls) => return Err(("rest.tls.cert", String::new(), "required by an https:// listener in rest.listeners".into())),
            (_, None) if listeners.iter().any(|l| l.tls) => return Err(("rest.tls.key", String::new(), "required by an https:// listener in rest.listeners".into())),
            _ => None,
        };
        let auth = auth::AuthConfig::parse(&|n| get(n).map(|(v, _)| v))?;
        let num = |n: &str| get(n).and_then(|(v, _)| v.trim().parse::<i64>().ok()).unwrap_or(0).max(1);
        Ok(Self {
            listeners,
            explicit: origin != Origin::Default,
            max_request_bytes: usize::try_from(num("rest.max.request.bytes")).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(num("rest.request.timeout.ms") as u64),
            auth,
            tls,
            consumer_instance_timeout: Duration::from_millis(get("rest.consumer.instance.timeout.ms").and_then(|(v, _)| v.trim().parse::<u64>().ok()).unwrap_or(300_000).max(1000)),
            consumer_max_instances: get("rest.consumer.max.instances").and_then(|(v, _)| v.trim().parse::<usize>().ok()).unwrap_or(1000),
        })
    }
}

/// What every handler reads: the broker (its metadata image and metrics) and the client.
pub struct RestState {
    pub broker: Arc<Broker>,
    pub client: KafkaClient,
    pub config: RestConfig,
    pub auth: auth::Authenticator,
    /// The v2 consumer instances this broker owns.
    pub consumers: v2_consumers::Consumers,
}

pub type Shared = Arc<RestState>;

/// Every route of the proxy.
pub fn router(state: Shared) -> Router {
    let api = v3::routes()
        .merge(v3_records::routes())
        .merge(v1::routes())
        .merge(v2::routes())
        .merge(v3_configs::routes())
        .merge(v3_configs_all::routes())
        .merge(v3_groups::routes())
        .merge(v2_consumers::routes())
        .merge(confluent_v1::routes())
        .route("/openapi.yaml", axum::routing::get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI) }));
    api.fallback(|| async { RestError::not_found("HTTP 404 Not Found") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::observe))
        .with_state(state)
}

/// Binds every `rest.listeners` address and serves the proxy on each until `shutdown`. A
/// default listener that cannot bind is reported and skipped; a configured one is an error.
pub async fn start(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let config = broker.config.rest.clone();
    let mut tasks = Vec::new();
    if config.listeners.is_empty() {
        tracing::info!(target: "kafka.rest", "REST proxy off (rest.listeners is empty)");
        return Ok(tasks);
    }
    // Bad files stop start-up, naming the setting, before anything listens.
    let auth = auth::Authenticator::load(&config.auth)?;
    if broker.metrics.enabled {
        for reason in auth.reasons() {
            broker.metrics.rest_auth_failures.with(&[auth.mode(), reason]);
        }
    }
    let tls = config.tls.as_ref().filter(|_| config.listeners.iter().any(|l| l.tls)).map(tls::server_config).transpose()?;
    let consumers = v2_consumers::Consumers::new(&config);
    let state = Arc::new(RestState { client: KafkaClient::new(broker.clone()), broker, config: config.clone(), auth, consumers });
    for RestListener { address, tls: https } in &config.listeners {
        let listener = match TcpListener::bind(address.as_str()).await {
            Ok(l) => l,
            Err(e) if !config.explicit => {
                tracing::warn!(target: "kafka.rest", address = %address, error = %e,
                    "the default REST listener cannot bind; running without the REST proxy (set rest.listeners to a free address, or empty to turn it off)");
                continue;
            }
            Err(e) => anyhow::bail!("cannot listen on {address} (rest.listeners): {e}"),
        };
        let local = listener.local_addr()?;
        tracing::info!(target: "kafka.rest", address = %local, tls = *https, "REST proxy listening");
        if *https {
            let Some(tls) = &tls else { anyhow::bail!("https://{address} (rest.listeners) needs rest.tls.cert and rest.tls.key") };
            let app = router(state.clone()).layer(axum::middleware::map_request(tls::mark_https));
            tasks.push(tokio::spawn(serve(tls::TlsListener::new(listener, tls.clone())?, app, shutdown.clone())));
        } else {
            tasks.push(tokio::spawn(serve(listener, router(state.clone()), shutdown.clone())));
        }
    }
    Ok(tasks)
}

async fn serve<L>(listener: L, app: Router, mut shutdown: watch::Receiver<bool>)
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    use axum::serve::ListenerExt;
    // Through tap_io, axum gives any listener's address as ConnectInfo<SocketAddr>.
    let listener = listener.tap_io(|_| ());
    let result = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(target: "kafka.rest", error = %e, "REST listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<RestConfig, (&'static str, String, String)> {
        let mut all: std::collections::BTreeMap<&str, (&str, Origin)> = [
            ("rest.listeners", ("http://0.0.0.0:8082", Origin::Default)),
            ("rest.max.request.bytes", ("16777216", Origin::Default)),
            ("rest.request.timeout.ms", ("30000", Origin::Default)),
            ("rest.consumer.instance.timeout.ms", ("300000", Origin::Default)),
            ("rest.consumer.max.instances", ("1000", Origin::Default)),
        ]
        .into_iter()
        .collect();
        for (k, v) in pairs {
            all.insert(k, (v, Origin::Flag));
        }
        RestConfig::parse(&|n| all.get(n).copied())
    }

    #[test]
    fn the_default_listens_on_8082_and_may_give_way() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listeners, vec![RestListener { address: "0.0.0.0:8082".into(), tls: false }]);
        assert_eq!((c.auth, c.tls), (auth::AuthConfig::None, None));
        assert!(!c.explicit);
        assert_eq!(c.max_request_bytes, 16 << 20);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn empty_turns_the_proxy_off_and_a_set_listener_is_explicit() {
        assert!(parse(&[("rest.listeners", "")]).unwrap().listeners.is_empty());
        let c = parse(&[("rest.listeners", "http://127.0.0.1:1234,http://[::1]:99")]).unwrap();
        let addresses: Vec<_> = c.listeners.iter().map(|l| l.address.as_str()).collect();
        assert_eq!(addresses, vec!["127.0.0.1:1234", "[::1]:99"]);
        assert!(c.explicit);
    }

    #[test]
    fn bad_listeners_are_refused_with_a_reason() {
        for bad in ["127.0.0.1:8082", "ftp://x:1", "http://x", "http://:1", "http://x:99999", "https://x"] {
            let (name, value, _) = parse(&[("rest.listeners", bad)]).unwrap_err();
            assert_eq!((name, value.as_str()), ("rest.listeners", bad));
        }
    }

    #[test]
    fn an_https_listener_needs_a_certificate_and_a_key() {
        let https = ("rest.listeners", "http://127.0.0.1:1,https://127.0.0.1:2");
        assert_eq!(parse(&[https]).unwrap_err().0, "rest.tls.cert");
        assert_eq!(parse(&[https, ("rest.tls.cert", "c.pem")]).unwrap_err().0, "rest.tls.key");
        let c = parse(&[https, ("rest.tls.cert", "c.pem"), ("rest.tls.key", "k.pem")]).unwrap();
        assert_eq!(c.listeners.iter().map(|l| l.tls).collect::<Vec<_>>(), vec![false, true]);
        assert_eq!(c.tls, Some(tls::TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }));
        assert_eq!(parse(&[("rest.authentication", "basic")]).unwrap_err().0, "rest.authentication.basic.users.file");
    }
}
