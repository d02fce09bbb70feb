//! Scenario 11, fastapi: uvicorn apps that dispatch tasks per HTTP request, under open-loop HTTP load.
//!
//! (Being written: the cases, runs and report of this workload.)

use serde::{Deserialize, Serialize};

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;

pub struct Fastapi;

/// The profile's `[fastapi]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub task_count: u64,
}

impl Workload for Fastapi {
    fn name(&self) -> &'static str {
        "fastapi"
    }

    fn cases(&self, _profile: &Profile, _driver: Driver, _cpus: u32) -> Vec<Case> {
        Vec::new()
    }
}
