// A bare /metrics listener for the roles without an HTTP API (workers, the
// autoscaler). Port 0 takes a free port; the URL it returns is the one other
// processes and Prometheus use (the advertised host and the bound port), so it
// is what goes into the registries GET /v1/ops/prometheus-targets reads.
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  /** `http://<advertised host>:<bound port>/metrics`. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function serveMetrics(registry: Registry, opts: { host: string; port: number; advertiseHost: string }): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.statusCode = 404;
      return void res.end();
    }
    registry.metrics().then((text) => {
      res.setHeader('content-type', registry.contentType);
      res.end(req.method === 'HEAD' ? undefined : text);
    }, () => {
      res.statusCode = 500;
      res.end();
    });
  });
  // Scrapers keep connections open; they must not hold close() up.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return {
    url: `http://${opts.advertiseHost}:${port}/metrics`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
