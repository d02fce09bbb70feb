//! tasq-bench: a harness that measures Python task queues on real brokers.
//!
//! Folders follow the flow of one benchmark:
//! `profile` → `provision` (python, brokers) → `systems` and `workloads` → `run` (one
//! repetition, repetitions, rate search) → `measure` (collector, sampler, depth) →
//! `result` (the raw schema) → `analysis` (stats, summary, criteria, compare) → `report`.

pub mod analysis;
pub mod harness;
pub mod measure;
pub mod profile;
pub mod provision;
pub mod report;
pub mod result;
pub mod run;
pub mod systems;
pub mod workloads;

use std::path::PathBuf;

/// The workspace root (the directory holding `infra/` and `fixtures/`).
pub fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
