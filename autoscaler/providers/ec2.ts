// The ec2 provider: render workers as EC2 instances, spot first.
// launch() asks CreateFleet (type `instant`: one synchronous attempt, the answer
// lists what started and why the rest did not) for spot capacity across every
// configured instance type × subnet, with price-capacity-optimized allocation,
// and buys the shortfall On-Demand when spot capacity is short. Everything it
// launches carries the cluster's tags; terminate() and list() only ever see
// instances with those tags, so a restarted autoscaler reconciles from EC2 itself
// and can never stop a machine it does not own. Rate limits are retried with
// capped exponential backoff and full jitter, on top of the SDK's own short
// retries, and then surface as ProviderThrottledError.
import { randomUUID } from 'node:crypto';
import {
  CreateFleetCommand,
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
  type CreateFleetCommandOutput,
  type Filter,
  type Instance,
  type Tag,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { bool, ConfigError, read, url, type Env } from '../../engine/config.js';
import {
  ProviderThrottledError,
  type LaunchError,
  type LaunchResult,
  type Lifecycle,
  type ProviderInstance,
  type TerminateResult,
  type WorkerProvider,
} from './types.js';

/** Tags on every instance we launch; the first two are what makes an instance ours. */
export const TAG_CLUSTER = 'vgen:cluster';
export const TAG_MANAGED_BY = 'vgen:managed-by';
export const MANAGED_BY = 'vgen-autoscaler';
export const TAG_ROLE = 'vgen:role';
export const TAG_LIFECYCLE = 'vgen:lifecycle';

/** Spot could not supply the capacity; On-Demand may still (any other error would fail there too). */
const SPOT_SHORTAGE_CODES = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientCapacity',
  'UnfulfillableCapacity',
  'MaxSpotInstanceCountExceeded',
  'SpotMaxPriceTooLow',
]);
const THROTTLING_CODES = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'EC2ThrottledException']);
/** Ids per DescribeInstances filter / TerminateInstances call. */
const ID_BATCH = 100;

export interface Ec2Backoff {
  /** Attempts per EC2 action, each of them up to `sdkMaxAttempts` requests. */
  attempts: number;
  baseMs: number;
  maxMs: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface Ec2ProviderOptions {
  region: string;
  /** Another EC2 endpoint (a test fake, LocalStack); unset = AWS. */
  endpoint?: string;
  /** Unset = the SDK's default chain (instance profile in production). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Tag value that names this fleet; two clusters in one account must differ. */
  cluster: string;
  /** A launch template id (`lt-…`) or name; its user data starts `vgen worker` (docs/fleet.md). */
  launchTemplate: string;
  launchTemplateVersion: string;
  instanceTypes: string[];
  subnets: string[];
  /** Buy On-Demand for what spot cannot supply. */
  onDemandFallback: boolean;
  /** Extra tags for instances (cost allocation, …). */
  tags?: Record<string, string>;
  /** Requests per action inside the SDK (its own quick retries); default 3. */
  sdkMaxAttempts?: number;
  /** Our retries of throttled actions; default 5 attempts, 1 s base, 20 s cap. */
  backoff?: Partial<Ec2Backoff>;
  /** DescribeInstances page size (5–1000); default 1000. */
  pageSize?: number;
  /** Told before each backoff sleep, for logs and metrics. */
  onThrottled?: (event: { action: string; attempt: number; delayMs: number }) => void;
  /** Dollars an hour per instance type, spot and On-Demand, for vgen_fleet_cost_per_hour_dollars (a type not listed counts 0). */
  prices?: { spot: Record<string, number>; onDemand: Record<string, number> };
}


export class Ec2Provider implements WorkerProvider {
  readonly name = 'ec2';
  readonly client: EC2Client;
  private readonly backoff: Required<Ec2Backoff>;

