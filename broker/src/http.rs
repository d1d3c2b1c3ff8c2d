//! The HTTP endpoints beside the Kafka listener: /health/live, /health/ready, /metrics.
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

/// The broker appears here once its logs are recovered; until then the broker is not ready.
pub type BrokerSlot = Arc<OnceLock<Arc<Broker>>>;

pub fn router(slot: BrokerSlot) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(slot)
}

async fn ready(State(slot): State<BrokerSlot>) -> impl IntoResponse {
    match slot.get() {
        Some(b) if b.is_ready() => (StatusCode::OK, "ready\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "recovering logs\n"),
    }
}

async fn metrics(State(slot): State<BrokerSlot>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    // OpenMetrics when the scraper asks for it (Prometheus does, in its Accept header).
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let body = match slot.get() {
        Some(b) => {
            let b = b.clone();
            tokio::task::spawn_blocking(move || crate::metrics::render::render(&b, openmetrics)).await.unwrap_or_default()
        }
        None => String::new(),
    };
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], body)
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, slot: BrokerSlot, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, router(slot))
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(target: "kafka.server.KafkaServer", error = %e, "HTTP endpoint stopped");
    }
}
