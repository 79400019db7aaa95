/** The "Add to workflow" dialog: a modal form over the page; the server checks, the form shows where. */

import { Widget } from '@lumino/widgets';

import { AiflowApi, ApiError } from './api';
import {
  errorPlace,
  IAuthorForm,
  initialForm,
  IParameter,
  localZone,
  timeZones,
  toDraft,
  When,
  WHEN_FIELDS,
  WHEN_LABELS,
  withParameters
} from './author';
import { Child, fill, h } from './dom';
import { IWorkflow, workflowId } from './state';

const STATUSES = ['SUCCESS', 'FAILED', 'STOPPED'];
let zoneList = 0;

/** What a submit did: the workflow and its new version; whether the user asked for an execution started. */
export interface ISubmitted {
  namespace: string;
  name: string;
  version: number;
  start: boolean;
}

type Input = HTMLInputElement | HTMLSelectElement;

export class AuthorDialog extends Widget {
  constructor(
    readonly api: AiflowApi,
    path: string
  ) {
    super({ node: h('div', { class: 'jp-AiflowAuthor-backdrop' }) });
    this.form = initialForm(path, localZone());
    this.done = new Promise(resolve => (this._resolve = resolve));
    this.node.addEventListener('keydown', e => {
      if (e.key === 'Escape') {
        this.close(null);
      }
    });
  }

  /** Resolves with what was submitted, or null when the dialog was cancelled. */
  readonly done: Promise<ISubmitted | null>;
  form: IAuthorForm;

  /** Show the dialog and read the notebook's parameters and the workflows. */
  async open(): Promise<void> {
    Widget.attach(this, document.body);
    this._render();
    const [info, workflows] = await Promise.allSettled([this.api.notebookInfo(this.form.path), this.api.workflows()]);
    if (workflows.status === 'fulfilled') {
      this._workflows = workflows.value;
    }
    if (info.status === 'fulfilled') {
      this._params = info.value.parameters;
      this.form = withParameters(this.form, this._params);
    }
    this._loading = false;
    this._render();
    if (info.status === 'rejected') {
      this._showError(info.reason);
    } else if (workflows.status === 'rejected') {
      this._showError(workflows.reason);
    }
    this.node.querySelector<HTMLInputElement>('[data-field="task"] input')?.focus();
  }

  close(result: ISubmitted | null = null): void {
    this._resolve(result);
    this.dispose();
  }

  private async _submit(): Promise<void> {
    this._clearErrors();
    this._busy(true);
    try {
      // Closed on the service's answer: the panel shows the workflow at once and starts its execution.
      const answer = await this.api.submitDraft(toDraft(this.form));
      this.close({ namespace: answer.namespace, name: answer.name, version: answer.version, start: this.form.start });
    } catch (err) {
      this._showError(err);
      this._busy(false);
    }
  }

