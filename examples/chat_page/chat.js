// The chat page: joins a room on the chat server through the sente-lite client.
import { Client } from "/sente-lite.js";

const $ = (id) => document.getElementById(id);
const STATE_TEXT = {
  closed: "not connected",
  connecting: "connecting…",
  open: "connected",
  closing: "leaving…",
  reconnecting: "reconnecting…",
  failed: "disconnected",
};

let client = null;
let room = null;
let me = null;
let stopWatching = null;
// Every presence change the page saw ("joined ada", "left bob", "reset ada,bob").
const presenceLog = [];

function showState(state) {
  $("state").dataset.state = state;
  $("state-text").textContent = STATE_TEXT[state] ?? state;
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function showMembers(members) {
  const list = $("members");
  list.replaceChildren(
    ...members.map(({ user_id: name }) => {
      const li = document.createElement("li");
      li.textContent = name === me ? `${name} (you)` : name;
      return li;
    }),
  );
}

function addMessage({ from, text, at_ms }) {
  const li = document.createElement("li");
  if (from === me) li.className = "mine";
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = from;
  const when = document.createElement("time");
  const at = new Date(at_ms);
  when.dateTime = at.toISOString();
  when.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const body = document.createElement("p");
  body.textContent = text;
  li.append(who, when, body);
  const list = $("messages");
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function logPresence(members, change) {
  if (change.reset) {
    presenceLog.push(`reset ${members.map((m) => m.user_id).join(",")}`);
    return;
  }
  for (const user of change.left) presenceLog.push(`left ${user}`);
  for (const member of change.joined) presenceLog.push(`joined ${member.user_id}`);
}

async function join(name, roomName) {
  me = name;
  room = roomName;
  client = new Client(`/ws?name=${encodeURIComponent(name)}`, {
    onState: (state) => {
      showState(state);
      if (state === "open") {
        notice("");
      } else if (state === "reconnecting" && stopWatching) {
        notice("Connection lost: reconnecting. Messages you send meanwhile go out when it is back.");
      }
    },
    // The room's history covers short absences; past it, say so.
    onGap: () => notice("Reconnected: messages said while you were away may be missing."),
  });
  client.captureTelemetry({ console: true, errors: true });
  client.on("chat/message", (msg) => msg.room === room && addMessage(msg));
  window.chat.client = client;
  await client.connect();
  // The client resumes the room after a reconnect, with what was said meanwhile.
  await client.subscribe(`room/${room}`);
  await client.request("chat/join", { room });
  stopWatching = await client.watchPresence(`room/${room}`, (members, change) => {
    logPresence(members, change);
    showMembers(members);
  });
}

$("join").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("join-error").textContent = "";
  const name = $("name").value.trim();
  const roomName = $("room").value.trim();
  try {
    await join(name, roomName);
  } catch (err) {
    $("join-error").textContent = `Could not join: ${err.message}`;
    await client?.disconnect();
    return;
  }
  $("room-title").textContent = `#${room}`;
  $("join").hidden = true;
  $("chat").hidden = false;
  $("people").hidden = false;
  $("text").focus();
});

$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  try {
    client.send("chat/say", { room, text });
    $("text").value = "";
  } catch (err) {
    notice(`Not sent: ${err.message}`);
  }
});

$("leave").addEventListener("click", async () => {
  stopWatching?.();
  stopWatching = null;
  try {
    await client.request("chat/leave", { room });
    await client.unsubscribe(`room/${room}`);
  } finally {
    await client.disconnect();
  }
  $("messages").replaceChildren();
  notice("");
  $("chat").hidden = true;
  $("people").hidden = true;
  $("join").hidden = false;
});

window.chat = { client: null, presenceLog, get room() { return room; } };
showState("closed");
