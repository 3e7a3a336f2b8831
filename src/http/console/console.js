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

// ---------------------------------------------------------------- Now

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

// Why a waiting unit waits, in words: what refused its last attempt, and whether its
// breaker holds it too.
function whyWaiting(unit, list) {
  const reasons = [];
  const err = unit.error || "";
  const refused = `attempt ${unit.attempts} was refused`;
  if (/streaming buffer/i.test(err)) reasons.push(`rows still in BigQuery's streaming buffer (${refused})`);
  else if (/concurrent|serialize/i.test(err)) reasons.push(`another DML statement on the table (${refused})`);
  else if (/quota|rate/i.test(err)) reasons.push(`BigQuery quota or rate limit (${refused})`);
  else if (err) reasons.push(esc(err));
  const b = breakerOf(list, unit);
  if (b && ["open", "forced_open", "half_open"].includes(b.state)) {
    const until = b.state === "forced_open" ? "until an operator resets it" : `probe ${rel(b.reopens_at)}`;
    reasons.push(`held by the ${b.state.replace("_", " ")} breaker of ${esc(b.scope)} (${esc(until)})`);
  }
  if (!reasons.length) reasons.push(unit.attempts ? "waiting for its next attempt" : "waiting for its first attempt");
  return reasons.join("; ");
}

function attention(o, list, failedUnits) {
  const items = [];
  for (const b of list.breakers) {
    if (b.state === "forced_open") items.push(["bad", `Breaker ${b.scope} is forced open by ${b.last_actor}: nothing of it is written until a reset`, `#/breakers/${encodeURIComponent(b.scope)}`]);
  }
  if (o.units.failed) items.push(["bad", `${o.units.failed} unit(s) failed permanently${failedUnits[0] ? ` — latest: ${failedUnits[0].error || "no message"}` : ""}`, "#/batches"]);
  if (o.units.unresolved) items.push(["bad", `${o.units.unresolved} unit(s) gave up after every retry (resolution timeout): resolve, retry or force them`, "#/conflicts?resolution=timeout"]);
  if (o.jobs.lease_expired) items.push(["bad", `${o.jobs.lease_expired} running job(s) lost their lease (a replica died?); the next claim takes them`, null]);
  if (o.oldest_due_seconds > 60) items.push(["warn", `Schedulers are behind: the oldest due job has waited ${dur(o.oldest_due_seconds * 1000)}`, null]);
  for (const b of list.breakers) {
    if (b.state === "open" || b.state === "half_open") items.push(["warn", `Breaker ${b.scope} is ${b.state.replace("_", " ")} (${b.last_reason || ""}); probe ${rel(b.reopens_at)}`, `#/breakers/${encodeURIComponent(b.scope)}`]);
  }
  if (o.units.deferred) items.push(["warn", `${o.units.deferred} unit(s) waiting to be retried; the next attempt runs ${rel(o.next_scheduled_at) || "soon"}`, null]);
  if (o.alerts_pending) items.push(["warn", `${o.alerts_pending} alert(s) not delivered yet`, null]);
  if (o.units.pending) items.push(["ok", `${o.units.pending} unit(s) pending their first attempt`, null]);
  return items;
}

