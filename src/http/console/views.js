// streamguard operator console: the Now, Breakers, and Batches & runs views. Uses the
// helpers of console.js.
"use strict";

// ---------------------------------------------------------------- Now

// Why a waiting unit waits, in words: what refused its last attempt, and whether its
// breaker holds it too.
function whyWaiting(unit, list) {
  const reasons = [];
  const err = unit.error || "";
  const refused = `attempt ${unit.attempts} was refused`;
  if (/is held until/i.test(err)) reasons.push("not attempted: its partition is held, another of its keys was just refused for BigQuery's streaming buffer");
  else if (/streaming buffer/i.test(err)) reasons.push(`rows still in BigQuery's streaming buffer (${refused})`);
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
    ${id ? `<div class="card"><h2>Batch</h2><div id="batch">Loading…</div>${isAdmin() ? `
      <form id="unit-cancel" class="filters action"><label>Cancel a waiting unit <select name="unit" required></select></label>
        <label>Reason (required) <input name="reason" required size="36"></label><button type="submit" class="danger">Cancel unit</button>
        <div class="result" hidden></div></form>` : ""}</div>` : ""}
    <div class="card"><h2>Backfill runs</h2><div id="runs">Loading…</div></div>
    <div class="card"><h2>Recently changed batches</h2><div id="recent">Loading…</div></div>`,
  wire() {
    $("#batch-form").addEventListener("submit", (e) => { e.preventDefault(); location.hash = `#/batches/${encodeURIComponent(e.target.elements.id.value.trim())}`; });
    const cancel = $("#unit-cancel");
    if (cancel) cancel.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = e.target;
      const r = await api(`/v1/units/${f.elements.unit.value}/cancel`, { method: "POST", body: { reason: f.elements.reason.value } });
      showResult(f.querySelector(".result"), r, (b) => `Cancelled (recorded as ${b.actor}): it is never attempted again.`);
      tick();
    });
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
      const select = $("#unit-cancel select");
      if (select && batch.ok) {
        // Re-filled on every poll; the chosen unit stays chosen while it can be cancelled.
        const chosen = select.value;
        const open = batch.body.units.filter((u) => u.state === "pending" || u.state === "deferred");
        select.innerHTML = open.map((u) => `<option value="${u.unit_id}">${keyText(u.key)} (${u.state})</option>`).join("");
        if (open.some((u) => u.unit_id === chosen)) select.value = chosen;
        select.disabled = !open.length;
      }
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
