//! An open-loop HTTP/1.1 load generator: request `i` is due at `start + i / rate` and is
//! sent then, whatever happened to the requests before it, on a free keep-alive
//! connection or a new one. Its latency runs from that due (intended) time to the last
//! byte of its response, so a server that falls behind shows as latency instead of being
//! hidden by a client that waits for it (no coordinated omission). A request sent after
//! its due time is counted late (it waited for the timer or for a connection); one that
//! fails or times out is counted dropped, with why.
//!
//! The schedule runs on the calling thread with `std::thread::sleep` (high-resolution
//! timers: tens of µs late, where tokio's timer wheel rounds to the next millisecond) and
//! hands each request to a one-thread tokio runtime that owns the connections.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::Method;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

/// Bytes of a response body kept for the caller's checks (a small JSON answer).
const BODY_KEPT: usize = 512;
/// The first request is due this long after the warm connections are up.
const LEAD: Duration = Duration::from_millis(20);

/// One request of the schedule.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path and query, e.g. `/dispatch/7?intended_ns=...`.
    pub path: String,
}

/// What to call once, right after the request of slot `at_slot` was handed to the client
/// (e.g. SIGTERM to the server, with requests still coming).
pub struct Interrupt {
    pub at_slot: usize,
    pub action: Box<dyn FnOnce() + Send>,
}

/// A run of the generator.
pub struct Plan {
    pub addr: SocketAddr,
    /// Requests per second, over every slot.
    pub rate: f64,
    pub slots: usize,
    /// The request of slot `i`, given its intended send time (unix ns).
    pub request: Arc<dyn Fn(usize, u64) -> Request + Send + Sync>,
    /// Connections opened (each with one `GET warm_path`, which must answer 200) before the
    /// first request is due.
    pub warm_connections: usize,
    pub warm_path: String,
    /// At most this many requests in flight (one per connection); a request due while all
    /// are busy waits for one, and is late.
    pub max_connections: usize,
    /// From the moment a request is sent to its last response byte.
    pub timeout: Duration,
    /// Sent this long or more after its due time: late.
    pub late_after: Duration,
    pub interrupt: Option<Interrupt>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection: the server was not listening.
    Refused,
    /// The connection closed (or reset) before the response was complete.
    Closed,
    /// No complete response within the plan's timeout.
    Timeout,
    Other,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The body's first bytes.
    pub body: Vec<u8>,
    /// From the intended send time to the response's last byte.
    pub latency: Duration,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// What happened to one slot. Times are offsets from the schedule's start.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub slot: usize,
    pub intended_unix_ns: u64,
    pub due: Duration,
    /// When it was written (after a connection was free), at or after `due`.
    pub sent: Duration,
    /// When its response completed or it failed.
    pub done: Duration,
    pub result: std::result::Result<Answer, Failure>,
}

impl Outcome {
    pub fn lateness(&self) -> Duration {
        self.sent.saturating_sub(self.due)
    }

    /// Answered with status 200.
    pub fn ok(&self) -> Option<&Answer> {
        self.result.as_ref().ok().filter(|a| a.status == 200)
    }
}

/// Everything the generator observed.
#[derive(Debug, Clone)]
pub struct Report {
    pub rate: f64,
    /// The schedule's start (slot 0 is due then), unix ns.
    pub start_unix_ns: u64,
    /// In slot order.
    pub outcomes: Vec<Outcome>,
    /// Connections opened after the warm ones (while the schedule ran).
    pub connections_opened: usize,
    /// When the interrupt ran (None: no interrupt, or its slot was beyond the schedule).
    pub interrupted_at: Option<Duration>,
    pub late_after: Duration,
}

/// Counts and latency over a selection of outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub requests: usize,
    /// Answered 200.
    pub ok: usize,
    /// Answered with another status.
    pub bad_status: usize,
    pub refused: usize,
    pub closed: usize,
    pub timeouts: usize,
    pub other_failures: usize,
    /// Sent `late_after` or more after their due time.
    pub late: usize,
    pub lateness_p99: Duration,
    pub lateness_max: Duration,
    /// Of the 200 answers, from intended time (None: no answer).
    pub latency: Option<Latency>,
    /// Requests actually sent per second: the selection's count over the span of its send
    /// times (one per period between the first and the last), None below two requests.
    pub sent_rate: Option<f64>,
}

