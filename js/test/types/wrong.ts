// A mistake without a directive: tsc must reject this file.
import { Client } from "sente-lite";
import type { Events } from "./events.js";

const client = new Client<Events>("ws://127.0.0.1:3000/ws");
export const joined = client.request("chat/join", { id: 1 });
