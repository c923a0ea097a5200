// Types every dashboard of ../grafana/dashboards against @grafana/schema: writes
// build/<name>.ts (`const dashboard: StrictDashboard = <the JSON>;`, see dashboard-types.ts) and
// compiles it with `tsc --noEmit --strict`. tsc's positions are translated back to the JSON file.
// Needs `npm ci` first; runs offline.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const dashboards = join(repo, 'grafana', 'dashboards');
const build = join(here, 'build');

const HEADER = [
  "import type { Dashboard } from '@grafana/schema';",
  "import type { Json, StrictDashboard } from '../dashboard-types';",
  '',
  'export const dashboard: StrictDashboard = ',
];
// The JSON starts on the last header line, so its line n is line n + OFFSET of the .ts file.
const OFFSET = HEADER.length - 1;

rmSync(build, { recursive: true, force: true });
mkdirSync(build);
const files = readdirSync(dashboards).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no dashboard in ${relative(repo, dashboards)}`);
  process.exit(1);
}
const origin = new Map();
for (const file of files) {
  const path = join(dashboards, file);
  const text = readFileSync(path, 'utf8');
  try {
    JSON.parse(text);
  } catch (err) {
    console.error(`${relative(repo, path)}: not valid JSON: ${err.message}`);
    process.exit(1);
  }
  const ts = `dashboard-${file.replace(/\.json$/, '').replace(/[^A-Za-z0-9_-]/g, '_')}.ts`;
  const body = text.trimEnd();
  writeFileSync(
    join(build, ts),
    `${HEADER.join('\n')}${body};\n\n// Also a plain schema Dashboard (string enums spelled as JSON spells them).\nexport const asSchema: Json<Dashboard> = dashboard;\n`,
  );
  origin.set(`build/${ts}`, relative(repo, path));
}

const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
try {
  execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '-p', join(here, 'tsconfig.json'), '--pretty', 'false'], {
    cwd: here,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
} catch (err) {
  const out = `${err.stdout ?? ''}${err.stderr ?? ''}`;
  // build/dashboard-x.ts(L,C): error … → grafana/dashboards/x.json:L-OFFSET:C: error …
  const mapped = out.replace(/(build\/[^(]+\.ts)\((\d+),(\d+)\)/g, (all, f, line, col) =>
    origin.has(f) ? `${origin.get(f)}:${Number(line) - OFFSET}:${col}` : all,
  );
  console.error(mapped.trim() || err.message);
  console.error(`dashboard typing failed (${files.join(', ')} against @grafana/schema)`);
  process.exit(1);
}
console.log(`typed against @grafana/schema: ${files.map((f) => `grafana/dashboards/${f}`).join(', ')}`);
