import { describe, expect, it } from 'vitest';

import { errorPlace, initialForm, taskNameFrom, toDraft, withParameters } from '../src/author';
import { filterExecutions, IExecution, specForReading } from '../src/state';

describe('the Add to workflow form', () => {
  it('names the task and a new workflow after the notebook', () => {
    expect(taskNameFrom('reports/Daily report (v2).ipynb')).toBe('Daily_report__v2_');
    expect(taskNameFrom('.hidden.ipynb')).toBe('hidden');
    const form = initialForm('data/train.ipynb', 'Europe/Berlin');
    expect([form.task, form.workflow, form.namespace, form.timezone]).toEqual([
      'train',
      'train',
      'default',
      'Europe/Berlin'
    ]);
  });

  it('fills parameters with their defaults and keeps values already edited', () => {
    const params = [
      { name: 'alpha', type: 'float', default: '0.5', help: '' },
      { name: 'day', type: 'str', default: "'x'", help: '' }
    ];
    const form = withParameters({ ...initialForm('a.ipynb'), values: { alpha: '0.9', gone: '1' } }, params);
    expect(form.values).toEqual({ alpha: '0.9', day: "'x'" });
  });

  it('sends only the fields its choice of when uses', () => {
    const form = { ...initialForm('a.ipynb'), when: 'cron' as const, cron: '0 2 * * *', event_key: 'left over' };
    const draft = toDraft(form);
    expect(draft.cron).toBe('0 2 * * *');
    expect(draft.timezone).toBe('UTC');
    expect(draft).not.toHaveProperty('event_key');
    const event = toDraft({ ...form, when: 'event', workflow: ' wf ', namespace: ' ' });
    expect([event.event_key, event.workflow, event.namespace]).toEqual(['left over', 'wf', 'default']);
    expect(event).not.toHaveProperty('cron');
  });

  it('places an error at a field the form shows, else on the form', () => {
    const form = withParameters({ ...initialForm('a.ipynb'), when: 'cron' }, [
      { name: 'alpha', type: 'float', default: '0.5', help: '' }
    ]);
    expect(errorPlace('cron', form)).toBe('cron');
    expect(errorPlace('timezone', form)).toBe('timezone');
    expect(errorPlace('event_key', form)).toBe('form');
    expect(errorPlace('param:alpha', form)).toBe('param:alpha');
    expect(errorPlace('param:beta', form)).toBe('parameters');
    expect(errorPlace(undefined, form)).toBe('form');
  });
});

describe('the workflow view', () => {
  const at = (id: number, status: string, iso: string): IExecution => ({
    id,
    namespace: 'default',
    workflow: 'w',
    version: 1,
    status,
    start_time: iso
  });

  it('filters executions by status and time', () => {
    const now = new Date('2026-03-01T12:00:00Z');
    const list = [at(1, 'SUCCESS', '2026-02-01T00:00:00Z'), at(2, 'FAILED', '2026-03-01T11:30:00Z')];
    expect(filterExecutions(list, '', 'any', now).map(e => e.id)).toEqual([1, 2]);
    expect(filterExecutions(list, '', 'hour', now).map(e => e.id)).toEqual([2]);
    expect(filterExecutions(list, 'SUCCESS', 'day', now)).toEqual([]);
  });

  it('shows a spec with its notebooks as cell counts', () => {
    const spec = { name: 'w', tasks: [{ name: 't', notebook: { cells: [1, 2, 3] } }, { name: 'b', command: 'true' }] };
    expect(specForReading(spec)).toEqual({
      name: 'w',
      tasks: [{ name: 't', notebook: '<notebook of 3 cells>' }, { name: 'b', command: 'true' }]
    });
  });
});
