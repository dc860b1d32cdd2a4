// pvetrail's web view: plain JavaScript and SVG over the JSON API (/api/v1), no library.
//
// The whole state of the view lives in the URL's fragment (#view=inventory&position=12&type=qemu),
// so a link is shareable and the browser's back button works. Data calls carry the bearer token
// kept in sessionStorage (asked for once, on the first 401); a loopback pvetrail needs none.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "pvetrail.token";
const PAGE_LIMIT = 1000;
const MAX_PAGES = 20; // an inventory of up to 20,000 resources in the table
const TIMELINE_EVENTS = 1000; // the cluster timeline draws the last this many events
const TYPE_ORDER = ["qemu", "lxc", "node", "storage", "pool", "network", "snapshot", "backup"];
const FILTERS = ["type", "node", "status", "tag", "pool", "q"];
const PVESH = { POST: "create", PUT: "set", GET: "get", DELETE: "delete" };

// -- small helpers --------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child));
  return node;
}

function showTime(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-";
}

function showValue(value) {
  if (value === null || value === undefined) return "-";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function naturalKey(text) {
  return text.split(/(\d+)/).map((part, i) => (i % 2 ? part.padStart(12, "0") : part)).join("");
}

function typeRank(type) {
  const index = TYPE_ORDER.indexOf(type);
  return index < 0 ? TYPE_ORDER.length : index;
}

function byGuestsFirst(a, b) {
  return typeRank(a.type) - typeRank(b.type) || a.type.localeCompare(b.type)
    || naturalKey(a.id).localeCompare(naturalKey(b.id));
}

function actorText(actor) {
  if (!actor) return "-";
  return actor.token || actor.user || "-";
}

function shellQuote(text) {
  const value = String(text);
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}

/** A plan step as the pvesh command that runs it. */
function pveshLine(step) {
  const params = Object.entries(step.params || {}).map(([k, v]) => `--${k} ${shellQuote(showValue(v))}`);
  return ["pvesh", PVESH[step.method] || step.method.toLowerCase(), step.path, ...params].join(" ");
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// -- the URL's fragment is the state ------------------------------------------------------------
function readState() {
  const params = new URLSearchParams(location.hash.slice(1));
  const state = Object.fromEntries(params.entries());
  state.view = state.view || "inventory";
  return state;
}

function stateHash(state) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) {
    if (value !== null && value !== undefined && value !== "") params.set(key, value);
  }
  return "#" + params.toString();
}

function go(changes, { replace = false } = {}) {
  const next = { ...readState(), ...changes };
  const hash = stateHash(next);
  if (hash === location.hash) return;
  if (replace) history.replaceState(null, "", hash);
  else history.pushState(null, "", hash);
  render();
}

function pointQuery(state) {
  if (state.position) return { position: state.position };
  if (state.at) return { at: state.at };
  return {};
}

function link(state, text, attrs = {}) {
  return el("a", { href: stateHash(state), ...attrs }, text);
}

function resourceLink(id, state) {
  return link({ view: "resource", id, ...pointQuery(state) }, id, { class: "mono" });
}

// -- the API ------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

function encodeId(id) {
  return encodeURIComponent(id); // one percent-encoded segment, as the contract allows
}

async function api(path, { method = "GET", body, allow = [] } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    await askToken(token ? "That token was refused." : "");
    return api(path, { method, body, allow });
  }
  const type = response.headers.get("Content-Type") || "";
  const answer = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok && !allow.includes(response.status)) throw new ApiError(response.status, answer);
  return answer;
}

async function allPages(path, params) {
  let items = [];
  let answer = null;
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    answer = await api(path + query(cursor ? { cursor } : { ...params, limit: PAGE_LIMIT }));
    items = items.concat(answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return { ...answer, items, truncated: Boolean(cursor) };
}

let tokenWaiters = null;
function askToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (tokenWaiters) return new Promise((resolve) => tokenWaiters.push(resolve));
  tokenWaiters = [];
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-error").textContent = message;
  return new Promise((resolve) => {
    tokenWaiters.push(resolve);
    dialog.addEventListener("close", function done() {
      dialog.removeEventListener("close", done);
      const value = document.getElementById("token-input").value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      const waiters = tokenWaiters;
      tokenWaiters = null;
      waiters.forEach((wake) => wake());
    });
    dialog.showModal();
  });
}

