//! Child processes the harness starts: each in its own process group, logs to files,
//! stopped (SIGTERM to the main process, bounded grace, then SIGKILL to the group) on
//! success, failure and drop, and as a group on Ctrl-C.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Process groups alive right now, so an interrupt can stop them all.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
static INTERRUPT_HANDLER: Once = Once::new();

/// Installs a Ctrl-C/SIGTERM handler that kills every process group the harness started,
/// then exits with 130. Safe to call more than once.
pub fn install_interrupt_handler() {
    INTERRUPT_HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            eprintln!("\ninterrupted: stopping every process this run started");
            kill_all_groups();
            std::process::exit(130);
        });
    });
}

fn kill_all_groups() {
    let groups: Vec<i32> = LIVE_GROUPS
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    for pgid in &groups {
        signal_group(*pgid, libc::SIGTERM);
    }
    thread::sleep(Duration::from_millis(500));
    for pgid in &groups {
        signal_group(*pgid, libc::SIGKILL);
    }
}

fn signal_group(pgid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) with a negative pid signals the process group; no memory is touched.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

fn signal_process(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) on one pid; no memory is touched.
    unsafe { libc::kill(pid, signal) == 0 }
}

fn group_exists(pgid: i32) -> bool {
    signal_group(pgid, 0)
}

/// A started process (and everything it forks) with its stdout/stderr in files.
pub struct ManagedChild {
    name: String,
    child: Child,
    pgid: i32,
    started: Instant,
    started_unix_ns: u64,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    status: Option<ExitStatus>,
}

