//! The HTTP endpoint: `/metrics` (node collectors, then the pipeline's families) and `/`.
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::exposition::MetricWriter;
use crate::node::{self, Collector, Paths};
use crate::pipeline::Pipeline;

/// What a scrape needs; shared by every request.
pub struct Exporter {
    pub collectors: Vec<Box<dyn Collector>>,
    pub paths: Paths,
    pub pipeline: Option<Arc<Pipeline>>,
}

impl Exporter {
    /// One full scrape as exposition text.
    pub fn scrape(&self) -> String {
        let mut out = MetricWriter::new();
        node::scrape(&self.collectors, &self.paths, &mut out);
        if let Some(p) = &self.pipeline {
            p.render(&mut out);
        }
        out.into_string()
    }
}

pub fn router(exporter: Arc<Exporter>, telemetry_path: &str) -> Router {
    Router::new()
        .route("/", get(|| async { "lantern-exporter: metrics at /metrics\n" }))
        .route(telemetry_path, get(metrics))
        .with_state(exporter)
}

async fn metrics(State(exporter): State<Arc<Exporter>>) -> axum::response::Response {
    match tokio::task::spawn_blocking(move || exporter.scrape()).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response(),
        // An empty 200 would read as "up, no series" and silence the scrape alerts.
        Err(e) => {
            tracing::error!(target: "lantern.exporter", error = %e, "scrape failed");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("scrape failed: {e}\n")).into_response()
        }
    }
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await
}
