"use strict";
// The dashboard talks to the API next to it. The base always ends in a slash, so the page
// works at `/` and under a prefix, opened as `/prefix` or `/prefix/`.
const base = new URL(location.pathname.endsWith("/") ? location.pathname : location.pathname + "/",
  location.origin);
const ACTIVE = new Set(["Waiting", "Queued", "Running"]);
const RETRYABLE = new Set(["Failed", "Canceled"]);
const PAGE = 50;
const state = {
  token: sessionStorage.getItem("jobs-token") || "",
  types: [],
  rows: new Map(),      // id → { job, tr, cells, details }, the jobs on screen
  results: new Map(),   // id → fetched result (successes only)
  open: new Set(),      // ids whose details are shown
  filter: { status: "", type: "", queue: "" },
  window: PAGE,         // how many rows to keep: the pages loaded so far
  cursor: null,
  stale: new Set(),     // ids to read again from the API
  fetching: 0,          // single-job reads in flight
  seq: new Map(),       // id → number of the latest read asked for it
  load: null,           // the list load in flight: { generation, touched }
  loadAgain: false,
  generation: 0,
  prefilled: "",        // the payload the form last filled in by itself
};
const $ = (selector) => document.querySelector(selector);

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function headers(token, extra) {
  const h = Object.assign({}, extra);
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(path, options = {}) {
  const token = state.token;
  const response = await fetch(new URL(path, base), Object.assign({}, options, {
    headers: headers(token, options.headers),
  }));
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  // Only a refusal of the token in use now asks for a new one.
  if (response.status === 401 && token === state.token) askForToken();
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// ---- token ------------------------------------------------------------------------------

function askForToken() {
  $("#token-button").hidden = false;
  const dialog = $("#token-dialog");
  if (!dialog.open) {
    $("#token").value = state.token;
    dialog.returnValue = "";
    dialog.showModal();
  }
}
$("#token-button").addEventListener("click", askForToken);
$("#token-dialog").addEventListener("close", () => {
  if ($("#token-dialog").returnValue !== "save") return;
  state.token = $("#token").value.trim();
  sessionStorage.setItem("jobs-token", state.token);
  start();
});

// ---- formatting -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function took(job) {
  if (!job.startedAt) return "";
  const end = job.finishedAt ? Date.parse(job.finishedAt) : Date.now();
  const ms = Math.max(0, end - Date.parse(job.startedAt));
  const text = ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60000)} min`;
  return (job.finishedAt ? "took " : "running ") + text;
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

// ---- the submit form --------------------------------------------------------------------

// An example payload from a JSON Schema: every property, with its default or a blank of
// its type, so that the form starts from something the executor accepts in shape.
function example(schema, root, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 6) return null;
  if (schema.$ref && root) {
    const name = schema.$ref.split("/").pop();
    const defs = root.$defs || root.definitions || {};
    return example(defs[name], root, depth + 1);
  }
  if ("default" in schema) return schema.default;
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  for (const key of ["oneOf", "anyOf", "allOf"]) {
    if (Array.isArray(schema[key]) && schema[key].length) {
      const choice = schema[key].find((s) => s.type !== "null") || schema[key][0];
      return example(choice, root, depth + 1);
    }
  }
  let type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (schema.maxProperties === 0) return {};
  if (!type && schema.properties) type = "object";
  switch (type) {
    case "object": {
      const out = {};
      for (const [key, prop] of Object.entries(schema.properties || {})) {
        out[key] = example(prop, root, depth + 1);
      }
      return out;
    }
    case "array": return [];
    case "string": return "";
    case "integer":
    case "number": return schema.minimum !== undefined ? schema.minimum : 0;
    case "boolean": return false;
    default: return null;
  }
}

function showType() {
  const entry = state.types.find((t) => t.type === $("#type").value);
  const schema = entry && entry.argsSchema;
  $("#schema-box").hidden = !schema;
  setText($("#schema"), schema ? pretty(schema) : "");
  setText($("#type-hint"), entry
    ? (schema && schema.description ? schema.description + " " : "") + `Declared at ${entry.declaredAt}.`
    : "");
  // Refill the payload only if the person has not written one of their own.
  const current = $("#payload").value.trim();
  if (current === "" || current === state.prefilled) {
    state.prefilled = schema ? pretty(example(schema, schema)) : "null";
    $("#payload").value = state.prefilled;
  }
}
$("#type").addEventListener("change", () => {
  state.prefilled = $("#payload").value.trim(); // a new type's example replaces the old one
  showType();
});

function setMessage(node, kind, ...content) {
  node.className = "message " + kind;
  node.replaceChildren(...content);
}

$("#submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = $("#submit-message");
  let payload;
  const text = $("#payload").value.trim();
  try {
    payload = text ? JSON.parse(text) : null;
  } catch (error) {
    setMessage(message, "error", `The payload is not valid JSON: ${error.message}`);
    return;
  }
  $("#submit").disabled = true;
  try {
    const job = await api("jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ type: $("#type").value, payload },
        $("#queue").value.trim() ? { queue: $("#queue").value.trim() } : {})),
    });
    setMessage(message, "ok", "Submitted ",
      el("span", { class: "id", dataset: { jobId: job.id } }, job.id));
    show(job, true);
  } catch (error) {
    const extra = error.body && error.body.error && error.body.error.knownTypes
      ? ` Known types: ${error.body.error.knownTypes.join(", ")}.` : "";
    setMessage(message, "error", error.message + extra);
  } finally {
    $("#submit").disabled = false;
  }
});

// ---- the list ---------------------------------------------------------------------------

function matches(job) {
  return (!state.filter.status || job.status === state.filter.status)
    && (!state.filter.type || job.jobType === state.filter.type)
    && (!state.filter.queue || (job.queue || "default") === state.filter.queue);
}

const RANK = { Queued: 0, Running: 1 };
const rank = (job) => (job.status in RANK ? RANK[job.status] : 2);

// Answers and events can arrive out of order: a job never moves back to an earlier
// attempt, nor, within one attempt, from finished to active or from running to queued —
// except when the attempt failed or snoozed and the job went back to the queue, which
// shows as a new error or a new due time.
function newer(old, job) {
  if (!old) return job;
  if (job.attempt !== old.attempt) return job.attempt > old.attempt ? job : old;
  const requeued = job.status === "Queued" && old.status === "Running"
    && ((job.errors || []).length > (old.errors || []).length || job.runAt !== old.runAt);
  if (requeued) return job;
  if (rank(job) !== rank(old)) return rank(job) > rank(old) ? job : old;
  return job;
}

function percentOf(job) {
  if (job.status === "Succeeded") return 100;
  return job.progress ? job.progress.percent : 0;
}

function toggleButton(job) {
  return el("button", {
    type: "button", class: "toggle type", "aria-expanded": "false",
    "aria-controls": `details-${job.id}`, title: "Show payload, result and times",
    onclick: (event) => { event.stopPropagation(); toggle(job.id); },
  }, job.jobType);
}

function cancel(id, button) {
  return async (event) => {
    event.stopPropagation();
    button.disabled = true;
    setText(button, "Canceling…");
    try {
      await api(`jobs/${id}/cancel`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
      });
    } catch (error) {
      setMessage($("#list-message"), "error", `Cancel failed: ${error.message}`);
      button.disabled = false;
      setText(button, "Cancel");
    }
    state.stale.add(id);
  };
}

// Builds a job's row once; `update` changes its cells in place afterwards, so a click,
// focus or text selection survives progress updates.
function buildRow(job, fresh) {
  const cells = {
    badge: el("span", { class: "badge" }),
    attempt: el("div", { class: "when" }),
    note: el("div", { class: "when" }),
    error: el("div", { class: "job-error" }),
    fill: el("div", { class: "fill" }),
    bar: null,
    progress: el("td", { class: "progress" }),
    pct: el("span", { class: "pct" }),
    message: el("span", { class: "progress-message" }),
    ago: el("div", {}),
    took: el("div", {}),
    cancel: el("button", { type: "button", class: "cancel" }, "Cancel"),
    retry: el("button", { type: "button", class: "retry", title: "Queue it again (it keeps its attempts and errors)" }, "Retry"),
    remove: el("button", { type: "button", class: "delete", title: "Delete the job and its result" }, "Delete"),
    toggle: toggleButton(job),
  };
  cells.cancel.addEventListener("click", cancel(job.id, cells.cancel));
  cells.retry.addEventListener("click", (event) => { event.stopPropagation(); retryJob(job.id, $("#list-message")); });
  cells.remove.addEventListener("click", (event) => { event.stopPropagation(); deleteJob(job.id, $("#list-message")); });
  cells.bar = el("div", { class: "bar", role: "progressbar", "aria-label": `progress of ${job.jobType}`,
    "aria-valuemin": 0, "aria-valuemax": 100 }, cells.fill);
  cells.progress.append(cells.bar, el("div", { class: "progress-text" }, cells.pct, cells.message));
  const tr = el("tr", {
    class: "job" + (fresh ? " fresh" : ""), dataset: { id: job.id },
    onclick: (event) => { if (!event.target.closest("button")) toggle(job.id); },
  },
    el("td", {}, cells.toggle,
      el("div", { class: "id", title: job.id }, job.id.slice(0, 8) + "…" + job.id.slice(-4)),
      cells.error),
    el("td", {}, cells.badge, cells.attempt, cells.note),
    cells.progress,
    el("td", { class: "when", title: job.createdAt }, cells.ago, cells.took),
    el("td", { class: "actions" }, cells.cancel, cells.retry, cells.remove));
  return { job, tr, cells, details: null };
}

function update(row) {
  const { job, tr, cells } = row;
  tr.dataset.status = job.status;
  cells.badge.className = "badge " + job.status;
  setText(cells.badge, job.status);
  const failures = (job.errors || []).length;
  setText(cells.attempt, [
    job.attempt > 1 ? `attempt ${job.attempt}` : "",
    (job.maxAttempts || 1) > 1 ? `${failures} of ${job.maxAttempts} failures allowed` : "",
  ].filter(Boolean).join(" · "));
  setText(cells.note, job.cancelRequested && ACTIVE.has(job.status) ? "cancel requested"
    : job.status === "Queued" && job.runAt && Date.parse(job.runAt) > Date.now()
      ? `due ${new Date(job.runAt).toLocaleTimeString()}` : "");
  setText(cells.error, job.error || "");
  const percent = percentOf(job);
  cells.progress.className = "progress " + job.status;
  cells.fill.style.width = percent + "%";
  cells.bar.setAttribute("aria-valuenow", String(percent));
  setText(cells.pct, percent + "%");
  setText(cells.message, job.progress ? job.progress.message : "");
  updateTimes(row);
  const active = ACTIVE.has(job.status);
  cells.cancel.hidden = !active;
  cells.retry.hidden = !RETRYABLE.has(job.status);
  cells.remove.hidden = active;
  if (active && job.cancelRequested) {
    cells.cancel.disabled = true;
    setText(cells.cancel, "Canceling…");
  }
  if (active) {
    cells.cancel.title = job.status === "Running" ? "Ask the running job to stop" : "Remove it from the queue";
  }
  cells.toggle.setAttribute("aria-expanded", String(state.open.has(job.id)));
  drawDetails(row);
}

function updateTimes(row) {
  setText(row.cells.ago, ago(row.job.createdAt));
  setText(row.cells.took, took(row.job));
}

function drawDetails(row) {
  const { job } = row;
  if (!state.open.has(job.id)) {
    if (row.details) row.details.remove();
    row.details = null;
    return;
  }
  const parts = [el("div", {}, el("h3", {}, "Payload"), el("pre", {}, pretty(job.payload)))];
  if (job.status === "Succeeded") {
    const result = state.results.has(job.id) ? pretty(state.results.get(job.id)) : "loading…";
    parts.push(el("div", {}, el("h3", {}, "Result"), el("pre", { class: "result" }, result)));
  }
  if (job.error) {
    parts.push(el("div", {}, el("h3", {}, "Error"), el("pre", { class: "error-text" }, job.error)));
  }
  const failures = (job.errors || []).filter((e) => !(job.status === "Failed" && e.message === job.error
    && e.attempt === job.attempt));
  if (failures.length) {
    parts.push(el("div", {}, el("h3", {}, "Earlier attempts"), el("pre", { class: "attempt-errors" },
      failures.map((e) => `#${e.attempt} ${e.at}\n   ${e.message}`).join("\n"))));
  }
  parts.push(el("div", {}, el("h3", {}, "Details"), el("pre", {}, [
    `id        ${job.id}`,
    `attempt   ${job.attempt}; fails for good at failure ${job.maxAttempts || 1}`,
    `queue     ${job.queue || "default"}`,
    `limit     ${keyText(job)}`,
    `priority  ${job.priority || 0}`,
    `run at    ${job.runAt || "-"}`,
    `created   ${job.createdAt}`,
    `started   ${job.startedAt || "-"}`,
    `finished  ${job.finishedAt || "-"}`,
  ].join("\n"))));
  parts.push(el("div", {}, el("button", { type: "button", class: "open-job",
    onclick: () => openJob(job.id) }, "Open the job's page"),
  job.flow ? el("button", { type: "button", class: "open-flow",
    onclick: () => openFlow(job.flow) }, "Open its flow") : null));
  const details = el("tr", { class: "details", id: `details-${job.id}`, dataset: { detailsFor: job.id } },
    el("td", { colspan: 5 }, el("div", { class: "details-grid" }, parts)));
  // Rebuilt only when what it shows changed, so a selection inside it survives.
  if (row.details && row.details.textContent === details.textContent) return;
  if (row.details) row.details.replaceWith(details); else row.tr.after(details);
  row.details = details;
}

