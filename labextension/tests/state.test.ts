import { describe, expect, it } from 'vitest';

import {
  checkEventForm,
  countRunning,
  describeEvent,
  errorMessage,
  EventFeed,
  EXECUTION_STATUS,
  formatDuration,
  IAiflowEvent,
  initialSince,
  IWorkflow,
  ISelection,
  ITaskExecution,
  latestRuns,
  mergeStale,
  NOTHING_STALE,
  parseValue,
  pickExecution,
  reconnectDelay,
  runSeconds,
  staleAfter,
  TASK_STATUS,
  taskActions,
  TaskStatus,
  withSubmitted
} from '../src/state';

const event = (offset: number, key: string, value: unknown = null, namespace = 'default'): IAiflowEvent => ({
  offset,
  key,
  value,
  namespace
});

const selected: ISelection = { workflow: { namespace: 'default', name: 'wf' }, execution: 7 };

describe('staleAfter', () => {
  it('refreshes tasks and graph only for a task of the selected execution', () => {
    const mine = staleAfter(event(1, TASK_STATUS, { execution_id: 7, status: 'RUNNING' }), selected);
    expect(mine).toMatchObject({ tasks: true, graph: true, running: true, workflows: false });
    const other = staleAfter(event(2, TASK_STATUS, { execution_id: 8 }), selected);
    expect(other).toMatchObject({ tasks: false, graph: false, running: true });
  });

  it('refreshes the workflow list on any execution status, executions only for the selected workflow', () => {
    const mine = staleAfter(event(3, EXECUTION_STATUS, { workflow: 'wf', execution_id: 9 }), selected);
    expect(mine).toMatchObject({ workflows: true, executions: true, graph: true });
    const elsewhere = staleAfter(event(4, EXECUTION_STATUS, { workflow: 'wf' }, 'other'), selected);
    expect(elsewhere).toMatchObject({ workflows: true, executions: false });
  });

  it('ignores user events and handles an empty selection', () => {
    expect(staleAfter(event(5, 'hour_done', 3), selected)).toEqual(NOTHING_STALE);
    const none: ISelection = { workflow: null, execution: null };
    expect(staleAfter(event(6, TASK_STATUS, { execution_id: 7 }), none).tasks).toBe(false);
    expect(staleAfter(event(7, 'aiflow.workflow.submitted', {}), none).workflows).toBe(true);
  });

  it('merges bursts into one set', () => {
    const merged = mergeStale({ ...NOTHING_STALE, tasks: true }, { ...NOTHING_STALE, workflows: true });
    expect(merged).toEqual({ ...NOTHING_STALE, tasks: true, workflows: true });
  });
});

describe('EventFeed', () => {
  it('keeps the newest first, drops replays and respects its capacity', () => {
    const feed = new EventFeed(3);
    expect(feed.add(event(1, 'a'))).toBe(true);
    expect(feed.add(event(2, 'b'))).toBe(true);
    expect(feed.add(event(2, 'b'))).toBe(false);
    expect(feed.add(event(1, 'a'))).toBe(false);
    feed.add(event(3, 'c'));
    feed.add(event(4, 'd'));
    expect(feed.events.map(e => e.offset)).toEqual([4, 3, 2]);
    expect(feed.lastOffset).toBe(4);
  });

  it('filters by key, case-insensitively', () => {
    const feed = new EventFeed();
    feed.add(event(1, 'hour_done'));
    feed.add(event(2, TASK_STATUS));
    feed.add(event(3, 'HOUR_late'));
    expect(feed.filtered('hour').map(e => e.offset)).toEqual([3, 1]);
    expect(feed.filtered('  ').length).toBe(3);
  });

  it("hides the service's own events unless asked for", () => {
    const feed = new EventFeed();
    feed.add(event(1, 'go'));
    feed.add(event(2, TASK_STATUS));
    feed.add(event(3, 'aiflow.workflow.submitted'));
    expect(feed.filtered('', false).map(e => e.offset)).toEqual([1]);
    expect(feed.filtered('', true).map(e => e.offset)).toEqual([3, 2, 1]);
    expect(feed.filtered('status', false)).toEqual([]);
  });
});

const run = (id: number, task: string, status: TaskStatus): ITaskExecution => ({
  id,
  execution_id: 1,
  task,
  seq: id,
  attempt: 1,
  status
});

describe('taskActions', () => {
  it('offers nothing in an execution that is not RUNNING, nor on an older run', () => {
    expect(taskActions(run(1, 't', 'FAILED'), 'FAILED', true)).toEqual([]);
    expect(taskActions(run(1, 't', 'RUNNING'), 'STOPPED', true)).toEqual([]);
    expect(taskActions(run(1, 't', 'SUCCESS'), 'RUNNING', false)).toEqual([]);
    expect(taskActions(run(1, 't', 'RUNNING'), null, true)).toEqual([]);
  });

  it('stops or restarts an alive run and starts an ended one', () => {
    expect(taskActions(run(1, 't', 'RUNNING'), 'RUNNING', true)).toEqual(['stop', 'restart']);
    expect(taskActions(run(1, 't', 'QUEUED'), 'RUNNING', true)).toEqual(['stop', 'restart']);
    expect(taskActions(run(1, 't', 'STOPPING'), 'RUNNING', true)).toEqual(['restart']);
    expect(taskActions(run(1, 't', 'SUCCESS'), 'RUNNING', true)).toEqual(['start']);
    expect(taskActions(run(1, 't', 'STOPPED'), 'RUNNING', true)).toEqual(['start']);
  });

  it("finds each task's latest run", () => {
    expect(latestRuns([run(1, 'a', 'SUCCESS'), run(3, 'a', 'RUNNING'), run(2, 'b', 'FAILED')])).toEqual(
      new Set([3, 2])
    );
  });
});

