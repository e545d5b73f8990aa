// Bad values fail `helm template` (and so `helm install`) with a message naming the key and what
// is wrong with it: values.schema.json for types, ranges and unknown keys; the chart's
// sockmesh.validate for what a schema cannot say.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { template } from './render.mjs';

// [what, values, every pattern the error must match]
const cases = [
  ['a negative port', { agent: { metricsPort: -1 } }, [/agent\.metricsPort/, /greater than or equal to 1/]],
  ['a port beyond 65535', { controlplane: { port: 70000 } }, [/controlplane\.port/, /less than or equal to 65535/]],
  ['a port given as text', { agent: { healthPort: 'http' } }, [/agent\.healthPort/, /Invalid type\. Expected: integer, given: string/]],
  ['an unknown log level', { agent: { logLevel: 'verbose' } }, [/agent\.logLevel/, /must be one of the following: "trace", "debug", "info", "warn", "error"/]],
  ['an unknown control-plane log level', { controlplane: { logLevel: 'loud' } }, [/controlplane\.logLevel/, /must be one of the following/]],
  ['an unknown key (a typo)', { agent: { fastpath: true } }, [/agent/, /Additional property fastpath is not allowed/]],
  ['an unknown top-level key', { agnet: {} }, [/Additional property agnet is not allowed/]],
  ['an access-log mode that does not exist', { agent: { accessLog: { mode: 'some' } } }, [/agent\.accessLog\.mode/, /"off", "sampled", "all"/]],
  ['a sampling share of 1.5', { agent: { accessLog: { sampling: 1.5 } } }, [/agent\.accessLog\.sampling/, /less than 1/]],
  ['a sampling share of 0', { agent: { accessLog: { sampling: 0 } } }, [/agent\.accessLog\.sampling/, /greater than 0/]],
  ['fastPath as a string', { agent: { fastPath: 'on' } }, [/agent\.fastPath/, /Expected: boolean, given: string/]],
  ['a relative host path', { agent: { bpffsPath: 'sys/fs/bpf' } }, [/agent\.bpffsPath/, /Does not match pattern/]],
  ['a workload cgroup that climbs out of the root', { agent: { workloadCgroup: '../etc' } }, [/agent\.workloadCgroup/, /Must not validate the schema \(not\)/]],
  ['an SVID lifetime below 10 s', { controlplane: { svidTtlSeconds: 5 } }, [/controlplane\.svidTtlSeconds/, /greater than or equal to 10/]],
  ['a pull policy that does not exist', { image: { pullPolicy: 'Sometimes' } }, [/image\.pullPolicy/, /"Always", "IfNotPresent", "Never"/]],
  ['an image repository with a tag in it', { image: { repository: 'sockmesh:latest' } }, [/image\.repository/, /Does not match pattern/]],
  ['a mesh resource file not ending in .yaml', { controlplane: { meshResources: { 'mesh.txt': 'x' } } }, [/controlplane\.meshResources/, /mesh\.txt/]],
  ['a persistence size without a unit Kubernetes knows', { controlplane: { persistence: { size: '1 GB' } } }, [/controlplane\.persistence\.size/, /Does not match pattern/]],
  ['an extra argument that is not a flag', { agent: { extraArgs: ['rm -rf'] } }, [/agent\.extraArgs\.0/, /Does not match pattern/]],
  ['two agent ports the same', { agent: { metricsPort: 15021 } }, [/agent\.outboundPort \(15001\), agent\.tunnelPort \(15008\), agent\.metricsPort \(15021\) and agent\.healthPort \(15021\) must differ/]],
  ['the control plane\'s two ports the same', { controlplane: { metricsPort: 15012 } }, [/controlplane\.port and controlplane\.metricsPort must differ \(both 15012\)/]],
  ['no CA at all', { ca: { create: false } }, [/ca\.create is false and ca\.existingSecret is empty/]],
  ['agent hops without the fast path', { agent: { fastPath: false, fastPathAgentHops: true } }, [/agent\.fastPathAgentHops needs agent\.fastPath/]],
];

for (const [what, values, patterns] of cases) {
  test(`refused: ${what}`, () => {
    const r = template(values);
    assert.equal(r.ok, false, `rendered although ${what}`);
    for (const p of patterns) assert.match(r.stderr, p);
    // One readable message, not a Go stack or a template trace.
    assert.doesNotMatch(r.stderr, /goroutine|panic:/);
  });
}

test('the defaults and a full set of good values are accepted', () => {
  assert.ok(template({}).ok);
  const r = template({
    agent: { metricsPort: 9100, healthPort: 9101, logLevel: 'debug', accessLog: { mode: 'all', sampling: 0.5 },
             workloadCgroup: 'kubepods.slice', extraArgs: ['--bpf-run-stats'] },
    controlplane: { logLevel: 'warn', svidTtlSeconds: 10, nodeCertTtlSeconds: 31536000, persistence: { size: '500Mi' } },
    image: { tag: '1.2.3-rc.1' }, trustDomain: 'prod.example.org',
  });
  assert.ok(r.ok, r.stderr);
});
