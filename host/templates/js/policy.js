// {{name}}: a wanwatch policy plugin in JavaScript.
//
// When the WAN goes down it power-cycles the modem (unless the fault is
// local: the LAN gateway is silent too) and tells people; when the WAN is
// back it says after how long. The host's interfaces are imported by their
// WIT names; each callback returns normally for `ok` or throws a string,
// which the host logs against the plugin. 64-bit numbers (`atMs`,
// `previousDurationMs`) arrive as BigInt.

import { log } from 'wanwatch:policy/log@0.1.0';
import { get as getSettings } from 'wanwatch:policy/settings@0.1.0';
import { powerCycle } from 'wanwatch:policy/power@0.1.0';
import { notify } from 'wanwatch:policy/notify@0.1.0';

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
  const seconds = Number(t.previousDurationMs / 1000n);
  notify(`WAN back after ${seconds} s`, 'The internet answers again.', 3);
}

export function onTimer(_name) {}
export function onPowerOut(_t) {}
export function onPowerRestored(_t) {}
