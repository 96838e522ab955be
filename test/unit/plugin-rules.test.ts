import { describe, expect, test } from 'vitest';
import { argsProblems } from '../../src/steps/args.ts';
import { providerProblems } from '../../src/steps/plugins/validate.ts';
import { isPluginName } from '../../src/steps/plugins/loader.ts';

const run = () => null;
const step = (over: Record<string, unknown>) => ({ step: 's', interface: 'deploy', deploy: { priority: 75 }, run, ...over });
const problems = (steps: unknown[], provider: Record<string, unknown> = {}) => providerProblems({ name: 'p', version: '1', steps, ...provider });

describe('plugin rules checked at load time', () => {
  test('a valid provider has no problems', () => {
    expect(problems([step({}), step({ step: 't', deploy: { priority: 0 }, clean: { priority: 10, abortable: true }, service: { priority: 0 } })])).toEqual([]);
    for (const priority of [61, 80, 99, 0]) expect(problems([step({ deploy: { priority } })])).toEqual([]);
  });

  test('deploy priorities outside 61-99 (other than 0) are refused with the band explained', () => {
    for (const priority of [50, 60, 100, 1]) {
      const [p] = problems([step({ deploy: { priority } })]);
      expect(p).toMatch(new RegExp(`^step s: deploy priority ${priority} is outside the in-band band: use 61-99`));
      expect(p).toMatch(/or 0 \(run only when requested\)/);
    }
  });

  test('priorities must be non-negative integers, for every kind', () => {
    expect(problems([step({ deploy: { priority: 75.5 } })])).toEqual(['step s: deploy priority must be an integer, got 75.5']);
    expect(problems([step({ deploy: { priority: '75' } })])).toEqual(['step s: deploy priority must be an integer, got "75"']);
    expect(problems([step({ deploy: undefined, clean: { priority: -1 } })])).toEqual(['step s: clean priority must not be negative, got -1']);
    expect(problems([step({ deploy: undefined, service: {} })])).toEqual(['step s: service priority must be an integer, got undefined']);
  });

  test('step names are unique within a plugin and must be identifiers', () => {
    expect(problems([step({}), step({})])).toEqual(['step s: duplicate step name "s" (each step name may appear once per plugin)']);
    expect(problems([step({ step: 'rm -rf' })])[0]).toMatch(/"step" must be a name of letters, digits and underscores, got "rm -rf"/);
  });

  test('unknown interfaces, keys and kinds are refused', () => {
    expect(problems([step({ interface: 'power' })])).toEqual(['step s: unknown interface "power" (known: deploy, raid, bios, management, firmware)']);
    expect(problems([step({ priorty: 75 })])[0]).toMatch(/^step s: unknown key "priorty"/);
    expect(problems([step({ deploy: undefined })])).toEqual([
      'step s: offers the step for no kind: give at least one of deploy, clean, service with a priority',
    ]);
    expect(problems([step({ deploy: { priority: 75, abortable: true } })])[0]).toMatch(/deploy.abortable" means nothing/);
  });

  test('argsinfo must have IPA\'s shape', () => {
    expect(problems([step({ argsinfo: { a: { description: 'x', required: 'yes' } } })])).toEqual(['step s: argsinfo.a.required must be true or false, got "yes"']);
    expect(problems([step({ argsinfo: { a: { required: true } } })])).toEqual([
      'step s: argsinfo.a.description must be a non-empty string (Ironic shows it to users)',
    ]);
    expect(problems([step({ argsinfo: { a: { description: 'x', type: 'str' } } })])[0]).toMatch(/type must be one of string, integer/);
    expect(problems([step({ argsinfo: ['a'] })])[0]).toMatch(/"argsinfo" must be an object/);
    expect(problems([step({ argsinfo: { a: { description: 'x', default: 1 } } })])[0]).toMatch(/argsinfo.a: unknown key "default"/);
  });

  test('the rest of a step and the provider itself', () => {
    expect(problems([step({ run: 'x' })])).toEqual(['step s: "run" must be a function (args, ctx) => result, got "x"']);
    expect(problems([step({ reboot_requested: 1 })])).toEqual(['step s: "reboot_requested" must be true or false, got 1']);
    expect(problems([step({ timeout: 0 })])).toEqual(['step s: "timeout" must be a positive number of seconds, got 0']);
    expect(problems([])).toEqual(['"steps" must be a non-empty array of steps, got []']);
    expect(problems([step({})], { name: 'has space' })[0]).toMatch(/provider "name" must be a word/);
    expect(problems([step({})], { supportLevel: 0 })[0]).toMatch(/"supportLevel" must be an integer >= 1/);
    expect(providerProblems(() => 1)[0]).toMatch(/the provider must be an object/);
  });

  test('which files are plugins', () => {
    expect(['a.js', 'a.mjs', 'a.ts', 'a.mts'].map(isPluginName)).toEqual([true, true, true, true]);
    expect(['a.d.ts', 'a.test.ts', 'a.spec.js', 'a.json', 'README.md', '.hidden.ts', 'a.cjs'].map(isPluginName)).toEqual(Array(7).fill(false));
  });
});

describe('arguments checked against argsinfo before a step runs', () => {
  const argsinfo = {
    site: { description: 'Site', required: true, type: 'string' as const },
    count: { description: 'Count', type: 'integer' as const },
    ratio: { description: 'Ratio', type: 'number' as const },
    free: { description: 'Anything' },
  };

  test('required, typed and unknown arguments', () => {
    expect(argsProblems({ argsinfo, strictArgs: true }, { site: 'a', count: 2, ratio: 2, free: [1] })).toEqual([]);
    expect(argsProblems({ argsinfo, strictArgs: true }, {})).toEqual(['missing required argument "site" (Site)']);
    expect(argsProblems({ argsinfo, strictArgs: true }, { site: 5, count: 1.5, ratio: 'x' })).toEqual([
      'argument "site" must be a string, got integer',
      'argument "count" must be an integer, got number',
      'argument "ratio" must be a number, got string',
    ]);
    expect(argsProblems({ argsinfo, strictArgs: true }, { site: 'a', sitee: 'b' })).toEqual(['unknown argument "sitee" (accepted: site, count, ratio, free)']);
    expect(argsProblems({ strictArgs: true }, { x: 1 })).toEqual(['unknown argument "x" (the step takes no arguments)']);
  });

  test('built-in steps that are not strict take undeclared arguments (IPA write_image)', () => {
    expect(argsProblems({ argsinfo }, { site: 'a', image_info: {} })).toEqual([]);
  });
});
