// The saga console's behaviour. The orchestrator pushes the figures, the services and the chart
// over one event stream (server-sent events); the page reads the list, its counts and the open
// saga when the figures say something changed (at most every 2 s, and every 10 s regardless).
// Everything is rendered with textContent only, so no order id, error or operator reason can
// ever become markup. What is on screen (filters, search, open saga, rate window) lives in the
// URL's hash, so a view can be shared as a link. The operator token is typed by the user and
// kept in sessionStorage: this tab only, gone when it closes, never in the URL.
import { request } from './api.js';
import { authMessage, setupBulk } from './bulk.js';
import { drawChart } from './chart.js';
import {
  ago, age, clippedCell, currentStep, el, localInput, money, rate, statusBadge, timeCell, utc,
} from './format.js';

// The list and the open saga are read at most this often, when the figures changed.
const REFRESH_MIN_MS = 2000;
// … and this often when nothing seems to change (an operator elsewhere may have acted).
const REFRESH_MAX_MS = 10000;
const PAGE_SIZE = 50;
// A stream the browser gave up on is opened again after this long.
const RECONNECT_MS = 2000;
const TOKEN_KEY = 'saga-console.operator-token';
const OPERATOR_KEY = 'saga-console.operator';
const TERMINAL = new Set(['completed', 'compensated', 'failed']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// What GET /orders accepts as order_id_prefix (checked here to explain it before asking).
const ID_PREFIX = /^[0-9a-fA-F][0-9a-fA-F-]{0,35}$/;

const $ = (id) => document.getElementById(id);

/** The filters, as the hash spells them and as `GET /orders` names them. */
const FILTERS = [
  ['status', 'status'], ['q', 'order_id_prefix'], ['customer', 'customer_id'], ['step', 'step'],
  ['reason', 'reason'], ['from', 'created_after'], ['to', 'created_before'],
];
/** What is on screen; the hash holds all of it but the page position. */
const view = {
  status: '', q: '', customer: '', step: '', reason: '', from: '', to: '', stuck: false, order: null, window: 10,
};
/** Keyset paging: the cursor of the page on screen and those of the pages before it. */
const page = { before: null, previous: [], lastIds: [] };
/** Server time minus local time, from the last overview: ages are measured on the database's clock. */
let clockOffsetMs = 0;
/** What the `settings` event said: links, steps, this instance. */
let settings = { trace_ui_url: null, grafana_url: null, steps: [] };
/** The last counts per status, and the filter they were counted for. */
let lastCounts = { key: '', counts: null };
/** The filter the list on screen was paged for: another one starts from the first page. */
let pagedFor = '';
/** When the list and the open saga were last read, and what the figures were then. */
const reads = { list: -Infinity, detail: -Infinity, figures: '' };
const sequence = { list: 0, detail: 0 };
const problems = new Map();
/** What has been shown at least once: the page is `ready` when all of it has. */
const shown = new Set();
let stream = null;
let bulk = null;

function report(area, error) {
  if (error) problems.set(area, error.message);
  else problems.delete(area);
  const banner = $('banner');
  banner.hidden = problems.size === 0;
  banner.textContent = [...problems].map(([what, message]) => `${what}: ${message}`).join(' · ');
}

/** Runs one area's load, and reports its failure (or its recovery) in the banner. */
async function guarded(area, load) {
  try {
    await load();
    report(area, null);
  } catch (err) {
    report(area, err);
  }
}

// ---------------------------------------------------------------- overview and services

function setCard(id, value, shown, alert) {
  const card = $(id);
  card.dataset.value = value === null || value === undefined ? '' : String(value);
  card.querySelector('.value').textContent = shown;
  card.classList.toggle('alert', Boolean(alert));
}

function renderOverview(o) {
  clockOffsetMs = Date.parse(o.at) - Date.now();
  $('window').textContent = o.window_seconds;
  setCard('rate-started', o.rates.started, rate(o.rates.started));
  setCard('rate-completed', o.rates.completed, rate(o.rates.completed));
  setCard('rate-compensated', o.rates.compensated, rate(o.rates.compensated));
  setCard('rate-failed', o.rates.failed, rate(o.rates.failed), o.rates.failed > 0);
  setCard('in-flight-total', o.in_flight_total, o.in_flight_total);
  setCard('stuck-total', o.stuck_total, o.stuck_total, o.stuck_total > 0);
  $('stuck-after').textContent = `> ${age(o.stuck_after_ms / 1000)}`;
  const oldest = o.oldest_in_flight_age_seconds;
  setCard('oldest-age', oldest, age(oldest));
  setCard('requires-intervention', o.requires_intervention, o.requires_intervention, o.requires_intervention > 0);

  const rows = o.in_flight.map((g) => {
    const tr = el('tr', null, g.stuck > 0 ? 'stuck' : '');
    Object.assign(tr.dataset, { status: g.status, step: g.step, count: g.count, stuck: g.stuck });
    tr.tabIndex = 0;
    tr.title = g.stuck > 0 ? 'List them (the stuck count lists only the stuck ones)' : 'List them';
    const status = el('td');
    status.append(statusBadge(g.status));
    tr.append(status, el('td', g.step), el('td', g.count, 'num count'), el('td', g.stuck, 'num stuck'),
      el('td', age(g.oldest_age_seconds), 'num'));
    return tr;
  });
  $('in-flight').tBodies[0].replaceChildren(...rows);
  $('in-flight-empty').hidden = rows.length > 0;
}

function renderServices(answer) {
  $('served-by').textContent = `served by ${answer.instance}`;
  const items = answer.services.map((s) => {
    const li = el('li');
    li.dataset.service = s.name;
    li.dataset.up = String(s.up);
    const why = s.up ? `${s.latency_ms} ms` : s.detail || '';
    li.append(el('span', '', 'dot'), el('span', s.name, 'name'), el('span', s.up ? 'up' : 'down', 'state'),
      el('span', why, 'muted'));
    if (s.circuit_open_since) {
      // Sagas at its steps wait instead of calling it, until a probe finds it ready again.
      const since = new Date(s.circuit_open_since).toLocaleTimeString();
      const waiting = el('span', `circuit open: ${s.waiting} waiting for ${s.name} since ${since}`, 'circuit');
      li.dataset.circuit = 'open';
      li.append(waiting);
    }
    if (s.url) li.title = s.url;
    return li;
  });
  $('services').replaceChildren(...items);
}

// ---------------------------------------------------------------- the list

/** The filter on screen, as a batch operation takes it (only what is set; its status may be empty). */
function batchFilter() {
  const filter = Object.fromEntries(FILTERS.filter(([key]) => view[key]).map(([key, name]) => [name, view[key]]));
  if (view.stuck) filter.stuck = true;
  return filter;
}

/** The same as `GET /orders` query parameters. */
function filterParams() {
  if (view.q && !ID_PREFIX.test(view.q)) throw new Error('an order id is hex digits and dashes');
  return new URLSearchParams(batchFilter());
}

/** The same in words. */
function describeFilter() {
  const parts = Object.entries(batchFilter()).map(([name, value]) => (value === true ? name : `${name} ${value}`));
  return parts.length ? parts.join(', ') : 'every saga';
}

/** The same as one string, to tell filters apart. */
function filterKey() {
  return JSON.stringify(batchFilter());
}

function renderCounts(answer, key) {
  lastCounts = { key, counts: answer.counts };
  const shown = (n) => (n > answer.cap ? `${answer.cap.toLocaleString()}+` : n.toLocaleString());
  const total = Object.values(answer.counts).reduce((sum, n) => sum + n, 0);
  const chips = Object.entries(answer.counts).map(([status, n]) => {
    const chip = el('button', null, `count${view.status === status ? ' selected' : ''}`);
    chip.type = 'button';
    Object.assign(chip.dataset, { status, count: n });
    chip.append(statusBadge(status), ' ', el('span', shown(n), 'num'));
    return chip;
  });
  const capped = Object.values(answer.counts).some((n) => n > answer.cap);
  const all = el('button', `any ${total.toLocaleString()}${capped ? '+' : ''}`, `count${view.status ? '' : ' selected'}`);
  all.type = 'button';
  Object.assign(all.dataset, { status: '', count: total });
  $('counts').dataset.total = String(total);
  $('counts').replaceChildren(all, ...chips);
  bulk.update();
}

async function loadList() {
  const mine = ++sequence.list;
  const key = filterKey();
  const filter = filterParams();
  const params = new URLSearchParams(filter);
  params.set('limit', String(PAGE_SIZE));
  if (page.before) params.set('before', page.before);
  const [orders, counts] = await Promise.all([request(`orders?${params}`), request(`console/counts?${filter}`)]);
  if (mine !== sequence.list) return; // a newer load (another filter) has answered or will
  reads.list = Date.now();
  shown.add('list');
  renderCounts(counts, key);
  page.lastIds = orders.map((o) => o.order_id);
  const rows = orders.map((o) => {
    const tr = el('tr', null, o.order_id === view.order ? 'selected' : '');
    tr.dataset.orderId = o.order_id;
    tr.dataset.status = o.status;
    tr.tabIndex = 0;
    const id = el('td', o.order_id, 'id');
    const status = el('td');
    status.append(statusBadge(o.status));
    const step = currentStep(o);
    if (step) status.append(' ', el('span', step, 'muted step'));
    const reason = clippedCell(o.failure_reason);
    reason.classList.add('wide');
    tr.append(id, status, el('td', utc(o.created_at), 'time wide'),
      el('td', ago(o.updated_at, clockOffsetMs), 'time'), reason);
    return tr;
  });
  $('saga-list').tBodies[0].replaceChildren(...rows);
  $('saga-list-empty').hidden = rows.length > 0;
  $('older').disabled = orders.length < PAGE_SIZE;
  $('newest').disabled = page.before === null;
  $('newer').disabled = page.before === null;
  const pageNumber = page.previous.length + 1;
  $('page-info').textContent = `page ${pageNumber} · ${orders.length} shown`;
}

function openFromRow(event) {
  const row = event.target.closest('tr[data-order-id]');
  if (!row) return;
  if (event.type === 'keydown' && event.key !== 'Enter') return;
  view.order = row.dataset.orderId;
  writeHash();
}

// ---------------------------------------------------------------- one saga

function renderSteps(order) {
  const rows = order.steps.flatMap((s) => {
    const tr = el('tr');
    Object.assign(tr.dataset, { step: s.name, status: s.status, attempts: s.attempts });
    const status = el('td');
    status.append(statusBadge(s.status));
    tr.append(el('td', s.name), status, el('td', s.attempts, 'num'), el('td', s.compensation_attempts, 'num'),
      timeCell(s.started_at), timeCell(s.finished_at));
    if (!s.last_error) return [tr];
    // The last error gets a row of its own under its step: errors are long, and a column of
    // their own would squeeze the rest.
    const error = el('tr', null, 'error-row');
    error.dataset.step = s.name;
    const cell = el('td', `last error: ${s.last_error}`, 'error');
    cell.colSpan = 6;
    error.append(cell);
    return [tr, error];
  });
  $('steps').tBodies[0].replaceChildren(...rows);
}

/** What the order was, what its steps produced, and who drives it until when. */
function renderOrderFacts(order) {
  $('detail-customer').textContent = order.customer_id;
  $('detail-items').textContent = order.items.map((i) => `${i.quantity} × ${i.sku}`).join(', ');
  $('detail-total').textContent = order.total_cents === null || order.total_cents === undefined
    ? 'not priced yet' : money(order.total_cents);
  $('detail-country').textContent = order.country;
  const shipment = order.steps.find((s) => s.output && s.output.tracking_number);
  $('detail-tracking').textContent = shipment ? shipment.output.tracking_number : '–';
  const when = (iso) => (iso ? `${utc(iso, true)} UTC` : '–');
  $('detail-next').textContent = when(order.next_attempt_at);
  $('detail-deadline').textContent = when(order.deadline_at);
  $('detail-owner').textContent = order.owner || (TERMINAL.has(order.status) ? '–' : 'nobody (waiting for a claim)');
  const trace = $('detail-trace');
  trace.replaceChildren();
  if (order.trace_id && settings.trace_ui_url && /^[0-9a-f]{32}$/.test(order.trace_id)) {
    const link = el('a', order.trace_id, 'id');
    link.id = 'trace-link';
    link.href = `${settings.trace_ui_url}/trace/${order.trace_id}`;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    trace.append(link);
  } else {
    trace.textContent = order.trace_id || 'not exported';
  }
}

function renderTimeline(events) {
  const rows = events.map((e) => {
    const tr = el('tr', null, `kind-${e.kind}`);
    Object.assign(tr.dataset, { eventId: e.id, kind: e.kind, step: e.step || '', outcome: e.outcome });
    const outcome = el('td');
    outcome.append(statusBadge(e.outcome));
    tr.append(timeCell(e.at), el('td', e.kind), el('td', e.step || ''), el('td', e.attempt ?? '', 'num'),
      outcome, el('td', e.detail || '', 'detail'), el('td', e.actor, 'actor'));
    return tr;
  });
  $('timeline').tBodies[0].replaceChildren(...rows);
}

function renderActions(status) {
  $('action-retry').disabled = status !== 'failed';
  $('action-cancel').disabled = !(status === 'pending' || status === 'running');
  $('action-hint').textContent = status === 'failed'
    ? 'Failed: compensation gave up. Fix the cause, then Retry resumes it with a new budget.'
    : status === 'pending' || status === 'running'
      ? 'Going forward. Cancel compensates it; the step in progress is undone too.'
      : status === 'compensating'
        ? 'Compensating: it finishes by itself once its participant answers.'
        : 'Finished: nothing to do.';
}

async function loadDetail(force, changed) {
  const section = $('order-detail');
  const id = view.order;
  document.querySelector('main').classList.toggle('with-detail', Boolean(id));
  if (!id) {
    section.hidden = true;
    section.dataset.orderId = '';
    shown.add('saga');
    return;
  }
  if (!UUID.test(id)) {
    section.hidden = true;
    throw new Error(`${id} is not an order id`);
  }
  // A saga in flight is re-read when the figures changed; a finished one changes only if an
  // operator acts: both at least every REFRESH_MAX_MS.
  const finished = section.dataset.orderId === id && TERMINAL.has(section.dataset.status);
  const since = Date.now() - reads.detail;
  const due = since >= REFRESH_MAX_MS || (changed && !finished && since >= REFRESH_MIN_MS);
  if (!force && !due) return;
  const mine = ++sequence.detail;
  reads.detail = Date.now();
  const [order, events] = await Promise.all([request(`orders/${id}`), request(`orders/${id}/events`)]);
  if (mine !== sequence.detail || view.order !== id) return;
  if (section.dataset.orderId !== id) $('action-result').textContent = '';
  section.hidden = false;
  section.dataset.orderId = id;
  section.dataset.status = order.status;
  $('detail-id').textContent = id;
  $('detail-status').replaceWith(Object.assign(statusBadge(order.status), { id: 'detail-status' }));
  $('detail-created').textContent = `${utc(order.created_at, true)} UTC`;
  $('detail-updated').textContent = `${utc(order.updated_at, true)} UTC (${ago(order.updated_at, clockOffsetMs)})`;
  $('detail-reason').textContent = order.failure_reason || '–';
  renderOrderFacts(order);
  renderSteps(order);
  renderTimeline(events);
  renderActions(order.status);
  shown.add('saga');
}

// ---------------------------------------------------------------- operator actions

function showTokenState() {
  const kept = Boolean(sessionStorage.getItem(TOKEN_KEY));
  const state = $('token-state');
  state.dataset.kept = String(kept);
  state.textContent = kept ? 'kept for this tab' : 'none';
}

async function act(event) {
  event.preventDefault();
  const action = event.submitter && event.submitter.value;
  const id = view.order;
  const result = $('action-result');
  if (!id || (action !== 'retry' && action !== 'cancel')) return;
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    result.dataset.status = 'error';
    result.textContent = 'Type the operator token above first.';
    return;
  }
  const operator = $('action-operator').value.trim();
  const reason = $('action-reason').value.trim();
  sessionStorage.setItem(OPERATOR_KEY, operator);
  result.dataset.status = 'busy';
  result.textContent = `${action}…`;
  try {
    const order = await request(`orders/${id}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ operator, reason }),
    });
    result.dataset.status = 'ok';
    result.textContent = `${action} accepted: the saga is ${order.status}.`;
    $('action-reason').value = '';
  } catch (err) {
    result.dataset.status = 'error';
    result.textContent = authMessage(action, err);
  }
  await guarded('saga', () => loadDetail(true));
}

// ---------------------------------------------------------------- navigation and the loop

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [key] of FILTERS) view[key] = (params.get(key) || '').trim();
  view.stuck = params.get('stuck') === '1';
  view.order = params.get('order') || null;
  const windowS = Number.parseInt(params.get('window') || '10', 10);
  view.window = windowS >= 1 && windowS <= 300 ? windowS : 10;
  $('status-filter').value = view.status;
  $('step-filter').value = view.step;
  $('stuck-filter').checked = view.stuck;
  for (const [key, id] of [['q', 'search'], ['customer', 'customer-filter'], ['reason', 'reason-filter']]) {
    if (document.activeElement !== $(id)) $(id).value = view[key];
  }
  $('from-filter').value = localInput(view.from);
  $('to-filter').value = localInput(view.to);
}

/** A filter that changed starts from the first page, and its counts are not known yet. */
function filterChanged() {
  const key = filterKey();
  if (key === pagedFor) return;
  pagedFor = key;
  firstPage();
  bulk.update();
}

function writeHash() {
  const params = new URLSearchParams();
  for (const [key] of FILTERS) if (view[key]) params.set(key, view[key]);
  if (view.stuck) params.set('stuck', '1');
  if (view.order) params.set('order', view.order);
  if (view.window !== 10) params.set('window', String(view.window));
  const hash = params.toString();
  if (location.hash.slice(1) !== hash) location.hash = hash;
  else {
    filterChanged();
    refresh();
  }
}

function firstPage() {
  page.before = null;
  page.previous = [];
}

async function refresh() {
  await Promise.all([guarded('sagas', loadList), guarded('saga', () => loadDetail(true))]);
  showReady();
}

function markStale() {
  // Figures the last round could not refresh stay on screen, dimmed, under the banner's reason.
  $('overview').classList.toggle('stale', problems.has('overview') || problems.has('live'));
  $('chart').classList.toggle('stale', problems.has('history') || problems.has('live'));
  $('sagas').classList.toggle('stale', problems.has('sagas'));
  $('order-detail').classList.toggle('stale', problems.has('saga'));
}

/** After each push of the figures: re-read the list and the open saga if they may have changed. */
async function afterFigures(o) {
  const figures = JSON.stringify([o.rates, o.in_flight, o.requires_intervention]);
  const changed = figures !== reads.figures;
  reads.figures = figures;
  const since = Date.now() - reads.list;
  const loads = [guarded('saga', () => loadDetail(false, changed))];
  if (since >= REFRESH_MAX_MS || (changed && since >= REFRESH_MIN_MS)) loads.push(guarded('sagas', loadList));
  await Promise.all(loads);
  markStale();
  showReady();
}

/** Marks the page `ready` (what tests and screenshots wait for) once everything has been shown. */
function showReady() {
  if (['overview', 'history', 'list', 'saga'].every((part) => shown.has(part))) document.body.dataset.state = 'ready';
}

function setLive(state, text) {
  $('live').dataset.live = state;
  $('live').textContent = text;
}

function applySettings(s) {
  settings = s;
  $('served-by').textContent = `served by ${s.instance}`;
  $('stuck-after').textContent = `> ${age(s.stuck_after_ms / 1000)}`;
  const grafana = $('grafana-link');
  grafana.hidden = !s.grafana_url;
  if (s.grafana_url) grafana.href = `${s.grafana_url}/d/saga-suite`;
  const steps = $('step-filter');
  if (steps.options.length !== s.steps.length + 1) {
    steps.replaceChildren(el('option', 'any'), ...s.steps.map((name) => el('option', name)));
    steps.options[0].value = '';
    steps.value = view.step;
  }
}

/** Opens the event stream (again, when the rate window changes). */
function connect() {
  if (stream) stream.close();
  setLive('connecting', 'connecting…');
  stream = new EventSource(`console/stream?window_s=${view.window}`);
  const on = (name, handle) => stream.addEventListener(name, (event) => {
    try {
      handle(JSON.parse(event.data));
    } catch (err) {
      report(name, err);
    }
  });
  on('settings', applySettings);
  on('overview', (live) => {
    renderOverview(live.overview);
    renderServices(live.services);
    shown.add('overview');
    report('overview', null);
    const updated = $('updated');
    updated.dataset.at = new Date().toISOString();
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    afterFigures(live.overview);
  });
  on('history', (history) => {
    drawChart($('chart'), $('chart-svg'), $('chart-peak'), history);
    shown.add('history');
    report('history', null);
    markStale();
    showReady();
  });
  on('problem', (problem) => {
    report(problem.area, new Error(problem.detail));
    markStale();
  });
  stream.onopen = () => {
    setLive('live', 'live');
    report('live', null);
    markStale();
  };
  stream.onerror = () => {
    // EventSource reconnects by itself (after the delay the stream asked for) when the
    // connection broke, but gives up on an HTTP error (a proxy's 502, a fault): then we do.
    if (stream.readyState === EventSource.CLOSED) setTimeout(connect, RECONNECT_MS);
    setLive('reconnecting', 'reconnecting…');
    report('live', new Error('the event stream from the orchestrator broke; reconnecting'));
    markStale();
  };
}

/** Sets filter `key` from an input, and shows the first page of what it selects. */
function filterFrom(id, key, read, delay) {
  let typing;
  const apply = (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      view[key] = read(e.target);
      writeHash();
    }, delay);
  };
  $(id).addEventListener(delay ? 'input' : 'change', apply);
}

function fromLocalInput(input) {
  // A datetime-local value is this browser's local time; the hash and the API keep UTC.
  if (!input.value) return '';
  const at = new Date(input.value);
  return Number.isNaN(at.getTime()) ? '' : at.toISOString();
}

function listFromGroup(event) {
  const row = event.target.closest('tr[data-status]');
  if (!row || (event.type === 'keydown' && event.key !== 'Enter')) return;
  const stuckCell = event.target.closest('td.stuck');
  // Exactly the sagas the row counts: no other filter.
  for (const [key] of FILTERS) view[key] = '';
  view.status = row.dataset.status;
  // A step the filter cannot name (a saga past its last step) lists the whole status.
  view.step = settings.steps.includes(row.dataset.step) ? row.dataset.step : '';
  view.stuck = Boolean(stuckCell) && Number(row.dataset.stuck) > 0;
  view.order = null;
  writeHash();
}

function start() {
  readHash();
  showTokenState();
  $('action-operator').value = sessionStorage.getItem(OPERATOR_KEY) || '';
  bulk = setupBulk({
    filter: batchFilter,
    describe: describeFilter,
    // Counts of another filter (the new one's are still being read) count nothing.
    counts: () => (lastCounts.key === filterKey() ? lastCounts.counts : null),
    token: () => sessionStorage.getItem(TOKEN_KEY),
    done: refresh,
  });
  pagedFor = filterKey();
  window.addEventListener('hashchange', () => {
    const windowBefore = view.window;
    readHash();
    filterChanged();
    if (windowBefore !== view.window) connect();
    refresh();
  });
  filterFrom('status-filter', 'status', (t) => t.value, 0);
  filterFrom('step-filter', 'step', (t) => t.value, 0);
  filterFrom('stuck-filter', 'stuck', (t) => t.checked, 0);
  filterFrom('from-filter', 'from', fromLocalInput, 0);
  filterFrom('to-filter', 'to', fromLocalInput, 0);
  filterFrom('search', 'q', (t) => t.value.trim(), 300);
  filterFrom('customer-filter', 'customer', (t) => t.value.trim(), 300);
  filterFrom('reason-filter', 'reason', (t) => t.value.trim(), 300);
  $('clear-filters').addEventListener('click', () => {
    for (const [key] of FILTERS) view[key] = '';
    view.stuck = false;
    writeHash();
  });
  $('counts').addEventListener('click', (e) => {
    const chip = e.target.closest('button[data-status]');
    if (!chip) return;
    view.status = chip.dataset.status;
    writeHash();
  });
  $('filters').addEventListener('submit', (e) => e.preventDefault());
  $('in-flight').addEventListener('click', listFromGroup);
  $('in-flight').addEventListener('keydown', listFromGroup);
  $('saga-list').addEventListener('click', openFromRow);
  $('saga-list').addEventListener('keydown', openFromRow);
  $('older').addEventListener('click', () => {
    if (page.lastIds.length === 0) return;
    page.previous.push(page.before);
    page.before = page.lastIds[page.lastIds.length - 1];
    guarded('sagas', loadList);
  });
  $('newer').addEventListener('click', () => {
    page.before = page.previous.length ? page.previous.pop() : null;
    guarded('sagas', loadList);
  });
  $('newest').addEventListener('click', () => {
    firstPage();
    guarded('sagas', loadList);
  });
  $('detail-close').addEventListener('click', (e) => {
    e.preventDefault();
    view.order = null;
    writeHash();
  });
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    showTokenState();
  });
  $('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });
  $('action-form').addEventListener('submit', act);
  connect();
  refresh();
}

start();
