// The tail page: follows one session's file live (`/tail?session=...`), or
// lists the sessions. It subscribes to the session's channel first, then
// loads the file's last lines (`tail/recent`), and shows each line once, in
// order of its number. `window.tail` is what the page's test reads.
import { Client } from "/sente-lite.js";

const KEEP = 2000; // lines shown at most
const session = new URLSearchParams(location.search).get("session");
const client = new Client("/ws", {
  onState: (state) => {
    const el = document.getElementById("state");
    el.dataset.state = state;
    el.textContent = state;
  },
});

const lines = new Map(); // seq → line
let lost = 0;

function text(tag, className, content) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  el.textContent = content;
  return el;
}

function render(line) {
  const row = document.createElement("div");
  row.dataset.seq = line.seq;
  if (line.type === "losses") {
    const causes = ["over_budget", "over_batch_size", "refused", "dropped_by_client", "queue_full"]
      .filter((k) => line[k] > 0)
      .map((k) => `${k} ${line[k]}`)
      .join(", ");
    row.className = "line losses";
    row.append(text("span", "level", "lost"), text("span", "", causes));
    return row;
  }
  row.className = `line ${line.level}`;
  const time = new Date(line.at_ms).toISOString().slice(11, 23);
  const fields = Object.entries(line.fields).map(([k, v]) => `${k}=${v}`).join(" ");
  row.append(
    text("span", "level", line.level),
    text("span", "", `${time} [${line.source}] ${line.message} `),
    text("span", "fields", fields),
  );
  return row;
}

function add(newLines) {
  const box = document.getElementById("lines");
  for (const line of newLines) {
    if (lines.has(line.seq)) continue;
    lines.set(line.seq, line);
    if (line.type === "losses") {
      lost += ["over_budget", "over_batch_size", "refused", "dropped_by_client", "queue_full"]
        .reduce((sum, k) => sum + line[k], 0);
    }
    // In order of number: after the last row with a smaller one.
    const row = render(line);
    let before = null;
    for (let el = box.lastElementChild; el; el = el.previousElementSibling) {
      if (Number(el.dataset.seq) < line.seq) break;
      before = el;
    }
    box.insertBefore(row, before);
  }
  while (box.childElementCount > KEEP) {
    lines.delete(Number(box.firstElementChild.dataset.seq));
    box.firstElementChild.remove();
  }
  document.getElementById("count").textContent = lines.size;
  document.getElementById("losses").textContent = lost;
}

async function follow() {
  document.getElementById("session").textContent = session;
  await client.connect();
  const { key } = await keyOf(session);
  client.on("tail/lines", (msg) => {
    if (msg.key === key) add(msg.lines);
  });
  await client.subscribe(`tail/${key}`);
  add(await client.request("tail/recent", { session, max: 500 }));
}

// The file key the server uses for a session: itself when plain, otherwise
// a hash (the server says which through `tail/sessions` too).
async function keyOf(name) {
  if (/^[A-Za-z0-9_-]{1,64}$/.test(name)) return { key: name };
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(name)) {
    hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return { key: `x-${hash.toString(16).padStart(16, "0")}` };
}

async function list() {
  document.getElementById("session").textContent = "(every session)";
  await client.connect();
  const sessions = await client.request("tail/sessions", null);
  const table = document.createElement("table");
  table.append(text("tr", "", ""));
  table.firstChild.append(text("th", "", "session"), text("th", "", "files"), text("th", "", "bytes"), text("th", "", "last written"));
  for (const s of sessions) {
    const row = document.createElement("tr");
    const link = text("a", "", s.key);
    link.href = `/tail?session=${encodeURIComponent(s.key)}`;
    const cell = document.createElement("td");
    cell.append(link);
    row.append(cell, text("td", "", s.files), text("td", "", s.bytes), text("td", "", new Date(s.modified_ms).toISOString()));
    table.append(row);
  }
  document.getElementById("sessions").append(table);
  window.tail.sessions = sessions;
}

window.tail = { lines: () => [...lines.values()].sort((a, b) => a.seq - b.seq), lost: () => lost };
if (session) await follow();
else await list();
