//! A receiver for the tracing-cost runs: accepts OTLP/HTTP export requests on loopback,
//! counts them and answers each with an empty `200` (an empty protobuf message is a valid
//! `ExportTraceServiceResponse`), so the broker pays its whole export path (encoding,
//! HTTP, the batch task) and never a slow receiver. Its CPU is the bench's, not the broker's.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

/// Larger request bodies are refused (the broker's batches are far smaller).
const MAX_BODY: usize = 64 << 20;

#[derive(Default)]
pub struct SinkStats {
    pub requests: AtomicU64,
    pub body_bytes: AtomicU64,
}

pub struct OtlpSink {
    pub endpoint: String,
    pub stats: Arc<SinkStats>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl OtlpSink {
    pub fn start() -> std::io::Result<OtlpSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(SinkStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stats.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    let st = st.clone();
                    thread::spawn(move || {
                        let _ = serve(c, &st);
                    });
                }
            }
        });
        Ok(OtlpSink { endpoint: format!("http://127.0.0.1:{port}"), stats, stop, port })
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
    }
}

/// Answers the requests of one keep-alive connection until it closes.
fn serve(c: TcpStream, stats: &SinkStats) -> std::io::Result<()> {
    let mut out = c.try_clone()?;
    let mut r = BufReader::new(c);
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(usize::MAX);
                }
            }
        }
        if length > MAX_BODY {
            out.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        body.resize(length, 0);
        r.read_exact(&mut body)?;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats.body_bytes.fetch_add(length as u64, Ordering::Relaxed);
        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_request_of_a_keep_alive_connection() {
        let sink = OtlpSink::start().unwrap();
        let mut c = TcpStream::connect(sink.endpoint.trim_start_matches("http://")).unwrap();
        for body in [&b"abc"[..], b"hello world"] {
            write!(c, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
            c.write_all(body).unwrap();
            let mut answer = Vec::new();
            let mut byte = [0u8; 1];
            while !answer.ends_with(b"\r\n\r\n") {
                c.read_exact(&mut byte).unwrap();
                answer.push(byte[0]);
            }
            let answer = String::from_utf8(answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.contains("Content-Length: 0\r\n"), "{answer}");
        }
        assert_eq!(sink.stats.requests.load(Ordering::Relaxed), 2);
        assert_eq!(sink.stats.body_bytes.load(Ordering::Relaxed), 14);
    }
}
