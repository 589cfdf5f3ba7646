/**
 * The setup form's choices, made from the catalogs (protocol/catalogs.ts) at page start instead of
 * being written into index.html: each `<select>` gets one option per choice, the values the config
 * and the e2e tests use, the first one selected (the form's default). DOM only where it fills.
 */
import * as catalogs from '../protocol/catalogs.ts';
import { choicesOf, type Catalog } from '../protocol/registry.ts';

/** One option of a select. */
export interface FormChoice {
  value: string;
  label: string;
}

const options = (c: Catalog): FormChoice[] => choicesOf(c).map(({ value, label }) => ({ value, label }));

/**
 * The choices of each select of the setup form, by its name, in order. Datasets: the built-in ones
 * and the tab's own data (the synthetic sets are the CLI's); models: neural and linear, then trees.
 */
export function setupChoices(): Record<string, FormChoice[]> {
  const datasets = Object.fromEntries(Object.entries(catalogs.DATASETS).filter(([, d]) => d.source !== 'synthetic'));
  return {
    dataset: options(datasets),
    model: [...options(catalogs.MODELS), ...options(catalogs.TREE_MODELS)],
    algorithm: options(catalogs.ALGORITHMS),
    optimizer: options(catalogs.OPTIMIZERS),
    schedule: options(catalogs.SCHEDULES),
    compression: [catalogs.NO_CODEC, ...options(catalogs.CODECS)],
    aggregation: [catalogs.PLAIN_SUM, ...options(catalogs.AGGREGATION_RULES)],
  };
}

/** The part of a select this fills (a real HTMLSelectElement in the page). */
type SelectLike = Pick<HTMLSelectElement, 'replaceChildren' | 'ownerDocument'>;

/** Fills the setup form's selects with {@link setupChoices}; throws naming a select the form lacks. */
export function fillSetupChoices(form: { querySelector(selector: string): SelectLike | null }): void {
  for (const [name, choices] of Object.entries(setupChoices())) {
    const select = form.querySelector(`select[name="${name}"]`);
    if (!select) throw new Error(`the setup form has no select "${name}"`);
    select.replaceChildren(
      ...choices.map((c) => {
        const option = select.ownerDocument.createElement('option');
        option.value = c.value;
        option.textContent = c.label;
        return option;
      }),
    );
  }
}
