// The watcher's page: its sites and their outages, from the JSON API,
// refreshed every 15 s. Text only goes in through textContent.
"use strict";

const REFRESH_MS = 15000;

function when(ms) {
  return ms == null ? "–" : new Date(ms).toLocaleString();
}

function ago(ms) {
  if (ms == null) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return s + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function span(ms) {
  if (ms == null) return "–";
  const m = Math.round(ms / 60000);
  if (m < 1) return Math.round(ms / 1000) + " s";
  if (m < 60) return m + " min";
  return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(id, rows, render, empty) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = body.insertRow();
    const td = cell(tr, empty, "empty");
    td.colSpan = 6;
    return;
  }
  for (const r of rows) render(body.insertRow(), r);
}

function site(tr, s) {
  cell(tr, s.name);
  const state = cell(tr, "");
  const pill = document.createElement("span");
  pill.className = "pill " + (s.state === "waiting" ? "sick" : s.state);
  pill.textContent = s.state;
  state.appendChild(pill);
  cell(tr, s.last_seen_ms == null ? "never" : ago(s.last_seen_ms)).title = when(s.last_seen_ms);
  const off = s.clock_offset_ms;
  cell(tr, s.clock_skewed ? "off by " + span(Math.abs(off)) : "ok", s.clock_skewed ? "bad" : "good");
  const hb = s.heartbeat;
  let link = "–";
  if (hb) {
    link = hb.state;
    if (hb.summary && hb.summary.rtt_ms != null) link += ", " + hb.summary.rtt_ms.toFixed(1) + " ms";
  }
  cell(tr, link);
  cell(tr, hb ? hb.version : "–");
}

function outage(tr, o) {
  const w = o.watcher, r = o.report;
  cell(tr, o.site);
  cell(tr, w ? when(w.last_seen_ms) : "–");
  cell(tr, w ? (w.back_ms == null ? "still down" : when(w.back_ms)) : "–", w && w.back_ms == null ? "bad" : "");
  cell(tr, w ? span(w.duration_ms) : "not seen (shorter than missed_after)");
  cell(tr, r ? when(r.started_at_ms) + ", " + span(r.duration_ms) : "no report yet");
  cell(tr, r ? r.cause + " – " + r.evidence : "–");
}

async function get(path) {
  const answer = await fetch(path, { credentials: "same-origin" });
  if (!answer.ok) throw new Error(path + ": HTTP " + answer.status);
  return answer.json();
}

async function refresh() {
  const live = document.getElementById("live");
  try {
    const [sites, outages] = await Promise.all([get("/api/v1/sites"), get("/api/v1/outages?limit=50")]);
    fill("sites", sites.sites, site, "no site configured");
    fill("outages", outages.outages, outage, "no outage yet");
    live.dataset.live = "live";
    live.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    live.dataset.live = "down";
    live.textContent = String(e.message || e);
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