VIEWS.now = {
  skeleton: () => `
    <div id="attention" class="card attention"><div class="headline">Loading…</div></div>
    <div class="grid" id="cards"></div>
    <div class="card"><h2>Waiting units <span class="muted" id="waiting-count"></span></h2>
      <p class="muted">Which keys wait, why, and when the service tries them again.</p>
      <div id="waiting"></div></div>`,
  async refresh() {
    const [or, list, failed, waiting] = await Promise.all([
      api("/v1/overview"), breakerMap(), api("/v1/units?state=failed&limit=5"), api("/v1/units?state=deferred&limit=200")]);
    if (!or.ok) return `/v1/overview: ${or.detail}`;
    const o = or.body;
    ui.clockSkew = new Date(o.as_of).getTime() - Date.now();
    const items = attention(o, list, failed.ok ? failed.body.units : []);
    const top = items[0];
    const att = $("#attention");
    att.className = `card attention ${top ? top[0] : ""}`;
    const link = (i) => (i[2] ? `<a href="${esc(i[2])}">${esc(i[1])}</a>` : esc(i[1]));
    att.innerHTML = top
      ? `<div class="label">Needs attention first</div><div class="headline" data-testid="attention">${link(top)}</div>
         ${items.length > 1 ? `<ul>${items.slice(1).map((i) => `<li>${link(i)}</li>`).join("")}</ul>` : ""}`
      : `<div class="label">Needs attention first</div><div class="headline okay" data-testid="attention">Nothing: every unit landed or was closed, every breaker lets writes through.</div>`;

    const total = UNIT_STATES.reduce((n, s) => n + o.units[s], 0);
    const bar = UNIT_STATES.filter((s) => o.units[s]).map((s) => `<i data-w="${(100 * o.units[s]) / total}" data-c="${COLORS[s]}" title="${s}: ${o.units[s]}"></i>`).join("");
    $("#cards").innerHTML = `
      <div class="card" data-testid="units"><div class="label">Write units</div><div class="stat">${num(total)}</div>
        <div class="bar">${bar}</div>
        <div class="states">${UNIT_STATES.map((s) => `<span data-state="${s}">${badge(s)} <b>${num(o.units[s])}</b></span>`).join("")}</div></div>
      <div class="card" data-testid="jobs"><div class="label">Jobs</div>
        <div class="trio"><div data-job="due"><div class="stat">${num(o.jobs.due)}</div><small>due</small></div>
          <div data-job="running"><div class="stat">${num(o.jobs.running)}</div><small>running</small></div>
          <div data-job="scheduled"><div class="stat">${num(o.jobs.scheduled)}</div><small>scheduled</small></div></div>
        <div class="muted">oldest due job: ${o.jobs.due ? dur(o.oldest_due_seconds * 1000) : "none due"}${o.jobs.lease_expired ? ` · <span class="error">${o.jobs.lease_expired} lease(s) expired</span>` : ""}</div>
        <div class="muted">next scheduled attempt: ${o.next_scheduled_at ? when(o.next_scheduled_at) : "none"}</div></div>
      <div class="card" data-testid="breakers"><div class="label">Breakers</div>
        <div class="states">${BREAKER_STATES.map((s) => `<span data-state="${s}">${badge(s)} <b>${num(o.breakers[s])}</b></span>`).join("")}</div></div>
      <div class="card"><div class="label">Conflicts unresolved · alerts pending</div>
        <div class="stat"><a href="#/conflicts" data-testid="conflicts-unresolved">${num(o.conflicts_unresolved)}</a> · <span data-testid="alerts-pending">${num(o.alerts_pending)}</span></div></div>`;
    for (const i of document.querySelectorAll(".bar i")) { i.style.width = `${i.dataset.w}%`; i.style.background = i.dataset.c; }

    const units = waiting.ok ? waiting.body.units : [];
    units.sort((a, b) => (a.next_attempt_at || "").localeCompare(b.next_attempt_at || ""));
    $("#waiting-count").textContent = `(${units.length}${units.length === 200 ? "+" : ""})`;
    $("#waiting").innerHTML = units.length
      ? `<table data-testid="waiting"><thead><tr><th>Key</th><th>Processor · table</th><th class="num">Attempts</th><th>Why it waits</th><th>Next attempt</th></tr></thead><tbody>
        ${units.map((u) => `<tr class="${u.conflict_id ? "click" : ""}" data-href="${u.conflict_id ? `#/conflicts/${u.conflict_id}` : ""}">
          <td class="mono">${keyText(u.key)}</td><td>${esc(u.processor_name)}<br><span class="muted mono">${esc(u.table)}</span></td>
          <td class="num">${u.attempts}</td><td class="why">${whyWaiting(u, list)}</td><td>${when(u.next_attempt_at)}</td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">No unit is waiting.</p>';
    clickableRows($("#waiting"));
    return null;
  },
};

function clickableRows(root) {
  for (const tr of root.querySelectorAll("tr.click")) tr.addEventListener("click", () => { if (tr.dataset.href) location.hash = tr.dataset.href; });
}

// ---------------------------------------------------------------- Conflicts: chart

