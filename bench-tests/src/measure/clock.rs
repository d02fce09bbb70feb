//! Wall-clock timestamps comparable with Python's `time.time_ns()` on the same host.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// RFC 3339 UTC timestamp of now, e.g. `2026-11-27T10:00:00Z`.
pub fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
