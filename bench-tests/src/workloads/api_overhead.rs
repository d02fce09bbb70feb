//! Scenario 12, api-overhead: the cost of building and sending a dispatch, pool initialisation and heartbeats.
//!
//! (Being written: the cases, runs and report of this workload.)

use serde::{Deserialize, Serialize};

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;

pub struct ApiOverhead;

/// The profile's `[api_overhead]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub task_count: u64,
}

impl Workload for ApiOverhead {
    fn name(&self) -> &'static str {
        "api-overhead"
    }

    fn cases(&self, _profile: &Profile, _driver: Driver, _cpus: u32) -> Vec<Case> {
        Vec::new()
    }
}