// The seed's daily summary, per day and processor: one bar per processor and day, its
// resolved part in the processor's colour and its unresolved part in red on top; the
// average retries above it. Drawn as inline SVG.
function chart(summary, days) {
  const byDay = new Map();
  const procs = [...new Set(summary.map((r) => r.processor_name))].sort();
  for (const r of summary) {
    const d = byDay.get(r.date) || new Map();
    const p = d.get(r.processor_name) || { total: 0, resolved: 0, unresolved: 0, retries: 0 };
    p.total += r.total_conflicts; p.resolved += r.resolved; p.unresolved += r.unresolved; p.retries += r.avg_retries * r.total_conflicts;
    d.set(r.processor_name, p);
    byDay.set(r.date, d);
  }
  const dates = [];
  const end = new Date(now());
  for (let i = days - 1; i >= 0; i--) dates.push(new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth(), end.getUTCDate() - i)).toISOString().slice(0, 10));
  const max = Math.max(1, ...summary.map(() => 0), ...[...byDay.values()].flatMap((d) => [...d.values()].map((p) => p.total)));
  const W = 960, H = 240, L = 40, B = 26, T = 18, plotH = H - B - T, groupW = (W - L) / dates.length;
  const barW = Math.min(28, (groupW * 0.8) / Math.max(1, procs.length));
  const y = (v) => T + plotH - (v / max) * plotH;
  const ticks = [0, Math.ceil(max / 2), max].filter((v, i, a) => a.indexOf(v) === i);
  let svg = `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="Conflicts per day and processor" data-testid="chart">`;
  for (const t of ticks) svg += `<line class="axis" x1="${L}" x2="${W}" y1="${y(t)}" y2="${y(t)}"/><text x="${L - 6}" y="${y(t) + 4}" text-anchor="end">${t}</text>`;
  dates.forEach((date, i) => {
    const x0 = L + i * groupW + (groupW - barW * procs.length) / 2;
    svg += `<text x="${L + i * groupW + groupW / 2}" y="${H - 8}" text-anchor="middle">${date.slice(5)}</text>`;
    procs.forEach((proc, j) => {
      const p = byDay.get(date)?.get(proc);
      if (!p || !p.total) return;
      const x = x0 + j * barW, tip = `${date} · ${proc}: ${p.total} conflicts, ${p.resolved} resolved, ${p.unresolved} unresolved, average retries ${(p.retries / p.total).toFixed(1)}`;
      svg += `<g class="bar-group" data-date="${date}" data-processor="${esc(proc)}" data-total="${p.total}"><title>${esc(tip)}</title>`;
      svg += `<rect x="${x + 1}" width="${barW - 2}" y="${y(p.resolved)}" height="${y(0) - y(p.resolved)}" fill="${SERIES[j % SERIES.length]}"/>`;
      if (p.unresolved) svg += `<rect x="${x + 1}" width="${barW - 2}" y="${y(p.total)}" height="${y(p.resolved) - y(p.total)}" fill="#c62d2d"/>`;
      svg += `<text x="${x + barW / 2}" y="${y(p.total) - 4}" text-anchor="middle">${p.total}</text></g>`;
    });
  });
  svg += `<line class="axis" x1="${L}" x2="${W}" y1="${y(0)}" y2="${y(0)}"/></svg>`;
  const legend = `<div class="legend">${procs.map((p, j) => `<span><i style="background:${SERIES[j % SERIES.length]}"></i>${esc(p)} (resolved)</span>`).join("")}<span><i style="background:#c62d2d"></i>unresolved</span></div>`;
  const rows = summary.map((r) => `<tr><td>${esc(r.date)}</td><td>${esc(r.processor_name)}</td><td class="mono">${esc(r.table)}</td><td class="num">${r.total_conflicts}</td><td class="num">${r.resolved}</td><td class="num">${r.unresolved}</td><td class="num">${r.avg_retries.toFixed(1)}</td></tr>`).join("");
  const table = summary.length
    ? `<details><summary class="muted">The numbers</summary><table data-testid="summary"><thead><tr><th>Day (UTC)</th><th>Processor</th><th>Table</th><th class="num">Total</th><th class="num">Resolved</th><th class="num">Unresolved</th><th class="num">Avg retries</th></tr></thead><tbody>${rows}</tbody></table></details>`
    : '<p class="muted">No conflicts in this window.</p>';
  return legend + svg + table;
}

// ---------------------------------------------------------------- Conflicts: list

const FILTERS = ["processor", "table", "key", "type", "resolution", "since", "until"];

function conflictQuery(cursor) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(ui.conflictPage.filters)) if (v) q.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  q.set("limit", "25");
  if (cursor) q.set("cursor", cursor);
  return q.toString();
}

