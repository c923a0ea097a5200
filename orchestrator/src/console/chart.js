// The console's chart: sagas started, completed and compensated per second over the last 15
// minutes, drawn as SVG lines by the page itself (no charting library), from the buckets the
// orchestrator pushes in its `history` event.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 900;
const HEIGHT = 140;
// Room above the highest point, so a line at the peak is not drawn on the frame.
const HEADROOM = 1.1;
export const SERIES = ['started', 'completed', 'compensated'];

function node(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

/**
 * Draws `history` ({bucket_seconds, at, buckets: [{start, started, completed, compensated}]})
 * into `svg`. The last bucket has only run from its start to `at`: its rate is over that time.
 */
export function drawChart(figure, svg, peakLabel, history) {
  const buckets = history.buckets;
  const last = buckets.length - 1;
  const ranFor = (i) => {
    if (i !== last) return history.bucket_seconds;
    const elapsed = (Date.parse(history.at) - Date.parse(buckets[i].start)) / 1000;
    return Math.min(history.bucket_seconds, Math.max(1, elapsed));
  };
  const rateOf = (b, i, series) => b[series] / ranFor(i);
  const peak = Math.max(0, ...buckets.flatMap((b, i) => SERIES.map((s) => rateOf(b, i, s))));
  const top = Math.max(peak, 1) * HEADROOM;
  const step = WIDTH / Math.max(buckets.length, 1);
  const x = (i) => (i + 0.5) * step;
  const y = (rate) => HEIGHT - (rate / top) * HEIGHT;
  const children = [
    node('line', { x1: 0, y1: y(peak), x2: WIDTH, y2: y(peak), class: 'peak' }),
    node('line', { x1: 0, y1: HEIGHT - 0.5, x2: WIDTH, y2: HEIGHT - 0.5, class: 'axis' }),
  ];
  for (const series of SERIES) {
    const points = buckets.map((b, i) => `${x(i).toFixed(1)},${y(rateOf(b, i, series)).toFixed(1)}`).join(' ');
    const line = node('polyline', { points, class: `series ${series}`, 'data-series': series });
    line.dataset.total = String(buckets.reduce((sum, b) => sum + b[series], 0));
    children.push(line);
  }
  svg.replaceChildren(...children);
  figure.dataset.buckets = String(buckets.length);
  figure.dataset.peak = String(peak);
  peakLabel.textContent = `peak ${peak >= 10 ? peak.toFixed(0) : peak.toFixed(1)}/s`;
}
