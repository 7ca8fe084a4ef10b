// wanwatch dashboard: reads the daemon's JSON API, follows its event
// stream, draws its own SVG charts. No framework and no chart library: the
// page must load from the daemon alone with the WAN down, stay small, and
// the state timeline is a chart no line-chart library draws as is.
"use strict";

const API = "/api/v1";
const WINDOWS = { "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const STATUS_POLL_MS = 5000; // the status file is rewritten every 5 s
const LIVE_KEEP_MS = 6 * 3600e3; // rounds seen live, kept for the charts
const PALETTE = ["#3563e9", "#d9488b", "#0f9fb0", "#8a5cf5", "#e07a1f", "#5b8c00", "#c23b3b", "#607089"];

const $ = (id) => document.getElementById(id);
const windowLabel = () => view.window.replace(/(\d+)/, "$1 "); // "24 h"

const view = {
  window: "24h",
  status: null,
  transitions: [], // wan transitions in the window, oldest first
  outages: null, // null: history not available
  stats: null,
  series: null, // per-minute probe aggregates per target, when the API has them
  live: new Map(), // target -> [{at, rtt (ms or null), ok}] from the rounds the status showed
  historyNote: "",
};

// ---- formatting -----------------------------------------------------------

function fmtDuration(ms) {
  if (ms == null || !isFinite(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (d) return d + " d" + (h ? " " + h + " h" : "");
  if (h) return h + " h" + (m ? " " + m + " min" : "");
  if (m) return m + " min" + (r ? " " + r + " s" : "");
  return r + " s";
}

const pad = (n) => String(n).padStart(2, "0");
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const clock = (d, seconds) => pad(d.getHours()) + ":" + pad(d.getMinutes()) + (seconds ? ":" + pad(d.getSeconds()) : "");
const day = (d) => d.getDate() + " " + MONTHS[d.getMonth()];

// Local time, 24 h (compact and the same in every locale); the day too when
// not today.
function fmtTime(ms) {
  if (ms == null) return "–";
  const t = new Date(ms);
  if (t.toDateString() === new Date().toDateString()) return clock(t, true);
  return DAYS[t.getDay()] + " " + day(t) + " " + clock(t, true);
}

function fmtMs(v) {
  if (v == null || !isFinite(v)) return "–";
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function fmtPct(share) {
  if (share == null || !isFinite(share)) return "–";
  const p = share * 100;
  return (p >= 99.995 || p === 0 ? p.toFixed(0) : p >= 99 ? p.toFixed(3) : p.toFixed(1)) + " %";
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function fillTable(id, rows, emptyText) {
  const body = $(id).tBodies[0];
  const span = $(id).tHead.rows[0].cells.length;
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: span }, emptyText))]));
}

function pill(state) {
  return el("span", { class: "pill " + state }, state);
}

// ---- reading the API ------------------------------------------------------

class Unavailable extends Error {}

