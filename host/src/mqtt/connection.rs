//! The connection to the broker: rumqttc's event loop driven by one task,
//! the queue handed to the client by another, and the button presses that
//! come back.
//!
//! The event loop reconnects by itself each time it is polled after an
//! error; the driver only waits between attempts, with exponential
//! back-off, and says once per change what is wrong. Nothing here is
//! awaited by the daemon: a broker that is away costs the probing nothing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, LastWill,
    MqttOptions, Outgoing, QoS, TlsConfiguration, Transport,
};
use serde::{Deserialize, Serialize};

use super::config::MqttConfig;
use super::queue::{Message, Queue, Request};
use super::topics::{OFFLINE, ONLINE, PRESS, Topics};
use crate::actions::Actions;
use crate::api::control;

/// The name power cycles pressed in Home Assistant are journalled under.
pub const REQUESTER: &str = "mqtt";

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Requests the client holds while the broker is away, beyond the queue.
const CLIENT_CAPACITY: usize = 16;
/// Discovery configs and transitions with their evidence stay well below.
const MAX_PACKET: usize = 64 * 1024;

/// The connection as `wanwatch status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttStatus {
    /// `mqtt(s)://host:port`.
    pub broker: String,
    pub connected: bool,
    /// Why the last attempt failed, while not connected.
    pub error: Option<String>,
}

/// The shared view of the connection, logged once per change.
pub struct Health(Mutex<MqttStatus>);

impl Health {
    pub fn new(broker: String) -> Health {
        Health(Mutex::new(MqttStatus {
            broker,
            connected: false,
            error: None,
        }))
    }

    pub fn get(&self) -> MqttStatus {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection cannot even be tried: said once, at start.
    pub fn fail(&self, error: String) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).error = Some(error);
    }

    fn set(&self, error: Option<String>) {
        let mut status = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let connected = error.is_none();
        if status.connected == connected && status.error == error {
            return;
        }
        match &error {
            None => tracing::info!("MQTT: connected to {}", status.broker),
            Some(e) => tracing::warn!("MQTT: {}: {e}; retrying with back-off", status.broker),
        }
        status.connected = connected;
        status.error = error;
    }
}

/// The client and its event loop, with the last will, credentials and
/// TLS of `config`.
pub fn connect(config: &MqttConfig, topics: &Topics) -> Result<(AsyncClient, EventLoop), String> {
    let mut options = MqttOptions::new(
        config.client_id.clone(),
        config.broker.host.clone(),
        config.broker.port,
    );
    options
        .set_keep_alive(config.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(LastWill::new(
            topics.availability(),
            OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(username) = &config.username {
        let password = config.password.as_ref().map(|p| p.expose()).unwrap_or("");
        options.set_credentials(username, password);
    }
    if config.broker.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls(config)?),
        )));
    }
    Ok(AsyncClient::new(options, CLIENT_CAPACITY))
}

/// rustls with ring, trusting `ca_file`'s authorities if it is set (a
/// broker with a CA of its own), else the system's trust store.
fn tls(config: &MqttConfig) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => crate::tls::add_pem_roots(&mut roots, path)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?,
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(
                    "no trusted certificate in the system's store: install ca-certificates or set ca_file"
                        .into(),
                );
            }
        }
    }
    crate::tls::client_config(roots)
}

/// What the driver needs besides the event loop.
pub struct Driver {
    pub topics: Topics,
    pub queue: Arc<Queue>,
    pub health: Arc<Health>,
    pub actions: Arc<Actions>,
    pub devices: Vec<String>,
    /// Published first after each connect, after `online` (discovery).
    pub on_connect: Vec<Request>,
}

impl Driver {
    /// Polls the event loop until the client disconnects.
    pub async fn run(self, mut events: EventLoop) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    self.health.set(None);
                    backoff = BACKOFF_FIRST;
                    self.queue.connected(self.first_requests());
                }
                Ok(Event::Incoming(Incoming::Publish(publish))) => {
                    self.command(&publish.topic, publish.retain, &publish.payload);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    self.health.set(Some(describe(&e)));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// After a connect: `online`, the button subscription (a clean session
    /// forgets it), the discovery configs.
    fn first_requests(&self) -> Vec<Request> {
        let online = Message::retained(self.topics.availability(), ONLINE);
        let mut first = vec![Request::Publish(online)];
        if !self.devices.is_empty() {
            first.push(Request::Subscribe(self.topics.cycle_commands()));
        }
        first.extend(self.on_connect.iter().cloned());
        first
    }

    /// A press of a device's button: a power cycle through the same
    /// gateway, safety cap and journal as the API's.
    fn command(&self, topic: &str, retained: bool, payload: &[u8]) {
        let Some(device) = self.topics.device_of_command(topic) else {
            return;
        };
        if retained {
            // Sent again at every reconnect: it would cycle the modem each
            // time. An empty retained message removes it from the broker.
            tracing::warn!(
                "MQTT: ignoring a retained message on {topic} (and clearing it): publish presses without retain"
            );
            self.queue
                .event(Message::retained(topic.to_owned(), Vec::new()));
            return;
        }
        if payload.is_empty() {
            // A retained press cleared (by us, or by whoever left it).
            return;
        }
        if payload != PRESS.as_bytes() {
            tracing::warn!("MQTT: ignoring {topic}: the payload must be {PRESS}");
            return;
        }
        if !self.devices.iter().any(|d| d == device) {
            tracing::warn!("MQTT: ignoring {topic}: no device `{device}` is configured");
            return;
        }
        tracing::info!("MQTT: power cycle of {device} requested");
        let (actions, device) = (self.actions.clone(), device.to_owned());
        tokio::spawn(async move {
            let outcome = control::cycle_device(
                actions,
                REQUESTER,
                device.clone(),
                control::DEFAULT_OFF_SECONDS,
            )
            .await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    tracing::warn!("MQTT: the power cycle of {device} was not done: {reason}")
                }
                Err(e) => {
                    tracing::error!("MQTT: the power cycle of {device} did not complete: {e}")
                }
            }
        });
    }
}

/// Hands the queue to the client, in order, until the client is gone.
pub async fn forward(client: AsyncClient, queue: Arc<Queue>) {
    loop {
        while let Some(request) = queue.next() {
            let sent = match request {
                Request::Publish(m) => client.publish(m.topic, m.qos, m.retain, m.payload).await,
                Request::Subscribe(topic) => client.subscribe(topic, QoS::AtLeastOnce).await,
            };
            if let Err(e) = sent {
                tracing::debug!("MQTT: a request was not taken: {e}");
            }
        }
        queue.changed().await;
    }
}

/// Says what went wrong in words a user acts on.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                ConnectReturnCode::NotAuthorized => "not authorized (check username and password)",
                ConnectReturnCode::BadClientId => "the client id was rejected",
                ConnectReturnCode::ServiceUnavailable => "the service is unavailable",
                ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 is not accepted",
                ConnectReturnCode::Success => "refused",
            };
            format!("the broker refused the connection: {why}")
        }
        ConnectionError::Io(e) => e.to_string(),
        ConnectionError::Tls(e) => format!("TLS: {e}"),
        other => other.to_string(),
    }
}
