/**
 * The dashboard's controls: the join form, the setup form and its buttons, export, import,
 * checkpoint download and continue, the room link's buttons and the data form. Files the user
 * picks become bytes here; what to do with them is the composition root's `actions` (the runtime
 * behind them), and what comes back is shown through the dashboard. DOM only.
 */
import { fromBase64 } from '../protocol/base64.ts';
import { LOCAL_DATASET } from '../data/local.ts';
import type { PickedFile, UserDataInput } from '../data/user-files.ts';
import type { Job } from '../protocol/index.ts';
import type { CheckpointFile, Continuation } from '../runtime/checkpoints.ts';
import type { ImportedModel, ModelFile } from '../runtime/model.ts';
import type { DataSummary } from '../runtime/runtime.ts';
import type { Dashboard } from './dashboard.ts';
import { bindDataForm } from './data-form.ts';

/** The setup form's fields by name (strings, as the DOM gives them). */
export type FormFields = Record<string, string>;

/** What the controls ask for; each may throw (or reject) with an Error to show. */
export interface DashboardActions {
  /** Join `room` from the form. */
  join(room: string): void;
  /** The run the setup form's fields name; an error with a `field` names the field to fix. */
  jobFrom(fields: FormFields): Job;
  /** A model's own defaults for the setup form's fields (lr, epochs, schedule; a dataset that fits it), by field name. */
  modelDefaults(model: string, dataset: string): FormFields;
  /** Starts `job` for the room. */
  start(job: Job): void;
  pause(): void;
  resume(): void;
  stop(): void;
  exportFiles(): Promise<ModelFile[]>;
  checkpointFile(): Promise<CheckpointFile>;
  continueFrom(name: string, bytes: Uint8Array<ArrayBuffer>, fields: FormFields): Promise<Continuation>;
  importModel(files: PickedFile[], dataset: string): Promise<ImportedModel>;
  useData(input: UserDataInput): Promise<DataSummary>;
}

/** The setup form's fields now. */
export function setupFields(form: HTMLFormElement): FormFields {
  const out: FormFields = {};
  for (const el of Array.from(form.elements) as HTMLInputElement[]) {
    if (!el.name) continue;
    out[el.name] = el.type === 'checkbox' ? (el.checked ? 'on' : '') : el.value;
  }
  return out;
}

/** Offers `bytes` as a download named `name`. */
export function download(doc: Document, name: string, bytes: Uint8Array<ArrayBuffer>): void {
  const a = doc.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes]));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

const picked = async (f: File): Promise<PickedFile> => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) });

/** What `useData` loaded, in words. */
export function describeData(d: DataSummary): string {
  const what = d.classes > 0 ? `${d.classes} classes` : 'regression';
  return `Loaded ${d.source}: ${d.train} training and ${d.test} test samples, ${d.shape.join(' x ')} features, ${what}. Train with dataset "${LOCAL_DATASET}".`;
}

/** Binds the page's controls to `actions`. */
export function bindControls(doc: Document, dash: Dashboard, actions: DashboardActions): void {
  const byId = <T extends HTMLElement = HTMLElement>(id: string): T => dash.byId<T>(id);
  const setup = byId<HTMLFormElement>('setup-form');
  const joinForm = byId<HTMLFormElement>('join-form');
  const roomInput = byId<HTMLInputElement>('room-input');
  const fail = (what: string) => (err: unknown) => dash.showImport(`Could not ${what}: ${(err as Error).message}`, true);

  // A model's own defaults (lr, epochs, schedule) replace the form's when the model changes, and
  // fill the form as it comes for the model it starts with.
  const model = setup.querySelector<HTMLSelectElement>('select[name="model"]')!;
  const applyModelDefaults = (): void => {
    const dataset = (setup.elements.namedItem('dataset') as HTMLSelectElement | null)?.value ?? '';
    for (const [name, value] of Object.entries(actions.modelDefaults(model.value, dataset))) {
      const field = setup.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement | null;
      if (field) field.value = value;
    }
  };
  model.addEventListener('change', applyModelDefaults);
  applyModelDefaults();

  setup.addEventListener('submit', (e) => {
    e.preventDefault();
    try {
      const job = actions.jobFrom(setupFields(setup));
      dash.setupError('');
      actions.start(job);
    } catch (err) {
      dash.setupError((err as Error).message);
      const field = (err as { field?: unknown }).field;
      if (typeof field === 'string') (setup.elements.namedItem(field) as HTMLElement | null)?.focus();
    }
  });
  byId('pause').addEventListener('click', () => actions.pause());
  byId('resume').addEventListener('click', () => actions.resume());
  byId('stop').addEventListener('click', () => actions.stop());
  byId('export').addEventListener('click', () => {
    actions
      .exportFiles()
      .then((files) => {
        for (const f of files) download(doc, f.name, fromBase64(f.base64));
        dash.log('model exported');
      })
      .catch((e: unknown) => dash.log(`export failed: ${(e as Error).message}`));
  });
  byId<HTMLInputElement>('import').addEventListener('change', (e) => {
    const files = Array.from((e.target as HTMLInputElement).files ?? []);
    dash.showImport('Measuring the imported model ...', false);
    const dataset = setupFields(setup)['dataset'] ?? 'fashion-mnist';
    Promise.all(files.map(picked))
      .then((bytes) => actions.importModel(bytes, dataset))
      .then(
        (m) =>
          dash.showImport(
            `Imported model: test accuracy ${((100 * m.correct) / m.n).toFixed(2)}% on all ${m.n} test samples of ${m.dataset}.`,
            false,
          ),
        fail('import'),
      );
  });
  byId('download-checkpoint').addEventListener('click', () => {
    actions
      .checkpointFile()
      .then((c) => {
        download(doc, c.name, c.bytes);
        dash.log(`checkpoint of step ${c.step} downloaded`);
      })
      .catch(fail('download'));
  });
  byId<HTMLInputElement>('continue').addEventListener('change', (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (!file) return;
    file
      .arrayBuffer()
      .then((b) => actions.continueFrom(file.name, new Uint8Array(b), setupFields(setup)))
      .then((c) => dash.showImport(`Continuing ${c.model} on ${c.dataset} from step ${c.from} to step ${c.to}.`, false), fail('continue'));
  });
  byId('open-peer').addEventListener('click', () => window.open(byId<HTMLAnchorElement>('share-link').href, '_blank'));
  byId('copy-link').addEventListener(
    'click',
    () => void navigator.clipboard?.writeText(byId<HTMLAnchorElement>('share-link').href).then(() => dash.log('link copied')),
  );
  byId('new-room').addEventListener('click', () => {
    roomInput.value = `room-${Math.random().toString(36).slice(2, 10)}`;
    joinForm.requestSubmit();
  });
  joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    dash.state.room = roomInput.value;
    actions.join(roomInput.value);
  });
  bindDataForm(byId<HTMLFormElement>('data-form'), byId('data-summary'), async (input) => describeData(await actions.useData(input)));
}
