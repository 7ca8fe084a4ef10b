//! MQTT and Home Assistant against a real mosquitto broker (Debian's
//! package), started by each test on a free loopback port with its own
//! config, and the real daemon watching a [`Link`] with an emulated Shelly
//! plug. A test client subscribed to `#` sees what Home Assistant would.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;
use tempfile::TempDir;
use wanwatch_tests::link::Link;
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, Recorder, skip, wait_for};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "wanwatch";
const PASSWORD: &str = "broker-pass-7341";
const WRONG_PASSWORD: &str = "not-the-pass-9182";

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A mosquitto on 127.0.0.1:`port`, without persistence: a restart loses
/// every retained message, as a broker restarted without a disk would.
struct Broker {
    port: u16,
    /// The TLS listener's, when it has one.
    tls_port: Option<u16>,
    conf: PathBuf,
    child: Option<Child>,
}

/// Runs openssl in `dir`, or fails the test saying what it said.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA of its own in `dir` (`<name>.pem`, `<name>.key`).
fn make_ca(dir: &Path, name: &str) {
    let subject = format!("/CN={name}");
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
            "-keyout", &key, "-out", &pem,
        ],
    );
}

impl Broker {
    /// None (the test skips) when mosquitto is not installed. With `tls`,
    /// a second listener speaks TLS with a certificate for 127.0.0.1 signed
    /// by the CA `dir/ca.pem`.
    fn start(dir: &Path, password: Option<&str>, tls: bool) -> Option<Broker> {
        if !Path::new(MOSQUITTO).exists() {
            skip("mosquitto is not installed (apt-get install mosquitto)");
            return None;
        }
        let port = free_port();
        let mut conf =
            format!("listener {port} 127.0.0.1\npersistence false\nuser root\nlog_dest stderr\n");
        let tls_port = tls.then(|| {
            make_ca(dir, "ca");
            std::fs::write(
                dir.join("server.ext"),
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            openssl(
                dir,
                &[
                    "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
                    "server.key", "-out", "server.csr",
                ],
            );
            openssl(
                dir,
                &[
                    "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
                ],
            );
            let tls_port = free_port();
            conf += &format!(
                "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
                d = dir.display()
            );
            tls_port
        });
        match password {
            Some(password) => {
                let file = dir.join("passwords");
                let made = Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([USER, password])
                    .output()
                    .unwrap();
                assert!(made.status.success(), "{made:?}");
                conf += &format!("allow_anonymous false\npassword_file {}\n", file.display());
            }
            None => conf += "allow_anonymous true\n",
        }
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, conf).unwrap();
        let mut broker = Broker {
            port,
            tls_port,
            conf: path,
            child: None,
        };
        broker.restart();
        Some(broker)
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it if it runs, starts it again on the same port, and waits
    /// until it listens.
    fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.conf.with_extension("log")).unwrap();
        self.child = Some(
            Command::new(MOSQUITTO)
                .arg("-c")
                .arg(&self.conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let start = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(start.elapsed() < WAIT, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Debug)]
struct Received {
    topic: String,
    payload: String,
    retain: bool,
}

/// A client subscribed to `#`, recording every message, on a thread of
/// its own.
struct Watcher {
    client: Client,
    seen: Arc<Recorder<Received>>,
}

impl Watcher {
    fn connect(broker: &Broker, credentials: Option<(&str, &str)>) -> Watcher {
        let mut options =
            MqttOptions::new(format!("watcher-{}", free_port()), "127.0.0.1", broker.port);
        options.set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        let (client, mut connection) = Client::new(options, 16);
        client.subscribe("#", QoS::AtLeastOnce).unwrap();
        let seen = Arc::new(Recorder::default());
        let recorder = seen.clone();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Incoming::Publish(p))) => recorder.push(Received {
                        topic: p.topic.clone(),
                        payload: String::from_utf8_lossy(&p.payload).into_owned(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    // The broker restarted or the test ended.
                    Err(_) => return,
                }
            }
        });
        Watcher { client, seen }
    }

    /// Waits for a message on `topic` whose payload satisfies `matches`, and
    /// returns it.
    fn wait(&self, topic: &str, what: &str, matches: impl Fn(&Received) -> bool) -> Received {
        let found = |items: &[Received]| {
            items
                .iter()
                .rev()
                .find(|m| m.topic == topic && matches(m))
                .cloned()
        };
        let items = self.seen.wait_until(WAIT, |items| found(items).is_some());
        found(&items).unwrap_or_else(|| panic!("{what}"))
    }

    /// The last payload on `topic` is `payload`, eventually.
    fn wait_last(&self, topic: &str, payload: &str) -> Received {
        self.seen.wait_until(WAIT, |items| {
            items
                .iter()
                .rev()
                .find(|m| m.topic == topic)
                .is_some_and(|m| m.payload == payload)
        });
        self.wait(topic, topic, |m| m.payload == payload)
    }

    fn json(&self, topic: &str) -> Value {
        let m = self.wait(topic, topic, |_| true);
        serde_json::from_str(&m.payload).unwrap_or_else(|e| panic!("{topic}: {e}: {}", m.payload))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

struct Daemon {
    dir: TempDir,
    process: DaemonProcess,
}

impl Daemon {
    fn start(link: &Link, sections: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("wanwatch.toml");
        std::fs::write(
            &config,
            format!("{}\n{sections}", link.daemon_config(dir.path())),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let process = DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &config, log);
        Daemon { dir, process }
    }

    fn status(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap()
    }
}

fn mqtt_section(broker: &Broker) -> String {
    format!(
        "[mqtt]\nbroker = \"{}\"\nclient_id = \"wanwatch-test\"\nkeep_alive = \"2s\"\nstats_interval = \"1s\"\n",
        broker.url()
    )
}

#[test]
fn home_assistant_gets_the_wan_its_figures_and_a_button_that_cycles_the_modem() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path(), None, false) else {
        return;
    };
    let watcher = Watcher::connect(&broker, None);
    // A press left retained on the broker (by a misconfigured client): the
    // broker hands it to every new subscription, so acting on it would
    // cycle the modem at every reconnect.
    watcher
        .client
        .publish(
            "wanwatch/device/modem/cycle",
            QoS::AtLeastOnce,
            true,
            "PRESS",
        )
        .unwrap();
    watcher.wait("wanwatch/device/modem/cycle", "the retained press", |_| {
        true
    });
    let link = Link::up();
    let plug = Emulator::start(Model::PlusPlugS);
    // No policy that cycles: the only cycle is the button's.
    let daemon = Daemon::start(
        &link,
        &format!(
            "[plugins.notify]\nnotify = true\n\n[devices.modem]\nkind = \"shelly\"\naddress = \"{}\"\n\n{}",
            plug.url(),
            mqtt_section(&broker)
        ),
    );

    watcher.wait_last("wanwatch/availability", "online");
    let config = |component: &str, object: &str| {
        watcher.json(&format!(
            "homeassistant/{component}/wanwatch-test/{object}/config"
        ))
    };
    let wan = config("binary_sensor", "wan");
    assert_eq!(wan["device_class"], "connectivity", "{wan}");
    assert_eq!(wan["state_topic"], "wanwatch/state");
    assert_eq!(wan["availability_topic"], "wanwatch/availability");
    assert_eq!(wan["unique_id"], "wanwatch-test_wan");
    for (object, unit) in [("round_trip", "ms"), ("loss", "%"), ("last_outage", "s")] {
        let sensor = config("sensor", object);
        assert_eq!(sensor["unit_of_measurement"], unit, "{sensor}");
        assert_eq!(sensor["state_topic"], "wanwatch/stats");
        assert_eq!(
            sensor["device"]["identifiers"],
            wan["device"]["identifiers"]
        );
    }
    assert_eq!(
        config("sensor", "outages_today")["value_template"],
        "{{ value_json.outages_today }}"
    );
    let button = config("button", "cycle_modem");
    assert_eq!(
        button["command_topic"], "wanwatch/device/modem/cycle",
        "{button}"
    );
    assert_eq!(button["unique_id"], "wanwatch-test_cycle_modem");

    // The state; the figures once a round is in.
    watcher.wait_last("wanwatch/state", "up");
    watcher.wait("wanwatch/stats", "a round trip", |m| {
        serde_json::from_str::<Value>(&m.payload).is_ok_and(|s| s["rtt_ms"].is_number())
    });

    link.cut();
    watcher.wait_last("wanwatch/state", "down");
    let transition = watcher.wait("wanwatch/transition", "the transition to down", |m| {
        serde_json::from_str::<Value>(&m.payload).is_ok_and(|t| t["current"] == "down")
    });
    let transition: Value = serde_json::from_str(&transition.payload).unwrap();
    assert_eq!(
        transition["evidence"][0]["target"], "internet",
        "{transition}"
    );
    assert!(transition["previous_duration_ms"].is_u64(), "{transition}");
    link.restore();
    watcher.wait_last("wanwatch/state", "up");
    let stats = watcher.wait("wanwatch/stats", "the outage counted", |m| {
        serde_json::from_str::<Value>(&m.payload)
            .is_ok_and(|s| s["outages_today"] == 1 && s["last_outage_s"].is_u64())
    });
    // A client that comes later (Home Assistant after a restart) gets them
    // at once: they are retained.
    let late = Watcher::connect(&broker, None);
    assert!(late.wait_last("wanwatch/state", "up").retain);
    assert!(late.wait_last("wanwatch/availability", "online").retain);
    assert!(
        late.wait("wanwatch/stats", "stats", |m| m.payload == stats.payload)
            .retain
    );
    late.wait(
        "homeassistant/button/wanwatch-test/cycle_modem/config",
        "",
        |_| true,
    );
    let configs: Vec<Received> = late
        .seen
        .items()
        .into_iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
        .collect();
    assert!(configs.len() >= 7, "{configs:?}");
    assert!(configs.iter().all(|m| m.retain), "{configs:?}");

    // The retained press was ignored, and cleared; a press cycles the
    // modem through the Actions gateway.
    assert!(
        daemon.log().contains("ignoring a retained message"),
        "{}",
        daemon.log()
    );
    watcher.wait_last("wanwatch/device/modem/cycle", "");
    watcher
        .client
        .publish(
            "wanwatch/device/modem/cycle",
            QoS::AtLeastOnce,
            false,
            "PRESS",
        )
        .unwrap();
    let status = wait_for(
        &daemon.status(),
        "the button's cycle journalled",
        WAIT,
        |s| {
            s["actions"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a["plugin"] == "mqtt" && a["outcome"] == "done")
            })
        },
    );
    let journal: Vec<&Value> = status["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["plugin"] == "mqtt")
        .collect();
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0]["outcome"], "done", "{journal:?}");
    assert_eq!(journal[0]["device"], "modem");
    let off = plug
        .calls()
        .into_iter()
        .filter(|c| c.name == "Switch.Set" && c.performed && c.params["on"] == false)
        .count();
    assert_eq!(off, 1, "{:?}", plug.calls());
    let action = watcher.json("wanwatch/action");
    assert_eq!(action["plugin"], "mqtt", "{action}");
    assert_eq!(status["mqtt"]["connected"], true, "{status}");
}

