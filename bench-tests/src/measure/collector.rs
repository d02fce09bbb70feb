//! Receives one record per finished task over a Unix socket (SOCK_SEQPACKET: one message
//! per record, one connection per task process), dedups by task sequence number and knows
//! exactly when all N distinct tasks are done.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// One task's own timestamps, as its recorder sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRecord {
    pub seq: u64,
    pub intended_ns: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub pid: u32,
    pub ok: bool,
}

impl TaskRecord {
    /// Parses `run_id seq intended_ns start_ns end_ns pid outcome`; returns the run id too.
    pub fn parse(datagram: &str) -> Option<(&str, TaskRecord)> {
        let (run_id, record) = TaskRecord::parse_bytes(datagram.as_bytes())?;
        // The run id is a prefix of valid UTF-8 ending at an ASCII byte.
        Some((&datagram[..run_id.len()], record))
    }

    /// The same on raw bytes, with plain loops: the collector parses every record, and
    /// the harness is built unoptimised, where iterator adaptors cost several times more.
    pub fn parse_bytes(datagram: &[u8]) -> Option<(&[u8], TaskRecord)> {
        let mut fields = Fields(datagram);
        let run_id = fields.next()?;
        let record = TaskRecord {
            seq: number(fields.next()?)?,
            intended_ns: number(fields.next()?)?,
            start_ns: number(fields.next()?)?,
            end_ns: number(fields.next()?)?,
            pid: u32::try_from(number(fields.next()?)?).ok()?,
            ok: fields.next()? == b"ok",
        };
        fields.next().is_none().then_some((run_id, record))
    }
}

/// ASCII-whitespace separated fields.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let bytes = self.0;
        let mut start = 0;
        while start < bytes.len() && bytes[start].is_ascii_whitespace() {
            start += 1;
        }
        let mut end = start;
        while end < bytes.len() && !bytes[end].is_ascii_whitespace() {
            end += 1;
        }
        self.0 = &bytes[end..];
        (end > start).then(|| &bytes[start..end])
    }
}

/// A decimal u64 (digits only, no overflow).
fn number(field: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    let mut i = 0;
    while i < field.len() {
        let digit = field[i].wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
        i += 1;
    }
    Some(value)
}

/// What the collector has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// First record of each distinct task, in arrival order.
    pub records: Vec<TaskRecord>,
    /// Records for a task already seen.
    pub duplicates: u64,
    /// Those records themselves (a redelivered task's second start, say).
    pub repeats: Vec<TaskRecord>,
    /// Records of another run, a sequence number out of range, or unparsable.
    pub foreign: u64,
    /// Distinct tasks whose outcome was not "ok".
    pub failed: u64,
    /// Records the task-side recorders could not send (their per-process counts, read at
    /// `finish`): a measurement error, since those tasks look lost.
    pub unsent: u64,
}

/// The records and the bitmap of seen sequence numbers, behind one lock.
struct State {
    tally: Tally,
    seen: Vec<bool>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled only when every expected task has reported: the run loop is not woken per
    /// record, it polls every 100 ms for its checks anyway.
    complete: Condvar,
    /// Distinct tasks so far, readable without the lock.
    distinct: AtomicU64,
    /// When the last new task reported, in ns since `epoch` (the stall clock).
    last_progress_ns: AtomicU64,
    epoch: Instant,
    expected: u64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn since_progress(&self) -> Duration {
        Duration::from_nanos(
            self.now_ns()
                .saturating_sub(self.last_progress_ns.load(Ordering::Acquire)),
        )
    }
}

/// Why waiting for completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    Complete,
    TimedOut,
    Stalled,
}

/// How often `wait_all` runs its check when nothing completes the run.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

pub struct Collector {
    socket_path: PathBuf,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
}

/// Where recorders write their per-process count of records they could not send: beside
/// the socket, so every process that knows the socket finds it (see recorder.py).
pub fn unsent_dir(socket_path: &Path) -> PathBuf {
    let mut name = socket_path.as_os_str().to_owned();
    name.push(".unsent");
    PathBuf::from(name)
}

