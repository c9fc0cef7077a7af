// Shared by the Node peer drivers: spec from argv, RESULT lines, open-loop arrivals, percentiles.
export const spec = JSON.parse(process.argv[2]);

export function emit(task, result) {
  process.stdout.write("RESULT " + JSON.stringify({ task, result }) + "\n");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => (performance.timeOrigin + performance.now()) / 1000;
const mono = () => performance.now() / 1000;

export function percentiles(values, scale = 1000) {
  if (!values.length) return { p50: null, p95: null, p99: null, n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const rank = (p) => s[Math.max(0, Math.min(s.length - 1, Math.round((p / 100) * s.length + 0.5) - 1))] * scale;
  return { p50: rank(50), p95: rank(95), p99: rank(99), n: s.length };
}

export async function waitUntil(pred, timeoutS, stepMs = 10) {
  const deadline = mono() + timeoutS;
  while (!pred()) {
    if (mono() > deadline) return false;
    await sleep(stepMs);
  }
  return true;
}

// fn(i) at `rate`/s for `seconds`, each call not awaited by the next; latency from the scheduled
// start (no coordinated omission). Returns [latencies in s, errors].
export async function openLoop(rate, seconds, fn, drainTimeoutS = 10) {
  const n = Math.floor(rate * seconds);
  const lat = [];
  let errors = 0;
  const calls = [];
  const start = mono() + 0.02;
  for (let i = 0; i < n; i++) {
    const due = start + i / rate;
    const delay = due - mono();
    if (delay > 0.001) await sleep(delay * 1000);
    const call = { due, settled: false };
    calls.push(call);
    fn(i).then(
      () => { call.settled = true; lat.push(mono() - due); },
      () => { call.settled = true; errors += 1; },
    );
  }
  await waitUntil(() => calls.every((c) => c.settled), drainTimeoutS);
  const open = calls.filter((c) => !c.settled);
  const t = mono();
  for (const c of open) lat.push(t - c.due); // still unanswered: at least this long
  return [lat, errors + open.length];
}

export async function main(handlers) {
  for (const task of spec.tasks) {
    let result;
    try {
      result = await handlers[task.kind](spec.dsn, task);
    } catch (e) {
      result = { status: `error: ${String(e && e.stack ? e.stack : e)}`.slice(0, 300) };
    }
    emit(task, result);
  }
  process.exit(0);
}

export { mono };