  constructor(private readonly opts: Ec2ProviderOptions) {
    if (opts.instanceTypes.length === 0 || opts.subnets.length === 0) throw new Error('ec2 provider needs at least one instance type and one subnet');
    this.client = new EC2Client({
      region: opts.region,
      endpoint: opts.endpoint,
      credentials: opts.credentials,
      maxAttempts: opts.sdkMaxAttempts ?? 3,
    });
    this.backoff = {
      attempts: 5,
      baseMs: 1000,
      maxMs: 20_000,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      random: Math.random,
      ...opts.backoff,
    };
  }

  /** Estimated from EC2_SPOT_PRICES / EC2_ON_DEMAND_PRICES: what you pay, not what the market charges this minute. */
  hourlyCost(instances: readonly ProviderInstance[]): number {
    const prices = this.opts.prices;
    if (!prices) return 0;
    let sum = 0;
    for (const i of instances) sum += (i.lifecycle === 'spot' ? prices.spot : prices.onDemand)[i.instanceType] ?? 0;
    return Math.round(sum * 1e6) / 1e6;
  }

  async launch(count: number): Promise<LaunchResult> {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`launch count must be a whole number ≥ 0, got ${count}`);
    const result: LaunchResult = { requested: count, instances: [], shortfall: count, errors: [] };
    if (count === 0) return result;
    const spot = await this.createFleet(count, 'spot');
    result.instances.push(...spot.instances);
    result.errors.push(...spot.errors);
    const short = count - spot.instances.length;
    if (short > 0 && this.opts.onDemandFallback && spot.errors.some((e) => SPOT_SHORTAGE_CODES.has(e.code))) {
      try {
        const onDemand = await this.createFleet(short, 'on-demand');
        result.instances.push(...onDemand.instances);
        result.errors.push(...onDemand.errors);
      } catch (err) {
        // The spot instances are running and billed: report them, not only the failure.
        result.errors.push({ code: errorCode(err) ?? 'Error', message: (err as Error).message, lifecycle: 'on-demand' });
      }
    }
    result.shortfall = count - result.instances.length;
    return result;
  }

  async terminate(drainedIds: readonly string[]): Promise<TerminateResult> {
    const wanted = [...new Set(drainedIds)];
    const ours = new Map<string, ProviderInstance>();
    for (const ids of batches(wanted.filter((id) => /^i-[0-9a-f]+$/.test(id)), ID_BATCH))
      for (const inst of await this.describe([{ Name: 'instance-id', Values: ids }])) ours.set(inst.id, inst);
    // Already shutting down or gone counts as done; TerminateInstances is only sent for the rest.
    const live = [...ours.values()].filter((i) => i.state !== 'terminated').map((i) => i.id);
    for (const ids of batches(live, ID_BATCH))
      await this.call('TerminateInstances', () => this.client.send(new TerminateInstancesCommand({ InstanceIds: ids })));
    return { terminated: wanted.filter((id) => ours.has(id)), refused: wanted.filter((id) => !ours.has(id)) };
  }