impl Collector {
    /// Binds the socket at `socket_path` and starts receiving records for `run_id`,
    /// expecting task sequence numbers `0..expected`.
    pub fn bind(socket_path: &Path, run_id: &str, expected: u64) -> Result<Collector> {
        let _ = std::fs::remove_file(socket_path);
        let unsent = unsent_dir(socket_path);
        let _ = std::fs::remove_dir_all(&unsent);
        std::fs::create_dir_all(&unsent)
            .with_context(|| format!("creating {}", unsent.display()))?;
        let listener = listen(socket_path)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                tally: Tally::default(),
                seen: vec![false; expected as usize],
            }),
            complete: Condvar::new(),
            distinct: AtomicU64::new(0),
            last_progress_ns: AtomicU64::new(0),
            epoch: Instant::now(),
            expected,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let (shared, stop, run_id) = (shared.clone(), stop.clone(), run_id.to_string());
            thread::Builder::new()
                .name("collector".into())
                .spawn(move || receive_loop(listener, &run_id, &shared, &stop))?
        };
        Ok(Collector {
            socket_path: socket_path.to_path_buf(),
            shared,
            stop,
            receiver: Some(receiver),
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    pub fn distinct(&self) -> u64 {
        self.shared.distinct.load(Ordering::Acquire)
    }

    /// How long since the last new task reported (or the stall clock was reset).
    pub fn idle_for(&self) -> Duration {
        self.shared.since_progress()
    }

    /// A copy of what has arrived so far (`unsent` is read only by `finish`).
    pub fn snapshot(&self) -> Tally {
        self.shared.state.lock().expect("collector").tally.clone()
    }

    /// Waits until every expected task reported, `deadline` passes, or no new task
    /// reported for `stall`. `check` runs about every 100 ms (e.g. to see if a worker died)
    /// and aborts the wait with its error.
    pub fn wait_all(
        &self,
        deadline: Instant,
        stall: Duration,
        mut check: impl FnMut(u64) -> Result<()>,
    ) -> Result<WaitEnd> {
        let shared = &*self.shared;
        loop {
            let distinct = self.distinct();
            if distinct >= shared.expected {
                return Ok(WaitEnd::Complete);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(WaitEnd::TimedOut);
            }
            if shared.since_progress() >= stall {
                return Ok(WaitEnd::Stalled);
            }
            check(distinct)?;
            let guard = shared.state.lock().expect("collector");
            // Re-read under the lock: the receiver signals completion while holding it.
            if self.distinct() >= shared.expected {
                continue;
            }
            let wait = CHECK_INTERVAL.min(deadline.saturating_duration_since(now));
            drop(
                shared
                    .complete
                    .wait_timeout(guard, wait)
                    .expect("collector"),
            );
        }
    }

    /// Restarts the stall clock (e.g. when workers are spawned after a drain enqueue).
    pub fn reset_stall_clock(&self) {
        let now = self.shared.now_ns();
        self.shared.last_progress_ns.store(now, Ordering::Release);
    }

    /// Stops receiving (after draining what is already queued) and returns the tally,
    /// with the recorders' counts of records they could not send.
    pub fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(receiver) = self.receiver.take() {
            let _ = receiver.join();
        }
        let mut tally = std::mem::take(&mut self.shared.state.lock().expect("collector").tally);
        tally.unsent = read_unsent(&unsent_dir(&self.socket_path));
        tally
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.socket_path);
        let _ = std::fs::remove_dir_all(unsent_dir(&self.socket_path));
    }
}

/// The run's measurement error when recorders could not send some records.
pub fn unsent_error(unsent: u64) -> Option<String> {
    (unsent > 0).then(|| {
        format!(
            "measurement error: the task recorders could not send {unsent} records (the \
             collector fell behind for more than their send budget); the tasks they describe \
             may look lost, so the run is invalid"
        )
    })
}

/// Sums the recorders' per-process files. A file that cannot be read counts as one: it
/// exists only because at least one send failed.
pub fn read_unsent(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .unwrap_or(1)
        })
        .sum()
}