VIEWS.conflicts = {
  skeleton: (arg) => (arg ? conflictSkeleton(arg) : `
    <div class="card"><h2>Conflicts per day and processor <span class="muted">(last 14 days, UTC)</span></h2><div id="chart">Loading…</div></div>
    <div class="card"><h2>All conflicts</h2>
      <form class="filters" id="filters">
        <label>Processor <input name="processor" list="processors" placeholder="any"></label>
        <label>Table <input name="table" list="tables" placeholder="any" size="34"></label>
        <label>Key contains <input name="key" placeholder="e.g. LAL"></label>
        <label>Type <select name="type"><option value="">any</option><option>streaming_buffer</option><option>concurrent_dml</option><option>quota_exceeded</option></select></label>
        <label>Resolution <select name="resolution"><option value="">any</option><option value="open">open (retrying)</option><option value="closed">closed</option><option>auto_retry</option><option>manual</option><option>force_mode</option><option>timeout</option><option>superseded</option></select></label>
        <label>Since <input name="since" type="datetime-local"></label>
        <label>Until <input name="until" type="datetime-local"></label>
        <button class="primary" type="submit">Search</button>
        <datalist id="processors"></datalist><datalist id="tables"></datalist>
      </form>
      <div id="list">Loading…</div>
      <div class="pager"><button id="newer" type="button">← Newer</button><button id="older" type="button">Older →</button><span class="muted" id="page-no"></span></div>
    </div>`),
  wire(arg) {
    if (arg) return wireConflict(arg);
    const form = $("#filters");
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    for (const f of FILTERS) if (params.get(f) || ui.conflictPage.filters[f]) form.elements[f].value = params.get(f) || ui.conflictPage.filters[f];
    ui.conflictPage.filters = Object.fromEntries(FILTERS.map((f) => [f, form.elements[f].value]));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      ui.conflictPage = { cursors: [null], filters: Object.fromEntries(FILTERS.map((f) => [f, form.elements[f].value])) };
      tick();
    });
    $("#older").addEventListener("click", () => { if (ui.conflictPage.next) { ui.conflictPage.cursors.push(ui.conflictPage.next); tick(); } });
    $("#newer").addEventListener("click", () => { if (ui.conflictPage.cursors.length > 1) { ui.conflictPage.cursors.pop(); tick(); } });
  },
  async refresh(arg) {
    if (arg) return refreshConflict(arg);
    const cursors = ui.conflictPage.cursors;
    const [sr, lr] = await Promise.all([api("/v1/conflicts/summary?days=14"), api(`/v1/conflicts?${conflictQuery(cursors[cursors.length - 1])}`)]);
    if (!sr.ok) return `/v1/conflicts/summary: ${sr.detail}`;
    $("#chart").innerHTML = chart(sr.body.summary, 14);
    $("#processors").innerHTML = [...new Set(sr.body.summary.map((r) => r.processor_name))].map((p) => `<option value="${esc(p)}">`).join("");
    $("#tables").innerHTML = [...new Set(sr.body.summary.map((r) => r.table))].map((p) => `<option value="${esc(p)}">`).join("");
    if (!lr.ok) { $("#list").innerHTML = `<p class="error">${esc(lr.detail)}</p>`; return null; }
    ui.conflictPage.next = lr.body.next_cursor;
    $("#older").disabled = !lr.body.next_cursor;
    $("#newer").disabled = cursors.length < 2;
    $("#page-no").textContent = `page ${cursors.length}`;
    const rows = lr.body.conflicts;
    $("#list").innerHTML = rows.length
      ? `<table data-testid="conflicts"><thead><tr><th>First seen</th><th>Key</th><th>Processor · table</th><th>Type</th><th class="num">Attempts</th><th>Now</th><th>Next attempt</th></tr></thead><tbody>
        ${rows.map((c) => `<tr class="click" data-href="#/conflicts/${c.conflict_id}" data-conflict="${c.conflict_id}">
          <td>${when(c.timestamp)}</td><td class="mono">${keyText(c.key)}</td><td>${esc(c.processor_name)}<br><span class="muted mono">${esc(c.table)}</span></td>
          <td>${esc(c.conflict_type)}</td><td class="num">${c.retry_attempt} / ${c.max_retries}</td>
          <td>${c.resolution_method ? badge(c.resolution_method) : badge(c.unit_state || "open")}</td><td>${c.resolution_method ? "" : when(c.next_attempt_at)}</td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">No conflict matches.</p>';
    clickableRows($("#list"));
    return null;
  },
};

// ---------------------------------------------------------------- Conflicts: one

function conflictSkeleton(id) {
  const admin = isAdmin();
  return `
    <p><a href="#/conflicts">← All conflicts</a></p>
    <div class="card"><h2>Conflict <span class="mono">${esc(id)}</span></h2><div id="facts">Loading…</div></div>
    <div class="card"><h2>Attempts</h2><div id="timeline"></div><div id="attempts"></div></div>
    <div class="card"><h2>Actions</h2>
    ${admin ? `<div class="actions">
      <div class="action"><h3>Retry now</h3><form id="a-retry"><span class="muted">Attempt at once, ignoring the backoff.</span>
        <label class="inline"><input type="checkbox" name="ignore_breaker"> also let it through an open breaker once</label>
        <label>Reason <input name="reason" placeholder="optional"></label><button class="primary" type="submit">Retry now</button><div class="result" hidden></div></form></div>
      <div class="action"><h3>Resolve</h3><form id="a-resolve"><span class="muted">Mark it resolved by hand; a unit still retried is cancelled.</span>
        <label>Note (required) <input name="note" required></label><button type="submit">Resolve</button><div class="result" hidden></div></form></div>
      <div class="action"><h3>Force</h3><form id="a-force"><span class="muted">Replace the key now. A dry run first shows what it would delete and write.</span>
        <label>Reason (required) <input name="reason" required></label><button type="submit">Dry run</button>
        <div class="result" hidden></div><button type="button" class="danger" id="force-confirm" hidden>Confirm: force the replace</button></form></div>
      <div class="action"><h3>Cancel the unit</h3><form id="a-cancel"><span class="muted">Never attempt it again.</span>
        <label>Reason (required) <input name="reason" required></label><button type="submit" class="danger">Cancel unit</button><div class="result" hidden></div></form></div>
    </div>` : `<p class="muted" data-testid="read-only">Your token has the <code>read</code> scope: actions (retry, resolve, force, cancel) need an <code>admin</code> token.</p>`}</div>`;
}

