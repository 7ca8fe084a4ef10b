//! MQTT and Home Assistant: the WAN's state, each transition, mains power,
//! round trips and loss published to a broker, with Home Assistant
//! discovery configs and a power-cycle button per device.
//!
//! It hangs off the daemon's events ([`Publisher`] is an observer that
//! only queues) and the Actions gateway (a button press is a manual cycle,
//! as the API's); the connection runs on tasks of its own (see
//! [`connection`]), so a broker that is away never delays probing or an
//! action. docs/mqtt.md has the topics and payloads.

mod config;
mod connection;
mod discovery;
mod publisher;
mod queue;
mod summary;
mod topics;

use std::sync::Arc;

pub use config::{Broker, MqttConfig};
pub use connection::{MqttStatus, REQUESTER};
pub use publisher::Publisher;
pub use summary::Stats;
pub use topics::{OFFLINE, ONLINE, PRESS, Topics};

use connection::{Driver, Health};
use queue::{Message, Queue, Request};
use rumqttc::AsyncClient;

use crate::actions::Actions;
use crate::config::Config;
use crate::status::Status;

/// How long stopping waits to say `offline` before it lets the broker's
/// last will say it.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The running MQTT publisher and its connection.
pub struct Mqtt {
    publisher: Arc<Publisher>,
    health: Arc<Health>,
    client: Option<AsyncClient>,
    topics: Topics,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Mqtt {
    /// Starts connecting to the broker of `config.mqtt`; `status` is the
    /// daemon's (wall clock) as it starts. A TLS setup that fails (an
    /// unreadable `ca_file`) is logged and shown in the status; the daemon
    /// runs on without MQTT.
    pub fn start(
        mqtt: &MqttConfig,
        config: &Config,
        actions: Arc<Actions>,
        status: &Status,
    ) -> Mqtt {
        let topics = Topics::new(&mqtt.topic_prefix);
        let queue = Arc::new(Queue::default());
        let health = Arc::new(Health::new(mqtt.broker.to_string()));
        let publisher = Arc::new(Publisher::new(
            topics.clone(),
            queue.clone(),
            mqtt.stats_interval,
            status,
            config.probe.quality(config.probe.interval).judges(),
        ));
        let mut this = Mqtt {
            publisher,
            health: health.clone(),
            client: None,
            topics: topics.clone(),
            tasks: Vec::new(),
        };
        let (client, events) = match connection::connect(mqtt, &topics) {
            Ok(connection) => connection,
            Err(e) => {
                tracing::error!("MQTT is off: {e}");
                health.fail(e);
                return this;
            }
        };
        let devices: Vec<String> = config.devices.keys().cloned().collect();
        let on_connect = if mqtt.discovery {
            discovery::Discovery {
                discovery_prefix: &mqtt.discovery_prefix,
                client_id: &mqtt.client_id,
                topics: &topics,
                devices: &devices,
                power: !config.power.devices.is_empty(),
                quality: config.probe.quality(config.probe.interval).judges(),
            }
            .messages()
            .into_iter()
            .map(Request::Publish)
            .collect()
        } else {
            Vec::new()
        };
        let driver = Driver {
            topics,
            queue: queue.clone(),
            health,
            actions,
            devices,
            on_connect,
        };
        this.tasks = vec![
            tokio::spawn(driver.run(events)),
            tokio::spawn(connection::forward(client.clone(), queue)),
        ];
        this.client = Some(client);
        this
    }

    /// What the daemon adds to its observers.
    pub fn observer(&self) -> Arc<Publisher> {
        self.publisher.clone()
    }

    pub fn status(&self) -> MqttStatus {
        self.health.get()
    }

    /// Says `offline` and disconnects, waiting at most [`STOP_WAIT`]; if
    /// the broker is away, its last will says `offline` once the
    /// connection drops.
    pub async fn stop(mut self) {
        if let Some(client) = &self.client {
            let offline = Message::retained(self.topics.availability(), OFFLINE);
            let said = async {
                client
                    .publish(offline.topic, offline.qos, offline.retain, offline.payload)
                    .await?;
                client.disconnect().await
            };
            if tokio::time::timeout(STOP_WAIT, said).await.is_ok() && !self.tasks.is_empty() {
                // The driver returns once the disconnect is sent.
                let driver = self.tasks.remove(0);
                let _ = tokio::time::timeout(STOP_WAIT, driver).await;
            }
        }
        for task in self.tasks {
            task.abort();
        }
    }
}