  async list(): Promise<ProviderInstance[]> {
    return this.describe([{ Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'shutting-down'] }]);
  }

  /** The tags that make an instance ours, plus the operator's extras. */
  private tags(lifecycle: Lifecycle): Tag[] {
    const tags: Record<string, string> = {
      ...this.opts.tags,
      [TAG_CLUSTER]: this.opts.cluster,
      [TAG_MANAGED_BY]: MANAGED_BY,
      [TAG_ROLE]: 'worker',
      [TAG_LIFECYCLE]: lifecycle,
    };
    return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  }

  private async createFleet(count: number, lifecycle: Lifecycle): Promise<{ instances: ProviderInstance[]; errors: LaunchError[] }> {
    const template = this.opts.launchTemplate.startsWith('lt-')
      ? { LaunchTemplateId: this.opts.launchTemplate, Version: this.opts.launchTemplateVersion }
      : { LaunchTemplateName: this.opts.launchTemplate, Version: this.opts.launchTemplateVersion };
    // One token for every retry of this request: EC2 launches once per token.
    const ClientToken = randomUUID();
    const out: CreateFleetCommandOutput = await this.call('CreateFleet', () =>
      this.client.send(
        new CreateFleetCommand({
          Type: 'instant',
          ClientToken,
          LaunchTemplateConfigs: [
            {
              LaunchTemplateSpecification: template,
              Overrides: this.opts.instanceTypes.flatMap((type) =>
                this.opts.subnets.map((SubnetId) => ({ InstanceType: type as _InstanceType, SubnetId })),
              ),
            },
          ],
          TargetCapacitySpecification: {
            TotalTargetCapacity: count,
            SpotTargetCapacity: lifecycle === 'spot' ? count : 0,
            OnDemandTargetCapacity: lifecycle === 'on-demand' ? count : 0,
            DefaultTargetCapacityType: lifecycle,
          },
          // Set explicitly: the API's default is lowest-price, the pools most likely to be interrupted.
          SpotOptions: { AllocationStrategy: 'price-capacity-optimized' },
          OnDemandOptions: { AllocationStrategy: 'lowest-price' },
          // An instant fleet tags only `instance` and `fleet`; the launch template tags volumes.
          TagSpecifications: [
            { ResourceType: 'instance', Tags: this.tags(lifecycle) },
            { ResourceType: 'fleet', Tags: this.tags(lifecycle) },
          ],
        }),
      ),
    );
    const launchedAt = new Date();
    const instances = (out.Instances ?? []).flatMap((group) =>
      (group.InstanceIds ?? []).map(
        (id): ProviderInstance => ({
          id,
          state: 'pending',
          lifecycle: group.Lifecycle === 'spot' ? 'spot' : 'on-demand',
          instanceType: group.InstanceType ?? group.LaunchTemplateAndOverrides?.Overrides?.InstanceType ?? 'unknown',
          launchedAt,
        }),
      ),
    );
    const errors = (out.Errors ?? []).map(
      (e): LaunchError => ({
        code: e.ErrorCode ?? 'Unknown',
        message: e.ErrorMessage ?? '',
        lifecycle: e.Lifecycle === 'spot' ? 'spot' : lifecycle,
        instanceType: e.LaunchTemplateAndOverrides?.Overrides?.InstanceType,
        subnetId: e.LaunchTemplateAndOverrides?.Overrides?.SubnetId,
      }),
    );
    return { instances, errors };
  }

  /** DescribeInstances of our instances only (our tags are always among the filters), every page. */
  private async describe(filters: Filter[]): Promise<ProviderInstance[]> {
    const Filters: Filter[] = [
      { Name: `tag:${TAG_CLUSTER}`, Values: [this.opts.cluster] },
      { Name: `tag:${TAG_MANAGED_BY}`, Values: [MANAGED_BY] },
      ...filters,
    ];
    const found: ProviderInstance[] = [];
    let NextToken: string | undefined;
    do {
      const page = await this.call('DescribeInstances', () =>
        this.client.send(new DescribeInstancesCommand({ Filters, MaxResults: this.opts.pageSize ?? 1000, NextToken })),
      );
      for (const reservation of page.Reservations ?? [])
        for (const inst of reservation.Instances ?? []) if (isOurs(inst, this.opts.cluster)) found.push(toProviderInstance(inst));
      NextToken = page.NextToken || undefined;
    } while (NextToken);
    return found;
  }

  /** One EC2 action, retried with backoff while it is throttled; bounded by backoff.attempts × sdkMaxAttempts requests. */
  private async call<T>(action: string, send: () => Promise<T>): Promise<T> {
    const { attempts, baseMs, maxMs, sleep, random } = this.backoff;
    let requests = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        requests += (err as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
        if (!THROTTLING_CODES.has(errorCode(err) ?? '')) throw err;
        if (attempt >= attempts) throw new ProviderThrottledError('ec2', action, requests, { cause: err });
        // Full jitter: a herd of autoscalers (or retries) does not come back in step.
        const delayMs = Math.round(random() * Math.min(maxMs, baseMs * 2 ** (attempt - 1)));
        this.opts.onThrottled?.({ action, attempt, delayMs });
        await sleep(delayMs);
      }
    }
  }
}

