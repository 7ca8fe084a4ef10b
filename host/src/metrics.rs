//! Prometheus metrics, served at `GET /metrics`.
//!
//! Two sources, so that no value is kept twice: what happens (probes,
//! transitions, outages, actions) is counted from the daemon's events as
//! they come ([`Observer`]); what the daemon knows now (the state and since
//! when, mains power, the notification queue, plugin health, the last
//! round) is read from its status at scrape time, so it is never stale.
//! Every name is documented in `docs/metrics.md`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

use crate::actions::{Action, ActionRecord, CAP_REFUSAL};
use crate::api::AppState;
use crate::events::{Observed, Observer};
use crate::monitor::WanEvent;
use crate::power::{PowerState, PowerTransition};
use crate::state::{Millis, Round, WanState};
use crate::status::Status;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the older Prometheus text format, for clients that
/// ask for it alone (promtool, some scrapers).
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Round-trip buckets, in seconds: from a LAN gateway (under a millisecond)
/// to a satellite or saturated link (seconds).
const RTT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    from: &'static str,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CycleLabels {
    device: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type RttFamily = Family<TargetLabels, Histogram, fn() -> Histogram>;

/// The registry and the metrics the events feed. One per daemon: it is an
/// [`Observer`] and the state of `GET /metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rtt: RttFamily,
    sent: Family<TargetLabels, Counter>,
    answered: Family<TargetLabels, Counter>,
    transitions: Family<TransitionLabels, Counter>,
    outages: Family<CauseLabels, Counter>,
    power_outages: Counter,
    power_cycles: Family<CycleLabels, Counter>,
    notifications: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// `status`: the daemon's status as last written (wall clock), read at
    /// every scrape.
    pub fn new(status: watch::Receiver<Status>) -> Metrics {
        let mut registry = Registry::with_prefix("wanwatch");
        let rtt = RttFamily::new_with_constructor(|| Histogram::new(RTT_BUCKETS));
        registry.register_with_unit(
            "probe_rtt",
            "Round-trip time of the probes that were answered, per target",
            Unit::Seconds,
            rtt.clone(),
        );
        let sent = Family::default();
        registry.register(
            "probes_sent",
            "Probes sent, per target",
            Family::clone(&sent),
        );
        let answered = Family::default();
        registry.register(
            "probes_answered",
            "Probes answered, per target: loss is 1 - answered / sent",
            Family::clone(&answered),
        );
        let transitions = Family::default();
        registry.register(
            "wan_transitions",
            "Changes of WAN state",
            Family::clone(&transitions),
        );
        let outages = Family::default();
        registry.register(
            "outages",
            "Outages (the WAN went down), by cause: local-fault (the gateway was silent too), mains-power (the power was out), or wan",
            Family::clone(&outages),
        );
        let power_outages = Counter::default();
        registry.register(
            "mains_power_outages",
            "Mains power outages",
            power_outages.clone(),
        );
        let power_cycles = Family::default();
        registry.register(
            "power_cycles",
            "Power cycles requested, per device and outcome: done, dry-run, refused (the safety cap) or failed",
            Family::clone(&power_cycles),
        );
        let notifications = Family::default();
        registry.register(
            "notifications",
            "Notifications requested, by outcome: queued, dry-run or failed",
            Family::clone(&notifications),
        );
        registry.register(
            "build",
            "The wanwatch build",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(Now(status)));
        Metrics {
            registry,
            rtt,
            sent,
            answered,
            transitions,
            outages,
            power_outages,
            power_cycles,
            notifications,
        }
    }

    /// Every metric, in the format an HTTP `Accept` header asks for:
    /// OpenMetrics, or the Prometheus text format for a client that asks
    /// for `text/plain` and not OpenMetrics (promtool, older scrapers).
    /// Returns the content type and the text.
    pub fn scrape(&self, accept: &str) -> (&'static str, String) {
        if accept.contains("text/plain") && !accept.contains("application/openmetrics-text") {
            (PROMETHEUS_TEXT, self.prometheus_text())
        } else {
            (OPENMETRICS, self.openmetrics())
        }
    }

    fn openmetrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn prometheus_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn round(&self, round: &Round) {
        for evidence in &round.results {
            // The lookup takes an owned label set: an allocation per
            // target and round, within the 0.7 µs a round of three costs
            // (docs/PERFORMANCE.md).
            let labels = TargetLabels {
                target: evidence.target.clone(),
            };
            self.sent.get_or_create(&labels).inc();
            if evidence.ok {
                self.answered.get_or_create(&labels).inc();
                if let Some(us) = evidence.rtt_us {
                    self.rtt.get_or_create(&labels).observe(f64::from(us) / 1e6);
                }
            }
        }
    }

    fn wan(&self, event: &WanEvent) {
        let t = &event.transition;
        self.transitions
            .get_or_create(&TransitionLabels {
                from: t.previous.name(),
                to: t.current.name(),
            })
            .inc();
        if t.current == WanState::Down {
            let cause = if t.local_fault {
                "local-fault"
            } else if event.power == PowerState::Out {
                "mains-power"
            } else {
                "wan"
            };
            self.outages.get_or_create(&CauseLabels { cause }).inc();
        }
    }

    fn power(&self, t: &PowerTransition) {
        if t.current == PowerState::Out {
            self.power_outages.inc();
        }
    }

    fn action(&self, record: &ActionRecord) {
        let outcome = outcome(&record.outcome);
        match &record.action {
            Action::PowerCycle { device, .. } => self.power_cycles.get_or_create(&CycleLabels {
                device: device.clone(),
                outcome,
            }),
            Action::Notify { .. } => self.notifications.get_or_create(&OutcomeLabels { outcome }),
        }
        .inc();
    }
}