/// Longest record accepted; longer ones are truncated and so count as foreign.
const RECORD_MAX: usize = 512;
/// Records taken from one connection by one `recvmmsg` call.
const BATCH: usize = 256;
/// After `finish`, how long senders that never stop may keep the receiver draining.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A listening AF_UNIX SOCK_SEQPACKET socket at `path`: records keep their boundaries, and
/// each sender's connection queues up to its send buffer (bytes; the recorder raises it to
/// megabytes), where a datagram socket queues only net.unix.max_dgram_qlen records (often 10)
/// for all senders together, whatever SO_RCVBUF says.
pub fn listen(path: &Path) -> Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    let addr = unix_address(path)?;
    // SAFETY: addr is a valid sockaddr_un of the given length; fd is ours.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("binding the collector socket {}", path.display()));
    }
    // SAFETY: fd is a bound socket.
    if unsafe { libc::listen(fd.as_raw_fd(), 1024) } != 0 {
        return Err(std::io::Error::last_os_error()).context("listening on the collector socket");
    }
    Ok(fd)
}

fn seqpacket_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("creating a SOCK_SEQPACKET socket");
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unix_address(path: &Path) -> Result<libc::sockaddr_un> {
    // SAFETY: sockaddr_un is plain data; all-zero is valid (and NUL-terminates the path).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() >= addr.sun_path.len() {
        bail!(
            "the collector socket path {} is longer than {} bytes; use a shorter TMPDIR",
            path.display(),
            addr.sun_path.len() - 1
        );
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(addr)
}

/// A blocking client of the collector socket (tests and load generators; tasks use
/// recorder.py).
pub struct RecordSender(OwnedFd);

impl RecordSender {
    pub fn connect(path: &Path) -> Result<RecordSender> {
        let fd = seqpacket_socket()?;
        let addr = unix_address(path)?;
        // SAFETY: addr is a valid sockaddr_un; fd is ours.
        let connected = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if connected != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("connecting to the collector at {}", path.display()));
        }
        // Blocking sends: a full queue makes this sender wait, it never drops.
        // SAFETY: fcntl on our own fd.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) };
        Ok(RecordSender(fd))
    }

    pub fn send(&self, record: &[u8]) -> Result<()> {
        // SAFETY: record is a valid buffer of its length; fd is ours.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                record.as_ptr().cast(),
                record.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("sending a record");
        }
        Ok(())
    }
}

/// Receive buffers for `recvmmsg`: one system call per batch of a connection, and one lock
/// per poll round, not per record.
struct Batch {
    buffers: Vec<[u8; RECORD_MAX]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

/// What one read of a connection gave.
struct Read {
    records: usize,
    closed: bool,
}

impl Batch {
    fn new() -> Batch {
        let mut buffers = vec![[0u8; RECORD_MAX]; BATCH];
        let mut iovecs: Vec<libc::iovec> = buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: RECORD_MAX,
            })
            .collect();
        let headers = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Batch {
            buffers,
            iovecs,
            headers,
        }
    }

    /// Takes the records already queued on `fd`, up to BATCH, without waiting.
    fn receive(&mut self, fd: RawFd) -> Read {
        debug_assert_eq!(self.iovecs.len(), self.headers.len());
        // SAFETY: the headers point at iovecs and buffers owned by self, alive and unmoved
        // (heap storage) for the call; the kernel writes at most RECORD_MAX per buffer.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            let closed = !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            );
            return Read { records: 0, closed };
        }
        // A record is never empty: a zero length is the sender's end of connection.
        let n = n as usize;
        let records = (0..n).take_while(|&i| self.headers[i].msg_len > 0).count();
        Read {
            records,
            closed: records < n,
        }
    }

    fn datagram(&self, index: usize) -> &[u8] {
        let len = (self.headers[index].msg_len as usize).min(RECORD_MAX);
        &self.buffers[index][..len]
    }
}

