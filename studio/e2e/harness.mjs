// The real servers and browser the end-to-end tests run against: a NATS
// server with JetStream (ECS_NATS_SERVER) on a random port with its own store,
// a fresh PostgreSQL database (in ECS_TEST_PG_URL), the real `ecs` binary
// (ECS_BIN, default target/debug/ecs) serving the built Studio, and headless
// Chromium through playwright-core. Everything listens on 127.0.0.1 and
// everything started here is stopped by `stop()`, also when a test fails.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const STUDIO_DIR = resolve(here, '..');
const REPO = resolve(STUDIO_DIR, '..');
export const ADMIN_TOKEN = 'e2e-admin-token';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set for the end-to-end tests`);
  return value;
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port) {
  return new Promise((ok) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      ok(true);
    });
    socket.once('error', () => ok(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually(check, { timeoutMs = 15000, what = 'the condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function startProcess(command, args, env, name) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const keep = (chunk) => {
    log.push(chunk.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.name = name;
  child.log = log;
  return child;
}

function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      ok();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts NATS, a database, ECS and Chromium; returns the environment and
 * `stop()`. `ecsEnv` adds settings for ECS; `allowedOrigins` are other hosts
 * the browser may reach (an identity provider), every other one fails the test.
 */
export async function start({ ecsEnv = {}, allowedOrigins = [] } = {}) {
  const cleanups = [];
  const stop = async () => {
    while (cleanups.length) {
      try {
        await cleanups.pop()();
      } catch (error) {
        console.error('cleanup failed:', error);
      }
    }
  };
  const onSignal = () => stop().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  cleanups.push(() => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });
  try {
    const dist = resolve(process.env.ECS_STUDIO_DIR ?? join(STUDIO_DIR, 'dist'));
    if (!existsSync(join(dist, 'index.html'))) throw new Error(`no Studio build in ${dist}: run npm run build first`);
    const bin = resolve(REPO, process.env.ECS_BIN ?? 'target/debug/ecs');
    if (!existsSync(bin)) throw new Error(`no ecs binary at ${bin}: run cargo build -p ecs-api --bin ecs first`);

    const work = mkdtempSync(join(tmpdir(), 'ecs-studio-e2e-'));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));

    const natsPort = await freePort();
    const nats = startProcess(required('ECS_NATS_SERVER'), ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(work, 'nats')], {}, 'nats');
    cleanups.push(() => stopProcess(nats));
    // ECS connects once at start: wait until NATS accepts connections (on a
    // loaded machine it takes a moment to open its store and listen).
    await eventually(
      async () => {
        if (nats.exitCode !== null) throw new Error(`nats-server exited: ${nats.log.join('')}`);
        return await accepts(natsPort);
      },
      { timeoutMs: 30000, what: 'NATS to listen' },
    );

    const base = required('ECS_TEST_PG_URL');
    const database = `studio_e2e_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    cleanups.push(async () => {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await client.end();
    });
    const dbUrl = new URL(base);
    dbUrl.pathname = `/${database}`;

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const ecs = startProcess(
      bin,
      ['serve'],
      {
        ECS_LISTEN: `127.0.0.1:${port}`,
        ECS_NATS_URL: `nats://127.0.0.1:${natsPort}`,
        ECS_DATABASE_URL: dbUrl.toString(),
        ECS_ADMIN_TOKEN: ADMIN_TOKEN,
        ECS_STUDIO_DIR: dist,
        ECS_WRITE_WAIT_MS: '10000',
        RUST_LOG: process.env.RUST_LOG ?? 'warn',
        ...ecsEnv,
      },
      'ecs',
    );
    cleanups.push(() => stopProcess(ecs));
    await eventually(
      async () => {
        if (ecs.exitCode !== null) throw new Error(`ecs exited: ${ecs.log.join('')}`);
        return (await fetch(`${url}/readyz`)).ok;
      },
      { timeoutMs: 60000, what: 'ECS to be ready' },
    );

    const profile = join(work, 'chromium-profile');
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
    });
    cleanups.push(() => context.close());
    // Studio talks to this server only: any request elsewhere fails the test.
    const foreign = [];
    await context.route('**/*', (route) => {
      const target = new URL(route.request().url());
      if (target.origin !== url && target.protocol !== 'data:' && !allowedOrigins.includes(target.origin)) {
        foreign.push(target.href);
        return route.abort();
      }
      return route.continue();
    });
    return { url, context, stop, foreign, logs: () => ecs.log.join('') };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** An HTTP client for the API, as `token`. */
export function api(url, token = ADMIN_TOKEN) {
  const call = async (method, path, body, headers = {}) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
  };
  return {
    get: (path) => call('GET', path),
    put: (path, body, headers) => call('PUT', path, body, headers),
    post: (path, body) => call('POST', path, body),
  };
}

const AXE = readFileSync(join(STUDIO_DIR, 'node_modules/axe-core/axe.min.js'), 'utf8');

/** axe-core's serious and critical violations on the page as it is now. */
export async function axeViolations(page) {
  // Evaluated through the DevTools protocol, so the page's CSP still holds
  // for everything the page itself does.
  await page.evaluate(AXE);
  const results = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'] }),
  );
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** A new page that records CSP violations and page errors. */
export async function newPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      // Surfaced through the console listener above.
      console.error(`Refused to load by CSP: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.problems = problems;
  return page;
}

/** The JavaScript the first screen loads: the scripts index.html names, raw and gzipped. */
export function firstScreenJs(dist = join(STUDIO_DIR, 'dist')) {
  const html = readFileSync(join(dist, 'index.html'), 'utf8');
  const files = [...html.matchAll(/(?:src|href)="\/studio\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  let raw = 0;
  let gzipped = 0;
  for (const file of files) {
    const bytes = readFileSync(join(dist, file));
    raw += bytes.length;
    gzipped += gzipSync(bytes, { level: 9 }).length;
  }
  return { files, raw, gzipped };
}
