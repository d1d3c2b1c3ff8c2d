//! The REST proxy every broker serves on `rest.listeners` (docs/rest-proxy.md): Confluent's v3
//! API over HTTP, answered by a Kafka client of this broker's own cluster (`client`), so any
//! broker serves any topic. This module owns the configuration, the listener and the layer
//! every request passes (body limits, metrics, the request log); one module per API family
//! holds the handlers.
mod admin;
mod body;
mod client;
mod error;
mod fetch;
mod observe;
mod produce;
mod records;
mod time;
mod v3;
mod v3_configs;
mod v3_groups;
mod v3_records;
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
    /// `host:port` of each `http://` listener; empty: the proxy is off.
    pub listeners: Vec<String>,
    /// Whether `rest.listeners` was set: a default listener that cannot bind (another broker on
    /// this machine has it) leaves the broker running without the proxy; a configured one stops
    /// start-up, as the Kafka listeners do.
    pub explicit: bool,
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    /// `rest.consumer.instance.timeout.ms`: an idle v2 consumer instance is deleted after it.
    pub consumer_instance_timeout: Duration,
    /// `rest.consumer.max.instances`.
    pub consumer_max_instances: usize,
}

/// The name of the endpoint a broker registers for its REST proxy (not a Kafka listener).
pub const REST_ENDPOINT: &str = "__rest_proxy";

/// The REST endpoint this broker registers: the first `rest.listeners` address, its host
/// replaced by `fallback_host` (the first advertised Kafka listener's) when it is a wildcard.
pub fn advertised_rest_endpoint(config: &RestConfig, fallback_host: Option<&str>) -> Option<crate::controller::Endpoint> {
    let (host, port) = config.listeners.first()?.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host {
        "0.0.0.0" | "[::]" | "::" | "" => fallback_host?.to_string(),
        h => h.to_string(),
    };
    Some(crate::controller::Endpoint { name: REST_ENDPOINT.to_string(), host, port })
}

impl RestConfig {
    /// Reads the `rest.*` properties; the error names the property, its value and why.
    pub fn parse<'a>(get: &dyn Fn(&str) -> Option<(&'a str, Origin)>) -> Result<Self, (&'static str, String, String)> {
        let (value, origin) = get("rest.listeners").unwrap_or(("", Origin::Default));
        let mut listeners = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |why: &str| ("rest.listeners", value.to_string(), why.to_string());
            let Some((scheme, address)) = item.split_once("://") else { return Err(bad("expected http://host:port")) };
            match scheme {
                "http" => {}
                "https" => return Err(bad("https (TLS) is not built yet: docs/rest-proxy.md lists what is")),
                _ => return Err(bad("expected http://host:port")),
            }
            let Some((host, port)) = address.rsplit_once(':') else { return Err(bad("expected http://host:port")) };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("expected http://host:port"));
            }
            listeners.push(address.to_string());
        }
        let num = |n: &str| get(n).and_then(|(v, _)| v.trim().parse::<i64>().ok()).unwrap_or(0).max(1);
        Ok(Self {
            listeners,
            explicit: origin != Origin::Default,
            max_request_bytes: usize::try_from(num("rest.max.request.bytes")).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(num("rest.request.timeout.ms") as u64),
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
        .merge(v3_groups::routes())
        .merge(v2_consumers::routes())
        .route("/openapi.yaml", axum::routing::get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI) }));
    api.fallback(|| async { RestError::not_found("HTTP 404 Not Found") })
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
    let consumers = v2_consumers::Consumers::new(&config);
    let state = Arc::new(RestState { client: KafkaClient::new(broker.clone()), broker, config: config.clone(), consumers });
    for address in &config.listeners {
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
        tracing::info!(target: "kafka.rest", address = %local, "REST proxy listening");
        tasks.push(tokio::spawn(serve(listener, state.clone(), shutdown.clone())));
    }
    Ok(tasks)
}

async fn serve(listener: TcpListener, state: Shared, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
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
        assert_eq!(c.listeners, vec!["0.0.0.0:8082"]);
        assert!(!c.explicit);
        assert_eq!(c.max_request_bytes, 16 << 20);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn empty_turns_the_proxy_off_and_a_set_listener_is_explicit() {
        assert!(parse(&[("rest.listeners", "")]).unwrap().listeners.is_empty());
        let c = parse(&[("rest.listeners", "http://127.0.0.1:1234,http://[::1]:99")]).unwrap();
        assert_eq!(c.listeners, vec!["127.0.0.1:1234", "[::1]:99"]);
        assert!(c.explicit);
    }

    #[test]
    fn bad_listeners_are_refused_with_a_reason() {
        for bad in ["127.0.0.1:8082", "ftp://x:1", "http://x", "http://:1", "http://x:99999", "https://x:1"] {
            let (name, value, _) = parse(&[("rest.listeners", bad)]).unwrap_err();
            assert_eq!((name, value.as_str()), ("rest.listeners", bad));
        }
    }
}
