//! Receives one record per finished task over a Unix datagram socket, dedups by task
//! sequence number and knows exactly when all N distinct tasks are done.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

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
        let mut fields = datagram.split_ascii_whitespace();
        let run_id = fields.next()?;
        let record = TaskRecord {
            seq: fields.next()?.parse().ok()?,
            intended_ns: fields.next()?.parse().ok()?,
            start_ns: fields.next()?.parse().ok()?,
            end_ns: fields.next()?.parse().ok()?,
            pid: fields.next()?.parse().ok()?,
            ok: fields.next()? == "ok",
        };
        fields.next().is_none().then_some((run_id, record))
    }
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
}

struct Shared {
    tally: Mutex<(Tally, Vec<bool>, Instant)>,
    progress: Condvar,
}

/// Why waiting for completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    Complete,
    TimedOut,
    Stalled,
}

pub struct Collector {
    socket_path: PathBuf,
    expected: u64,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
}

impl Collector {
    /// Binds the socket at `socket_path` and starts receiving records for `run_id`,
    /// expecting task sequence numbers `0..expected`.
    pub fn bind(socket_path: &Path, run_id: &str, expected: u64) -> Result<Collector> {
        let _ = std::fs::remove_file(socket_path);
        let socket = UnixDatagram::bind(socket_path)
            .with_context(|| format!("binding the collector socket {}", socket_path.display()))?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let shared = Arc::new(Shared {
            tally: Mutex::new((
                Tally::default(),
                vec![false; expected as usize],
                Instant::now(),
            )),
            progress: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let (shared, stop, run_id) = (shared.clone(), stop.clone(), run_id.to_string());
            thread::Builder::new()
                .name("collector".into())
                .spawn(move || receive_loop(socket, &run_id, &shared, &stop))?
        };
        Ok(Collector {
            socket_path: socket_path.to_path_buf(),
            expected,
            shared,
            stop,
            receiver: Some(receiver),
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    pub fn distinct(&self) -> u64 {
        self.shared.tally.lock().expect("collector").0.records.len() as u64
    }

    /// A copy of what has arrived so far.
    pub fn snapshot(&self) -> Tally {
        self.shared.tally.lock().expect("collector").0.clone()
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
        let mut guard = self.shared.tally.lock().expect("collector");
        loop {
            let distinct = guard.0.records.len() as u64;
            if distinct >= self.expected {
                return Ok(WaitEnd::Complete);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(WaitEnd::TimedOut);
            }
            if now.duration_since(guard.2) >= stall {
                return Ok(WaitEnd::Stalled);
            }
            drop(guard);
            check(distinct)?;
            guard = self.shared.tally.lock().expect("collector");
            let wait = Duration::from_millis(100).min(deadline.saturating_duration_since(now));
            guard = self
                .shared
                .progress
                .wait_timeout(guard, wait)
                .expect("collector")
                .0;
        }
    }

    /// Restarts the stall clock (e.g. when workers are spawned after a drain enqueue).
    pub fn reset_stall_clock(&self) {
        self.shared.tally.lock().expect("collector").2 = Instant::now();
    }

    /// Stops receiving (after draining what is already queued) and returns the tally.
    pub fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(receiver) = self.receiver.take() {
            let _ = receiver.join();
        }
        let _ = std::fs::remove_file(&self.socket_path);
        std::mem::take(&mut self.shared.tally.lock().expect("collector").0)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

fn receive_loop(socket: UnixDatagram, run_id: &str, shared: &Shared, stop: &AtomicBool) {
    let mut buf = [0u8; 512];
    loop {
        match socket.recv(&mut buf) {
            Ok(len) => {
                let text = std::str::from_utf8(&buf[..len]).unwrap_or("");
                let mut guard = shared.tally.lock().expect("collector");
                let (tally, seen, last_progress) = &mut *guard;
                match TaskRecord::parse(text) {
                    Some((id, record)) if id == run_id && (record.seq as usize) < seen.len() => {
                        if seen[record.seq as usize] {
                            tally.duplicates += 1;
                            tally.repeats.push(record);
                        } else {
                            seen[record.seq as usize] = true;
                            tally.failed += u64::from(!record.ok);
                            tally.records.push(record);
                            *last_progress = Instant::now();
                            shared.progress.notify_all();
                        }
                    }
                    _ => tally.foreign += 1,
                }
            }
            // Timeout: nothing queued. Stop only once the socket is drained.
            Err(_) if stop.load(Ordering::SeqCst) => return,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(path: &Path, text: &str) {
        let sock = UnixDatagram::unbound().unwrap();
        sock.send_to(text.as_bytes(), path).unwrap();
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
