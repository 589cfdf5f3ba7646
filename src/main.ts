/**
 * Composition root of the page: makes the peer runtime (src/runtime/), the dashboard that renders
 * its events (src/ui/), the controls that drive it, and the page-level API `window.ringtrain`
 * (src/page-api.ts) over it.
 */
// First: repairs an invalid navigator.language before any library formats with it (uPlot does at import).
import { repairedLocale } from './ui/locale.ts';
import { parseBackendPreference } from './ml/backend.ts';
import { selectBrowserBackend } from './ml/backends-browser.ts';
import { makeStepProbe } from './ml/probe.ts';
import { newSecret } from './protocol/auth.ts';
import { pageApi } from './page-api.ts';
import { PeerRuntime } from './runtime/runtime.ts';
import { fillSetupChoices } from './ui/choices.ts';
import { bindControls } from './ui/controls.ts';
import { Dashboard } from './ui/dashboard.ts';
import { environmentNotes, probeEnvironment, renderEnvironment } from './ui/environment.ts';
import { modelDefaults } from './training/job.ts';

const params = new URLSearchParams(location.search);
// The setup form's choices come from the registries (protocol/catalogs.ts).
fillSetupChoices(document.getElementById('setup-form') as HTMLFormElement);
const roomInput = document.getElementById('room-input') as HTMLInputElement;
if (params.has('room')) roomInput.value = params.get('room')!;
const dashboard = new Dashboard(document, { room: roomInput.value, backendParam: params.get('backend') });
/** What this browser lacks (no WebCrypto outside a secure context, no WebGPU, ...), shown above the dashboard. */
const env = probeEnvironment(repairedLocale);
renderEnvironment(dashboard.byId('environment'), environmentNotes(env));

/** A private room's secret from the link's fragment (`#k=...`), never sent to the server. */
const linkSecret = new URLSearchParams(location.hash.slice(1)).get('k') ?? undefined;

const runtime = new PeerRuntime({
  room: roomInput.value,
  webCrypto: env.subtle,
  // `?linkDelayMs=`: emulated one-way latency of every data channel (the WAN benchmark, src/harness/netns.ts).
  linkDelayMs: Math.max(0, Number(params.get('linkDelayMs')) || 0),
  backendSelector: () => {
    const prefer = parseBackendPreference(params.get('backend'));
    return (spec) =>
      selectBrowserBackend({
        prefer,
        // A forced backend gets longer to start: the first WebGPU device of a browser on
        // SwiftShader can take over 10 s while other tabs start too.
        ...(params.has('backend') ? { forcedBy: '?backend= in the URL', initTimeoutMs: 30_000 } : {}),
        needsConv: spec.kind === 'cnn',
        probe: makeStepProbe(spec),
      });
  },
});
runtime.subscribe(dashboard.handle);

const api = pageApi(runtime, {
  linkSecretFor: (room) => (room === params.get('room') ? linkSecret : undefined),
  chartPoints: () => dashboard.charts.counts(),
  eventLogSize: () => dashboard.eventLogSize(),
});
window.ringtrain = api;

bindControls(document, dashboard, {
  // The link's room with its secret, or a new private room (this tab makes its secret); without
  // WebCrypto, an open room (the notice above the dashboard says why).
  join: (room) => {
    const fromLink = room === params.get('room') && linkSecret;
    api.join(fromLink || !env.subtle ? { room } : { room, secret: newSecret(), createRoom: true }).catch(() => undefined);
  },
  jobFrom: (fields) => runtime.jobFromFields(fields),
  modelDefaults: (model, dataset) => modelDefaults(model, dataset),
  start: (job) => runtime.start(job),
  pause: () => runtime.pause(),
  resume: () => runtime.resume(),
  stop: () => runtime.stop(),
  exportFiles: () => runtime.exportFiles(),
  checkpointFile: () => runtime.checkpointFile(),
  continueFrom: (name, bytes, fields) => runtime.continueFrom(name, bytes, fields),
  importModel: (files, dataset) => runtime.importModel(files, dataset),
  useData: (input) => runtime.useData(input),
});
dashboard.draw();
if (params.has('room') && params.get('autojoin') !== '0') api.join().catch(() => undefined);
