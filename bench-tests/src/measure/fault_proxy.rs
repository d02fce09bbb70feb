//! A TCP fault proxy, as toxiproxy does it, for the network-fault scenarios: workers and producers
//! talk to the broker through it, and the scenario switches faults on and off while tasks flow.
//!
//! [`FaultProxy::start`] listens on a free port of 127.0.0.1 and forwards every accepted connection
//! to one upstream address, both directions. Faults can be switched at any time:
//! - [`FaultProxy::set_latency`]: each forwarded chunk is held for this long after it was read,
//!   in both directions (a round trip pays it twice); chunks are not serialized behind each other.
//! - [`FaultProxy::cut_all`]: every current connection is shut down at once; clients see EOF.
//! - [`FaultProxy::blackhole`]: while on, connections are accepted and kept open, but every byte
//!   is read and dropped (nothing is forwarded either way); off again, new data flows.
//!
//! [`FaultProxy::counters`] says what went through. Dropping the proxy stops its listener and every
//! connection; all its threads are joined, each join bounded.
//!
//! Plain std threads: one for the listener, per connection one that connects upstream and then
//! runs four scoped pump threads (a reader and a delayed writer per direction). Every blocking call
//! has a timeout so that flags (stop, cut) are seen within [`POLL`].

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How often blocked reads, writes, accepts and delays look at the stop and cut flags.
const POLL: Duration = Duration::from_millis(20);
/// Timeout of a TCP connect to the upstream (at start and for each accepted connection).
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long dropping the proxy waits, in all, for its threads to end.
const DROP_JOIN_BUDGET: Duration = Duration::from_secs(3);
/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks queued per direction between reader and writer (bounds memory to CHUNK * QUEUE).
const QUEUE: usize = 64;

/// What went through the proxy since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted from clients.
    pub connections_accepted: u64,
    /// Connections open right now (accepted and not yet fully closed).
    pub connections_active: u64,
    /// Accepted connections whose upstream connect failed (the client was closed).
    pub upstream_connect_failures: u64,
    /// Bytes written to the upstream (client -> upstream).
    pub bytes_to_upstream: u64,
    /// Bytes written to clients (upstream -> client).
    pub bytes_to_client: u64,
    /// Bytes read and dropped by the black hole or by a cut (either direction).
    pub bytes_dropped: u64,
    /// Connections shut down by `cut_all`.
    pub connections_cut: u64,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    blackhole: AtomicBool,
    latency_nanos: AtomicU64,
    accepted: AtomicU64,
    active: AtomicU64,
    connect_failures: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
    dropped: AtomicU64,
    cut: AtomicU64,
    last_error: Mutex<Option<String>>,
    conns: Mutex<HashMap<u64, Conn>>,
}

/// One accepted connection, as the proxy sees it from outside its threads.
struct Conn {
    /// Set to close the connection (by `cut_all`, drop, or an error on either side).
    closing: Arc<AtomicBool>,
    /// Clones of the client and (once connected) upstream sockets, to shut them down from outside.
    streams: Arc<Mutex<Vec<TcpStream>>>,
    handle: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    fn record_error(&self, msg: String) {
        *lock(&self.last_error) = Some(msg);
    }

    /// Joins the threads of connections that have ended.
    fn reap(&self) {
        let finished: Vec<JoinHandle<()>> = {
            let mut conns = lock(&self.conns);
            let done: Vec<u64> = conns
                .iter()
                .filter(|(_, c)| c.handle.as_ref().is_none_or(|h| h.is_finished()))
                .map(|(id, _)| *id)
                .collect();
            done.into_iter()
                .filter_map(|id| conns.remove(&id).and_then(|c| c.handle))
                .collect()
        };
        for h in finished {
            let _ = h.join();
        }
    }
}

fn close_streams(closing: &AtomicBool, streams: &Mutex<Vec<TcpStream>>) {
    closing.store(true, Ordering::SeqCst);
    for s in lock(streams).iter() {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// A running fault proxy. See the module documentation.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("counters", &self.counters())
            .finish()
    }
}