function sortedIds() {
  return [...state.rows.keys()].sort().reverse();
}

// Shows `job` (or forgets it when it no longer matches the filters), newest first, at
// most `state.window` rows.
function show(job, fresh = false) {
  let row = state.rows.get(job.id);
  if (row) job = newer(row.job, job);
  if (!matches(job)) {
    if (row) erase(job.id);
    return;
  }
  const ids = sortedIds();
  if (!row && ids.length >= state.window && job.id < ids[ids.length - 1]) return; // beyond the loaded pages
  if (!row) {
    row = buildRow(job, fresh);
    const after = ids.find((id) => id < job.id);
    $("#jobs").insertBefore(row.tr, after ? state.rows.get(after).tr : null);
    state.rows.set(job.id, row);
    const empty = $("#jobs .empty-row");
    if (empty) empty.remove();
    trim();
  }
  row.job = job;
  update(row);
  if (job.status === "Succeeded" && state.open.has(job.id)) loadResult(job.id);
}

// Keeps the table to the loaded pages: the oldest rows go, and "Load more" continues
// after the last one left.
function trim() {
  const ids = sortedIds();
  if (ids.length <= state.window) return;
  for (const id of ids.slice(state.window)) erase(id, false);
  state.cursor = ids[state.window - 1];
  $("#more").hidden = false;
}