impl ManagedChild {
    /// Spawns `command` in a new process group; its output goes to `log_dir/<name>.{out,err}`.
    pub fn spawn(name: &str, command: &mut Command, log_dir: &Path) -> Result<ManagedChild> {
        let stdout_path = log_dir.join(format!("{name}.out"));
        let stderr_path = log_dir.join(format!("{name}.err"));
        let stdout = File::create(&stdout_path)
            .with_context(|| format!("creating {}", stdout_path.display()))?;
        let stderr = File::create(&stderr_path)
            .with_context(|| format!("creating {}", stderr_path.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        // SAFETY: prctl only sets a flag of the child; async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // Dies with the harness even if the harness is SIGKILLed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let started_unix_ns = crate::measure::clock::unix_ns();
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {:?}", command.get_program()))?;
        let pgid = child.id() as i32;
        LIVE_GROUPS.lock().expect("process registry").insert(pgid);
        Ok(ManagedChild {
            name: name.to_string(),
            child,
            pgid,
            started: Instant::now(),
            started_unix_ns,
            stdout_path,
            stderr_path,
            status: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Wall-clock time just before the process was spawned.
    pub fn started_unix_ns(&self) -> u64 {
        self.started_unix_ns
    }

    /// The exit status if the main process has exited, without blocking.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `limit` for the main process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.try_exit()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// All of stderr (lossy UTF-8), e.g. to verify a worker's configuration lines however
    /// much it wrote after them.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of stderr, for error messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail_of_file(&self.stderr_path, lines)
    }

    /// The last lines of stderr and of stdout, labelled, for error messages: some systems
    /// (AsyncTasQ through rich) log their errors to stdout.
    pub fn log_tail(&self, lines: usize) -> String {
        let parts = [
            ("stderr", self.stderr_tail(lines)),
            ("stdout", tail_of_file(&self.stdout_path, lines)),
        ];
        let shown: Vec<String> = parts
            .into_iter()
            .filter(|(_, text)| !text.trim().is_empty())
            .map(|(which, text)| format!("--- {} {which} ---\n{text}", self.name))
            .collect();
        let mut text = if shown.is_empty() {
            format!("({} printed nothing)", self.name)
        } else {
            shown.join("\n")
        };
        // A long traceback pushes the exception itself out of the tail: name it first.
        if let Some(error) = self
            .last_error_line()
            .filter(|e| !text.contains(e.as_str()))
        {
            text = format!("last error line: {error}\n{text}");
        }
        text
    }

    /// The last line of stderr or stdout that names an exception or error.
    fn last_error_line(&self) -> Option<String> {
        [&self.stderr_path, &self.stdout_path]
            .into_iter()
            .find_map(|path| {
                tail_of_file(path, 2000)
                    .lines()
                    .rev()
                    .find(|l| {
                        l.contains("Error:") || l.contains("Exception:") || l.contains("ERROR")
                    })
                    .map(|l| l.trim().to_string())
            })
    }

    /// SIGKILL to the whole group at once, as a crash would (no graceful shutdown).
    pub fn kill(&mut self) {
        signal_group(self.pgid, libc::SIGKILL);
        self.wait_group_gone(Duration::from_secs(5));
        LIVE_GROUPS
            .lock()
            .expect("process registry")
            .remove(&self.pgid);
    }

    /// SIGTERM to the main process only, up to `grace` for it to exit; then SIGTERM to
    /// whatever it left in its group, briefly, then SIGKILL. Returns once no process of the
    /// group is left (bounded) and says whether it all went on SIGTERM alone.
    ///
    /// The main process, not the group, gets the first signal: a Celery prefork worker's
    /// warm shutdown drains its pool children itself, and children signalled at the same
    /// time die under it and can hang that shutdown (seen in CI: >15 s, then SIGKILL).
    pub fn stop(&mut self, grace: Duration) -> bool {
        let mut graceful = true;
        if self.try_exit().is_none() || group_exists(self.pgid) {
            let deadline = Instant::now() + grace;
            if self.try_exit().is_none() {
                signal_process(self.pgid, libc::SIGTERM);
            }
            graceful = self.wait_exit(grace).is_some();
            if graceful && group_exists(self.pgid) {
                signal_group(self.pgid, libc::SIGTERM);
                let left = deadline.saturating_duration_since(Instant::now());
                graceful = self.wait_group_gone(left.max(Duration::from_secs(2)));
            }
            if !graceful {
                signal_group(self.pgid, libc::SIGKILL);
                self.wait_group_gone(Duration::from_secs(5));
            }
        }
        LIVE_GROUPS
            .lock()
            .expect("process registry")
            .remove(&self.pgid);
        graceful
    }

    fn wait_group_gone(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let main_done = self.try_exit().is_some();
            if main_done && !group_exists(self.pgid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        if LIVE_GROUPS
            .lock()
            .map(|g| g.contains(&self.pgid))
            .unwrap_or(false)
        {
            self.kill();
        }
    }
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Spawns a server that lives as long as the harness (redis-server, moto_server).
/// PR_SET_PDEATHSIG fires when the spawning *thread* exits, so servers are spawned from
/// a keeper thread that lives until the process ends: the server dies with the process,
/// never earlier (a test thread that first needed it may end long before).
pub fn spawn_server(name: &str, command: Command, log_dir: &Path) -> Result<ManagedChild> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (jobs, incoming) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("server-keeper".into())
            .spawn(move || {
                for job in incoming {
                    job();
                }
                // Never return: the servers' death signal is tied to this thread.
                loop {
                    thread::park();
                }
            })
            .expect("spawning the server keeper thread");
        Mutex::new(jobs)
    });
    let (reply, answer) = mpsc::channel();
    let (name, log_dir) = (name.to_string(), log_dir.to_path_buf());
    let mut command = command;
    keeper
        .lock()
        .expect("server keeper")
        .send(Box::new(move || {
            let _ = reply.send(ManagedChild::spawn(&name, &mut command, &log_dir));
        }))
        .map_err(|_| anyhow::anyhow!("the server keeper thread is gone"))?;
    answer
        .recv()
        .map_err(|_| anyhow::anyhow!("the server keeper thread is gone"))?
}

/// The last `lines` lines of a log file (reads at most its last 64 KiB).
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a short command to completion within `limit`, killing it when the limit passes.
pub fn run_bounded(
    name: &str,
    command: &mut Command,
    log_dir: &Path,
    limit: Duration,
) -> Result<(ExitStatus, String)> {
    let mut child = ManagedChild::spawn(name, command, log_dir)?;
    match child.wait_exit(limit) {
        Some(status) => {
            child.stop(Duration::from_secs(2));
            Ok((status, child.stdout()))
        }
        None => {
            child.stop(Duration::from_secs(2));
            anyhow::bail!(
                "{name} did not finish within {:?}; its stderr ends with:\n{}",
                limit,
                child.stderr_tail(20)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        // The shell forks a grandchild that ignores SIGTERM; the group must still go.
        let mut child = ManagedChild::spawn(
            "sleeper",
            Command::new("sh").args(["-c", "trap '' TERM; sleep 60 & sleep 60"]),
            dir.path(),
        )
        .unwrap();
        thread::sleep(Duration::from_millis(200));
        let pgid = child.pgid();
        assert!(group_exists(pgid));
        let graceful = child.stop(Duration::from_millis(300));
        assert!(!graceful, "the group ignored SIGTERM, so it needed SIGKILL");
        assert!(!group_exists(pgid));
    }

    #[test]
    fn stop_signals_the_main_process_and_lets_it_stop_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marks = dir.path().join("marks");
        // The child notes a SIGTERM it receives; the leader stops it with SIGUSR1 on its own
        // SIGTERM, as a Celery prefork worker stops its pool.
        let script = r#"
            sh -c 'trap "echo child-got-term >> \"$MARKS\"" TERM; trap "exit 0" USR1; while :; do sleep 0.05; done' &
            c=$!
            trap 'kill -USR1 $c; wait $c; echo leader-done >> "$MARKS"; exit 0' TERM
            while :; do sleep 0.05; done"#;
        let mut child = ManagedChild::spawn(
            "leader",
            Command::new("sh").args(["-c", script]).env("MARKS", &marks),
            dir.path(),
        )
        .unwrap();
        thread::sleep(Duration::from_millis(300));
        let pgid = child.pgid();
        assert!(child.stop(Duration::from_secs(5)), "it all went on SIGTERM");
        assert!(!group_exists(pgid));
        let marks = std::fs::read_to_string(&marks).unwrap();
        assert_eq!(marks.trim(), "leader-done", "only the leader was signalled");
    }

    #[test]
    fn stderr_tail_returns_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (status, _) = run_bounded(
            "printer",
            Command::new("sh").args(["-c", "for i in 1 2 3 4 5; do echo line$i >&2; done"]),
            dir.path(),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(status.success());
        assert_eq!(
            tail_of_file(&dir.path().join("printer.err"), 2),
            "line4\nline5"
        );
    }

    #[test]
    fn run_bounded_kills_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let err = run_bounded(
            "slow",
            Command::new("sleep").arg("30"),
            dir.path(),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(err.to_string().contains("did not finish"));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
