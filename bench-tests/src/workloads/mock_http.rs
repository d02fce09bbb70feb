//! The mock HTTP server of the I/O scenarios: `GET /users/{id}?latency=ms` answers after
//! the given delay, keep-alive, on a free loopback port; it counts requests so a run can
//! check that every task really made its call.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    latency: Option<u64>,
}

pub struct MockHttpServer {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockHttpServer {
    /// Starts the server on 127.0.0.1 on a free port, on a runtime thread of its own.
    pub fn start() -> Result<MockHttpServer> {
        let requests = Arc::new(AtomicU64::new(0));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the mock HTTP server")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let counter = requests.clone();
        let thread = std::thread::Builder::new()
            .name("mock-http".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let app = Router::new()
                        .route("/users/{id}", get(user))
                        .with_state(counter);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop.await;
                        })
                        .await;
                });
            })?;
        Ok(MockHttpServer {
            addr,
            requests,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for MockHttpServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn user(
    Path(id): Path<u64>,
    Query(params): Query<Params>,
    State(requests): State<Arc<AtomicU64>>,
) -> Json<serde_json::Value> {
    if let Some(ms) = params.latency.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    requests.fetch_add(1, Ordering::SeqCst);
    Json(
        serde_json::json!({"id": id, "name": format!("user {id}"), "email": format!("user{id}@example.com")}),
    )
}

/// The server's own cost: `concurrency` keep-alive clients each make `per_client` requests
/// with `latency_ms` injected; returns the median time above the injected latency, in µs
/// (the median, so one request delayed by the machine's scheduler does not count as cost).
pub fn overhead_us(
    server: &MockHttpServer,
    concurrency: usize,
    per_client: usize,
    latency_ms: u64,
) -> Result<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = server.addr;
    runtime.block_on(async move {
        let mut clients = Vec::new();
        for client in 0..concurrency {
            clients.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await?;
                tokio::spawn(conn);
                // Spread the clients over one latency period, as a steady load at this
                // concurrency is: started together, all responses would land in one tick and
                // the last would wait for the other 99 (a burst, not the server's cost).
                let offset_us = client as u64 * latency_ms * 1000 / concurrency as u64;
                tokio::time::sleep(Duration::from_micros(offset_us)).await;
                let mut times = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let uri = format!("/users/{}?latency={latency_ms}", client * per_client + i);
                    let request = hyper::Request::get(uri)
                        .header("host", "mock")
                        .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
                    let started = Instant::now();
                    let response = sender.send_request(request).await?;
                    let _ = http_body_util::BodyExt::collect(response.into_body()).await?;
                    times.push(started.elapsed());
                }
                anyhow::Ok(times)
            }));
        }
        let mut times = Vec::new();
        for client in clients {
            times.extend(client.await??);
        }
        times.sort();
        let median = times[times.len() / 2].as_secs_f64();
        Ok((median - latency_ms as f64 / 1000.0) * 1e6)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_after_the_injected_latency_and_counts() {
        let server = MockHttpServer::start().unwrap();
        let overhead = overhead_us(&server, 4, 5, 20).unwrap();
        assert_eq!(server.requests(), 20);
        assert!(
            overhead >= 0.0,
            "a request cannot take less than its injected latency: {overhead} us"
        );
    }
}
