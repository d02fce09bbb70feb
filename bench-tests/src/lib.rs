//! tasq-bench: a harness that measures Python task queues on real brokers.
//!
//! Data flows profile → python → brokers → systems → run (collector, sampler) → measure
//! → result files; `bench` orchestrates repetitions and `table` prints the summary.

pub mod behaviour;
pub mod bench;
pub mod brokers;
pub mod ceiling;
pub mod charts;
pub mod clock;
pub mod collector;
pub mod compare;
pub mod criteria;
pub mod depth;
pub mod harness;
pub mod measure;
pub mod mix;
pub mod mock_http;
pub mod output;
pub mod procs;
pub mod profile;
pub mod python;
pub mod recorder_cost;
pub mod report;
pub mod result;
pub mod run;
pub mod sampler;
pub mod scenario;
pub mod space;
pub mod stats;
pub mod stress;
pub mod summary;
pub mod sweep;
pub mod systems;
pub mod table;

use std::path::PathBuf;

/// The workspace root (the directory holding `infra/` and `fixtures/`).
pub fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
