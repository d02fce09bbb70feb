//! Everything a run needs that outlives it: the Python venv, the broker, the host facts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use std::sync::Arc;

use crate::provision::brokers::{Broker, BrokerSet, Driver};
use crate::provision::python::PythonEnv;
use crate::result::Environment;

pub struct Harness {
    pub root: PathBuf,
    pub python: PythonEnv,
    pub brokers: BrokerSet,
    pub environment: Environment,
}

impl Harness {
    /// Finds or builds Python and the venv; brokers are found or started on first use.
    pub fn provision(progress: &mut dyn FnMut(&str)) -> Result<Harness> {
        crate::measure::procs::install_interrupt_handler();
        let root = crate::project_root();
        let python = PythonEnv::provision(&root, progress)?;
        let environment = host_environment(&root, &python);
        Ok(Harness {
            root,
            brokers: BrokerSet::new(python.clone()),
            python,
            environment,
        })
    }

    /// The broker for `driver`, found or started once per harness.
    pub fn broker(&self, driver: Driver) -> Result<Arc<dyn Broker>> {
        self.brokers.get(driver, &mut |line| eprintln!("  {line}"))
    }

    pub fn fixtures(&self) -> PathBuf {
        self.root.join("fixtures/python")
    }

    pub fn cpus(&self) -> u32 {
        self.environment.cpus
    }
}

pub fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

fn host_environment(root: &Path, python: &PythonEnv) -> Environment {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let memory_gb = <procfs::Meminfo as procfs::Current>::current()
        .map(|m| m.mem_total as f64 / 1024f64.powi(3))
        .unwrap_or(0.0);
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let distro = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or("unknown")
        .trim_matches('"')
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Environment {
        host,
        cpus: cpu_count(),
        memory_gb: (memory_gb * 10.0).round() / 10.0,
        os: format!("{distro}, Linux {}", kernel.trim()),
        python: python.version.clone(),
        python_source: python.source.clone(),
        versions: python.packages.clone(),
        git_rev: git_rev(root),
        broker_version: String::new(),
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// `HEAD`'s commit, with `-dirty` when the tree has changes.
fn git_rev(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".to_string(),
    }
}