function wireConflict(id) {
  if (!isAdmin()) return;
  const post = (path, body) => api(path, { method: "POST", body });
  const state = (b) => `unit ${b.unit_state || "—"}${b.next_attempt_at ? `, next attempt ${rel(b.next_attempt_at)}` : ""}; recorded as ${b.actor}`;
  const on = (form, handler) => $(form).addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target, out = f.querySelector(".result");
    f.querySelector("button[type=submit]").disabled = true;
    try { await handler(f, out); } finally { f.querySelector("button[type=submit]").disabled = false; tick(); }
  });
  on("#a-retry", async (f, out) => {
    const body = { ignore_breaker: f.elements.ignore_breaker.checked };
    if (f.elements.reason.value.trim()) body.reason = f.elements.reason.value.trim();
    showResult(out, await post(`/v1/conflicts/${id}/retry`, body), (b) => `Retry scheduled: ${state(b)}`);
  });
  on("#a-resolve", async (f, out) => {
    showResult(out, await post(`/v1/conflicts/${id}/resolve`, { method: "manual", note: f.elements.note.value }), (b) => `Resolved: ${state(b)}`);
  });
  let unitId = null;
  on("#a-cancel", async (f, out) => {
    if (!unitId) { showResult(out, { ok: false, status: 409, detail: "this conflict has no unit the service writes" }, () => ""); return; }
    showResult(out, await post(`/v1/units/${unitId}/cancel`, { reason: f.elements.reason.value }), (b) => `Cancelled: ${state(b)}`);
  });
  VIEWS.conflicts.setUnit = (u) => { unitId = u; };
  const confirm = $("#force-confirm");
  on("#a-force", async (f, out) => {
    confirm.hidden = true;
    const r = await post(`/v1/conflicts/${id}/force`, { reason: f.elements.reason.value, dry_run: true });
    showResult(out, r, (b) => {
      const stored = b.rows_stored ? JSON.stringify(b.rows_stored) : "unknown";
      const buffer = b.streaming_buffer ? `${b.streaming_buffer.estimated_rows ?? "?"} row(s) in the streaming buffer, drained ${b.streaming_buffer.earliest_drain ? rel(b.streaming_buffer.earliest_drain) : "at an unknown time"}` : "no streaming buffer reported";
      return `Dry run, nothing written. Stored rows of the key: ${stored}; rows to write: ${b.rows_to_write}; ${buffer}. ${b.would}`;
    });
    confirm.hidden = !r.ok;
  });
  confirm.addEventListener("click", async () => {
    const f = $("#a-force"), out = f.querySelector(".result");
    confirm.disabled = true;
    const r = await post(`/v1/conflicts/${id}/force`, { reason: f.elements.reason.value, dry_run: false });
    confirm.disabled = false; confirm.hidden = true;
    showResult(out, r, (b) => (b.landed ? `Forced: the replace landed; ${state(b.result)}` : `Not landed (${b.outcome}): ${b.error || ""}; ${state(b.result)}`));
    tick();
  });
}

async function refreshConflict(id) {
  const [r, list] = await Promise.all([api(`/v1/conflicts/${encodeURIComponent(id)}`), breakerMap()]);
  if (!r.ok) { $("#facts").innerHTML = `<p class="error">${esc(r.detail)}</p>`; return null; }
  const c = r.body;
  if (VIEWS.conflicts.setUnit) VIEWS.conflicts.setUnit(c.unit_id);
  const b = list && breakerOf(list, { table: c.table, processor_name: c.processor_name });
  let next;
  if (c.resolution_method) next = `No further attempt: ended <b>${esc(c.resolution_method)}</b> ${c.resolution_time ? when(c.resolution_time) : ""}.`;
  else if (!c.unit_id) next = "The processor writes this key itself; it reports its own attempts.";
  else if (!c.next_attempt_at) next = `No attempt scheduled (unit ${esc(c.unit_state)}).`;
  else {
    const last = c.attempts[c.attempts.length - 1];
    let why = last && last.delay_seconds != null
      ? `the retry policy chose a ${dur(last.delay_seconds * 1000)} delay after attempt ${last.attempt} (${esc(last.error_class || last.outcome)})`
      : "its first attempt is due";
    if (b && ["open", "forced_open"].includes(b.state)) why = `the ${b.state.replace("_", " ")} breaker of ${esc(b.scope)} holds it${b.reopens_at ? ` until its probe at ${when(b.reopens_at)}` : ""}`;
    next = `Next attempt ${when(c.next_attempt_at)}, because ${why}. Attempt ${c.retry_attempt + 1} of at most ${c.max_retries}.`;
  }
  $("#facts").innerHTML = `<dl class="kv">
      <dt>Key</dt><dd class="mono">${esc(JSON.stringify(c.key))}${c.partition != null ? ` · partition ${esc(JSON.stringify(c.partition))}` : ""}</dd>
      <dt>Processor · table</dt><dd>${esc(c.processor_name)} · <span class="mono">${esc(c.table)}</span></dd>
      <dt>Type</dt><dd>${esc(c.conflict_type)}</dd>
      <dt>First seen</dt><dd>${when(c.timestamp)}</dd>
      <dt>Unit</dt><dd>${c.unit_state ? badge(c.unit_state) : "—"} <span class="mono muted">${esc(c.unit_id || "")}</span></dd>
      <dt>What happens next</dt><dd data-testid="next">${next}</dd>
      <dt>Last message</dt><dd class="mono">${esc(c.error_message || "")}</dd></dl>`;
  $("#timeline").innerHTML = timeline(c);
  $("#attempts").innerHTML = c.attempts.length
    ? `<table data-testid="attempts"><thead><tr><th>#</th><th>Started</th><th>Took</th><th>Outcome</th><th>Class</th><th>Message</th><th>Delay chosen</th><th>Next scheduled for</th></tr></thead><tbody>
      ${c.attempts.map((a) => `<tr><td>${a.attempt}</td><td>${when(a.started_at)}</td><td>${dur(new Date(a.finished_at) - new Date(a.started_at))}</td><td>${badge(a.outcome)}</td><td>${esc(a.error_class || "")}</td>
        <td class="mono why">${esc(a.error_message || "")}</td><td>${a.delay_seconds != null ? dur(a.delay_seconds * 1000) : ""}</td><td>${a.next_attempt_at ? when(a.next_attempt_at) : ""}</td></tr>`).join("")}</tbody></table>`
    : '<p class="muted">No attempt recorded yet.</p>';
  return null;
}

