// The saga console's formatting: elements built with textContent only (so no data can become
// markup), times in UTC, ages, rates, and the step a listed saga is on.

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function statusBadge(status) {
  return el('span', status, `status status-${status}`);
}

export function utc(iso, withMillis) {
  if (!iso) return '–';
  const text = new Date(iso).toISOString().replace('T', ' ');
  return withMillis ? text.slice(0, 23) : text.slice(0, 19);
}

/** A cell with the time of day (UTC, to the millisecond); the whole timestamp on hover. */
export function timeCell(iso) {
  const td = el('td', iso ? utc(iso, true).slice(11) : '–', 'time');
  if (iso) td.title = `${utc(iso, true)} UTC`;
  return td;
}

/** A cell that keeps to one line, cut with an ellipsis; the whole text on hover. */
export function clippedCell(text) {
  const td = el('td', text || '', 'clip');
  if (text) td.title = text;
  return td;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  const [big, bigUnit, small, smallUnit] = seconds < 3600
    ? [Math.floor(seconds / 60), 'min', Math.floor(seconds % 60), 's']
    : [Math.floor(seconds / 3600), 'h', Math.floor((seconds % 3600) / 60), 'min'];
  return small ? `${big} ${bigUnit} ${small} ${smallUnit}` : `${big} ${bigUnit}`;
}

/** How long ago `iso` was, by a clock `offsetMs` ahead of this one (the database's). */
export function ago(iso, offsetMs) {
  const seconds = Math.max(0, (Date.now() + offsetMs - Date.parse(iso)) / 1000);
  return `${age(seconds)} ago`;
}

/** An amount in cents, as money (the suite's prices carry no currency). */
export function money(cents) {
  return (cents / 100).toFixed(2);
}

/** An ISO time as a datetime-local input's value (this browser's local time, to the second). */
export function localInput(iso) {
  if (!iso) return '';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  const local = new Date(at.getTime() - at.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 19);
}

export function rate(perSecond) {
  if (perSecond === 0) return '0';
  if (perSecond >= 10) return perSecond.toFixed(0);
  return perSecond >= 1 ? perSecond.toFixed(1) : perSecond.toFixed(2);
}

/** The step a saga is on, from its steps (the list's orders do not carry the index). */
export function currentStep(order) {
  const steps = order.steps || [];
  if (order.status === 'compensating') {
    const undoing = steps.filter((s) => ['compensating', 'succeeded', 'unknown'].includes(s.status));
    return undoing.length ? undoing[undoing.length - 1].name : '';
  }
  if (order.status === 'pending' || order.status === 'running') {
    const next = steps.find((s) => s.status !== 'succeeded');
    return next ? next.name : '';
  }
  return '';
}
