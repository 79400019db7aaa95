/** The panel's DOM: a skeleton built once, and functions that refill its parts from the state they are given. */

import { TaskAction } from './api';
import { fill, h, safeSvg } from './dom';
import { DRY_RUN_WINDOWS, DryRunWindow } from './dryrun';
import {
  describeEvent,
  formatDuration,
  formatTime,
  IAiflowEvent,
  IExecution,
  isFinished,
  ITaskExecution,
  ISelection,
  IWorkflow,
  latestRuns,
  RowAction,
  runSeconds,
  taskActions,
  workflowId
} from './state';
import { StreamState } from './stream';

/** How many events the feed lists at most. */
const FEED_MAX = 100;
/** How many executions the detail lists at most (the newest). */
const EXECUTIONS_MAX = 20;

/** What the skeleton's fixed controls do. */
export interface ISkeletonActions {
  refresh(): void;
  startService(): void;
  sendEvent(): void;
  filterChanged(): void;
}

/** The parts of the skeleton the panel refills or reads. */
export interface IPanelView {
  live: HTMLSpanElement;
  error: HTMLDivElement;
  down: HTMLDivElement;
  main: HTMLDivElement;
  startButton: HTMLButtonElement;
  workflowsBody: HTMLTableSectionElement;
  detail: HTMLElement;
  keyInput: HTMLInputElement;
  valueInput: HTMLInputElement;
  nsInput: HTMLInputElement;
  formNote: HTMLDivElement;
  filterInput: HTMLInputElement;
  /** Checked: the feed shows the service's own `aiflow.*` events too. */
  serviceToggle: HTMLInputElement;
  feedList: HTMLUListElement;
}

/** What the selected workflow's detail shows. */
export interface IDetailState {
  workflow: IWorkflow;
  svg: string;
  executions: IExecution[];
  execution: number | null;
  /** The selected execution's status (task actions need a RUNNING one). */
  executionStatus: string | null;
  tasks: ITaskExecution[];
  selectedTask: number | null;
  /** Each run's cause (by task execution id): in a few words, and the whole chain. */
  why: ReadonlyMap<number, IRunWhy>;
  /** Each task's operator (kind), from the spec of the version the shown execution runs. */
  kinds: ReadonlyMap<string, string>;
  dryRun: IDryRunState;
}

export interface IRunWhy {
  short: string;
  chain: string;
}

/** The "Dry run" of the selected workflow: the window picked and, once it answered, what it says. */
export interface IDryRunState {
  window: DryRunWindow;
  running: boolean;
  /** The summary and differences (null: not run yet for this workflow). */
  lines: string[] | null;
  /** What was replayed, e.g. "v2 over the last 24 hours". */
  title: string;
}

/** What the detail's rows and buttons do. */
export interface IDetailActions {
  startExecution(): void;
  runWithParameters(): void;
  setPaused(paused: boolean): void;
  selectExecution(id: number): void;
  stopExecution(id: number): void;
  selectTask(task: ITaskExecution): void;
  taskAction(action: TaskAction, task: string): void;
  openGraph(): void;
  openWorkflow(): void;
  dryRun(): void;
  setDryRunWindow(window: DryRunWindow): void;
  closeDryRun(): void;
}

