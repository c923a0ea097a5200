// Bulk retry and cancel of the sagas the console's filter matches: the operator sees the count
// and confirms in a dialog, then the orchestrator runs a batch operation (it goes on if this
// page closes) whose progress is shown until it is done.
import { request } from './api.js';

// The most sagas one batch acts on (the orchestrator's limit).
const MAX_BATCH = 10000;
const PROGRESS_EVERY_MS = 1000;
const OPERATOR_KEY = 'saga-console.operator';
/** Which statuses each action applies to (what the single endpoints accept). */
const ACTION_STATUSES = { retry: ['failed'], cancel: ['pending', 'running'] };

const $ = (id) => document.getElementById(id);

export function authMessage(what, err) {
  if (err.status === 401) return 'The orchestrator wants the operator token: type it above (401).';
  if (err.status === 403) return 'The orchestrator refused the operator token: check it (403).';
  return `${what} refused: ${err.message}`;
}

/**
 * Wires the bulk buttons and dialog. `filter()` is the batch filter of what is on screen (its
 * status may be empty), `describe()` says it in words, `counts()` the last counts per status,
 * `token()` the operator token kept in this tab, `done()` is called when a batch finishes.
 */
export function setupBulk({ filter, describe, counts, token, done }) {
  let pending = null; // { action, filter, count } while the dialog is open

  function matched(action) {
    const f = filter();
    if (!ACTION_STATUSES[action].includes(f.status)) return 0;
    return (counts() || {})[f.status] || 0;
  }

  function update() {
    const status = filter().status;
    $('bulk-retry').disabled = matched('retry') === 0;
    $('bulk-cancel').disabled = matched('cancel') === 0;
    $('bulk-hint').textContent = ACTION_STATUSES.retry.includes(status) || ACTION_STATUSES.cancel.includes(status)
      ? ''
      : 'Filter by status failed to retry, or pending/running to cancel, every saga shown.';
  }

  function open(action) {
    const count = matched(action);
    if (count === 0) return;
    const f = filter();
    const acted = Math.min(count, MAX_BATCH);
    pending = { action, filter: f, count: acted };
    const verb = action === 'retry' ? 'Retry' : 'Cancel';
    $('bulk-title').textContent = `${verb} ${acted} ${f.status} saga${acted === 1 ? '' : 's'}?`;
    $('bulk-what').textContent = (action === 'retry'
      ? 'Each resumes compensation with a new budget, as its own Retry button would.'
      : 'Each is compensated, as its own Cancel button would.')
      + (count > MAX_BATCH ? ` Only the oldest ${MAX_BATCH} of more than ${MAX_BATCH}.` : '')
      + ' The orchestrator acts on them one at a time, and goes on if this page closes.';
    $('bulk-filter').textContent = `Matching: ${describe()}`;
    $('bulk-confirm').textContent = `${verb} ${acted} saga${acted === 1 ? '' : 's'}`;
    $('bulk-operator').value = sessionStorage.getItem(OPERATOR_KEY) || '';
    $('bulk-error').hidden = true;
    $('bulk-dialog').dataset.action = action;
    $('bulk-dialog').dataset.count = String(acted);
    $('bulk-dialog').showModal();
  }

  async function follow(batch) {
    const progress = $('bulk-progress');
    for (;;) {
      const acted = batch.done + batch.refused + batch.failed;
      progress.dataset.status = batch.status === 'done' ? 'done' : 'running';
      progress.dataset.batchId = batch.id;
      progress.textContent = `batch ${batch.id.slice(0, 8)} (${batch.action}): ${acted} of ${batch.matched} acted on`
        + ` · ${batch.done} done, ${batch.refused} refused, ${batch.failed} failed`
        + (batch.status === 'done' ? ' · finished' : '…');
      if (batch.status === 'done') break;
      await new Promise((resolve) => { setTimeout(resolve, PROGRESS_EVERY_MS); });
      try {
        batch = await request(`batch-operations/${batch.id}`);
      } catch (err) {
        progress.textContent = `batch ${batch.id.slice(0, 8)}: cannot read its progress (${err.message}); it goes on`;
        await new Promise((resolve) => { setTimeout(resolve, PROGRESS_EVERY_MS); });
      }
    }
    done();
  }

  async function confirm(event) {
    event.preventDefault();
    if (!pending) return;
    const error = $('bulk-error');
    const bearer = token();
    if (!bearer) {
      error.hidden = false;
      error.textContent = 'Type the operator token above first.';
      return;
    }
    const operator = $('bulk-operator').value.trim();
    const reason = $('bulk-reason').value.trim();
    if (!operator || !reason) {
      error.hidden = false;
      error.textContent = 'Say who you are and why: both go in each saga\'s timeline.';
      return;
    }
    sessionStorage.setItem(OPERATOR_KEY, operator);
    const { action, count } = pending;
    $('bulk-confirm').disabled = true;
    try {
      const batch = await request('batch-operations', {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
        body: JSON.stringify({ action, filter: pending.filter, max: count, operator, reason }),
      });
      pending = null;
      $('bulk-reason').value = '';
      $('bulk-dialog').close();
      await follow(batch);
    } catch (err) {
      error.hidden = false;
      error.textContent = authMessage(`${action} of ${count}`, err);
    } finally {
      $('bulk-confirm').disabled = false;
    }
  }

  $('bulk-retry').addEventListener('click', () => open('retry'));
  $('bulk-cancel').addEventListener('click', () => open('cancel'));
  $('bulk-back').addEventListener('click', () => {
    pending = null;
    $('bulk-dialog').close();
  });
  $('bulk-form').addEventListener('submit', confirm);
  return { update };
}
