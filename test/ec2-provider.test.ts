// The ec2 provider against a protocol-level fake of the EC2 Query API: the real
// @aws-sdk/client-ec2 signs, serializes and parses every call, so these tests pin
// the requests EC2 would receive and the answers it gives, capacity errors and
// throttling included.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ConfigError } from '../engine/config.js';
import { Ec2Provider, ec2OptionsFromEnv, renderWorkerUserData, type Ec2ProviderOptions } from '../autoscaler/providers/ec2.js';
import { ProviderThrottledError } from '../autoscaler/providers/types.js';
import { FakeEc2, members, subtree } from './fakes/ec2.js';

let fake: FakeEc2;
const providers: Ec2Provider[] = [];

function provider(overrides: Partial<Ec2ProviderOptions> = {}): Ec2Provider {
  const p = new Ec2Provider({
    region: 'us-east-1',
    endpoint: fake.url,
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
    cluster: 'prod',
    launchTemplate: 'vgen-worker',
    launchTemplateVersion: '$Default',
    instanceTypes: ['c7i.xlarge', 'c6i.xlarge'],
    subnets: ['subnet-0a1', 'subnet-0b2'],
    onDemandFallback: true,
    tags: { team: 'video' },
    sdkMaxAttempts: 1,
    backoff: { attempts: 4, baseMs: 1, maxMs: 5 },
    ...overrides,
  });
  providers.push(p);
  return p;
}

const OURS = { 'vgen:cluster': 'prod', 'vgen:managed-by': 'vgen-autoscaler', 'vgen:role': 'worker' };

before(async () => {
  fake = await FakeEc2.start();
});
beforeEach(() => {
  fake.instances.clear();
  fake.requests.length = 0;
  fake.spotCapacity = Infinity;
  fake.onDemandCapacity = Infinity;
  fake.defaultPageSize = 1000;
  fake.stopThrottling();
});
after(async () => {
  for (const p of providers) p.client.destroy();
  await fake.close();
});

