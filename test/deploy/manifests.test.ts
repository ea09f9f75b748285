// The Kubernetes manifests, rendered as a team applies them (`kubectl
// kustomize`, which is `kubectl apply -k`), checked without a cluster:
// - every object against the Kubernetes API schema (kubernetes-models; the
//   ServiceMonitor against the prometheus-operator CRD's), types, formats,
//   required fields, enums;
// - no unknown field anywhere (the schemas allow extra properties, so the
//   objects are also type-checked as object literals against the same
//   models' TypeScript types, whose excess-property check rejects a typo);
// - the wiring a schema cannot see: selectors that match, named ports that
//   exist, probes, security context, grace periods.
// Needs kubectl: `npm run test:deploy`, which .ci/run calls.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';

const OVERLAYS = ['standalone', 'sentinel'] as const;

/** Each kind we ship: its model (schema validation) and its TypeScript type (no unknown fields). */
const MODELS = {
  'apps/v1/Deployment': {
    model: Deployment,
    type: 'kubernetes-models/apps/v1/Deployment:IDeployment',
  },
  'apps/v1/StatefulSet': {
    model: StatefulSet,
    type: 'kubernetes-models/apps/v1/StatefulSet:IStatefulSet',
  },
  'autoscaling/v2/HorizontalPodAutoscaler': {
    model: HorizontalPodAutoscaler,
    type: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler:IHorizontalPodAutoscaler',
  },
  'networking.k8s.io/v1/NetworkPolicy': {
    model: NetworkPolicy,
    type: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy:INetworkPolicy',
  },
  'policy/v1/PodDisruptionBudget': {
    model: PodDisruptionBudget,
    type: 'kubernetes-models/policy/v1/PodDisruptionBudget:IPodDisruptionBudget',
  },
  'v1/ConfigMap': { model: ConfigMap, type: 'kubernetes-models/v1/ConfigMap:IConfigMap' },
  'v1/Service': { model: Service, type: 'kubernetes-models/v1/Service:IService' },
  'v1/ServiceAccount': {
    model: ServiceAccount,
    type: 'kubernetes-models/v1/ServiceAccount:IServiceAccount',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    model: ServiceMonitor,
    type: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor:IServiceMonitor',
  },
} as const;

/** Secrets the team creates (docs/deploy.md); never in the repo. */
const TEAM_SECRETS = new Set(['sessionmanager-secrets', 'sessionmanager-redis-acl']);

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML, checked field by field below
type Manifest = Record<string, any>;

function render(overlay: string): Manifest[] {
  const yaml = execFileSync('kubectl', ['kustomize', `deploy/kubernetes/overlays/${overlay}`], {
    encoding: 'utf8',
  });
  return parseAllDocuments(yaml).map((document) => {
    assert.deepEqual(document.errors, []);
    return document.toJS() as Manifest;
  });
}

const key = (manifest: Manifest) =>
  `${manifest.apiVersion}/${manifest.kind}` as keyof typeof MODELS;

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([name, value]) => labels[name] === value);
}

function find(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  assert.ok(found, `${kind} ${name} is rendered`);
  return found;
}

