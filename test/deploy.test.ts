// The deployment files, checked by reading them (Docker cannot run here):
// docker-compose.yml validates with docker-compose and has what the runbook
// promises (Redis AOF + noeviction, pinned images, several workers, Prometheus
// and Grafana with the shipped config); the Dockerfile is multi-stage, non-root,
// on the same Node 24 release CI tests with; `vgen operator-token` writes a key
// the API accepts as an operator's.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { findUserByApiKey } from '../api/users.js';
import { openDb } from '../engine/db.js';
import { freshDatabase, runCleanups, tempDir } from './helpers.js';

const run = promisify(execFile);
const root = new URL('../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
after(runCleanups);

const hasCompose = (() => {
  try {
    execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const needsCompose = hasCompose ? {} : { skip: 'docker-compose is not installed (Debian package `docker-compose`; `bash scripts/setup.sh --test` installs it)' };

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[];
  environment?: Record<string, string | null>;
  volumes?: ({ source?: string; target: string; type: string; read_only?: boolean } | string)[];
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }>;
  user?: string;
}

/** docker-compose's own reading of the file (anchors and merges resolved), as JSON via its python3-yaml. */
async function composeConfig(): Promise<{ services: Record<string, Service> }> {
  const { stdout } = await run('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: root });
  const json = execFileSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: stdout });
  return JSON.parse(String(json));
}

const NODE24 = /node@(24\.\d+\.\d+)/;

describe('docker-compose.yml', () => {
  test('docker-compose validates it', needsCompose, async () => {
    const r = await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root });
    assert.equal(r.stderr.trim(), '');
  });

  test('every image is pinned, and every service the stack needs is there', needsCompose, async () => {
    const { services } = await composeConfig();
    for (const name of ['redis', 'postgres', 'minio', 'minio-setup', 'api', 'worker', 'autoscaler', 'prometheus-token', 'prometheus', 'grafana'])
      assert.ok(services[name], `service ${name}`);
    for (const [name, s] of Object.entries(services)) {
      assert.ok(s.image, `${name} names an image`);
      if (s.build) continue; // vgen:local, built from the Dockerfile
      assert.match(s.image!, /^[\w./-]+:[\w.-]+$/, `${name}: ${s.image} has a version tag`);
      assert.doesNotMatch(s.image!, /:(latest|stable|main)$/, `${name}: ${s.image} is pinned`);
    }
    for (const role of ['api', 'worker', 'autoscaler']) assert.ok(services[role]!.build, `${role} runs the vgen image`);
  });

  test('Redis: AOF fsync every second and noeviction', needsCompose, async () => {
    const cmd = (await composeConfig()).services.redis!.command as string[];
    const opt = (name: string) => cmd[cmd.indexOf(name) + 1];
    assert.equal(opt('--appendonly'), 'yes');
    assert.equal(opt('--appendfsync'), 'everysec');
    assert.equal(opt('--maxmemory-policy'), 'noeviction');
  });

  test('several workers, each serving /metrics on every interface; the bucket is created', needsCompose, async () => {
    const { services } = await composeConfig();
    assert.ok((services.worker!.deploy?.replicas ?? 1) >= 2);
    assert.equal(services.worker!.environment?.HOST, '0.0.0.0');
    assert.ok(Number(services.worker!.environment?.WORKER_METRICS_PORT) > 0);
    assert.equal(services.worker!.environment?.DATABASE_URL, undefined, 'workers hold no database connection');
    const setup = JSON.stringify(services['minio-setup']!.command);
    assert.match(setup, /mc mb --ignore-existing local\/vgen-media/);
    assert.match(setup, /mc anonymous set download local\/vgen-media\/videos/);
  });

  test('Prometheus runs the shipped config and rules with the operator token; Grafana provisions the datasource and every dashboard', needsCompose, async () => {
    const { services } = await composeConfig();
    // source:target (docker-compose 1.x prints short strings with a mode; 2.x objects).
    const mounts = (s: Service) => (s.volumes ?? []).map((v) => (typeof v === 'string' ? v.replace(/:(ro|rw)$/, '') : `${v.source}:${v.target}`));
    const prom = mounts(services.prometheus!);
    const dashboardsDir = join(new URL('.', root).pathname, 'dashboards');
    assert.ok(prom.includes(`${dashboardsDir}/prometheus.yml:/etc/prometheus/prometheus.yml`), prom.join('\n'));
    assert.ok(prom.includes(`${dashboardsDir}/alerts.yml:/etc/prometheus/alerts.yml`));
    // The token file prometheus.yml names is in the volume prometheus-token writes.
    const credentials = /credentials_file: (\S+)/.exec(read('dashboards/prometheus.yml'))![1]!;
    assert.ok(prom.some((m) => m.endsWith(':/etc/prometheus/secrets') && m.startsWith('vgen-secrets')), 'secrets volume');
    assert.equal(credentials, '/etc/prometheus/secrets/token');
    assert.match(JSON.stringify(services['prometheus-token']!.command), /operator-token --data-dir \/secrets/);
    assert.equal(services.prometheus!.depends_on?.['prometheus-token']?.condition, 'service_completed_successfully');

    const graf = mounts(services.grafana!);
    assert.ok(graf.includes(`${dashboardsDir}/grafana/provisioning:/etc/grafana/provisioning`));
    const provider = read('dashboards/grafana/provisioning/dashboards/vgen.yml');
    const path = /path: (\S+)/.exec(provider)![1]!;
    for (const d of ['overview.json', 'queue-fleet.json', 'render.json', 'api.json']) {
      assert.ok(existsSync(new URL(`dashboards/${d}`, root)), d);
      assert.ok(graf.includes(`${dashboardsDir}/${d}:${path}/${d}`), `grafana mounts ${d} in ${path}`);
    }
    const datasource = read('dashboards/grafana/provisioning/datasources/prometheus.yml');
    assert.match(datasource, /url: http:\/\/prometheus:9090/);
    assert.match(datasource, /isDefault: true/);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  test('multi-stage, on the Node 24 release CI runs the suite with, pinned', () => {
    const base = /^ARG NODE_IMAGE=node:(24\.\d+\.\d+)-bookworm-slim$/m.exec(dockerfile);
    assert.ok(base, 'a pinned node:24.x.y-bookworm-slim base');
    assert.equal((dockerfile.match(/^FROM /gm) ?? []).length, 2, 'two stages');
    const ci = NODE24.exec(JSON.parse(read('package.json')).scripts['test:node24']);
    assert.ok(ci, 'package.json test:node24 names node@24.x.y');
    assert.equal(ci[1], base[1], 'the image runs the Node release the suite was tested on');
    assert.match(read('package.json'), /"test": "[^"]*npm run test:suite && npm run test:node24"/, 'npm test runs both');
  });

  test('ffmpeg and the CJK font, a non-root user, one entrypoint for every role', () => {
    assert.match(dockerfile, /apt-get install[^\n]*ffmpeg[^\n]*fonts-noto-cjk/);
    assert.match(dockerfile, /^USER node$/m);
    assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/vgen\.js"\]$/m);
    assert.match(dockerfile, /npm ci --omit=dev/);
  });

  test('everything it copies exists and is not in .dockerignore', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) {
        assert.ok(existsSync(new URL(src, root)), `${src} exists`);
        assert.ok(!ignored.includes(src), `${src} is not ignored`);
      }
    }
  });
});

describe('vgen operator-token', () => {
  test("writes an operator API key to <data-dir>/token, and keeps it when run again", async () => {
    const databaseUrl = await freshDatabase();
    const dir = join(tempDir(), 'secrets');
    const env = { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' };
    const first = await run(process.execPath, ['bin/vgen.js', 'operator-token', '--data-dir', dir], { cwd: root, env });
    assert.match(first.stdout, /operator token written to .*secrets\/token/);
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    assert.match(token, /^vgk_/);
    await run(process.execPath, ['bin/vgen.js', 'operator-token', '--data-dir', dir], { cwd: root, env });
    assert.equal(readFileSync(join(dir, 'token'), 'utf8').trim(), token, 'a still-valid key is kept');
    const db = await openDb({ databaseUrl, dataDir: tempDir() });
    try {
      assert.equal((await findUserByApiKey(db, token))?.role, 'operator');
    } finally {
      await db.close();
    }
  });
});