async function getJson(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  if (response.status === 503) {
    const body = await response.json().catch(() => ({}));
    throw new Unavailable(body.error || "history is not available");
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

// An event as the history stores it ({id, at_ms, kind, data}) or as the
// daemon observed it: the observed fields either way.
function observed(e) {
  return e && e.data && typeof e.data === "object" && !Array.isArray(e.data) ? { at_ms: e.at_ms, ...e.data } : e;
}

function list(json, key) {
  return Array.isArray(json) ? json : (json && (json[key] || json.items)) || [];
}

async function loadStatus() {
  view.status = await getJson("/status");
  noteRounds(view.status);
  renderStatus();
}

let historyAsked = 0;

async function loadHistory() {
  // Only the last request's answers are drawn: windows clicked in a row
  // may be answered out of order.
  const asked = ++historyAsked;
  const since = Date.now() - WINDOWS[view.window];
  const q = "?since=" + since;
  try {
    // First alone: when it finds no history, the others are not asked.
    const transitions = await getJson("/transitions" + q);
    const [outages, stats, series] = await Promise.all([getJson("/outages" + q), getJson("/stats" + q), fetchSeries(since)]);
    if (asked !== historyAsked) return;
    view.transitions = list(transitions, "transitions").map(observed).filter((t) => t.current);
    view.outages = list(outages, "outages");
    view.stats = stats;
    view.series = series;
    view.historyNote = "";
  } catch (e) {
    if (!(e instanceof Unavailable)) throw e;
    if (asked !== historyAsked) return;
    // The watchdog runs without its database: show what the status has.
    view.transitions = [];
    view.outages = null;
    view.stats = null;
    view.series = null;
    view.historyNote = "History is not available (" + e.message + "): showing the daemon's recent transitions only.";
  }
  renderHistory();
}

async function fetchSeries(since) {
  const response = await fetch("/dashboard/series?since=" + since);
  if (response.status === 503) throw new Unavailable("history is not available");
  if (!response.ok) throw new Error("series: HTTP " + response.status);
  return response.json();
}

// The last result per target, once per round, as the live series for the
// charts (the event stream carries no rounds).
function noteRounds(status) {
  for (const t of status.targets || []) {
    let points = view.live.get(t.target);
    if (!points) view.live.set(t.target, (points = []));
    if (points.length && points[points.length - 1].at >= t.at_ms) continue;
    points.push({ at: t.at_ms, ok: t.ok, rtt: t.ok && t.rtt_us != null ? t.rtt_us / 1000 : null });
    while (points.length && points[0].at < t.at_ms - LIVE_KEEP_MS) points.shift();
  }
}

// ---- the state now ----------------------------------------------------------

function renderNow() {
  const s = view.status;
  if (!s) return;
  $("now").dataset.state = s.state;
  $("state").textContent = s.state;
  document.title = "wanwatch: " + s.state;
  $("since").textContent = "since " + fmtTime(s.since_ms) + " (" + fmtDuration(Date.now() - s.since_ms) + ")";
  const power = $("power");
  power.textContent = s.power == null ? "not monitored" : s.power === "on" ? "on" : "OUT";
  power.className = s.power === "out" ? "bad" : "";
  const round = $("last-round");
  if (s.last_round_at_ms == null) {
    round.textContent = "none yet";
  } else {
    const age = Date.now() - s.last_round_at_ms;
    round.textContent = fmtDuration(age) + " ago" + (s.dropped_rounds ? ", " + s.dropped_rounds + " dropped" : "");
    // Rounds that stop coming mean the watchdog itself is stuck.
    round.className = age > 60e3 ? "bad" : "";
  }
  $("mode").textContent = s.dry_run ? "dry run (no real action)" : "acting";
}

function renderStatus() {
  renderNow();
  renderTargets();
  renderPlugins();
  renderNotifications();
  renderActions();
  renderTimeline();
  renderSeries();
  if (!view.stats) renderUptime();
}

function renderTargets() {
  const perTarget = new Map();
  for (const t of view.stats ? view.stats.targets : []) perTarget.set(t.target, t);
  const rows = (view.status.targets || []).map((t) => {
    const st = perTarget.get(t.target) || {};
    const last = t.ok ? (t.rtt_us != null ? fmtMs(t.rtt_us / 1000) + " ms" : "ok") : "no answer";
    return el(
      "tr",
      {},
      el("td", {}, t.target),
      el("td", {}, t.role),
      el("td", {}, t.address + (t.kind && t.kind !== "icmp" ? " (" + t.kind + ")" : "")),
      el("td", { class: t.ok ? "" : "bad" }, last),
      el("td", {}, st.loss_percent != null ? st.loss_percent.toFixed(st.loss_percent % 1 ? 2 : 0) + " %" : "–"),
      el("td", {}, fmtMs(st.rtt_p50_ms)),
      el("td", {}, fmtMs(st.rtt_p95_ms)),
      el("td", {}, fmtMs(st.rtt_p99_ms)),
    );
  });
  fillTable("targets", rows, "no probe round yet");
}

function renderPlugins() {
  const rows = (view.status.plugins || []).map((p) => {
    const health = p.quarantined
      ? el("span", { class: "bad" }, "quarantined")
      : p.consecutive_failures
        ? el("span", { class: "warn" }, "failing ×" + p.consecutive_failures)
        : el("span", { class: "good" }, "ok");
    const name = el("td", {}, p.name);
    if (p.last_error) name.append(el("div", { class: "muted" }, "last error " + fmtTime(p.last_error_at_ms) + ": " + p.last_error));
    return el("tr", {}, name, el("td", {}, health), el("td", {}, String(p.calls)), el("td", {}, String(p.failures)), el("td", {}, el("code", {}, p.version || "–")));
  });
  fillTable("plugins", rows, "no plugin loaded");
}

function renderNotifications() {
  const n = view.status.notifications;
  const box = $("notifications");
  if (!n) {
    box.replaceChildren(el("p", { class: "muted" }, "No notification sink configured."));
    return;
  }
  const items = (n.sinks || []).map((s) =>
    el(
      "li",
      {},
      el("strong", {}, s.name),
      ": " + s.pending + " pending, " + s.delivered + " delivered" + (s.given_up ? ", " + s.given_up + " given up" : ""),
      s.failing ? el("div", { class: "bad" }, "failing: " + s.failing) : null,
    ),
  );
  box.replaceChildren(
    el("div", { class: "figure" }, el("div", { class: "v" }, String(n.queued)), el("div", { class: "l" }, "queued, not yet delivered")),
    el("ul", {}, ...items),
  );
}

function renderActions() {
  const rows = (view.status.actions || [])
    .slice(-10)
    .reverse()
    .map((a) => {
      const what = a.action === "power-cycle" ? "power-cycle " + a.device + " (" + a.off_seconds + " s off)" : a.action === "notify" ? "notify “" + a.title + "”" : a.action;
      const ok = a.outcome === "done" || a.outcome === "queued" || a.outcome === "dry-run";
      return el("tr", {}, el("td", {}, fmtTime(a.at_ms)), el("td", {}, a.plugin), el("td", {}, what), el("td", { class: ok ? "" : "bad" }, a.outcome));
    });
  fillTable("actions", rows, "no action yet");
}

// ---- history ------------------------------------------------------------------

// Every transition known: the window's from the history and the status's
// recent ones (all there is without a history), oldest first, one per instant.
function knownTransitions() {
  const byTime = new Map();
  for (const t of view.status ? view.status.transitions || [] : []) byTime.set(t.at_ms, t);
  for (const t of view.transitions) byTime.set(t.at_ms, t);
  return [...byTime.values()].sort((a, b) => a.at_ms - b.at_ms);
}

// The window as spans of one state: [from, to, state], "none" where nothing
// is known (before the first state on record).
function segments(from, to) {
  const ts = knownTransitions();
  const spans = [];
  if (ts.length) {
    const first = ts[0];
    spans.push([first.at_ms - first.previous_duration_ms, first.at_ms, first.previous]);
    ts.forEach((t, i) => spans.push([t.at_ms, i + 1 < ts.length ? ts[i + 1].at_ms : to, t.current]));
  } else if (view.status) {
    spans.push([view.status.since_ms, to, view.status.state]);
  }
  const out = [];
  let cursor = from;
  for (const [a, b, state] of spans) {
    const s = Math.max(a, cursor), e = Math.min(b, to);
    if (e <= s) continue;
    if (s > cursor) out.push([cursor, s, "none"]);
    out.push([s, e, state]);
    cursor = e;
  }
  if (cursor < to) out.push([cursor, to, "none"]);
  return out;
}

function renderHistory() {
  const note = $("history-note");
  note.hidden = !view.historyNote;
  note.textContent = view.historyNote;
  document.querySelectorAll(".window-label").forEach((e) => (e.textContent = "· last " + windowLabel()));
  renderTimeline();
  renderUptime();
  renderOutages();
  renderSeries();
  if (view.status) renderTargets();
}

function renderTimeline() {
  const box = $("timeline");
  const to = Date.now(), from = to - WINDOWS[view.window];
  const spans = segments(from, to);
  const w = box.clientWidth || 600, h = 58, left = 4, right = 4, band = 30;
  const x = (t) => left + ((t - from) / (to - from)) * (w - left - right);
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img", "aria-label": "WAN state over the last " + windowLabel() });
  for (const [a, b, state] of spans) {
    svg.append(svgEl("rect", { x: x(a), y: 0, width: Math.max(1, x(b) - x(a)), height: band, class: "seg-" + state }));
  }
  svg.append(timeAxis(from, to, x, band, h, w));
  box.replaceChildren(svg);
  hover(box, svg, (px) => {
    const t = from + ((px - left) / (w - left - right)) * (to - from);
    const span = spans.find(([a, b]) => t >= a && t < b);
    if (!span) return null;
    const [a, b, state] = span;
    return { x: px, text: (state === "none" ? "no data" : state) + "\n" + fmtTime(a) + " → " + (b >= to - 1000 ? "now" : fmtTime(b)) + "\n" + fmtDuration(b - a) };
  });
}

function renderUptime() {
  const box = $("uptime");
  const s = view.stats;
  let shares, figures;
  if (s) {
    shares = { up: s.up_share, sick: s.sick_share, down: s.down_share };
    figures = [
      [fmtPct(s.up_share), "up"],
      [String(s.outages), "outages"],
      [fmtDuration(s.downtime_ms), "downtime"],
      [fmtDuration(s.longest_outage_ms), "longest outage"],
      [fmtDuration(s.mttr_ms), "MTTR"],
      [fmtDuration(s.mtbf_ms), "MTBF"],
      [String(s.power_cycles), "power cycles"],
      [s.outages_with_cycles ? s.fixed_by_cycle + " of " + s.outages_with_cycles : "–", "outages a cycle fixed"],
    ];
  } else {
    // No history: what the known transitions tell about the window.
    const to = Date.now(), from = to - WINDOWS[view.window];
    const time = { up: 0, sick: 0, down: 0, none: 0 };
    for (const [a, b, state] of segments(from, to)) time[state] += b - a;
    const known = time.up + time.sick + time.down;
    shares = known ? { up: time.up / known, sick: time.sick / known, down: time.down / known } : {};
    figures = [
      [fmtPct(shares.up), "up (known time)"],
      [fmtDuration(time.down), "down"],
      [fmtDuration(known), "on record"],
    ];
  }
  const bar = el("div", { class: "bar", title: "up / sick / down" });
  for (const state of ["up", "sick", "down"]) {
    if (shares[state] > 0) bar.append(el("span", { class: "seg", style: `width:${shares[state] * 100}%;background:var(--${state})` }));
  }
  box.replaceChildren(bar, ...figures.map(([v, l]) => el("div", { class: "figure" }, el("div", { class: "v" }, v), el("div", { class: "l" }, l))));
}

function renderOutages() {
  if (view.outages == null) {
    fillTable("outages", [], "history is not available");
    return;
  }
  const rows = view.outages
    .slice()
    .reverse()
    .map((o) => {
      const cycles = o.power_cycles.map((c) => fmtTime(c.at_ms) + " " + c.device + (c.outcome === "done" ? "" : " (" + c.outcome + ")"));
      const fixedBy = o.fixed_by_cycle == null ? "–" : "cycle " + o.fixed_by_cycle + " (" + o.power_cycles[o.fixed_by_cycle - 1].device + ")";
      return el(
        "tr",
        {},
        el("td", {}, fmtTime(o.start_ms)),
        el("td", {}, fmtDuration(o.duration_ms) + (o.end_ms == null ? " (ongoing)" : "")),
        el("td", {}, o.cause.replace(/-/g, " ")),
        el("td", { title: cycles.join("\n") }, String(cycles.length)),
        el("td", {}, fixedBy),
      );
    });
  fillTable("outages", rows, "no outage in the last " + windowLabel());
}

// ---- round trip and loss charts ------------------------------------------------

// Per target, [time, rtt ms or null] and [time, loss %]: per-minute
// aggregates from the history when there are, else the rounds seen live.
function chartData() {
  const rtt = [], loss = [];
  if (view.series && view.series.targets.length) {
    const bucket = view.series.bucket_ms;
    for (const s of view.series.targets) {
      // No probe in a bucket (the daemon was not running): a gap, not a line across.
      const pts = [];
      for (const p of s.points) {
        if (pts.length && p.at_ms - pts[pts.length - 1].at_ms > 1.5 * bucket) pts.push({ at_ms: p.at_ms - bucket, gap: true });
        pts.push(p);
      }
      rtt.push({ name: s.target, points: pts.map((p) => [p.at_ms, p.rtt_ms ?? null]) });
      loss.push({ name: s.target, points: pts.map((p) => [p.at_ms, p.gap ? null : (100 * (p.sent - p.answered)) / p.sent]) });
    }
    return { rtt, loss, from: Date.now() - WINDOWS[view.window], live: false };
  }
  let from = Date.now();
  for (const [name, pts] of view.live) {
    if (pts.length) from = Math.min(from, pts[0].at);
    rtt.push({ name, points: pts.map((p) => [p.at, p.rtt]) });
    // Loss per minute from the rounds seen in it.
    const minutes = new Map();
    for (const p of pts) {
      const m = Math.floor(p.at / 60e3) * 60e3;
      const b = minutes.get(m) || { n: 0, lost: 0 };
      b.n++;
      if (!p.ok) b.lost++;
      minutes.set(m, b);
    }
    loss.push({ name, points: [...minutes].map(([m, b]) => [m + 30e3, (100 * b.lost) / b.n]) });
  }
  return { rtt, loss, from: Math.min(from, Date.now() - 60e3), live: true };
}

function renderSeries() {
  const data = chartData();
  const to = Date.now();
  lineChart($("rtt"), data.rtt, data.from, to, { unit: " ms", fmt: fmtMs, floor: 1 });
  // Up to 5 % at least, so that a lost probe or two does not fill the chart.
  lineChart($("loss"), data.loss, data.from, to, { unit: " %", fmt: (v) => v.toFixed(v < 10 && v % 1 ? 1 : 0), floor: 5, cap: 100 });
  $("series-note").textContent = data.live
    ? "Since this page opened: the last round per target every " + STATUS_POLL_MS / 1000 + " s (the history has no per-minute series for the charts yet)."
    : "From the history's probe results, averaged per " + fmtDuration(view.series.bucket_ms) + ", last " + windowLabel() + ".";
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

const TIME_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400].map((s) => s * 1000);

function timeAxis(from, to, x, y, h, w) {
  const g = svgEl("g", { class: "axis" });
  const step = TIME_STEPS.find((s) => (to - from) / s <= Math.max(2, w / 75)) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = new Date().getTimezoneOffset() * 60e3; // ticks on local midnights and hours
  for (let t = Math.ceil((from - offset) / step) * step + offset; t <= to; t += step) {
    const d = new Date(t);
    const label = step >= 86400e3 || (d.getHours() === 0 && d.getMinutes() === 0 && step >= 3600e3) ? day(d) : clock(d, step < 60e3);
    g.append(svgEl("line", { x1: x(t), x2: x(t), y1: y, y2: y + 4, stroke: "currentColor", opacity: 0.4 }));
    const text = svgEl("text", { x: x(t), y: h - 3, "text-anchor": "middle" });
    text.textContent = label;
    g.append(text);
  }
  return g;
}

// A line per series, y from 0 to at least `floor` and at most `cap`.
function lineChart(box, series, from, to, { unit, fmt, floor, cap = Infinity }) {
  const w = box.clientWidth || 600, h = 170, left = 40, right = 8, top = 8, bottom = 22;
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v != null));
  const max = Math.min(cap, Math.max(floor, ...values) * 1.1);
  const step = niceStep(max, 4);
  const yMax = Math.min(cap, Math.ceil(max / step) * step);
  const x = (t) => left + ((t - from) / (to - from)) * (w - left - right);
  const y = (v) => top + (1 - v / yMax) * (h - top - bottom);
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img" });
  const grid = svgEl("g", { class: "grid axis" });
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    grid.append(svgEl("line", { x1: left, x2: w - right, y1: y(v), y2: y(v) }));
    const label = svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = v.toFixed(step < 1 ? Math.ceil(-Math.log10(step)) : 0);
    grid.append(label);
  }
  svg.append(grid, timeAxis(from, to, x, h - bottom, h, w));
  series.forEach((s, i) => {
    let d = "";
    let pen = false;
    for (const [t, v] of s.points) {
      if (v == null || t < from) {
        pen = false;
        continue;
      }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    }
    if (d) svg.append(svgEl("path", { d, class: "series", stroke: PALETTE[i % PALETTE.length], "stroke-linecap": "round" }));
    // A point between two gaps draws no line: mark it.
    s.points.forEach(([t, v], j) => {
      const alone = (k) => !s.points[k] || s.points[k][1] == null;
      if (v != null && t >= from && alone(j - 1) && alone(j + 1)) svg.append(svgEl("circle", { cx: x(t), cy: y(v), r: 2.5, fill: PALETTE[i % PALETTE.length] }));
    });
  });
  if (!values.length) {
    const empty = svgEl("text", { x: w / 2, y: h / 2, "text-anchor": "middle", class: "empty" });
    empty.textContent = series.length ? "no answer in this window" : "no data yet";
    svg.append(empty);
  }
  const cursor = svgEl("line", { class: "cursor", y1: top, y2: h - bottom, visibility: "hidden" });
  svg.append(cursor);
  const keys = el("div", { class: "series-keys" }, ...series.map((s, i) => el("span", {}, el("i", { style: "background:" + PALETTE[i % PALETTE.length] }), s.name)));
  box.replaceChildren(keys, svg);
  hover(box, svg, (px) => {
    const t = from + ((px - left) / (w - left - right)) * (to - from);
    let best = null;
    const lines = [];
    for (const s of series) {
      const p = nearest(s.points, t);
      if (!p) continue;
      if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      lines.push(s.name + ": " + (p[1] == null ? "no answer" : fmt(p[1]) + unit));
    }
    if (!best) {
      cursor.setAttribute("visibility", "hidden");
      return null;
    }
    cursor.setAttribute("x1", x(best[0]));
    cursor.setAttribute("x2", x(best[0]));
    cursor.setAttribute("visibility", "visible");
    return { x: x(best[0]), text: fmtTime(best[0]) + "\n" + lines.join("\n") };
  }, () => cursor.setAttribute("visibility", "hidden"));
}

