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

async fn metrics(State(slot): State<BrokerSlot>) -> impl IntoResponse {
    let body = slot.get().map(|b| b.metrics.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, slot: BrokerSlot, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, router(slot))
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP endpoint stopped");
    }
}
