// The unit for hosts outside Kubernetes, installed by scripts/install.sh into a scratch root and
// checked by `systemd-analyze verify` (which also wants the binary it names to exist there).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, cpSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repo, documentedCapabilities } from './render.mjs';

const root = mkdtempSync(join(tmpdir(), 'sockmesh-systemd-'));
after(() => rmSync(root, { recursive: true, force: true }));

function install(prefix) {
  const r = spawnSync(join(repo, 'scripts/install.sh'), ['--build-dir', process.env.BUILD_DIR, '--prefix', prefix,
                                                         '--root', root, '--systemd'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // systemd-analyze resolves the targets the unit orders itself against inside the root.
  if (existsSync(join(root, 'usr/lib/systemd/system'))) return;
  mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, dereference: false });
}

function verify(...units) {
  return spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...units], { encoding: 'utf8' });
}

test('sockmesh-meshd.service and mesh.slice pass systemd-analyze verify, without a warning', () => {
  install('/usr/local');
  const r = verify('sockmesh-meshd.service', 'mesh.slice');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal((r.stdout + r.stderr).trim(), '', 'systemd-analyze had something to say');
});

test('the unit runs the installed meshd with exactly the documented capabilities', () => {
  const unit = readFileSync(join(root, 'etc/systemd/system/sockmesh-meshd.service'), 'utf8');
  const line = (key) => unit.match(new RegExp(`^${key}=(.*)$`, 'm'))?.[1];
  // Every capability of the table: the unit runs with the fast path on (meshd's default).
  assert.deepEqual(line('CapabilityBoundingSet').split(' ').sort(),
                   documentedCapabilities().map((c) => `CAP_${c.name}`).sort());
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/meshd --node \$\{SOCKMESH_NODE\}/m);
  assert.equal(line('KillSignal'), 'SIGTERM');
  assert.equal(line('Restart'), 'always');
  const env = readFileSync(join(root, 'etc/sockmesh/meshd.env'), 'utf8');
  for (const key of ['SOCKMESH_NODE', 'SOCKMESH_WORKLOAD_CGROUP', 'SOCKMESH_CONTROLPLANE', 'SOCKMESH_EXTRA_ARGS'])
    assert.match(env, new RegExp(`^${key}=`, 'm'));
});

test('a mistake in the unit is caught: a missing binary fails verify', () => {
  rmSync(join(root, 'usr/local/bin/meshd'));
  const r = verify('sockmesh-meshd.service');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /Command \/usr\/local\/bin\/meshd is not executable/);
});

test('another prefix rewrites the unit, and an existing meshd.env is kept', () => {
  writeFileSync(join(root, 'etc/sockmesh/meshd.env'), 'SOCKMESH_NODE=kept\n');
  install('/opt/sockmesh');
  const unit = readFileSync(join(root, 'etc/systemd/system/sockmesh-meshd.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/opt\/sockmesh\/bin\/meshd /m);
  assert.equal(readFileSync(join(root, 'etc/sockmesh/meshd.env'), 'utf8'), 'SOCKMESH_NODE=kept\n');
  const r = verify('sockmesh-meshd.service');
  assert.equal(r.status, 0, r.stderr);
});
