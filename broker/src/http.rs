//! The HTTP endpoints beside the Kafka listener: /health/live, /health/ready, /metrics.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::metrics::render::{render, Scrape};

/// What the endpoints can see of the node as it starts: the controller once the quorum part
/// is up, the broker once its logs are recovered (never on a controller-only node).
pub struct NodeSlot {
    config: BrokerConfig,
    controller: OnceLock<Arc<Controller>>,
    broker: OnceLock<Arc<Broker>>,
    /// A controller-only node's readiness (a broker's is its own).
    controller_ready: AtomicBool,
}

impl NodeSlot {
    pub fn new(config: BrokerConfig) -> Arc<Self> {
        Arc::new(Self { config, controller: OnceLock::new(), broker: OnceLock::new(), controller_ready: AtomicBool::new(false) })
    }

    pub fn set_controller(&self, controller: Arc<Controller>) {
        let _ = self.controller.set(controller);
    }

    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    pub fn set_controller_ready(&self, ready: bool) {
        self.controller_ready.store(ready, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        if self.config.cluster.roles.broker {
            self.broker.get().is_some_and(|b| b.is_ready())
        } else {
            self.controller_ready.load(Ordering::Acquire)
        }
    }
}

pub fn router(slot: Arc<NodeSlot>) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(slot)
}

async fn ready(State(slot): State<Arc<NodeSlot>>) -> impl IntoResponse {
    match slot.is_ready() {
        true => (StatusCode::OK, "ready\n"),
        false if slot.config.cluster.roles.broker => (StatusCode::SERVICE_UNAVAILABLE, "recovering logs\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "waiting for the metadata quorum\n"),
    }
}

async fn metrics(State(slot): State<Arc<NodeSlot>>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    // OpenMetrics when the scraper asks for it (Prometheus does, in its Accept header).
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    // A broker's metrics appear once its logs are recovered (as before the quorum existed);
    // a controller-only node's once its quorum part runs.
    let visible = slot.controller.get().is_some() && (slot.broker.get().is_some() || !slot.config.cluster.roles.broker);
    let body = if visible {
        let slot = slot.clone();
        tokio::task::spawn_blocking(move || {
            let (Some(controller), broker) = (slot.controller.get(), slot.broker.get()) else { return String::new() };
            render(&Scrape { config: &slot.config, controller, broker: broker.map(|b| &**b) }, openmetrics)
        })
        .await
        .unwrap_or_default()
    } else if slot.config.cluster.roles.broker {
        crate::metrics::render::render_recovering(&slot.config, openmetrics)
    } else {
        // A controller-only node before its quorum part runs: nothing to report yet, but a
        // valid exposition.
        if openmetrics { "# EOF\n".to_string() } else { String::new() }
    };
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], body)
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, slot: Arc<NodeSlot>, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, router(slot))
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(target: "kafka.server.KafkaServer", error = %e, "HTTP endpoint stopped");
    }
}
