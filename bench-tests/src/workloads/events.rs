//! Scenario 10, events: AsyncTasQ's Redis Pub/Sub events against Celery's own (-E), counted, timed and their overhead measured.
//!
//! (Being written: the cases, runs and report of this workload.)

use serde::{Deserialize, Serialize};

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;

pub struct Events;

/// The profile's `[events]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub task_count: u64,
}

impl Workload for Events {
    fn name(&self) -> &'static str {
        "events"
    }

    fn cases(&self, _profile: &Profile, _driver: Driver, _cpus: u32) -> Vec<Case> {
        Vec::new()
    }
}
