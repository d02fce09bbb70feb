//! What runs need before they start: a Python >= 3.12 venv with the pinned packages, and
//! brokers (found, started or reached) with an isolated namespace per run.

pub mod brokers;
pub mod python;
