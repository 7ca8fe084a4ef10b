//! Link quality: per target, a sliding window of loss, round trips and
//! jitter, and the "degraded" signal judged from the `wan` targets.
//!
//! Pure, like the state machine: rounds come in with their time, changes of
//! the signal come out. Degraded is not a fourth WAN state: up, sick and
//! down keep their meaning, and a degraded link is usually up.
//!
//! (Stub: the window arithmetic and the hysteresis are being written.)

use serde::{Deserialize, Serialize};

use crate::state::{Millis, Role, WanState};

/// One target's window, as status, history, API and plugins show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetQuality {
    pub target: String,
    pub role: Role,
    /// Probes in the window.
    pub probes: u32,
    /// Share of them that got no answer, in percent.
    pub loss_percent: f32,
    pub rtt_p50_us: Option<u32>,
    pub rtt_p95_us: Option<u32>,
    /// Mean absolute difference of successive round trips (RFC 3550).
    pub jitter_us: Option<u32>,
}

/// The link's quality, judged from the `wan` targets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkQuality {
    pub degraded: bool,
    /// The lowest loss among the `wan` targets, in percent.
    pub loss_percent: f32,
    /// The lowest median round trip among the `wan` targets.
    pub rtt_p50_us: Option<u32>,
    /// Every target's window, in target order.
    pub targets: Vec<TargetQuality>,
}

/// A change of the degraded signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityChange {
    /// True when the link became degraded, false when back to normal.
    pub degraded: bool,
    pub at_ms: Millis,
    pub previous_duration_ms: Millis,
    /// The WAN state when it changed.
    pub wan: WanState,
    pub quality: LinkQuality,
}