impl FaultProxy {
    /// Checks that `upstream` accepts a TCP connection (one connect, closed at once), then listens
    /// on 127.0.0.1 on a free port and forwards each accepted connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<FaultProxy> {
        TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT).with_context(|| {
            format!(
                "fault proxy: upstream {upstream} is unreachable (tried one TCP connect with a \
                 {UPSTREAM_CONNECT_TIMEOUT:?} timeout)"
            )
        })?;
        Self::start_unchecked(upstream)
    }

    /// As [`FaultProxy::start`], without checking the upstream first (for an upstream that is
    /// started later). Connections accepted while it is unreachable are closed and counted in
    /// [`Counters::upstream_connect_failures`]; [`FaultProxy::last_error`] says why.
    pub fn start_unchecked(upstream: SocketAddr) -> Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .context("fault proxy: cannot bind a listener on 127.0.0.1:0")?;
        let addr = listener
            .local_addr()
            .context("fault proxy: cannot read the listener's address")?;
        listener
            .set_nonblocking(true)
            .context("fault proxy: cannot make the listener non-blocking")?;
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, upstream, s))
            .context("fault proxy: cannot spawn the listener thread")?;
        Ok(FaultProxy {
            addr,
            upstream,
            shared,
            listener: Some(handle),
        })
    }

    /// The address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Holds every chunk this long after it was read, both directions (`Duration::ZERO` for none).
    /// Applies to chunks written from now on, including those already queued.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The latency currently added.
    pub fn latency(&self) -> Duration {
        self.shared.latency()
    }

    /// Shuts down every current connection (clients see EOF); new connections are still accepted.
    /// Returns how many connections were cut.
    pub fn cut_all(&self) -> usize {
        let conns = lock(&self.shared.conns);
        let mut n = 0;
        for c in conns.values() {
            if !c.closing.load(Ordering::SeqCst) {
                n += 1;
            }
            close_streams(&c.closing, &c.streams);
        }
        self.shared.cut.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// While on, accepts connections and keeps them open but forwards nothing: every byte read,
    /// either direction, is dropped (including chunks queued when it was switched on).
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::SeqCst);
    }

    /// Whether the black hole is on.
    pub fn is_blackholed(&self) -> bool {
        self.shared.blackhole.load(Ordering::SeqCst)
    }

    /// What went through the proxy so far.
    pub fn counters(&self) -> Counters {
        let s = &self.shared;
        Counters {
            connections_accepted: s.accepted.load(Ordering::Relaxed),
            connections_active: s.active.load(Ordering::Relaxed),
            upstream_connect_failures: s.connect_failures.load(Ordering::Relaxed),
            bytes_to_upstream: s.to_upstream.load(Ordering::Relaxed),
            bytes_to_client: s.to_client.load(Ordering::Relaxed),
            bytes_dropped: s.dropped.load(Ordering::Relaxed),
            connections_cut: s.cut.load(Ordering::Relaxed),
        }
    }

    /// The last error met while accepting or forwarding (upstream unreachable, accept failure…).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + DROP_JOIN_BUDGET;
        // The listener thread owns the listening socket: once joined, connects are refused.
        if let Some(h) = self.listener.take() {
            join_bounded(h, deadline, "listener");
        }
        let handles: Vec<JoinHandle<()>> = {
            let mut conns = lock(&self.shared.conns);
            for c in conns.values() {
                close_streams(&c.closing, &c.streams);
            }
            conns.drain().filter_map(|(_, c)| c.handle).collect()
        };
        for h in handles {
            join_bounded(h, deadline, "connection");
        }
    }
}