#[test]
fn a_restarted_broker_gets_everything_again_and_a_killed_daemon_leaves_its_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = Broker::start(dir.path(), None, false) else {
        return;
    };
    let link = Link::up();
    let mut daemon = Daemon::start(&link, &mqtt_section(&broker));
    wait_for(&daemon.status(), "connected", WAIT, |s| {
        s["mqtt"]["connected"] == true
    });

    // The broker goes away: the daemon says so and probes on.
    broker.stop();
    let status = wait_for(&daemon.status(), "the broker missed", WAIT, |s| {
        s["mqtt"]["connected"] == false && s["mqtt"]["error"].is_string()
    });
    let rounds_then = status["last_round_at_ms"].as_u64().unwrap();
    wait_for(&daemon.status(), "rounds go on", WAIT, |s| {
        s["last_round_at_ms"].as_u64() > Some(rounds_then)
    });
    link.cut();
    wait_for(
        &daemon.status(),
        "the outage seen without a broker",
        WAIT,
        |s| s["state"] == "down",
    );

    // Back, without the retained messages it had (no persistence): the
    // daemon publishes them again, its state as it is now among them.
    broker.restart();
    let watcher = Watcher::connect(&broker, None);
    watcher.wait_last("wanwatch/availability", "online");
    watcher.wait_last("wanwatch/state", "down");
    watcher.wait(
        "homeassistant/binary_sensor/wanwatch-test/wan/config",
        "discovery again",
        |_| true,
    );
    wait_for(&daemon.status(), "connected again", WAIT, |s| {
        s["mqtt"]["connected"] == true && s["mqtt"]["error"].is_null()
    });

    // Killed without a goodbye: the broker publishes the last will.
    daemon.process.0.kill().unwrap();
    daemon.process.0.wait().unwrap();
    watcher.wait_last("wanwatch/availability", "offline");
    let later = Watcher::connect(&broker, None);
    assert!(later.wait_last("wanwatch/availability", "offline").retain);
}