/// The class of an action's outcome, for a label: the journal has the
/// reason in words (see [`crate::actions`]), which would make a label per
/// message.
fn outcome(journalled: &str) -> &'static str {
    match journalled {
        "done" => "done",
        "queued" => "queued",
        "dry-run" => "dry-run",
        refused if refused.starts_with(CAP_REFUSAL) => "refused",
        _ => "failed",
    }
}

impl Observer for Metrics {
    fn observe(&self, event: &Observed) {
        match event {
            Observed::Round(round) => self.round(round),
            Observed::Wan(event) => self.wan(event),
            Observed::Power(t) => self.power(t),
            Observed::Action(record) => self.action(record),
            // Plugin health is read from the status at scrape time: its
            // counts are whole there, where events come only on a change.
            Observed::Plugin(_) | Observed::Quality(_) => {}
        }
    }
}

/// What the daemon knows now, from its status, at each scrape.
#[derive(Debug)]
struct Now(watch::Receiver<Status>);

impl Collector for Now {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        // Held for the few microseconds of encoding; the daemon's next
        // status update waits that long at most.
        let status = self.0.borrow();
        let e = &mut encoder;
        let states = WanState::ALL.map(|s| ([("state", s.name())], u32::from(s == status.state)));
        gauges(
            e,
            "wan_state",
            "The WAN state now: 1 for the current one.",
            None,
            states,
        )?;
        gauge(
            e,
            "wan_state_since_timestamp",
            "When the WAN entered its current state (Unix time).",
            Some(&Unit::Seconds),
            seconds(status.since_ms),
        )?;
        if let Some(power) = status.power {
            let states = PowerState::ALL.map(|s| ([("state", s.name())], u32::from(s == power)));
            gauges(
                e,
                "mains_power_state",
                "Mains power now: 1 for the current state.",
                None,
                states,
            )?;
        }
        if let Some(q) = &status.quality {
            gauge(
                e,
                "link_degraded",
                "1 while the link is degraded (loss or round trip at or above [probe] degraded_loss or degraded_rtt); always 0 without them.",
                None,
                u32::from(q.link.degraded),
            )?;
            let target = |t: &crate::quality::TargetQuality| [("target", t.target.clone())];
            let targets = &q.link.targets;
            gauges(
                e,
                "quality_loss_ratio",
                "Share of the probes in the quality window that got no answer, per target (0 to 1).",
                None,
                targets
                    .iter()
                    .map(|t| (target(t), f64::from(t.loss_percent) / 100.0)),
            )?;
            // Figures of a window with no answer are left out, not zero.
            let in_seconds = |us: Option<u32>| us.map(|us| f64::from(us) / 1e6);
            for (name, help, figure) in [
                (
                    "quality_rtt_p50",
                    "Median round trip of the probes answered in the quality window, per target.",
                    (|t| t.rtt_p50_us) as fn(&crate::quality::TargetQuality) -> Option<u32>,
                ),
                (
                    "quality_rtt_p95",
                    "95th percentile (nearest rank) of the round trips answered in the quality window, per target.",
                    |t| t.rtt_p95_us,
                ),
                (
                    "quality_jitter",
                    "Mean absolute difference of successive round trips in the quality window (RFC 3550), per target.",
                    |t| t.jitter_us,
                ),
            ] {
                gauges(
                    e,
                    name,
                    help,
                    Some(&Unit::Seconds),
                    targets
                        .iter()
                        .filter_map(|t| Some((target(t), in_seconds(figure(t))?))),
                )?;
            }
        }
        gauge(
            e,
            "dry_run",
            "1 when no action is really performed (--dry-run, or no plug).",
            None,
            u32::from(status.dry_run),
        )?;
        if let Some(at) = status.last_round_at_ms {
            gauge(
                e,
                "last_round_timestamp",
                "When the last probe round was judged (Unix time): a watchdog that stopped probing shows it here.",
                Some(&Unit::Seconds),
                seconds(at),
            )?;
        }
        counter(
            e,
            "dropped_rounds",
            "Probe rounds dropped because probing itself failed (never the link).",
            None,
            status.dropped_rounds,
        )?;
        if let Some(queue) = &status.notifications {
            gauge(
                e,
                "notification_queue_length",
                "Notifications and outage reports not yet delivered to every sink.",
                None,
                queue.queued as u64,
            )?;
            let sink = |s: &crate::notify::SinkStatus| [("sink", s.name.clone())];
            counters(
                e,
                "notifications_delivered",
                "Notifications delivered, per sink.",
                None,
                queue.sinks.iter().map(|s| (sink(s), s.delivered)),
            )?;
            counters(
                e,
                "notifications_given_up",
                "Notifications a sink rejected for good, per sink.",
                None,
                queue.sinks.iter().map(|s| (sink(s), s.given_up)),
            )?;
        }
        let plugin = |name: &str| [("plugin", name.to_owned())];
        let plugins = &status.plugins;
        counters(
            e,
            "plugin_callbacks",
            "Callbacks delivered to each plugin.",
            None,
            plugins.iter().map(|p| (plugin(&p.name), p.calls)),
        )?;
        counters(
            e,
            "plugin_failures",
            "Callbacks of each plugin that failed (trap, deadline, memory, error).",
            None,
            plugins.iter().map(|p| (plugin(&p.name), p.failures)),
        )?;
        counters(
            e,
            "plugin_callback",
            "Wall time spent in each plugin's callbacks: divided by the callbacks, the mean duration.",
            Some(&Unit::Seconds),
            plugins
                .iter()
                .map(|p| (plugin(&p.name), p.callback_us as f64 / 1e6)),
        )?;
        counters(
            e,
            "plugin_reloads",
            "New versions of each plugin swapped in.",
            None,
            plugins.iter().map(|p| (plugin(&p.name), p.reloads)),
        )?;
        gauges(
            e,
            "plugin_quarantined",
            "1 when the plugin is quarantined (not called until its file changes).",
            None,
            plugins
                .iter()
                .map(|p| (plugin(&p.name), u32::from(p.quarantined))),
        )?;
        counters(
            e,
            "action_refusals",
            "Requests of each plugin refused for want of a grant.",
            None,
            status.refusals.iter().map(|r| (plugin(&r.plugin), r.count)),
        )
    }
}