/// Joins `h` if it ends before `deadline`; otherwise leaves it detached and says so.
fn join_bounded(h: JoinHandle<()>, deadline: Instant, what: &str) {
    while !h.is_finished() {
        if Instant::now() >= deadline {
            eprintln!("fault proxy: a {what} thread did not end in time; left detached");
            return;
        }
        thread::sleep(Duration::from_millis(2));
    }
    let _ = h.join();
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut next_id: u64 = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, peer)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                next_id += 1;
                if let Err(e) = register(next_id, client, upstream, &shared) {
                    shared.record_error(format!("fault proxy: connection from {peer}: {e:#}"));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                shared.reap();
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                shared.record_error(format!("fault proxy: accept failed: {e}"));
                thread::sleep(POLL);
            }
        }
    }
    // `listener` is dropped here, closing the port.
}

fn register(id: u64, client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) -> Result<()> {
    client.set_nonblocking(false)?;
    let _ = client.set_nodelay(true);
    let closing = Arc::new(AtomicBool::new(false));
    let streams = Arc::new(Mutex::new(vec![client.try_clone()?]));
    shared.active.fetch_add(1, Ordering::Relaxed);
    let (s, c, st) = (
        Arc::clone(shared),
        Arc::clone(&closing),
        Arc::clone(&streams),
    );
    let spawned = thread::Builder::new()
        .name(format!("fault-proxy-conn-{id}"))
        .spawn(move || {
            run_connection(client, upstream, &s, &c, &st);
            s.active.fetch_sub(1, Ordering::Relaxed);
        });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => {
            shared.active.fetch_sub(1, Ordering::Relaxed);
            return Err(e).context("cannot spawn a connection thread");
        }
    };
    lock(&shared.conns).insert(
        id,
        Conn {
            closing,
            streams,
            handle: Some(handle),
        },
    );
    Ok(())
}

fn run_connection(
    client: TcpStream,
    upstream: SocketAddr,
    shared: &Shared,
    closing: &AtomicBool,
    streams: &Mutex<Vec<TcpStream>>,
) {
    let up = match TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) {
        Ok(up) => up,
        Err(e) => {
            shared.connect_failures.fetch_add(1, Ordering::Relaxed);
            shared.record_error(format!(
                "fault proxy: upstream {upstream} is unreachable (TCP connect with a \
                 {UPSTREAM_CONNECT_TIMEOUT:?} timeout): {e}; client connection closed"
            ));
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let clones = (|| -> std::io::Result<_> {
        lock(streams).push(up.try_clone()?);
        Ok((client.try_clone()?, up.try_clone()?))
    })();
    let (client_w, up_w) = match clones {
        Ok(c) => c,
        Err(e) => {
            shared.record_error(format!("fault proxy: cannot clone a socket: {e}"));
            close_streams(closing, streams);
            return;
        }
    };
    // A cut that came while connecting did not see the upstream socket: honour it now.
    if closing.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
        close_streams(closing, streams);
        return;
    }
    for s in [&client, &up] {
        let _ = s.set_read_timeout(Some(POLL));
    }
    for s in [&client_w, &up_w] {
        let _ = s.set_write_timeout(Some(POLL));
    }
    let ctx = PumpCtx {
        shared,
        closing,
        streams,
    };
    thread::scope(|scope| {
        let (tx_up, rx_up) = mpsc::sync_channel(QUEUE);
        let (tx_cl, rx_cl) = mpsc::sync_channel(QUEUE);
        let ctx = &ctx;
        scope.spawn(move || ctx.read_side(client, tx_up));
        scope.spawn(move || ctx.write_side(up_w, rx_up, &shared.to_upstream));
        scope.spawn(move || ctx.read_side(up, tx_cl));
        scope.spawn(move || ctx.write_side(client_w, rx_cl, &shared.to_client));
    });
    close_streams(closing, streams);
}

struct PumpCtx<'a> {
    shared: &'a Shared,
    closing: &'a AtomicBool,
    streams: &'a Mutex<Vec<TcpStream>>,
}

