/**
 * The "Add to workflow" dialog's state, free of DOM: the form made from a notebook's parameters, the draft
 * it sends, and the service's refusal placed at its field. The rules themselves are the server's: the form
 * only knows which fields each choice shows.
 */

export type When = 'execution' | 'event' | 'after' | 'cron' | 'interval' | 'streaming';

export const WHEN_LABELS: ReadonlyArray<[When, string]> = [
  ['execution', 'with its execution'],
  ['event', 'on an event'],
  ['after', 'after other tasks'],
  ['cron', 'on a cron schedule'],
  ['interval', 'on an interval'],
  ['streaming', 'as a streaming task']
];

/** The fields each choice of "when it runs" shows. */
export const WHEN_FIELDS: Record<When, readonly string[]> = {
  execution: [],
  event: ['event_key', 'event_namespace', 'event_value'],
  after: ['after', 'after_status'],
  cron: ['cron', 'timezone'],
  interval: ['interval'],
  streaming: []
};

/** A parameter of the notebook's parameters cell, as the server reads it. */
export interface IParameter {
  name: string;
  type: string;
  default: string;
  help: string;
}

export interface INotebookInfo {
  kernel: string;
  language: string;
  parameters: IParameter[];
}

export interface IAuthorForm {
  path: string;
  existing: boolean;
  workflow: string;
  namespace: string;
  task: string;
  /** Each parameter's value as the literal the user sees (the default until edited). */
  values: Record<string, string>;
  when: When;
  event_key: string;
  event_namespace: string;
  event_value: string;
  after: string[];
  after_status: string;
  cron: string;
  timezone: string;
  interval: string;
  max_retries: string;
  retry_delay: string;
  timeout: string;
  executor: string;
  /** Start an execution once submitted (so event rules and schedules have one to act in). */
  start: boolean;
}

/** A task name from a notebook's file name: its stem, with what a name may not hold made '_'. */
export function taskNameFrom(path: string): string {
  const file = path.split('/').pop() ?? '';
  const stem = file.replace(/\.ipynb$/i, '');
  const name = stem.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '');
  return name.slice(0, 128) || 'task';
}

/** The form for a notebook at ``path``: a new workflow named after it, running with its execution. */
export function initialForm(path: string, timezone = 'UTC'): IAuthorForm {
  const task = taskNameFrom(path);
  return {
    path,
    existing: false,
    workflow: task,
    namespace: 'default',
    task,
    values: {},
    when: 'execution',
    event_key: '',
    event_namespace: '',
    event_value: '',
    after: [],
    after_status: 'SUCCESS',
    cron: '',
    timezone,
    interval: '',
    max_retries: '0',
    retry_delay: '0',
    timeout: '',
    executor: '',
    start: true
  };
}

/** The form with the notebook's parameters at their defaults (values already edited stay). */
export function withParameters(form: IAuthorForm, params: readonly IParameter[]): IAuthorForm {
  const values: Record<string, string> = {};
  for (const p of params) {
    values[p.name] = form.values[p.name] ?? p.default;
  }
  return { ...form, values };
}

/** What the server receives: the form's choices, only the fields the chosen "when" uses. */
export function toDraft(form: IAuthorForm): Record<string, unknown> {
  const draft: Record<string, unknown> = {
    path: form.path,
    existing: form.existing,
    workflow: form.workflow.trim(),
    namespace: form.namespace.trim() || 'default',
    task: form.task.trim(),
    parameters: { ...form.values },
    when: form.when,
    max_retries: form.max_retries,
    retry_delay: form.retry_delay,
    timeout: form.timeout,
    executor: form.executor
  };
  for (const field of WHEN_FIELDS[form.when]) {
    draft[field] = form[field as keyof IAuthorForm];
  }
  return draft;
}

/** Where an error goes: its field when the form shows it, else the form's own line. */
export function errorPlace(field: string | undefined, form: IAuthorForm): string {
  if (!field) {
    return 'form';
  }
  if (field.startsWith('param:')) {
    return field.slice(6) in form.values ? field : 'parameters';
  }
  const always = ['workflow', 'namespace', 'task', 'notebook', 'parameters', 'when'];
  const common = ['max_retries', 'retry_delay', 'timeout', 'executor'];
  if (always.includes(field) || common.includes(field) || WHEN_FIELDS[form.when].includes(field)) {
    return field;
  }
  return 'form';
}

/** The time zones the picker offers (the browser's list, UTC first). */
export function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  const zones = intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  return ['UTC', ...zones.filter(z => z !== 'UTC')];
}

/** The browser's own time zone, the picker's default. */
export function localZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}
