// charts/sockmesh rendered offline: lint, every object type-checked against the Kubernetes
// schemas, and what the agent and control plane need asserted (docs/install.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { template, lint, typeCheck, find, chartDir, YAML, renderNotes, documentedCapabilities } from './render.mjs';

const chartValues = YAML.parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
const appVersion = YAML.parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')).appVersion;

function render(values = {}) {
  const r = template(values);
  assert.ok(r.ok, `helm template failed: ${r.stderr}`);
  for (const object of r.objects) typeCheck(object);
  return r;
}

const agentOf = (objects) => find(objects, 'DaemonSet', '-agent');
const meshdOf = (objects) => agentOf(objects).spec.template.spec.containers.find((c) => c.name === 'meshd');
const cpOf = (objects) => find(objects, 'Deployment', '-controlplane');
const meshcpOf = (objects) => cpOf(objects).spec.template.spec.containers.find((c) => c.name === 'meshcp');
const arg = (container, flag) => {
  const found = container.args.filter((a) => a.startsWith(`--${flag}=`));
  assert.equal(found.length, 1, `${container.name}: --${flag} given ${found.length} times`);
  return found[0].slice(flag.length + 3);
};
const mountOf = (pod, container, path) => {
  const mount = container.volumeMounts.find((m) => m.mountPath === path);
  assert.ok(mount, `${container.name} mounts nothing at ${path}`);
  return { mount, volume: pod.volumes.find((v) => v.name === mount.name) };
};