/** Build the panel's skeleton into ``root`` (replacing what is there). */
export function buildPanel(root: HTMLElement, actions: ISkeletonActions): IPanelView {
  const live = h('span', { class: 'jp-AiflowPanel-live jp-mod-closed', title: 'event stream closed' });
  const header = h(
    'header',
    { class: 'jp-AiflowPanel-header' },
    h('h2', {}, 'aiflow-nb'),
    live,
    h('button', { class: 'jp-AiflowPanel-refresh', title: 'Refresh', onclick: () => actions.refresh() }, '⟳')
  );
  const error = h('div', { class: 'jp-AiflowPanel-error', role: 'alert' });
  error.hidden = true;
  const startButton = h(
    'button',
    { class: 'jp-AiflowPanel-startService jp-mod-styled jp-mod-accept', onclick: () => actions.startService() },
    'Start the service'
  );
  const down = h(
    'div',
    { class: 'jp-AiflowPanel-down' },
    h(
      'p',
      {},
      'The aiflow-nb service is not running. It runs your workflows and keeps their event log; ' +
        'this panel shows them live once it runs. Start it here, or with `aiflow-nb server start`, ' +
        'or by using a %aiflow magic in a notebook.'
    ),
    startButton
  );
  down.hidden = true;
  const workflowsBody = h('tbody');
  const detail = h('section', { class: 'jp-AiflowPanel-detail' });
  const keyInput = h('input', { class: 'jp-AiflowPanel-key', placeholder: 'key', 'aria-label': 'event key' });
  const valueInput = h('input', { class: 'jp-AiflowPanel-value', placeholder: 'value (JSON or text)' });
  const nsInput = h('input', { class: 'jp-AiflowPanel-namespace', placeholder: 'namespace', value: 'default' });
  const formNote = h('div', { class: 'jp-AiflowPanel-formNote' });
  const form = h(
    'form',
    {
      class: 'jp-AiflowPanel-form',
      onsubmit: (e: Event) => {
        e.preventDefault();
        actions.sendEvent();
      }
    },
    keyInput,
    valueInput,
    nsInput,
    h('button', { type: 'submit', class: 'jp-AiflowPanel-send' }, 'Send'),
    formNote
  );
  const filterInput = h('input', {
    class: 'jp-AiflowPanel-filter',
    placeholder: 'filter by key',
    oninput: () => actions.filterChanged()
  });
  const serviceToggle = h('input', {
    type: 'checkbox',
    class: 'jp-AiflowPanel-serviceEvents',
    onchange: () => actions.filterChanged()
  });
  const feedList = h('ul', { class: 'jp-AiflowPanel-feed' });
  const main = h(
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
      workflowsBody
    ),
    detail,
    h('h3', {}, 'Send an event'),
    form,
    h('h3', {}, 'Events'),
    h(
      'div',
      { class: 'jp-AiflowPanel-feedControls' },
      filterInput,
      h(
        'label',
        { class: 'jp-AiflowPanel-serviceLabel', title: "also the service's own events: statuses, submissions" },
        serviceToggle,
        'aiflow.*'
      )
    ),
    feedList
  );
  fill(root, header, error, down, main);
  return {
    live,
    error,
    down,
    main,
    startButton,
    workflowsBody,
    detail,
    keyInput,
    valueInput,
    nsInput,
    formNote,
    filterInput,
    serviceToggle,
    feedList
  };
}

/** Show the "not running" note or the main part. */
export function renderService(view: IPanelView, running: boolean): void {
  view.down.hidden = running;
  view.main.hidden = !running;
}

export function renderStartButton(button: HTMLButtonElement, starting: boolean): void {
  button.disabled = starting;
  button.textContent = starting ? 'Starting...' : 'Start the service';
}

export function renderStreamState(live: HTMLSpanElement, state: StreamState): void {
  live.className = `jp-AiflowPanel-live jp-mod-${state}`;
  live.title = state === 'open' ? 'live: following the event stream' : `event stream ${state}`;
}

/** The error line with its dismiss button. */
export function renderError(error: HTMLDivElement, message: string, dismiss: () => void): void {
  fill(error, h('span', {}, message), h('button', { title: 'Dismiss', onclick: () => dismiss() }, '×'));
  error.hidden = false;
}

export function hideError(error: HTMLDivElement): void {
  fill(error);
  error.hidden = true;
}

export function renderFormNote(note: HTMLDivElement, text: string, isError = false): void {
  note.textContent = text;
  note.className = isError ? 'jp-AiflowPanel-formNote jp-mod-error' : 'jp-AiflowPanel-formNote';
}

export function renderWorkflows(
  body: HTMLTableSectionElement,
  workflows: IWorkflow[],
  selection: ISelection['workflow'],
  select: (namespace: string, name: string) => void
): void {
  const selected = selection ? workflowId(selection) : '';
  if (!workflows.length) {
    fill(body, h('tr', {}, h('td', { colspan: '4', class: 'jp-AiflowPanel-empty' }, 'no workflow yet')));
    return;
  }
  fill(
    body,
    ...workflows.map(w => {
      const status = w.latest_execution?.status ?? '';
      return h(
        'tr',
        {
          class: workflowId(w) === selected ? 'jp-mod-selected' : '',
          'data-workflow': workflowId(w),
          onclick: () => select(w.namespace, w.name)
        },
        h('td', {}, w.namespace === 'default' ? w.name : workflowId(w)),
        h('td', {}, String(w.version)),
        h('td', {}, w.paused ? 'paused' : 'active'),
        h('td', { class: `jp-AiflowPanel-status jp-mod-${status.toLowerCase()}` }, status)
      );
    })
  );
}