#[test]
fn a_password_is_accepted_and_a_wrong_one_is_reported_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path(), Some(PASSWORD), false) else {
        return;
    };
    let link = Link::up();
    let section = |password: &str| {
        format!(
            "{}username = \"{USER}\"\npassword = \"{password}\"\n",
            mqtt_section(&broker)
        )
    };
    let right = Daemon::start(&link, &section(PASSWORD));
    let wrong = Daemon::start(&link, &section(WRONG_PASSWORD));
    wait_for(&right.status(), "connected with the password", WAIT, |s| {
        s["mqtt"]["connected"] == true
    });
    let status = wait_for(&wrong.status(), "the refusal", WAIT, |s| {
        s["mqtt"]["error"].is_string()
    });
    let error = status["mqtt"]["error"].as_str().unwrap();
    assert!(
        error.contains("user name or password") || error.contains("not authorized"),
        "{error}"
    );
    assert_eq!(status["mqtt"]["connected"], false);
    let watcher = Watcher::connect(&broker, Some((USER, PASSWORD)));
    watcher.wait_last("wanwatch/availability", "online");
    for daemon in [&right, &wrong] {
        let log = daemon.log();
        let status = std::fs::read_to_string(daemon.status()).unwrap();
        for secret in [PASSWORD, WRONG_PASSWORD] {
            assert!(!log.contains(secret), "{log}");
            assert!(!status.contains(secret), "{status}");
        }
    }
    assert!(
        wrong.log().contains("bad user name or password") || wrong.log().contains("not authorized")
    );

    // Stopped: it says `offline` itself before it disconnects (a clean
    // disconnect discards the last will), and stops promptly.
    let mut right = right;
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(right.process.0.id() as i32, libc::SIGTERM) };
    let exited = right.process.0.wait().unwrap();
    assert!(exited.success(), "{exited:?}: {}", right.log());
    watcher.wait_last("wanwatch/availability", "offline");
}

