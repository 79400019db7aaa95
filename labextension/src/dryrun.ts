/**
 * The panel's "Dry run" of a submitted workflow (POST /api/v1/replay), free of DOM so it can be unit
 * tested: the windows offered, the body sent, and the answer in the same words as
 * `aiflow-nb workflow replay --diff` (its summary and differences).
 */

/** A window the user picks: a time ago, or the whole log. */
export type DryRunWindow = '1h' | '24h' | '7d' | 'all';

export const DRY_RUN_WINDOWS: [DryRunWindow, string][] = [
  ['1h', 'last hour'],
  ['24h', 'last 24 hours'],
  ['7d', 'last 7 days'],
  ['all', 'whole log']
];

export const DEFAULT_WINDOW: DryRunWindow = '24h';

const HOURS: Record<Exclude<DryRunWindow, 'all'>, number> = { '1h': 1, '24h': 24, '7d': 24 * 7 };

/** A row of a difference: the run, and the execution it belongs to (by its cause). */
export interface IDiffRow {
  execution: string;
  task: string;
  seq: number;
  replay?: string;
  real?: string;
}

/** The parts of the replay's answer the panel shows. */
export interface IReplayResult {
  workflow: string;
  namespace: string;
  since: number;
  until: number;
  summary: { executions: number; runs: Record<string, number>; unmatched_events: number };
  diff: { only_replay: IDiffRow[]; only_real: IDiffRow[]; cause_differs: IDiffRow[] } | null;
}

/** The body that replays the submitted (latest) version of a workflow over ``window`` before ``now``. */
export function dryRunBody(
  namespace: string,
  name: string,
  window: DryRunWindow,
  now: Date
): { name: string; namespace: string; since: string | null; outcomes: string; diff: boolean } {
  const since = window === 'all' ? null : new Date(now.getTime() - HOURS[window] * 3_600_000).toISOString();
  return { name, namespace, since, outcomes: 'recorded', diff: true };
}

/** The summary line, then one line per difference (or that there is none), as the CLI prints them. */
export function dryRunLines(result: IReplayResult): string[] {
  const { summary, diff } = result;
  const runs =
    Object.entries(summary.runs)
      .map(([task, n]) => `${task} ${n}`)
      .join(', ') || 'none';
  const lines = [
    `${summary.executions} execution(s); runs: ${runs}; ${summary.unmatched_events} event(s) matched nothing`
  ];
  if (diff) {
    const titles: [keyof typeof diff, string][] = [
      ['only_replay', 'only in the replay'],
      ['only_real', 'only in reality']
    ];
    for (const [part, title] of titles) {
      for (const row of diff[part]) {
        lines.push(`${title}: ${row.task} #${row.seq} of the execution made by ${row.execution}`);
      }
    }
    for (const row of diff.cause_differs) {
      lines.push(`cause differs: ${row.task} #${row.seq}: replay ${row.replay}, real ${row.real}`);
    }
    if (!diff.only_replay.length && !diff.only_real.length && !diff.cause_differs.length) {
      lines.push('no difference with what the submitted version did');
    }
  }
  return lines;
}