impl PumpCtx<'_> {
    fn done(&self) -> bool {
        self.closing.load(Ordering::SeqCst) || self.shared.stop.load(Ordering::SeqCst)
    }

    fn drop_bytes(&self, n: usize) {
        self.shared.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads chunks from `src` and queues them with the instant they were read, until EOF (then
    /// the writer half-closes its side) or the connection closes.
    fn read_side(&self, mut src: TcpStream, tx: mpsc::SyncSender<(Instant, Vec<u8>)>) {
        let mut buf = vec![0u8; CHUNK];
        while !self.done() {
            match src.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if self.shared.blackhole.load(Ordering::SeqCst) {
                        self.drop_bytes(n);
                        continue;
                    }
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        // The writer has ended (its side failed): nothing more to forward.
                        self.drop_bytes(n);
                        return;
                    }
                }
                Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    close_streams(self.closing, self.streams);
                    return;
                }
            }
        }
    }

    /// Writes queued chunks to `dst`, each once its latency has passed.
    fn write_side(
        &self,
        mut dst: TcpStream,
        rx: mpsc::Receiver<(Instant, Vec<u8>)>,
        counter: &AtomicU64,
    ) {
        loop {
            if self.done() {
                return;
            }
            let (read_at, chunk) = match rx.recv_timeout(POLL) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    // The other side sent EOF and everything was forwarded: pass the half-close on.
                    let _ = dst.shutdown(Shutdown::Write);
                    return;
                }
            };
            // Hold the chunk until read_at + latency (latency read as it goes, so changes apply).
            loop {
                if self.done() {
                    self.drop_bytes(chunk.len());
                    return;
                }
                let due = read_at + self.shared.latency();
                let now = Instant::now();
                if now >= due {
                    break;
                }
                thread::sleep((due - now).min(POLL));
            }
            if self.shared.blackhole.load(Ordering::SeqCst) {
                self.drop_bytes(chunk.len());
                continue;
            }
            let mut off = 0;
            while off < chunk.len() {
                if self.done() {
                    self.drop_bytes(chunk.len() - off);
                    return;
                }
                match dst.write(&chunk[off..]) {
                    Ok(0) => {
                        close_streams(self.closing, self.streams);
                        return;
                    }
                    Ok(n) => {
                        off += n;
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        close_streams(self.closing, self.streams);
                        return;
                    }
                }
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP echo server on 127.0.0.1:0; its threads end when the test process does.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn client(proxy: &FaultProxy) -> TcpStream {
        let s = TcpStream::connect_timeout(&proxy.addr(), Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        got
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn bytes_pass_through_unchanged() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut s = client(&proxy);
        assert_eq!(round_trip(&mut s, b"hello"), b"hello");
        // A payload larger than one chunk, every byte value.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let writer = {
            let mut w = s.try_clone().unwrap();
            let big = big.clone();
            thread::spawn(move || w.write_all(&big).unwrap())
        };
        let mut got = vec![0u8; big.len()];
        s.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == big, "payload changed in transit");
        let total = 5 + big.len() as u64;
        wait_until("counters", || {
            let c = proxy.counters();
            c.bytes_to_upstream == total && c.bytes_to_client == total
        });
        let c = proxy.counters();
        assert_eq!(c.connections_accepted, 1);
        assert_eq!(c.connections_active, 1);
        assert_eq!(c.bytes_dropped, 0);
    }

    #[test]
    fn added_latency_shows_in_round_trip() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut s = client(&proxy);
        round_trip(&mut s, b"warm");
        let latency = Duration::from_millis(150);
        proxy.set_latency(latency);
        assert_eq!(proxy.latency(), latency);
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"ping"), b"ping");
        let rtt = t.elapsed();
        // Paid once each way.
        assert!(rtt >= 2 * latency, "round trip {rtt:?} < 2 x {latency:?}");
        assert!(
            rtt < 2 * latency + Duration::from_secs(1),
            "round trip {rtt:?} too long"
        );
        proxy.set_latency(Duration::ZERO);
        let t = Instant::now();
        round_trip(&mut s, b"fast");
        assert!(
            t.elapsed() < latency,
            "latency still applied: {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn cut_all_closes_client_connections_promptly() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut a = client(&proxy);
        let mut b = client(&proxy);
        round_trip(&mut a, b"a");
        round_trip(&mut b, b"b");
        let t = Instant::now();
        assert_eq!(proxy.cut_all(), 2);
        for s in [&mut a, &mut b] {
            let mut buf = [0u8; 8];
            match s.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => panic!("read {n} bytes after cut"),
                Err(e) => assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ),
                    "expected EOF or reset, got {e}"
                ),
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "cut took {:?}",
            t.elapsed()
        );
        assert_eq!(proxy.counters().connections_cut, 2);
        wait_until("cut connections to end", || {
            proxy.counters().connections_active == 0
        });
        // New connections still work.
        let mut c = client(&proxy);
        assert_eq!(round_trip(&mut c, b"again"), b"again");
    }

    #[test]
    fn blackhole_drops_bytes_then_flow_resumes() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let mut s = client(&proxy);
        round_trip(&mut s, b"before");
        proxy.blackhole(true);
        assert!(proxy.is_blackholed());
        s.write_all(b"lost").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 16];
        let err = s
            .read(&mut buf)
            .expect_err("read should time out in the black hole");
        assert!(is_timeout(&err), "expected a timeout, got {err}");
        // A connection accepted during the black hole stays open and silent too.
        let mut fresh = client(&proxy);
        fresh
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        fresh.write_all(b"x").unwrap();
        let err = fresh
            .read(&mut buf)
            .expect_err("fresh read should time out");
        assert!(is_timeout(&err), "expected a timeout, got {err}");
        wait_until("dropped bytes", || proxy.counters().bytes_dropped >= 5);

        proxy.blackhole(false);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(round_trip(&mut s, b"after"), b"after");
        assert_eq!(round_trip(&mut fresh, b"after2"), b"after2");
    }

    #[test]
    fn drop_closes_listener_and_connections() {
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let addr = proxy.addr();
        let mut s = client(&proxy);
        round_trip(&mut s, b"hi");
        let t = Instant::now();
        drop(proxy);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "drop took {:?}",
            t.elapsed()
        );
        let err = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .expect_err("connect after drop should fail");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        let mut buf = [0u8; 4];
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("read {n} bytes after drop"),
            Err(e) => assert!(!is_timeout(&e), "connection left open after drop: {e}"),
        }
    }

    #[test]
    fn unreachable_upstream_is_a_clear_error() {
        // A port that was free a moment ago: nothing listens there.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = FaultProxy::start(addr).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&addr.to_string()), "{msg}");
        assert!(
            msg.contains("unreachable") && msg.contains("TCP connect"),
            "{msg}"
        );

        let proxy = FaultProxy::start_unchecked(addr).unwrap();
        let mut s = client(&proxy);
        let mut buf = [0u8; 4];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
        wait_until("connect failure", || {
            proxy.counters().upstream_connect_failures == 1
        });
        let last = proxy.last_error().unwrap();
        assert!(last.contains(&addr.to_string()), "{last}");
    }

    #[test]
    fn redis_through_proxy() {
        let redis_addr: SocketAddr = "127.0.0.1:6379".parse().unwrap();
        let proxy = FaultProxy::start(redis_addr)
            .expect("this test needs the machine's Redis at 127.0.0.1:6379");
        let url = format!("redis://{}/", proxy.addr());
        let client = redis::Client::open(url.as_str()).unwrap();
        let timeout = Duration::from_secs(2);
        let mut conn = client.get_connection_with_timeout(timeout).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
        assert_eq!(pong, "PONG");

        proxy.blackhole(true);
        let t = Instant::now();
        let res: redis::RedisResult<String> = redis::cmd("PING").query(&mut conn);
        assert!(res.is_err(), "PING went through the black hole: {res:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

        proxy.blackhole(false);
        let mut fresh = client.get_connection_with_timeout(timeout).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let pong: String = redis::cmd("PING").query(&mut fresh).unwrap();
        assert_eq!(pong, "PONG");
        assert!(proxy.counters().connections_accepted >= 2);
    }
}