/// Accepts every pending connection.
fn accept_all(listener: &OwnedFd, connections: &mut Vec<OwnedFd>) {
    loop {
        // SAFETY: accept4 on our listener; a returned fd is owned at once.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        if fd < 0 {
            return;
        }
        // SAFETY: fd was just returned by accept4.
        connections.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Waits up to 50 ms for the listener or a connection to be readable; the poll results.
fn poll_all(listener: &OwnedFd, connections: &[OwnedFd]) -> Vec<libc::pollfd> {
    let mut fds: Vec<libc::pollfd> = std::iter::once(listener)
        .chain(connections)
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: fds is a valid array of its length.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
    if ready <= 0 {
        fds.iter_mut().for_each(|f| f.revents = 0);
    }
    fds
}

fn receive_loop(listener: OwnedFd, run_id: &str, shared: &Shared, stop: &AtomicBool) {
    let mut connections: Vec<OwnedFd> = Vec::new();
    let mut batch = Batch::new();
    let mut parsed = Vec::with_capacity(BATCH);
    let mut stopping: Option<Instant> = None;
    loop {
        let fds = poll_all(&listener, &connections);
        let idle = fds.iter().all(|f| f.revents == 0);
        if stop.load(Ordering::SeqCst) {
            // Stop only once every connection is drained (bounded if senders never stop).
            let since = *stopping.get_or_insert_with(Instant::now);
            if idle || since.elapsed() > DRAIN_LIMIT {
                return;
            }
        }
        if fds[0].revents != 0 {
            accept_all(&listener, &mut connections);
        }
        parsed.clear();
        let mut closed = Vec::new();
        for (index, fd) in fds[1..].iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            let read = batch.receive(fd.fd);
            for i in 0..read.records {
                let record = TaskRecord::parse_bytes(batch.datagram(i))
                    .filter(|(id, _)| *id == run_id.as_bytes())
                    .map(|(_, record)| record);
                parsed.push(record);
            }
            if read.closed {
                closed.push(index);
            }
        }
        for index in closed.into_iter().rev() {
            connections.swap_remove(index);
        }
        if !parsed.is_empty() {
            apply(shared, &parsed);
        }
    }
}

