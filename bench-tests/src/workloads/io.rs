//! Scenario 2, io: one HTTP GET per task to the harness's mock server with injected
//! latency, at several concurrencies. A run is valid only if the server answered exactly
//! one request per task.
//!
//! The HTTP client is its own variant option (`http`), so it is not confounded with the
//! queue: AsyncTasQ with aiohttp and httpx; Celery threads with requests and httpx, and
//! gevent and eventlet (the pools Celery users pick for I/O) with requests. Celery acks late,
//! at AsyncTasQ's at-least-once.

use std::path::Path;

use anyhow::Result;

use super::mock_http::MockHttpServer;
use super::{Case, Finished, RunPart, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::result::Metrics;
use crate::systems::{celery, System, Variant};

pub struct Io;

impl Workload for Io {
    fn name(&self) -> &'static str {
        "io"
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let sizes = &profile.io;
        let mut cases = Vec::new();
        for &concurrency in &sizes.concurrency {
            for variant in variants(concurrency) {
                let mut case = Case::new(
                    self.name(),
                    driver,
                    variant,
                    "io_fetch",
                    sizes.task_count,
                    profile,
                );
                case.http_latency_ms = Some(sizes.latency_ms);
                cases.push(case);
            }
        }
        cases
    }

    fn start_run(&self, case: &Case, _dir: &Path) -> Result<Box<dyn RunPart>> {
        Ok(Box::new(HttpService::start(case, case.task_count)?))
    }
}

/// Each system's pools with each HTTP client they are measured with, at `concurrency`.
pub fn variants(concurrency: u32) -> Vec<Variant> {
    let asynctasq =
        |client| Variant::new(System::ASYNCTASQ, "asyncio", concurrency).with("http", client);
    let celery = |pool, client| celery::acking_late(pool, concurrency).with("http", client);
    vec![
        asynctasq("aiohttp"),
        asynctasq("httpx"),
        celery("threads", "requests"),
        celery("threads", "httpx"),
        celery("gevent", "requests"),
        celery("eventlet", "requests"),
    ]
}

/// The mock HTTP server of one run and the number of requests its tasks must make.
pub struct HttpService {
    server: MockHttpServer,
    latency_ms: u64,
    pub expected_requests: u64,
}

impl HttpService {
    pub fn start(case: &Case, expected_requests: u64) -> Result<HttpService> {
        Ok(HttpService {
            server: MockHttpServer::start()?,
            latency_ms: case.http_latency_ms.unwrap_or(100),
            expected_requests,
        })
    }

    pub fn task_env(&self) -> Vec<(String, String)> {
        vec![
            ("BENCH_HTTP_URL".into(), self.server.url()),
            ("BENCH_HTTP_LATENCY_MS".into(), self.latency_ms.to_string()),
        ]
    }

    /// Records the server's request count; a count other than expected is an error.
    pub fn check(&self, metrics: &mut Metrics) -> Vec<String> {
        let requests = self.server.requests();
        metrics.http_requests = Some(requests);
        if requests == self.expected_requests {
            Vec::new()
        } else {
            vec![format!(
                "the mock HTTP server saw {requests} requests for {} I/O tasks",
                self.expected_requests
            )]
        }
    }
}

impl RunPart for HttpService {
    fn task_env(&self) -> Vec<(String, String)> {
        HttpService::task_env(self)
    }

    fn finish(&self, _run: &Finished, metrics: &mut Metrics) -> Vec<String> {
        self.check(metrics)
    }
}