impl Stats {
    /// Requests that got no 200 answer.
    pub fn dropped(&self) -> usize {
        self.requests - self.ok
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

/// Nearest-rank quantile of sorted values: the smallest value with at least `q` of the
/// values at or below it.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    /// Counts and latency of the outcomes `keep` selects.
    pub fn stats(&self, keep: impl Fn(&Outcome) -> bool) -> Stats {
        let chosen: Vec<&Outcome> = self.outcomes.iter().filter(|o| keep(o)).collect();
        let count = |kind| {
            chosen
                .iter()
                .filter(|o| matches!(&o.result, Err(f) if f.kind == kind))
                .count()
        };
        let mut lateness: Vec<Duration> = chosen.iter().map(|o| o.lateness()).collect();
        lateness.sort();
        let mut latency: Vec<Duration> = chosen
            .iter()
            .filter_map(|o| o.ok().map(|a| a.latency))
            .collect();
        latency.sort();
        let sent_rate = match (
            chosen.iter().map(|o| o.sent).min(),
            chosen.iter().map(|o| o.sent).max(),
        ) {
            (Some(first), Some(last)) if chosen.len() >= 2 && last > first => {
                Some((chosen.len() - 1) as f64 / (last - first).as_secs_f64())
            }
            _ => None,
        };
        Stats {
            requests: chosen.len(),
            ok: latency.len(),
            bad_status: chosen
                .iter()
                .filter(|o| matches!(&o.result, Ok(a) if a.status != 200))
                .count(),
            refused: count(FailureKind::Refused),
            closed: count(FailureKind::Closed),
            timeouts: count(FailureKind::Timeout),
            other_failures: count(FailureKind::Other),
            late: lateness.iter().filter(|l| **l >= self.late_after).count(),
            lateness_p99: quantile(&lateness, 0.99),
            lateness_max: lateness.last().copied().unwrap_or_default(),
            latency: (!latency.is_empty()).then(|| Latency {
                p50: quantile(&latency, 0.50),
                p99: quantile(&latency, 0.99),
                max: *latency.last().expect("not empty"),
                mean: latency.iter().sum::<Duration>() / latency.len() as u32,
            }),
            sent_rate,
        }
    }

    /// Due before the interrupt's slot, and still unanswered when it ran.
    pub fn in_flight_at_interrupt(&self, at_slot: usize) -> usize {
        let Some(at) = self.interrupted_at else {
            return 0;
        };
        self.outcomes
            .iter()
            .filter(|o| o.slot <= at_slot && o.sent <= at && o.done > at)
            .count()
    }
}

/// Keep-alive connections, used in turn (first in, first out) so none idles long enough
/// for the server to close it under a request.
struct Pool {
    addr: SocketAddr,
    idle: Mutex<VecDeque<SendRequest<Empty<Bytes>>>>,
    opened: AtomicUsize,
}

impl Pool {
    async fn take(&self) -> std::result::Result<SendRequest<Empty<Bytes>>, Failure> {
        loop {
            let next = self.idle.lock().expect("pool").pop_front();
            let Some(mut sender) = next else { break };
            if sender.is_closed() {
                continue;
            }
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> std::result::Result<SendRequest<Empty<Bytes>>, Failure> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| Failure {
                kind: match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => FailureKind::Refused,
                    std::io::ErrorKind::ConnectionReset => FailureKind::Closed,
                    _ => FailureKind::Other,
                },
                message: format!("connecting to {}: {e}", self.addr),
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failure(&e))?;
        tokio::spawn(conn);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }

