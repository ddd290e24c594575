// Queue & Fleet: where the backlog sits and whether the fleet keeps up with it.
// Depth by lane (operator vs users) and state, the oldest wait against the SLO,
// throughput, desired vs running workers, spot interruptions and what it costs.
import { OLDEST_WAITING_SLO_SECONDS } from './alerts.js';
import { board, graph, row, single } from './panels.js';
import { RATE, leader } from './promql.js';

export const queueFleet = () =>
  board('vgen-queue-fleet', 'vgen / Queue & Fleet', 'Queue depth by lane and state, wait times, throughput, the worker fleet and its cost.')
    .withRow(row('Queue'))
    .withPanel(graph({ title: 'Waiting by lane', description: 'Jobs waiting for a worker: the operator lane (priority 1) and users (priority 2 and up).', stack: true },
      { expr: 'sum by (lane) (vgen_queue_jobs{state="waiting"})', legend: '{{lane}}' }))
    .withPanel(graph({ title: 'Jobs by state', description: 'waiting, active, delayed (backing off before a retry); completed and failed are those Redis still keeps.' },
      { expr: 'sum by (state) (vgen_queue_jobs)', legend: '{{state}}' }))
    .withPanel(graph({ title: 'Oldest waiting job', description: `Age of the oldest job waiting for a worker. The VgenQueueWaitOverSLO alert fires above ${OLDEST_WAITING_SLO_SECONDS} s.`, unit: 's', thresholds: [[OLDEST_WAITING_SLO_SECONDS, 'red']] },
      { expr: 'max(vgen_queue_oldest_waiting_seconds)', legend: 'oldest' }))
    .withPanel(graph({ title: 'Throughput', description: 'Jobs completed and failed (final attempt) per second.', unit: 'ops' },
      { expr: `sum(rate(vgen_queue_completed_total[${RATE}]))`, legend: 'completed' },
      { expr: `sum(rate(vgen_queue_failed_total[${RATE}]))`, legend: 'failed' }))
    .withRow(row('Fleet'))
    .withPanel(graph({ title: 'Desired vs running workers', description: "The autoscaler leader's view: desired, running (idle or busy), busy, booting, draining.", min: 0 },
      { expr: leader('vgen_autoscaler_desired_workers'), legend: 'desired' },
      { expr: leader('vgen_autoscaler_running_workers'), legend: 'running' },
      { expr: leader('vgen_autoscaler_busy_workers'), legend: 'busy' },
      { expr: leader('vgen_autoscaler_booting_workers'), legend: 'booting' },
      { expr: leader('vgen_autoscaler_draining_workers'), legend: 'draining' }))
    .withPanel(graph({ title: 'Scaling decisions', description: 'Autoscaler rounds by the reason the policy gave.', stack: true },
      { expr: `sum by (reason) (increase(vgen_autoscaler_decisions_total[${RATE}]))`, legend: '{{reason}}' }))
    .withPanel(graph({ title: 'Spot interruptions', description: 'Notices workers received (termination, rebalance) and interruptions the autoscaler saw among its workers.' },
      { expr: `sum by (kind) (increase(vgen_spot_interruptions_total[${RATE}]))`, legend: 'worker: {{kind}}' },
      { expr: `sum(increase(vgen_autoscaler_spot_interruptions_total[${RATE}]))`, legend: 'autoscaler' }))
    .withPanel(graph({ title: 'Workers lost', description: 'Workers that left the registry without draining (heartbeats stopped), and boots that never registered.' },
      { expr: `sum by (why) (increase(vgen_autoscaler_terminated_workers_total[${RATE}]))`, legend: '{{why}}' }))
    .withPanel(single({ title: 'Fleet cost', description: "The running fleet at the provider's prices (0 for local workers).", unit: 'currencyUSD', width: 12 },
      { expr: leader('vgen_fleet_cost_per_hour_dollars'), legend: '$/hour' }))
    .withPanel(single({ title: 'Autoscaler leader', description: 'Replicas holding the leader lease: exactly 1 when healthy.', width: 12, thresholds: [[0, 'red'], [1, 'green'], [2, 'red']] },
      { expr: 'sum(vgen_autoscaler_leader)' }));