// -- the log's extent, for the time control ------------------------------------------------------
const log = { head: 0, first: null };

async function loadExtent() {
  const ready = await api("/readyz", { allow: [503] });
  log.head = ready.checks && ready.checks.database ? ready.checks.database.head || 0 : 0;
  if (log.first === null && log.head > 0) {
    const page = await api(`${API}/events${query({ after: 0, limit: 1 })}`);
    log.first = page.items.length ? page.items[0].observed_at : null;
  }
}

async function eventAt(position) {
  const page = await api(`${API}/events${query({ after: position - 1, limit: 1 })}`);
  return page.items[0] || null;
}

// -- the time control ---------------------------------------------------------------------------
const timeControl = {
  init() {
    this.box = document.getElementById("time-control");
    this.slider = document.getElementById("position-slider");
    this.input = document.getElementById("at-input");
    this.label = document.getElementById("as-of");
    const follow = debounce(() => go({ position: this.slider.value, at: "" }, { replace: true }), 250);
    this.slider.addEventListener("input", () => {
      this.label.textContent = `position ${this.slider.value} …`;
      follow();
    });
    this.input.addEventListener("change", () => {
      if (this.input.value) go({ at: this.input.value.length === 16 ? this.input.value + ":00Z" : this.input.value + "Z", position: "" });
    });
    document.getElementById("now-button").addEventListener("click", () => go({ at: "", position: "" }));
  },
  show(visible) {
    this.box.hidden = !visible;
  },
  /** Put the control where the answer was: its position, and that event's time. */
  async sync(state, answeredPosition) {
    this.slider.max = String(Math.max(log.head, 1));
    const position = Number(state.position || answeredPosition || log.head || 1);
    this.slider.value = String(position);
    const now = !state.position && !state.at;
    let when = state.at || null;
    if (!when && position > 0 && !now) {
      const event = await eventAt(position);
      when = event ? event.observed_at : null;
    }
    if (document.activeElement !== this.input) this.input.value = when ? when.slice(0, 19) : "";
    this.label.textContent = now
      ? `now · position ${position} of ${log.head}`
      : `as of ${showTime(when)} · position ${position} of ${log.head}`;
  },
};

// -- views --------------------------------------------------------------------------------------
const main = () => document.getElementById("main");
let renderCount = 0;

async function render() {
  const state = readState();
  const mine = ++renderCount;
  const hash = location.hash;
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.view === state.view);
  }
  const view = VIEWS[state.view] || VIEWS.inventory;
  timeControl.show(view.timed);
  setStatus("loading…");
  try {
    await loadExtent();
    const content = await view.render(state);
    if (mine !== renderCount) return; // a newer render started meanwhile
    main().replaceChildren(content);
  } catch (error) {
    if (mine !== renderCount) return;
    main().replaceChildren(problem(error));
  }
  main().dataset.rendered = hash; // what is shown (scripts and tests wait for it)
  setStatus("");
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function problem(error) {
  const body = error.body || {};
  return el("div", { class: "panel error", id: "problem" },
    el("strong", {}, body.title || "Error"), ": ", error.message,
    body.first_seen ? el("div", { class: "muted" },
      `first seen ${showTime(body.first_seen)}, last seen ${showTime(body.last_seen) || "still exists"}`) : null);
}

