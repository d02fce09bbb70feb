//! Scenario 7, pipeline: orders through validate, charge (seeded failures, retried), email (mock HTTP) and inventory (an UPDATE on PostgreSQL).
//!
//! (Being written: the cases, runs and report of this workload.)

use serde::{Deserialize, Serialize};

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;

pub struct Pipeline;

/// The profile's `[pipeline]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub task_count: u64,
}

impl Workload for Pipeline {
    fn name(&self) -> &'static str {
        "pipeline"
    }

    fn cases(&self, _profile: &Profile, _driver: Driver, _cpus: u32) -> Vec<Case> {
        Vec::new()
    }
}