/// Adds a batch of parsed records (None: foreign) to the tally, dedup by sequence number.
fn apply(shared: &Shared, parsed: &[Option<TaskRecord>]) {
    let mut guard = shared.state.lock().expect("collector");
    let State { tally, seen } = &mut *guard;
    let before = tally.records.len();
    for record in parsed {
        match record {
            Some(record) if (record.seq as usize) < seen.len() => {
                let seen = &mut seen[record.seq as usize];
                if *seen {
                    tally.duplicates += 1;
                    tally.repeats.push(*record);
                } else {
                    *seen = true;
                    tally.failed += u64::from(!record.ok);
                    tally.records.push(*record);
                }
            }
            _ => tally.foreign += 1,
        }
    }
    let distinct = tally.records.len() as u64;
    if distinct > before as u64 {
        shared
            .last_progress_ns
            .store(shared.now_ns(), Ordering::Release);
        shared.distinct.store(distinct, Ordering::Release);
        if distinct >= shared.expected {
            shared.complete.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(path: &Path, text: &str) {
        RecordSender::connect(path)
            .unwrap()
            .send(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn parses_a_record() {
        let (run, rec) = TaskRecord::parse("r1 7 100 200 300 42 ok").unwrap();
        assert_eq!(run, "r1");
        assert_eq!(
            rec,
            TaskRecord {
                seq: 7,
                intended_ns: 100,
                start_ns: 200,
                end_ns: 300,
                pid: 42,
                ok: true
            }
        );
        assert!(TaskRecord::parse("r1 7 100 200 300 42").is_none());
        assert!(TaskRecord::parse("r1 x 100 200 300 42 ok").is_none());
        assert!(TaskRecord::parse("r1 7 100 200 300 42 ok extra").is_none());
        assert!(TaskRecord::parse("r1 -7 100 200 300 42 ok").is_none());
        assert!(TaskRecord::parse("r1 7 100 200 300 4294967296 ok").is_none());
        assert!(TaskRecord::parse("r1 18446744073709551616 1 2 3 4 ok").is_none());
        assert_eq!(
            TaskRecord::parse("  r1\t18446744073709551615 1 2 3 4 ok\n")
                .unwrap()
                .1
                .seq,
            u64::MAX
        );
        assert!(!TaskRecord::parse("r1 7 100 200 300 42 error").unwrap().1.ok);
    }

    #[test]
    fn counts_distinct_duplicates_and_foreign_and_completes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let collector = Collector::bind(&path, "run", 3).unwrap();
        send(&path, "run 0 1 2 3 9 ok");
        send(&path, "run 0 1 2 3 9 ok");
        send(&path, "other 1 1 2 3 9 ok");
        send(&path, "run 99 1 2 3 9 ok");
        send(&path, "garbage");
        send(&path, "run 1 1 2 3 9 error");
        let deadline = Instant::now() + Duration::from_millis(300);
        assert_eq!(
            collector
                .wait_all(deadline, Duration::from_secs(5), |_| Ok(()))
                .unwrap(),
            WaitEnd::TimedOut
        );
        send(&path, "run 2 1 2 3 9 ok");
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            collector
                .wait_all(deadline, Duration::from_secs(5), |_| Ok(()))
                .unwrap(),
            WaitEnd::Complete
        );
        send(&path, "run 2 1 2 3 9 ok");
        let tally = collector.finish();
        assert_eq!(tally.records.len(), 3);
        assert_eq!(tally.duplicates, 2, "a late duplicate is still counted");
        assert_eq!(tally.foreign, 3);
        assert_eq!(tally.failed, 1);
    }

    #[test]
    fn finish_reads_the_recorders_unsent_counts_and_makes_them_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let collector = Collector::bind(&path, "run", 1).unwrap();
        let unsent = unsent_dir(&path);
        std::fs::write(unsent.join("100-ab"), "3").unwrap();
        std::fs::write(unsent.join("101-cd"), "garbage").unwrap();
        std::fs::write(unsent.join("102-ef.tmp"), "9").unwrap();
        let tally = collector.finish();
        assert_eq!(
            tally.unsent, 4,
            "3, one for the unreadable file, not the temporary"
        );
        assert!(unsent_error(tally.unsent).unwrap().contains("4 records"));
        assert_eq!(unsent_error(0), None);
        assert!(!unsent.exists(), "removed with the collector");
    }

    #[test]
    fn wait_all_is_not_woken_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let collector = Collector::bind(&path, "run", 20_001).unwrap();
        let sender = thread::spawn({
            let path = path.clone();
            move || {
                let sock = RecordSender::connect(&path).unwrap();
                for seq in 0..20_000 {
                    sock.send(format!("run {seq} 1 2 3 9 ok").as_bytes())
                        .unwrap();
                }
            }
        });
        let (mut checks, started) = (0u32, Instant::now());
        let end = collector
            .wait_all(
                started + Duration::from_millis(800),
                Duration::from_secs(5),
                |_| {
                    checks += 1;
                    Ok(())
                },
            )
            .unwrap();
        sender.join().unwrap();
        assert_eq!(end, WaitEnd::TimedOut, "one task never reports");
        assert_eq!(collector.distinct(), 20_000);
        // About every 100 ms: 8 in 800 ms, not one per record.
        assert!(checks <= 12, "{checks} checks in {:?}", started.elapsed());
    }

    #[test]
    fn detects_a_stall_and_propagates_check_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let collector = Collector::bind(&path, "run", 2).unwrap();
        let far = Instant::now() + Duration::from_secs(30);
        let end = collector
            .wait_all(far, Duration::from_millis(200), |_| Ok(()))
            .unwrap();
        assert_eq!(end, WaitEnd::Stalled);
        let err = collector
            .wait_all(far, Duration::from_secs(30), |_| {
                anyhow::bail!("worker died")
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "worker died");
    }
}
