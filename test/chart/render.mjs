// Renders charts/sockmesh with the pinned Helm (build/tools, scripts/install-chart-tools.sh) and
// type-checks every object offline with kubernetes-models. Shared by the chart's tests.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, rmSync, cpSync, copyFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const chartDir = join(repo, 'charts/sockmesh');
const tools = process.env.SOCKMESH_TOOLS || join(repo, 'build/tools');
export const helm = join(tools, 'helm/helm');
const modules = join(tools, 'chart/package.json');
for (const path of [helm, modules])
  if (!existsSync(path))
    throw new Error(`${path} is missing: run scripts/install-chart-tools.sh (scripts/test.sh does)`);

const require = createRequire(modules);
export const YAML = require('yaml');

// Runs `helm template` with `values` (an object, written as a values file) and `args`.
// Returns { ok, objects, stdout, stderr }; objects are parsed documents without nulls.
export function template(values = {}, args = []) {
  const dir = mkdtempSync(join(tmpdir(), 'sockmesh-chart-'));
  try {
    const file = join(dir, 'values.yaml');
    writeFileSync(file, JSON.stringify(values));  // JSON: YAML 1.1's on/off can't creep in
    const run = spawnSync(helm, ['template', 'mesh', chartDir, '--namespace', 'sockmesh-system',
                                 '--values', file, ...args], { encoding: 'utf8' });
    if (run.status !== 0) return { ok: false, objects: [], stdout: run.stdout, stderr: run.stderr };
    const objects = YAML.parseAllDocuments(run.stdout).map((d) => d.toJS()).filter((o) => o);
    return { ok: true, objects, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function lint(args = []) {
  return spawnSync(helm, ['lint', '--strict', chartDir, ...args], { encoding: 'utf8' });
}

// The kubernetes-models class for an object's apiVersion and kind, or undefined.
function modelFor(object) {
  const [group, version] = object.apiVersion.includes('/')
    ? object.apiVersion.split('/') : ['', object.apiVersion];
  const path = group === 'monitoring.coreos.com'
    ? `@kubernetes-models/prometheus-operator/${group}/${version}`
    : group === '' ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  return require(path)[object.kind];
}

// Validates one object against the Kubernetes (or Prometheus Operator) OpenAPI schema; throws
// with the kind, name and the schema's complaint.
export function typeCheck(object) {
  const Model = modelFor(object);
  if (!Model) throw new Error(`no schema for ${object.apiVersion} ${object.kind}`);
  try {
    new Model(object).validate();
  } catch (e) {
    throw new Error(`${object.kind}/${object.metadata?.name}: ${e.message}`);
  }
}

export function find(objects, kind, nameSuffix = '') {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));
  if (found.length !== 1)
    throw new Error(`expected one ${kind} *${nameSuffix}, found ${found.length}`);
  return found[0];
}

export function helpOf(binary) {
  return execFileSync(binary, ['--help'], { encoding: 'utf8' });
}

// NOTES.txt as `helm install` would print it. `helm template` skips NOTES and `helm install
// --dry-run` needs a cluster, so a copy of the chart renders it through tpl in a ConfigMap.
export function renderNotes(values = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sockmesh-notes-'));
  try {
    cpSync(chartDir, join(dir, 'chart'), { recursive: true });
    copyFileSync(join(chartDir, 'templates/NOTES.txt'), join(dir, 'chart/notes.txt'));
    writeFileSync(join(dir, 'chart/templates/notes-check.yaml'),
                  'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n' +
                  'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n');
    const file = join(dir, 'values.yaml');
    writeFileSync(file, JSON.stringify(values));  // JSON: YAML 1.1's on/off can't creep in
    const run = spawnSync(helm, ['template', 'mesh', join(dir, 'chart'), '--namespace', 'sockmesh-system',
                                 '--values', file, '--show-only', 'templates/notes-check.yaml'],
                          { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`rendering NOTES.txt: ${run.stderr}`);
    return YAML.parse(run.stdout).data.notes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The capability table of docs/install.md: [{ name, when }] between its markers.
export function documentedCapabilities() {
  const doc = readFileSync(join(repo, 'docs/install.md'), 'utf8');
  const begin = doc.indexOf('<!-- capabilities:begin -->');
  const end = doc.indexOf('<!-- capabilities:end -->');
  if (begin < 0 || end < begin) throw new Error('docs/install.md lacks the capabilities table markers');
  return doc.slice(begin, end).split('\n')
    .map((line) => line.match(/^\|\s*`CAP_([A-Z_]+)`\s*\|\s*([^|]+?)\s*\|/))
    .filter((m) => m)
    .map((m) => ({ name: m[1], when: m[2] }));
}

