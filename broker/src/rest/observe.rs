//! What every REST request leaves behind: its count, error and latency by endpoint (the
//! method and route template, so the series stay as few as the routes) and, when
//! `request.log.path` is set, a request-log line with the route, the status and the principal
//! `auth` found.
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::auth::Principal;
use super::Shared;
use crate::network::request_log::{now_rfc3339, CompletedHttpRequest};

pub async fn observe(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let method = request.method().as_str().to_string();
    // Label values from a bounded set: a client can send any method name.
    let method_label = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_string(),
        _ => "OTHER".to_string(),
    };
    let path = request.uri().path().to_string();
    let client_address = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.to_string());
    let request_bytes = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let m = &state.broker.metrics;
    if m.enabled {
        let endpoint = if route == "unmatched" { route.clone() } else { format!("{method_label} {route}") };
        crate::metrics::inc(&m.rest_requests.with(&[&endpoint]));
        if status >= 400 {
            crate::metrics::inc(&m.rest_errors.with(&[&endpoint, &status.to_string()]));
        }
        m.rest_latency.with(&[&endpoint]).record(elapsed.as_micros().min(u128::from(u64::MAX)) as u64);
    }
    if let Some(log) = &state.broker.request_log {
        let principal = response.extensions().get::<Principal>().map_or(Principal::ANONYMOUS, |p| p.0.as_str()).to_string();
        log.write(&CompletedHttpRequest {
            timestamp: now_rfc3339(),
            message: "Completed HTTP request",
            listener: "REST",
            method: &method,
            route: &route,
            path: &path,
            status,
            principal: &principal,
            client_address,
            total_time_ms: elapsed.as_secs_f64() * 1000.0,
            request_bytes,
        });
    }
    response
}
