//! Samples the worker process groups (RSS, PSS and CPU time, from procfs) on a fixed interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::Serialize;

/// Totals over every process of the sampled groups at one instant.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Sample {
    pub t_ns: u64,
    pub processes: u32,
    pub rss_bytes: u64,
    /// utime + stime of the live processes, in seconds.
    pub cpu_seconds: f64,
    /// Sum of the processes' PSS: each shared page split between the processes mapping it,
    /// so a prefork pool's copy-on-write pages count once, not once per child (which the sum
    /// of RSS does). None if a live process's smaps_rollup could not be read.
    pub pss_bytes: Option<u64>,
}

/// Samples every `interval` until stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pgids: Vec<i32>, interval: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            thread::Builder::new()
                .name("sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        if let Some(sample) = sample_groups(&pgids) {
                            samples.lock().expect("sampler").push(sample);
                        }
                        thread::sleep(interval);
                    }
                })
                .expect("spawning the sampler thread")
        };
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.samples.lock().expect("sampler"))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One sample of all processes whose process group is in `pgids`; None if none is alive.
pub fn sample_groups(pgids: &[i32]) -> Option<Sample> {
    let t_ns = crate::measure::clock::unix_ns();
    let page = procfs::page_size();
    let ticks = procfs::ticks_per_second() as f64;
    let mut sample = Sample {
        t_ns,
        processes: 0,
        rss_bytes: 0,
        cpu_seconds: 0.0,
        pss_bytes: Some(0),
    };
    for process in procfs::process::all_processes().ok()?.flatten() {
        let Ok(stat) = process.stat() else { continue };
        if pgids.contains(&stat.pgrp) && stat.state != 'Z' {
            sample.processes += 1;
            sample.rss_bytes += stat.rss * page;
            // cutime/cstime: children this process reaped (a pool's recycled workers), whose
            // CPU time would otherwise vanish from the tree when they exit.
            let reaped = (stat.cutime + stat.cstime).max(0) as u64;
            sample.cpu_seconds += (stat.utime + stat.stime + reaped) as f64 / ticks;
            let pss = pss_bytes(process.pid);
            sample.pss_bytes = sample.pss_bytes.zip(pss).map(|(sum, pss)| sum + pss);
        }
    }
    (sample.processes > 0).then_some(sample)
}

/// A process's proportional set size, from the `Pss:` line of /proc/<pid>/smaps_rollup (kB).
pub fn pss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_pss_kb(&text).map(|kb| kb * 1024)
}

fn parse_pss_kb(smaps_rollup: &str) -> Option<u64> {
    smaps_rollup.lines().find_map(|line| {
        let rest = line.strip_prefix("Pss:")?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Summary of samples inside a time window [from_ns, to_ns].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub peak_rss_mb: f64,
    /// Peak PSS over the same samples as `peak_rss_mb` (None: no sample had it).
    pub peak_pss_mb: Option<f64>,
    /// Median RSS over the second half of the window: memory once the pool is warm.
    pub steady_rss_mb: f64,
    /// CPU time over wall time in the window; 100 = one core busy.
    pub cpu_percent: f64,
    pub peak_processes: u32,
    /// RSS at the window's last sample minus its first: what the run left allocated
    /// (None: fewer than two samples inside the window).
    pub rss_growth_mb: Option<f64>,
}

pub fn usage(samples: &[Sample], from_ns: u64, to_ns: u64) -> Usage {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_ns >= from_ns && s.t_ns <= to_ns)
        .collect();
    // Short windows may hold no sample: fall back to all samples.
    let window: Vec<&Sample> = if inside.len() >= 2 {
        inside.clone()
    } else {
        samples.iter().collect()
    };
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let peak = window.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
    let peak_pss = window.iter().filter_map(|s| s.pss_bytes).max();
    let mut second_half: Vec<u64> = window[window.len() / 2..]
        .iter()
        .map(|s| s.rss_bytes)
        .collect();
    second_half.sort_unstable();
    let steady = second_half.get(second_half.len() / 2).copied().unwrap_or(0);
    let cpu_percent = match (window.first(), window.last()) {
        (Some(a), Some(b)) if b.t_ns > a.t_ns => {
            100.0 * (b.cpu_seconds - a.cpu_seconds).max(0.0) / ((b.t_ns - a.t_ns) as f64 / 1e9)
        }
        _ => 0.0,
    };
    let growth = match inside.as_slice() {
        [first, .., last] => Some(mb(last.rss_bytes) - mb(first.rss_bytes)),
        _ => None,
    };
    Usage {
        rss_growth_mb: growth,
        peak_rss_mb: mb(peak),
        peak_pss_mb: peak_pss.map(mb),
        steady_rss_mb: mb(steady),
        cpu_percent,
        peak_processes: window.iter().map(|s| s.processes).max().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process_group() {
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() };
        let sample = sample_groups(&[pgid]).expect("this test runs in a live group");
        assert!(sample.processes >= 1);
        assert!(sample.rss_bytes > 0);
        let pss = sample.pss_bytes.expect("smaps_rollup is readable");
        assert!(
            pss > 0 && pss <= sample.rss_bytes,
            "{pss} of {}",
            sample.rss_bytes
        );
    }

    #[test]
    fn reads_the_pss_line_not_rss() {
        let rollup = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  9000 kB\nPss:  1234 kB\nPss_Anon:  1000 kB\n";
        assert_eq!(parse_pss_kb(rollup), Some(1234));
        assert_eq!(parse_pss_kb("Rss: 1 kB\n"), None);
    }

    #[test]
    fn usage_summarises_a_window() {
        let s = |t: u64, rss_mb: u64, cpu: f64| Sample {
            t_ns: t * 1_000_000_000,
            processes: 1,
            rss_bytes: rss_mb << 20,
            cpu_seconds: cpu,
            pss_bytes: Some((rss_mb / 2) << 20),
        };
        let samples = [
            s(0, 10, 0.0),
            s(1, 20, 0.5),
            s(2, 40, 1.0),
            s(3, 30, 1.5),
            s(9, 99, 9.0),
        ];
        let u = usage(&samples, 0, 3_000_000_000);
        assert_eq!(u.peak_rss_mb, 40.0);
        assert_eq!(
            u.peak_pss_mb,
            Some(20.0),
            "the peak inside the window, as RSS"
        );
        assert_eq!(u.steady_rss_mb, 40.0);
        assert!((u.cpu_percent - 50.0).abs() < 1e-9);
    }
}