    fn give_back(&self, sender: SendRequest<Empty<Bytes>>) {
        if !sender.is_closed() {
            self.idle.lock().expect("pool").push_back(sender);
        }
    }
}

fn failure(e: &hyper::Error) -> Failure {
    let io_kind = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let kind = if e.is_incomplete_message()
        || e.is_canceled()
        || e.is_closed()
        || matches!(
            io_kind,
            Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        ) {
        FailureKind::Closed
    } else {
        FailureKind::Other
    };
    Failure {
        kind,
        message: e.to_string(),
    }
}

/// Sends one request on a connection of the pool; returns when it was written and the
/// result.
async fn exchange(
    pool: &Pool,
    request: &Request,
    host: &str,
    timeout: Duration,
    due: Instant,
) -> (Instant, std::result::Result<Answer, Failure>) {
    let sender = match pool.take().await {
        Ok(sender) => sender,
        Err(f) => return (Instant::now(), Err(f)),
    };
    let mut sender = sender;
    let sent = Instant::now();
    let built = hyper::Request::builder()
        .method(request.method.clone())
        .uri(request.path.as_str())
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new());
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            return (
                sent,
                Err(Failure {
                    kind: FailureKind::Other,
                    message: format!("building {} {}: {e}", request.method, request.path),
                }),
            )
        }
    };
    let response = async {
        let response = sender.send_request(built).await.map_err(|e| failure(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failure(&e))?
            .to_bytes();
        let latency = Instant::now().saturating_duration_since(due);
        Ok(Answer {
            status,
            body: body[..body.len().min(BODY_KEPT)].to_vec(),
            latency,
        })
    };
    match tokio::time::timeout(timeout, response).await {
        Ok(result) => {
            if result.is_ok() {
                pool.give_back(sender);
            }
            (sent, result)
        }
        // The connection is dropped with its request: its late answer must not reach the
        // next request.
        Err(_) => (
            sent,
            Err(Failure {
                kind: FailureKind::Timeout,
                message: format!("no complete response within {timeout:?}"),
            }),
        ),
    }
}