// Attempts as dots on a time axis (colour = outcome), the next one as a hollow dot.
function timeline(c) {
  const pts = c.attempts.map((a) => ({ t: new Date(a.started_at).getTime(), label: `#${a.attempt}`, outcome: a.outcome, tip: `attempt ${a.attempt}: ${a.outcome}${a.error_class ? ` (${a.error_class})` : ""} at ${a.started_at}` }));
  const start = Math.min(new Date(c.timestamp).getTime(), ...pts.map((p) => p.t));
  const nextT = c.next_attempt_at ? new Date(c.next_attempt_at).getTime() : null;
  const end = Math.max(now(), nextT || 0, ...pts.map((p) => p.t)) + 1;
  const W = 960, H = 84, L = 20, R = 20, x = (t) => L + ((t - start) / (end - start || 1)) * (W - L - R);
  const fill = { loaded: "#1f8f4e", conflict: "#c7820a", transient: "#c62d2d", failed: "#8e1b1b" };
  let svg = `<svg viewBox="0 0 ${W} ${H}" width="100%" data-testid="timeline"><line class="axis" x1="${L}" x2="${W - R}" y1="34" y2="34"/>`;
  svg += `<line x1="${x(now())}" x2="${x(now())}" y1="18" y2="50" stroke="#2f5bd3" stroke-dasharray="3 3"/><text x="${x(now())}" y="14" text-anchor="middle">now</text>`;
  pts.forEach((p, i) => { svg += `<g><title>${esc(p.tip)}</title><circle cx="${x(p.t)}" cy="34" r="7" fill="${fill[p.outcome] || "#8a94a6"}"/><text x="${x(p.t)}" y="${i % 2 ? 76 : 60}" text-anchor="middle">${p.label}</text></g>`; });
  if (nextT && !c.resolution_method) svg += `<g><title>next attempt at ${esc(c.next_attempt_at)}</title><circle cx="${x(nextT)}" cy="34" r="7" fill="#fff" stroke="#2f5bd3" stroke-width="2"/><text x="${x(nextT)}" y="62" text-anchor="middle">next</text></g>`;
  return `${svg}</svg><div class="legend"><span><i style="background:#c7820a"></i>conflict</span><span><i style="background:#1f8f4e"></i>loaded</span><span><i style="background:#c62d2d"></i>transient error</span><span><i style="background:#8e1b1b"></i>failed</span><span><i style="background:#fff;border:2px solid #2f5bd3"></i>next attempt</span></div>`;
}

// ---------------------------------------------------------------- Breakers

