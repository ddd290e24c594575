// The autoscaler's metrics: what it wants, what it sees, why, and whether this
// replica is the one acting. Its own registry (the role may run alone), with
// the provider as a default label; the reason label takes the policy's few values.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { SCALING_REASONS } from './policy.js';

export function createAutoscalerMetrics(provider: string, opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  registry.setDefaultLabels({ role: 'autoscaler', provider });
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'vgen_' });
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  const m = {
    registry,
    desired: gauge('vgen_autoscaler_desired_workers', 'Workers the policy wants, booting included.'),
    running: gauge('vgen_autoscaler_running_workers', 'Registered workers that are idle or busy.'),
    busy: gauge('vgen_autoscaler_busy_workers', 'Registered workers rendering a job.'),
    booting: gauge('vgen_autoscaler_booting_workers', 'Workers launched by the provider and not registered yet.'),
    draining: gauge('vgen_autoscaler_draining_workers', 'Workers told to drain that have not exited yet.'),
    leader: gauge('vgen_autoscaler_leader', '1 while this replica holds the leader lease and acts, else 0.'),
    decisions: new Counter({
      name: 'vgen_autoscaler_decisions_total',
      help: 'Scaling decisions, by the reason the policy gave.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    launched: new Counter({ name: 'vgen_autoscaler_launched_workers_total', help: 'Workers the provider started.', registers: [registry] }),
    launchShortfall: new Counter({ name: 'vgen_autoscaler_launch_shortfall_total', help: 'Workers asked for that the provider could not start.', registers: [registry] }),
    drains: new Counter({ name: 'vgen_autoscaler_drain_requests_total', help: 'Idle workers told to drain to scale in.', registers: [registry] }),
    terminated: new Counter({
      name: 'vgen_autoscaler_terminated_workers_total',
      help: 'Workers the provider stopped after they left the registry, by why.',
      labelNames: ['why'] as const,
      registers: [registry],
    }),
    errors: new Counter({ name: 'vgen_autoscaler_tick_errors_total', help: 'Observe-decide-act rounds that failed (Redis or provider errors).', registers: [registry] }),
    fleetCost: gauge('vgen_fleet_cost_per_hour_dollars', "Estimated cost of the provider's running and booting workers, in dollars an hour, from the provider's prices (0 for local workers)."),
    spotInterruptions: new Counter({
      name: 'vgen_autoscaler_spot_interruptions_total',
      help: 'Spot notices seen among registered workers, by kind (termination, rebalance); each worker counted once per kind.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
  };
  // Every reason and why appears from the start, at 0, so rate() and alerts see them.
  for (const reason of SCALING_REASONS) m.decisions.inc({ reason }, 0);
  for (const why of ['drained', 'lost', 'boot_timeout'] as const) m.terminated.inc({ why }, 0);
  for (const kind of ['termination', 'rebalance'] as const) m.spotInterruptions.inc({ kind }, 0);
  m.leader.set(0);
  m.fleetCost.set(0);
  return m;
}

export type AutoscalerMetrics = ReturnType<typeof createAutoscalerMetrics>;