describe('launch', () => {
  test('asks one instant CreateFleet for n spot instances: price-capacity-optimized, every type × subnet, tagged', async () => {
    const result = await provider().launch(3);

    assert.equal(result.requested, 3);
    assert.equal(result.shortfall, 0);
    assert.deepEqual(result.errors, []);
    assert.equal(result.instances.length, 3);
    for (const inst of result.instances) {
      assert.match(inst.id, /^i-[0-9a-f]{17}$/);
      assert.equal(inst.state, 'pending');
      assert.equal(inst.lifecycle, 'spot');
      assert.ok(['c7i.xlarge', 'c6i.xlarge'].includes(inst.instanceType));
    }

    const [req, ...more] = fake.requestsFor('CreateFleet');
    assert.equal(more.length, 0);
    const p = req!.params;
    assert.equal(p.Type, 'instant');
    assert.equal(p['SpotOptions.AllocationStrategy'], 'price-capacity-optimized');
    assert.deepEqual(subtree(p, 'TargetCapacitySpecification'), {
      TotalTargetCapacity: '3',
      SpotTargetCapacity: '3',
      OnDemandTargetCapacity: '0',
      DefaultTargetCapacityType: 'spot',
    });
    assert.match(p.ClientToken!, /^[0-9a-f-]{36}$/);
    const [config] = members(p, 'LaunchTemplateConfigs');
    assert.deepEqual(subtree(config!, 'LaunchTemplateSpecification'), { LaunchTemplateName: 'vgen-worker', Version: '$Default' });
    assert.deepEqual(
      members(config!, 'Overrides').map((o) => `${o.InstanceType}@${o.SubnetId}`).sort(),
      ['c6i.xlarge@subnet-0a1', 'c6i.xlarge@subnet-0b2', 'c7i.xlarge@subnet-0a1', 'c7i.xlarge@subnet-0b2'],
    );
    const specs = members(p, 'TagSpecification');
    assert.deepEqual(specs.map((s) => s.ResourceType).sort(), ['fleet', 'instance']);
    const instanceTags = Object.fromEntries(members(specs.find((s) => s.ResourceType === 'instance')!, 'Tag').map((t) => [t.Key, t.Value]));
    assert.deepEqual(instanceTags, { ...OURS, 'vgen:lifecycle': 'spot', team: 'video' });
    // …and EC2 holds them with those tags.
    for (const inst of result.instances) assert.deepEqual(fake.instances.get(inst.id)!.tags, instanceTags);
  });

  test('a launch template id (lt-…) is sent as LaunchTemplateId', async () => {
    await provider({ launchTemplate: 'lt-0abc123', launchTemplateVersion: '7' }).launch(1);
    const [config] = members(fake.requestsFor('CreateFleet')[0]!.params, 'LaunchTemplateConfigs');
    assert.deepEqual(subtree(config!, 'LaunchTemplateSpecification'), { LaunchTemplateId: 'lt-0abc123', Version: '7' });
  });

  test('spot capacity short: the shortfall is launched On-Demand, tagged so', async () => {
    fake.spotCapacity = 2;
    const result = await provider().launch(5);

    assert.equal(result.shortfall, 0);
    assert.deepEqual(result.instances.map((i) => i.lifecycle), ['spot', 'spot', 'on-demand', 'on-demand', 'on-demand']);
    assert.ok(result.errors.length > 0);
    for (const e of result.errors) {
      assert.equal(e.code, 'InsufficientInstanceCapacity');
      assert.equal(e.lifecycle, 'spot');
      assert.ok(e.instanceType && e.subnetId, 'each error names its pool');
    }

    const [spot, onDemand] = fake.requestsFor('CreateFleet');
    assert.equal(spot!.params['TargetCapacitySpecification.DefaultTargetCapacityType'], 'spot');
    assert.deepEqual(subtree(onDemand!.params, 'TargetCapacitySpecification'), {
      TotalTargetCapacity: '3',
      SpotTargetCapacity: '0',
      OnDemandTargetCapacity: '3',
      DefaultTargetCapacityType: 'on-demand',
    });
    assert.notEqual(spot!.params.ClientToken, onDemand!.params.ClientToken);
    const lifecycleTags = result.instances.map((i) => fake.instances.get(i.id)!.tags['vgen:lifecycle']);
    assert.deepEqual(lifecycleTags, ['spot', 'spot', 'on-demand', 'on-demand', 'on-demand']);
  });

  test('both markets short: what is missing is a shortfall in the result, not an exception', async () => {
    fake.spotCapacity = 1;
    fake.onDemandCapacity = 1;
    const result = await provider().launch(4);
    assert.equal(result.instances.length, 2);
    assert.equal(result.shortfall, 2);
    assert.ok(result.errors.some((e) => e.lifecycle === 'on-demand'));
  });

  test('with the fallback off, a spot shortage stays a shortfall', async () => {
    fake.spotCapacity = 1;
    const result = await provider({ onDemandFallback: false }).launch(3);
    assert.equal(result.instances.length, 1);
    assert.equal(result.shortfall, 2);
    assert.equal(fake.requestsFor('CreateFleet').length, 1);
  });

  test('launch(0) sends nothing; a negative or fractional count is refused', async () => {
    assert.deepEqual(await provider().launch(0), { requested: 0, instances: [], shortfall: 0, errors: [] });
    await assert.rejects(provider().launch(-1), RangeError);
    await assert.rejects(provider().launch(1.5), RangeError);
    assert.equal(fake.requests.length, 0);
  });
});