/// Runs `plan` to its end: every slot sent (or waiting for a connection) on schedule,
/// then every request answered, failed or timed out. Errors only when the warm
/// connections cannot be made (the server is not answering).
pub fn run(plan: Plan) -> Result<Report> {
    if !(plan.rate.is_finite() && plan.rate > 0.0) {
        bail!("load generator: rate {} is not above 0", plan.rate);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    let pool = Arc::new(Pool {
        addr: plan.addr,
        idle: Mutex::new(VecDeque::new()),
        opened: AtomicUsize::new(0),
    });
    let host = Arc::new(plan.addr.to_string());
    let permits = Arc::new(Semaphore::new(plan.max_connections.max(1)));

    // Warm connections, each checked with one request, before the clock starts.
    runtime.block_on(async {
        let mut warm = Vec::new();
        for _ in 0..plan.warm_connections {
            let (pool, host, path) = (pool.clone(), host.clone(), plan.warm_path.clone());
            warm.push(tokio::spawn(async move {
                let mut sender = pool.connect().await.map_err(|f| f.message)?;
                let request = hyper::Request::get(path.as_str())
                    .header(hyper::header::HOST, host.as_str())
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                let response =
                    tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
                        .await
                        .map_err(|_| format!("GET {path}: no answer within 10 s"))?
                        .map_err(|e| e.to_string())?;
                let status = response.status();
                let _ = response.into_body().collect().await;
                if status != 200 {
                    return Err(format!("GET {path} answered {status}"));
                }
                sender.ready().await.map_err(|e| e.to_string())?;
                pool.give_back(sender);
                std::result::Result::<(), String>::Ok(())
            }));
        }
        for task in warm {
            if let Err(e) = task.await.context("a warm-up connection")? {
                bail!("load generator: warming a connection to {}: {e}", plan.addr);
            }
        }
        anyhow::Ok(())
    })?;
    pool.opened.store(0, Ordering::Relaxed);

    let start = Instant::now() + LEAD;
    let start_unix_ns = crate::measure::clock::unix_ns() + LEAD.as_nanos() as u64;
    let period_ns = 1e9 / plan.rate;
    let mut interrupt = plan.interrupt;
    let mut interrupted_at = None;
    let mut tasks = Vec::with_capacity(plan.slots);
    for slot in 0..plan.slots {
        let offset = Duration::from_nanos((slot as f64 * period_ns).round() as u64);
        let due = start + offset;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let intended_unix_ns = start_unix_ns + offset.as_nanos() as u64;
        let request = (plan.request)(slot, intended_unix_ns);
        let (pool, host, permits) = (pool.clone(), host.clone(), permits.clone());
        let timeout = plan.timeout;
        tasks.push(runtime.spawn(async move {
            // One request per connection at a time: wait for a free one (that is lateness).
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            let (sent, result) = exchange(&pool, &request, &host, timeout, due).await;
            Outcome {
                slot,
                intended_unix_ns,
                due: offset,
                sent: sent.saturating_duration_since(start),
                done: Instant::now().saturating_duration_since(start),
                result,
            }
        }));
        if interrupt.as_ref().is_some_and(|i| i.at_slot == slot) {
            let action = interrupt.take().expect("checked").action;
            action();
            interrupted_at = Some(Instant::now().saturating_duration_since(start));
        }
    }
    // Each request is bounded by its timeout once it has a connection; waiting for one is
    // bounded by the requests ahead of it, each bounded the same way.
    let outcomes = runtime.block_on(async {
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.context("a request task of the load generator")?);
        }
        anyhow::Ok(outcomes)
    })?;
    let connections_opened = pool.opened.load(Ordering::Relaxed);
    drop(pool);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(Report {
        rate: plan.rate,
        start_unix_ns,
        outcomes,
        connections_opened,
        interrupted_at,
        late_after: plan.late_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::mock_http::MockHttpServer;

    fn get_users(latency_ms: u64) -> Arc<dyn Fn(usize, u64) -> Request + Send + Sync> {
        Arc::new(move |slot, _| Request {
            method: Method::GET,
            path: format!("/users/{slot}?latency={latency_ms}"),
        })
    }

    fn plan(server: &MockHttpServer, rate: f64, slots: usize, latency_ms: u64) -> Plan {
        Plan {
            addr: server.addr,
            rate,
            slots,
            request: get_users(latency_ms),
            warm_connections: 4,
            warm_path: "/users/0".into(),
            max_connections: 64,
            timeout: Duration::from_secs(5),
            late_after: Duration::from_millis(10),
            interrupt: None,
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(quantile(&values, 0.5), ms(50));
        assert_eq!(quantile(&values, 0.99), ms(99));
        assert_eq!(quantile(&values, 1.0), ms(100));
        assert_eq!(quantile(&values[..1], 0.99), ms(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn every_slot_is_sent_on_schedule_and_answered_once() {
        let server = MockHttpServer::start().unwrap();
        let (rate, slots, latency_ms) = (200.0, 100, 5);
        let report = run(plan(&server, rate, slots, latency_ms)).unwrap();
        // The 4 warm-up requests, then exactly one per slot.
        assert_eq!(server.requests(), 4 + slots as u64);
        assert_eq!(report.outcomes.len(), slots);
        let period = Duration::from_secs_f64(1.0 / rate);
        for (i, o) in report.outcomes.iter().enumerate() {
            assert_eq!(o.slot, i);
            // Due at start + i/rate (to the rounded ns), never sent before that.
            assert!(
                o.due.abs_diff(period * i as u32) <= Duration::from_micros(1),
                "{o:?}"
            );
            assert!(o.sent >= o.due, "{o:?}");
            let answer = o.ok().unwrap_or_else(|| panic!("{o:?}"));
            // The server sleeps before answering: no latency can be below that.
            assert!(answer.latency >= Duration::from_millis(latency_ms), "{o:?}");
            assert!(
                answer.latency
                    >= o.done
                        .saturating_sub(o.due)
                        .saturating_sub(Duration::from_millis(1)),
                "latency runs from the due time: {o:?}"
            );
            let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(body["id"], i as u64);
        }
        assert_eq!(
            report.outcomes[1].intended_unix_ns - report.outcomes[0].intended_unix_ns,
            5_000_000
        );
        let stats = report.stats(|_| true);
        assert_eq!(
            (stats.requests, stats.ok, stats.dropped()),
            (slots, slots, 0)
        );
        let latency = stats.latency.unwrap();
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        assert!(stats.sent_rate.unwrap() > 0.0);
    }

    /// One connection, a 50 ms server, a request due every 10 ms: each request waits for
    /// the ones before it. Measured from its due time, request i takes at least
    /// (i + 1) * 50 ms - i * 10 ms; a closed-loop client would report about 50 ms each.
    #[test]
    fn latency_counts_the_wait_behind_a_slow_server() {
        let server = MockHttpServer::start().unwrap();
        let mut p = plan(&server, 100.0, 8, 50);
        p.warm_connections = 1;
        p.max_connections = 1;
        let report = run(p).unwrap();
        for (i, o) in report.outcomes.iter().enumerate() {
            let floor = Duration::from_millis(50 * (i as u64 + 1) - 10 * i as u64);
            let answer = o.ok().unwrap_or_else(|| panic!("{o:?}"));
            assert!(
                answer.latency >= floor,
                "request {i}: {:?} < {floor:?}",
                answer.latency
            );
        }
        let stats = report.stats(|_| true);
        assert_eq!(stats.ok, 8);
        // Every request after the first waited at least 40 ms for the connection.
        assert!(stats.late >= 7, "{stats:?}");
        assert!(
            stats.lateness_max >= Duration::from_millis(7 * 40),
            "{stats:?}"
        );
        assert_eq!(
            report.connections_opened, 0,
            "the one warm connection served all"
        );
    }

    #[test]
    fn timeouts_and_refusals_are_dropped_not_latency() {
        let server = MockHttpServer::start().unwrap();
        let mut p = plan(&server, 50.0, 6, 0);
        p.timeout = Duration::from_millis(100);
        // Odd slots ask for 400 ms: they time out at 100 ms.
        p.request = Arc::new(|slot, _| Request {
            method: Method::GET,
            path: format!(
                "/users/{slot}?latency={}",
                if slot % 2 == 1 { 400 } else { 0 }
            ),
        });
        let report = run(p).unwrap();
        let stats = report.stats(|_| true);
        assert_eq!(
            (stats.ok, stats.timeouts, stats.dropped()),
            (3, 3, 3),
            "{stats:?}"
        );
        assert!(
            stats.latency.unwrap().max < Duration::from_millis(100),
            "{stats:?}"
        );

        // A port nobody listens on: the warm-up fails with a clear error...
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let mut p = plan(&server, 50.0, 4, 0);
        p.addr = addr;
        let err = run(p).unwrap_err().to_string();
        assert!(err.contains("warming a connection"), "{err}");
        // ...and without warm-up every request is refused, none answered.
        let mut p = plan(&server, 50.0, 4, 0);
        p.addr = addr;
        p.warm_connections = 0;
        let stats = run(p).unwrap().stats(|_| true);
        assert_eq!((stats.refused, stats.ok), (4, 0), "{stats:?}");
        assert!(stats.latency.is_none());
    }

    #[test]
    fn the_interrupt_runs_once_at_its_slot() {
        let server = MockHttpServer::start().unwrap();
        let mut p = plan(&server, 100.0, 20, 30);
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        p.interrupt = Some(Interrupt {
            at_slot: 9,
            action: Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        });
        let report = run(p).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let at = report.interrupted_at.unwrap();
        // After slot 9 was handed over (due at 90 ms), before slot 10 was sent.
        assert!(at >= report.outcomes[9].due, "{at:?}");
        assert!(at < report.outcomes[10].sent, "{at:?}");
        // Slots 7 and 8 left within the 30 ms before it, and take 30 ms to answer.
        assert!(report.in_flight_at_interrupt(9) >= 1);
    }
}
