//! Work sessions from the desktop tracker and the attendance summaries computed from them.
//!
//! - [`intervals`]: half-open time intervals, clipped and merged (idle is never counted twice);
//! - [`sessions`]: clock-in, clock-out, idle uploads, forgotten timers — safe to resend;
//! - [`summaries`]: `computeAttendanceSummary`, per person per day of the organization's zone.

pub mod intervals;
pub mod sessions;
pub mod summaries;