fn seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl EncodeGaugeValue + Send + Sync + std::fmt::Debug,
) -> std::fmt::Result {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl EncodeCounterValue + Send + Sync + std::fmt::Debug,
) -> std::fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(encoder.encode_descriptor(name, help, unit, counter.metric_type())?)
}

/// A gauge or a counter with one sample per label set; none at all
/// without samples, as the families of the registry do.
fn family<L: EncodeLabelSet, V: EncodeGaugeValue + EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, value) in samples {
        let mut sample = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => sample.encode_counter::<NoLabelSet, _, f64>(&value, None)?,
            _ => sample.encode_gauge(&value)?,
        }
    }
    Ok(())
}

fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue + EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result {
    family(encoder, (name, help, unit), MetricType::Gauge, samples)
}

fn counters<L: EncodeLabelSet, V: EncodeGaugeValue + EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result {
    family(encoder, (name, help, unit), MetricType::Counter, samples)
}

/// `GET /metrics`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (content_type, text) = state.metrics.scrape(accept);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{Actions, PowerSwitch};
    use crate::clock::Clock;
    use crate::notify::{OutboxStatus, SinkStatus};
    use crate::plugin::PluginHealth;
    use crate::quality::{LinkQuality, TargetQuality};
    use crate::state::{Evidence, Role, Transition};
    use crate::status::QualityStatus;
    use std::sync::Arc;

    /// The value of the sample `series` (name and labels as written), if
    /// the text has it.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.parse().expect("a sample value is a number"))
        })
    }

    fn wan(
        previous: WanState,
        current: WanState,
        local_fault: bool,
        power: PowerState,
    ) -> Observed {
        Observed::Wan(WanEvent {
            transition: Transition {
                previous,
                current,
                at_ms: 1_000,
                previous_duration_ms: 1_000,
                local_fault,
                evidence: vec![],
            },
            power,
            power_cycles: 0,
            quality: Default::default(),
        })
    }

    fn metrics() -> (Metrics, watch::Sender<Status>) {
        let status = watch::Sender::new(Status::new(WanState::Up, 1_700_000_000_000, false));
        (Metrics::new(status.subscribe()), status)
    }

    #[test]
    fn rounds_count_probes_and_their_round_trips_per_target() {
        let (metrics, _status) = metrics();
        for rtt_us in [Some(800), Some(30_000), None] {
            metrics.observe(&Observed::Round(Round {
                at_ms: 1_000,
                results: vec![
                    Evidence::icmp("gw", Role::Lan, Some(300)),
                    Evidence::icmp("quad9", Role::Wan, rtt_us),
                ],
            }));
        }
        let text = metrics.openmetrics();
        let at = |series: &str| sample(&text, series);
        assert_eq!(
            at(r#"wanwatch_probes_sent_total{target="quad9"}"#),
            Some(3.0)
        );
        assert_eq!(
            at(r#"wanwatch_probes_answered_total{target="quad9"}"#),
            Some(2.0)
        );
        assert_eq!(
            at(r#"wanwatch_probes_answered_total{target="gw"}"#),
            Some(3.0)
        );
        assert_eq!(
            at(r#"wanwatch_probe_rtt_seconds_count{target="quad9"}"#),
            Some(2.0)
        );
        let sum = at(r#"wanwatch_probe_rtt_seconds_sum{target="quad9"}"#).unwrap();
        assert!((sum - 0.0308).abs() < 1e-12, "{sum}");
        let bucket = |le: &str| {
            at(&format!(
                r#"wanwatch_probe_rtt_seconds_bucket{{le="{le}",target="quad9"}}"#
            ))
        };
        assert_eq!(bucket("0.001"), Some(1.0));
        assert_eq!(bucket("0.025"), Some(1.0));
        assert_eq!(bucket("0.05"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
        assert!(
            text.contains("# UNIT wanwatch_probe_rtt_seconds seconds\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn outages_are_counted_when_the_wan_goes_down_by_cause() {
        let (metrics, _status) = metrics();
        use PowerState::{On, Out};
        use WanState::{Down, Sick, Up};
        for event in [
            wan(Up, Sick, false, On),
            wan(Sick, Down, false, On),
            wan(Down, Up, false, On),
            wan(Up, Sick, true, On),
            // A local fault wins over the power: the gateway is on mains too.
            wan(Sick, Down, true, Out),
            wan(Down, Sick, false, Out),
            wan(Sick, Down, false, Out),
        ] {
            metrics.observe(&event);
        }
        let text = metrics.openmetrics();
        let at = |series: &str| sample(&text, series);
        assert_eq!(
            at(r#"wanwatch_wan_transitions_total{from="up",to="sick"}"#),
            Some(2.0)
        );
        assert_eq!(
            at(r#"wanwatch_wan_transitions_total{from="sick",to="down"}"#),
            Some(3.0)
        );
        assert_eq!(
            at(r#"wanwatch_wan_transitions_total{from="down",to="up"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"wanwatch_wan_transitions_total{from="down",to="sick"}"#),
            Some(1.0)
        );
        assert_eq!(at(r#"wanwatch_outages_total{cause="wan"}"#), Some(1.0));
        assert_eq!(
            at(r#"wanwatch_outages_total{cause="local-fault"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"wanwatch_outages_total{cause="mains-power"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn mains_power_outages_are_counted_when_the_power_goes_out() {
        let (metrics, _status) = metrics();
        for (previous, current) in [
            (PowerState::On, PowerState::Out),
            (PowerState::Out, PowerState::On),
        ] {
            metrics.observe(&Observed::Power(PowerTransition {
                previous,
                current,
                at_ms: 1_000,
                previous_duration_ms: 1_000,
                devices: vec![],
            }));
        }
        assert_eq!(
            sample(&metrics.openmetrics(), "wanwatch_mains_power_outages_total"),
            Some(1.0)
        );
    }

    struct Clock0;
    impl Clock for Clock0 {
        fn now_ms(&self) -> Millis {
            0
        }
    }

    struct Broken;
    impl PowerSwitch for Broken {
        fn power_cycle(&self, device: &str, _: u32) -> Result<(), String> {
            Err(format!("device `{device}` did not answer"))
        }
    }

    /// Through the real gateway, so that the outcomes are classed from
    /// what it really journals.
    #[test]
    fn power_cycles_and_notifications_are_counted_by_outcome() {
        let metrics = Arc::new(metrics().0);
        let feed = |actions: &Actions| {
            let metrics = metrics.clone();
            actions.on_record(move |record| metrics.observe(&Observed::Action(record.clone())));
        };
        let dry = Actions::dry_run(Arc::new(Clock0), 1);
        feed(&dry);
        let _ = dry.power_cycle("powercycle", "modem", 5);
        // Past the safety cap of one per hour.
        let _ = dry.power_cycle("powercycle", "modem", 5);
        let _ = dry.notify("powercycle", "WAN down", "", 3);
        let broken = Actions::new(Some(Arc::new(Broken)), None, Arc::new(Clock0), 5);
        feed(&broken);
        let _ = broken.power_cycle("powercycle", "router", 5);

        let text = metrics.openmetrics();
        let at = |series: &str| sample(&text, series);
        assert_eq!(
            at(r#"wanwatch_power_cycles_total{device="modem",outcome="dry-run"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"wanwatch_power_cycles_total{device="modem",outcome="refused"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"wanwatch_power_cycles_total{device="router",outcome="failed"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"wanwatch_notifications_total{outcome="dry-run"}"#),
            Some(1.0)
        );
        assert_eq!(outcome("done"), "done");
        assert_eq!(outcome("queued"), "queued");
        // A plug that refuses is a failure; only the cap refuses.
        assert_eq!(
            outcome("refused Switch.Set (Gen2 error -103: busy)"),
            "failed"
        );
    }

    #[test]
    fn the_link_quality_is_read_from_the_status() {
        let (metrics, status) = metrics();
        assert!(!metrics.openmetrics().contains("quality"));
        status.send_modify(|s| {
            let target = |name: &str, loss_percent, rtt: Option<u32>| TargetQuality {
                target: name.into(),
                role: Role::Wan,
                probes: 150,
                loss_percent,
                rtt_p50_us: rtt,
                rtt_p95_us: rtt.map(|us| us * 2),
                jitter_us: rtt.map(|us| us / 8),
            };
            s.quality = Some(QualityStatus {
                link: LinkQuality {
                    degraded: true,
                    loss_percent: 25.0,
                    rtt_p50_us: Some(40_000),
                    targets: vec![
                        target("cloudflare", 25.0, Some(40_000)),
                        target("google", 100.0, None),
                    ],
                },
                since_ms: 0,
                degraded_loss_percent: Some(10.0),
                degraded_rtt_us: None,
            });
        });
        let text = metrics.openmetrics();
        let at = |series: &str| sample(&text, series);
        assert_eq!(at("wanwatch_link_degraded"), Some(1.0), "{text}");
        let cloudflare = r#"{target="cloudflare"}"#;
        assert_eq!(
            at(&format!("wanwatch_quality_loss_ratio{cloudflare}")),
            Some(0.25)
        );
        assert_eq!(
            at(r#"wanwatch_quality_loss_ratio{target="google"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(&format!("wanwatch_quality_rtt_p50_seconds{cloudflare}")),
            Some(0.04)
        );
        assert_eq!(
            at(&format!("wanwatch_quality_rtt_p95_seconds{cloudflare}")),
            Some(0.08)
        );
        assert_eq!(
            at(&format!("wanwatch_quality_jitter_seconds{cloudflare}")),
            Some(0.005)
        );
        // Nothing answered: no round trip, rather than a zero.
        assert!(!text.contains(r#"wanwatch_quality_rtt_p50_seconds{target="google"}"#));
    }

    #[test]
    fn the_status_is_read_at_each_scrape() {
        let (metrics, status) = metrics();
        let text = metrics.openmetrics();
        assert_eq!(
            sample(&text, r#"wanwatch_wan_state{state="up"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"wanwatch_wan_state{state="down"}"#),
            Some(0.0)
        );
        // Neither configured nor seen yet: absent, not zero.
        assert!(!text.contains("mains_power_state"), "{text}");
        assert!(!text.contains("last_round"), "{text}");
        assert!(!text.contains("notification_queue"), "{text}");

        status.send_modify(|s| {
            s.state = WanState::Down;
            s.since_ms = 1_700_000_123_456;
            s.power = Some(PowerState::Out);
            s.last_round_at_ms = Some(1_700_000_200_000);
            s.dropped_rounds = 2;
            s.dry_run = true;
            s.notifications = Some(OutboxStatus {
                queued: 3,
                sinks: vec![SinkStatus {
                    name: "ntfy https://ntfy.sh/…".into(),
                    pending: 3,
                    delivered: 7,
                    given_up: 1,
                    failing: None,
                }],
            });
            s.plugins.push(PluginHealth {
                name: "powercycle".into(),
                calls: 10,
                failures: 4,
                consecutive_failures: 4,
                last_error: None,
                last_error_at_ms: None,
                version: "0123456789ab".into(),
                contract: "0.2.0".into(),
                loaded_at_ms: 0,
                reloads: 1,
                quarantined: true,
                callback_us: 2_500,
            });
        });
        let text = metrics.openmetrics();
        let at = |series: &str| sample(&text, series);
        assert_eq!(at(r#"wanwatch_wan_state{state="up"}"#), Some(0.0));
        assert_eq!(at(r#"wanwatch_wan_state{state="down"}"#), Some(1.0));
        assert_eq!(
            at("wanwatch_wan_state_since_timestamp_seconds"),
            Some(1_700_000_123.456)
        );
        assert_eq!(at(r#"wanwatch_mains_power_state{state="out"}"#), Some(1.0));
        assert_eq!(at(r#"wanwatch_mains_power_state{state="on"}"#), Some(0.0));
        assert_eq!(
            at("wanwatch_last_round_timestamp_seconds"),
            Some(1_700_000_200.0)
        );
        assert_eq!(at("wanwatch_dropped_rounds_total"), Some(2.0));
        assert_eq!(at("wanwatch_dry_run"), Some(1.0));
        assert_eq!(at("wanwatch_notification_queue_length"), Some(3.0));
        assert_eq!(
            at(r#"wanwatch_notifications_delivered_total{sink="ntfy https://ntfy.sh/…"}"#),
            Some(7.0)
        );
        assert_eq!(
            at(r#"wanwatch_notifications_given_up_total{sink="ntfy https://ntfy.sh/…"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"wanwatch_plugin_callbacks_total{plugin="powercycle"}"#),
            Some(10.0)
        );
        assert_eq!(
            at(r#"wanwatch_plugin_failures_total{plugin="powercycle"}"#),
            Some(4.0)
        );
        assert_eq!(
            at(r#"wanwatch_plugin_callback_seconds_total{plugin="powercycle"}"#),
            Some(0.0025)
        );
        assert_eq!(
            at(r#"wanwatch_plugin_reloads_total{plugin="powercycle"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"wanwatch_plugin_quarantined{plugin="powercycle"}"#),
            Some(1.0)
        );
        assert_eq!(at(r#"wanwatch_build_info{version="0.1.0"}"#), Some(1.0));
    }

    #[test]
    fn prometheus_text_is_served_to_clients_that_ask_for_it_alone() {
        let (metrics, _status) = metrics();
        let text = metrics.prometheus_text();
        // No OpenMetrics-only syntax: info becomes a gauge, no EOF marker.
        assert!(
            text.contains("# TYPE wanwatch_build_info gauge\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert_eq!(
            sample(&text, r#"wanwatch_wan_state{state="up"}"#),
            Some(1.0)
        );

        let format = |accept: &str| metrics.scrape(accept).0;
        assert_eq!(format("text/plain"), PROMETHEUS_TEXT);
        assert_eq!(
            format("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            PROMETHEUS_TEXT
        );
        // What Prometheus sends: it prefers OpenMetrics.
        assert_eq!(
            format(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            OPENMETRICS
        );
        assert_eq!(format("*/*"), OPENMETRICS);
        assert_eq!(format(""), OPENMETRICS);
    }
}
