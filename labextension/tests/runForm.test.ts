import { describe, expect, it } from 'vitest';

import {
  changedNames,
  initialRuleForm,
  initialRunForm,
  ruleBody,
  ruleErrorPlace,
  runBody,
  runErrorPlace
} from '../src/runForm';

const params = [
  { name: 'day', type: 'str', default: "'1970-01-01'", tasks: ['report'] },
  { name: 'n', type: 'int', default: '2', tasks: ['report', 'py'] }
];

describe('the Run with parameters form', () => {
  it('starts at the defaults, so nothing is overridden until a value changes', () => {
    const form = initialRunForm('default', 'rep', params);
    expect(form.values).toEqual({ day: "'1970-01-01'", n: '2' });
    expect(changedNames(form, params)).toEqual([]);
    const edited = { ...form, values: { ...form.values, n: ' 7 ' } };
    expect(changedNames(edited, params)).toEqual(['n']);
    expect(changedNames({ ...form, values: { ...form.values, n: ' 2 ' } }, params)).toEqual([]);
  });

  it('sends an execution start, or a task start in a running execution', () => {
    const form = initialRunForm('ns', 'rep', params);
    expect(runBody(form)).toEqual({ namespace: 'ns', name: 'rep', values: form.values });
    const task = initialRunForm('ns', 'rep', params, 4, 'report');
    expect(runBody(task)).toMatchObject({ task: 'report', execution: 4 });
  });

  it('puts an error at the parameter the form shows, else on its own line', () => {
    const form = initialRunForm('default', 'rep', params);
    expect(runErrorPlace('param:n', form)).toBe('param:n');
    expect(runErrorPlace('param:gone', form)).toBe('form');
    expect(runErrorPlace(undefined, form)).toBe('form');
  });
});

describe('the Change rule form', () => {
  it('starts from the server reading and sends only the fields of its choice', () => {
    const form = initialRuleForm('default', 'wf', {
      task: 'a',
      tasks: ['b'],
      when: 'event',
      event_key: 'go',
      event_value: '7'
    });
    expect(form.cron).toBe('');
    expect(ruleBody(form)).toEqual({
      namespace: 'default',
      name: 'wf',
      task: 'a',
      action: 'rule',
      when: 'event',
      event_key: 'go',
      event_namespace: '',
      event_value: '7'
    });
    const cron = { ...form, when: 'cron' as const, cron: '0 2 * * *', timezone: 'Europe/Berlin' };
    expect(ruleBody(cron)).not.toHaveProperty('event_key');
    expect(ruleBody(cron)).toMatchObject({ cron: '0 2 * * *', timezone: 'Europe/Berlin' });
    expect(ruleErrorPlace('cron', cron)).toBe('cron');
    expect(ruleErrorPlace('event_key', cron)).toBe('form');
    expect(ruleErrorPlace('when', { ...form, when: 'custom' })).toBe('when');
  });
});
