// {{name}}: a wanwatch policy plugin in JavaScript.
//
// When the WAN goes down it power-cycles the modem (unless the fault is
// local: the LAN gateway is silent too) and tells people; when the WAN is
// back it says after how long. The host's interfaces are imported by their
// WIT names; each callback returns normally for `ok` or throws, and the host
// logs what it threw against the plugin (an Error as "Error: message" with
// its stack, anything else as JSON). 64-bit numbers (`atMs`,
// `previousDurationMs`) arrive as BigInt.
//
// The store's `delete` is a reserved word: import the interface as a whole
// and call it as a method,
//   import * as kv from 'wanwatch:policy/kv@0.2.0';
//   kv.set('since', String(t.atMs)); kv.get('since'); kv.delete('since');

import { log } from 'wanwatch:policy/log@0.2.0';
import { get as getSettings } from 'wanwatch:policy/settings@0.2.0';
import { powerCycle } from 'wanwatch:policy/power@0.2.0';
import { notify } from 'wanwatch:policy/notify@0.2.0';

// A duration as wanwatch writes it (and the Rust SDK's `human_duration`):
// "850ms", "9.2s", "7m08s", "2h03m", "3d04h". `ms` is a Number or a BigInt.
function humanDuration(ms) {
  ms = Number(ms);
  const s = Math.floor(ms / 1000);
  const two = (n) => String(n).padStart(2, '0');
  if (s < 1) return `${ms}ms`;
  if (s < 60) return `${s}.${Math.floor((ms % 1000) / 100)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor((s % 86400) / 3600))}h`;
}

// `[plugins.{{name}}.settings]` in the config; every setting is optional.
function settings() {
  return { device: 'modem', off_seconds: 10, ...JSON.parse(getSettings()) };
}

export function onWanSick(t) {
  // Most failed rounds are blips: wait for `down`.
  const answered = t.evidence.filter((e) => e.ok).length;
  log('info', `the WAN looks sick (${answered} probes answered)`);
}

export function onWanDown(t) {
  const { device, off_seconds } = settings();
  if (t.localFault) {
    log('warn', 'the LAN gateway is silent too: not cycling the modem');
    notify('WAN down', 'The router does not answer: check it and its cables.', 4);
    return;
  }
  powerCycle(device, off_seconds);
  notify('WAN down', `Power-cycled ${device}.`, 4);
}

export function onWanUp(t) {
  if (t.previous !== 'down') return;
  notify(`WAN back after ${humanDuration(t.previousDurationMs)}`, 'The internet answers again.', 3);
}

// The link became degraded or is back to normal (only with `[probe]
// degraded_loss` or `degraded_rtt` in the config). A degraded link is still
// up: say so, and leave the modem alone.
export function onLinkQuality(change) {
  const state = change.degraded ? 'degraded' : 'back to normal';
  log('info', `the link is ${state}: loss ${change.quality.lossPercent.toFixed(1)} %`);
}

export function onTimer(_name) {}
export function onPowerOut(_t) {}
export function onPowerRestored(_t) {}
