/**
 * The state of the workflow view's two small forms, free of DOM: "Run with parameters" (an execution, or
 * one task of a running one) and "Change rule" (a task's "when it runs"). The server reads the tasks'
 * parameters and checks every value; the forms only hold what the user typed and say where an error goes.
 */

import { When, WHEN_FIELDS } from './author';

/** A parameter the workflow's tasks declare, as the server reads it (its default as a Python literal). */
export interface IRunParameter {
  name: string;
  type: string;
  default: string;
  tasks: string[];
}

export interface IRunForm {
  namespace: string;
  name: string;
  /** With ``task``: start that task in this running execution; else start a new execution. */
  execution: number | null;
  task: string | null;
  values: Record<string, string>;
}

export function initialRunForm(
  namespace: string,
  name: string,
  params: readonly IRunParameter[],
  execution: number | null = null,
  task: string | null = null
): IRunForm {
  const values: Record<string, string> = {};
  for (const p of params) {
    values[p.name] = p.default;
  }
  return { namespace, name, execution, task, values };
}

/** The names whose value differs from its default: the overrides this run gets. */
export function changedNames(form: IRunForm, params: readonly IRunParameter[]): string[] {
  return params.filter(p => (form.values[p.name] ?? p.default).trim() !== p.default.trim()).map(p => p.name);
}

/** What the server receives (it sends only the changed values on, as overrides). */
export function runBody(form: IRunForm): Record<string, unknown> {
  const body: Record<string, unknown> = { namespace: form.namespace, name: form.name, values: { ...form.values } };
  if (form.task !== null) {
    body.task = form.task;
    body.execution = form.execution;
  }
  return body;
}

/** Where a run error goes: at its parameter when the form shows it, else the form's own line. */
export function runErrorPlace(field: string | undefined, form: IRunForm): string {
  if (field?.startsWith('param:') && field.slice(6) in form.values) {
    return field;
  }
  return 'form';
}

/** A task's rule as the "Change rule" form holds it ("custom": one the form does not make). */
export interface IRuleForm {
  namespace: string;
  name: string;
  task: string;
  /** The workflow's other tasks (what "after" may name). */
  tasks: string[];
  when: When | 'custom';
  event_key: string;
  event_namespace: string;
  event_value: string;
  after: string[];
  after_status: string;
  cron: string;
  timezone: string;
  interval: string;
}

/** The form from the server's reading of the task's rule (``GET author/edit``). */
export function initialRuleForm(
  namespace: string,
  name: string,
  read: Partial<IRuleForm> & { task: string; tasks: string[] },
  timezone = 'UTC'
): IRuleForm {
  return {
    namespace,
    name,
    when: 'execution',
    event_key: '',
    event_namespace: '',
    event_value: '',
    after: [],
    after_status: 'SUCCESS',
    cron: '',
    timezone,
    interval: '',
    ...read
  };
}

/** What the server receives to change the rule: only the fields the chosen "when" uses. */
export function ruleBody(form: IRuleForm): Record<string, unknown> {
  const body: Record<string, unknown> = {
    namespace: form.namespace,
    name: form.name,
    task: form.task,
    action: 'rule',
    when: form.when
  };
  if (form.when !== 'custom') {
    for (const field of WHEN_FIELDS[form.when]) {
      body[field] = form[field as keyof IRuleForm];
    }
  }
  return body;
}

/** Where a rule error goes: a field the chosen "when" shows, else the form's own line. */
export function ruleErrorPlace(field: string | undefined, form: IRuleForm): string {
  if (!field) {
    return 'form';
  }
  if (field === 'when' || (form.when !== 'custom' && WHEN_FIELDS[form.when].includes(field))) {
    return field;
  }
  return 'form';
}
