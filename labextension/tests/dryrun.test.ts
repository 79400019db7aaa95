import { describe, expect, it } from 'vitest';

import { dryRunBody, dryRunLines, IReplayResult } from '../src/dryrun';

const NOW = new Date('2026-05-02T12:00:00Z');

function result(diff: IReplayResult['diff']): IReplayResult {
  return {
    workflow: 'w',
    namespace: 'default',
    since: 0,
    until: 9,
    summary: { executions: 2, runs: { a: 2, b: 1 }, unmatched_events: 1 },
    diff
  };
}

describe('dry run', () => {
  it('replays the submitted version over the window picked, or the whole log', () => {
    expect(dryRunBody('ns', 'w', '24h', NOW)).toEqual({
      name: 'w',
      namespace: 'ns',
      since: '2026-05-01T12:00:00.000Z',
      outcomes: 'recorded',
      diff: true
    });
    expect(dryRunBody('ns', 'w', '7d', NOW).since).toBe('2026-04-25T12:00:00.000Z');
    expect(dryRunBody('ns', 'w', 'all', NOW).since).toBeNull();
  });

  it('says the summary and each difference as the CLI does', () => {
    const rows = {
      only_replay: [{ execution: 'command start_execution at t', task: 'a', seq: 2 }],
      only_real: [{ execution: 'trigger on event 4 go', task: 'b', seq: 1 }],
      cause_differs: [{ execution: 'x', task: 'a', seq: 1, replay: 'a#1 on event 5 go', real: 'a#1 on event 6 go' }]
    };
    expect(dryRunLines(result(rows))).toEqual([
      '2 execution(s); runs: a 2, b 1; 1 event(s) matched nothing',
      'only in the replay: a #2 of the execution made by command start_execution at t',
      'only in reality: b #1 of the execution made by trigger on event 4 go',
      'cause differs: a #1: replay a#1 on event 5 go, real a#1 on event 6 go'
    ]);
  });

  it('says when there is no difference, and lists no runs as none', () => {
    const empty = { ...result({ only_replay: [], only_real: [], cause_differs: [] }) };
    empty.summary = { executions: 0, runs: {}, unmatched_events: 0 };
    expect(dryRunLines(empty)).toEqual([
      '0 execution(s); runs: none; 0 event(s) matched nothing',
      'no difference with what the submitted version did'
    ]);
    expect(dryRunLines(result(null))).toHaveLength(1);
  });
});
