//! From raw runs to conclusions: statistics, the summary's groups and comparisons, the
//! profile's criteria, and comparisons between two run directories.

pub mod compare;
pub mod criteria;
pub mod drift;
pub mod stats;
pub mod summary;