describe('throttling', () => {
  test('throttled calls back off exponentially (capped, jittered) and then succeed', async () => {
    const sleeps: number[] = [];
    const events: { action: string; attempt: number }[] = [];
    const p = provider({
      backoff: { attempts: 5, baseMs: 100, maxMs: 250, random: () => 1, sleep: async (ms) => void sleeps.push(ms) },
      onThrottled: ({ action, attempt }) => events.push({ action, attempt }),
    });
    fake.throttle(3);
    assert.deepEqual(await p.list(), []);
    assert.deepEqual(sleeps, [100, 200, 250]);
    assert.deepEqual(events.map((e) => `${e.action}#${e.attempt}`), ['DescribeInstances#1', 'DescribeInstances#2', 'DescribeInstances#3']);
    assert.deepEqual(fake.requestsFor('DescribeInstances').map((r) => r.status), [503, 503, 503, 200]);
  });

  test('jitter spreads the delay below the cap', async () => {
    const sleeps: number[] = [];
    const p = provider({ backoff: { attempts: 3, baseMs: 1000, maxMs: 20_000, random: () => 0.25, sleep: async (ms) => void sleeps.push(ms) } });
    fake.throttle(2);
    await p.list();
    assert.deepEqual(sleeps, [250, 500]);
  });

  test('a throttled CreateFleet is retried with the same ClientToken, so EC2 launches once', async () => {
    fake.throttle(2, { action: 'CreateFleet' });
    const result = await provider().launch(2);
    assert.equal(result.instances.length, 2);
    const tokens = fake.requestsFor('CreateFleet').map((r) => r.params.ClientToken);
    assert.equal(tokens.length, 3);
    assert.equal(new Set(tokens).size, 1);
    assert.equal(fake.instances.size, 2);
  });

  test('throttling that does not stop ends in ProviderThrottledError after a bounded number of requests', async () => {
    fake.throttle(1000);
    await assert.rejects(provider({ backoff: { attempts: 3, baseMs: 1, maxMs: 1 } }).list(), (err: unknown) => {
      assert.ok(err instanceof ProviderThrottledError);
      assert.equal(err.code, 'provider_throttled');
      assert.equal(err.action, 'DescribeInstances');
      assert.equal(err.attempts, 3);
      assert.equal((err.cause as Error).name, 'RequestLimitExceeded');
      return true;
    });
    assert.equal(fake.requests.length, 3);
  });

  test('the bound counts the SDK’s own retries: attempts × sdkMaxAttempts requests at most', async () => {
    fake.throttle(1000);
    const p = provider({ sdkMaxAttempts: 2, backoff: { attempts: 2, baseMs: 1, maxMs: 1 } });
    await assert.rejects(p.terminate(['i-0123456789abcdef0']), (err: unknown) => err instanceof ProviderThrottledError && err.attempts === 4);
    assert.equal(fake.requests.length, 4);
  });

  test('other errors are not retried', async () => {
    await assert.rejects(provider({ launchTemplate: '' }).launch(1), { name: 'MissingParameter' });
    assert.equal(fake.requests.length, 1);
  });
});

describe('reconcile and terminate', () => {
  test('a restarted autoscaler lists what the old one launched, across pages, and nothing else', async () => {
    fake.spotCapacity = 7;
    const launched = await provider().launch(12); // 7 spot + 5 On-Demand
    fake.addInstance({ tags: {} }); // someone else's
    fake.addInstance({ tags: { ...OURS, 'vgen:cluster': 'staging' } }); // another cluster
    fake.addInstance({ tags: { ...OURS }, state: 'terminated' }); // ours, gone
    fake.tick();

    const restarted = provider({ pageSize: 5 });
    const listed = await restarted.list();

    assert.deepEqual(listed.map((i) => i.id).sort(), launched.instances.map((i) => i.id).sort());
    const pages = fake.requestsFor('DescribeInstances');
    assert.equal(pages.length, 3);
    assert.equal(pages[0]!.params.MaxResults, '5');
    assert.equal(pages[0]!.params.NextToken, undefined);
    assert.ok(pages[1]!.params.NextToken && pages[2]!.params.NextToken);
    for (const inst of listed) {
      const truth = fake.instances.get(inst.id)!;
      assert.equal(inst.state, 'running');
      assert.equal(inst.lifecycle, truth.lifecycle);
      assert.equal(inst.instanceType, truth.instanceType);
      assert.equal(inst.privateIp, truth.privateIp);
      assert.equal(inst.launchedAt.toISOString(), truth.launchTime.toISOString());
    }
    assert.equal(listed.filter((i) => i.lifecycle === 'on-demand').length, 5);
  });

  test('terminate stops only instances that carry our tags; foreign, other-cluster and unknown ids are refused', async () => {
    const p = provider();
    const [a, b] = (await p.launch(2)).instances;
    const foreign = fake.addInstance({ tags: { Name: 'database' } });
    const otherCluster = fake.addInstance({ tags: { ...OURS, 'vgen:cluster': 'staging' } });
    const handTagged = fake.addInstance({ tags: { 'vgen:cluster': 'prod' } }); // no managed-by tag
    const ids = [a!.id, foreign.id, otherCluster.id, handTagged.id, 'i-0000000000000dead', 'not-an-id'];

    const result = await p.terminate(ids);

    assert.deepEqual(result.terminated, [a!.id]);
    assert.deepEqual(result.refused, [foreign.id, otherCluster.id, handTagged.id, 'i-0000000000000dead', 'not-an-id']);
    const terminateCalls = fake.requestsFor('TerminateInstances');
    assert.equal(terminateCalls.length, 1);
    assert.deepEqual(members(terminateCalls[0]!.params, 'InstanceId').map((m) => m['']), [a!.id]);
    assert.equal(fake.instances.get(a!.id)!.state, 'shutting-down');
    for (const id of [b!.id, foreign.id, otherCluster.id, handTagged.id]) assert.notEqual(fake.instances.get(id)!.state, 'shutting-down');
    // The one we terminated no longer counts as capacity.
    assert.deepEqual((await p.list()).map((i) => `${i.id}:${i.state}`).sort(), [`${a!.id}:stopping`, `${b!.id}:pending`].sort());
  });

  test('terminating again is a no-op that still reports the id as terminated', async () => {
    const p = provider();
    const [a] = (await p.launch(1)).instances;
    await p.terminate([a!.id]);
    fake.tick();
    assert.deepEqual(await p.terminate([a!.id, a!.id]), { terminated: [a!.id], refused: [] });
    assert.equal(fake.requestsFor('TerminateInstances').length, 1);
    assert.deepEqual(await p.list(), []);
  });
});

