// meshd with exactly the always-needed capabilities of docs/install.md (fast path off) loads and
// attaches its programs; without any one of them it stops at start with the reason. Runs the
// real agent in file mode on a scratch cgroup (needs root; ctest label bpf).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync, existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repo, documentedCapabilities } from './render.mjs';

const meshd = process.env.MESHD, meshctl = process.env.MESHCTL;
assert.ok(meshd && existsSync(meshd) && meshctl && existsSync(meshctl), 'MESHD and MESHCTL must name the built binaries');
const cgroupRoot = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '))
  .find((f) => f[2] === 'cgroup2')?.[1];
assert.ok(cgroupRoot, 'no cgroup v2 mount');
const node = `capt${process.pid}`;
const cgroup = join(cgroupRoot, `sockmesh-captest-${process.pid}`);
const dir = mkdtempSync(join(tmpdir(), 'sockmesh-caps-'));
mkdirSync(cgroup);
after(() => {
  spawnSync(meshd, ['uninstall', '--node', node]);
  rmdirSync(cgroup);
  rmSync(dir, { recursive: true, force: true });
});

const always = documentedCapabilities().filter((c) => c.when === 'always').map((c) => c.name);

// Runs meshd with these capabilities as its bounding set until its admin socket answers or it
// exits. Returns { running, status, log }.
async function runWith(caps) {
  const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  const child = spawn('setpriv', ['--inh-caps=-all', '--ambient-caps=-all', `--bounding-set=${bounding}`, meshd,
                                  '--node', node, '--cgroup', cgroup, '--config', join(repo, 'examples/demo-services.yaml'),
                                  '--metrics-address', 'off', '--health-address', 'off', '--fast-path', 'off'],
                      { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) return { running: false, log };
      const status = spawnSync(meshctl, ['--node', node, 'status', '-o', 'json'], { encoding: 'utf8' });
      if (status.status === 0) return { running: true, status: JSON.parse(status.stdout), log };
      await new Promise((r) => setTimeout(r, 100));
    }
    return { running: child.exitCode === null, log };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    spawnSync(meshd, ['uninstall', '--node', node]);
  }
}

test('the documented set is enough: every program loaded and attached', async () => {
  assert.deepEqual([...always].sort(), ['BPF', 'NET_ADMIN', 'PERFMON']);
  const r = await runWith(always);
  assert.ok(r.running, `meshd did not come up with ${always}: ${r.log}`);
  const programs = r.status.programs;
  assert.ok(programs.length >= 10, `only ${programs.length} programs`);
  for (const p of programs) assert.ok(p.attached, `${p.name} is not attached`);
});

for (const missing of always) {
  test(`without CAP_${missing} meshd stops at start, saying why`, async () => {
    const r = await runWith(always.filter((c) => c !== missing));
    assert.equal(r.running, false, `meshd ran without CAP_${missing}`);
    assert.match(r.log, /^meshd: .*(EPERM|lacks|permitted|denied)/m);
  });
}
