/**
 * The panel's state logic, free of DOM and JupyterLab so it can be unit tested:
 * what a stream event makes stale, the event feed, the event form's checks,
 * and how times and statuses are shown.
 */

export type TaskStatus =
  | 'INIT'
  | 'QUEUED'
  | 'RUNNING'
  | 'SUCCESS'
  | 'FAILED'
  | 'STOPPING'
  | 'STOPPED'
  | 'RETRYING';

export interface IAiflowEvent {
  offset: number;
  key: string;
  value: unknown;
  namespace: string;
  sender?: string | null;
  context?: { execution_id?: number } | null;
  create_time?: string;
}

export interface IExecution {
  id: number;
  namespace: string;
  workflow: string;
  version: number;
  status: string;
  start_time: string;
  end_time?: string | null;
}

export interface IWorkflow {
  namespace: string;
  name: string;
  version: number;
  paused: boolean;
  latest_execution?: IExecution | null;
  /** When each schedule is next due (ISO times; "(workflow)" names the workflow's own). */
  next_runs?: Record<string, string>;
}

export interface ITaskExecution {
  id: number;
  execution_id: number;
  task: string;
  seq: number;
  attempt: number;
  status: TaskStatus;
  start_time?: string | null;
  end_time?: string | null;
  duration?: number | null;
  error?: string | null;
}

/** The workflow and execution the user looks at. */
export interface ISelection {
  workflow: { namespace: string; name: string } | null;
  execution: number | null;
}

/** What must be fetched again after some events. */
export interface IStale {
  workflows: boolean;
  executions: boolean;
  tasks: boolean;
  graph: boolean;
  running: boolean;
}

export const NOTHING_STALE: IStale = {
  workflows: false,
  executions: false,
  tasks: false,
  graph: false,
  running: false
};

export const TASK_STATUS = 'aiflow.task.status';
export const EXECUTION_STATUS = 'aiflow.execution.status';
/** `aiflow.workflow.submitted|paused|resumed|deleted`: any of them refreshes the workflow list. */
export const WORKFLOW_PREFIX = 'aiflow.workflow.';

/** Statuses after which a task execution has an executed notebook and a final log. */
export const FINISHED: ReadonlySet<string> = new Set(['SUCCESS', 'FAILED', 'STOPPED']);

export function isFinished(status: string): boolean {
  return FINISHED.has(status);
}

/** Started and not yet ended (the service ignores START on such a task). */
const ALIVE: ReadonlySet<string> = new Set(['QUEUED', 'RUNNING', 'STOPPING', 'RETRYING']);

export type RowAction = 'start' | 'stop' | 'restart';

/**
 * What a task row offers: the service takes task actions only in a RUNNING execution, and on a task's
 * latest run; an alive run can be stopped (unless it is stopping already) or restarted, an ended one started.
 */
export function taskActions(te: ITaskExecution, executionStatus: string | null, latest: boolean): RowAction[] {
  if (executionStatus !== 'RUNNING' || !latest) {
    return [];
  }
  if (!ALIVE.has(te.status)) {
    return ['start'];
  }
  return te.status === 'STOPPING' ? ['restart'] : ['stop', 'restart'];
}

/** The ids of each task's latest run among ``tasks``. */
export function latestRuns(tasks: readonly ITaskExecution[]): Set<number> {
  const latest = new Map<string, number>();
  for (const t of tasks) {
    latest.set(t.task, Math.max(latest.get(t.task) ?? -Infinity, t.id));
  }
  return new Set(latest.values());
}

/** The service's own events (`aiflow.*`: statuses, submissions), hidden from the feed unless asked for. */
export function isServiceEvent(e: IAiflowEvent): boolean {
  return e.key.startsWith('aiflow.');
}

function sameWorkflow(sel: ISelection, namespace: string, name: unknown): boolean {
  return sel.workflow !== null && sel.workflow.namespace === namespace && sel.workflow.name === name;
}

