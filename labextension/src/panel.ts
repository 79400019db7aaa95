/** The left-sidebar panel: workflows, the selected one's graph, executions and tasks, an event form and feed. */

import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { AiflowApi, ApiError, IHealth, IServiceState, TaskAction } from './api';
import { fill, h, safeSvg } from './dom';
import {
  anyStale,
  checkEventForm,
  countRunning,
  describeEvent,
  EventFeed,
  formatDuration,
  formatTime,
  IAiflowEvent,
  IExecution,
  initialSince,
  ISelection,
  isFinished,
  IStale,
  ITaskExecution,
  IWorkflow,
  mergeStale,
  NOTHING_STALE,
  pickExecution,
  runSeconds,
  sortTasks,
  staleAfter,
  workflowId
} from './state';
import { EventStream, StreamState } from './stream';

const ALL_STALE: IStale = { workflows: true, executions: true, tasks: true, graph: true, running: true };
/** How many past events the feed shows on connect. */
const HISTORY = 50;
/** Events arriving within this many ms are handled with one round of requests. */
const DEBOUNCE_MS = 150;
/** How often the panel looks for a service while none runs. */
const PROBE_MS = 5000;

export class AiflowPanel extends Widget {
  constructor(readonly api: AiflowApi) {
    super();
    this.id = 'aiflow-nb-panel';
    this.addClass('jp-AiflowPanel');
    this.stream = new EventStream(api);
    this.stream.event.connect((_, e) => this._onEvent(e));
    this.stream.stateChanged.connect((_, s) => this._onStreamState(s));
    this._build();
  }

  readonly stream: EventStream;
  readonly feed = new EventFeed();

  /** A finished task execution the user clicked: open its notebook and log. */
  get openRequested(): ISignal<this, ITaskExecution> {
    return this._openRequested;
  }

  /** The number of running task executions (for the status bar). */
  get runningChanged(): ISignal<this, number> {
    return this._runningChanged;
  }

  get running(): number {
    return this._running;
  }

  get selectedWorkflow(): IWorkflow | null {
    const sel = this.selection.workflow;
    return sel ? (this.workflows.find(w => workflowId(w) === workflowId(sel)) ?? null) : null;
  }

  get selectedExecution(): IExecution | null {
    return this.executions.find(e => e.id === this.selection.execution) ?? null;
  }

  get selectedTask(): ITaskExecution | null {
    return this.tasks.find(t => t.id === this._selectedTask) ?? null;
  }

  workflows: IWorkflow[] = [];
  executions: IExecution[] = [];
  tasks: ITaskExecution[] = [];
  selection: ISelection = { workflow: null, execution: null };
  service: IServiceState | null = null;

  // -- lifecycle ---------------------------------------------------------------

  /** Find the service, then follow its stream; shows the "not running" note when there is none. */
  async connect(): Promise<void> {
    if (this._connecting) {
      return;
    }
    this._connecting = true;
    try {
      await this._connect();
    } finally {
      this._connecting = false;
    }
  }

  private async _connect(): Promise<void> {
    let health: IHealth;
    try {
      this.service = await this.api.service();
      if (!this.service.running) {
        throw new ApiError(503, 'not running');
      }
      health = await this.api.health();
    } catch (err) {
      if (err instanceof ApiError && err.serviceDown) {
        // Gone, or listed but not answering (yet): show the note with its Start button.
        this.service = { running: false, home: this.service?.home ?? '' };
        this.stream.stop();
        this._renderService();
      } else {
        this.showError(err);
      }
      return;
    }
    this._renderService();
    this.stream.start(Math.max(this.feed.lastOffset, initialSince(health.latest_offset, HISTORY)));
    this.refresh(ALL_STALE);
  }

  async startService(): Promise<void> {
    this._startButton.disabled = true;
    this._startButton.textContent = 'Starting...';
    try {
      await this.api.startService();
      this.clearError();
    } catch (err) {
      this.showError(err);
    } finally {
      this._startButton.disabled = false;
      this._startButton.textContent = 'Start the service';
    }
    await this.connect();
  }

