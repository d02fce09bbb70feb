//! Scenario 5, serialization: payloads of each kind (small, medium, complex, 1 MB binary, ORM models) through each system's serializer.
//!
//! (Being written: the cases, runs and report of this workload.)

use serde::{Deserialize, Serialize};

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;

pub struct Serialization;

/// The profile's `[serialization]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub task_count: u64,
}

impl Workload for Serialization {
    fn name(&self) -> &'static str {
        "serialization"
    }

    fn cases(&self, _profile: &Profile, _driver: Driver, _cpus: u32) -> Vec<Case> {
        Vec::new()
    }
}
