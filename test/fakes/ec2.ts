// A protocol-level fake of the EC2 Query API, so tests drive the real
// @aws-sdk/client-ec2 through a custom endpoint. It speaks what the SDK sends
// (form-encoded POSTs: Action=…&Version=2016-11-15&Flattened.1.Names=…) and
// answers EC2's XML, element names as in the SDK's schemas (fleetInstanceSet,
// errorSet, reservationSet/instancesSet, instanceState, tagSet, nextToken).
// It keeps instances with their tags, so a second client sees what a first one
// launched, records every request, and fails on cue: a spot market with limited
// capacity (CreateFleet's errorSet) and throttling (HTTP 503 RequestLimitExceeded).
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Params = Record<string, string>;
type State = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

export interface FakeInstance {
  id: string;
  instanceType: string;
  subnetId: string;
  lifecycle: 'spot' | 'on-demand';
  state: State;
  tags: Record<string, string>;
  launchTime: Date;
  privateIp: string;
  reservationId: string;
}

export interface RecordedRequest {
  action: string;
  params: Params;
  /** The HTTP status the fake answered. */
  status: number;
}

const XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const STATE_CODES: Record<State, number> = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80 };

class Ec2Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class FakeEc2 {
  readonly instances = new Map<string, FakeInstance>();
  readonly requests: RecordedRequest[] = [];
  /** Spot instances the market can still supply; CreateFleet reports the rest in its errorSet. */
  spotCapacity = Infinity;
  onDemandCapacity = Infinity;
  spotShortageCode = 'InsufficientInstanceCapacity';
  /** Page size when DescribeInstances has no MaxResults. */
  defaultPageSize = 1000;
  private throttles: { action?: string; code: string }[] = [];
  private readonly fleets = new Map<string, string>(); // ClientToken → response XML
  private server!: Server;
  url = '';

