// The few panel shapes the vgen dashboards use, so each dashboard file reads as
// a list of questions and their PromQL. Every query names its datasource by the
// `${datasource}` variable: the provisioned Prometheus (uid vgen-prometheus in
// docker-compose) is the default, and an imported copy picks its own.
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** The datasource variable every vgen dashboard starts with. */
export const datasourceVariable = () =>
  new dashboard.DatasourceVariableBuilder('datasource').label('Prometheus').type('prometheus');

export interface Query {
  expr: string;
  legend?: string;
}

const target = (q: Query, i: number) =>
  new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .refId(String.fromCharCode(65 + i))
    .expr(q.expr)
    .legendFormat(q.legend ?? '__auto');

export interface PanelOpts {
  title: string;
  description: string;
  unit?: string;
  width?: number;
  height?: number;
  /** Absolute thresholds: [value, color] after the base green. */
  thresholds?: [number, string][];
  stack?: boolean;
  min?: number;
}

const thresholdSteps = (t: [number, string][] = []) =>
  new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps([{ value: null, color: 'green' }, ...t.map(([value, color]) => ({ value, color }))]);

/** A time series: how something moved over the dashboard's range. */
export function graph(o: PanelOpts, ...queries: Query[]) {
  const p = new timeseries.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .span(o.width ?? 12)
    .height(o.height ?? 8)
    .unit(o.unit ?? 'short')
    .thresholds(thresholdSteps(o.thresholds))
    .legend(new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom).calcs([]));
  if (o.min !== undefined) p.min(o.min);
  if (o.thresholds?.length) p.thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Line));
  if (o.stack) p.stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal)).fillOpacity(30);
  queries.forEach((q, i) => p.withTarget(target(q, i)));
  return p;
}

/** A single number: where something stands now. */
export function single(o: PanelOpts, ...queries: Query[]) {
  const p = new stat.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .span(o.width ?? 6)
    .height(o.height ?? 4)
    .unit(o.unit ?? 'short')
    .thresholds(thresholdSteps(o.thresholds))
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']));
  queries.forEach((q, i) => p.withTarget(target(q, i).instant()));
  return p;
}

export const row = (title: string) => new dashboard.RowBuilder(title);

/** A dashboard with vgen's common settings. */
export function board(uid: string, title: string, description: string) {
  return new dashboard.DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['vgen'])
    .editable()
    .refresh('30s')
    .time({ from: 'now-6h', to: 'now' })
    .timezone('browser')
    .withVariable(datasourceVariable());
}