  /** Submitting or pausing a workflow sends no event yet, so look again whenever the panel is shown. */
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this.service?.running) {
      this.refresh({ ...NOTHING_STALE, workflows: true });
    }
  }

  dispose(): void {
    this.stream.stop();
    window.clearTimeout(this._timer);
    window.clearInterval(this._probe);
    super.dispose();
  }

  // -- actions -----------------------------------------------------------------

  selectWorkflow(namespace: string, name: string): void {
    this.selection = { workflow: { namespace, name }, execution: null };
    this._pinned = false;
    this._selectedTask = null;
    this.executions = [];
    this.tasks = [];
    this._render();
    this.refresh({ ...NOTHING_STALE, executions: true, tasks: true, graph: true });
  }

  selectExecution(id: number): void {
    this.selection = { ...this.selection, execution: id };
    this._pinned = true;
    this._selectedTask = null;
    this.refresh({ ...NOTHING_STALE, tasks: true, graph: true });
  }

  async startExecution(): Promise<void> {
    const wf = this.selectedWorkflow;
    if (!wf) {
      return this.showError('select a workflow first');
    }
    await this._act(async () => {
      const id = await this.api.startExecution(wf.namespace, wf.name);
      this.selection = { ...this.selection, execution: id };
      this._pinned = true;
    }, ALL_STALE);
  }

  async stopExecution(id?: number): Promise<void> {
    const target = id ?? this.selection.execution;
    if (target === null) {
      return this.showError('select an execution first');
    }
    await this._act(() => this.api.stopExecution(target), ALL_STALE);
  }

  async taskAction(action: TaskAction, task?: string): Promise<void> {
    const execution = this.selection.execution;
    const name = task ?? this.selectedTask?.task;
    if (execution === null || !name) {
      return this.showError('select a task of an execution first');
    }
    await this._act(() => this.api.taskAction(execution, name, action), ALL_STALE);
  }

  async setPaused(paused: boolean): Promise<void> {
    const wf = this.selectedWorkflow;
    if (!wf) {
      return this.showError('select a workflow first');
    }
    await this._act(() => this.api.pause(wf.namespace, wf.name, paused), { ...NOTHING_STALE, workflows: true });
  }

  /** Send the form's event; an empty key is refused here, before anything is sent. */
  async sendEvent(): Promise<void> {
    const checked = checkEventForm(this._keyInput.value, this._valueInput.value, this._nsInput.value);
    if (!checked.ok) {
      this._formNote.textContent = checked.error;
      this._formNote.className = 'jp-AiflowPanel-formNote jp-mod-error';
      return;
    }
    try {
      const offset = await this.api.sendEvent(checked.value);
      this._formNote.textContent = `sent ${checked.value.key} (offset ${offset})`;
      this._formNote.className = 'jp-AiflowPanel-formNote';
    } catch (err) {
      this._formNote.textContent = '';
      this.showError(err);
    }
  }

  focusEventForm(): void {
    this._keyInput.focus();
  }

  /** Fetch again what ``stale`` names, coalescing bursts of events into one round. */
  refresh(stale: IStale = ALL_STALE): void {
    this._stale = mergeStale(this._stale, stale);
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => void this._flush(), DEBOUNCE_MS);
  }

  showError(err: unknown): void {
    if (err instanceof ApiError && err.serviceDown) {
      // The "not running" note with its Start button says it better than an error line.
      this.clearError();
      if (!this._connecting) {
        void this.connect();
      }
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    fill(this._error, h('span', {}, message), h('button', { title: 'Dismiss', onclick: () => this.clearError() }, '×'));
    this._error.hidden = false;
  }

  clearError(): void {
    fill(this._error);
    this._error.hidden = true;
  }

  // -- fetching ----------------------------------------------------------------

  private async _act(action: () => Promise<unknown>, stale: IStale): Promise<void> {
    try {
      await action();
      this.clearError();
    } catch (err) {
      this.showError(err);
    }
    this.refresh(stale);
  }

  private async _flush(): Promise<void> {
    if (this._busy) {
      this._timer = window.setTimeout(() => void this._flush(), DEBOUNCE_MS);
      return;
    }
    const stale = this._stale;
    this._stale = NOTHING_STALE;
    if (!anyStale(stale) || !this.service?.running) {
      return;
    }
    this._busy = true;
    try {
      await this._fetch(stale);
    } catch (err) {
      this.showError(err);
    } finally {
      this._busy = false;
    }
    this._render();
  }

  private async _fetch(stale: IStale): Promise<void> {
    const jobs: Promise<void>[] = [];
    if (stale.workflows) {
      jobs.push(this.api.workflows().then(w => void (this.workflows = w)));
    }
    if (stale.running) {
      jobs.push(this._countRunning());
    }
    const wf = this.selection.workflow;
    if (wf && (stale.executions || this.selection.execution === null)) {
      this.executions = await this.api.executions(wf.namespace, wf.name);
      const picked = pickExecution(this.executions, this.selection.execution, this._pinned);
      if (picked !== this.selection.execution) {
        this.selection = { ...this.selection, execution: picked };
        stale = { ...stale, tasks: true, graph: true };
      }
    }
    const execution = this.selection.execution;
    if (stale.tasks) {
      jobs.push(
        execution === null
          ? Promise.resolve(void (this.tasks = []))
          : this.api.taskExecutions(execution).then(t => void (this.tasks = sortTasks(t)))
      );
    }
    if (wf && stale.graph) {
      jobs.push(this.api.graph(wf.namespace, wf.name, execution).then(svg => void (this._svg = svg)));
    }
    await Promise.all(jobs);
  }

  private async _countRunning(): Promise<void> {
    const running = await this.api.runningExecutions();
    const lists = await Promise.all(running.map(e => this.api.taskExecutions(e.id)));
    const count = lists.reduce((n, list) => n + countRunning(list), 0);
    if (count !== this._running) {
      this._running = count;
      this._runningChanged.emit(count);
    }
  }

  private _onEvent(event: IAiflowEvent): void {
    if (this.feed.add(event)) {
      this._renderFeed();
      const stale = staleAfter(event, this.selection);
      if (anyStale(stale)) {
        this.refresh(stale);
      }
    }
  }

  private _onStreamState(state: StreamState): void {
    this._live.className = `jp-AiflowPanel-live jp-mod-${state}`;
    this._live.title = state === 'open' ? 'live: following the event stream' : `event stream ${state}`;
    if (state === 'open') {
      this.refresh(ALL_STALE);
    } else if (state === 'closed' && this.service?.running) {
      // The stream dropped: find out whether the service is gone, to say so.
      void this.api.service().then(
        s => {
          this.service = s;
          this._renderService();
          if (!s.running) {
            this.stream.stop();
          }
        },
        err => this.showError(err)
      );
    }
  }

  // -- rendering ---------------------------------------------------------------

  private _build(): void {
    this._live = h('span', { class: 'jp-AiflowPanel-live jp-mod-closed', title: 'event stream closed' });
    const header = h(
      'header',
      { class: 'jp-AiflowPanel-header' },
      h('h2', {}, 'aiflow-nb'),
      this._live,
      h('button', { class: 'jp-AiflowPanel-refresh', title: 'Refresh', onclick: () => void this.connect() }, '⟳')
    );
    this._error = h('div', { class: 'jp-AiflowPanel-error', role: 'alert' });
    this._error.hidden = true;
    this._startButton = h(
      'button',
      { class: 'jp-AiflowPanel-startService jp-mod-styled jp-mod-accept', onclick: () => void this.startService() },
      'Start the service'
    );
    this._down = h(
      'div',
      { class: 'jp-AiflowPanel-down' },
      h(
        'p',
        {},
        'The aiflow-nb service is not running. It runs your workflows and keeps their event log; ' +
          'this panel shows them live once it runs. Start it here, or with `aiflow-nb server start`, ' +
          'or by using a %aiflow magic in a notebook.'
      ),
      this._startButton
    );
    this._down.hidden = true;
    this._workflowsBody = h('tbody');
    this._detail = h('section', { class: 'jp-AiflowPanel-detail' });
    this._keyInput = h('input', { class: 'jp-AiflowPanel-key', placeholder: 'key', 'aria-label': 'event key' });
    this._valueInput = h('input', { class: 'jp-AiflowPanel-value', placeholder: 'value (JSON or text)' });
    this._nsInput = h('input', { class: 'jp-AiflowPanel-namespace', placeholder: 'namespace', value: 'default' });
    this._formNote = h('div', { class: 'jp-AiflowPanel-formNote' });
    const form = h(
      'form',
      {
        class: 'jp-AiflowPanel-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this.sendEvent();
        }
      },
      this._keyInput,
      this._valueInput,
      this._nsInput,
      h('button', { type: 'submit', class: 'jp-AiflowPanel-send' }, 'Send'),
      this._formNote
    );
    this._filterInput = h('input', {
      class: 'jp-AiflowPanel-filter',
      placeholder: 'filter by key',
      oninput: () => this._renderFeed()
    });
    this._feedList = h('ul', { class: 'jp-AiflowPanel-feed' });
    this._main = h(
      'div',
      { class: 'jp-AiflowPanel-main' },
      h('h3', {}, 'Workflows'),
      h(
        'table',
        { class: 'jp-AiflowPanel-workflows' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'workflow'),
            h('th', { class: 'jp-AiflowPanel-colSeq' }, 'v'),
            h('th', { class: 'jp-AiflowPanel-colState' }, 'state'),
            h('th', { class: 'jp-AiflowPanel-colStatus' }, 'latest')
          )
        ),
        this._workflowsBody
      ),
      this._detail,
      h('h3', {}, 'Send an event'),
      form,
      h('h3', {}, 'Events'),
      this._filterInput,
      this._feedList
    );
    fill(this.node, header, this._error, this._down, this._main);
  }

  private _renderService(): void {
    const running = !!this.service?.running;
    this._down.hidden = running;
    this._main.hidden = !running;
    // While there is no service there is no stream to wait on: look now and then whether one was
    // started elsewhere (a magic, the CLI), so the panel comes back by itself.
    if (running) {
      window.clearInterval(this._probe);
      this._probe = 0;
    } else if (!this._probe) {
      this._probe = window.setInterval(() => void this.connect(), PROBE_MS);
    }
  }

  private _render(): void {
    this._renderService();
    this._renderWorkflows();
    this._renderDetail();
  }

  private _renderWorkflows(): void {
    const selected = this.selection.workflow ? workflowId(this.selection.workflow) : '';
    if (!this.workflows.length) {
      fill(this._workflowsBody, h('tr', {}, h('td', { colspan: '4', class: 'jp-AiflowPanel-empty' }, 'no workflow yet')));
      return;
    }
    fill(
      this._workflowsBody,
      ...this.workflows.map(w => {
        const status = w.latest_execution?.status ?? '';
        return h(
          'tr',
          {
            class: workflowId(w) === selected ? 'jp-mod-selected' : '',
            'data-workflow': workflowId(w),
            onclick: () => this.selectWorkflow(w.namespace, w.name)
          },
          h('td', {}, w.namespace === 'default' ? w.name : workflowId(w)),
          h('td', {}, String(w.version)),
          h('td', {}, w.paused ? 'paused' : 'active'),
          h('td', { class: `jp-AiflowPanel-status jp-mod-${status.toLowerCase()}` }, status)
        );
      })
    );
  }

  private _renderDetail(): void {
    const wf = this.selectedWorkflow;
    if (!wf) {
      fill(this._detail);
      return;
    }
    const button = (label: string, cls: string, action: () => void, disabled = false, title = '') =>
      h(
        'button',
        {
          class: `jp-mod-styled ${cls}`,
          disabled,
          title,
          'aria-label': title || label,
          onclick: (e: Event) => {
            e.stopPropagation();
            action();
          }
        },
        label
      );
    const svg = this._svg ? safeSvg(this._svg) : null;
    if (svg) {
      // graphviz sizes it in points; let it scale to the sidebar (its viewBox keeps the proportions).
      svg.setAttribute('width', '100%');
      svg.removeAttribute('height');
    }
    const graph = h('div', { class: 'jp-AiflowPanel-graph' }, svg);
    const executions = h(
      'table',
      { class: 'jp-AiflowPanel-executions' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'run'),
          h('th', { class: 'jp-AiflowPanel-colStatus' }, 'status'),
          h('th', { class: 'jp-AiflowPanel-colTime' }, 'started'),
          h('th', { class: 'jp-AiflowPanel-colActions' }, '')
        )
      ),
      h(
        'tbody',
        {},
        ...this.executions.slice(0, 20).map(e =>
          h(
            'tr',
            {
              class: e.id === this.selection.execution ? 'jp-mod-selected' : '',
              'data-execution': String(e.id),
              onclick: () => this.selectExecution(e.id)
            },
            h('td', {}, `#${e.id}`),
            h('td', { class: `jp-AiflowPanel-status jp-mod-${e.status.toLowerCase()}` }, e.status),
            h('td', {}, formatTime(e.start_time)),
            h(
              'td',
              {},
              e.status === 'RUNNING' ? button('Stop', 'jp-AiflowPanel-stopExecution', () => void this.stopExecution(e.id)) : null
            )
          )
        )
      )
    );
    const execution = this.selection.execution;
    const tasks = h(
      'table',
      { class: 'jp-AiflowPanel-tasks' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { class: 'jp-AiflowPanel-colTask' }, 'task · start · took'),
          h('th', { class: 'jp-AiflowPanel-colStatus' }, 'status'),
          h('th', { class: 'jp-AiflowPanel-colActions' }, '')
        )
      ),
      h(
        'tbody',
        {},
        ...this.tasks.map(t => {
          const alive = !isFinished(t.status);
          const finished = isFinished(t.status);
          return h(
            'tr',
            {
              class: [t.id === this._selectedTask ? 'jp-mod-selected' : '', finished ? 'jp-mod-openable' : ''].join(' '),
              'data-task': t.task,
              'data-task-execution': String(t.id),
              title: finished ? 'open the executed notebook and its log' : t.error ?? '',
              onclick: () => {
                this._selectedTask = t.id;
                this._renderDetail();
                if (finished) {
                  this._openRequested.emit(t);
                }
              }
            },
            // Two lines in one cell, so the table fits a narrow sidebar.
            h(
              'td',
              {},
              h('div', { class: 'jp-AiflowPanel-taskName' }, `${t.task} #${t.seq}`),
              h(
                'div',
                { class: 'jp-AiflowPanel-taskTimes' },
                [formatTime(t.start_time), formatDuration(runSeconds(t))].filter(Boolean).join(' · ')
              )
            ),
            h('td', { class: `jp-AiflowPanel-status jp-mod-${t.status.toLowerCase()}` }, t.status),
            h(
              'td',
              { class: 'jp-AiflowPanel-taskActions' },
              alive
                ? button('■', 'jp-AiflowPanel-stopTask', () => void this.taskAction('stop', t.task), false, 'Stop')
                : null,
              button('↻', 'jp-AiflowPanel-restartTask', () => void this.taskAction('restart', t.task), false, 'Restart')
            )
          );
        })
      )
    );
    fill(
      this._detail,
      h('h3', { class: 'jp-AiflowPanel-title' }, `${workflowId(wf)} v${wf.version}${wf.paused ? ' (paused)' : ''}`),
      h(
        'div',
        { class: 'jp-AiflowPanel-actions' },
        button('Start execution', 'jp-mod-accept jp-AiflowPanel-startExecution', () => void this.startExecution()),
        wf.paused
          ? button('Resume', 'jp-AiflowPanel-resume', () => void this.setPaused(false))
          : button('Pause', 'jp-AiflowPanel-pause', () => void this.setPaused(true))
      ),
      graph,
      h('h4', {}, 'Executions'),
      this.executions.length ? executions : h('p', { class: 'jp-AiflowPanel-empty' }, 'no execution yet'),
      execution !== null ? h('h4', {}, `Tasks of execution #${execution}`) : null,
      execution !== null ? tasks : null
    );
  }

  private _renderFeed(): void {
    const events = this.feed.filtered(this._filterInput.value).slice(0, 100);
    fill(
      this._feedList,
      ...events.map(e =>
        h('li', { 'data-key': e.key, title: e.create_time ?? '' }, describeEvent(e))
      )
    );
  }

  private _stale: IStale = NOTHING_STALE;
  private _timer = 0;
  private _busy = false;
  private _connecting = false;
  private _probe = 0;
  private _pinned = false;
  private _selectedTask: number | null = null;
  private _running = 0;
  private _svg = '';
  private _openRequested = new Signal<this, ITaskExecution>(this);
  private _runningChanged = new Signal<this, number>(this);
  private _live!: HTMLSpanElement;
  private _error!: HTMLDivElement;
  private _down!: HTMLDivElement;
  private _main!: HTMLDivElement;
  private _startButton!: HTMLButtonElement;
  private _workflowsBody!: HTMLTableSectionElement;
  private _detail!: HTMLElement;
  private _keyInput!: HTMLInputElement;
  private _valueInput!: HTMLInputElement;
  private _nsInput!: HTMLInputElement;
  private _formNote!: HTMLDivElement;
  private _filterInput!: HTMLInputElement;
  private _feedList!: HTMLUListElement;
}