/** Defence in depth: the filters already say so, but a fake or a future edit might not. */
function isOurs(inst: Instance, cluster: string): boolean {
  const tag = (key: string) => inst.Tags?.find((t) => t.Key === key)?.Value;
  return tag(TAG_CLUSTER) === cluster && tag(TAG_MANAGED_BY) === MANAGED_BY;
}

function toProviderInstance(inst: Instance): ProviderInstance {
  const name = inst.State?.Name;
  return {
    id: inst.InstanceId!,
    state: name === 'pending' || name === 'running' ? name : name === 'terminated' ? 'terminated' : 'stopping',
    // EC2 leaves InstanceLifecycle out for On-Demand instances.
    lifecycle: inst.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand',
    instanceType: inst.InstanceType ?? 'unknown',
    launchedAt: inst.LaunchTime ?? new Date(0),
    ...(inst.PrivateIpAddress ? { privateIp: inst.PrivateIpAddress } : {}),
  };
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? ((err as { name?: string }).name ?? undefined) : undefined;
}

function batches<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// ── Configuration ─────────────────────────────────────────────────────────────
// The EC2_* variables (documented in .env.example) are read here, not in
// engine/config.ts: only `vgen autoscaler` with the ec2 provider needs them.

function commaList(name: string, raw: string | undefined, pattern: RegExp, example: string): string[] {
  if (raw === undefined) throw new ConfigError(name, `is required with the ec2 provider (comma-separated, e.g. ${example})`);
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.find((s) => !pattern.test(s));
  if (bad !== undefined || items.length === 0) throw new ConfigError(name, `must be a comma-separated list like ${example}, got "${raw}"`);
  return [...new Set(items)];
}

/** Ec2ProviderOptions from EC2_* variables; a bad value throws a ConfigError naming it. */
export function ec2OptionsFromEnv(env: Env): Ec2ProviderOptions {
  const launchTemplate = read(env, 'EC2_LAUNCH_TEMPLATE');
  if (launchTemplate === undefined) throw new ConfigError('EC2_LAUNCH_TEMPLATE', 'is required with the ec2 provider (a launch template id lt-… or name)');
  const launchTemplateVersion = read(env, 'EC2_LAUNCH_TEMPLATE_VERSION') ?? '$Default';
  if (!/^(\$Default|\$Latest|\d+)$/.test(launchTemplateVersion))
    throw new ConfigError('EC2_LAUNCH_TEMPLATE_VERSION', `must be $Default, $Latest or a version number, got "${launchTemplateVersion}"`);
  const cluster = read(env, 'EC2_CLUSTER') ?? 'vgen';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(cluster)) throw new ConfigError('EC2_CLUSTER', `must be 1–64 letters, digits, '.', '_' or '-', got "${cluster}"`);
  const tags: Record<string, string> = {};
  const rawTags = read(env, 'EC2_TAGS');
  for (const pair of rawTags?.split(',').map((s) => s.trim()).filter(Boolean) ?? []) {
    const m = /^([^=]{1,128})=(.{0,256})$/.exec(pair);
    if (!m || /^(aws|vgen):/i.test(m[1]!.trim())) throw new ConfigError('EC2_TAGS', `must be key=value pairs separated by commas (keys not starting with aws: or vgen:), got "${rawTags}"`);
    tags[m[1]!.trim()] = m[2]!.trim();
  }
  return {
    region: read(env, 'EC2_REGION') ?? read(env, 'AWS_REGION') ?? 'us-east-1',
    endpoint: url(env, 'EC2_ENDPOINT', ['http:', 'https:']),
    cluster,
    launchTemplate,
    launchTemplateVersion,
    instanceTypes: commaList('EC2_INSTANCE_TYPES', read(env, 'EC2_INSTANCE_TYPES'), /^[a-z0-9-]+\.[a-z0-9-]+$/, 'c7i.xlarge,c6i.xlarge,m7i.xlarge'),
    subnets: commaList('EC2_SUBNETS', read(env, 'EC2_SUBNETS'), /^subnet-[0-9a-f]+$/, 'subnet-0abc,subnet-0def'),
    onDemandFallback: bool(env, 'EC2_ON_DEMAND_FALLBACK', true),
    tags,
    prices: { spot: priceList('EC2_SPOT_PRICES', read(env, 'EC2_SPOT_PRICES')), onDemand: priceList('EC2_ON_DEMAND_PRICES', read(env, 'EC2_ON_DEMAND_PRICES')) },
  };
}