test('helm lint --strict passes with default values and with every feature on', () => {
  for (const args of [[], ['--set', 'metrics.serviceMonitor.enabled=true,dashboards.enabled=true,agent.accessLog.mode=sampled']]) {
    const r = lint(args);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('default values render the agent, the control plane and nothing optional', () => {
  const { objects } = render();
  assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
    'DaemonSet/mesh-sockmesh-agent',
    'Deployment/mesh-sockmesh-controlplane',
    'PersistentVolumeClaim/mesh-sockmesh-controlplane',
    'Secret/mesh-sockmesh-bootstrap',
    'Secret/mesh-sockmesh-ca',
    'Service/mesh-sockmesh-controlplane',
    'ServiceAccount/mesh-sockmesh-agent',
    'ServiceAccount/mesh-sockmesh-controlplane',
  ]);
  for (const o of objects) assert.equal(o.metadata.namespace, 'sockmesh-system', `${o.kind} namespace`);
});

test('the agent: host network, bpffs, the cgroup v2 root and its state mounted from the host', () => {
  const { objects } = render();
  const pod = agentOf(objects).spec.template.spec;
  const meshd = meshdOf(objects);
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.equal(pod.hostPID, true, 'the fast path (on by default) needs the host PID namespace');
  assert.equal(pod.automountServiceAccountToken, false);

  const bpffs = mountOf(pod, meshd, '/sys/fs/bpf');
  assert.deepEqual(bpffs.volume.hostPath, { path: '/sys/fs/bpf', type: 'Directory' });
  assert.equal(bpffs.mount.mountPropagation, 'HostToContainer');
  assert.notEqual(bpffs.mount.readOnly, true, 'meshd pins programs and maps: bpffs must be writable');

  const cgroup = mountOf(pod, meshd, '/host/cgroup');
  assert.deepEqual(cgroup.volume.hostPath, { path: '/sys/fs/cgroup', type: 'Directory' });
  assert.equal(cgroup.mount.readOnly, true);
  assert.equal(arg(meshd, 'cgroup'), '/host/cgroup', 'the workload programs attach at the cgroup v2 root by default');

  const state = mountOf(pod, meshd, '/var/lib/sockmesh');
  assert.deepEqual(state.volume.hostPath, { path: '/var/lib/sockmesh', type: 'DirectoryOrCreate' });
  assert.equal(arg(meshd, 'state-dir'), '/var/lib/sockmesh/$(NODE_NAME)');
  const run = mountOf(pod, meshd, '/run/sockmesh');
  assert.deepEqual(run.volume.hostPath, { path: '/run/sockmesh', type: 'DirectoryOrCreate' });

  const ca = mountOf(pod, meshd, '/etc/sockmesh/ca');
  assert.deepEqual(ca.volume.secret.items, [{ key: 'tls.crt', path: 'ca.crt' }], 'only the CA certificate reaches a node, never its key');
  assert.equal(arg(meshd, 'ca-cert-file'), '/etc/sockmesh/ca/ca.crt');
  const bootstrap = mountOf(pod, meshd, '/etc/sockmesh/bootstrap');
  assert.equal(bootstrap.volume.secret.secretName, 'mesh-sockmesh-bootstrap');
  assert.equal(arg(meshd, 'join-token-file'), '/etc/sockmesh/bootstrap/token');
  assert.equal(arg(meshd, 'node'), '$(NODE_NAME)');
  assert.deepEqual(meshd.env.find((e) => e.name === 'NODE_NAME').valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.equal(arg(meshd, 'controlplane'), 'mesh-sockmesh-controlplane.sockmesh-system.svc:15012');
});

test('the agent has exactly the documented capabilities, in both fast-path modes', () => {
  const documented = documentedCapabilities();
  assert.ok(documented.length >= 3, 'the capabilities table is empty');
  for (const fastPath of [true, false]) {
    const { objects } = render({ agent: { fastPath } });
    const meshd = meshdOf(objects);
    const sc = meshd.securityContext;
    const expected = documented.filter((c) => c.when === 'always' || (fastPath && c.when === 'fast path on'))
      .map((c) => c.name).sort();
    assert.deepEqual([...sc.capabilities.add].sort(), expected, `fastPath ${fastPath}`);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.equal(sc.privileged, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(agentOf(objects).spec.template.spec.hostPID ?? false, fastPath);
    // Kubernetes refuses allowPrivilegeEscalation: false beside SYS_ADMIN.
    assert.equal(sc.allowPrivilegeEscalation, fastPath ? undefined : false);
    assert.equal(arg(meshd, 'fast-path'), fastPath ? 'on' : 'off');
  }
  assert.deepEqual(documented.map((c) => c.when).filter((w) => w !== 'always' && w !== 'fast path on'), [],
                   'the table\'s "when" column is "always" or "fast path on"');
});

test('probes call the agent health endpoints on the health port', () => {
  const { objects } = render();
  const meshd = meshdOf(objects);
  const port = (name) => meshd.ports.find((p) => p.name === name).containerPort;
  assert.deepEqual(meshd.livenessProbe.httpGet, { path: '/healthz/live', port: 'health' });
  assert.deepEqual(meshd.readinessProbe.httpGet, { path: '/healthz/ready', port: 'health' });
  assert.equal(port('health'), chartValues.agent.healthPort);
  assert.equal(arg(meshd, 'health-address'), `0.0.0.0:${chartValues.agent.healthPort}`);
  const meshcp = meshcpOf(objects);
  assert.deepEqual(meshcp.readinessProbe.tcpSocket, { port: 'grpc' });
  assert.deepEqual(meshcp.livenessProbe.httpGet, { path: '/metrics', port: 'metrics' });
});

test('every image and port comes from values', () => {
  const ports = { outboundPort: 21001, tunnelPort: 21008, metricsPort: 21020, healthPort: 21021 };
  const cpPorts = { port: 22012, metricsPort: 22014 };
  const { objects, stdout } = (() => {
    const r = render({
      image: { repository: 'registry.example/mesh/sockmesh', tag: 'v9.9.9', pullPolicy: 'Always' },
      agent: ports, controlplane: cpPorts,
      metrics: { serviceMonitor: { enabled: true } },
    });
    return r;
  })();
  for (const n of [15001, 15008, 15020, 15021, 15012, 15014])
    assert.doesNotMatch(stdout, new RegExp(`\\b${n}\\b`), `default port ${n} left in the render`);
  const containers = objects.flatMap((o) => o.spec?.template?.spec?.containers ?? []);
  assert.equal(containers.length, 2);
  for (const c of containers) {
    assert.equal(c.image, 'registry.example/mesh/sockmesh:v9.9.9');
    assert.equal(c.imagePullPolicy, 'Always');
  }
  const meshd = meshdOf(objects);
  const byName = Object.fromEntries(meshd.ports.map((p) => [p.name, p.containerPort]));
  assert.deepEqual(byName, { outbound: 21001, tunnel: 21008, metrics: 21020, health: 21021 });
  assert.equal(arg(meshd, 'outbound-port'), '21001');
  assert.equal(arg(meshd, 'tunnel-port'), '21008');
  assert.equal(arg(meshd, 'metrics-address'), '0.0.0.0:21020');
  assert.equal(arg(meshd, 'health-address'), '0.0.0.0:21021');
  assert.equal(arg(meshd, 'controlplane'), 'mesh-sockmesh-controlplane.sockmesh-system.svc:22012');
  assert.equal(agentOf(objects).spec.template.metadata.annotations['prometheus.io/port'], '21020');
  const meshcp = meshcpOf(objects);
  assert.deepEqual(Object.fromEntries(meshcp.ports.map((p) => [p.name, p.containerPort])), { grpc: 22012, metrics: 22014 });
  assert.equal(arg(meshcp, 'listen'), '0.0.0.0:22012');
  assert.equal(arg(meshcp, 'metrics-address'), '0.0.0.0:22014');
  const svc = find(objects, 'Service', '-controlplane');
  assert.deepEqual(svc.spec.ports.map((p) => [p.name, p.port, p.targetPort]), [['grpc', 22012, 'grpc'], ['metrics', 22014, 'metrics']]);
  assert.deepEqual(find(objects, 'Service', '-agent-metrics').spec.ports.map((p) => p.port), [21020]);
  // Default tag: the chart's appVersion.
  const defaults = render();
  assert.equal(meshdOf(defaults.objects).image, `sockmesh/sockmesh:${appVersion}`);
});

test('every optional feature on: ServiceMonitor, dashboard, mesh resources, sampled access log', () => {
  const mesh = 'apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec:\n  addresses: [10.0.0.1]\n';
  const { objects } = render({
    metrics: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prom' } } },
    dashboards: { enabled: true },
    controlplane: { meshResources: { 'nodes.yaml': mesh }, persistence: { storageClass: 'fast' } },
    agent: { accessLog: { mode: 'sampled', sampling: 0.25 }, fastPathAgentHops: true, extraArgs: ['--bpf-run-stats'] },
    imagePullSecrets: [{ name: 'pull' }],
  });
  const monitor = find(objects, 'ServiceMonitor');
  assert.equal(monitor.metadata.labels.release, 'prom');
  assert.deepEqual(monitor.spec.endpoints.map((e) => [e.port, e.path, e.interval]), [['metrics', '/metrics', '15s']]);
  assert.deepEqual(monitor.spec.selector.matchExpressions[0].values, ['agent', 'controlplane']);
  // Both Services the monitor selects carry a port named metrics.
  for (const svc of objects.filter((o) => o.kind === 'Service'))
    assert.ok(svc.spec.ports.some((p) => p.name === 'metrics'), svc.metadata.name);

  const dashboard = find(objects, 'ConfigMap', '-dashboard');
  assert.equal(dashboard.metadata.labels.grafana_dashboard, '1');
  const shipped = JSON.parse(readFileSync(join(chartDir, 'dashboards/sockmesh.json'), 'utf8'));
  assert.deepEqual(JSON.parse(dashboard.data['sockmesh.json']), shipped);

  const resources = find(objects, 'ConfigMap', '-resources');
  assert.equal(resources.data['nodes.yaml'], mesh);
  const meshcp = meshcpOf(objects);
  assert.equal(arg(meshcp, 'watch-dir'), '/etc/sockmesh/resources');
  assert.equal(mountOf(cpOf(objects).spec.template.spec, meshcp, '/etc/sockmesh/resources').volume.configMap.name, resources.metadata.name);
  // No checksum annotation: a change reaches meshcp through the volume (--watch-dir follows the
  // ConfigMap's ..data swap), not by restarting the one replica agents stream from.
  assert.equal(Object.keys(cpOf(objects).spec.template.metadata.annotations).some((k) => k.startsWith('checksum/')), false);
  assert.equal(find(objects, 'PersistentVolumeClaim').spec.storageClassName, 'fast');

  const meshd = meshdOf(objects);
  assert.equal(arg(meshd, 'access-log-mode'), 'sampled');
  assert.equal(arg(meshd, 'access-log-sampling'), '0.25');
  assert.equal(arg(meshd, 'fast-path-agent-hops'), 'on');
  assert.ok(meshd.args.includes('--bpf-run-stats'));
  assert.deepEqual(agentOf(objects).spec.template.spec.imagePullSecrets, [{ name: 'pull' }]);
});

test('the control plane: one writer, persistent store, the chart CA and the bootstrap token', () => {
  const { objects } = render();
  const deployment = cpOf(objects);
  assert.equal(deployment.spec.replicas, 1);
  assert.equal(deployment.spec.strategy.type, 'Recreate');
  const pod = deployment.spec.template.spec;
  const meshcp = meshcpOf(objects);
  assert.equal(mountOf(pod, meshcp, '/var/lib/sockmesh').volume.persistentVolumeClaim.claimName, 'mesh-sockmesh-controlplane');
  assert.equal(arg(meshcp, 'state-dir'), '/var/lib/sockmesh/meshcp');
  assert.equal(mountOf(pod, meshcp, '/etc/sockmesh/ca').volume.secret.secretName, 'mesh-sockmesh-ca');
  assert.equal(arg(meshcp, 'ca-cert'), '/etc/sockmesh/ca/tls.crt');
  assert.equal(arg(meshcp, 'ca-key'), '/etc/sockmesh/ca/tls.key');
  assert.equal(arg(meshcp, 'bootstrap-token-file'), '/etc/sockmesh/bootstrap/token');
  assert.equal(arg(meshcp, 'trust-domain'), 'cluster.local');
  assert.deepEqual(meshcp.securityContext.capabilities, { drop: ['ALL'] });
  assert.equal(meshcp.securityContext.allowPrivilegeEscalation, false);
  assert.equal(find(objects, 'PersistentVolumeClaim').metadata.annotations['helm.sh/resource-policy'], 'keep');

  const caSecret = find(objects, 'Secret', '-ca');
  assert.equal(caSecret.type, 'kubernetes.io/tls');
  assert.equal(caSecret.metadata.annotations['helm.sh/resource-policy'], 'keep');
  const cert = new X509Certificate(Buffer.from(caSecret.data['tls.crt'], 'base64'));
  assert.equal(cert.ca, true);
  assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
  assert.equal(cert.publicKey.asymmetricKeyDetails.namedCurve, 'prime256v1');
  const key = createPrivateKey(Buffer.from(caSecret.data['tls.key'], 'base64'));
  assert.ok(cert.checkPrivateKey(key), 'tls.key is not the key of tls.crt');
  const days = (Date.parse(cert.validTo) - Date.now()) / 86400e3;
  assert.ok(days > 3640 && days <= 3651, `CA valid for ${days} days`);
  const token = Buffer.from(find(objects, 'Secret', '-bootstrap').data.token, 'base64').toString();
  assert.match(token, /^[A-Za-z0-9]{48}$/);

  // Without persistence: an emptyDir and no claim.
  const ephemeral = render({ controlplane: { persistence: { enabled: false } } }).objects;
  assert.equal(ephemeral.filter((o) => o.kind === 'PersistentVolumeClaim').length, 0);
  assert.deepEqual(mountOf(cpOf(ephemeral).spec.template.spec, meshcpOf(ephemeral), '/var/lib/sockmesh').volume.emptyDir, {});
});

test('existing CA and token Secrets are used, not made', () => {
  const { objects } = render({ ca: { existingSecret: 'corp-mesh-ca' }, bootstrap: { existingSecret: 'corp-token' } });
  assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
  const agentPod = agentOf(objects).spec.template.spec;
  const cpPod = cpOf(objects).spec.template.spec;
  for (const pod of [agentPod, cpPod]) {
    assert.equal(pod.volumes.find((v) => v.name === 'ca').secret.secretName, 'corp-mesh-ca');
    assert.equal(pod.volumes.find((v) => v.name === 'bootstrap').secret.secretName, 'corp-token');
  }
});

test('every node gets an agent: tolerations, priority, rolling update one node at a time', () => {
  const { objects } = render();
  const ds = agentOf(objects);
  const pod = ds.spec.template.spec;
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  assert.equal(pod.terminationGracePeriodSeconds, 30);
  const meshd = meshdOf(objects);
  assert.deepEqual(meshd.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
  const selector = ds.spec.selector.matchLabels;
  for (const [k, v] of Object.entries(selector)) assert.equal(ds.spec.template.metadata.labels[k], v);
});

test('NOTES.txt names the objects and ports of this release', () => {
  const notes = renderNotes({ agent: { healthPort: 23021 }, controlplane: { meshResources: { 'mesh.yaml': 'x' } } });
  assert.match(notes, /rollout status daemonset\/mesh-sockmesh-agent\n/);
  assert.match(notes, /rollout status deployment\/mesh-sockmesh-controlplane\n/);
  assert.match(notes, /http:\/\/<node>:23021\/healthz\/ready/);
  assert.match(notes, /exec -i deploy\/mesh-sockmesh-controlplane -- meshctl apply -f - < mesh.yaml/);
  assert.match(notes, /controlplane.meshResources: mesh.yaml/);
  assert.doesNotMatch(notes, /<no value>|%!/);
});
