//! Scenario 2, io: one HTTP GET per task to the harness's mock server with injected
//! latency, at several concurrencies. A run is valid only if the server answered exactly
//! one request per task.

use std::path::Path;

use anyhow::Result;

use super::mock_http::MockHttpServer;
use super::{Case, Finished, RunPart, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::result::Metrics;
use crate::systems::{System, Variant};

pub struct Io;

impl Workload for Io {
    fn name(&self) -> &'static str {
        "io"
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let sizes = &profile.io;
        let mut cases = Vec::new();
        for &concurrency in &sizes.concurrency {
            for variant in [
                Variant::new(System::ASYNCTASQ, "asyncio", concurrency),
                Variant::new(System::CELERY, "threads", concurrency),
            ] {
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