#[test]
fn tls_to_a_broker_of_its_own_ca_and_a_clear_error_for_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path(), None, true) else {
        return;
    };
    make_ca(dir.path(), "other-ca");
    let watcher = Watcher::connect(&broker, None);
    let link = Link::up();
    let section = |ca: &str, client_id: &str| {
        format!(
            "[mqtt]\nbroker = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\nclient_id = \"{client_id}\"\ntopic_prefix = \"{client_id}\"\n",
            broker.tls_port.unwrap(),
            dir.path().join(ca).display()
        )
    };
    let trusted = Daemon::start(&link, &section("ca.pem", "trusted"));
    let stranger = Daemon::start(&link, &section("other-ca.pem", "stranger"));
    let status = wait_for(&trusted.status(), "connected over TLS", WAIT, |s| {
        s["mqtt"]["connected"] == true
    });
    assert!(
        status["mqtt"]["broker"]
            .as_str()
            .is_some_and(|b| b.starts_with("mqtts://")),
        "{status}"
    );
    watcher.wait_last("trusted/availability", "online");
    watcher.wait_last("trusted/state", "up");
    let status = wait_for(&stranger.status(), "the certificate refused", WAIT, |s| {
        s["mqtt"]["error"].is_string()
    });
    let error = status["mqtt"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("TLS: ") && error.contains("certificate"),
        "{error}"
    );
    assert!(
        !watcher
            .seen
            .items()
            .iter()
            .any(|m| m.topic.starts_with("stranger/")),
        "nothing went out over a connection to an unknown CA's broker"
    );
}