describe('checkEventForm', () => {
  it('refuses an empty key before sending', () => {
    expect(checkEventForm('', '1', 'default')).toEqual({ ok: false, error: 'the event key is empty' });
    expect(checkEventForm('   ', '', '')).toMatchObject({ ok: false });
  });

  it('refuses reserved keys', () => {
    expect(checkEventForm('aiflow.task.status', '', '')).toMatchObject({ ok: false });
  });

  it('parses values like %aiflow send and defaults the namespace', () => {
    expect(checkEventForm(' go ', '{"a": 1}', '')).toEqual({
      ok: true,
      value: { key: 'go', value: { a: 1 }, namespace: 'default' }
    });
    expect(parseValue('12')).toBe(12);
    expect(parseValue('hello world')).toBe('hello world');
    expect(parseValue('')).toBeNull();
  });
});

describe('errors and formatting', () => {
  it('reads the service error shape, else shows the status', () => {
    expect(errorMessage(404, '{"error": {"code": "not_found", "message": "no workflow x"}}')).toBe('no workflow x');
    expect(errorMessage(502, '<html>Bad gateway</html>')).toBe('HTTP 502: <html>Bad gateway</html>');
    expect(errorMessage(500, '')).toBe('HTTP 500');
  });

  it('formats durations', () => {
    expect(formatDuration(1.234)).toBe('1.2 s');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(7300)).toBe('2 h 1 min');
    expect(formatDuration(null)).toBe('');
  });

  it('measures a running task from its start', () => {
    const now = new Date('2026-01-01T00:00:10Z');
    const base = { id: 1, execution_id: 1, task: 't', seq: 1, attempt: 1, status: 'RUNNING' as const };
    expect(runSeconds({ ...base, start_time: '2026-01-01T00:00:04Z' }, now)).toBe(6);
    expect(runSeconds({ ...base, status: 'SUCCESS', duration: 2.5 }, now)).toBe(2.5);
    expect(runSeconds({ ...base, status: 'QUEUED' }, now)).toBeNull();
    expect(countRunning([{ ...base }, { ...base, id: 2, status: 'SUCCESS' }])).toBe(1);
  });

  it('describes events in one line', () => {
    expect(describeEvent(event(5, 'k', { a: 1 }))).toBe('#5 k = {"a":1}');
    expect(describeEvent(event(6, 'k', 'v', 'ns'))).toBe('#6 ns/k = v');
    const status = { workflow: 'wf', task: 'train', seq: 2, status: 'SUCCESS', execution_id: 3 };
    expect(describeEvent(event(7, TASK_STATUS, status))).toBe('#7 wf: train #2 SUCCESS');
    expect(describeEvent(event(8, EXECUTION_STATUS, status))).toBe('#8 wf: execution #3 SUCCESS');
  });
});

describe('streaming and selection', () => {
  it('starts the stream a bounded history back and backs off on reconnect', () => {
    expect(initialSince(1000, 50)).toBe(950);
    expect(initialSince(10, 50)).toBe(0);
    expect([0, 1, 2, 10].map(reconnectDelay)).toEqual([500, 1000, 2000, 10000]);
  });

  it('follows the newest execution unless the user pinned one', () => {
    const runs = [3, 5, 4].map(id => ({
      id,
      namespace: 'default',
      workflow: 'wf',
      version: 1,
      status: 'RUNNING',
      start_time: ''
    }));
    expect(pickExecution(runs, null, false)).toBe(5);
    expect(pickExecution(runs, 3, false)).toBe(5);
    expect(pickExecution(runs, 3, true)).toBe(3);
    expect(pickExecution(runs, 9, true)).toBe(5);
    expect(pickExecution([], 3, true)).toBeNull();
  });
});

describe('withSubmitted', () => {
  const wf = (namespace: string, name: string, version = 1, paused = false): IWorkflow => ({
    namespace,
    name,
    version,
    paused
  });

  it('adds a new workflow in the service order, not paused, before any fetch', () => {
    const listed = [wf('default', 'a'), wf('default', 'c'), wf('team', 'a')];
    const shown = withSubmitted(listed, { namespace: 'default', name: 'b', version: 1 });
    expect(shown.map(w => `${w.namespace}/${w.name}`)).toEqual(['default/a', 'default/b', 'default/c', 'team/a']);
    expect(shown[1]).toEqual(wf('default', 'b'));
    expect(withSubmitted([], { namespace: 'x', name: 'y', version: 1 })).toEqual([wf('x', 'y')]);
    expect(withSubmitted(listed, { namespace: 'zz', name: 'a', version: 1 }).at(-1)).toEqual(wf('zz', 'a'));
  });

  it('keeps a listed workflow where it is, with its state and the new version', () => {
    const listed = [wf('default', 'a', 2, true), wf('default', 'b')];
    const shown = withSubmitted(listed, { namespace: 'default', name: 'a', version: 3 });
    expect(shown).toEqual([wf('default', 'a', 3, true), wf('default', 'b')]);
    expect(listed[0].version).toBe(2);
  });
});
