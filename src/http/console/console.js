// streamguard operator console.
//
// One page, no build step, nothing loaded from elsewhere. Every number on it comes from
// the JSON API an operator could call with curl (`/v1/overview`, `/v1/units`,
// `/v1/conflicts…`, `/v1/breakers…`, `/v1/batches/{id}`, `/v1/runs…`, `/v1/me`), and every
// button calls the same API with the token typed in once per browser session
// (sessionStorage). Refusals show the service's own problem+json `detail`.
//
// Live by short polling, every 3 s while the tab is visible: the state lives in Postgres
// and every replica answers the same, so a poll is a handful of indexed counts on whatever
// replica the load balancer picks. Server-sent events would need a stream held open per
// viewer on one replica, fed by LISTEN/NOTIFY fan-out that does not exist today, and many
// proxies buffer or cut such streams; polling needs nothing but the routes themselves, and
// 3 s is well under the shortest retry delay, so nothing an operator acts on is missed.
"use strict";

const POLL_MS = 3000;
const UNIT_STATES = ["pending", "deferred", "loaded", "failed", "unresolved", "superseded", "cancelled"];
const BREAKER_STATES = ["closed", "open", "half_open", "forced_open", "disabled"];
const COLORS = { pending: "#3c6fd8", deferred: "#c7820a", loaded: "#1f8f4e", failed: "#c62d2d",
  unresolved: "#8e1b1b", superseded: "#8a94a6", cancelled: "#b5bcc8" };
const SERIES = ["#2f5bd3", "#12a39a", "#8a4fd3", "#d3822f", "#3d8f2f", "#c2418e", "#5a6b8c"];

const ui = { token: sessionStorage.getItem("streamguard.token"), me: null, clockSkew: 0,
  timer: null, viewKey: null, conflictPage: { cursors: [null], filters: {} }, breakers: null };

// ---------------------------------------------------------------- helpers

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const badge = (s) => `<span class="badge s-${esc(s)}">${esc(String(s ?? "—").replace("_", " "))}</span>`;
const num = (n) => (n ?? 0).toLocaleString("en-US");
const isAdmin = () => !!ui.me && ui.me.scopes.includes("admin");
const now = () => Date.now() + ui.clockSkew;

function keyText(key) {
  if (!key || typeof key !== "object") return esc(key);
  const vals = Object.values(key);
  return vals.length === 1 ? esc(vals[0]) : esc(Object.entries(key).map(([k, v]) => `${k}=${v}`).join(" "));
}