function nearest(points, t) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return null;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < t) lo = mid + 1;
    else hi = mid;
  }
  const prev = points[lo - 1];
  return prev && t - prev[0] < points[lo][0] - t ? prev : points[lo];
}

// Shows what `at(x in svg units)` says under the pointer (mouse or touch).
function hover(box, svg, at, leave) {
  const tip = $("tip");
  svg.addEventListener("pointermove", (e) => {
    const r = svg.getBoundingClientRect();
    const px = ((e.clientX - r.left) / r.width) * svg.viewBox.baseVal.width;
    const found = at(px);
    if (!found) {
      tip.hidden = true;
      return;
    }
    tip.textContent = found.text;
    tip.hidden = false;
    const left = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 6);
    tip.style.left = Math.max(6, left) + "px";
    tip.style.top = Math.max(6, e.clientY - tip.offsetHeight - 12) + "px";
  });
  svg.addEventListener("pointerleave", () => {
    tip.hidden = true;
    if (leave) leave();
  });
}

// ---- live updates ---------------------------------------------------------------

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

const refreshStatus = debounce(() => loadStatus().catch(showError), 250);
const refreshHistory = debounce(() => loadHistory().catch(showError), 1500);

function showError(e) {
  const note = $("history-note");
  note.hidden = false;
  note.textContent = "Could not read the daemon: " + e.message;
}

