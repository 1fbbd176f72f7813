// Mistakes without a directive: tsc must reject each line that ends in `// ✗`.
import { Client } from "sente-lite";
import type { Channels, Events } from "./events.js";

const client = new Client<Events>("ws://127.0.0.1:3000/ws");
export const joined = client.request("chat/join", { id: 1 }); // ✗ `Join` has no `id`

const typed = new Client<Events, Channels>("ws://127.0.0.1:3000/ws");
export const subscribed = typed.subscribe("rooms/lobby"); // ✗ no channel of the map is named so
export const params = typed.join("room/{name}", { room: "lobby" }, {}); // ✗ the parameter is `name`
export const carried = typed.join("room/{name}", { name: "lobby" }, { "chat/say": () => {} }); // ✗ not carried
export const shape = typed.join("room/{name}", { name: "lobby" }, { "chat/message": (m) => m.body }); // ✗ no `body`
