//! `dns-vs-ip`: tells "the ISP's DNS is down" from "the link is down", from
//! the evidence in the transition, and notifies accordingly. It never
//! power-cycles: a modem reboot fixes neither a broken resolver nor a cut
//! line, and people who know which one it is can act (switch resolvers, or
//! call the ISP).
//!
//! It needs probe targets of both sorts, with `min_ok` high enough that a
//! silent resolver fails the round: e.g. two internet hosts and the ISP's
//! resolver, `min_ok = 3`. A target is a resolver when it is probed by DNS
//! (`kind = "dns"`: answered when the resolver resolves) or named in the
//! `resolvers` setting (for a resolver probed by ICMP, where the evidence is
//! one that stops answering while the rest of the internet does).
//!
//! ```toml
//! [[targets]]
//! name = "isp-dns"
//! address = "192.0.2.53"   # the ISP's resolver
//! kind = "dns"
//! ```
//!
//! Settings (`[plugins.dns-vs-ip.settings]`):
//!
//! | setting     | default       | meaning |
//! |-------------|---------------|---------|
//! | `resolvers` | `["isp-dns"]` | the targets that are DNS resolvers |
//! | `priority`  | `4`           | priority of the "down" notices; the all-clear goes one lower |

use serde::Deserialize;
use wanwatch_plugin::{
    Evidence, Policy, ProbeKind, Result, Role, Transition, WanState, kv, notify,
};

struct DnsVsIp;

wanwatch_plugin::register_policy!(DnsVsIp);

/// The diagnosis of the current outage, once notified.
const DIAGNOSIS: &str = "diagnosis";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    resolvers: Vec<String>,
    priority: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resolvers: vec!["isp-dns".into()],
            priority: 4,
        }
    }
}

/// What the failed round says is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
enum Diagnosis {
    /// Internet targets answer by IP, the resolvers do not.
    Dns,
    /// Nothing on the internet answers.
    Link,
    /// The LAN gateway is silent: the fault is in the house.
    Local,
}

fn diagnose(t: &Transition, settings: &Settings) -> Diagnosis {
    let wan = |e: &&Evidence| e.role == Role::Wan;
    let dns = |e: &&Evidence| e.kind == ProbeKind::Dns || settings.resolvers.contains(&e.target);
    let ip_answers = t
        .evidence
        .iter()
        .filter(wan)
        .filter(|e| !dns(e))
        .any(|e| e.ok);
    let dns_silent = t.evidence.iter().filter(wan).filter(dns).any(|e| !e.ok);
    if t.local_fault {
        Diagnosis::Local
    } else if ip_answers && dns_silent {
        Diagnosis::Dns
    } else {
        Diagnosis::Link
    }
}

impl Policy for DnsVsIp {
    fn on_wan_down(t: Transition) -> Result {
        let settings: Settings = wanwatch_plugin::settings()?;
        let diagnosis = diagnose(&t, &settings);
        let (title, body) = match diagnosis {
            Diagnosis::Dns => (
                "ISP DNS down",
                "The internet answers by IP address, but the ISP's DNS resolver does not: names do not resolve. \
                 Switch to another resolver (1.1.1.1, 9.9.9.9) until it is fixed.",
            ),
            Diagnosis::Link => (
                "WAN link down",
                "Nothing on the internet answers, by IP address or by name: the line itself is down.",
            ),
            Diagnosis::Local => (
                "LAN fault",
                "The router does not answer: check it and its cables.",
            ),
        };
        kv::set(DIAGNOSIS, &diagnosis)?;
        notify(title, body, settings.priority)
    }

    fn on_wan_up(t: Transition) -> Result {
        let Some(diagnosis) = kv::get::<Diagnosis>(DIAGNOSIS) else {
            return Ok(());
        };
        kv::delete(DIAGNOSIS)?;
        if t.previous != WanState::Down {
            return Ok(());
        }
        let settings: Settings = wanwatch_plugin::settings()?;
        let title = match diagnosis {
            Diagnosis::Dns => "ISP DNS back",
            Diagnosis::Link => "WAN link back",
            Diagnosis::Local => "LAN back",
        };
        notify(
            title,
            "Everything answers again.",
            settings.priority.saturating_sub(1),
        )
    }
}
