// graphile-worker 0.16, as its README/website document it.
// Throughput mode: one runner with `concurrency: N` (the documented knob, "-c N" on the CLI),
// LISTEN/NOTIFY wake-ups (always on), default pollInterval (2 s: it only matters for jobs that
// become due later, e.g. run_at), bulk enqueue with the SQL API `graphile_worker.add_job` over
// generate_series (what graphile-worker's own perfTest does), a silent logger (the default one
// prints a line per job).
import { Logger, makeWorkerUtils, run } from "graphile-worker";
import pg from "pg";
import { main, mono, now, openLoop, percentiles, waitUntil } from "./common.mjs";

const silent = new Logger(() => () => {});

async function reset(dsn) {
  const client = new pg.Client({ connectionString: dsn });
  await client.connect();
  await client.query("DROP SCHEMA IF EXISTS graphile_worker CASCADE");
  await client.end();
  const utils = await makeWorkerUtils({ connectionString: dsn, logger: silent });
  await utils.migrate();
  await utils.release();
}

async function withRunner(dsn, concurrency, noop, body) {
  const pgPool = new pg.Pool({ connectionString: dsn, max: concurrency + 4 });
  const runner = await run({ pgPool, concurrency, logger: silent, noHandleSignals: true,
                             taskList: { noop: async (payload) => noop(payload) } });
  try {
    return await body(pgPool);
  } finally {
    await runner.stop();
    await pgPool.end();
  }
}

async function drain(dsn, task) {
  await reset(dsn);
  const n = task.jobs;
  const setup = new pg.Pool({ connectionString: dsn, max: 2 });
  for (let start = 0; start < n; start += 5000) {
    await setup.query(
      "select graphile_worker.add_job('noop', json_build_object('i', i)) from generate_series($1::int, $2::int) i",
      [start + 1, Math.min(n, start + 5000)]);
  }
  await setup.end();
  let done = 0;
  let last = mono();
  const t0 = mono();
  let finished = false;
  await withRunner(dsn, task.consumers, () => { done += 1; last = mono(); }, async () => {
    finished = await waitUntil(() => done >= n, task.cap);
  });
  const seconds = (finished ? last : mono()) - t0;
  return { status: "ok", jobs_per_s: done / seconds, completed: done, seconds, capped: !finished };
}

async function pickup(dsn, task) {
  await reset(dsn);
  const lat = [];
  const utils = await makeWorkerUtils({ connectionString: dsn, logger: silent });
  let sent = 0;
  let errors = 0;
  await withRunner(dsn, 8, (p) => lat.push(now() - p.t), async () => {
    await new Promise((r) => setTimeout(r, 500));
    [, errors] = await openLoop(task.rate, task.seconds, () => utils.addJob("noop", { t: now() }));
    sent = Math.floor(task.rate * task.seconds) - errors;
    await waitUntil(() => lat.length >= sent, task.grace);
  });
  await utils.release();
  return { status: "ok", ...percentiles(lat), sent, picked: lat.length, errors };
}

async function delayed(dsn, task) {
  await reset(dsn);
  const n = task.jobs;
  const t0 = now() + task.lead + n / 5000;
  const due = Array.from({ length: n }, (_, i) => t0 + (i * task.spread) / n);
  const late = [];
  await withRunner(dsn, 8, (p) => late.push(Math.max(0, now() - p.due)), async (pool) => {
    await pool.query(
      "select graphile_worker.add_job('noop', json_build_object('due', d), run_at := to_timestamp(d)) from unnest($1::float8[]) d",
      [due]);
    await waitUntil(() => late.length >= n, t0 - now() + task.spread + task.grace, 50);
  });
  return { status: "ok", ...percentiles(late), due: n, picked: late.length };
}

async function enqueue(dsn, task) {
  await reset(dsn);
  const utils = await makeWorkerUtils({ connectionString: dsn, logger: silent });
  const [lat, errors] = await openLoop(task.rate, task.seconds, () => utils.addJob("noop", {}));
  await utils.release();
  return { status: "ok", ...percentiles(lat), errors };
}

await main({ drain, pickup, delayed, enqueue });
