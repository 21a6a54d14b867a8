// BullMQ side of Conveyor's benchmark (issue 6): scenarios 1-4 plus the worker's
// CPU and memory, on the same Redis, under a key prefix of its own. Run by
// `conveyor-bench --with-bullmq` (which installs the packages here first); by hand:
//
//   npm install --prefix bench/bullmq && node bench/bullmq/bench.mjs
//
// Environment: REDIS_URL (default redis://127.0.0.1:6379), BULL_PREFIX, BENCH_JOBS
// (default 100000), BENCH_PICKUP_JOBS (2000), BENCH_PICKUP_RATE (200),
// BENCH_CONCURRENCY (100). Progress goes to stderr; the last line on stdout is
// the JSON of the figures.
//
// As in Conveyor's run, the worker is a process of its own (this script forked with
// --worker), jobs keep their records (removeOnComplete off), the drain is timed from
// the worker's start to the moment the completed count reaches N (polled every
// 20 ms), and pickup latency runs from just before the add() call to the start of
// the handler (the handler returns its start time).

import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { fork, execSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = process.env.BULL_PREFIX ?? `bench-bull-${process.pid}`;
const N = Number(process.env.BENCH_JOBS) || 100_000;
const PICKUP_JOBS = Number(process.env.BENCH_PICKUP_JOBS) || 2_000;
const PICKUP_RATE = Number(process.env.BENCH_PICKUP_RATE) || 200;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY) || 100;
const BULK_CHUNK = 10_000;
const E2E_CHUNK = 1_000;

// CLOCK_MONOTONIC in ms: one clock for every process of the machine, so a time
// taken in the producer and one taken in the worker process compare.
// (`performance.timeOrigin + performance.now()` is each process's start on the wall
// clock plus its own monotonic time: two processes disagree by however much the
// wall clock was slewed since the older one started, milliseconds on a VM.)
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('[bullmq]', ...a);
const connection = () => new IORedis(REDIS_URL, { maxRetriesPerRequest: null });

// ------------------------------------------------------------------ worker process

async function runWorker(queueName, concurrency) {
  const worker = new Worker(
    queueName,
    async (job) => (job.name === 'ECHO' ? { start: now() } : null),
    { connection: connection(), prefix: PREFIX, concurrency },
  );
  await worker.waitUntilReady();
  process.on('message', async (m) => {
    if (m && m.stop) {
      await worker.close();
      process.exit(0);
    }
  });
  process.send({ ready: true });
}

// ------------------------------------------------------------------ measuring

const TICKS = (() => {
  try {
    return Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function procCpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[14 - 3]) + Number(fields[15 - 3])) / TICKS;
}

function statusKb(pid, key) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`));
  return Number(line.split(/\s+/)[1]);
}

function machineBusySeconds() {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return cpu.filter((_, i) => i !== 3 && i !== 4).reduce((a, b) => a + b, 0) / TICKS;
}

async function localRedisPid() {
  const redis = connection();
  try {
    const info = await redis.info('server');
    const pid = Number((info.match(/process_id:(\d+)/) || [])[1]);
    return pid && readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('redis') ? pid : null;
  } catch {
    return null;
  } finally {
    redis.disconnect();
  }
}

const redisCpu = (pid) => (pid ? procCpuSeconds(pid) : 0);

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1];
}

function* chunks(n, size) {
  for (let i = 0; i < n; i += size) yield Math.min(size, n - i);
}

// ------------------------------------------------------------------ helpers

async function freshQueue(name) {
  const queue = new Queue(name, { connection: connection(), prefix: PREFIX });
  await queue.waitUntilReady();
  await queue.obliterate({ force: true });
  return queue;
}

// Forked workers, killed if the run fails half-way.
const children = new Set();

async function startWorker(queueName) {
  const child = fork(fileURLToPath(import.meta.url), ['--worker', queueName, String(CONCURRENCY)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, BULL_PREFIX: PREFIX },
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => m && m.ready && resolve());
    child.on('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready`)));
  });
  return { child, ready };
}

async function stopWorker(child) {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.send({ stop: true });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

async function waitCompleted(queue, n, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await queue.getCompletedCount();
    if (done >= n) return now();
    if (child && child.exitCode !== null) throw new Error(`worker exited with ${done}/${n} completed`);
    if (Date.now() > deadline) throw new Error(`only ${done}/${n} completed after ${timeoutMs} ms`);
    await sleep(20);
  }
}

const noops = (size) => Array.from({ length: size }, () => ({ name: 'NOOP', data: {} }));
const drainTimeout = (n) => 60_000 + n * 5;

// ------------------------------------------------------------------ scenarios