/** `type=dollars,…` (dollars an hour), e.g. `c7i.xlarge=0.0714,m7i.xlarge=0.0806`; unset = none. */
function priceList(name: string, raw: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of raw?.split(',').map((s) => s.trim()).filter(Boolean) ?? []) {
    const m = /^([a-z0-9-]+\.[a-z0-9-]+)=(\d{1,6}(?:\.\d{1,8})?)$/.exec(pair);
    if (!m) throw new ConfigError(name, `must be instance-type=dollars-an-hour pairs separated by commas, like c7i.xlarge=0.0714,m7i.xlarge=0.0806; got "${raw}"`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

// ── User data ─────────────────────────────────────────────────────────────────

/**
 * The user-data script for the launch template: writes the worker's settings to
 * /etc/vgen/worker.env, names the worker after its instance id (so the registry
 * and EC2 agree on ids) and runs `vgen worker` under systemd. `vgen` (with
 * ffmpeg, ffprobe and a CJK font) must already be on the image.
 */
export function renderWorkerUserData(env: Record<string, string>, command = '/usr/local/bin/vgen worker'): string {
  const lines = Object.entries(env).map(([k, v]) => {
    if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`not an environment variable name: ${k}`);
    if (/[\n\r\0]/.test(v)) throw new Error(`${k} must be one line`);
    return `${k}="${v.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
  });
  return [
    '#!/bin/bash',
    'set -euo pipefail',
    'install -d -m 0750 /etc/vgen',
    "cat > /etc/vgen/worker.env <<'VGEN_ENV'",
    ...lines,
    'VGEN_ENV',
    '# IMDSv2: a token first, then the instance id as the worker id.',
    'TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
    'echo "WORKER_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)" >> /etc/vgen/worker.env',
    '# ec2: the worker polls the metadata service for spot notices and drains against them.',
    'echo "WORKER_PROVIDER=ec2" >> /etc/vgen/worker.env',
    '# /metrics (WORKER_METRICS_PORT, 9464) on every interface, listed for Prometheus at the private address.',
    ...(env.HOST === undefined ? ['echo "HOST=0.0.0.0" >> /etc/vgen/worker.env'] : []),
    ...(env.METRICS_ADVERTISE_HOST === undefined
      ? ['echo "METRICS_ADVERTISE_HOST=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4)" >> /etc/vgen/worker.env']
      : []),
    'chmod 0640 /etc/vgen/worker.env',
    "cat > /etc/systemd/system/vgen-worker.service <<'VGEN_UNIT'",
    '[Unit]',
    'Description=vgen render worker',
    'After=network-online.target',
    'Wants=network-online.target',
    '[Service]',
    'EnvironmentFile=/etc/vgen/worker.env',
    `ExecStart=${command}`,
    '# A drained worker exits 0 and stays stopped; the autoscaler then terminates the instance.',
    'Restart=on-failure',
    'RestartSec=5',
    '# SIGTERM drains: give the running render time to finish before SIGKILL.',
    '# mixed: only the worker gets SIGTERM; ffmpeg keeps rendering while it drains.',
    'KillSignal=SIGTERM',
    'KillMode=mixed',
    'TimeoutStopSec=110',
    '[Install]',
    'WantedBy=multi-user.target',
    'VGEN_UNIT',
    'systemctl daemon-reload',
    'systemctl enable --now vgen-worker.service',
    '',
  ].join('\n');
}
