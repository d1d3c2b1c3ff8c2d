//! The metrics endpoint: `GET /metrics` (Prometheus text) and `/health/live`, one short
//! request per connection on a plain thread (scrapes are rare and small).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let m = metrics.clone();
        std::thread::spawn(move || handle(stream, &m));
    }
}

fn handle(mut stream: TcpStream, metrics: &Metrics) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // The request line and headers; anything past 8 KiB is not a scrape.
    let mut buf = [0u8; 8192];
    let mut n = 0;
    while n < buf.len() {
        match stream.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                n += k;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        "/health/live" | "/health/ready" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/" => ("200 OK", "text/plain", "lantern-mirror: metrics at /metrics\n".to_string()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
}
