// The saga console's behaviour: polls the orchestrator every second (overview, services, the
// list page on screen, the open saga) and renders into the page with textContent only, so no
// order id, error or operator reason can ever become markup. What is on screen (status filter,
// search, open saga, rate window) lives in the URL's hash, so a view can be shared as a link.
// The operator token is typed by the user and kept in sessionStorage: this tab only, gone when
// it closes, never in the URL.
import { request } from './api.js';
import { ago, age, clippedCell, currentStep, el, rate, statusBadge, timeCell, utc } from './format.js';

const POLL_MS = 1000;
// A terminal saga changes only if an operator acts: re-read it every few ticks, not every one.
const TERMINAL_EVERY_TICKS = 5;
const PAGE_SIZE = 50;
const TOKEN_KEY = 'saga-console.operator-token';
const OPERATOR_KEY = 'saga-console.operator';
const TERMINAL = new Set(['completed', 'compensated', 'failed']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// What GET /orders accepts as order_id_prefix (checked here to explain it before asking).
const ID_PREFIX = /^[0-9a-fA-F][0-9a-fA-F-]{0,35}$/;

const $ = (id) => document.getElementById(id);

/** What is on screen; the hash holds all of it but the page position. */
const view = { status: '', q: '', order: null, window: 10 };
/** Keyset paging: the cursor of the page on screen and those of the pages before it. */
const page = { before: null, previous: [], lastIds: [] };
/** Server time minus local time, from the last overview: ages are measured on the database's clock. */
let clockOffsetMs = 0;
let tickCount = 0;
let detailReadAt = -Infinity;
const sequence = { list: 0, detail: 0 };
const problems = new Map();

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

async function loadOverview() {
  const o = await request(`console/overview?window_s=${view.window}`);
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
    const status = el('td');
    status.append(statusBadge(g.status));
    tr.append(status, el('td', g.step), el('td', g.count, 'num count'), el('td', g.stuck, 'num stuck'),
      el('td', age(g.oldest_age_seconds), 'num'));
    return tr;
  });
  $('in-flight').tBodies[0].replaceChildren(...rows);
  $('in-flight-empty').hidden = rows.length > 0;
}

async function loadServices() {
  const answer = await request('console/services');
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

async function loadList() {
  const mine = ++sequence.list;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (view.status) params.set('status', view.status);
  if (view.q) {
    if (!ID_PREFIX.test(view.q)) throw new Error('an order id is hex digits and dashes');
    params.set('order_id_prefix', view.q);
  }
  if (page.before) params.set('before', page.before);
  const orders = await request(`orders?${params}`);
  if (mine !== sequence.list) return; // a newer load (another filter) has answered or will
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

async function loadDetail(force) {
  const section = $('order-detail');
  const id = view.order;
  document.querySelector('main').classList.toggle('with-detail', Boolean(id));
  if (!id) {
    section.hidden = true;
    section.dataset.orderId = '';
    return;
  }
  if (!UUID.test(id)) {
    section.hidden = true;
    throw new Error(`${id} is not an order id`);
  }
  const known = section.dataset.orderId === id && TERMINAL.has(section.dataset.status);
  if (!force && known && tickCount - detailReadAt < TERMINAL_EVERY_TICKS) return;
  const mine = ++sequence.detail;
  const [order, events] = await Promise.all([request(`orders/${id}`), request(`orders/${id}/events`)]);
  if (mine !== sequence.detail || view.order !== id) return;
  detailReadAt = tickCount;
  if (section.dataset.orderId !== id) $('action-result').textContent = '';
  section.hidden = false;
  section.dataset.orderId = id;
  section.dataset.status = order.status;
  $('detail-id').textContent = id;
  $('detail-status').replaceWith(Object.assign(statusBadge(order.status), { id: 'detail-status' }));
  $('detail-created').textContent = `${utc(order.created_at, true)} UTC`;
  $('detail-updated').textContent = `${utc(order.updated_at, true)} UTC (${ago(order.updated_at, clockOffsetMs)})`;
  $('detail-reason').textContent = order.failure_reason || '–';
  renderSteps(order);
  renderTimeline(events);
  renderActions(order.status);
}

// ---------------------------------------------------------------- operator actions

function showTokenState() {
  const kept = Boolean(sessionStorage.getItem(TOKEN_KEY));
  const state = $('token-state');
  state.dataset.kept = String(kept);
  state.textContent = kept ? 'kept for this tab' : 'none';
}

function actionMessage(action, err) {
  if (err.status === 401) return 'The orchestrator wants the operator token: type it above (401).';
  if (err.status === 403) return 'The orchestrator refused the operator token: check it (403).';
  return `${action} refused: ${err.message}`;
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
    result.textContent = actionMessage(action, err);
  }
  await guarded('saga', () => loadDetail(true));
}

// ---------------------------------------------------------------- navigation and the loop

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  view.status = params.get('status') || '';
  view.q = (params.get('q') || '').trim();
  view.order = params.get('order') || null;
  const windowS = Number.parseInt(params.get('window') || '10', 10);
  view.window = windowS >= 1 && windowS <= 300 ? windowS : 10;
  $('status-filter').value = view.status;
  if (document.activeElement !== $('search')) $('search').value = view.q;
}

function writeHash() {
  const params = new URLSearchParams();
  if (view.status) params.set('status', view.status);
  if (view.q) params.set('q', view.q);
  if (view.order) params.set('order', view.order);
  if (view.window !== 10) params.set('window', String(view.window));
  const hash = params.toString();
  if (location.hash.slice(1) !== hash) location.hash = hash;
  else refresh();
}

function firstPage() {
  page.before = null;
  page.previous = [];
}

function refresh() {
  guarded('sagas', loadList);
  guarded('saga', () => loadDetail(true));
}

async function tick() {
  tickCount += 1;
  await Promise.all([
    guarded('overview', loadOverview),
    guarded('services', loadServices),
    guarded('sagas', loadList),
    guarded('saga', () => loadDetail(false)),
  ]);
  // Figures the last round could not refresh stay on screen, dimmed, under the banner's reason.
  $('overview').classList.toggle('stale', problems.has('overview'));
  $('sagas').classList.toggle('stale', problems.has('sagas'));
  $('order-detail').classList.toggle('stale', problems.has('saga'));
  const updated = $('updated');
  updated.dataset.at = new Date().toISOString();
  updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.state = 'ready';
  setTimeout(tick, POLL_MS);
}

function start() {
  readHash();
  showTokenState();
  $('action-operator').value = sessionStorage.getItem(OPERATOR_KEY) || '';
  window.addEventListener('hashchange', () => {
    const before = { status: view.status, q: view.q };
    readHash();
    if (before.status !== view.status || before.q !== view.q) firstPage();
    refresh();
  });
  $('status-filter').addEventListener('change', (e) => {
    view.status = e.target.value;
    writeHash();
  });
  let typing;
  $('search').addEventListener('input', (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      view.q = e.target.value.trim();
      writeHash();
    }, 300);
  });
  $('filters').addEventListener('submit', (e) => e.preventDefault());
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
  tick();
}

start();