VIEWS.breakers = {
  skeleton: (scope) => (scope ? `
    <p><a href="#/breakers">← All breakers</a></p>
    <div class="card"><h2>Breaker <span class="mono">${esc(scope)}</span></h2><div id="breaker">Loading…</div></div>
    <div class="card"><h2>Change it</h2>${isAdmin() ? `
      <form id="breaker-action" class="action"><label>Reason (required, recorded with your name) <input name="reason" required placeholder="e.g. buffer drained, confirmed in the console"></label>
      <div class="pager"><button type="submit" name="do" value="reset" class="primary">Reset (close)</button>
      <button type="submit" name="do" value="force-open" class="danger">Force open</button>
      <button type="submit" name="do" value="disable">Disable</button></div><div class="result" hidden></div></form>`
      : '<p class="muted" data-testid="read-only">Reset, force-open and disable need an <code>admin</code> token.</p>'}</div>
    <div class="card"><h2>Transitions</h2><div id="transitions"></div></div>` : `
    <div class="card"><h2>Circuit breakers</h2><p class="muted" id="scope-by"></p><div id="breakers"></div></div>`),
  wire(scope) {
    if (!scope || !isAdmin()) return;
    $("#breaker-action").addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = e.target, out = f.querySelector(".result");
      const action = e.submitter ? e.submitter.value : "reset";
      const r = await api(`/v1/breakers/${encodeURIComponent(scope)}/${action}`, { method: "POST", body: { reason: f.elements.reason.value } });
      showResult(out, r, (b) => `Done: the breaker is ${b.state.replace("_", " ")} (recorded as ${b.last_actor}).`);
      tick();
    });
  },
  async refresh(scope) {
    if (scope) {
      const r = await api(`/v1/breakers/${encodeURIComponent(scope)}`);
      if (!r.ok) return `/v1/breakers/${scope}: ${r.detail}`;
      const b = r.body;
      $("#breaker").innerHTML = `<dl class="kv"><dt>State</dt><dd data-testid="breaker-state">${badge(b.state)} ${b.allows_writes ? '<span class="okay">writes go through</span>' : '<span class="error">writes are held</span>'}</dd>
        <dt>Window</dt><dd>${b.window.conflicts} conflict(s) of ${b.window.outcomes} outcome(s) · ${(b.conflict_rate * 100).toFixed(0)} %</dd>
        <dt>Next probe</dt><dd>${b.reopens_at ? when(b.reopens_at) : "—"}${b.probe ? " · a probe is running" : ""}</dd>
        <dt>Trips · failed probes</dt><dd>${b.trips} · ${b.reopens}</dd>
        <dt>Last change</dt><dd>${esc(b.last_reason || "—")} <span class="muted">by ${esc(b.last_actor || "—")}</span> ${when(b.last_transition_at)}</dd></dl>`;
      $("#transitions").innerHTML = b.transitions.length ? `<table><thead><tr><th>When</th><th>Change</th><th>Why</th><th>Who</th></tr></thead><tbody>${b.transitions.map((t) => `<tr><td>${when(t.created_at)}</td><td>${badge(t.from_state)} → ${badge(t.to_state)}</td><td>${esc(t.reason)}</td><td>${esc(t.actor)}</td></tr>`).join("")}</tbody></table>` : '<p class="muted">Never changed.</p>';
      return null;
    }
    const list = await breakerMap();
    $("#scope-by").textContent = `One breaker per ${list.scope_by === "table" ? "table" : "processor"}, shared by every replica. It opens when too many recent outcomes were conflicts; while open, units wait (durable) and one probe tests the water when the open period ends.`;
    $("#breakers").innerHTML = list.breakers.length
      ? `<table data-testid="breaker-list"><thead><tr><th>Scope</th><th>State</th><th class="num">Window</th><th class="num">Conflict rate</th><th class="num">Trips</th><th>Next probe</th><th>Last change</th></tr></thead><tbody>
        ${list.breakers.map((b) => `<tr class="click" data-href="#/breakers/${encodeURIComponent(b.scope)}" data-scope="${esc(b.scope)}"><td>${esc(b.scope)}</td><td>${badge(b.state)}</td>
          <td class="num">${b.window.conflicts} / ${b.window.outcomes}</td><td class="num">${(b.conflict_rate * 100).toFixed(0)} %</td><td class="num">${b.trips}</td>
          <td>${b.reopens_at && b.state !== "closed" ? when(b.reopens_at) : "—"}</td><td>${esc(b.last_reason || "")} <span class="muted">by ${esc(b.last_actor || "—")}</span></td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">No breaker has counted an outcome yet.</p>';
    clickableRows($("#breakers"));
    return null;
  },
};

// ---------------------------------------------------------------- Batches and runs

function stateCounts(counts) {
  const total = UNIT_STATES.reduce((n, s) => n + (counts[s] || 0), 0) || 1;
  const bar = UNIT_STATES.filter((s) => counts[s]).map((s) => `<i data-w="${(100 * counts[s]) / total}" data-c="${COLORS[s]}" title="${s}: ${counts[s]}"></i>`).join("");
  return `<div class="bar">${bar}</div><div class="states">${UNIT_STATES.filter((s) => counts[s]).map((s) => `<span>${badge(s)} <b>${counts[s]}</b></span>`).join("")}</div>`;
}

function paintBars() {
  for (const i of document.querySelectorAll(".bar i")) { i.style.width = `${i.dataset.w}%`; i.style.background = i.dataset.c; }
}

function runCard(r) {
  return `<div class="card" data-run="${esc(r.run)}"><h3><a href="#/runs/${encodeURIComponent(r.run)}">${esc(r.run)}</a> ${r.done ? badge("loaded").replace("loaded", "done") : badge("deferred").replace("deferred", "running")}</h3>
    <div class="muted">${esc(r.processors.join(", "))} → <span class="mono">${esc(r.tables.join(", "))}</span></div>
    ${stateCounts(r.units)}
    <dl class="kv"><dt>Batches · units</dt><dd>${r.batches} · ${r.units.total}</dd>
      <dt>Loaded on first attempt</dt><dd>${r.loaded_first_attempt}</dd>
      <dt>Deferred at least once · since loaded</dt><dd>${r.deferred} · ${r.resolved_by_retry}</dd>
      <dt>Unresolved · failed</dt><dd>${r.unresolved} · ${r.failed}</dd>
      <dt>Statements · attempts</dt><dd>${r.statements} · ${r.attempts}</dd>
      <dt>Started · last change</dt><dd>${when(r.started_at)} · ${when(r.last_change_at)}</dd>
      <dt>Done</dt><dd>${r.done ? "yes" : r.estimated_done_at ? `expected ${when(r.estimated_done_at)}` : "not yet; no estimate"}</dd></dl></div>`;
}