const handlers = {
  wan(d) {
    const s = view.status;
    if (s) {
      s.state = d.current;
      s.since_ms = d.at_ms;
      s.transitions = [...(s.transitions || []), d];
    }
    view.transitions.push(d);
    renderNow();
    renderTimeline();
    refreshStatus();
    refreshHistory(); // an outage that begins or ends
  },
  power(d) {
    if (view.status) view.status.power = d.current;
    renderNow();
    refreshStatus();
  },
  action(d) {
    if (view.status) view.status.actions = [...(view.status.actions || []), d];
    renderActions();
    refreshStatus();
  },
  plugin(d) {
    if (view.status) view.status.plugins = (view.status.plugins || []).filter((p) => p.name !== d.name).concat([d]);
    renderPlugins();
  },
};

let stream = null;
let retryMs = 1000;
let received = 0;

function connect() {
  const live = $("live");
  stream = new EventSource(API + "/events");
  let lost = false;
  stream.onopen = () => {
    live.dataset.live = "live";
    live.textContent = "live";
    retryMs = 1000;
    // Whatever happened while the stream was away.
    if (lost) {
      refreshStatus();
      refreshHistory();
    }
  };
  stream.onerror = () => {
    lost = true;
    live.dataset.live = "down";
    live.textContent = "reconnecting…";
    // The browser retries by itself unless the server refused the stream.
    if (stream.readyState === EventSource.CLOSED) {
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    }
  };
  for (const [kind, handle] of Object.entries(handlers)) {
    stream.addEventListener(kind, (e) => {
      let data;
      try {
        data = observed(JSON.parse(e.data));
      } catch {
        return; // not an event this page knows
      }
      handle(data);
      // Counted where a test (or a curious person) can see the stream works.
      live.dataset.events = ++received;
      live.title = "the live event stream; last event " + fmtTime(Date.now());
    });
  }
}

function start() {
  document.querySelectorAll("[data-window]").forEach((b) =>
    b.addEventListener("click", () => {
      view.window = b.dataset.window;
      document.querySelectorAll("[data-window]").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
      loadHistory().catch(showError);
    }),
  );
  window.addEventListener("resize", debounce(() => view.status && renderStatus(), 150));
  loadStatus()
    .then(() => loadHistory())
    .catch(showError);
  connect();
  setInterval(() => {
    if (!document.hidden) loadStatus().catch(showError);
  }, STATUS_POLL_MS);
  // "since … (3 min)" keeps counting between updates.
  setInterval(renderNow, 1000);
}

start();
