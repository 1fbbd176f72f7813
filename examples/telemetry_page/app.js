// The telemetry demo page: a client that captures the page's errors and
// sends them, with what the buttons log, as telemetry. `window.app` is what
// the page's test reads and drives.
import { Client } from "/sente-lite.js";

const client = new Client("/ws", {
  onState: (state) => {
    const el = document.getElementById("state");
    el.dataset.state = state;
    el.textContent = state;
  },
  // Errors, rejections and console.error, in batches sent every 200 ms.
  telemetry: { console: true, errors: true, flushMs: 200, capacity: 5000 },
});

const session = client.telemetrySession;
document.getElementById("session").textContent = session;
document.getElementById("tail").href = `/tail?session=${encodeURIComponent(session)}`;

let clicks = 0;
const note = (text) => (document.getElementById("note").textContent = text);

document.getElementById("info").onclick = () => {
  clicks += 1;
  client.log("info", `button clicked ${clicks} times`, { clicks }, "page");
  note(`logged click ${clicks}`);
};
document.getElementById("throw").onclick = () => {
  // Thrown from a timer, so that nothing catches it: window.onerror reports it.
  setTimeout(() => {
    throw new Error(`checkout failed: cart ${clicks} is empty`);
  });
  note("threw an error");
};
document.getElementById("reject").onclick = () => {
  Promise.reject(new Error("payment service timed out"));
  note("rejected a promise");
};
document.getElementById("console").onclick = () => {
  console.error("console says", { code: 17 });
  note("wrote to console.error");
};
document.getElementById("flood").onclick = () => {
  for (let i = 1; i <= 2000; i++) client.log("info", `flood ${i}`, { i }, "page");
  note("logged 2,000 records at once: the server's budget drops some and reports how many");
};

window.app = { client, session };
await client.connect();
