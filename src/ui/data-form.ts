/**
 * The "your own data" form: reads the picked files' bytes and the CSV options, hands them to the
 * composition root, and shows what came back (a summary, or the error saying what to fix). DOM only.
 */
import type { PickedFile, UserDataInput } from '../data/user-files.ts';

const CSV_NAME = /\.(csv|tsv|txt)$/i;

/** Wires `form`; `load` turns the input into a summary line, or rejects with an Error to show. */
export function bindDataForm(form: HTMLFormElement, summary: HTMLElement, load: (input: UserDataInput) => Promise<string>): void {
  const field = <T extends HTMLElement>(name: string): T => {
    const el = form.querySelector<T>(`[name="${name}"]`);
    if (!el) throw new Error(`the data form has no field "${name}"`);
    return el;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const picked = Array.from(field<HTMLInputElement>('files').files ?? []);
    const show = (text: string, error: boolean): void => {
      summary.textContent = text;
      summary.classList.toggle('error', error);
      if (error) summary.setAttribute('role', 'alert');
      else summary.removeAttribute('role');
    };
    if (picked.length === 0) {
      show('Pick a CSV file, or an IDX images file together with its labels file.', true);
      return;
    }
    show(`Reading ${picked.map((f) => f.name).join(', ')} ...`, false);
    void (async () => {
      try {
        const files: PickedFile[] = await Promise.all(
          picked.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })),
        );
        const categorical = field<HTMLInputElement>('categorical')
          .value.split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const label = field<HTMLInputElement>('label').value.trim();
        const input: UserDataInput =
          files.length === 1 && CSV_NAME.test(files[0]!.name)
            ? {
                kind: 'csv',
                file: files[0]!,
                task: field<HTMLSelectElement>('task').value as 'classification' | 'regression',
                categorical,
                ...(label ? { label } : {}),
              }
            : { kind: 'idx', files };
        show(await load(input), false);
      } catch (err) {
        show(`${(err as Error).message}`, true);
      }
    })();
  });
}
