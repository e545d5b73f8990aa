// The chart against the binaries it runs: every flag it passes exists, the probes' paths are the
// agent's, and meshcp starts with the CA and bootstrap token the chart makes. MESHD, MESHCP and
// MESHCTL name the built binaries (CMake passes them).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate, createHash } from 'node:crypto';
import { template, find, helpOf } from './render.mjs';

const bin = Object.fromEntries(['MESHD', 'MESHCP', 'MESHCTL'].map((name) => {
  const path = process.env[name];
  if (!path || !existsSync(path)) throw new Error(`${name} must name the built binary (got "${path}")`);
  return [name, path];
}));

const everything = template({
  metrics: { serviceMonitor: { enabled: true } }, dashboards: { enabled: true },
  controlplane: { meshResources: { 'a.yaml': 'x' } },
  agent: { accessLog: { mode: 'sampled' }, fastPathAgentHops: true },
});
assert.ok(everything.ok, everything.stderr);
const container = (kind, suffix, name) =>
  find(everything.objects, kind, suffix).spec.template.spec.containers.find((c) => c.name === name);

// The long options a --help text lists.
const optionsOf = (help) => new Set([...help.matchAll(/(?:^|[\s,])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]));

test('every meshd flag the DaemonSet passes is one meshd has', () => {
  const options = optionsOf(helpOf(bin.MESHD));
  const meshd = container('DaemonSet', '-agent', 'meshd');
  assert.equal(meshd.command[0], '/usr/bin/meshd');
  for (const a of meshd.args) assert.ok(options.has(a.split('=')[0]), `meshd has no ${a.split('=')[0]}`);
});

test('every meshcp flag the Deployment passes is one meshcp has', () => {
  const options = optionsOf(helpOf(bin.MESHCP));
  const meshcp = container('Deployment', '-controlplane', 'meshcp');
  assert.equal(meshcp.command[0], '/usr/bin/meshcp');
  for (const a of meshcp.args) assert.ok(options.has(a.split('=')[0]), `meshcp has no ${a.split('=')[0]}`);
});

test('the probe paths are the ones meshd serves', () => {
  const help = helpOf(bin.MESHD);
  const meshd = container('DaemonSet', '-agent', 'meshd');
  for (const probe of [meshd.livenessProbe, meshd.readinessProbe])
    assert.ok(help.includes(probe.httpGet.path), `meshd --help does not document ${probe.httpGet.path}`);
});

const dir = mkdtempSync(join(tmpdir(), 'sockmesh-chart-cp-'));
let meshcp;
after(() => {
  if (meshcp && meshcp.exitCode === null) meshcp.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('meshcp runs on the chart\'s CA and bootstrap token; NOTES\' apply command works', async () => {
  const defaults = template({});
  const ca = find(defaults.objects, 'Secret', '-ca').data;
  const token = find(defaults.objects, 'Secret', '-bootstrap').data.token;
  const file = (name, b64) => { writeFileSync(join(dir, name), Buffer.from(b64, 'base64')); return join(dir, name); };
  const crt = file('tls.crt', ca['tls.crt']);
  const key = file('tls.key', ca['tls.key']);
  const tok = file('token', token);
  const api = join(dir, 'api.sock');
  meshcp = spawn(bin.MESHCP, ['--state-dir', join(dir, 'state'), '--listen', `unix:${join(dir, 'xds.sock')}`,
                              '--api-socket', api, '--ca-cert', crt, '--ca-key', key,
                              '--bootstrap-token-file', tok, '--metrics-address', 'off'],
                 { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  meshcp.stdout.on('data', (d) => { log += d; });
  meshcp.stderr.on('data', (d) => { log += d; });
  for (let i = 0; i < 100 && !existsSync(api); i++) {
    assert.equal(meshcp.exitCode, null, `meshcp exited: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(existsSync(api), `meshcp did not open its API socket: ${log}`);

  const meshctl = (args, input) => spawnSync(bin.MESHCTL, ['--controlplane', api, ...args], { encoding: 'utf8', input });
  const added = meshctl(['node', 'add', 'n1', '-o', 'json']);
  assert.equal(added.status, 0, added.stderr);
  const fingerprint = createHash('sha256').update(new X509Certificate(Buffer.from(ca['tls.crt'], 'base64')).raw).digest('hex');
  assert.equal(JSON.parse(added.stdout).caCertHash, `sha256:${fingerprint}`, 'meshcp does not serve the chart\'s CA');

  const node = 'apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec:\n  addresses: [10.0.0.1]\n';
  const applied = meshctl(['apply', '-f', '-'], node);
  assert.equal(applied.status, 0, applied.stderr);
  const nodes = meshctl(['get', 'nodes', '-o', 'json']);
  assert.equal(nodes.status, 0, nodes.stderr);
  assert.match(nodes.stdout, /"n1"/);
  assert.match(nodes.stdout, /10\.0\.0\.1/);
});
