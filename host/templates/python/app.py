"""{{name}}: a wanwatch policy plugin in Python.

When the WAN goes down it power-cycles the modem (unless the fault is
local: the LAN gateway is silent too) and tells people; when the WAN is
back it says after how long. The bindings (`wit_world`) are generated from
wit/policy.wit by componentize-py when the plugin is built. A callback
returns normally for `ok`, or raises `Err("message")`, which the host logs
against the plugin; so does an `Err` raised by a host call and not caught.
"""

import json

import wit_world
from wit_world.imports import log, notify, power, settings
from wit_world.imports.types import PowerTransition, QualityChange, Transition, WanState


def human_duration(ms: int) -> str:
    """A duration as wanwatch writes it (and the Rust SDK's `human_duration`):
    "850ms", "9.2s", "7m08s", "2h03m", "3d04h"."""
    s = ms // 1000
    if s < 1:
        return f"{ms}ms"
    if s < 60:
        return f"{s}.{ms % 1000 // 100}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02}m"
    return f"{s // 86400}d{s % 86400 // 3600:02}h"


def read_settings() -> dict:
    """`[plugins.{{name}}.settings]` in the config; every setting is optional."""
    return {"device": "modem", "off_seconds": 10, **json.loads(settings.get())}


class WitWorld(wit_world.WitWorld):
    def on_wan_sick(self, transition: Transition) -> None:
        # Most failed rounds are blips: wait for `down`.
        answered = sum(1 for e in transition.evidence if e.ok)
        log.log(log.Level.INFO, f"the WAN looks sick ({answered} probes answered)")

    def on_wan_down(self, transition: Transition) -> None:
        s = read_settings()
        if transition.local_fault:
            log.log(log.Level.WARN, "the LAN gateway is silent too: not cycling the modem")
            notify.notify("WAN down", "The router does not answer: check it and its cables.", 4)
            return
        power.power_cycle(s["device"], s["off_seconds"])
        notify.notify("WAN down", f"Power-cycled {s['device']}.", 4)

    def on_wan_up(self, transition: Transition) -> None:
        if transition.previous != WanState.DOWN:
            return
        notify.notify(
            f"WAN back after {human_duration(transition.previous_duration_ms)}",
            "The internet answers again.",
            3,
        )

    def on_link_quality(self, change: QualityChange) -> None:
        # Only called with `[probe] degraded_loss` or `degraded_rtt` in the
        # config. A degraded link is still up: say so, leave the modem alone.
        state = "degraded" if change.degraded else "back to normal"
        log.log(log.Level.INFO, f"the link is {state}: loss {change.quality.loss_percent:.1f} %")

    def on_timer(self, name: str) -> None:
        pass

    def on_power_out(self, transition: PowerTransition) -> None:
        pass

    def on_power_restored(self, transition: PowerTransition) -> None:
        pass