/** Which views one stream event makes stale, given what is selected. */
export function staleAfter(event: IAiflowEvent, sel: ISelection): IStale {
  const value = (event.value ?? {}) as Record<string, unknown>;
  if (event.key === TASK_STATUS) {
    const mine = sel.execution !== null && value.execution_id === sel.execution;
    return { ...NOTHING_STALE, tasks: mine, graph: mine, running: true };
  }
  if (event.key === EXECUTION_STATUS) {
    const mine = sameWorkflow(sel, event.namespace, value.workflow);
    return { ...NOTHING_STALE, workflows: true, executions: mine, graph: mine, running: true };
  }
  if (event.key.startsWith(WORKFLOW_PREFIX)) {
    return { ...NOTHING_STALE, workflows: true };
  }
  return NOTHING_STALE;
}

/** The union of two stale sets (events arriving in one burst are fetched once). */
export function mergeStale(a: IStale, b: IStale): IStale {
  return {
    workflows: a.workflows || b.workflows,
    executions: a.executions || b.executions,
    tasks: a.tasks || b.tasks,
    graph: a.graph || b.graph,
    running: a.running || b.running
  };
}

export function anyStale(s: IStale): boolean {
  return s.workflows || s.executions || s.tasks || s.graph || s.running;
}

/** The latest events, newest first, bounded, without duplicates (a reconnect may replay). */
export class EventFeed {
  constructor(readonly capacity = 200) {}

  get lastOffset(): number {
    return this._last;
  }

  get events(): readonly IAiflowEvent[] {
    return this._events;
  }

  /** Add an event; false when it was already seen. */
  add(event: IAiflowEvent): boolean {
    if (event.offset <= this._last) {
      return false;
    }
    this._last = event.offset;
    this._events.unshift(event);
    if (this._events.length > this.capacity) {
      this._events.length = this.capacity;
    }
    return true;
  }

  /**
   * The events whose key contains ``filter`` (case-insensitive; all for an empty filter), the service's
   * own `aiflow.*` events only when ``service`` is true.
   */
  filtered(filter: string, service = true): IAiflowEvent[] {
    const f = filter.trim().toLowerCase();
    return this._events.filter(e => (service || !isServiceEvent(e)) && (!f || e.key.toLowerCase().includes(f)));
  }

  private _events: IAiflowEvent[] = [];
  private _last = 0;
}

/** Where a reconnecting stream starts: a short history of the log, then live. */
export function initialSince(latestOffset: number, history: number): number {
  return Math.max(0, latestOffset - history);
}

/** Milliseconds before reconnect attempt ``n`` (0-based): doubling from 500 ms, capped at 10 s. */
export function reconnectDelay(n: number): number {
  return Math.min(10000, 500 * 2 ** Math.max(0, n));
}

export interface IEventInput {
  key: string;
  value: unknown;
  namespace: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

/** The event form's input, checked before anything is sent. */
export function checkEventForm(key: string, value: string, namespace: string): Checked<IEventInput> {
  const k = key.trim();
  if (!k) {
    return { ok: false, error: 'the event key is empty' };
  }
  if (k.startsWith('aiflow.')) {
    return { ok: false, error: "keys starting with 'aiflow.' are reserved for the service" };
  }
  return { ok: true, value: { key: k, value: parseValue(value), namespace: namespace.trim() || 'default' } };
}

/** A value as JSON when it parses (like `%aiflow send`), else the string; empty -> null. */
export function parseValue(raw: string): unknown {
  if (raw.trim() === '') {
    return null;
  }
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** The text of a service error body, or a fallback made of the HTTP status. */
export function errorMessage(status: number, body: string): string {
  try {
    const data = JSON.parse(body);
    if (data && data.error && typeof data.error.message === 'string') {
      return data.error.message;
    }
  } catch {
    // not JSON: fall through
  }
  const text = body.trim().split('\n')[0]?.slice(0, 200);
  return text ? `HTTP ${status}: ${text}` : `HTTP ${status}`;
}

/** The field a refusal names (the dialog's), if any. */
export function errorField(body: string): string | undefined {
  try {
    const field = JSON.parse(body)?.error?.field;
    return typeof field === 'string' ? field : undefined;
  } catch {
    return undefined;
  }
}

/** "1.2 s", "3 min 4 s", "" for unknown. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return m < 60 ? `${m} min ${s} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A server time as local "HH:MM:SS" (today) or "YYYY-MM-DD HH:MM". */
export function formatTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) {
    return '';
  }
  const t = new Date(iso);
  if (isNaN(t.getTime())) {
    return iso;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  const hms = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  if (t.toDateString() === now.toDateString()) {
    return hms;
  }
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${hms.slice(0, 5)}`;
}

/** The seconds a task execution has run: its duration, or now - start while it runs. */
export function runSeconds(te: ITaskExecution, now: Date = new Date()): number | null {
  if (te.duration !== null && te.duration !== undefined) {
    return te.duration;
  }
  if (te.start_time && !te.end_time) {
    return Math.max(0, (now.getTime() - new Date(te.start_time).getTime()) / 1000);
  }
  return null;
}

/** Count the running task executions. */
export function countRunning(tasks: readonly ITaskExecution[]): number {
  return tasks.filter(t => t.status === 'RUNNING').length;
}

/** One line describing an event in the feed (status events in words, others as key = value). */
export function describeEvent(e: IAiflowEvent): string {
  const where = e.namespace === 'default' ? '' : `${e.namespace}/`;
  const v = (e.value ?? {}) as Record<string, unknown>;
  if (e.key === TASK_STATUS && v.task !== undefined) {
    return `#${e.offset} ${where}${v.workflow}: ${v.task} #${v.seq} ${v.status}`;
  }
  if (e.key === EXECUTION_STATUS && v.execution_id !== undefined) {
    return `#${e.offset} ${where}${v.workflow}: execution #${v.execution_id} ${v.status}`;
  }
  const value = e.value === null || e.value === undefined ? '' : typeof e.value === 'string' ? e.value : JSON.stringify(e.value);
  const short = value.length > 120 ? value.slice(0, 117) + '...' : value;
  return `#${e.offset} ${where}${e.key}${short ? ' = ' + short : ''}`;
}