function table(headers, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function changeList(changes) {
  return el("ul", { class: "changes" }, changes.map((c) => el("li", {},
    el("code", {}, c.field), " ",
    el("span", { class: "old mono" }, showValue(c.old)), " → ",
    el("span", { class: "new mono" }, showValue(c.new)))));
}

// Inventory ------------------------------------------------------------------------------------
async function inventoryView(state) {
  const params = { ...pointQuery(state) };
  for (const name of FILTERS) params[name] = state[name];
  const page = await allPages(`${API}/resources`, params);
  await timeControl.sync(state, page.position);
  const items = [...page.items].sort(byGuestsFirst);
  const rows = [];
  let group = null;
  for (const r of items) {
    if (r.type !== group) {
      group = r.type;
      const count = items.filter((i) => i.type === group).length;
      rows.push(el("tr", { class: "group" }, el("td", { colspan: 7 }, `${group} (${count})`)));
    }
    rows.push(el("tr", { "data-id": r.id },
      el("td", {}, resourceLink(r.id, state)),
      el("td", {}, r.type),
      el("td", {}, showValue(r.name)),
      el("td", {}, showValue(r.node)),
      el("td", { class: `status-${r.status}` }, showValue(r.status)),
      el("td", {}, r.tags.join(", ") || "-"),
      el("td", {}, showValue(r.pool))));
  }
  return el("div", {},
    el("h1", {}, "Inventory"),
    filterBar(state),
    el("p", { class: "muted", id: "inventory-count" },
      `${items.length} resources at position ${page.position}` + (page.truncated ? " (first pages only)" : "")),
    table(["ID", "Type", "Name", "Node", "Status", "Tags", "Pool"], rows, { id: "inventory" }));
}

function filterBar(state) {
  const field = (name, placeholder) => el("input", {
    name, placeholder, value: state[name] || "", "aria-label": placeholder,
    onchange: (e) => go({ [name]: e.target.value.trim() }),
  });
  const type = el("select", { name: "type", "aria-label": "type", onchange: (e) => go({ type: e.target.value }) },
    el("option", { value: "" }, "every type"),
    TYPE_ORDER.map((t) => el("option", { value: t, selected: state.type === t }, t)));
  return el("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
    type, field("node", "node"), field("status", "status"), field("tag", "tag"),
    field("pool", "pool"), field("q", "search id or name"));
}

// Timeline -------------------------------------------------------------------------------------
/** Spans (observed_after → observed_at) per lane, as SVG; ``onPick`` gets the clicked item. */
function drawTimeline(items, { lane, label, onPick }) {
  const lanes = [...new Set(items.map(lane))].sort();
  const width = 1100, left = 160, right = 20, top = 24, row = 26;
  const height = top + Math.max(lanes.length, 1) * row + 10;
  const times = items.flatMap((i) => [i.observed_after, i.observed_at].filter(Boolean).map(Date.parse));
  const start = Math.min(...times), end = Math.max(...times);
  const span = Math.max(end - start, 1000);
  const tick = (ms) => {
    const iso = new Date(ms).toISOString();
    return span < 60000 ? iso.slice(11, 23) + "Z" : showTime(iso);
  };
  const x = (iso) => left + ((Date.parse(iso) - start) / span) * (width - left - right);
  const chart = svg("svg", { class: "timeline", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "changes over time; each bar spans the change's observation window" });
  for (let i = 0; i <= 4; i++) {
    const at = start + (span * i) / 4;
    const gx = left + ((width - left - right) * i) / 4;
    chart.append(svg("line", { class: "grid", x1: gx, x2: gx, y1: top - 6, y2: height - 6 }));
    chart.append(svg("text", { class: "axis", x: gx, y: 12, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
      tick(at)));
  }
  lanes.forEach((name, i) => chart.append(svg("text", { class: "lane", x: 6, y: top + i * row + 15 }, name)));
  // Wide windows first, so that a narrow one drawn over them stays visible and clickable.
  const windowOf = (i) => Date.parse(i.observed_at) - Date.parse(i.observed_after || i.observed_at);
  for (const item of [...items].sort((a, b) => windowOf(b) - windowOf(a))) {
    const y = top + lanes.indexOf(lane(item)) * row + 4;
    const x1 = x(item.observed_after || item.observed_at), x2 = x(item.observed_at);
    const rect = svg("rect", {
      class: "span", x: Math.min(x1, x2 - 3), y, width: Math.max(x2 - x1, 3), height: row - 10, rx: 2,
      "data-position": item.position,
      onclick: () => {
        chart.querySelectorAll(".selected").forEach((s) => s.classList.remove("selected"));
        rect.classList.add("selected");
        onPick(item);
      },
    }, svg("title", {}, label(item)));
    chart.append(rect, svg("circle", { class: "point", cx: x2, cy: y + (row - 10) / 2, r: 2.5 }));
  }
  return chart;
}

function eventDetail(event, state) {
  return el("div", { class: "panel", id: "detail" },
    el("h2", {}, `${event.type} · position ${event.position}`),
    el("p", {}, resourceLink(event.stream_id, { position: event.position })),
    el("p", {}, `observed between ${showTime(event.observed_after)} and ${showTime(event.observed_at)}`,
      el("br"), `by ${actorText(event.actor)}`, event.actor && event.actor.upid ? el("span", { class: "muted mono" }, ` (${event.actor.upid})`) : null),
    event.data && event.data.changes ? changeList(event.data.changes) : null,
    el("p", {}, link({ view: "inventory", position: event.position }, "inventory as of this change")),
    el("details", {}, el("summary", {}, "the event as logged"), el("pre", { class: "mono" }, JSON.stringify(event, null, 2))));
}

async function timelineView(state) {
  const after = Math.max(0, log.head - TIMELINE_EVENTS);
  const page = await allPages(`${API}/events`, { after });
  const events = page.items.filter((e) => e.type !== "discovered" || state.discoveries === "1");
  const detail = el("div", { id: "detail-box" }, el("p", { class: "muted" }, "Click a change to see it."));
  const box = el("div", {},
    el("h1", {}, "Timeline"),
    el("p", { class: "muted" },
      `The last ${page.items.length} events of the log, one lane per event type; each bar spans the `
      + "window in which the change happened (between the last observation that did not show it and the first that did). ",
      state.discoveries === "1"
        ? link({ ...state, discoveries: "" }, "hide discoveries")
        : link({ ...state, discoveries: "1" }, "show discoveries")));
  if (!events.length) {
    box.append(el("p", {}, "No changes in this part of the log yet."));
    return box;
  }
  box.append(drawTimeline(events, {
    lane: (e) => e.type,
    label: (e) => `${e.type} ${e.stream_id} at ${showTime(e.observed_at)}`,
    onPick: (e) => detail.replaceChildren(eventDetail(e, state)),
  }), detail);
  return box;
}

// Resource -------------------------------------------------------------------------------------
async function resourceView(state) {
  const id = state.id;
  const point = pointQuery(state);
  const [found, history, relations] = await Promise.all([
    api(`${API}/resources/${encodeId(id)}${query(point)}`).catch((error) => error),
    allPages(`${API}/resources/${encodeId(id)}/history`, {}),
    api(`${API}/relations${query({ ...point, id })}`),
  ]);
  await timeControl.sync(state, relations.position);
  const box = el("div", {}, el("h1", {}, id),
    el("div", { class: "columns" },
      el("div", {}, el("h2", {}, "State"), found instanceof Error ? problem(found) : stateTable(found)),
      el("div", {},
        el("h2", {}, "Relations"), relationList(relations.edges, id, state),
        el("h2", {}, "Rollback"), await rollbackPanel(id, state))));
  const detail = el("div", { id: "detail-box" });
  if (history.items.length) {
    box.append(el("h2", {}, "Timeline"), drawTimeline(history.items, {
      lane: (e) => e.event,
      label: (e) => `${e.event} at ${showTime(e.observed_at)}`,
      onPick: (e) => detail.replaceChildren(el("div", { class: "panel", id: "detail" }, historyEntry(e, state))),
    }), detail);
  }
  box.append(el("h2", {}, "History"), historyTable(history.items, state));
  return box;
}

function stateTable(resource) {
  const fields = ["type", "name", "node", "vmid", "status", "tags", "pool", "lock", "digest"];
  const row = (key, value, cls = "mono") => el("tr", {}, el("td", { class: "key mono" }, key), el("td", { class: cls }, value));
  const rows = fields.map((f) => row(f, f === "tags" ? resource.tags.join(", ") || "-" : showValue(resource[f]),
    f === "status" ? `status-${resource.status}` : "mono"));
  rows.push(row("changed", `${showTime(resource.observed_at)} (position ${resource.position})`, ""));
  rows.push(row("last observed", showTime(resource.last_observed_at), ""));
  const config = Object.keys(resource.config || {}).sort()
    .map((key) => row(`config.${key}`, showValue(resource.config[key])));
  return el("div", { id: "state" }, el("table", {}, el("tbody", {}, rows)),
    config.length ? el("details", { open: true }, el("summary", {}, `config (${config.length} keys)`),
      el("table", {}, el("tbody", {}, config))) : null);
}

function historyEntry(e, state) {
  const changes = e.event === "discovered"
    ? el("details", {}, el("summary", {}, `discovered with ${e.changes.length} fields`), changeList(e.changes))
    : changeList(e.changes);
  return el("div", {},
    el("strong", {}, e.event), ` · position ${e.position} · `,
    link({ ...state, position: e.position, at: "" }, "state then"),
    el("div", { class: "muted" },
      `between ${showTime(e.observed_after)} and ${showTime(e.observed_at)} · by ${actorText(e.actor)}`),
    changes);
}

function historyTable(items, state) {
  if (!items.length) return el("p", { class: "muted" }, "No history.");
  const rows = [...items].reverse().map((e) => el("tr", { "data-position": e.position },
    el("td", {}, String(e.position)),
    el("td", {}, showTime(e.observed_at), el("div", { class: "muted" }, `after ${showTime(e.observed_after)}`)),
    el("td", {}, e.event),
    el("td", {}, actorText(e.actor)),
    el("td", {}, e.event === "discovered"
      ? el("details", {}, el("summary", {}, `${e.changes.length} fields`), changeList(e.changes))
      : changeList(e.changes))));
  return table(["#", "Observed", "Event", "Actor", "Changes"], rows, { id: "history" });
}

function relationList(edges, id, state) {
  if (!edges.length) return el("p", { class: "muted" }, "No relations then.");
  return el("ul", { id: "relations" }, edges.map((edge) => el("li", {},
    edge.from === id ? "" : resourceLink(edge.from, state), edge.from === id ? "" : " ",
    el("span", { class: "badge" }, edge.rel), " ",
    edge.to === id ? "this" : resourceLink(edge.to, state))));
}

function targetBody(target) {
  switch (target.kind) {
    case "snapshot": return { snapshot: target.snapshot };
    case "backup": return { backup: target.backup };
    default: return target.position ? { position: target.position } : { at: target.at };
  }
}

async function rollbackPanel(id, state) {
  const answer = await api(`${API}/resources/${encodeId(id)}/rollback-targets`, { allow: [404, 422] })
    .catch((error) => error);
  if (answer instanceof Error || !answer.items) {
    return el("p", { class: "muted", id: "rollback" }, answer.detail || answer.message || "No rollback targets.");
  }
  const plan = el("div", { id: "plan-box" });
  const rows = answer.items.map((t, i) => el("tr", {},
    el("td", {}, t.kind), el("td", {}, t.label || "-",
      t.changed_by ? el("div", { class: "muted" }, `changed away by ${actorText(t.changed_by)}`) : null),
    el("td", {}, showTime(t.at)),
    el("td", {}, el("button", { type: "button", class: "plan-button", "data-index": i,
      onclick: async () => {
        plan.replaceChildren(el("p", { class: "muted" }, "planning…"));
        try {
          const made = await api(`${API}/rollback-plans`, { method: "POST", body: { resource: id, target: targetBody(t) } });
          plan.replaceChildren(planView(made));
        } catch (error) {
          plan.replaceChildren(problem(error));
        }
      } }, "Plan"))));
  if (!rows.length) return el("p", { class: "muted", id: "rollback" }, "No rollback targets.");
  return el("div", { id: "rollback" }, table(["Kind", "Target", "At", ""], rows, { id: "targets" }), plan);
}

function planView(plan) {
  return el("div", { class: "panel", id: "plan" },
    el("h2", {}, `Plan for ${plan.resource}`),
    plan.summary ? el("p", {}, plan.summary) : null,
    plan.based_on_digest ? el("p", { class: "muted" }, `based on config digest ${plan.based_on_digest}`) : null,
    plan.blockers && plan.blockers.length ? el("div", { class: "error" }, el("strong", {}, "Blockers"),
      el("ul", {}, plan.blockers.map((b) => el("li", {}, showValue(b))))) : null,
    plan.warnings && plan.warnings.length ? el("div", {}, el("strong", {}, "Warnings"),
      el("ul", {}, plan.warnings.map((w) => el("li", {}, showValue(w))))) : null,
    plan.steps.length ? el("ol", { class: "steps" }, plan.steps.map((step) => el("li", { class: step.disruptive ? "disruptive" : "" },
      el("code", {}, pveshLine(step)), " ",
      step.disruptive ? el("span", { class: "badge disruptive" }, "disruptive") : null, " ",
      step.requires_reboot ? el("span", { class: "badge reboot" }, "needs reboot") : null,
      el("div", { class: "muted" }, step.reason || "")))) : el("p", {}, "Nothing to do: it is already there."));
}

// Changes between two times ----------------------------------------------------------------------
async function changesView(state) {
  const since = state.since || (log.first ? log.first : "");
  const form = el("form", { class: "filters", id: "changes-form", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    go({ since: toIso(data.get("since")), until: toIso(data.get("until")), type: data.get("type") });
  } },
    el("label", {}, "since (UTC) ", el("input", { type: "datetime-local", step: 1, name: "since", value: since.slice(0, 19) })),
    el("label", {}, "until (UTC) ", el("input", { type: "datetime-local", step: 1, name: "until", value: (state.until || "").slice(0, 19) })),
    el("select", { name: "type", "aria-label": "type" }, el("option", { value: "" }, "every type"),
      TYPE_ORDER.map((t) => el("option", { value: t, selected: state.type === t }, t))),
    el("button", { type: "submit" }, "Compare"));
  const box = el("div", {}, el("h1", {}, "Changes between two times"), form);
  if (!since) return box;
  const page = await allPages(`${API}/changes`, { since, until: state.until, type: state.type });
  const rows = page.items.map((c) => el("tr", {},
    el("td", {}, resourceLink(c.id, state.until ? { at: state.until } : {})),
    el("td", { class: `kind-${c.change}` }, c.change),
    el("td", {}, c.change === "changed" ? changeList(c.changes) : "")));
  box.append(el("p", { class: "muted" }, `${page.items.length} resources differ between ${showTime(page.since)} and ${showTime(page.until)}`),
    table(["Resource", "Change", "Fields"], rows, { id: "changes" }));
  return box;
}

function toIso(local) {
  if (!local) return "";
  return local.length === 16 ? local + ":00Z" : local + "Z";
}

// Drift ------------------------------------------------------------------------------------------
async function driftView(state) {
  const sets = await api(`${API}/desired`, { allow: [404] }).catch(() => null);
  const names = Array.isArray(sets) ? sets : sets && Array.isArray(sets.items) ? sets.items : [];
  const form = el("form", { class: "filters", id: "drift-form", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    go({ baseline: toIso(data.get("baseline")), desired: data.get("desired"),
      unmanaged: data.get("unmanaged") ? "true" : "" });
  } },
    el("label", {}, "baseline (UTC) ", el("input", { type: "datetime-local", step: 1, name: "baseline", value: (state.baseline || "").slice(0, 19) })),
    el("label", {}, "or desired set ", el("select", { name: "desired" }, el("option", { value: "" }, "-"),
      names.map((n) => { const name = typeof n === "string" ? n : n.name; return el("option", { value: name, selected: state.desired === name }, name); }))),
    el("label", {}, el("input", { type: "checkbox", name: "unmanaged", checked: state.unmanaged === "true" }), " unmanaged guests"),
    el("button", { type: "submit" }, "Report"));
  const box = el("div", {}, el("h1", {}, "Drift"), form);
  if (!state.baseline && !state.desired) {
    box.append(el("p", { class: "muted" }, "Pick a baseline time or a desired set."));
    return box;
  }
  const params = state.desired ? { desired: state.desired, unmanaged: state.unmanaged } : { baseline: state.baseline };
  const answer = await allPages(`${API}/drift`, params);
  const rows = answer.items.map((d) => el("tr", {},
    el("td", {}, resourceLink(d.id, {})),
    el("td", { class: `kind-${d.kind}` }, d.kind),
    el("td", { class: "mono" }, d.field || ""),
    el("td", { class: "mono old" }, d.field === null ? "" : showValue(d.expected)),
    el("td", { class: "mono new" }, d.field === null ? "" : showValue(d.actual)),
    el("td", {}, showTime(d.since)),
    el("td", {}, actorText(d.actor))));
  box.append(el("p", { class: "muted", id: "drift-count" }, answer.items.length ? `${answer.items.length} differences` : "No drift."),
    table(["Resource", "Kind", "Field", "Expected", "Actual", "Since", "Actor"], rows, { id: "drift" }));
  return box;
}

const VIEWS = {
  inventory: { render: inventoryView, timed: true },
  resource: { render: resourceView, timed: true },
  timeline: { render: timelineView, timed: false },
  changes: { render: changesView, timed: false },
  drift: { render: driftView, timed: false },
};

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", () => {
  timeControl.init();
  render();
});