  private _showError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const place = errorPlace(err instanceof ApiError ? err.field : undefined, this.form);
    const note = this.node.querySelector<HTMLElement>(`[data-error="${CSS.escape(place)}"]`) ?? this._formError;
    note.textContent = message;
    note.hidden = false;
    (note.closest('tr') ?? note.closest('.jp-AiflowAuthor-field'))?.classList.add('jp-mod-error');
  }

  private _clearErrors(): void {
    this.node.querySelectorAll<HTMLElement>('[data-error]').forEach(n => {
      n.textContent = '';
      n.hidden = true;
    });
    this.node.querySelectorAll('.jp-mod-error').forEach(n => n.classList.remove('jp-mod-error'));
  }

  /** A field's error goes once the field is edited. */
  private _clearError(field: string): void {
    const note = this.node.querySelector<HTMLElement>(`[data-error="${CSS.escape(field)}"]`);
    if (note) {
      note.textContent = '';
      note.hidden = true;
      note.closest('.jp-mod-error')?.classList.remove('jp-mod-error');
    }
  }

  private _busy(busy: boolean): void {
    this.node.querySelectorAll<HTMLButtonElement>('button').forEach(b => (b.disabled = busy));
  }

  /** Set one of the form's fields (from an input) and show what the change shows. */
  private _set<K extends keyof IAuthorForm>(field: K, value: IAuthorForm[K], rerender = false): void {
    this.form = { ...this.form, [field]: value };
    if (rerender) {
      this._render();
    }
  }

  private _render(): void {
    const f = this.form;
    this._formError = h('div', { class: 'jp-AiflowAuthor-formError', 'data-error': 'form', role: 'alert' });
    this._formError.hidden = true;
    const body: Child[] = [
      h('h2', {}, `Add ${f.path.split('/').pop()} to a workflow`),
      this._field('notebook', 'Notebook', h('code', {}, f.path)),
      this._field('workflow', 'Workflow', this._workflowChoice()),
      f.existing ? null : this._field('namespace', 'Namespace', this._text('namespace')),
      this._field('task', 'Task name', this._text('task')),
      this._field('parameters', 'Parameters', this._parameters()),
      this._field('when', 'When it runs', this._whenChoice()),
      ...WHEN_FIELDS[f.when].map(field => this._whenField(field)),
      this._field('max_retries', 'Retries', this._text('max_retries', 'number')),
      this._field('retry_delay', 'Retry delay (s)', this._text('retry_delay', 'number')),
      this._field('timeout', 'Timeout (s)', this._text('timeout', 'number', 'none')),
      this._field('executor', 'Executor', this._text('executor', 'text', "the service's default")),
      h(
        'label',
        { class: 'jp-AiflowAuthor-start' },
        this._checkbox('start'),
        ' start an execution once submitted (event rules and schedules act in running executions)'
      ),
      this._formError,
      h(
        'div',
        { class: 'jp-AiflowAuthor-buttons' },
        h('button', { class: 'jp-mod-styled jp-mod-reject', type: 'button', onclick: () => this.close(null) }, 'Cancel'),
        h(
          'button',
          { class: 'jp-mod-styled jp-mod-accept jp-AiflowAuthor-submit', type: 'submit', disabled: this._loading },
          this._loading ? 'Reading the notebook...' : 'Submit'
        )
      )
    ];
    const form = h(
      'form',
      {
        class: 'jp-AiflowAuthor',
        role: 'dialog',
        'aria-label': 'Add to workflow',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this._submit();
        }
      },
      ...body
    );
    fill(this.node, form);
  }

  private _field(name: string, label: string, control: Node): HTMLElement {
    const error = h('div', { class: 'jp-AiflowAuthor-error', 'data-error': name, role: 'alert' });
    error.hidden = true;
    return h(
      'div',
      { class: 'jp-AiflowAuthor-field', 'data-field': name },
      h('label', {}, label),
      h('div', { class: 'jp-AiflowAuthor-control' }, control, error)
    );
  }

  private _text(field: keyof IAuthorForm, type = 'text', placeholder = ''): HTMLInputElement {
    const input = h('input', {
      class: 'jp-mod-styled',
      type,
      name: field,
      placeholder,
      'aria-label': field,
      oninput: (e: Event) => {
        this._set(field, (e.target as HTMLInputElement).value as never);
        this._clearError(field);
      }
    });
    input.value = String(this.form[field] ?? '');
    if (type === 'number') {
      input.setAttribute('step', 'any');
    }
    return input;
  }

  private _checkbox(field: 'start'): HTMLInputElement {
    const input = h('input', {
      type: 'checkbox',
      name: field,
      onchange: (e: Event) => this._set(field, (e.target as HTMLInputElement).checked)
    });
    input.checked = this.form[field];
    return input;
  }

  private _select(name: string, options: [string, string][], value: string, change: (v: string) => void): HTMLSelectElement {
    const select = h(
      'select',
      { class: 'jp-mod-styled', name, 'aria-label': name, onchange: (e: Event) => change((e.target as Input).value) },
      ...options.map(([v, label]) => h('option', { value: v }, label))
    );
    select.value = value;
    return select;
  }

  private _workflowChoice(): Node {
    const f = this.form;
    const NEW = '';
    const options: [string, string][] = [
      [NEW, 'a new workflow'],
      ...this._workflows.map(w => [workflowId(w), `${workflowId(w)} (v${w.version})`] as [string, string])
    ];
    const chosen = f.existing ? `${f.namespace}/${f.workflow}` : NEW;
    const select = this._select('workflow-choice', options, chosen, value => {
      const wf = this._workflows.find(w => workflowId(w) === value);
      this.form = wf
        ? { ...this.form, existing: true, namespace: wf.namespace, workflow: wf.name, after: [] }
        : { ...this.form, existing: false, after: [] };
      this._tasks = [];
      this._render();
      if (wf) {
        void this._loadTasks(wf);
      }
    });
    return h('div', { class: 'jp-AiflowAuthor-row' }, select, f.existing ? null : this._text('workflow', 'text', 'name'));
  }

  private async _loadTasks(wf: IWorkflow): Promise<void> {
    try {
      const shown = await this.api.workflow(wf.namespace, wf.name);
      this._tasks = shown.spec.tasks.map(t => t.name);
      this._render();
    } catch (err) {
      this._showError(err);
    }
  }

  private _parameters(): Node {
    if (this._loading) {
      return h('span', {}, 'reading...');
    }
    if (!this._params.length) {
      return h('span', { class: 'jp-AiflowAuthor-none' }, 'none read');
    }
    const rows = this._params.map(p => {
      const input = h('input', {
        class: 'jp-mod-styled',
        name: `param:${p.name}`,
        'aria-label': `parameter ${p.name}`,
        title: p.help || `default: ${p.default}`,
        oninput: (e: Event) => {
          this.form = { ...this.form, values: { ...this.form.values, [p.name]: (e.target as HTMLInputElement).value } };
          this._clearError(`param:${p.name}`);
        }
      });
      input.value = this.form.values[p.name] ?? p.default;
      const error = h('div', { class: 'jp-AiflowAuthor-error', 'data-error': `param:${p.name}`, role: 'alert' });
      error.hidden = true;
      return h(
        'tr',
        { 'data-param': p.name },
        h('td', {}, h('code', {}, p.name)),
        h('td', { class: 'jp-AiflowAuthor-type' }, p.type),
        h('td', {}, input, error)
      );
    });
    return h(
      'table',
      { class: 'jp-AiflowAuthor-params' },
      h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'type'), h('th', {}, 'value (a Python literal)'))),
      h('tbody', {}, ...rows)
    );
  }

  private _whenChoice(): Node {
    return this._select('when', WHEN_LABELS.map(([v, l]) => [v, l]), this.form.when, v => this._set('when', v as When, true));
  }

  private _whenField(field: string): Node {
    switch (field) {
      case 'event_key':
        return this._field(field, 'Event key', this._text('event_key', 'text', 'hour_complete'));
      case 'event_namespace':
        return this._field(field, 'Event namespace', this._text('event_namespace', 'text', 'any'));
      case 'event_value':
        return this._field(field, 'Event value', this._text('event_value', 'text', 'any value (JSON or text)'));
      case 'after': {
        const boxes = this._tasks.length
          ? this._tasks.map(t => {
              const box = h('input', {
                type: 'checkbox',
                name: `after:${t}`,
                onchange: (e: Event) => {
                  const on = (e.target as HTMLInputElement).checked;
                  const others = this.form.after.filter(a => a !== t);
                  this._set('after', on ? [...others, t] : others);
                }
              });
              box.checked = this.form.after.includes(t);
              return h('label', { class: 'jp-AiflowAuthor-after' }, box, ` ${t}`);
            })
          : [h('span', { class: 'jp-AiflowAuthor-none' }, 'choose an existing workflow to list its tasks')];
        return this._field(field, 'After tasks', h('div', {}, ...boxes));
      }
      case 'after_status':
        return this._field(
          field,
          'With status',
          this._select('after_status', STATUSES.map(s => [s, s]), this.form.after_status, v => this._set('after_status', v))
        );
      case 'cron':
        return this._field(field, 'Cron', this._text('cron', 'text', '0 2 * * *'));
      case 'timezone': {
        const id = `jp-AiflowAuthor-zones-${++zoneList}`;
        const input = this._text('timezone', 'text', 'UTC');
        input.setAttribute('list', id);
        const list = h('datalist', { id }, ...timeZones().map(z => h('option', { value: z })));
        return this._field(field, 'Time zone', h('div', {}, input, list));
      }
      case 'interval':
        return this._field(field, 'Every (s)', this._text('interval', 'number', '3600'));
      default:
        return h('div');
    }
  }

  private _resolve: (r: ISubmitted | null) => void = () => undefined;
  private _params: IParameter[] = [];
  private _workflows: IWorkflow[] = [];
  private _tasks: string[] = [];
  private _loading = true;
  private _formError: HTMLElement = h('div');
}
