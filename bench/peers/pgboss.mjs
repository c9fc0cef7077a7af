// pg-boss 10, as its README/docs describe it.
// Throughput mode: N `work()` subscriptions (v10 dropped teamSize: concurrency is more work()
// calls), each fetching `batchSize: 100` jobs per poll (the documented way to raise throughput:
// the handler gets an array and the batch is completed in one statement), polling at the
// minimum allowed interval (`pollingIntervalSeconds: 0.5`; the default is 2 s; pg-boss has no
// LISTEN/NOTIFY wake-up), bulk enqueue with `insert()`. Queue created with createQueue (v10).
import PgBoss from "pg-boss";
import { main, mono, now, openLoop, percentiles, waitUntil } from "./common.mjs";

const QUEUE = "bench";

async function start(dsn, max = 10) {
  const boss = new PgBoss({ connectionString: dsn, max, schedule: false, supervise: true });
  boss.on("error", () => {});
  await boss.start();
  return boss;
}

async function reset(dsn) {
  const boss = await start(dsn, 2);
  await boss.getDb().executeSql("DROP SCHEMA IF EXISTS pgboss CASCADE");
  await boss.stop({ graceful: false, wait: true });
  const fresh = await start(dsn, 2);
  await fresh.createQueue(QUEUE);
  return fresh;
}

async function work(boss, n, batchSize, handler) {
  for (let i = 0; i < n; i++) {
    await boss.work(QUEUE, { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
      for (const job of jobs) handler(job);
    });
  }
}

async function drain(dsn, task) {
  const setup = await reset(dsn);
  const n = task.jobs;
  for (let s = 0; s < n; s += 1000) {
    const chunk = Array.from({ length: Math.min(1000, n - s) }, (_, i) => ({ name: QUEUE, data: { i: s + i } }));
    await setup.insert(chunk);
  }
  await setup.stop({ graceful: false, wait: true });
  const boss = await start(dsn, task.consumers + 4);
  let done = 0;
  let last = mono();
  const t0 = mono();
  await work(boss, task.consumers, 100, () => { done += 1; last = mono(); });
  const finished = await waitUntil(() => done >= n, task.cap);
  const seconds = (finished ? last : mono()) - t0;
  await boss.stop({ graceful: false, wait: true });
  return { status: "ok", jobs_per_s: done / seconds, completed: done, seconds, capped: !finished };
}

async function idle(dsn, handler, body) {
  const setup = await reset(dsn);
  await setup.stop({ graceful: false, wait: true });
  const boss = await start(dsn, 24);
  await work(boss, 8, 10, handler);
  await new Promise((r) => setTimeout(r, 500));
  try {
    return await body(boss);
  } finally {
    await boss.stop({ graceful: false, wait: true });
  }
}

async function pickup(dsn, task) {
  const lat = [];
  return idle(dsn, (job) => lat.push(now() - job.data.t), async (boss) => {
    const [, errors] = await openLoop(task.rate, task.seconds, () => boss.send(QUEUE, { t: now() }));
    const sent = Math.floor(task.rate * task.seconds) - errors;
    await waitUntil(() => lat.length >= sent, task.grace);
    return { status: "ok", ...percentiles(lat), sent, picked: lat.length, errors };
  });
}

async function delayed(dsn, task) {
  const n = task.jobs;
  const late = [];
  return idle(dsn, (job) => late.push(Math.max(0, now() - job.data.due)), async (boss) => {
    const t0 = now() + task.lead + n / 5000;
    const due = Array.from({ length: n }, (_, i) => t0 + (i * task.spread) / n);
    for (let s = 0; s < n; s += 1000) {
      await boss.insert(due.slice(s, s + 1000).map((d) => ({ name: QUEUE, data: { due: d }, startAfter: new Date(d * 1000) })));
    }
    await waitUntil(() => late.length >= n, t0 - now() + task.spread + task.grace, 50);
    return { status: "ok", ...percentiles(late), due: n, picked: late.length };
  });
}

async function enqueue(dsn, task) {
  const boss = await reset(dsn);
  await boss.stop({ graceful: false, wait: true });
  const b = await start(dsn, 16);
  const [lat, errors] = await openLoop(task.rate, task.seconds, () => b.send(QUEUE, {}));
  await b.stop({ graceful: false, wait: true });
  return { status: "ok", ...percentiles(lat), errors };
}

await main({ drain, pickup, delayed, enqueue });
