//! `latest-probe`: a policy of contract 0.2, made with the SDK, for
//! tests/tests/contract_versions.rs. On each WAN transition and each change
//! of link quality it notifies a report: title = the callback's name, body
//! = a JSON object with what 0.2 adds (the link quality, the `https` steps
//! of the evidence, the heartbeat receivers), so a test can see it all
//! crossed the boundary.

use serde_json::{Value, json};
use wanwatch_plugin::{
    HttpsStep, LinkQuality, Policy, ProbeKind, QualityChange, Result, Transition, heartbeats,
    notify,
};

struct Latest;

wanwatch_plugin::register_policy!(Latest);

fn quality(q: &LinkQuality) -> Value {
    json!({
        "degraded": q.degraded,
        "loss_percent": q.loss_percent,
        "rtt_p50_us": q.rtt_p50_us,
        "targets": q.targets.iter().map(|t| json!({
            "target": t.target,
            "probes": t.probes,
            "loss_percent": t.loss_percent,
            "rtt_p50_us": t.rtt_p50_us,
            "rtt_p95_us": t.rtt_p95_us,
            "jitter_us": t.jitter_us,
        })).collect::<Vec<_>>(),
    })
}

fn receivers() -> Value {
    heartbeats::receivers()
        .iter()
        .map(|r| json!({ "name": r.name, "reachable": r.reachable, "last_ok_ms": r.last_ok_ms }))
        .collect()
}

fn report(callback: &str, body: Value) -> Result {
    notify(callback, &body.to_string(), 3)
}

fn wan(callback: &str, t: &Transition) -> Result {
    let evidence: Vec<Value> = t
        .evidence
        .iter()
        .map(|e| {
            json!({
                "target": e.target,
                "https": e.kind == ProbeKind::Https,
                "failed": e.https.as_ref().and_then(|h| h.failed).map(|s| match s {
                    HttpsStep::Resolve => "resolve",
                    HttpsStep::Connect => "connect",
                    HttpsStep::Tls => "tls",
                    HttpsStep::Http => "http",
                }),
            })
        })
        .collect();
    report(
        callback,
        json!({
            "quality": quality(&t.quality),
            "evidence": evidence,
            "heartbeats": receivers(),
        }),
    )
}

impl Policy for Latest {
    fn on_wan_up(t: Transition) -> Result {
        wan("on-wan-up", &t)
    }

    fn on_wan_down(t: Transition) -> Result {
        wan("on-wan-down", &t)
    }

    fn on_link_quality(change: QualityChange) -> Result {
        report(
            "on-link-quality",
            json!({ "degraded": change.degraded, "quality": quality(&change.quality) }),
        )
    }
}