/** The workflow's key in selects and maps. */
export function workflowId(w: { namespace: string; name: string }): string {
  return `${w.namespace}/${w.name}`;
}

/**
 * The panel's workflows with one the service has just accepted: its version where the list has it, else a new
 * row (not paused, no execution yet) in the service's order (namespace, then name). The next fetch replaces it.
 */
export function withSubmitted(
  workflows: readonly IWorkflow[],
  submitted: { namespace: string; name: string; version: number }
): IWorkflow[] {
  const id = workflowId(submitted);
  if (workflows.some(w => workflowId(w) === id)) {
    return workflows.map(w => (workflowId(w) === id ? { ...w, version: Math.max(w.version, submitted.version) } : w));
  }
  const added: IWorkflow = { namespace: submitted.namespace, name: submitted.name, version: submitted.version, paused: false };
  const at = workflows.findIndex(
    w => w.namespace > added.namespace || (w.namespace === added.namespace && w.name > added.name)
  );
  return at < 0 ? [...workflows, added] : [...workflows.slice(0, at), added, ...workflows.slice(at)];
}

/** The execution to show: the one the user picked while it is listed, else the newest (follow new runs). */
export function pickExecution(
  executions: readonly IExecution[],
  selected: number | null,
  pinned: boolean
): number | null {
  if (pinned && selected !== null && executions.some(e => e.id === selected)) {
    return selected;
  }
  return executions.length ? Math.max(...executions.map(e => e.id)) : null;
}

/** Task executions in the order they were created (the service's ids grow). */
export function sortTasks(tasks: readonly ITaskExecution[]): ITaskExecution[] {
  return [...tasks].sort((a, b) => a.id - b.id);
}

export type TimeWindow = 'any' | 'hour' | 'day' | 'week';

const WINDOW_MS: Record<TimeWindow, number> = { any: Infinity, hour: 3600e3, day: 86400e3, week: 7 * 86400e3 };

/** The executions of one status ('' any) that started within the window before ``now``. */
export function filterExecutions(
  executions: readonly IExecution[],
  status: string,
  window: TimeWindow,
  now: Date = new Date()
): IExecution[] {
  const since = now.getTime() - WINDOW_MS[window];
  return executions.filter(
    e => (!status || e.status === status) && (window === 'any' || new Date(e.start_time).getTime() >= since)
  );
}

/** A spec to read: each embedded notebook shown as its cell count, not its JSON. */
export function specForReading(spec: { tasks: { [field: string]: unknown }[] }): unknown {
  return {
    ...spec,
    tasks: spec.tasks.map(t => {
      const nb = t.notebook as { cells?: unknown[] } | undefined;
      return nb && Array.isArray(nb.cells) ? { ...t, notebook: `<notebook of ${nb.cells.length} cells>` } : t;
    })
  };
}
