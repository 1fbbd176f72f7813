// The dashboard page: samples from the channel `dash/metrics`, drawn on
// canvases. It starts from what the channel's history holds (`dash/recent`),
// then follows the channel live; across a lost connection or a server
// restart it keeps what it has and goes on. `window.dashboard` is what the
// page's test reads.
import { Client } from "/sente-lite.js";

const CHANNEL = "dash/metrics";
const KEEP = 2400; // samples kept (10 minutes at four a second)
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

const samples = [];
const seen = new Set(); // sample times already drawn
const rtts = []; // round trips, ms
const latency = []; // [at_ms, p50, p99]

function add(sample) {
  if (seen.has(sample.at_ms)) return;
  seen.add(sample.at_ms);
  samples.push(sample);
  samples.sort((a, b) => a.at_ms - b.at_ms);
  while (samples.length > KEEP) seen.delete(samples.shift().at_ms);
  schedule();
}

const client = new Client(`/ws`, { onState: (state) => showState(state) });
client.on("dash/sample", (sample) => add(sample));

function showState(state) {
  const el = document.getElementById("state");
  el.dataset.state = state;
  el.textContent = state;
}

async function start() {
  await client.connect();
  await client.subscribe(CHANNEL);
  // What the channel holds from before this page: drawn at once.
  for (const sample of await client.request("dash/recent", null)) add(sample);
  setInterval(measure, 500);
}

/** One timed round trip; the last 200 make the percentiles. */
async function measure() {
  if (client.state !== "open") return;
  const t0 = performance.now();
  try {
    await client.request("dash/ping", Date.now() % 1_000_000, { timeoutMs: 2000 });
  } catch {
    return;
  }
  rtts.push(performance.now() - t0);
  if (rtts.length > 200) rtts.shift();
  const sorted = [...rtts].sort((a, b) => a - b);
  const pick = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  latency.push([Date.now(), pick(0.5), pick(0.99)]);
  if (latency.length > KEEP) latency.shift();
  schedule();
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    draw();
  });
}

/** Draws `series` (arrays of [x, y]) on canvas `id`, y from 0 to the largest value. */
function chart(id, series) {
  const canvas = document.getElementById(id);
  const width = (canvas.width = canvas.clientWidth * devicePixelRatio);
  const height = (canvas.height = canvas.clientHeight * devicePixelRatio);
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  const all = series.flat();
  if (all.length === 0) return;
  const x0 = Math.min(...all.map((p) => p[0]));
  const x1 = Math.max(...all.map((p) => p[0]), x0 + 1);
  const y1 = Math.max(...all.map((p) => p[1]), 1) * 1.1;
  const x = (v) => ((v - x0) / (x1 - x0)) * (width - 4) + 2;
  const y = (v) => height - 2 - (v / y1) * (height - 4);
  series.forEach((points, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.lineWidth = devicePixelRatio;
    g.beginPath();
    points.forEach(([px, py], j) => (j === 0 ? g.moveTo(x(px), y(py)) : g.lineTo(x(px), y(py))));
    g.stroke();
  });
}

function draw() {
  const last = samples[samples.length - 1];
  document.getElementById("summary").textContent = last
    ? `${samples.length} samples, the last at ${new Date(last.at_ms).toLocaleTimeString()}`
    : "Waiting for samples.";
  if (!last) return;
  chart("connections", [samples.map((s) => [s.at_ms, s.connections])]);
  chart("messages", [samples.map((s) => [s.at_ms, s.messages_per_sec])]);
  chart("memory", [samples.map((s) => [s.at_ms, s.memory_kib / 1024])]);
  chart("latency", [latency.map(([t, p50]) => [t, p50]), latency.map(([t, , p99]) => [t, p99])]);
  chart("handlers", [samples.map((s) => [s.at_ms, s.handler_p50_us]), samples.map((s) => [s.at_ms, s.handler_p99_us])]);
  chart("fleet", last.fleet_cpu.map((_, host) => samples.map((s) => [s.at_ms, s.fleet_cpu[host] ?? 0])));
  document.getElementById("connections-now").textContent = last.connections;
  document.getElementById("messages-now").textContent = last.messages_per_sec.toFixed(1);
  document.getElementById("memory-now").textContent = (last.memory_kib / 1024).toFixed(1);
  const l = latency[latency.length - 1];
  document.getElementById("latency-now").textContent = l ? `${l[1].toFixed(2)} / ${l[2].toFixed(2)}` : "";
  document.getElementById("fleet-now").textContent = `${last.fleet_cpu.length} hosts`;
  document.getElementById("handlers-now").textContent = `${last.handler_p50_us} / ${last.handler_p99_us}`;
}

window.dashboard = {
  /** The sample times drawn, oldest first. */
  times: () => samples.map((s) => s.at_ms),
  /** The server's handler-time percentiles, [p50, p99] in µs, per sample. */
  handlerTimes: () => samples.map((s) => [s.handler_p50_us, s.handler_p99_us]),
  /** Round-trip percentiles measured so far. */
  latency: () => latency.length,
  state: () => client.state,
};

start().catch((err) => {
  document.getElementById("summary").textContent = `Could not start: ${err.message}`;
});