/** The selected workflow's title, actions, graph, executions and (of the selected execution) tasks. */
export function renderDetail(detail: HTMLElement, state: IDetailState | null, actions: IDetailActions): void {
  if (!state) {
    fill(detail);
    return;
  }
  const wf = state.workflow;
  const execution = state.execution;
  fill(
    detail,
    h('h3', { class: 'jp-AiflowPanel-title' }, `${workflowId(wf)} v${wf.version}${wf.paused ? ' (paused)' : ''}`),
    h(
      'div',
      { class: 'jp-AiflowPanel-actions' },
      button('Start execution', 'jp-mod-accept jp-AiflowPanel-startExecution', () => actions.startExecution()),
      button(
        'Run with parameters...',
        'jp-AiflowPanel-runWith',
        () => actions.runWithParameters(),
        'Start an execution with parameter values for that run only'
      ),
      wf.paused
        ? button('Resume', 'jp-AiflowPanel-resume', () => actions.setPaused(false))
        : button('Pause', 'jp-AiflowPanel-pause', () => actions.setPaused(true)),
      button('Open', 'jp-AiflowPanel-openWorkflow', () => actions.openWorkflow(), 'Open the workflow in the main area'),
      state.svg
        ? button('⤢ Graph', 'jp-AiflowPanel-openGraph', () => actions.openGraph(), 'Open the graph large in the main area')
        : null
    ),
    dryRunControls(state.dryRun, actions),
    dryRunResult(state.dryRun, actions),
    graph(state.svg, () => actions.openGraph()),
    h('h4', {}, 'Executions'),
    state.executions.length
      ? executionsTable(state.executions, execution, actions)
      : h('p', { class: 'jp-AiflowPanel-empty' }, 'no execution yet'),
    execution !== null ? h('h4', {}, `Tasks of execution #${execution}`) : null,
    execution !== null ? tasksTable(state, actions) : null
  );
}

/** "Dry run" of the submitted version over a window: what its rules would have started, against what ran. */
function dryRunControls(state: IDryRunState, actions: IDetailActions): HTMLDivElement {
  const select = h(
    'select',
    {
      class: 'jp-AiflowPanel-dryRunWindow',
      'aria-label': 'dry run window',
      onchange: (e: Event) => actions.setDryRunWindow((e.target as HTMLSelectElement).value as DryRunWindow)
    },
    ...DRY_RUN_WINDOWS.map(([value, label]) => h('option', { value, selected: value === state.window }, label))
  );
  const run = button(
    state.running ? 'Dry running...' : 'Dry run',
    'jp-AiflowPanel-dryRun',
    () => actions.dryRun(),
    'Replay the submitted version over the logged events of the window: what would it have started? ' +
      'Nothing is run or written.'
  );
  run.disabled = state.running;
  return h('div', { class: 'jp-AiflowPanel-dryRunControls' }, run, select);
}

function dryRunResult(state: IDryRunState, actions: IDetailActions): HTMLDivElement | null {
  if (!state.lines) {
    return null;
  }
  return h(
    'div',
    { class: 'jp-AiflowPanel-dryRunResult', role: 'status' },
    h(
      'div',
      { class: 'jp-AiflowPanel-dryRunTitle' },
      h('b', {}, `Dry run of ${state.title}`),
      h('button', { title: 'Close', 'aria-label': 'Close the dry run', onclick: () => actions.closeDryRun() }, '×')
    ),
    h('ul', {}, ...state.lines.map(line => h('li', {}, line)))
  );
}

/** The feed: one item per event, its time kept on one line and its text wrapped, never cut. */
export function renderFeed(list: HTMLUListElement, events: IAiflowEvent[], hidden = 0): void {
  const items = events.slice(0, FEED_MAX).map(e =>
    h(
      'li',
      { 'data-key': e.key, title: e.create_time ?? '' },
      h('span', { class: 'jp-AiflowPanel-feedTime' }, formatTime(e.create_time)),
      h('span', { class: 'jp-AiflowPanel-feedText' }, describeEvent(e))
    )
  );
  const note = events.length
    ? null
    : h('li', { class: 'jp-AiflowPanel-empty' }, hidden ? `no event of yours yet (${hidden} of the service hidden)` : 'no event yet');
  fill(list, ...items, note);
}