function erase(id, placeholder = true) {
  const row = state.rows.get(id);
  if (!row) return;
  row.tr.remove();
  if (row.details) row.details.remove();
  state.rows.delete(id);
  state.results.delete(id);
  state.open.delete(id);
  if (placeholder) showEmpty();
}

function showEmpty() {
  const tbody = $("#jobs");
  if (state.rows.size || tbody.querySelector(".empty-row")) return;
  tbody.append(el("tr", { class: "empty-row" }, el("td", { colspan: 5, class: "empty" },
    state.filter.status || state.filter.type || state.filter.queue ? "No jobs match these filters." : "No jobs yet. Submit one.")));
}

async function loadResult(id) {
  if (state.results.has(id)) return;
  let result;
  try {
    result = (await api(`jobs/${id}/result`)).result;
  } catch (error) {
    result = `could not load the result: ${error.message}`; // shown, not kept: opening again retries
  }
  const row = state.rows.get(id);
  if (!row) return;
  state.results.set(id, result);
  drawDetails(row);
  if (typeof result === "string" && result.startsWith("could not load the result")) state.results.delete(id);
}

function toggle(id) {
  if (state.open.has(id)) state.open.delete(id); else state.open.add(id);
  const row = state.rows.get(id);
  if (!row) return;
  update(row);
  if (row.job.status === "Succeeded" && state.open.has(id)) loadResult(id);
}

function query(cursor) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (state.filter.status) params.set("status", state.filter.status);
  if (state.filter.type) params.set("type", state.filter.type);
  if (state.filter.queue) params.set("queue", state.filter.queue);
  if (cursor) params.set("cursor", cursor);
  return "jobs?" + params;
}

// Reads the first page again. One load runs at a time; asking during one runs another
// after it. Jobs that changed while it was in flight are read again afterwards, so the
// page's older picture of them does not stay.
async function loadList() {
  if (state.load) {
    state.loadAgain = true;
    return;
  }
  const load = { generation: ++state.generation, touched: new Set() };
  state.load = load;
  try {
    const page = await api(query(null));
    if (load.generation === state.generation) {
      const previous = state.rows;
      for (const row of previous.values()) {
        row.tr.remove();
        if (row.details) row.details.remove();
      }
      state.rows = new Map();
      state.window = PAGE;
      $("#jobs").replaceChildren();
      for (const job of page.jobs) show(newer(previous.get(job.id)?.job, job));
      // Keep jobs newer than the page (submitted while it loaded).
      const first = page.jobs.length ? page.jobs[0].id : "";
      for (const [id, row] of previous) if (id > first) show(row.job);
      state.cursor = page.nextCursor;
      $("#more").hidden = !page.nextCursor;
      for (const id of load.touched) state.stale.add(id);
      setMessage($("#list-message"), "error");
    }
  } catch (error) {
    setMessage($("#list-message"), "error", `Could not load jobs: ${error.message}`);
  } finally {
    state.load = null;
    showEmpty();
    if (state.loadAgain) {
      state.loadAgain = false;
      loadList();
    }
  }
}

async function loadMore() {
  if (!state.cursor) return;
  const generation = state.generation;
  try {
    const page = await api(query(state.cursor));
    if (generation !== state.generation) return;
    state.window += PAGE;
    for (const job of page.jobs) show(job);
    state.cursor = page.nextCursor;
    $("#more").hidden = !page.nextCursor;
  } catch (error) {
    setMessage($("#list-message"), "error", `Could not load more jobs: ${error.message}`);
  }
}

$("#more").addEventListener("click", loadMore);
$("#refresh").addEventListener("click", () => loadList());
$("#status-filter").addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  state.filter.status = button.dataset.status;
  for (const b of $("#status-filter").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(b === button));
  }
  state.generation++; // whatever the old filter's load brings is no longer wanted
  loadList();
});
$("#type-filter").addEventListener("change", (event) => {
  state.filter.type = event.target.value;
  state.generation++;
  loadList();
});
$("#queue-filter").addEventListener("change", (event) => {
  state.filter.queue = event.target.value;
  state.generation++;
  loadList();
});

// Reads one job again; an older answer for the same job is dropped.
async function refreshJob(id) {
  const seq = (state.seq.get(id) || 0) + 1;
  state.seq.set(id, seq);
  state.fetching++;
  try {
    const job = await api(`jobs/${id}`);
    if (state.seq.get(id) === seq) show(job);
  } catch (error) {
    if (error.status === 404) erase(id);
  } finally {
    state.fetching--;
    if (state.seq.get(id) === seq) state.seq.delete(id);
  }
}

// Changed jobs are read again in small batches, a few requests at a time; when many
// changed at once, one list load is cheaper.
setInterval(() => {
  if (!state.stale.size || state.fetching > 0) return;
  if (state.stale.size > 24) {
    state.stale.clear();
    loadList();
    return;
  }
  const ids = [...state.stale].slice(0, 6);
  for (const id of ids) {
    state.stale.delete(id);
    refreshJob(id);
  }
}, 150);

// Relative times and running durations move on by themselves.
setInterval(() => {
  for (const row of state.rows.values()) updateTimes(row);
}, 5000);

// ---- live events ------------------------------------------------------------------------

