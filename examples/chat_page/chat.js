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
let joined = false;

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
    ...members.map((name) => {
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

async function rejoin() {
  try {
    const answer = await client.request("chat/join", { room });
    showMembers(answer.members);
  } catch (err) {
    notice(`Could not rejoin: ${err.message}`);
  }
}

async function join(name, roomName) {
  me = name;
  room = roomName;
  client = new Client(`/ws?name=${encodeURIComponent(name)}`, {
    onState: (state) => {
      showState(state);
      if (state === "open" && joined) {
        notice("");
        rejoin();
      } else if (state === "reconnecting" && joined) {
        notice("Connection lost: reconnecting. Messages you send meanwhile go out when it is back.");
      }
    },
    onResubscribe: (_channel, result) => {
      if (result.gap) notice("Reconnected: messages said while you were away may be missing.");
    },
  });
  client.captureTelemetry({ console: true, errors: true });
  client.on("chat/message", (msg) => msg.room === room && addMessage(msg));
  client.on("chat/members", (msg) => msg.room === room && showMembers(msg.members));
  window.chat.client = client;
  await client.connect();
  await client.subscribe(`room/${room}`);
  const answer = await client.request("chat/join", { room });
  joined = true;
  showMembers(answer.members);
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
  joined = false;
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

window.chat = { client: null, get room() { return room; } };
showState("closed");
