//! What one run works in: a fresh broker namespace, a unique queue name, a clean working
//! directory (AsyncTasQ reads `.env` from its cwd), and AsyncTasQ's tables when needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use crate::harness::Harness;
use crate::provision::brokers::{Broker, Driver, Namespace, QueueRef};
use crate::systems::{RunEnv, System};

pub struct RunSpace {
    pub broker: Arc<dyn Broker>,
    pub namespace: Box<dyn Namespace>,
    /// Unique per run: RabbitMQ and SQS runs are isolated by queue name.
    pub queue: String,
    pub workdir: tempfile::TempDir,
    pub fixtures: PathBuf,
}

impl RunSpace {
    pub fn open(h: &Harness, driver: Driver) -> Result<RunSpace> {
        let broker = h.broker(driver)?;
        let key = format!("{:08x}", rand::random::<u32>());
        let namespace = broker.namespace(&key)?;
        let workdir = tempfile::Builder::new()
            .prefix("tasq-bench-run-")
            .tempdir()?;
        Ok(RunSpace {
            broker,
            namespace,
            queue: format!("bench_{key}"),
            workdir,
            fixtures: h.fixtures(),
        })
    }

    pub fn dir(&self) -> &Path {
        self.workdir.path()
    }

    /// The environment of every process of the run.
    pub fn env<'a>(
        &'a self,
        h: &'a Harness,
        collector_socket: &'a Path,
        run_id: &'a str,
        celery_prefetch: u32,
    ) -> RunEnv<'a> {
        RunEnv {
            python: &h.python,
            fixtures: &self.fixtures,
            workdir: self.workdir.path(),
            collector_socket,
            queue: &self.queue,
            broker: self.namespace.as_ref(),
            run_id,
            celery_prefetch_multiplier: celery_prefetch,
            task_env: Vec::new(),
        }
    }

    /// Makes the queue usable by `system`: the broker's own preparation (an SQS queue),
    /// then the system's (AsyncTasQ's tables on PostgreSQL/MySQL).
    pub fn prepare(&self, system: System, env: &RunEnv) -> Result<()> {
        self.namespace.prepare(&self.queue)?;
        system.prepare(env, self.dir())
    }

    /// Where `system`'s pending messages of this run's queue wait.
    pub fn queue_ref(&self, system: System) -> QueueRef {
        system.queue_ref(self.namespace.driver(), &self.queue)
    }

    /// The queue's depth for messages, or why it could not be read.
    pub fn depth(&self, system: System) -> String {
        self.namespace
            .queue_depth(&self.queue_ref(system))
            .map_or_else(|e| format!("unknown ({e:#})"), |d| d.to_string())
    }
}