// Events are applied together a few times a second: the latest progress per job, and the
// ids whose status changed, to be read again.
const inbox = {
  progress: new Map(), finished: new Map(), changed: new Set(), deleted: new Set(), lagged: false,
  flowProgress: new Map(), flowChanged: false, // of the open flow's members
};
let flushing = null;

function receive(kind, data) {
  if (kind === "shutdown") { setLive("off", "server stopping"); return; }
  // Skipped events (a slow read), or events the server may have missed (its store's
  // notifications were interrupted): one fresh read of everything shown.
  if (kind === "lagged" || kind === "resync") inbox.lagged = true;
  else if (kind === "progress") inbox.progress.set(data.id, data.progress);
  else if (kind === "finished") inbox.finished.set(data.id, data);
  else if (kind === "deleted") inbox.deleted.add(data.id);
  else if (kind === "submitted" || kind === "retried") {
    // Read only what the current filters could show.
    if (state.rows.has(data.id) || ((!state.filter.type || data.jobType === state.filter.type)
      && (!state.filter.status || state.filter.status === "Queued" || state.filter.status === "Waiting"))) inbox.changed.add(data.id);
  } else if (data && data.id && (state.rows.has(data.id)
    || (kind === "started" && state.filter.status === "Running")
    || (kind === "released" && state.filter.status === "Queued"))) inbox.changed.add(data.id);
  if (data && data.id && data.id === jobPage.id && kind !== "progress") inbox.changed.add(data.id);
  if (data && data.id && flowPage.members.has(data.id)) {
    if (kind === "progress") inbox.flowProgress.set(data.id, data.progress);
    else inbox.flowChanged = true;
  }
  if (state.load && data && data.id) state.load.touched.add(data.id);
  if (!flushing) flushing = setTimeout(flush, 100);
}

function flush() {
  flushing = null;
  if (inbox.lagged) {
    // Events were skipped: only a fresh read tells what the jobs are now.
    inbox.lagged = false;
    inbox.progress.clear();
    inbox.finished.clear();
    inbox.changed.clear();
    inbox.deleted.clear();
    inbox.flowProgress.clear();
    inbox.flowChanged = false;
    loadList();
    overviewSoon();
    if (flowPage.id) loadFlowPage();
    return;
  }
  for (const id of inbox.deleted) {
    erase(id);
    state.stale.delete(id);
    inbox.changed.delete(id);
    inbox.finished.delete(id);
    jobPageDeleted(id);
  }
  for (const [id, progress] of inbox.progress) {
    const row = state.rows.get(id);
    if (row && row.job.status === "Running") show(Object.assign({}, row.job, { progress }));
  }
  for (const [id, data] of inbox.finished) {
    const row = state.rows.get(id);
    if (row) show(Object.assign({}, row.job, { status: data.status, error: data.error }));
    // Read it again for its finish time, or to list it under a filter it now matches.
    if (row || state.filter.status === data.status) state.stale.add(id);
  }
  for (const id of inbox.changed) state.stale.add(id);
  for (const [id, data] of inbox.finished) countFinish(data.status);
  for (const id of [...inbox.changed, ...inbox.finished.keys()]) jobPageChanged(id);
  flowEvents(inbox.flowProgress, inbox.flowChanged);
  inbox.progress.clear();
  inbox.finished.clear();
  inbox.changed.clear();
  inbox.deleted.clear();
  inbox.flowProgress.clear();
  inbox.flowChanged = false;
  overviewSoon();
}

function setLive(kind, text) {
  const live = $("#live");
  live.className = kind;
  setText(live, text);
}

