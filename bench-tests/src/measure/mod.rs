//! Measurement during a run: the collector of per-task records, the process sampler, the
//! broker's queue depth, process management, clocks, and the metrics computed from them.

pub mod ceiling;
pub mod clock;
pub mod collector;
pub mod depth;
pub mod fault_proxy;
pub mod loadgen;
pub mod metrics;
pub mod procs;
pub mod recorder_cost;
pub mod sampler;
