//! Home Assistant MQTT discovery: one retained config per entity under
//! `<discovery_prefix>/<component>/<node_id>/<object_id>/config`, so the
//! WAN, its figures, the degraded signal and a power-cycle button per
//! device appear in Home
//! Assistant with no YAML, all under one device and offline when the
//! daemon is.

use serde_json::{Value, json};

use super::queue::Message;
use super::topics::{PRESS, Topics};

/// What the configs are made from.
pub struct Discovery<'a> {
    pub discovery_prefix: &'a str,
    /// The MQTT client id, which is per host: the base of every unique id.
    pub client_id: &'a str,
    pub topics: &'a Topics,
    /// The configured devices, each with a button.
    pub devices: &'a [String],
    /// Whether mains power is watched (`[power] devices`).
    pub power: bool,
    /// Whether the link's quality is judged (`[probe] degraded_loss` or
    /// `degraded_rtt`).
    pub quality: bool,
}

impl Discovery<'_> {
    /// `client_id` with only what Home Assistant takes in a node id and a
    /// unique id: ASCII letters, digits, `_` and `-`.
    fn node_id(&self) -> String {
        sanitise(self.client_id)
    }

    /// One retained config message per entity.
    pub fn messages(&self) -> Vec<Message> {
        let node = self.node_id();
        let state = self.topics.state();
        let stats = self.topics.stats();
        let sensor = |name: &str, template: &str, extra: Value| {
            let mut config = json!({
                "name": name,
                "state_topic": stats,
                "value_template": format!("{{{{ value_json.{template} }}}}"),
            });
            merge(&mut config, extra);
            config
        };
        let mut entities = vec![
            (
                "binary_sensor",
                "wan".to_owned(),
                json!({
                    "name": "WAN",
                    "device_class": "connectivity",
                    "state_topic": state,
                    // Sick is a link that works, badly: connected.
                    "value_template": "{{ 'OFF' if value == 'down' else 'ON' }}",
                }),
            ),
            (
                "sensor",
                "wan_state".to_owned(),
                json!({
                    "name": "WAN state",
                    "device_class": "enum",
                    "options": ["up", "sick", "down"],
                    "state_topic": state,
                }),
            ),
            (
                "sensor",
                "round_trip".to_owned(),
                sensor(
                    "Round trip",
                    "rtt_ms",
                    json!({"unit_of_measurement": "ms", "state_class": "measurement", "suggested_display_precision": 1, "icon": "mdi:timer-outline"}),
                ),
            ),
            (
                "sensor",
                "loss".to_owned(),
                sensor(
                    "Packet loss",
                    "loss_pct",
                    json!({"unit_of_measurement": "%", "state_class": "measurement", "suggested_display_precision": 0, "icon": "mdi:lan-disconnect"}),
                ),
            ),
            (
                "sensor",
                "outages_today".to_owned(),
                sensor(
                    "Outages today",
                    "outages_today",
                    json!({"state_class": "measurement", "icon": "mdi:counter"}),
                ),
            ),
            (
                "sensor",
                "last_outage".to_owned(),
                sensor(
                    "Last outage duration",
                    "last_outage_s",
                    json!({"device_class": "duration", "unit_of_measurement": "s"}),
                ),
            ),
        ];
        if self.power {
            entities.push((
                "binary_sensor",
                "mains_power".to_owned(),
                json!({
                    "name": "Mains power",
                    "device_class": "power",
                    "state_topic": self.topics.power(),
                    "payload_on": "on",
                    "payload_off": "out",
                }),
            ));
        }
        if self.quality {
            entities.push((
                "binary_sensor",
                "degraded".to_owned(),
                json!({
                    "name": "Link degraded",
                    "device_class": "problem",
                    "state_topic": self.topics.quality(),
                    "payload_on": "degraded",
                    "payload_off": "normal",
                }),
            ));
        }
        for device in self.devices {
            entities.push((
                "button",
                format!("cycle_{}", sanitise(device)),
                json!({
                    "name": format!("Power-cycle {device}"),
                    "device_class": "restart",
                    "command_topic": self.topics.cycle_command(device),
                    "payload_press": PRESS,
                }),
            ));
        }
        let device = json!({
            "identifiers": [node],
            "name": format!("wanwatch {}", self.client_id.strip_prefix("wanwatch-").unwrap_or(self.client_id)),
            "manufacturer": "wanwatch",
            "model": "WAN watchdog",
            "sw_version": env!("CARGO_PKG_VERSION"),
        });
        entities
            .into_iter()
            .map(|(component, object, mut config)| {
                merge(
                    &mut config,
                    json!({
                        "unique_id": format!("{node}_{object}"),
                        // Home Assistant 2025.10 replaced `object_id`
                        // with this; an entity id is lowercase a-z, 0-9, _.
                        "default_entity_id": format!("{component}.{}", entity_slug(&format!("{node}_{object}"))),
                        "availability_topic": self.topics.availability(),
                        "device": device,
                        "origin": {"name": "wanwatch", "sw_version": env!("CARGO_PKG_VERSION")},
                    }),
                );
                Message::retained(
                    format!(
                        "{}/{component}/{node}/{object}/config",
                        self.discovery_prefix
                    ),
                    config.to_string(),
                )
            })
            .collect()
    }
}

fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn entity_slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_has_a_stable_unique_id_and_the_shared_availability() {
        let topics = Topics::new("wanwatch");
        let devices = ["modem".to_owned(), "the router".to_owned()];
        let discovery = Discovery {
            discovery_prefix: "homeassistant",
            client_id: "wanwatch-pi.lan",
            topics: &topics,
            devices: &devices,
            power: false,
            quality: true,
        };
        let messages = discovery.messages();
        assert_eq!(messages, discovery.messages(), "the same configs each time");
        let configs: Vec<(String, Value)> = messages
            .iter()
            .map(|m| (m.topic.clone(), serde_json::from_slice(&m.payload).unwrap()))
            .collect();
        assert_eq!(configs.len(), 9);
        for (topic, config) in &configs {
            assert!(topic.starts_with("homeassistant/"), "{topic}");
            assert!(topic.contains("/wanwatch-pi_lan/"), "{topic}");
            assert_eq!(config["availability_topic"], "wanwatch/availability");
            assert_eq!(config["device"]["identifiers"][0], "wanwatch-pi_lan");
        }
        let degraded = &configs
            .iter()
            .find(|(t, _)| t == "homeassistant/binary_sensor/wanwatch-pi_lan/degraded/config")
            .unwrap()
            .1;
        assert_eq!(degraded["state_topic"], "wanwatch/quality");
        assert_eq!(degraded["device_class"], "problem");
        assert_eq!(degraded["payload_on"], "degraded");
        let button = &configs
            .iter()
            .find(|(t, _)| t == "homeassistant/button/wanwatch-pi_lan/cycle_the_router/config")
            .unwrap()
            .1;
        assert_eq!(button["command_topic"], "wanwatch/device/the router/cycle");
        assert_eq!(button["unique_id"], "wanwatch-pi_lan_cycle_the_router");
        assert_eq!(
            button["default_entity_id"],
            "button.wanwatch_pi_lan_cycle_the_router"
        );
    }
}