/** A button inside a clickable row: its click must not select the row too. */
function button(label: string, cls: string, action: () => void, title = ''): HTMLButtonElement {
  return h(
    'button',
    {
      class: `jp-mod-styled ${cls}`,
      title,
      'aria-label': title || label,
      onclick: (e: Event) => {
        e.stopPropagation();
        action();
      }
    },
    label
  );
}

function graph(text: string, open: () => void): HTMLDivElement {
  const svg = text ? safeSvg(text) : null;
  if (svg) {
    // graphviz sizes it in points: at that size, or scaled down to the sidebar (never up; the viewBox
    // keeps the proportions).
    svg.removeAttribute('height');
  }
  return h(
    'div',
    { class: 'jp-AiflowPanel-graph', title: 'open the graph large', onclick: () => open() },
    svg
  );
}

/** The graph at its own size in a main-area tab, scrolled when larger than the tab. */
export function renderLargeGraph(root: HTMLElement, text: string): void {
  const svg = text ? safeSvg(text) : null;
  fill(root, svg ?? h('p', { class: 'jp-AiflowPanel-empty' }, 'no graph: select a workflow in the aiflow-nb panel'));
}

function executionsTable(executions: IExecution[], selected: number | null, actions: IDetailActions): HTMLTableElement {
  return h(
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
      ...executions.slice(0, EXECUTIONS_MAX).map(e =>
        h(
          'tr',
          {
            class: e.id === selected ? 'jp-mod-selected' : '',
            'data-execution': String(e.id),
            onclick: () => actions.selectExecution(e.id)
          },
          h('td', {}, `#${e.id}`),
          h('td', { class: `jp-AiflowPanel-status jp-mod-${e.status.toLowerCase()}` }, e.status),
          h('td', {}, formatTime(e.start_time)),
          h(
            'td',
            {},
            e.status === 'RUNNING'
              ? button('Stop', 'jp-AiflowPanel-stopExecution', () => actions.stopExecution(e.id))
              : null
          )
        )
      )
    )
  );
}

function tasksTable(state: IDetailState, actions: IDetailActions): HTMLTableElement {
  const { tasks, selectedTask, executionStatus } = state;
  const latest = latestRuns(tasks);
  return h(
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
      ...tasks.map(t =>
        taskRow(t, state, t.id === selectedTask, taskActions(t, executionStatus, latest.has(t.id)), actions)
      )
    )
  );
}

const ROW_BUTTONS: Record<RowAction, [string, string]> = {
  start: ['▶', 'Start'],
  stop: ['■', 'Stop'],
  restart: ['↻', 'Restart']
};

function taskRow(
  t: ITaskExecution,
  state: IDetailState,
  selected: boolean,
  offered: RowAction[],
  actions: IDetailActions
): HTMLTableRowElement {
  const finished = isFinished(t.status);
  const kind = state.kinds.get(t.task);
  const why = state.why.get(t.id);
  return h(
    'tr',
    {
      class: [selected ? 'jp-mod-selected' : '', finished ? 'jp-mod-openable' : ''].join(' '),
      'data-task': t.task,
      'data-task-execution': String(t.id),
      title: finished ? 'open the executed notebook and its log' : '',
      onclick: () => actions.selectTask(t)
    },
    // Two lines in one cell, so the table fits a narrow sidebar.
    h(
      'td',
      {},
      h(
        'div',
        { class: 'jp-AiflowPanel-taskName' },
        `${t.task} #${t.seq}`,
        kind ? h('span', { class: 'jp-AiflowPanel-taskKind', title: 'operator' }, kind) : null
      ),
      h(
        'div',
        { class: 'jp-AiflowPanel-taskTimes' },
        [formatTime(t.start_time), formatDuration(runSeconds(t))].filter(Boolean).join(' · ')
      ),
      why ? h('div', { class: 'jp-AiflowPanel-taskWhy', title: why.chain }, `why: ${why.short}`) : null,
      t.error ? h('div', { class: 'jp-AiflowPanel-taskError', title: t.error }, t.error) : null
    ),
    h('td', { class: `jp-AiflowPanel-status jp-mod-${t.status.toLowerCase()}` }, t.status),
    h(
      'td',
      { class: 'jp-AiflowPanel-taskActions' },
      ...offered.map(action => {
        const [label, title] = ROW_BUTTONS[action];
        return button(label, `jp-AiflowPanel-${action}Task`, () => actions.taskAction(action, t.task), title);
      })
    )
  );
}
