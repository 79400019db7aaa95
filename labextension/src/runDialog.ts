/**
 * The workflow view's modal forms: "Run with parameters" and "Change rule". Each asks the server (the
 * jupyter extension's ``author/run`` and ``author/edit``), which checks; a refusal is shown at its field.
 */

import { Widget } from '@lumino/widgets';

import { AiflowApi, ApiError } from './api';
import { localZone, timeZones, When, WHEN_FIELDS, WHEN_LABELS } from './author';
import { Child, fill, h } from './dom';
import {
  changedNames,
  initialRuleForm,
  initialRunForm,
  IRuleForm,
  IRunForm,
  IRunParameter,
  ruleBody,
  ruleErrorPlace,
  runBody,
  runErrorPlace
} from './runForm';

const q = encodeURIComponent;
const STATUSES = ['SUCCESS', 'FAILED', 'STOPPED'];

/** A modal form over the page: fields with their error lines, Cancel and one action. */
abstract class FormDialog<R> extends Widget {
  constructor(readonly api: AiflowApi, label: string) {
    super({ node: h('div', { class: 'jp-AiflowAuthor-backdrop' }) });
    this._label = label;
    this.done = new Promise(resolve => (this._resolve = resolve));
    this.node.addEventListener('keydown', e => {
      if (e.key === 'Escape') {
        this.close(null);
      }
    });
  }

  /** Resolves with the server's answer, or null when cancelled. */
  readonly done: Promise<R | null>;

  close(result: R | null = null): void {
    this._resolve(result);
    this.dispose();
  }

  protected abstract body(): Child[];
  protected abstract send(): Promise<R>;
  protected abstract place(field: string | undefined): string;

  protected render(action: string, busy = false): void {
    this._action = action;
    this._formError = h('div', { class: 'jp-AiflowAuthor-formError', 'data-error': 'form', role: 'alert' });
    this._formError.hidden = true;
    const form = h(
      'form',
      {
        class: 'jp-AiflowAuthor jp-AiflowRun',
        role: 'dialog',
        'aria-label': this._label,
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this._submit();
        }
      },
      ...this.body(),
      this._formError,
      h(
        'div',
        { class: 'jp-AiflowAuthor-buttons' },
        h('button', { class: 'jp-mod-styled jp-mod-reject', type: 'button', onclick: () => this.close(null) }, 'Cancel'),
        h('button', { class: 'jp-mod-styled jp-mod-accept jp-AiflowRun-submit', type: 'submit', disabled: busy }, action)
      )
    );
    fill(this.node, form);
  }

  protected field(name: string, label: string, control: Node): HTMLElement {
    const error = h('div', { class: 'jp-AiflowAuthor-error', 'data-error': name, role: 'alert' });
    error.hidden = true;
    return h(
      'div',
      { class: 'jp-AiflowAuthor-field', 'data-field': name },
      h('label', {}, label),
      h('div', { class: 'jp-AiflowAuthor-control' }, control, error)
    );
  }

  protected showError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const place = this.place(err instanceof ApiError ? err.field : undefined);
    const note = this.node.querySelector<HTMLElement>(`[data-error="${CSS.escape(place)}"]`) ?? this._formError;
    note.textContent = message;
    note.hidden = false;
    (note.closest('tr') ?? note.closest('.jp-AiflowAuthor-field'))?.classList.add('jp-mod-error');
  }

  protected clearError(field: string): void {
    const note = this.node.querySelector<HTMLElement>(`[data-error="${CSS.escape(field)}"]`);
    if (note) {
      note.textContent = '';
      note.hidden = true;
      note.closest('.jp-mod-error')?.classList.remove('jp-mod-error');
    }
  }

  private async _submit(): Promise<void> {
    this.node.querySelectorAll<HTMLElement>('[data-error]').forEach(n => {
      n.textContent = '';
      n.hidden = true;
    });
    this.node.querySelectorAll('.jp-mod-error').forEach(n => n.classList.remove('jp-mod-error'));
    this.node.querySelectorAll<HTMLButtonElement>('button').forEach(b => (b.disabled = true));
    try {
      this.close(await this.send());
    } catch (err) {
      this.node.querySelectorAll<HTMLButtonElement>('button').forEach(b => (b.disabled = false));
      this.showError(err);
    }
  }

  private _resolve: (r: R | null) => void = () => undefined;
  private _label: string;
  protected _action = '';
  private _formError: HTMLElement = h('div');
}

