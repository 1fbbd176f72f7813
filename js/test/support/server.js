// Starts the Rust servers the tests run against, as real processes: builds
// them with cargo once, picks free ports, captures their output, and kills
// them at the end.

import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

/** The repository's root. */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

const built = new Map();

/**
 * Builds examples of the `sente-lite-examples` package and returns their
 * executables by name. Cargo's own cache makes a second build a no-op.
 */
export function buildExamples(...names) {
  const missing = names.filter((name) => !built.has(name));
  if (missing.length > 0) {
    const args = ["build", "--quiet", "-p", "sente-lite-examples", "--message-format=json"];
    for (const name of missing) args.push("--example", name);
    const result = spawnSync("cargo", args, {
      cwd: ROOT,
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      stdio: ["ignore", "pipe", "inherit"],
    });
    if (result.status !== 0) {
      throw new Error(`cargo build failed (${result.status ?? result.signal})`);
    }
    for (const line of result.stdout.split("\n")) {
      if (!line.startsWith("{")) continue;
      const message = JSON.parse(line);
      if (message.reason === "compiler-artifact" && message.executable && message.target.kind.includes("example")) {
        built.set(message.target.name, message.executable);
      }
    }
  }
  return Object.fromEntries(names.map((name) => {
    const executable = built.get(name);
    if (!executable) throw new Error(`cargo built no executable for example ${name}`);
    return [name, executable];
  }));
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * A server process on a fixed port, which the tests may kill and start again.
 * Everything it prints (stdout and stderr, every run) is kept in `output`.
 */
export class ServerProcess {
  constructor(executable, { port, args = [], ready = /listening/ }) {
    this.executable = executable;
    this.port = port;
    this.args = args;
    this.ready = ready;
    this.output = "";
    this.child = null;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}/`;
  }

  /** Starts it and resolves once it prints its ready line (retrying while the port is busy). */
  async start() {
    for (let attempt = 0; ; attempt++) {
      try {
        await this._spawn();
        return this;
      } catch (err) {
        if (attempt >= 20) throw err;
        await sleep(100);
      }
    }
  }

  _spawn() {
    const child = spawn(this.executable, ["--addr", `127.0.0.1:${this.port}`, ...this.args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", RUST_LOG: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    this.exited = exited;
    return new Promise((resolve, reject) => {
      let seen = "";
      const onData = (chunk) => {
        const text = chunk.toString();
        this.output += text;
        seen += text;
        if (this.ready.test(seen)) {
          seen = "";
          resolve();
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      exited.then((code) => reject(new Error(`server exited early (${code}): ${seen}`)));
    });
  }

  /** Sends `signal` to it. */
  signal(signal) {
    this.child?.kill(signal);
  }

  /** Kills it with `signal` (SIGKILL by default) and waits for it to exit. */
  async kill(signal = "SIGKILL") {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await this.exited;
  }

  /** Waits until its output matches `pattern`. */
  async waitForOutput(pattern, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (Date.now() > deadline) {
        throw new Error(`server output did not match ${pattern} within ${timeoutMs} ms:\n${this.output.slice(-2000)}`);
      }
      await sleep(25);
    }
  }
}

/** Polls `check` until it returns a truthy value, at most `timeoutMs`. */
export async function eventually(check, timeoutMs = 5000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}
