//! Mains power-outage detection against several emulated always-on devices
//! on 127.0.0.1: the real poller over the real network stack, feeding the
//! real monitor.

use std::net::SocketAddr;
use std::time::Duration;

use wanwatch::config::ProbeConfig;
use wanwatch::monitor::Monitor;
use wanwatch::power::{Poller, PowerMonitor, PowerRound, PowerState, PowerTransition};
use wanwatch::quality::Quality;
use wanwatch::state::{StateMachine, Thresholds};
use wanwatch_tests::http::{Reply, Server};

/// An always-on device: answers anything, even with an error status, as a
/// smart plug with a login page does.
fn device(addr: Option<SocketAddr>) -> Server {
    let handler = |_: &wanwatch_tests::http::Request| Reply::status(401);
    match addr {
        Some(addr) => Server::start_on(addr, handler).expect("rebind the device's port"),
        None => Server::start(handler),
    }
}

struct House {
    names: Vec<String>,
    addrs: Vec<SocketAddr>,
    devices: Vec<Option<Server>>,
    poller: Poller,
    monitor: Monitor,
    runtime: tokio::runtime::Runtime,
    now: u64,
}

impl House {
    fn new(n: usize) -> House {
        let devices: Vec<Server> = (0..n).map(|_| device(None)).collect();
        let names: Vec<String> = (0..n).map(|i| format!("plug{i}")).collect();
        let urls: Vec<String> = devices.iter().map(Server::url).collect();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let poller = runtime
            .block_on(async { Poller::new(names.iter().zip(&urls), Duration::from_millis(500)) })
            .expect("poller");
        let wan = StateMachine::new(Thresholds::default(), 0);
        let quality = Quality::new(
            ProbeConfig::default().quality(Duration::from_secs(2)),
            [],
            0,
        );
        House {
            names,
            addrs: devices.iter().map(Server::addr).collect(),
            devices: devices.into_iter().map(Some).collect(),
            poller,
            monitor: Monitor::new(wan, quality, Some(PowerMonitor::new(0.5, 0))),
            runtime,
            now: 0,
        }
    }

    /// Device `i` loses power (its server stops) or gets it back (a server
    /// on the same port again).
    fn powered(&mut self, i: usize, on: bool) {
        self.devices[i] = on.then(|| device(Some(self.addrs[i])));
    }

    fn poll(&mut self) -> Option<PowerTransition> {
        self.now += 5_000;
        let devices = self.runtime.block_on(self.poller.round());
        assert_eq!(
            devices.iter().map(|d| d.device.clone()).collect::<Vec<_>>(),
            self.names
        );
        self.monitor.on_power_round(&PowerRound {
            at_ms: self.now,
            devices,
        })
    }
}

#[test]
fn more_than_half_silent_is_a_blackout_and_their_return_ends_it() {
    let mut house = House::new(3);
    assert_eq!(house.poll(), None);
    assert_eq!(house.monitor.power_state(), PowerState::On);

    // One of three silent: a device unplugged, not a blackout.
    house.powered(0, false);
    assert_eq!(house.poll(), None);

    // Two of three: the mains are out.
    house.powered(1, false);
    let out = house.poll().expect("a power transition");
    assert_eq!(
        (out.previous, out.current),
        (PowerState::On, PowerState::Out)
    );
    let answered: Vec<bool> = out.devices.iter().map(|d| d.answered).collect();
    assert_eq!(answered, [false, false, true]);
    assert_eq!(house.poll(), None, "still out: no new transition");

    // Power returns; devices boot one by one.
    house.powered(0, true);
    let back = house.poll().expect("restored once half answer");
    assert_eq!(
        (back.previous, back.current),
        (PowerState::Out, PowerState::On)
    );
    assert_eq!(back.previous_duration_ms, 10_000);
    house.powered(1, true);
    assert_eq!(house.poll(), None);
}

#[test]
fn a_device_that_hangs_counts_as_silent_within_the_timeout() {
    let hanging = Server::start(|_| Reply::Hang);
    let fine = device(None);
    let names = ["hangs".to_string(), "fine".to_string()];
    let urls = [hanging.url(), fine.url()];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let poller = Poller::new(names.iter().zip(&urls), Duration::from_millis(300)).unwrap();
    let start = std::time::Instant::now();
    let devices = runtime.block_on(poller.round());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        devices.iter().map(|d| d.answered).collect::<Vec<_>>(),
        [false, true]
    );
}
