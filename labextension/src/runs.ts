/**
 * Executed notebooks as JupyterLab documents, free of DOM and JupyterLab so it can be unit tested:
 * their paths on the runs drive, and the record made safe to show (locked, untrusted, dated).
 */

export const DRIVE = 'aiflow-runs';

/** `<task> #<seq> [<task execution id>] (read-only).ipynb`: the tab shows it as is, so it says what it is. */
const LOCAL_PATH = /^(?:[A-Za-z0-9_.-]+ #\d+ )?\[(\d+)\] \(read-only\)\.ipynb$/;

/** The drive path of a task execution's notebook (no '/': the whole path is one file name). */
export function notebookPath(taskExecutionId: number, task: string, seq: number): string {
  return `${DRIVE}:${task} #${seq} [${taskExecutionId}] (read-only).ipynb`;
}

/** The task execution id of a local path on the runs drive, or null when it names none. */
export function taskExecutionOf(localPath: string): number | null {
  const match = LOCAL_PATH.exec(localPath);
  return match ? Number(match[1]) : null;
}

/** Whether a (full) path is on the runs drive. */
export function isRunPath(path: string): boolean {
  return path.startsWith(`${DRIVE}:`);
}

type Cell = { metadata?: Record<string, unknown> };

/**
 * Make an executed notebook safe to show as a record: every cell not editable nor deletable, and no
 * cell marked trusted (JupyterLab would run the scripts of a trusted cell's HTML output, and the
 * notebook's content comes from whoever submitted the workflow).
 */
export function lockCells(notebook: unknown): unknown {
  const cells = (notebook as { cells?: Cell[] } | null)?.cells;
  for (const cell of cells ?? []) {
    const { trusted: _, ...rest } = cell.metadata ?? {};
    cell.metadata = { ...rest, editable: false, deletable: false };
  }
  return notebook;
}

/** A valid ISO time or null. */
function isoTime(value: unknown): string | null {
  if (typeof value !== 'string' || !value) {
    return null;
  }
  const t = new Date(value);
  return isNaN(t.getTime()) ? null : t.toISOString();
}

/**
 * When the notebook ran, as the contents API dates a file: papermill's start and end times,
 * else ``fallback`` (JupyterLab formats these times, and an invalid one throws).
 */
export function notebookTimes(notebook: unknown, fallback: Date): { created: string; last_modified: string } {
  const papermill = (notebook as { metadata?: { papermill?: Record<string, unknown> } } | null)?.metadata?.papermill;
  const end = isoTime(papermill?.end_time) ?? fallback.toISOString();
  return { created: isoTime(papermill?.start_time) ?? end, last_modified: end };
}