// Server-sent events read with fetch rather than EventSource, so that the bearer token
// travels in a header and never in a URL. The list is read once the stream is open, on
// every (re)connection, so nothing that happens in between is missed.
let stream = null;
async function listen() {
  if (stream) stream.abort();
  const controller = new AbortController();
  stream = controller;
  let delay = 500;
  let loaded = false;
  while (!controller.signal.aborted) {
    try {
      const token = state.token;
      const response = await fetch(new URL("events", base), {
        headers: headers(token, { Accept: "text/event-stream" }), signal: controller.signal,
      });
      if (response.status === 401) {
        setLive("off", "token needed");
        if (token === state.token) askForToken();
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      setLive("on", "live");
      delay = 500;
      loaded = true;
      loadList();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        // A CR at the end of a chunk may be half of a CRLF: wait for the next chunk.
        const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
        let text = buffer.slice(0, cut).replace(/\r\n?/g, "\n");
        buffer = buffer.slice(cut);
        let end;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          let kind = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (!data.length) continue;
          let parsed;
          try { parsed = JSON.parse(data.join("\n")); } catch (_) { continue; }
          receive(kind, parsed);
        }
        buffer = text + buffer;
      }
      throw new Error("the event stream ended");
    } catch (error) {
      if (controller.signal.aborted) return;
      setLive("off", "reconnecting…");
      if (!loaded) {
        loaded = true;
        loadList(); // show the jobs even while live updates are unavailable
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
}

// ---- operations on jobs -----------------------------------------------------------------

const JSON_POST = { method: "POST", headers: { "Content-Type": "application/json" } };

async function retryJob(id, message) {
  try {
    const job = await api(`jobs/${id}/retry`, Object.assign({ body: "{}" }, JSON_POST));
    show(job);
    setMessage(message, "ok", "Queued again: ", el("span", { class: "id" }, id));
  } catch (error) {
    setMessage(message, "error", `Retry failed: ${error.message}`);
  }
  state.stale.add(id);
  jobPageChanged(id);
}

async function deleteJob(id, message) {
  try {
    await api(`jobs/${id}`, { method: "DELETE" });
    erase(id);
    state.stale.delete(id);
    jobPageDeleted(id);
    setMessage(message, "ok", "Deleted ", el("span", { class: "id" }, id));
  } catch (error) {
    setMessage(message, "error", `Delete failed: ${error.message}`);
    state.stale.add(id);
    jobPageChanged(id);
  }
}

// Asks a yes-or-no question in a modal dialog; resolves to whether the answer was yes.
function confirmDialog(title, text, action) {
  const dialog = $("#confirm-dialog");
  setText($("#confirm-title"), title);
  setText($("#confirm-text"), text);
  setText($("#confirm-yes"), action);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

const BULK = {
  cancel: { verb: "Cancel", done: "canceled or asked to stop" },
  retry: { verb: "Retry", done: "queued again" },
  delete: { verb: "Delete", done: "deleted" },
};

function describeFilter() {
  const parts = [];
  if (state.filter.status) parts.push(`status ${state.filter.status}`);
  if (state.filter.type) parts.push(`type ${state.filter.type}`);
  if (state.filter.queue) parts.push(`queue ${state.filter.queue}`);
  return parts.length ? parts.join(", ") : "no filter: every job";
}

// A bulk action counts what it would touch first (a dry run), asks, then acts.
async function bulk(action) {
  const message = $("#bulk-message");
  const filter = {};
  if (state.filter.status) filter.status = state.filter.status;
  if (state.filter.type) filter.type = state.filter.type;
  if (state.filter.queue) filter.queue = state.filter.queue;
  const send = (dryRun) => api("jobs/bulk", Object.assign({
    body: JSON.stringify({ action, filter, dryRun }),
  }, JSON_POST));
  const { verb, done } = BULK[action];
  try {
    const { matched } = await send(true);
    if (!matched) {
      setMessage(message, "ok", `No job matches (${describeFilter()}).`);
      return;
    }
    const yes = await confirmDialog(`${verb} ${matched} job${matched === 1 ? "" : "s"}?`,
      `${verb} every job matching ${describeFilter()}: ${matched} now. Jobs in a status this does not apply to are left alone.`,
      `${verb} ${matched}`);
    if (!yes) {
      setMessage(message, "ok", "Nothing changed.");
      return;
    }
    const report = await send(false);
    setMessage(message, "ok", `${report.changed} of ${report.matched} matching jobs ${done}.`);
  } catch (error) {
    setMessage(message, "error", `${verb} failed: ${error.message}`);
  }
  loadList();
  overviewSoon();
}
for (const button of document.querySelectorAll(".bulk button")) {
  button.addEventListener("click", () => bulk(button.dataset.action));
}

// ---- a job's page -----------------------------------------------------------------------

const jobPage = { id: null, job: null, seq: 0, deleted: false };

function jobPageChanged(id) {
  if (id === jobPage.id && !jobPage.deleted) loadJobPage();
}

// The open job was deleted (here or elsewhere): say so rather than read it again.
function jobPageDeleted(id) {
  if (id !== jobPage.id) return;
  jobPage.deleted = true;
  jobPage.seq++;
  drawJobPage(null);
  setMessage($("#job-message"), "ok", "Deleted: this job and its result are gone.");
}

function openJob(id) {
  jobPage.id = id;
  jobPage.job = null;
  jobPage.deleted = false;
  setMessage($("#job-message"), "ok");
  if (location.hash !== `#job=${id}`) history.replaceState(null, "", `#job=${id}`);
  if ($("#flow-dialog").open) $("#flow-dialog").close();
  const dialog = $("#job-dialog");
  if (!dialog.open) dialog.showModal();
  loadJobPage();
}

$("#job-dialog").addEventListener("close", () => {
  jobPage.id = null;
  if (location.hash.startsWith("#job=")) history.replaceState(null, "", location.pathname + location.search);
});

async function loadJobPage() {
  const id = jobPage.id;
  if (!id) return;
  const seq = ++jobPage.seq;
  try {
    const job = await api(`jobs/${id}`);
    if (seq !== jobPage.seq || id !== jobPage.id) return;
    jobPage.job = job;
    let result;
    if (job.status === "Succeeded") {
      try { result = (await api(`jobs/${id}/result`)).result; } catch (_) { result = undefined; }
    }
    if (seq === jobPage.seq) drawJobPage(job, result);
  } catch (error) {
    if (seq !== jobPage.seq) return;
    jobPage.job = null;
    drawJobPage(null);
    setMessage($("#job-message"), "error", error.status === 404
      ? "No job has this id (it may have been deleted or pruned)." : `Could not load the job: ${error.message}`);
  }
}

function span(from, to) {
  if (!from || !to) return "";
  const ms = Math.max(0, Date.parse(to) - Date.parse(from));
  return ms < 1000 ? ` (${ms} ms)` : ` (${(ms / 1000).toFixed(1)} s)`;
}

// The attempts, oldest first: each failed one from its recorded error (start, end,
// message), then the latest if it did not fail (running, succeeded or canceled).
function attempts(job) {
  const items = (job.errors || []).map((e) => ({
    attempt: e.attempt, status: "Failed", start: e.startedAt, end: e.at, error: e.message,
  }));
  const last = items.length ? items[items.length - 1].attempt : 0;
  if (job.attempt > last && job.startedAt) {
    const status = job.status === "Queued" ? "Running" : job.status;
    items.push({ attempt: job.attempt, status, start: job.startedAt, end: job.finishedAt, error: null });
  }
  return items;
}

function drawJobPage(job, result) {
  const has = !!job;
  setText($("#job-title"), has ? job.jobType : "Job");
  setText($("#job-id"), jobPage.id || "");
  const badge = $("#job-status");
  badge.className = "badge " + (has ? job.status : "");
  setText(badge, has ? job.status : "");
  $("#job-cancel").hidden = !has || !ACTIVE.has(job.status) || job.cancelRequested;
  $("#job-retry").hidden = !has || !RETRYABLE.has(job.status);
  $("#job-delete").hidden = !has || ACTIVE.has(job.status);
  const timeline = $("#job-timeline");
  if (!has) {
    timeline.replaceChildren();
    $("#job-details").replaceChildren();
    return;
  }
  const items = attempts(job);
  timeline.replaceChildren(...(items.length ? items.map((a) => el("li", { class: a.status, dataset: { attempt: a.attempt } },
    el("div", { class: "attempt-head" }, `Attempt ${a.attempt}: ${a.status === "Running" && !a.end ? "running" : a.status.toLowerCase()}`),
    el("div", { class: "when" }, `started ${a.start ? new Date(a.start).toLocaleString() : "(not recorded)"}`
      + (a.end ? ` · ended ${new Date(a.end).toLocaleString()}${span(a.start, a.end)}` : "")),
    a.error ? el("div", { class: "attempt-error" }, a.error) : null))
    : [el("li", { class: "Queued" }, job.status === "Canceled" ? "Canceled before it ever ran."
      : job.status === "Waiting" ? "Not started yet: it waits for the jobs it depends on." : "Not started yet.")]));
  const parts = [el("div", {}, el("h3", {}, "Payload"), el("pre", {}, pretty(job.payload)))];
  if (job.status === "Succeeded") {
    parts.push(el("div", {}, el("h3", {}, "Result"), el("pre", { class: "result" },
      result === undefined ? "could not load the result" : pretty(result))));
  }
  parts.push(el("div", {}, el("h3", {}, "Details"), el("pre", {}, [
    `queue     ${job.queue || "default"}`,
    `limit     ${keyText(job)}`,
    job.waitingOn ? `waits on  ${job.waitingOn.reason}` : null,
    `priority  ${job.priority || 0}`,
    `attempts  ${job.attempt} of at most ${job.maxAttempts || 1}`,
    `run at    ${job.runAt || "-"}`,
    `created   ${job.createdAt}`,
    `finished  ${job.finishedAt || "-"}`,
    job.uniqueKey ? `key       ${job.uniqueKey}` : null,
    (job.dependsOn || []).length ? `parents   ${job.dependsOn.length}; ${job.onParentFailure === "run"
      ? "runs once all have finished, however they ended" : "canceled if one fails or is canceled"}` : null,
    job.payloadFrom && job.payloadFrom !== "submitted" ? `payload   ${SOURCES[job.payloadFrom] || job.payloadFrom}` : null,
  ].filter(Boolean).join("\n"))));
  const graph = graphLinks(job);
  if (graph) parts.push(graph);
  $("#job-details").replaceChildren(...parts);
}

// Where a dependant's arguments come from.
const SOURCES = {
  parent: "its parent's result",
  parents: "its parents' results, in order",
  batch: "a summary of how its parents ended",
};

// A link that opens a job's page, named by its short id.
function jobLink(id, label) {
  return el("a", { href: `#job=${id}`, class: "job-link", dataset: { jobId: id }, title: id,
    onclick: (event) => { event.preventDefault(); openJob(id); } }, label || shortId(id));
}

function shortId(id) {
  return id.slice(0, 8) + "…" + id.slice(-4);
}

// Where the job stands in a graph: its flow, the jobs it waits for and those waiting for
// it, each a link; nothing for a job on its own.
function graphLinks(job) {
  const parents = job.parents || job.dependsOn || [];
  const children = job.children || [];
  if (!job.flow && !parents.length && !children.length) return null;
  const list = (ids) => ids.length ? ids.flatMap((id, i) => (i ? [", ", jobLink(id)] : [jobLink(id)])) : ["none"];
  return el("div", { class: "graph-links" },
    job.flow ? [el("h3", {}, "Flow"), el("p", {}, el("a", {
      href: `#flow=${job.flow}`, id: "job-flow", dataset: { flowId: job.flow },
      onclick: (event) => { event.preventDefault(); openFlow(job.flow); },
    }, "Open its flow"), " ", el("span", { class: "id" }, job.flow))] : null,
    el("h3", {}, "Waits for"), el("p", { class: "parents" }, list(parents)),
    el("h3", {}, "Waited for by"), el("p", { class: "children" }, job.children ? list(children) : ["unknown"]));
}

$("#job-retry").addEventListener("click", () => retryJob(jobPage.id, $("#job-message")));
$("#job-delete").addEventListener("click", () => deleteJob(jobPage.id, $("#job-message")));
$("#job-cancel").addEventListener("click", async () => {
  const id = jobPage.id;
  try {
    await api(`jobs/${id}/cancel`, Object.assign({ body: "{}" }, JSON_POST));
  } catch (error) {
    setMessage($("#job-message"), "error", `Cancel failed: ${error.message}`);
  }
  state.stale.add(id);
  loadJobPage();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
$("#find-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = $("#find-id").value.trim().toLowerCase();
  if (!UUID.test(id)) {
    setMessage($("#find-message"), "error", "A job id is a UUID, such as 0192f1c2-7d3a-7b41-9c55-3f1e2a9b8c7d.");
    return;
  }
  try {
    await api(`jobs/${id}`);
    setMessage($("#find-message"), "ok");
    openJob(id);
  } catch (error) {
    setMessage($("#find-message"), "error", error.status === 404 ? "No job has this id." : error.message);
  }
});

// A job's page is at #job=<id>, a flow's at #flow=<id>.
function openFromHash() {
  const job = /^#job=([0-9a-f-]{36})$/i.exec(location.hash);
  if (job) openJob(job[1].toLowerCase());
  const flow = /^#flow=([0-9a-f-]{36})$/i.exec(location.hash);
  if (flow) openFlow(flow[1].toLowerCase());
}
window.addEventListener("hashchange", openFromHash);

// ---- a flow's page ----------------------------------------------------------------------

// The flow on screen: its view as last read, and its members' cards, kept and updated in
// place while the graph stays the same.
const flowPage = { id: null, view: null, seq: 0, members: new Set(), cards: new Map(), shape: "",
  timer: null, loading: false, again: false };

function openFlow(id) {
  if (flowPage.id !== id) {
    flowPage.view = null;
    flowPage.members = new Set();
    flowPage.cards = new Map();
    flowPage.shape = "";
    $("#flow-steps").replaceChildren();
  }
  flowPage.id = id;
  setMessage($("#flow-message"), "ok");
  if (location.hash !== `#flow=${id}`) history.replaceState(null, "", `#flow=${id}`);
  if ($("#job-dialog").open) $("#job-dialog").close();
  const dialog = $("#flow-dialog");
  if (!dialog.open) dialog.showModal();
  drawFlowHead();
  loadFlowPage();
}

$("#flow-dialog").addEventListener("close", () => {
  flowPage.id = null;
  flowPage.members = new Set();
  if (location.hash.startsWith("#flow=")) history.replaceState(null, "", location.pathname + location.search);
});

// Reads the flow again soon: events of its members come in bursts.
function flowSoon() {
  if (flowPage.timer || !flowPage.id) return;
  flowPage.timer = setTimeout(() => {
    flowPage.timer = null;
    loadFlowPage();
  }, 200);
}

// What the event stream said of the open flow's members: progress is drawn at once,
// anything else reads the flow again.
function flowEvents(progress, changed) {
  if (!flowPage.id) return;
  for (const [id, report] of progress) {
    const member = flowPage.view && flowPage.view.members.find((job) => job.id === id);
    if (member && member.status === "Running") {
      member.progress = report;
      updateCard(member);
    }
  }
  if (changed) flowSoon();
}

// A flow that has not finished is also read every few seconds: a job that joins it later
// says nothing of its flow in its events.
setInterval(() => {
  if (flowPage.id && flowPage.view && flowPage.view.counts.finished < flowPage.view.counts.total) flowSoon();
}, 5000);

async function loadFlowPage() {
  const id = flowPage.id;
  if (!id) return;
  if (flowPage.loading) {
    flowPage.again = true;
    return;
  }
  flowPage.loading = true;
  const seq = ++flowPage.seq;
  try {
    const view = await api(`flows/${id}`);
    if (seq === flowPage.seq && id === flowPage.id) drawFlowPage(view);
  } catch (error) {
    if (seq === flowPage.seq && id === flowPage.id) {
      setMessage($("#flow-message"), "error", error.status === 404
        ? "No job belongs to this flow (its jobs may have been deleted or pruned)." : `Could not load the flow: ${error.message}`);
    }
  } finally {
    flowPage.loading = false;
    if (flowPage.again) {
      flowPage.again = false;
      loadFlowPage();
    }
  }
}

function drawFlowHead() {
  const view = flowPage.view;
  setText($("#flow-id"), flowPage.id || "");
  const counts = view ? view.counts : null;
  const left = counts ? counts.total - counts.finished : 0;
  $("#flow-cancel").hidden = !counts || left === 0;
  setText($("#flow-finished"), counts ? `${counts.finished} of ${counts.total} finished` : "loading…");
  setText($("#flow-counts"), counts ? ["succeeded", "failed", "canceled", "running", "queued", "waiting"]
    .filter((status) => counts[status]).map((status) => `${counts[status]} ${status}`).join(" · ") : "");
  const bar = $("#flow-bar");
  const part = (n) => (counts && counts.total ? (n / counts.total) * 100 : 0) + "%";
  bar.querySelector(".seg.Succeeded").style.width = part(counts ? counts.succeeded : 0);
  bar.querySelector(".seg.Failed").style.width = part(counts ? counts.failed : 0);
  bar.querySelector(".seg.Canceled").style.width = part(counts ? counts.canceled : 0);
  bar.setAttribute("aria-valuemax", String(counts ? counts.total : 0));
  bar.setAttribute("aria-valuenow", String(counts ? counts.finished : 0));
}

// Each member's step: 1 for a member none of whose parents is in the flow, else one more
// than its latest parent's.
function stepsOf(view) {
  const byId = new Map(view.members.map((job) => [job.id, job]));
  const step = new Map();
  const of = (job, seen) => {
    if (step.has(job.id)) return step.get(job.id);
    seen.add(job.id);
    let n = 1;
    for (const parent of job.dependsOn || []) {
      const member = byId.get(parent);
      if (member && !seen.has(parent)) n = Math.max(n, of(member, seen) + 1);
    }
    step.set(job.id, n);
    return n;
  };
  for (const job of view.members) of(job, new Set());
  return step;
}

function drawFlowPage(view) {
  flowPage.view = view;
  flowPage.members = new Set(view.members.map((job) => job.id));
  drawFlowHead();
  // The graph is drawn again only when it changed (a member joined or left).
  const shape = view.members.map((job) => job.id + ":" + (job.dependsOn || []).join(",")).join(";");
  if (shape !== flowPage.shape) {
    flowPage.shape = shape;
    flowPage.cards = new Map();
    const steps = stepsOf(view);
    const layers = [];
    for (const job of view.members) {
      const n = steps.get(job.id);
      (layers[n - 1] ||= []).push(job);
    }
    const byId = new Map(view.members.map((job) => [job.id, job]));
    $("#flow-steps").replaceChildren(...layers.map((jobs, i) => el("li", { class: "flow-step", dataset: { step: i + 1 } },
      el("div", { class: "step-head" }, `Step ${i + 1}`,
        el("span", { class: "hint" }, jobs.length === 1 ? "" : ` · ${jobs.length} jobs`)),
      el("div", { class: "step-members" }, jobs.map((job) => buildCard(job, byId))))));
  }
  for (const job of view.members) updateCard(job);
}

// A member's card: its type and id (a link to its page), its status and progress, and the
// jobs it runs after.
function buildCard(job, byId) {
  const parents = job.dependsOn || [];
  const named = (id) => {
    const parent = byId.get(id);
    return jobLink(id, parent ? `${parent.jobType} ${shortId(id)}` : `${shortId(id)} (outside the flow)`);
  };
  const after = parents.length === 0 ? null
    : parents.length <= 4 ? el("div", { class: "after" }, "after ",
      parents.flatMap((id, i) => (i ? [", ", named(id)] : [named(id)])))
      : el("div", { class: "after", title: parents.join("\n") }, `after ${parents.length} jobs`);
  const cells = {
    badge: el("span", { class: "badge" }),
    fill: el("div", { class: "fill" }),
    pct: el("span", { class: "pct" }),
    message: el("span", { class: "progress-message" }),
    error: el("div", { class: "job-error" }),
  };
  cells.bar = el("div", { class: "bar", role: "progressbar", "aria-label": `progress of ${job.jobType}`,
    "aria-valuemin": 0, "aria-valuemax": 100 }, cells.fill);
  cells.progress = el("div", { class: "progress" }, cells.bar, el("div", { class: "progress-text" }, cells.pct, cells.message));
  const card = el("div", { class: "member", dataset: { id: job.id } },
    el("div", { class: "member-head" }, jobLink(job.id, job.jobType), cells.badge),
    el("div", { class: "id", title: job.id }, shortId(job.id)),
    after, cells.progress, cells.error);
  flowPage.cards.set(job.id, { card, cells });
  return card;
}

function updateCard(job) {
  const entry = flowPage.cards.get(job.id);
  if (!entry) return;
  const { card, cells } = entry;
  card.dataset.status = job.status;
  card.className = "member " + job.status;
  cells.badge.className = "badge " + job.status;
  setText(cells.badge, job.status);
  const percent = percentOf(job);
  const shown = job.status === "Running" || (job.status !== "Succeeded" && !!job.progress);
  cells.progress.hidden = !shown;
  cells.progress.className = "progress " + job.status;
  cells.fill.style.width = percent + "%";
  cells.bar.setAttribute("aria-valuenow", String(percent));
  setText(cells.pct, percent + "%");
  setText(cells.message, job.progress ? job.progress.message : "");
  setText(cells.error, job.error || "");
}

$("#flow-cancel").addEventListener("click", async () => {
  const id = flowPage.id;
  const counts = flowPage.view && flowPage.view.counts;
  if (!id || !counts) return;
  const left = counts.total - counts.finished;
  const jobs = `${left} job${left === 1 ? "" : "s"}`;
  const yes = await confirmDialog(`Cancel ${jobs} of this flow?`,
    `Cancel every job of this flow that has not finished: ${left} of ${counts.total} now. Waiting and queued ones are canceled at once and never run; running ones are asked to stop.`,
    `Cancel ${jobs}`);
  if (id !== flowPage.id) return;
  if (!yes) {
    setMessage($("#flow-message"), "ok", "Nothing changed.");
    return;
  }
  try {
    const report = await api(`flows/${id}/cancel`, Object.assign({ body: "{}" }, JSON_POST));
    setMessage($("#flow-message"), "ok", `${report.canceled} canceled`
      + (report.stopRequested ? `, ${report.stopRequested} running asked to stop` : "") + ".");
  } catch (error) {
    setMessage($("#flow-message"), "error", `Cancel failed: ${error.message}`);
  }
  loadFlowPage();
  loadList();
});

// ---- queues and throughput --------------------------------------------------------------

const overview = { minutes: [], timer: null, loading: false, again: false };

// Reads the queues and the chart again soon, at most twice a second.
function overviewSoon() {
  if (overview.timer) return;
  overview.timer = setTimeout(() => {
    overview.timer = null;
    loadOverview();
  }, 500);
}

async function loadOverview() {
  if (overview.loading) {
    overview.again = true;
    return;
  }
  overview.loading = true;
  try {
    const [queues, throughput] = await Promise.all([api("queues"), api("throughput?minutes=60")]);
    drawQueues(queues.queues);
    overview.minutes = throughput.minutes;
    drawChart();
    setMessage($("#queues-message"), "error");
  } catch (error) {
    setMessage($("#queues-message"), "error", `Could not load the queues: ${error.message}`);
  } finally {
    overview.loading = false;
    if (overview.again) {
      overview.again = false;
      loadOverview();
    }
  }
}
setInterval(loadOverview, 10000);

function rate(n) {
  return n === 0 ? "0" : n < 10 ? n.toFixed(1) : String(Math.round(n));
}

function drawQueues(queues) {
  const tbody = $("#queues");
  if (!queues.length) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No queues yet.")));
  } else {
    tbody.replaceChildren(...queues.map((q) => el("tr", { class: "queue", dataset: { queue: q.queue } },
      el("td", { class: "type" }, q.queue),
      el("td", { class: "queued" }, String(q.queued)),
      el("td", { class: "scheduled" }, String(q.scheduled)),
      el("td", { class: "running" }, String(q.running)),
      el("td", { class: "finished-rate" }, rate(q.finishedPerMinute)),
      el("td", { class: "failed-rate" }, rate(q.failedPerMinute)),
      el("td", { class: "workers" }, q.workers.length ? q.workers.map((w) => el("div", {
        class: "worker" + (w.quiet ? " quiet" : ""), dataset: { worker: w.id },
        title: `worker ${w.id}, pid ${w.pid}; last heartbeat ${w.lastSeen}`,
      }, `${w.host} · pid ${w.pid} · ${w.concurrency} worker${w.concurrency === 1 ? "" : "s"} · seen ${ago(w.lastSeen)}`))
        : el("span", { class: "hint" }, "none: nothing runs these jobs")),
      el("td", { class: "state" }, pauseButton(q)))));
  }
  // The queue filter offers every queue known.
  const select = $("#queue-filter");
  const names = queues.map((q) => q.queue);
  if (state.filter.queue && !names.includes(state.filter.queue)) names.push(state.filter.queue);
  const known = [...select.options].slice(1).map((o) => o.value);
  if (known.join("\n") !== names.join("\n")) {
    select.replaceChildren(el("option", { value: "" }, "All queues"),
      ...names.map((name) => el("option", { value: name }, name)));
    select.value = state.filter.queue;
  }
}

// A job's concurrency key and how many of its jobs may run at once.
function keyText(job) {
  return job.concurrencyKey ? `key ${job.concurrencyKey}, ${job.concurrencyLimit || 1} at once` : "-";
}

// A queue runs or is paused for every process; the button switches it.
function pauseButton(queue) {
  const paused = queue.pausedSince !== null;
  const button = el("button", {
    type: "button", class: paused ? "resume" : "pause",
    title: paused ? `Paused ${ago(queue.pausedSince)}: its jobs wait. Resume it.`
      : "Pause it for every process: running jobs finish, queued ones wait",
  }, paused ? "Resume" : "Pause");
  button.addEventListener("click", async () => {
    button.disabled = true;
    const verb = paused ? "resume" : "pause";
    try {
      await api(`queues/${encodeURIComponent(queue.queue)}/${verb}`, Object.assign({ body: "{}" }, JSON_POST));
      setMessage($("#queues-message"), "error");
    } catch (error) {
      setMessage($("#queues-message"), "error", `Could not ${verb} ${queue.queue}: ${error.message}`);
    }
    loadOverview();
  });
  return paused ? [el("span", { class: "paused" }, "paused "), button] : button;
}

// A finish seen on the event stream counts in the minute under way at once; the next
// read of the series replaces the estimate with the store's count.
function countFinish(status) {
  const minutes = overview.minutes;
  if (!minutes.length) return;
  const now = Date.now();
  let last = minutes[minutes.length - 1];
  if (now - Date.parse(last.minute) >= 60000) {
    const start = new Date(now - (now % 60000)).toISOString();
    last = { minute: start, succeeded: 0, failed: 0, canceled: 0 };
    minutes.push(last);
    if (minutes.length > 60) minutes.shift();
  }
  if (status === "Succeeded") last.succeeded++;
  else if (status === "Failed") last.failed++;
  else if (status === "Canceled") last.canceled++;
  drawChart();
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawChart() {
  const chart = $("#chart");
  const minutes = overview.minutes;
  const width = 600, height = 140, top = 12, bottom = 18;
  const most = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed));
  const step = width / Math.max(minutes.length, 1);
  const scale = (n) => (n / most) * (height - top - bottom);
  const nodes = [svg("line", { class: "axis", x1: 0, x2: width, y1: height - bottom, y2: height - bottom })];
  minutes.forEach((m, i) => {
    const x = i * step + 1, w = Math.max(step - 2, 1);
    const ok = scale(m.succeeded), bad = scale(m.failed);
    const base = height - bottom;
    const group = svg("g", { class: "minute", "data-minute": m.minute, "data-succeeded": m.succeeded, "data-failed": m.failed });
    group.append(svg("title", {}, `${new Date(m.minute).toLocaleTimeString()}: ${m.succeeded} succeeded, ${m.failed} failed`));
    if (m.succeeded) group.append(svg("rect", { class: "ok", x, width: w, y: base - ok, height: ok }));
    if (m.failed) group.append(svg("rect", { class: "bad", x, width: w, y: base - ok - bad, height: bad }));
    nodes.push(group);
  });
  nodes.push(svg("text", { x: 2, y: 10 }, `${most}/min`));
  nodes.push(svg("text", { x: 2, y: height - 4 }, "60 min ago"));
  nodes.push(svg("text", { x: width - 2, y: height - 4, "text-anchor": "end" }, "now"));
  chart.replaceChildren(...nodes);
  const total = minutes.reduce((sum, m) => sum + m.succeeded + m.failed, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  setText($("#chart-summary"), `${total} finished in the last hour, ${failed} failed.`);
}

// ---- start ------------------------------------------------------------------------------

async function start() {
  try {
    const body = await api("job-types");
    state.types = body.jobTypes;
  } catch (error) {
    setMessage($("#list-message"), "error", `Could not load the job types: ${error.message}`);
    if (error.status === 401) setLive("off", "token needed");
    return;
  }
  const previous = $("#type").value;
  $("#type").replaceChildren(...state.types.map((t) => el("option", { value: t.type }, t.type)));
  if (state.types.some((t) => t.type === previous)) $("#type").value = previous;
  $("#type-filter").replaceChildren(el("option", { value: "" }, "All types"),
    ...state.types.map((t) => el("option", { value: t.type }, t.type)));
  $("#type-filter").value = state.filter.type;
  showType();
  listen();
  loadOverview();
  openFromHash();
}

start();
