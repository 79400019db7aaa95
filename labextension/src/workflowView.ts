/**
 * A workflow in the main area: its graph at full size colored by the selected execution, its executions
 * with filters, the tasks of the selected one (notebook and log one click away), next runs, its spec as
 * read-only JSON; pause, resume, start (with parameters too) and delete (with a confirmation); per task:
 * start it with parameters in the selected running execution, change its rule, remove it (each change a
 * new version, checked by the server as the "Add to workflow" dialog is).
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { AiflowApi, IWorkflowSpec } from './api';
import { fill, h, safeSvg } from './dom';
import { RuleDialog, RunDialog } from './runDialog';
import {
  filterExecutions,
  formatDuration,
  formatTime,
  IExecution,
  ITaskExecution,
  IWorkflow,
  pickExecution,
  runSeconds,
  sortTasks,
  specForReading,
  TimeWindow
} from './state';

const WINDOWS: [TimeWindow, string][] = [
  ['any', 'any time'],
  ['hour', 'last hour'],
  ['day', 'last day'],
  ['week', 'last week']
];
const STATUSES = ['', 'RUNNING', 'SUCCESS', 'FAILED', 'STOPPED'];

export class WorkflowView extends Widget {
  constructor(
    readonly api: AiflowApi,
    readonly namespace: string,
    readonly name: string
  ) {
    super({ node: h('div', { class: 'jp-AiflowWorkflow' }) });
    this.id = `aiflow-nb-workflow-${namespace}-${name}`;
  }

  /** A finished task execution the user clicked: open its notebook and log. */
  get openRequested(): ISignal<this, ITaskExecution> {
    return this._openRequested;
  }

  /** The workflow was deleted here (the tab closes). */
  get deleted(): ISignal<this, void> {
    return this._deleted;
  }

  /** Fetch everything again and redraw. */
  async refresh(): Promise<void> {
    try {
      const [shown, executions] = await Promise.all([
        this.api.workflow(this.namespace, this.name),
        this.api.executions(this.namespace, this.name, 100)
      ]);
      const listed = (await this.api.workflows()).find(w => w.namespace === this.namespace && w.name === this.name);
      this._workflow = { ...shown, next_runs: listed?.next_runs ?? {} };
      this._spec = shown.spec;
      this._executions = executions;
      this._execution = pickExecution(executions, this._execution, this._pinned);
      const id = this._execution;
      const [svg, tasks] = await Promise.all([
        this.api.graph(this.namespace, this.name, id),
        id === null ? Promise.resolve([]) : this.api.taskExecutions(id)
      ]);
      this._svg = svg;
      this._tasks = sortTasks(tasks);
      this._error = '';
    } catch (err) {
      this._error = (err as Error).message;
    }
    this._render();
  }

  private async _act(action: () => Promise<unknown>): Promise<void> {
    try {
      await action();
    } catch (err) {
      this._error = (err as Error).message;
    }
    await this.refresh();
  }

  /** Open a modal form; once it did something, fetch everything again. */
  private async _dialog(dialog: RunDialog | RuleDialog): Promise<void> {
    await dialog.open();
    const answer = await dialog.done;
    if (answer !== null) {
      if ('id' in answer && typeof answer.id === 'number') {
        this._execution = answer.id;
        this._pinned = true;
      }
      await this.refresh();
    }
  }

  private async _removeTask(task: string): Promise<void> {
    const answer = await showDialog({
      title: `Remove task ${task}?`,
      body: `${this.namespace}/${this.name} is submitted again without ${task}, as a new version (running executions keep theirs).`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
    });
    if (answer.button.accept) {
      await this._act(() =>
        this.api.post('author/edit', { namespace: this.namespace, name: this.name, task, action: 'remove' })
      );
    }
  }

  private async _delete(): Promise<void> {
    const answer = await showDialog({
      title: 'Delete the workflow?',
      body: `${this.namespace}/${this.name}: every version, execution and run record goes. This cannot be undone.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await this.api.deleteWorkflow(this.namespace, this.name);
      this._deleted.emit();
      this.dispose();
    } catch (err) {
      this._error = (err as Error).message;
      this._render();
    }
  }

  private _render(): void {
    const wf = this._workflow;
    const button = (label: string, cls: string, act: () => void) =>
      h('button', { class: `jp-mod-styled ${cls}`, type: 'button', onclick: () => act() }, label);
    const header = h(
      'header',
      { class: 'jp-AiflowWorkflow-header' },
      h('h2', {}, `${this.namespace}/${this.name}`, wf ? ` v${wf.version}${wf.paused ? ' (paused)' : ''}` : ''),
      button('Start execution', 'jp-mod-accept jp-AiflowWorkflow-start', () =>
        this._act(() => this.api.startExecution(this.namespace, this.name))
      ),
      button('Run with parameters...', 'jp-AiflowWorkflow-runWith', () =>
        void this._dialog(new RunDialog(this.api, this.namespace, this.name))
      ),
      wf?.paused
        ? button('Resume', 'jp-AiflowWorkflow-resume', () => this._act(() => this.api.pause(this.namespace, this.name, false)))
        : button('Pause', 'jp-AiflowWorkflow-pause', () => this._act(() => this.api.pause(this.namespace, this.name, true))),
      button('Delete...', 'jp-mod-warn jp-AiflowWorkflow-delete', () => void this._delete()),
      button('⟳', 'jp-AiflowWorkflow-refresh', () => void this.refresh())
    );
    const error = this._error ? h('div', { class: 'jp-AiflowWorkflow-error', role: 'alert' }, this._error) : null;
    const next = Object.entries(wf?.next_runs ?? {});
    const nextRuns = next.length
      ? h(
          'ul',
          { class: 'jp-AiflowWorkflow-next' },
          ...next.map(([task, due]) => h('li', {}, `${task}: next run ${formatTime(due)} (${due})`))
        )
      : null;
    const svg = this._svg ? safeSvg(this._svg) : null;
    const shown = filterExecutions(this._executions, this._status, this._window);
    fill(
      this.node,
      header,
      error,
      nextRuns,
      h('div', { class: 'jp-AiflowWorkflow-graph' }, svg ?? h('p', {}, 'no graph')),
      h('div', { class: 'jp-AiflowWorkflow-columns' }, this._executionsPart(shown), this._tasksPart()),
      this._specTasksPart(),
      h(
        'details',
        { class: 'jp-AiflowWorkflow-spec' },
        h('summary', {}, 'Spec (read-only JSON)'),
        h('pre', {}, this._spec ? JSON.stringify(specForReading(this._spec), null, 2) : '')
      )
    );
  }

  private _executionsPart(shown: IExecution[]): HTMLElement {
    const status = h(
      'select',
      {
        class: 'jp-mod-styled jp-AiflowWorkflow-status',
        'aria-label': 'status filter',
        onchange: (e: Event) => {
          this._status = (e.target as HTMLSelectElement).value;
          this._render();
        }
      },
      ...STATUSES.map(s => h('option', { value: s }, s || 'any status'))
    );
    status.value = this._status;
    const window = h(
      'select',
      {
        class: 'jp-mod-styled jp-AiflowWorkflow-window',
        'aria-label': 'time filter',
        onchange: (e: Event) => {
          this._window = (e.target as HTMLSelectElement).value as TimeWindow;
          this._render();
        }
      },
      ...WINDOWS.map(([v, l]) => h('option', { value: v }, l))
    );
    window.value = this._window;
    const rows = shown.map(e =>
      h(
        'tr',
        {
          class: e.id === this._execution ? 'jp-mod-selected' : '',
          'data-execution': String(e.id),
          onclick: () => {
            this._execution = e.id;
            this._pinned = true;
            void this.refresh();
          }
        },
        h('td', {}, `#${e.id}`),
        h('td', {}, `v${e.version}`),
        h('td', { class: `jp-AiflowPanel-status jp-mod-${e.status.toLowerCase()}` }, e.status),
        h('td', {}, formatTime(e.start_time))
      )
    );
    return h(
      'section',
      {},
      h('h3', {}, 'Executions'),
      h('div', { class: 'jp-AiflowWorkflow-filters' }, status, window),
      rows.length ? h('table', {}, h('tbody', {}, ...rows)) : h('p', {}, 'no execution matches')
    );
  }

  private _tasksPart(): HTMLElement {
    if (this._execution === null) {
      return h('section', {}, h('h3', {}, 'Tasks'), h('p', {}, 'no execution yet'));
    }
    const rows = this._tasks.map(t =>
      h(
        'tr',
        { 'data-task': t.task },
        h('td', {}, `${t.task} #${t.seq}`),
        h('td', { class: `jp-AiflowPanel-status jp-mod-${t.status.toLowerCase()}` }, t.status),
        h('td', {}, formatDuration(runSeconds(t))),
        h(
          'td',
          {},
          h(
            'button',
            { class: 'jp-mod-styled jp-AiflowWorkflow-open', type: 'button', onclick: () => this._openRequested.emit(t) },
            'notebook + log'
          )
        ),
        h('td', { class: 'jp-AiflowWorkflow-cause', title: t.error ?? '' }, t.error ?? '')
      )
    );
    return h(
      'section',
      {},
      h('h3', {}, `Tasks of execution #${this._execution}`),
      rows.length ? h('table', {}, h('tbody', {}, ...rows)) : h('p', {}, 'no task has run yet')
    );
  }

  /** The workflow's tasks, each with its edits (and a start with parameters in a running execution). */
  private _specTasksPart(): HTMLElement | null {
    const tasks = this._spec?.tasks ?? [];
    if (!tasks.length) {
      return null;
    }
    const selected = this._executions.find(e => e.id === this._execution);
    const running = selected?.status === 'RUNNING' ? selected.id : null;
    const button = (label: string, cls: string, act: () => void) =>
      h('button', { class: `jp-mod-styled ${cls}`, type: 'button', onclick: () => act() }, label);
    const rows = tasks.map(t =>
      h(
        'tr',
        { 'data-spec-task': t.name },
        h('td', {}, h('code', {}, t.name)),
        h('td', {}, t.kind),
        h(
          'td',
          {},
          running === null
            ? null
            : button(`Start in #${running}...`, 'jp-AiflowWorkflow-startTask', () =>
                void this._dialog(new RunDialog(this.api, this.namespace, this.name, running, t.name))
              ),
          button('Change rule...', 'jp-AiflowWorkflow-rule', () =>
            void this._dialog(new RuleDialog(this.api, this.namespace, this.name, t.name))
          ),
          button('Remove...', 'jp-mod-warn jp-AiflowWorkflow-remove', () => void this._removeTask(t.name))
        )
      )
    );
    return h(
      'section',
      { class: 'jp-AiflowWorkflow-specTasks' },
      h('h3', {}, 'Tasks of the workflow'),
      h('table', {}, h('tbody', {}, ...rows))
    );
  }

  private _workflow: IWorkflow | null = null;
  private _spec: IWorkflowSpec | null = null;
  private _executions: IExecution[] = [];
  private _execution: number | null = null;
  private _pinned = false;
  private _tasks: ITaskExecution[] = [];
  private _svg = '';
  private _error = '';
  private _status = '';
  private _window: TimeWindow = 'any';
  private _openRequested = new Signal<this, ITaskExecution>(this);
  private _deleted = new Signal<this, void>(this);
}
