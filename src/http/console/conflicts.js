// streamguard operator console: the Conflicts views — the daily chart (inline SVG), the
// searchable, cursor-paged list, and one conflict with its attempts on a timeline and the
// operator actions (retry, resolve, force with a dry run first, cancel). Uses the helpers
// of console.js.
"use strict";

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
      svg += `<text x="${x + barW / 2}" y="${y(p.total) - 4}" text-anchor="middle">${p.total} · ${(p.retries / p.total).toFixed(1)}</text></g>`;
    });
  });
  svg += `<line class="axis" x1="${L}" x2="${W}" y1="${y(0)}" y2="${y(0)}"/></svg>`;
  const legend = `<div class="legend">${procs.map((p, j) => `<span><i style="background:${SERIES[j % SERIES.length]}"></i>${esc(p)} (resolved)</span>`).join("")}<span><i style="background:#c62d2d"></i>unresolved</span><span class="muted">above each bar: conflicts · average retries</span></div>`;
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
