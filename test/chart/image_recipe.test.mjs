// The container image recipe (Dockerfile) and the host install: no Docker engine here, so the
// recipe is checked for what it promises — Debian 12 stages whose every step is a project script —
// and the runtime stage's package list against what the built binaries load. MESHD, MESHCP and
// MESHCTL name the built binaries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync, existsSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repo } from './render.mjs';

// Dockerfile instructions with continuation lines joined and comments dropped.
function instructions() {
  const text = readFileSync(join(repo, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    .map((l) => { const [op, ...rest] = l.split(/\s+/); return { op: op.toUpperCase(), args: rest.join(' ') }; });
}

test('the Dockerfile: Debian 12 stages, every RUN step a project script', () => {
  const steps = instructions();
  const arg = steps.find((s) => s.op === 'ARG' && s.args.startsWith('DEBIAN='));
  assert.equal(arg?.args, 'DEBIAN=debian:12');
  const froms = steps.filter((s) => s.op === 'FROM').map((s) => s.args);
  assert.deepEqual(froms, ['${DEBIAN} AS build', '${DEBIAN}-slim AS runtime']);
  const runs = steps.filter((s) => s.op === 'RUN').map((s) => s.args);
  assert.equal(runs.length, 2);
  const scripts = runs.flatMap((r) => r.split('&&').map((c) => c.trim().split(/\s+/)[0]));
  assert.deepEqual(scripts, ['scripts/install-deps.sh', 'scripts/build.sh', 'scripts/install.sh',
                             '/usr/local/sbin/sockmesh-install-runtime-deps']);
  for (const s of scripts.filter((c) => c.startsWith('scripts/'))) assert.ok(existsSync(join(repo, s)), s);
  // The runtime stage's script is the project's, copied in; it takes only the binaries built above.
  const copies = steps.filter((s) => s.op === 'COPY').map((s) => s.args);
  assert.deepEqual(copies, ['. .', 'scripts/install-runtime-deps.sh /usr/local/sbin/sockmesh-install-runtime-deps',
                            '--from=build /out/ /']);
  assert.match(runs[0], /scripts\/build\.sh release/);
  assert.match(runs[0], /scripts\/install\.sh --prefix \/usr --root \/out/);
  // The chart runs /usr/bin/meshd and /usr/bin/meshcp: where --prefix /usr puts them.
  const ignore = readFileSync(join(repo, '.dockerignore'), 'utf8');
  assert.match(ignore, /^build\/$/m, 'build outputs must not enter the build context');
});

// Debian packages of the shared libraries a binary loads (ldd, then dpkg -S on the file and on
// its /usr-merged twin).
function packagesOf(binary) {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const packages = new Set();
  for (const m of out.matchAll(/=>\s+(\/\S+)/g)) {
    const path = realpathSync(m[1]);
    const candidates = [path, path.replace(/^\/usr\//, '/'), path.replace(/^\/(lib|lib64)\//, '/usr/$1/')];
    let found = null;
    for (const c of candidates) {
      const r = spawnSync('dpkg', ['-S', c], { encoding: 'utf8' });
      if (r.status === 0) { found = r.stdout.split(':')[0]; break; }
    }
    assert.ok(found, `${binary}: no Debian package ships ${m[1]}`);
    packages.add(found);
  }
  return packages;
}

test('install-runtime-deps.sh installs every library the binaries load', () => {
  const script = readFileSync(join(repo, 'scripts/install-runtime-deps.sh'), 'utf8');
  const listed = new Set(script.match(/packages=\(([\s\S]*?)\)/)[1].split(/\s+/).filter((p) => p && !p.startsWith('#')));
  for (const name of ['MESHD', 'MESHCP', 'MESHCTL']) {
    const binary = process.env[name];
    assert.ok(binary && existsSync(binary), `${name} must name the built binary`);
    for (const p of packagesOf(binary)) {
      // The test tree is built with sanitizers; the image's release build links none of them.
      if (/^lib(asan|ubsan|lsan|tsan)\d*(:amd64)?$/.test(p)) continue;
      assert.ok(listed.has(p.replace(/:amd64$/, '')), `${name} needs ${p}, which scripts/install-runtime-deps.sh does not install`);
    }
  }
});