function dur(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function rel(iso) {
  if (!iso) return "";
  const d = new Date(iso).getTime() - now();
  return Math.abs(d) < 1000 ? "now" : d > 0 ? `in ${dur(d)}` : `${dur(d)} ago`;
}

function when(iso) {
  if (!iso) return '<span class="muted">—</span>';
  const d = new Date(iso);
  const today = new Date(now()).toDateString() === d.toDateString();
  const text = today ? d.toLocaleTimeString() : d.toLocaleString();
  return `<span title="${esc(iso)}">${esc(text)}</span> <span class="muted">(${esc(rel(iso))})</span>`;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (ui.token) headers.Authorization = `Bearer ${ui.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    return { ok: false, status: 0, body: null, detail: `the service cannot be reached (${e.message})` };
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  const detail = res.ok ? null : (data && (data.detail || data.title)) || `${res.status} ${res.statusText}`;
  if (res.status === 401) showSignIn(detail);
  return { ok: res.ok, status: res.status, body: data, detail };
}

// The answer of an action, as the page shows it: the service's words either way.
function showResult(el, r, okText) {
  el.hidden = false;
  el.className = r.ok ? "result" : "result refused";
  el.textContent = r.ok ? okText(r.body) : `Refused (${r.status}): ${r.detail}`;
}

// ---------------------------------------------------------------- sign-in

function showSignIn(detail) {
  $("#signin").hidden = false;
  $("#main").hidden = true;
  const err = $("#signin-error");
  err.hidden = !ui.token;
  err.textContent = ui.token ? `The service refused the token: ${detail}` : "";
  $("#token").focus();
}

async function whoAmI() {
  const r = await api("/v1/me");
  if (r.status === 401) return false;
  if (r.status === 403) { showSignIn(r.detail); return false; }   // e.g. a write-only token
  if (!r.ok) { banner(`Cannot read /v1/me: ${r.detail}`); return false; }
  ui.me = r.body;
  $("#signin").hidden = true;
  $("#main").hidden = false;
  const scopes = ui.me.scopes.join(", ");
  $("#whoami").textContent = ui.me.tokens_configured ? `${ui.me.name} (${scopes})` : "no tokens configured: full access";
  $("#signout").hidden = !ui.me.tokens_configured;
  return true;
}

$("#signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  ui.token = $("#token").value.trim();
  sessionStorage.setItem("streamguard.token", ui.token);
  if (await whoAmI()) { ui.viewKey = null; tick(); }
});

$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem("streamguard.token");
  ui.token = null; ui.me = null;
  location.reload();
});

function banner(text) {
  const b = $("#banner");
  b.hidden = !text;
  b.textContent = text || "";
}

// ---------------------------------------------------------------- routing and polling

function route() {
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  const parts = (path || "now").split("/").map(decodeURIComponent);
  return { view: parts[0] || "now", arg: parts.slice(1).join("/") || null };
}

const VIEWS = {};

async function tick() {
  clearTimeout(ui.timer);
  if (!ui.me) return;
  // One poll loop: a tick started by a click or a hash change supersedes the one in flight,
  // whose late answers are dropped (it would write into a view that is gone).
  const gen = (ui.gen = (ui.gen || 0) + 1);
  const { view, arg } = route();
  const key = location.hash || "#/now";
  const spec = VIEWS[view] || VIEWS.now;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === view || (view === "runs" && a.dataset.view === "batches"));
  if (ui.viewKey !== key) {
    ui.viewKey = key;
    $("#main").innerHTML = spec.skeleton(arg);
    if (spec.wire) spec.wire(arg);
  }
  let failed = null;
  try { failed = await spec.refresh(arg); } catch (e) { failed = String(e); }
  if (gen !== ui.gen) return;
  const live = $("#live");
  live.classList.toggle("stale", !!failed);
  live.textContent = failed ? "not updating" : `live · ${new Date().toLocaleTimeString()}`;
  banner(failed);
  ui.timer = setTimeout(tick, POLL_MS);
}

window.addEventListener("hashchange", tick);
document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); else clearTimeout(ui.timer); });

// ---------------------------------------------------------------- shared by the views

async function breakerMap() {
  const r = await api("/v1/breakers");
  if (!r.ok) throw new Error(`/v1/breakers: ${r.detail}`);
  ui.breakers = r.body;
  return r.body;
}

function breakerOf(list, unit) {
  const scope = list.scope_by === "table" ? unit.table : unit.processor_name;
  return list.breakers.find((b) => b.scope === scope);
}

function clickableRows(root) {
  for (const tr of root.querySelectorAll("tr.click")) tr.addEventListener("click", () => { if (tr.dataset.href) location.hash = tr.dataset.href; });
}

function stateCounts(counts) {
  const total = UNIT_STATES.reduce((n, s) => n + (counts[s] || 0), 0) || 1;
  const bar = UNIT_STATES.filter((s) => counts[s]).map((s) => `<i data-w="${(100 * counts[s]) / total}" data-c="${COLORS[s]}" title="${s}: ${counts[s]}"></i>`).join("");
  return `<div class="bar">${bar}</div><div class="states">${UNIT_STATES.filter((s) => counts[s]).map((s) => `<span>${badge(s)} <b>${counts[s]}</b></span>`).join("")}</div>`;
}

function paintBars() {
  for (const i of document.querySelectorAll(".bar i")) { i.style.width = `${i.dataset.w}%`; i.style.background = i.dataset.c; }
}

// ---------------------------------------------------------------- start

// The view scripts (conflicts.js, views.js) load after this one (all `defer`), so the page
// starts once the document and every script are in.
document.addEventListener("DOMContentLoaded", async () => {
  if (await whoAmI()) tick();
});