  static async start(): Promise<FakeEc2> {
    const fake = new FakeEc2();
    fake.server = createServer((req, res) => void fake.handle(req, res));
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The next `n` requests (of `action`, when given) answer 503 with `code`. */
  throttle(n: number, opts: { action?: string; code?: string } = {}): void {
    for (let i = 0; i < n; i++) this.throttles.push({ action: opts.action, code: opts.code ?? 'RequestLimitExceeded' });
  }

  stopThrottling(): void {
    this.throttles = [];
  }

  /** An instance someone else launched (or one of ours, given our tags). */
  addInstance(partial: Partial<FakeInstance> = {}): FakeInstance {
    const inst: FakeInstance = {
      id: newId('i'),
      instanceType: 'c5.xlarge',
      subnetId: 'subnet-0aaa',
      lifecycle: 'on-demand',
      state: 'running',
      tags: {},
      launchTime: new Date(),
      privateIp: `10.0.${(this.instances.size >> 8) & 255}.${this.instances.size & 255}`,
      reservationId: newId('r'),
      ...partial,
    };
    this.instances.set(inst.id, inst);
    return inst;
  }

  /** Time passes: booting instances run, shutting-down ones are gone. */
  tick(): void {
    for (const inst of this.instances.values()) {
      if (inst.state === 'pending') inst.state = 'running';
      else if (inst.state === 'shutting-down') inst.state = 'terminated';
    }
  }

  requestsFor(action: string): RecordedRequest[] {
    return this.requests.filter((r) => r.action === action);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    const action = params.Action ?? '';
    let status = 200;
    let body: string;
    try {
      if (req.method !== 'POST') throw new Ec2Error(400, 'InvalidAction', 'EC2 Query requests are POSTs here');
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) throw new Ec2Error(401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
      if (params.Version !== '2016-11-15') throw new Ec2Error(400, 'InvalidParameterValue', `Unsupported Version: ${params.Version}`);
      const throttled = this.throttles.findIndex((t) => t.action === undefined || t.action === action);
      if (throttled >= 0) {
        const [t] = this.throttles.splice(throttled, 1);
        throw new Ec2Error(503, t!.code, 'Request limit exceeded.');
      }
      if (action === 'CreateFleet') body = this.createFleet(params);
      else if (action === 'DescribeInstances') body = this.describeInstances(params);
      else if (action === 'TerminateInstances') body = this.terminateInstances(params);
      else throw new Ec2Error(400, 'InvalidAction', `The action ${action} is not valid for this web service.`);
    } catch (err) {
      const e = err instanceof Ec2Error ? err : new Ec2Error(500, 'InternalError', String(err));
      status = e.status;
      body = `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(e.code)}</Code><Message>${esc(e.message)}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>`;
    }
    this.requests.push({ action, params, status });
    res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
    res.end(body);
  }

  private createFleet(p: Params): string {
    const token = p.ClientToken;
    if (token && this.fleets.has(token)) return this.fleets.get(token)!; // idempotent: no second launch
    if (p.Type !== 'instant') throw new Ec2Error(400, 'InvalidParameterValue', 'this fake only runs fleets of type instant');
    const total = Number(p['TargetCapacitySpecification.TotalTargetCapacity']);
    if (!Number.isInteger(total) || total < 1) throw new Ec2Error(400, 'MissingParameter', 'TargetCapacitySpecification.TotalTargetCapacity is required');
    const kind = p['TargetCapacitySpecification.DefaultTargetCapacityType'];
    if (kind !== 'spot' && kind !== 'on-demand') throw new Ec2Error(400, 'InvalidParameterValue', `DefaultTargetCapacityType: ${kind}`);
    const configs = members(p, 'LaunchTemplateConfigs');
    const template = subtree(configs[0] ?? {}, 'LaunchTemplateSpecification');
    if (!template.LaunchTemplateId && !template.LaunchTemplateName) throw new Ec2Error(400, 'MissingParameter', 'a launch template id or name is required');
    const overrides = members(configs[0] ?? {}, 'Overrides');
    if (overrides.length === 0) overrides.push({ InstanceType: 'c5.xlarge', SubnetId: 'subnet-0aaa' });
    const tagSpecs = members(p, 'TagSpecification');
    for (const spec of tagSpecs)
      if (spec.ResourceType !== 'instance' && spec.ResourceType !== 'fleet')
        throw new Ec2Error(400, 'InvalidParameterValue', `The value '${spec.ResourceType}' is not valid for ResourceType with an instant fleet: use instance or fleet`);
    const instanceTags = Object.fromEntries(
      tagSpecs.filter((s) => s.ResourceType === 'instance').flatMap((s) => members(s, 'Tag').map((t) => [t.Key!, t.Value ?? ''])),
    );

    const capacity = kind === 'spot' ? this.spotCapacity : this.onDemandCapacity;
    const n = Math.max(0, Math.min(total, capacity));
    if (kind === 'spot') this.spotCapacity -= n;
    else this.onDemandCapacity -= n;
    // Spread over the overrides in turn; real allocation picks pools by price and capacity.
    const reservationId = newId('r');
    const launched = new Map<number, string[]>();
    for (let i = 0; i < n; i++) {
      const o = overrides[i % overrides.length]!;
      const inst = this.addInstance({
        instanceType: o.InstanceType ?? 'c5.xlarge',
        subnetId: o.SubnetId ?? 'subnet-0aaa',
        lifecycle: kind,
        state: 'pending',
        tags: { ...instanceTags },
        reservationId,
      });
      launched.set(i % overrides.length, [...(launched.get(i % overrides.length) ?? []), inst.id]);
    }
    const ltao = (o: Params) =>
      x('launchTemplateAndOverrides', [
        x('launchTemplateSpecification', [
          template.LaunchTemplateId ? x('launchTemplateId', template.LaunchTemplateId) : x('launchTemplateName', template.LaunchTemplateName!),
          x('version', template.Version ?? '$Default'),
        ]),
        x('overrides', [x('instanceType', o.InstanceType ?? ''), x('subnetId', o.SubnetId ?? '')]),
      ]);
    const instanceItems = [...launched].map(([i, ids]) =>
      x('item', [ltao(overrides[i]!), x('lifecycle', kind), x('instanceIds', ids.map((id) => x('item', id))), x('instanceType', overrides[i]!.InstanceType ?? '')]),
    );
    const errorItems =
      n < total
        ? overrides.map((o) =>
            x('item', [
              ltao(o),
              x('lifecycle', kind),
              x('errorCode', kind === 'spot' ? this.spotShortageCode : 'InsufficientInstanceCapacity'),
              x('errorMessage', `We currently do not have sufficient ${o.InstanceType} capacity in the Availability Zone you requested.`),
            ]),
          )
        : [];
    const xml = response('CreateFleet', [x('fleetId', `fleet-${randomUUID()}`), x('errorSet', errorItems), x('fleetInstanceSet', instanceItems)]);
    if (token) this.fleets.set(token, xml);
    return xml;
  }

  private describeInstances(p: Params): string {
    const ids = members(p, 'InstanceId').map((m) => m['']!);
    const filters = members(p, 'Filter').map((f) => ({ name: f.Name!, values: members(f, 'Value').map((v) => v['']!) }));
    const maxResults = p.MaxResults === undefined ? undefined : Number(p.MaxResults);
    if (maxResults !== undefined && ids.length > 0) throw new Ec2Error(400, 'InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
    if (maxResults !== undefined && !(maxResults >= 5 && maxResults <= 1000)) throw new Ec2Error(400, 'InvalidParameterValue', `MaxResults must be between 5 and 1000, got ${p.MaxResults}`);
    const unknown = ids.find((id) => !this.instances.has(id));
    if (unknown) throw new Ec2Error(400, 'InvalidInstanceID.NotFound', `The instance ID '${unknown}' does not exist`);

    const matching = [...this.instances.values()].filter(
      (inst) => (ids.length === 0 || ids.includes(inst.id)) && filters.every((f) => matches(inst, f.name, f.values)),
    );
    const start = p.NextToken ? Number(Buffer.from(p.NextToken, 'base64url').toString()) : 0;
    if (!Number.isInteger(start)) throw new Ec2Error(400, 'InvalidParameterValue', 'Invalid NextToken');
    const size = maxResults ?? this.defaultPageSize;
    const page = matching.slice(start, start + size);
    const next = start + size < matching.length ? Buffer.from(String(start + size)).toString('base64url') : undefined;
    // Instances launched together share a reservation, as on EC2.
    const reservations = new Map<string, FakeInstance[]>();
    for (const inst of page) reservations.set(inst.reservationId, [...(reservations.get(inst.reservationId) ?? []), inst]);
    return response('DescribeInstances', [
      x(
        'reservationSet',
        [...reservations].map(([rid, insts]) =>
          x('item', [x('reservationId', rid), x('ownerId', '123456789012'), x('groupSet', []), x('instancesSet', insts.map(instanceXml))]),
        ),
      ),
      next ? x('nextToken', next) : '',
    ]);
  }

  private terminateInstances(p: Params): string {
    const ids = members(p, 'InstanceId').map((m) => m['']!);
    if (ids.length === 0) throw new Ec2Error(400, 'MissingParameter', 'The request must contain the parameter InstanceId');
    const unknown = ids.find((id) => !this.instances.has(id));
    if (unknown) throw new Ec2Error(400, 'InvalidInstanceID.NotFound', `The instance ID '${unknown}' does not exist`);
    const changes = ids.map((id) => {
      const inst = this.instances.get(id)!;
      const previous = inst.state;
      if (previous !== 'terminated') inst.state = 'shutting-down';
      return x('item', [x('instanceId', id), stateXml('currentState', inst.state), stateXml('previousState', previous)]);
    });
    return response('TerminateInstances', [x('instancesSet', changes)]);
  }
}

function matches(inst: FakeInstance, name: string, values: string[]): boolean {
  if (name.startsWith('tag:')) {
    const v = inst.tags[name.slice(4)];
    return v !== undefined && values.includes(v);
  }
  if (name === 'tag-key') return values.some((k) => k in inst.tags);
  if (name === 'instance-state-name') return values.includes(inst.state);
  if (name === 'instance-id') return values.includes(inst.id);
  if (name === 'instance-lifecycle') return values.includes(inst.lifecycle === 'spot' ? 'spot' : '');
  throw new Ec2Error(400, 'InvalidParameterValue', `The filter '${name}' is invalid`);
}

function instanceXml(inst: FakeInstance): string {
  return x('item', [
    x('instanceId', inst.id),
    x('imageId', 'ami-0123456789abcdef0'),
    stateXml('instanceState', inst.state),
    x('privateIpAddress', inst.privateIp),
    x('instanceType', inst.instanceType),
    x('launchTime', inst.launchTime.toISOString()),
    x('subnetId', inst.subnetId),
    // EC2 leaves instanceLifecycle out for On-Demand instances.
    inst.lifecycle === 'spot' ? x('instanceLifecycle', 'spot') : '',
    x('tagSet', Object.entries(inst.tags).map(([k, v]) => x('item', [x('key', k), x('value', v)]))),
  ]);
}

function stateXml(tag: string, state: State): string {
  return x(tag, [x('code', String(STATE_CODES[state])), x('name', state)]);
}

function response(action: string, children: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${XMLNS}">${x('requestId', randomUUID())}${children.join('')}</${action}Response>`;
}

/** An element: text content is escaped, child elements (an array) are not. */
function x(tag: string, content: string | string[]): string {
  return `<${tag}>${Array.isArray(content) ? content.join('') : esc(content)}</${tag}>`;
}

function esc(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The members of a flattened Query list: members(p, 'Filter') turns
 * Filter.1.Name=a, Filter.1.Value.1=b into [{ Name: 'a', 'Value.1': 'b' }];
 * a list of scalars (InstanceId.1=i-…) gives [{ '': 'i-…' }].
 */
export function members(p: Params, prefix: string): Params[] {
  const out = new Map<number, Params>();
  for (const [key, value] of Object.entries(p)) {
    if (!key.startsWith(`${prefix}.`)) continue;
    const m = /^(\d+)(?:\.(.*))?$/.exec(key.slice(prefix.length + 1));
    if (!m) continue;
    const item = out.get(Number(m[1])) ?? {};
    item[m[2] ?? ''] = value;
    out.set(Number(m[1]), item);
  }
  return [...out.entries()].sort(([a], [b]) => a - b).map(([, v]) => v);
}

/** The keys under `prefix.` of a flattened structure: subtree(p, 'SpotOptions') → { AllocationStrategy: … }. */
export function subtree(p: Params, prefix: string): Params {
  return Object.fromEntries(Object.entries(p).filter(([k]) => k.startsWith(`${prefix}.`)).map(([k, v]) => [k.slice(prefix.length + 1), v]));
}

function newId(prefix: 'i' | 'r'): string {
  return `${prefix}-${randomBytes(9).toString('hex').slice(0, 17)}`;
}
