import { describe, expect, it } from 'vitest';
import { AGGREGATION_RULES, ALGORITHMS, CODECS, DATASETS, MODELS, OPTIMIZERS, TREE_MODELS } from '../protocol/catalogs.ts';
import { choicesOf, namesOf } from '../protocol/registry.ts';
import { jobFromFields, SETUP_DEFAULTS } from '../training/job.ts';
import { fillSetupChoices, setupChoices } from './choices.ts';

const values = (select: string): string[] => setupChoices()[select]!.map((c) => c.value);

describe('setup form choices', () => {
  it('offers every name of every catalog (datasets: the built-in ones and the tab’s own data)', () => {
    expect(values('model')).toEqual([...namesOf(MODELS), ...namesOf(TREE_MODELS)]);
    expect(values('algorithm')).toEqual(namesOf(ALGORITHMS));
    expect(values('optimizer')).toEqual(namesOf(OPTIMIZERS));
    for (const c of choicesOf(CODECS)) expect(values('compression')).toContain(c.value);
    for (const c of choicesOf(AGGREGATION_RULES)) expect(values('aggregation')).toContain(c.value);
    expect(new Set(choicesOf(CODECS).map((c) => c.name))).toEqual(new Set(namesOf(CODECS)));
    expect(new Set(choicesOf(AGGREGATION_RULES).map((c) => c.name))).toEqual(new Set(namesOf(AGGREGATION_RULES)));
    expect(values('dataset')).toEqual(namesOf(DATASETS).filter((d) => DATASETS[d].source !== 'synthetic'));
  });

  it('keeps the values the page had (the e2e tests select by value), the default first', () => {
    expect(values('dataset')).toEqual(['fashion-mnist', 'moby-dick', 'local']);
    expect(values('model')).toEqual(['softmax', 'mlp', 'cnn', 'svm', 'transformer', 'tree', 'gbdt']);
    expect(values('algorithm')).toEqual(['sgd', 'gd', 'fedavg', 'diloco']);
    expect(values('optimizer')).toEqual(['adam', 'sgd', 'momentum', 'pegasos']);
    expect(values('compression')).toEqual(['none', 'auto', 'fp16', 'int8', 'powersgd-r1', 'powersgd-r2', 'powersgd-r4', 'randomk-1%']);
    expect(values('aggregation')).toEqual(['sum', 'median', 'trimmed-mean']);
    for (const [select, choices] of Object.entries(setupChoices())) expect(choices[0]!.value, select).toBe(SETUP_DEFAULTS[select]);
  });

  it('every choice makes a job (or the one conflict it names)', () => {
    for (const [select, choices] of Object.entries(setupChoices()))
      for (const { value } of choices) {
        if (select === 'dataset' && value === 'local') continue;
        if (select === 'dataset' && value === 'moby-dick') {
          expect(() => jobFromFields({ dataset: value })).toThrow(
            /moby-dick is text, for the transformer language model: pick transformer/,
          );
          expect(jobFromFields({ dataset: value, model: 'transformer' }).config.dataset).toBe('moby-dick');
          continue;
        }
        if (select === 'optimizer' && value === 'pegasos') {
          expect(() => jobFromFields({ optimizer: value })).toThrow(/pegasos is for the linear SVM/);
          continue;
        }
        expect(() => jobFromFields({ [select]: value }), `${select}=${value}`).not.toThrow();
      }
  });

  it('fills each select of the form with its options', () => {
    const selects = new Map<string, { value: string; textContent: string }[]>();
    const form = {
      querySelector: (sel: string) => {
        const name = /name="(\w+)"/.exec(sel)![1]!;
        return {
          ownerDocument: { createElement: () => ({ value: '', textContent: '' }) } as unknown as Document,
          replaceChildren: (...nodes: (Node | string)[]) => void selects.set(name, nodes as never),
        };
      },
    };
    fillSetupChoices(form);
    expect(selects.get('compression')!.map((o) => [o.value, o.textContent])).toContainEqual(['powersgd-r2', 'PowerSGD rank 2']);
    expect([...selects.keys()].sort()).toEqual(Object.keys(setupChoices()).sort());
    expect(() => fillSetupChoices({ querySelector: () => null })).toThrow(/no select "dataset"/);
    // The page passes its form element as it is (this compiles).
    const page = (f: HTMLFormElement): void => fillSetupChoices(f);
    expect(page).toBeTypeOf('function');
  });
});
