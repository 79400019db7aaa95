import { describe, expect, it } from 'vitest';

import { isRunPath, lockCells, notebookPath, notebookTimes, taskExecutionOf } from '../src/runs';

describe('run notebook paths', () => {
  it('name the task, its run and the task execution, and read back the id', () => {
    const path = notebookPath(12, 'train', 3);
    expect(path).toBe('aiflow-runs:train #3 [12] (read-only).ipynb');
    expect(isRunPath(path)).toBe(true);
    expect(taskExecutionOf(path.slice('aiflow-runs:'.length))).toBe(12);
  });

  it('name nothing else', () => {
    expect(taskExecutionOf('notes.ipynb')).toBe(null);
    expect(taskExecutionOf('train #3 [x] (read-only).ipynb')).toBe(null);
    expect(taskExecutionOf('a/b #1 [2] (read-only).ipynb')).toBe(null);
    expect(isRunPath('notebooks/aiflow-runs:x.ipynb')).toBe(false);
  });
});

describe('lockCells', () => {
  it('locks every cell and drops any claim of trust', () => {
    const nb = { cells: [{ metadata: { trusted: true, tags: ['x'] } }, {}] };
    expect(lockCells(nb)).toEqual({
      cells: [
        { metadata: { tags: ['x'], editable: false, deletable: false } },
        { metadata: { editable: false, deletable: false } }
      ]
    });
  });
});

describe('notebookTimes', () => {
  const fallback = new Date('2024-05-01T10:00:00Z');

  it("dates the notebook by papermill's start and end", () => {
    const nb = { metadata: { papermill: { start_time: '2024-04-30T08:00:00.5', end_time: '2024-04-30T08:01:00Z' } } };
    const times = notebookTimes(nb, fallback);
    expect(times.last_modified).toBe('2024-04-30T08:01:00.000Z');
    expect(isNaN(new Date(times.created).getTime())).toBe(false);
  });

  it('falls back to a valid time when papermill left none (or an invalid one)', () => {
    expect(notebookTimes({ metadata: { papermill: { end_time: '' } } }, fallback)).toEqual({
      created: '2024-05-01T10:00:00.000Z',
      last_modified: '2024-05-01T10:00:00.000Z'
    });
    expect(notebookTimes(null, fallback).last_modified).toBe('2024-05-01T10:00:00.000Z');
  });
});