/** "Run with parameters": a new execution, or one task of a running execution, with overrides. */
export class RunDialog extends FormDialog<{ id?: number }> {
  constructor(
    api: AiflowApi,
    namespace: string,
    name: string,
    execution: number | null = null,
    task: string | null = null
  ) {
    super(api, 'Run with parameters');
    this.form = initialRunForm(namespace, name, [], execution, task);
  }

  form: IRunForm;

  /** Show the dialog and read the parameters the tasks declare, prefilled with their defaults. */
  async open(): Promise<void> {
    Widget.attach(this, document.body);
    this.render('Run', true);
    const f = this.form;
    const query = `namespace=${q(f.namespace)}&name=${q(f.name)}${f.task === null ? '' : `&task=${q(f.task)}`}`;
    try {
      const read = await this.api.json<{ parameters: IRunParameter[] }>(`author/run?${query}`);
      this._params = read.parameters;
      this.form = initialRunForm(f.namespace, f.name, this._params, f.execution, f.task);
      this._loading = false;
      this.render('Run');
    } catch (err) {
      this._loading = false;
      this.render('Run');
      this.showError(err);
    }
    this.node.querySelector<HTMLInputElement>('input')?.focus();
  }

  protected send(): Promise<{ id?: number }> {
    return this.api.post('author/run', runBody(this.form));
  }

  protected place(field: string | undefined): string {
    return runErrorPlace(field, this.form);
  }

  protected body(): Child[] {
    const f = this.form;
    const what = f.task === null ? `a new execution of ${f.namespace}/${f.name}` : `${f.task} in execution #${f.execution}`;
    return [
      h('h2', {}, 'Run with parameters'),
      h('p', { class: 'jp-AiflowRun-what' }, `Start ${what}. Changed values apply to this run only.`),
      this.field('parameters', 'Parameters', this._table())
    ];
  }

  private _table(): Node {
    if (this._loading) {
      return h('span', {}, 'reading...');
    }
    if (!this._params.length) {
      return h('span', { class: 'jp-AiflowAuthor-none' }, 'no task declares a parameter');
    }
    const changed = new Set(changedNames(this.form, this._params));
    const rows = this._params.map(p => {
      const input = h('input', {
        class: 'jp-mod-styled',
        name: `param:${p.name}`,
        'aria-label': `parameter ${p.name}`,
        title: `default: ${p.default}`,
        oninput: (e: Event) => {
          this.form = { ...this.form, values: { ...this.form.values, [p.name]: (e.target as HTMLInputElement).value } };
          this.clearError(`param:${p.name}`);
          const row = (e.target as HTMLElement).closest('tr');
          row?.classList.toggle('jp-mod-changed', changedNames(this.form, [p]).length > 0);
        }
      });
      input.value = this.form.values[p.name] ?? p.default;
      const error = h('div', { class: 'jp-AiflowAuthor-error', 'data-error': `param:${p.name}`, role: 'alert' });
      error.hidden = true;
      return h(
        'tr',
        { 'data-param': p.name, class: changed.has(p.name) ? 'jp-mod-changed' : '' },
        h('td', {}, h('code', {}, p.name)),
        h('td', { class: 'jp-AiflowAuthor-type' }, p.type),
        h('td', {}, input, error),
        h('td', { class: 'jp-AiflowAuthor-type' }, p.tasks.join(', '))
      );
    });
    return h(
      'table',
      { class: 'jp-AiflowAuthor-params' },
      h(
        'thead',
        {},
        h('tr', {}, h('th', {}, 'name'), h('th', {}, 'type'), h('th', {}, 'value (a Python literal)'), h('th', {}, 'tasks'))
      ),
      h('tbody', {}, ...rows)
    );
  }

  private _params: IRunParameter[] = [];
  private _loading = true;
}

/** "Change rule": when a task of the workflow runs, submitted as a new version. */
export class RuleDialog extends FormDialog<{ version: number }> {
  constructor(api: AiflowApi, namespace: string, name: string, task: string) {
    super(api, 'Change rule');
    this.form = initialRuleForm(namespace, name, { task, tasks: [] }, localZone());
  }

  form: IRuleForm;

