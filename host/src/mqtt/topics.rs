//! The topics wanwatch publishes under `topic_prefix`, and the one it
//! listens to.

/// The availability payloads: retained `online` on each connect, and the
/// last will `offline`, which the broker publishes when the daemon goes
/// away without saying goodbye.
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// What a button's command topic takes: Home Assistant's default
/// `payload_press`.
pub const PRESS: &str = "PRESS";

/// Every topic under one prefix.
#[derive(Clone, Debug)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics {
            prefix: prefix.to_owned(),
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// `online` / `offline`, retained.
    pub fn availability(&self) -> String {
        self.topic("availability")
    }

    /// `up`, `sick` or `down`, retained.
    pub fn state(&self) -> String {
        self.topic("state")
    }

    /// Each WAN transition as JSON, not retained.
    pub fn transition(&self) -> String {
        self.topic("transition")
    }

    /// Mains power, `on` or `out`, retained.
    pub fn power(&self) -> String {
        self.topic("power")
    }

    /// The link's quality, `degraded` or `normal`, retained; only with a
    /// `[probe] degraded_loss` or `degraded_rtt` threshold.
    pub fn quality(&self) -> String {
        self.topic("quality")
    }

    /// Each probe round as JSON, not retained.
    pub fn round(&self) -> String {
        self.topic("round")
    }

    /// The round-trip, loss and outage summary as JSON, retained.
    pub fn stats(&self) -> String {
        self.topic("stats")
    }

    /// Each action request (power cycle, notification) and its outcome as
    /// JSON, not retained.
    pub fn action(&self) -> String {
        self.topic("action")
    }

    /// Where a press of `device`'s power-cycle button arrives.
    pub fn cycle_command(&self, device: &str) -> String {
        self.topic(&format!("device/{device}/cycle"))
    }

    /// Every device's command topic, to subscribe to.
    pub fn cycle_commands(&self) -> String {
        self.cycle_command("+")
    }

    /// The device whose command topic `topic` is, if it is one.
    pub fn device_of_command<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(&self.prefix)?
            .strip_prefix("/device/")?
            .strip_suffix("/cycle")
            .filter(|device| !device.is_empty() && !device.contains('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_topic_names_its_device() {
        let topics = Topics::new("home/wan");
        let topic = topics.cycle_command("modem");
        assert_eq!(topic, "home/wan/device/modem/cycle");
        assert_eq!(topics.device_of_command(&topic), Some("modem"));
        assert_eq!(topics.cycle_commands(), "home/wan/device/+/cycle");
        for other in [
            "home/wan/state",
            "home/wan/device//cycle",
            "home/wan/device/a/b/cycle",
            "home/other/device/modem/cycle",
        ] {
            assert_eq!(topics.device_of_command(other), None, "{other}");
        }
    }
}
