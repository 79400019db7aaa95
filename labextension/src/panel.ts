/** The left-sidebar panel: workflows, the selected one's graph, executions and tasks, an event form and feed. */

import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { AiflowApi, ApiError, IHealth, IServiceState, TaskAction } from './api';
import { DEFAULT_WINDOW, DRY_RUN_WINDOWS, dryRunBody, dryRunLines, DryRunWindow } from './dryrun';
import {
  anyStale,
  checkEventForm,
  countRunning,
  EventFeed,
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
  sortTasks,
  staleAfter,
  withSubmitted,
  workflowId
} from './state';
import { RunDialog } from './runDialog';
import { EventStream, StreamState } from './stream';
import {
  buildPanel,
  hideError,
  IDetailActions,
  IDryRunState,
  IPanelView,
  IRunWhy,
  renderDetail,
  renderError,
  renderFeed,
  renderFormNote,
  renderService,
  renderStartButton,
  renderStreamState,
  renderWorkflows
} from './views';

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
    this._view = buildPanel(this.node, {
      refresh: () => void this.connect(),
      startService: () => void this.startService(),
      sendEvent: () => void this.sendEvent(),
      filterChanged: () => this._renderFeed()
    });
  }

  readonly stream: EventStream;
  readonly feed = new EventFeed();

  /** A finished task execution the user clicked: open its notebook and log. */
  get openRequested(): ISignal<this, ITaskExecution> {
    return this._openRequested;
  }

  /** The user asked to see the graph large. */
  get graphRequested(): ISignal<this, void> {
    return this._graphRequested;
  }

  /** The user asked to open the selected workflow in the main area. */
  get workflowRequested(): ISignal<this, IWorkflow> {
    return this._workflowRequested;
  }

  /** The selected workflow's graph (SVG text) changed. */
  get graphChanged(): ISignal<this, string> {
    return this._graphChanged;
  }

  /** The selected workflow's graph as SVG text ('' when none is selected). */
  get graph(): string {
    return this.selection.workflow ? this._svg : '';
  }

  /** The selected workflow's name, for the large graph's tab. */
  get graphTitle(): string {
    return this.selection.workflow ? workflowId(this.selection.workflow) : '';
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
    renderStartButton(this._view.startButton, true);
    try {
      await this.api.startService();
      this.clearError();
    } catch (err) {
      this.showError(err);
    } finally {
      renderStartButton(this._view.startButton, false);
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
    this._dryRun = { ...this._dryRun, running: false, lines: null };
    this._pinned = false;
    this._selectedTask = null;
    this.executions = [];
    this.tasks = [];
    this._render();
    this.refresh({ ...NOTHING_STALE, executions: true, tasks: true, graph: true });
  }

  /**
   * A workflow the service has just accepted from the dialog: its row shown and selected at once (from the
   * answer), the service's own view fetched right after; ``start`` then starts an execution of it.
   */
  showSubmitted(submitted: { namespace: string; name: string; version: number }, start: boolean): void {
    this.workflows = withSubmitted(this.workflows, submitted);
    this.selectWorkflow(submitted.namespace, submitted.name);
    this.refresh(ALL_STALE);
    if (start) {
      void this._act(async () => {
        const id = await this.api.startExecution(submitted.namespace, submitted.name);
        this.selection = { ...this.selection, execution: id };
        this._pinned = true;
      }, ALL_STALE);
    }
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

  /** "Run with parameters": the workflow view's dialog for the selected workflow; the execution it starts is shown. */
  async runWithParameters(): Promise<void> {
    const wf = this.selectedWorkflow;
    if (!wf) {
      return this.showError('select a workflow first');
    }
    const dialog = new RunDialog(this.api, wf.namespace, wf.name);
    await dialog.open();
    const answer = await dialog.done;
    if (answer === null) {
      return;
    }
    const shown = this.selection.workflow;
    if (typeof answer.id === 'number' && shown && workflowId(shown) === workflowId(wf)) {
      this.selection = { ...this.selection, execution: answer.id };
      this._pinned = true;
    }
    this.refresh(ALL_STALE);
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

  /**
   * Replay the selected workflow's submitted version over the picked window of the log (nothing runs) and
   * show its summary and differences with what ran.
   */
  async dryRun(): Promise<void> {
    const wf = this.selectedWorkflow;
    if (!wf) {
      return this.showError('select a workflow first');
    }
    const id = workflowId(wf);
    const window = this._dryRun.window;
    const label = DRY_RUN_WINDOWS.find(([w]) => w === window)?.[1] ?? window;
    this._dryRun = { ...this._dryRun, running: true };
    this._renderDetail();
    let lines: string[] | null = null;
    try {
      lines = dryRunLines(await this.api.replay(dryRunBody(wf.namespace, wf.name, window, new Date())));
      this.clearError();
    } catch (err) {
      this.showError(err);
    }
    if (this.selection.workflow && workflowId(this.selection.workflow) === id) {
      this._dryRun = { ...this._dryRun, running: false, lines, title: `${id} v${wf.version} over the ${label}` };
      this._renderDetail();
    }
  }

  /** Send the form's event; an empty key is refused here, before anything is sent. */
  async sendEvent(): Promise<void> {
    const { keyInput, valueInput, nsInput, formNote } = this._view;
    const checked = checkEventForm(keyInput.value, valueInput.value, nsInput.value);
    if (!checked.ok) {
      renderFormNote(formNote, checked.error, true);
      return;
    }
    try {
      const offset = await this.api.sendEvent(checked.value);
      renderFormNote(formNote, `sent ${checked.value.key} (offset ${offset})`);
    } catch (err) {
      formNote.textContent = '';
      this.showError(err);
    }
  }

  focusEventForm(): void {
    this._view.keyInput.focus();
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
    renderError(this._view.error, message, () => this.clearError());
  }

  clearError(): void {
    hideError(this._view.error);
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
    jobs.push(this._fetchSelected(stale));
    // Wait for every request, so none fails unheard when another one failed first; then report the first.
    const failed = (await Promise.allSettled(jobs)).find(r => r.status === 'rejected');
    if (failed) {
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  /** The selected workflow's executions, then (of the execution shown) its tasks and graph. */
  private async _fetchSelected(stale: IStale): Promise<void> {
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
    const jobs: Promise<void>[] = [];
    if (stale.tasks) {
      jobs.push(
        execution === null
          ? Promise.resolve(void (this.tasks = []))
          : this.api.taskExecutions(execution).then(t => void (this.tasks = sortTasks(t)))
      );
    }
    if (wf && stale.graph) {
      jobs.push(
        this.api.graph(wf.namespace, wf.name, execution).then(svg => {
          if (svg !== this._svg) {
            this._svg = svg;
            this._graphChanged.emit(svg);
          }
        })
      );
    }
    if (wf) {
      jobs.push(this._fetchKinds());
    }
    await Promise.all(jobs);
    await this._fetchWhy();
  }

  /**
   * Each task's operator, from the spec of the version the shown execution runs (the latest version's
   * when none is shown): a newer version may give a task another kind. Asked once per version.
   */
  private async _fetchKinds(): Promise<void> {
    const wf = this.selectedWorkflow;
    const version = this.selectedExecution?.version ?? wf?.version;
    const key = wf ? `${workflowId(wf)}@${version}` : '';
    if (!wf || key === this._kindsOf) {
      return;
    }
    const { spec } = await this.api.workflow(wf.namespace, wf.name, version);
    this._kinds = new Map(spec.tasks.map(t => [t.name, t.kind]));
    this._kindsOf = key;
  }

  /** The cause of each run shown, asked once per run (a run's cause never changes). */
  private async _fetchWhy(): Promise<void> {
    const missing = this.tasks.filter(t => !this._why.has(t.id));
    await Promise.allSettled(
      missing.map(async t => {
        const { links, short } = await this.api.why(t.id);
        this._why.set(t.id, { short, chain: links.map(l => l.text).join(' <- ') });
      })
    );
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
    renderStreamState(this._view.live, state);
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

  // -- rendering (the DOM itself is built in views.ts) -------------------------

  private _renderService(): void {
    const running = !!this.service?.running;
    renderService(this._view, running);
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
    renderWorkflows(this._view.workflowsBody, this.workflows, this.selection.workflow, (namespace, name) =>
      this.selectWorkflow(namespace, name)
    );
    this._renderDetail();
  }

  private _renderDetail(): void {
    const wf = this.selectedWorkflow;
    const state = wf && {
      workflow: wf,
      svg: this._svg,
      executions: this.executions,
      execution: this.selection.execution,
      executionStatus: this.selectedExecution?.status ?? null,
      tasks: this.tasks,
      selectedTask: this._selectedTask,
      why: this._why,
      kinds: this._kindsOf.startsWith(`${workflowId(wf)}@`) ? this._kinds : new Map<string, string>(),
      dryRun: this._dryRun
    };
    renderDetail(this._view.detail, state, this._detailActions);
  }

  private _renderFeed(): void {
    const filter = this._view.filterInput.value;
    const shown = this.feed.filtered(filter, this._view.serviceToggle.checked);
    renderFeed(this._view.feedList, shown, this.feed.filtered(filter).length - shown.length);
  }

  private readonly _detailActions: IDetailActions = {
    startExecution: () => void this.startExecution(),
    runWithParameters: () => void this.runWithParameters(),
    setPaused: paused => void this.setPaused(paused),
    selectExecution: id => this.selectExecution(id),
    stopExecution: id => void this.stopExecution(id),
    selectTask: task => {
      this._selectedTask = task.id;
      this._renderDetail();
      if (isFinished(task.status)) {
        this._openRequested.emit(task);
      }
    },
    taskAction: (action, task) => void this.taskAction(action, task),
    openGraph: () => this._graphRequested.emit(),
    openWorkflow: () => {
      const wf = this.selectedWorkflow;
      if (wf) {
        this._workflowRequested.emit(wf);
      }
    },
    dryRun: () => void this.dryRun(),
    setDryRunWindow: (window: DryRunWindow) => {
      this._dryRun = { ...this._dryRun, window };
    },
    closeDryRun: () => {
      this._dryRun = { ...this._dryRun, lines: null };
      this._renderDetail();
    }
  };

  private _stale: IStale = NOTHING_STALE;
  private _timer = 0;
  private _busy = false;
  private _connecting = false;
  private _probe = 0;
  private _pinned = false;
  private _selectedTask: number | null = null;
  private _running = 0;
  private _svg = '';
  private _why = new Map<number, IRunWhy>();
  private _kinds = new Map<string, string>();
  private _kindsOf = '';
  private _dryRun: IDryRunState = { window: DEFAULT_WINDOW, running: false, lines: null, title: '' };
  private _openRequested = new Signal<this, ITaskExecution>(this);
  private _runningChanged = new Signal<this, number>(this);
  private _graphRequested = new Signal<this, void>(this);
  private _workflowRequested = new Signal<this, IWorkflow>(this);
  private _graphChanged = new Signal<this, string>(this);
  private _view: IPanelView;
}