  async open(): Promise<void> {
    Widget.attach(this, document.body);
    this.render('Submit', true);
    const f = this.form;
    try {
      const read = await this.api.json<Partial<IRuleForm> & { task: string; tasks: string[] }>(
        `author/edit?namespace=${q(f.namespace)}&name=${q(f.name)}&task=${q(f.task)}`
      );
      this.form = initialRuleForm(f.namespace, f.name, read, read.timezone ?? f.timezone);
      this.render('Submit');
    } catch (err) {
      this.render('Submit');
      this.showError(err);
    }
    this.node.querySelector<HTMLSelectElement>('select')?.focus();
  }

  protected send(): Promise<{ version: number }> {
    return this.api.post('author/edit', ruleBody(this.form));
  }

  protected place(field: string | undefined): string {
    return ruleErrorPlace(field, this.form);
  }

  protected body(): Child[] {
    const f = this.form;
    const options: [string, string][] = [...WHEN_LABELS];
    if (f.when === 'custom') {
      options.unshift(['custom', 'its own rule (made in code): choose another to replace it']);
    }
    const when = this._select('when', options, f.when, v => {
      this.form = { ...this.form, when: v as When };
      this.render(this._action);
    });
    return [
      h('h2', {}, `When ${f.task} runs`),
      h('p', { class: 'jp-AiflowRun-what' }, `${f.namespace}/${f.name}: submitted as a new version.`),
      this.field('when', 'When it runs', when),
      ...(f.when === 'custom' ? [] : WHEN_FIELDS[f.when].map(field => this._whenField(field)))
    ];
  }

  private _select(name: string, options: [string, string][], value: string, change: (v: string) => void): HTMLSelectElement {
    const select = h(
      'select',
      {
        class: 'jp-mod-styled',
        name,
        'aria-label': name,
        onchange: (e: Event) => change((e.target as HTMLSelectElement).value)
      },
      ...options.map(([v, label]) => h('option', { value: v }, label))
    );
    select.value = value;
    return select;
  }

  private _text(field: 'event_key' | 'event_namespace' | 'event_value' | 'cron' | 'timezone' | 'interval', placeholder: string): HTMLInputElement {
    const input = h('input', {
      class: 'jp-mod-styled',
      name: field,
      placeholder,
      'aria-label': field,
      oninput: (e: Event) => {
        this.form = { ...this.form, [field]: (e.target as HTMLInputElement).value };
        this.clearError(field);
      }
    });
    input.value = this.form[field];
    return input;
  }

  private _whenField(field: string): Node {
    switch (field) {
      case 'event_key':
        return this.field(field, 'Event key', this._text('event_key', 'hour_complete'));
      case 'event_namespace':
        return this.field(field, 'Event namespace', this._text('event_namespace', 'any'));
      case 'event_value':
        return this.field(field, 'Event value', this._text('event_value', 'any value (JSON or text)'));
      case 'after': {
        const boxes = this.form.tasks.map(t => {
          const box = h('input', {
            type: 'checkbox',
            name: `after:${t}`,
            onchange: (e: Event) => {
              const on = (e.target as HTMLInputElement).checked;
              const others = this.form.after.filter(a => a !== t);
              this.form = { ...this.form, after: on ? [...others, t] : others };
              this.clearError('after');
            }
          });
          box.checked = this.form.after.includes(t);
          return h('label', { class: 'jp-AiflowAuthor-after' }, box, ` ${t}`);
        });
        return this.field(field, 'After tasks', h('div', {}, ...boxes));
      }
      case 'after_status':
        return this.field(
          field,
          'With status',
          this._select('after_status', STATUSES.map(s => [s, s]), this.form.after_status, v => {
            this.form = { ...this.form, after_status: v };
          })
        );
      case 'cron':
        return this.field(field, 'Cron', this._text('cron', '0 2 * * *'));
      case 'timezone': {
        const input = this._text('timezone', 'UTC');
        input.setAttribute('list', 'jp-AiflowRule-zones');
        const list = h('datalist', { id: 'jp-AiflowRule-zones' }, ...timeZones().map(z => h('option', { value: z })));
        return this.field(field, 'Time zone', h('div', {}, input, list));
      }
      case 'interval':
        return this.field(field, 'Every (s)', this._text('interval', '3600'));
      default:
        return h('div');
    }
  }
}
