// The socket.io 4 peer of the sente-lite benchmarks, with socket.io's default
// settings except the transport (WebSocket only, as the load generator speaks
// engine.io over WebSocket).
//
//   node server.js PORT        (PORT 0 picks a free port)
//
// Prints `listening 127.0.0.1:PORT` once it accepts connections.
//   echo     acknowledged with its payload
//   join     puts the socket in the bench room (acknowledged)
//   publish  emits `tick` with the same data to everyone in the room

"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const ROOM = "bench/room";
const port = Number(process.argv[2] || 0);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  serveClient: false,
  transports: ["websocket"],
});

io.on("connection", (socket) => {
  socket.on("echo", (payload, ack) => {
    if (typeof ack === "function") ack(payload);
  });
  socket.on("join", (ack) => {
    socket.join(ROOM);
    if (typeof ack === "function") ack();
  });
  socket.on("publish", (tick) => {
    io.to(ROOM).emit("tick", tick);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  const address = httpServer.address();
  process.stdout.write(`listening 127.0.0.1:${address.port}\n`);
});
