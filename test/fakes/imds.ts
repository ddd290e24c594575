// A protocol-level fake of the EC2 instance metadata service, IMDSv2 only:
// PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1–21600)
// returns a session token; every GET must carry it in X-aws-ec2-metadata-token
// (401 without it, or with an unknown or expired one, as the real service does
// when IMDSv1 is disabled). It serves the spot interruption notice and the
// rebalance recommendation (404 until set) and records every request.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ImdsRequest {
  method: string;
  path: string;
  status: number;
}

export class FakeImds {
  /** Set to serve /latest/meta-data/spot/instance-action. */
  instanceAction?: { action: 'terminate' | 'stop' | 'hibernate'; time: string };
  /** Set to serve /latest/meta-data/events/recommendations/rebalance. */
  rebalance?: { noticeTime: string };
  readonly requests: ImdsRequest[] = [];
  private readonly tokens = new Map<string, number>(); // token → expiry (ms epoch)
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const answer = (status: number, body = '', type = 'text/plain') => {
        this.requests.push({ method: req.method ?? '', path, status });
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
      };
      if (path === '/latest/api/token') {
        if (req.method !== 'PUT') return answer(405);
        const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return answer(400);
        const token = randomBytes(24).toString('base64url');
        this.tokens.set(token, Date.now() + ttl * 1000);
        return answer(200, token);
      }
      if (req.method !== 'GET') return answer(405);
      const token = String(req.headers['x-aws-ec2-metadata-token'] ?? '');
      if ((this.tokens.get(token) ?? 0) < Date.now()) return answer(401);
      if (path === '/latest/meta-data/spot/instance-action')
        return this.instanceAction ? answer(200, JSON.stringify(this.instanceAction), 'application/json') : answer(404);
      if (path === '/latest/meta-data/events/recommendations/rebalance')
        return this.rebalance ? answer(200, JSON.stringify(this.rebalance), 'application/json') : answer(404);
      return answer(404);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Expire every token (the client must fetch a new one). */
  expireTokens() {
    this.tokens.clear();
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