async function main() {
  const out = { bullmq: readVersion(), prefix: PREFIX, jobs: N };
  const redisPid = await localRedisPid();
  const queues = [];
  try {
    // 1. bulk enqueue
    {
      log(`1. bulk enqueue: ${N} jobs (addBulk × ${BULK_CHUNK})`);
      const q = await freshQueue('bulk');
      queues.push(q);
      const t0 = now();
      for (const size of chunks(N, BULK_CHUNK)) await q.addBulk(noops(size));
      const seconds = (now() - t0) / 1000;
      out.bulk_enqueue = { jobs: N, seconds, jobs_per_s: N / seconds };
      log(`   ${Math.round(N / seconds)} jobs/s`);
      await q.obliterate({ force: true });
    }
    // 2. drain (+ worker CPU and peak RSS)
    {
      log(`2. drain: ${N} queued jobs, one worker × ${CONCURRENCY}`);
      const q = await freshQueue('drain');
      queues.push(q);
      for (const size of chunks(N, BULK_CHUNK)) await q.addBulk(noops(size));
      const m0 = machineBusySeconds();
      const r0 = redisCpu(redisPid);
      const t0 = now();
      const { child, ready } = await startWorker('drain');
      ready.catch(() => {});
      const t1 = await waitCompleted(q, N, child, drainTimeout(N));
      const seconds = (t1 - t0) / 1000;
      const cpu = procCpuSeconds(child.pid);
      const machine = machineBusySeconds() - m0;
      const redisUsed = redisCpu(redisPid) - r0;
      const peak = statusKb(child.pid, 'VmHWM');
      await stopWorker(child);
      out.drain = { jobs: N, seconds, jobs_per_s: N / seconds };
      out.cpu = {
        worker_cpu_seconds: cpu,
        worker_cpu_seconds_per_1000_jobs: (cpu * 1000) / N,
        redis_cpu_seconds: redisUsed,
        redis_cpu_seconds_per_1000_jobs: (redisUsed * 1000) / N,
        system_cpu_seconds: cpu + redisUsed,
        system_cpu_ms_per_job: ((cpu + redisUsed) * 1000) / N,
        machine_cpu_seconds: machine,
        machine_cpu_ms_per_job: (machine * 1000) / N,
        peak_rss_mb: peak / 1024,
      };
      log(`   ${Math.round(N / seconds)} jobs/s`);
      await q.obliterate({ force: true });
    }
    // 3. end to end
    {
      log(`3. end to end: producing ${N} (addBulk × ${E2E_CHUNK}) while one worker drains`);
      const q = await freshQueue('e2e');
      queues.push(q);
      const { child, ready } = await startWorker('e2e');
      await ready;
      const t0 = now();
      const producer = (async () => {
        for (const size of chunks(N, E2E_CHUNK)) await q.addBulk(noops(size));
        return now();
      })();
      const [produced, t1] = await Promise.all([producer, waitCompleted(q, N, child, drainTimeout(N))]);
      const seconds = (t1 - t0) / 1000;
      out.cpu.peak_rss_mb = Math.max(out.cpu.peak_rss_mb, statusKb(child.pid, 'VmHWM') / 1024);
      await stopWorker(child);
      out.end_to_end = { jobs: N, seconds, jobs_per_s: N / seconds, producer_seconds: (produced - t0) / 1000 };
      log(`   ${Math.round(N / seconds)} jobs/s`);
      await q.obliterate({ force: true });
    }
    // 4. pickup latency (+ idle RSS)
    {
      log(`4. pickup latency: ${PICKUP_JOBS} jobs at ${PICKUP_RATE}/s to an idle worker`);
      const q = await freshQueue('pickup');
      queues.push(q);
      const { child, ready } = await startWorker('pickup');
      await ready;
      await sleep(1000);
      out.cpu.idle_rss_mb = statusKb(child.pid, 'VmRSS') / 1024;
      const interval = 1000 / PICKUP_RATE;
      const start = now();
      const sent = [];
      for (let i = 0; i < PICKUP_JOBS; i++) {
        const wait = start + i * interval - now();
        if (wait > 0) await sleep(wait);
        const before = now();
        const job = await q.add('ECHO', { i });
        sent.push([job.id, before]);
      }
      await waitCompleted(q, PICKUP_JOBS, child, 60_000);
      await stopWorker(child);
      const latencies = [];
      for (const [id, before] of sent) {
        const job = await q.getJob(id);
        latencies.push(job.returnvalue.start - before);
      }
      latencies.sort((a, b) => a - b);
      out.pickup_latency = {
        jobs: PICKUP_JOBS,
        p50_ms: percentile(latencies, 0.5),
        p99_ms: percentile(latencies, 0.99),
        max_ms: latencies[latencies.length - 1],
        mean_ms: latencies.reduce((a, b) => a + b, 0) / latencies.length,
      };
      log(`   p50 ${out.pickup_latency.p50_ms.toFixed(3)} ms, p99 ${out.pickup_latency.p99_ms.toFixed(3)} ms`);
      await q.obliterate({ force: true });
    }
  } finally {
    for (const child of children) child.kill('SIGKILL');
    for (const q of queues) await q.close().catch(() => {});
    const redis = connection();
    const keys = await redis.keys(`${PREFIX}:*`);
    for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
    redis.disconnect();
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

function readVersion() {
  try {
    const url = new URL('./node_modules/bullmq/package.json', import.meta.url);
    return JSON.parse(readFileSync(url, 'utf8')).version;
  } catch {
    return null;
  }
}

// Last, so every declaration above is initialised.
if (process.argv[2] === '--worker') {
  await runWorker(process.argv[3], Number(process.argv[4]));
} else {
  await main();
}