for (const overlay of OVERLAYS) {
  describe(`overlays/${overlay}`, () => {
    const manifests = render(overlay);
    const deployment = find(manifests, 'Deployment', 'sessionmanager');
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    const container = deployment.spec.template.spec.containers[0];
    const portNames = new Set<string>(container.ports.map((p: { name: string }) => p.name));

    it('every object validates against its Kubernetes API schema', () => {
      for (const manifest of manifests) {
        const entry = MODELS[key(manifest)];
        assert.ok(entry, `a schema for ${key(manifest)}`);
        assert.doesNotThrow(
          () => new entry.model(manifest as never).validate(),
          `${manifest.kind} ${manifest.metadata.name}`,
        );
      }
    });

    it('no object has a field its API does not know', () => {
      const imports = new Set<string>();
      const checks = manifests.map((manifest, i) => {
        const [module, type] = MODELS[key(manifest)].type.split(':') as [string, string];
        imports.add(`import type { ${type} } from '${module}';`);
        return `export const object${i}: ${type} = ${JSON.stringify(manifest, null, 2)};`;
      });
      // One directory per overlay, rewritten whole: no file of another run is compiled.
      const dir = `.tmp/manifests/${overlay}`;
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${dir}/objects.ts`, [...imports, ...checks, ''].join('\n'));
      writeFileSync(
        `${dir}/tsconfig.json`,
        JSON.stringify({
          extends: '../../../tsconfig.base.json',
          compilerOptions: { noEmit: true, types: [] },
          files: ['objects.ts'],
        }),
      );
      try {
        execFileSync('node_modules/.bin/tsc', ['-p', `${dir}/tsconfig.json`], {
          encoding: 'utf8',
        });
      } catch (error) {
        assert.fail(`unknown or mistyped fields:\n${(error as { stdout: string }).stdout}`);
      }
    });

    it('Services, the PDB, the HPA and the ServiceMonitor reach the pods by name and port', () => {
      const grpc = find(manifests, 'Service', 'sessionmanager');
      assert.equal(grpc.spec.clusterIP, 'None', 'headless: DNS lists every ready pod');
      const http = find(manifests, 'Service', 'sessionmanager-http');
      for (const service of [grpc, http]) {
        assert.ok(matches(service.spec.selector, podLabels), service.metadata.name);
        for (const port of service.spec.ports) assert.ok(portNames.has(port.targetPort));
      }
      const pdb = find(manifests, 'PodDisruptionBudget', 'sessionmanager');
      assert.ok(matches(pdb.spec.selector.matchLabels, podLabels));
      const hpa = find(manifests, 'HorizontalPodAutoscaler', 'sessionmanager');
      assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
      assert.ok(container.resources.requests.cpu, 'a CPU request, which the HPA scales against');
      const monitor = find(manifests, 'ServiceMonitor', 'sessionmanager');
      assert.ok(matches(monitor.spec.selector.matchLabels, http.metadata.labels));
      assert.ok(!matches(monitor.spec.selector.matchLabels, grpc.metadata.labels));
      assert.ok(
        http.spec.ports.some((p: { name: string }) => p.name === monitor.spec.endpoints[0].port),
      );
      for (const constraint of deployment.spec.template.spec.topologySpreadConstraints) {
        assert.ok(matches(constraint.labelSelector.matchLabels, podLabels));
      }
    });

    it('the pods run non-root, read-only, without capabilities, and drain before the kill', () => {
      const workloads = manifests.filter(
        (m) => m.kind === 'Deployment' || m.kind === 'StatefulSet',
      );
      for (const workload of workloads) {
        const pod = workload.spec.template.spec;
        assert.equal(pod.securityContext.runAsNonRoot, true);
        assert.equal(pod.automountServiceAccountToken, false);
        for (const c of pod.containers) {
          assert.equal(c.securityContext.readOnlyRootFilesystem, true, c.name);
          assert.equal(c.securityContext.allowPrivilegeEscalation, false, c.name);
          assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], c.name);
          assert.ok(c.resources.limits.memory, `${c.name}: a memory limit`);
        }
      }
      assert.equal(container.readinessProbe.httpGet.path, '/readyz');
      assert.equal(container.livenessProbe.httpGet.path, '/healthz');
      for (const probe of [container.readinessProbe, container.livenessProbe]) {
        assert.ok(portNames.has(probe.httpGet.port));
      }
      const config = manifests.find(
        (m) => m.kind === 'ConfigMap' && m.metadata.name.startsWith('sessionmanager-config-'),
      );
      assert.ok(config);
      const preStopSeconds =
        Number(
          /setTimeout\(\(\) => \{\}, (\d+)\)/.exec(
            container.lifecycle.preStop.exec.command.join(' '),
          )?.[1],
        ) / 1000;
      const graceSeconds = Number(/^(\d+)s$/.exec(config.data.SHUTDOWN_GRACE)?.[1]);
      assert.ok(preStopSeconds > 0 && graceSeconds > 0);
      assert.ok(
        deployment.spec.template.spec.terminationGracePeriodSeconds > preStopSeconds + graceSeconds,
        'terminationGracePeriodSeconds covers the preStop delay and SHUTDOWN_GRACE',
      );
    });

    it("configuration comes from the rendered ConfigMap and the team's Secrets only", () => {
      const names = new Set(manifests.map((m) => `${m.kind}/${m.metadata.name}`));
      const references: Array<[string, string]> = [];
      for (const workload of manifests.filter((m) => m.spec?.template?.spec)) {
        const pod = workload.spec.template.spec;
        for (const c of pod.containers) {
          for (const source of c.envFrom ?? []) {
            if (source.configMapRef) references.push(['ConfigMap', source.configMapRef.name]);
            if (source.secretRef) references.push(['Secret', source.secretRef.name]);
          }
        }
        for (const volume of pod.volumes ?? []) {
          if (volume.configMap) references.push(['ConfigMap', volume.configMap.name]);
          if (volume.secret) references.push(['Secret', volume.secret.secretName]);
        }
      }
      assert.ok(references.length > 0);
      for (const [kind, name] of references) {
        if (kind === 'Secret') assert.ok(TEAM_SECRETS.has(name), `Secret ${name} is documented`);
        else assert.ok(names.has(`${kind}/${name}`), `${kind} ${name} is rendered`);
      }
      assert.ok(!manifests.some((m) => m.kind === 'Secret'), 'no Secret in the repo');
    });

    it('NetworkPolicies: only labelled clients reach the service, only the service reaches Redis', () => {
      const policy = find(manifests, 'NetworkPolicy', 'sessionmanager');
      assert.ok(matches(policy.spec.podSelector.matchLabels, podLabels));
      const clients = policy.spec.ingress[0];
      assert.deepEqual(clients.from[0].podSelector.matchLabels, {
        'sessionmanager.io/client': 'true',
      });
      assert.deepEqual(clients.ports.map((p: { port: string }) => p.port).sort(), ['grpc', 'http']);
      for (const rule of policy.spec.ingress) {
        for (const port of rule.ports) assert.ok(portNames.has(port.port));
        for (const peer of rule.from)
          assert.ok(peer.podSelector, 'every peer is selected by label');
      }
      const redis = manifests.find((m) => m.kind === 'StatefulSet');
      if (!redis) return;
      const redisPolicy = find(manifests, 'NetworkPolicy', 'sessionmanager-redis');
      assert.ok(
        matches(redisPolicy.spec.podSelector.matchLabels, redis.spec.template.metadata.labels),
      );
      assert.equal(redisPolicy.spec.ingress.length, 1);
      assert.deepEqual(redisPolicy.spec.ingress[0].from, [
        { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'sessionmanager' } } },
      ]);
      const host = find(manifests, 'ConfigMap', config(manifests).metadata.name).data.REDIS_HOST;
      assert.ok(find(manifests, 'Service', host), 'REDIS_HOST names the Redis Service');
    });
  });
}

function config(manifests: Manifest[]): Manifest {
  const found = manifests.find(
    (m) => m.kind === 'ConfigMap' && m.metadata.name.startsWith('sessionmanager-config-'),
  );
  assert.ok(found);
  return found;
}

describe('the local stack (compose.yaml)', () => {
  it("gives the service the least-privilege ACL of docs/security.md, and the deployment's redis.conf", () => {
    const security = readFileSync('docs/security.md', 'utf8');
    const documented = /ACL SETUSER sessionmanager on >PASSWORD (.*)\n/.exec(security)?.[1];
    assert.ok(documented, 'docs/security.md documents the ACL');
    const compose = readFileSync('compose.yaml', 'utf8');
    const local = /'user sessionmanager on >\S+ (.*)'/.exec(compose)?.[1];
    assert.equal(local, documented);
    assert.match(
      compose,
      /\.\/deploy\/kubernetes\/redis\/redis\.conf:\/etc\/redis\/redis\.conf:ro/,
    );
    assert.match(compose, /read_only: true/);
  });
});

describe('docs/deploy.md', () => {
  it("creates the standalone Redis's users file with the ACL of docs/security.md", () => {
    const security = readFileSync('docs/security.md', 'utf8');
    const documented = /ACL SETUSER sessionmanager on >PASSWORD (.*)\n/.exec(security)?.[1];
    const deploy = readFileSync('docs/deploy.md', 'utf8');
    const usersFile = /\buser sessionmanager on >\$REDIS_PASSWORD (.*)\n/.exec(deploy)?.[1];
    assert.ok(usersFile, 'docs/deploy.md writes the service user into users.acl');
    assert.equal(usersFile, documented);
  });
});
