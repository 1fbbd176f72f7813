// The clients and test-server processes of one test file: built once before
// its tests, every client disconnected and every server killed after them.

import { after, before } from "node:test";
import WebSocket from "ws";

import { Client } from "../../sente-lite.js";
import { ServerProcess, buildExamples, freePort } from "./server.js";

/**
 * Registers the file's `before` and `after` hooks and returns its factories:
 * `client(url, options)`, a `Client` over `ws` with `defaults` under
 * `options`, and `server(args, { port })`, a started `js_test_server` (on a
 * free port unless one is given).
 */
export function testbed(defaults = {}) {
  let executable;
  const clients = [];
  const servers = [];
  before(() => {
    ({ js_test_server: executable } = buildExamples("js_test_server"));
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await Promise.all(servers.map((s) => s.kill()));
  });
  return {
    client(url, options = {}) {
      const c = new Client(url, { WebSocket, ...defaults, ...options });
      clients.push(c);
      return c;
    },
    async server(args = [], { port } = {}) {
      const s = new ServerProcess(executable, { port: port ?? (await freePort()), args });
      servers.push(s);
      return s.start();
    },
  };
}