VIEWS.batches = {
  skeleton: (id) => `
    <div class="card"><form class="filters" id="batch-form"><label>Batch id <input name="id" size="40" placeholder="uuid from POST /v1/batches" value="${esc(id || "")}"></label><button class="primary" type="submit">Open</button></form></div>
    ${id ? '<div class="card"><h2>Batch</h2><div id="batch">Loading…</div></div>' : ""}
    <div class="card"><h2>Backfill runs</h2><div id="runs">Loading…</div></div>
    <div class="card"><h2>Recently changed batches</h2><div id="recent">Loading…</div></div>`,
  wire() {
    $("#batch-form").addEventListener("submit", (e) => { e.preventDefault(); location.hash = `#/batches/${encodeURIComponent(e.target.elements.id.value.trim())}`; });
  },
  async refresh(id) {
    const [runs, units, batch] = await Promise.all([api("/v1/runs?limit=20"), api("/v1/units?limit=500"), id ? api(`/v1/batches/${encodeURIComponent(id)}`) : null]);
    if (runs.status === 404) $("#runs").innerHTML = '<p class="muted" data-testid="runs-unavailable">This service does not report backfill runs (<code>GET /v1/runs</code> answered 404). Batches are listed below.</p>';
    else if (!runs.ok) $("#runs").innerHTML = `<p class="error">${esc(runs.detail)}</p>`;
    else $("#runs").innerHTML = runs.body.runs.length ? runs.body.runs.map(runCard).join("") : '<p class="muted">No batch names a run.</p>';
    if (batch) {
      $("#batch").innerHTML = !batch.ok ? `<p class="error">${esc(batch.detail)}</p>` : (() => {
        const b = batch.body, counts = {};
        for (const u of b.units) counts[u.state] = (counts[u.state] || 0) + 1;
        return `<p>${esc(b.processor_name)} → <span class="mono">${esc(b.table)}</span>, posted ${when(b.created_at)}${b.run ? ` · run <a href="#/runs/${encodeURIComponent(b.run)}">${esc(b.run)}</a>` : ""}</p>${stateCounts(counts)}
          <table data-testid="batch-units"><thead><tr><th>Key</th><th>State</th><th class="num">Rows</th><th class="num">Attempts</th><th>Next attempt</th><th>Error</th></tr></thead><tbody>
          ${b.units.map((u) => `<tr class="${u.conflict_id ? "click" : ""}" data-href="${u.conflict_id ? `#/conflicts/${u.conflict_id}` : ""}"><td class="mono">${keyText(u.key)}</td><td>${badge(u.state)}</td><td class="num">${u.rows}</td><td class="num">${u.attempts}</td><td>${when(u.next_attempt_at)}</td><td class="why mono">${esc(u.error || "")}</td></tr>`).join("")}</tbody></table>`;
      })();
      clickableRows($("#batch"));
    }
    if (units.ok) {
      const byBatch = new Map();
      for (const u of units.body.units) {
        const b = byBatch.get(u.batch_id) || { batch_id: u.batch_id, processor: u.processor_name, table: u.table, counts: {}, last: u.updated_at };
        b.counts[u.state] = (b.counts[u.state] || 0) + 1;
        byBatch.set(u.batch_id, b);
      }
      const rows = [...byBatch.values()].slice(0, 50);
      $("#recent").innerHTML = rows.length ? `<table data-testid="recent-batches"><thead><tr><th>Batch</th><th>Processor · table</th><th>Units (of the last 500 changed)</th><th>Last change</th></tr></thead><tbody>
        ${rows.map((b) => `<tr class="click" data-href="#/batches/${b.batch_id}"><td class="mono">${esc(b.batch_id.slice(0, 8))}…</td><td>${esc(b.processor)}<br><span class="muted mono">${esc(b.table)}</span></td><td>${UNIT_STATES.filter((s) => b.counts[s]).map((s) => `${badge(s)} ${b.counts[s]}`).join(" ")}</td><td>${when(b.last)}</td></tr>`).join("")}</tbody></table>` : '<p class="muted">No batch yet.</p>';
      clickableRows($("#recent"));
    }
    paintBars();
    return null;
  },
};

VIEWS.runs = {
  skeleton: (run) => `<p><a href="#/batches">← Batches &amp; runs</a></p><div id="run">Loading…</div>`,
  async refresh(run) {
    const r = await api(`/v1/runs/${encodeURIComponent(run || "")}`);
    $("#run").innerHTML = r.ok ? runCard(r.body) : `<div class="card"><p class="error">${esc(r.detail)}</p></div>`;
    paintBars();
    return null;
  },
};

// ---------------------------------------------------------------- start

(async () => {
  if (await whoAmI()) tick();
})();