describe('configuration', () => {
  const env = {
    EC2_LAUNCH_TEMPLATE: 'vgen-worker',
    EC2_INSTANCE_TYPES: 'c7i.xlarge, c6i.xlarge,c7i.xlarge',
    EC2_SUBNETS: 'subnet-0a1,subnet-0b2',
  };

  test('EC2_* variables become provider options with documented defaults', () => {
    assert.deepEqual(ec2OptionsFromEnv({ ...env, AWS_REGION: 'eu-west-1', EC2_TAGS: 'team=video, env=prod' }), {
      region: 'eu-west-1',
      endpoint: undefined,
      cluster: 'vgen',
      launchTemplate: 'vgen-worker',
      launchTemplateVersion: '$Default',
      instanceTypes: ['c7i.xlarge', 'c6i.xlarge'],
      subnets: ['subnet-0a1', 'subnet-0b2'],
      onDemandFallback: true,
      tags: { team: 'video', env: 'prod' },
      prices: { spot: {}, onDemand: {} },
    });
  });

  const bad: [Record<string, string>, string][] = [
    [{ EC2_LAUNCH_TEMPLATE: '' }, 'EC2_LAUNCH_TEMPLATE'],
    [{ EC2_SUBNETS: '' }, 'EC2_SUBNETS'],
    [{ EC2_SUBNETS: 'us-east-1a' }, 'EC2_SUBNETS'],
    [{ EC2_INSTANCE_TYPES: 'big' }, 'EC2_INSTANCE_TYPES'],
    [{ EC2_LAUNCH_TEMPLATE_VERSION: 'latest' }, 'EC2_LAUNCH_TEMPLATE_VERSION'],
    [{ EC2_CLUSTER: 'prod cluster' }, 'EC2_CLUSTER'],
    [{ EC2_TAGS: 'vgen:cluster=x' }, 'EC2_TAGS'],
    [{ EC2_ON_DEMAND_FALLBACK: 'maybe' }, 'EC2_ON_DEMAND_FALLBACK'],
    [{ EC2_ENDPOINT: 'ftp://x' }, 'EC2_ENDPOINT'],
  ];
  for (const [change, variable] of bad) {
    test(`${JSON.stringify(change)} → ${variable}`, () => {
      assert.throws(() => ec2OptionsFromEnv({ ...env, ...change }), (err: unknown) => err instanceof ConfigError && err.variable === variable);
    });
  }
});

test('the worker user data is valid bash that starts `vgen worker` with the given settings', () => {
  const script = renderWorkerUserData({ REDIS_URL: 'rediss://redis.internal:6379', S3_BUCKET: 'media', CDN_BASE_URL: 'https://cdn.example.com/"$x`' });
  assert.ok(script.startsWith('#!/bin/bash\n'));
  assert.match(script, /^ExecStart=\/usr\/local\/bin\/vgen worker$/m);
  assert.match(script, /^CDN_BASE_URL="https:\/\/cdn\.example\.com\/\\"\\\$x\\`"$/m);
  const check = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  assert.throws(() => renderWorkerUserData({ BAD: 'two\nlines' }));
});
