// Types a Grafana dashboard JSON file against @grafana/schema, as strictly as the schema allows.
//
// `Dashboard` alone types panel `options` as `Record<string, unknown>` and panel `targets` as
// `Record<string, unknown>[]`, so a wrong legend mode or a query without `expr` would pass. Here each
// panel type gets its own options and field-config types from the schema's panel packages, and
// every query is a Prometheus query on the provisioned datasource. A panel type missing from
// `TypedPanel` is an error: add it below (with its `*PanelCfg_types.gen` import) when the
// dashboard starts using it.
import type {
  Dashboard,
  DataQuery,
  DataSourceRef,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
} from '@grafana/schema';
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type {
  FieldConfig as TableFieldConfig,
  Options as TableOptions,
} from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type {
  FieldConfig as StateTimelineFieldConfig,
  Options as StateTimelineOptions,
} from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type { Options as TextOptions } from '@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen';

/**
 * A schema type as JSON spells it. The schema declares string enums (`ThresholdsMode.Absolute`),
 * which a JSON string literal never satisfies; Grafana stores their values (`"absolute"`), so
 * each string enum becomes the union of its values. Everything else is kept, including which
 * keys are required and which are unknown.
 */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/** A Prometheus query of the dashboard: it must name the provisioned datasource and have an expr. */
export type PromQuery = Json<Omit<DataQuery, 'datasource'>> & {
  refId: string;
  datasource: PromDatasource;
  expr: string;
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  editorMode?: 'code' | 'builder';
  interval?: string;
  intervalFactor?: number;
  exemplar?: boolean;
};

/** The datasource of grafana/provisioning/datasources/prometheus.yml. */
export type PromDatasource = Json<DataSourceRef> & { type: 'prometheus'; uid: 'prometheus' };

type FieldConfigOf<TCustom> = Omit<Json<FieldConfigSource>, 'defaults'> & {
  defaults: Omit<Json<FieldConfig>, 'custom'> & { custom?: Json<TCustom> };
};

/** A panel of type `TType` with that type's options and custom field config. */
type PanelOf<TType extends string, TOptions, TCustom = Record<string, never>> = Omit<
  Json<Panel>,
  'type' | 'options' | 'fieldConfig' | 'targets' | 'datasource'
> & {
  type: TType;
  datasource?: PromDatasource;
  options: Json<TOptions>;
  fieldConfig: FieldConfigOf<TCustom>;
  targets: PromQuery[];
};

export type TypedPanel =
  | PanelOf<'timeseries', TimeSeriesOptions, TimeSeriesFieldConfig>
  | PanelOf<'stat', StatOptions>
  | PanelOf<'table', TableOptions, TableFieldConfig>
  | PanelOf<'state-timeline', StateTimelineOptions, StateTimelineFieldConfig>
  | (Omit<PanelOf<'text', TextOptions>, 'targets'> & { targets?: PromQuery[] });

export type TypedRow = Omit<Json<RowPanel>, 'panels'> & { panels: TypedPanel[] };

/** The whole dashboard: the schema's `Dashboard`, with typed panels. */
export type StrictDashboard = Omit<Json<Dashboard>, 'panels'> & {
  uid: string;
  title: string;
  panels: Array<TypedPanel | TypedRow>;
};
