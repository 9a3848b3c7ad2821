// A stock socket.io-client 4 subscriber, driven by the Rust test `tests/it/feed.rs` through stdin/stdout.
// Usage: node feed.mjs <base url> <polling|websocket|upgrade>
// Writes one JSON object per line: {"step":"joined",...}, {"step":"event",...}, {"step":"left",...}, ...
// Reads one command per line: `leave`, `join <chainId> <topic>`, `quit`.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const [url, mode] = process.argv.slice(2);
const transports = { polling: ["polling"], websocket: ["websocket"], upgrade: undefined }[mode];
if (!url || !(mode in { polling: 1, websocket: 1, upgrade: 1 })) {
  console.error("usage: node feed.mjs <url> <polling|websocket|upgrade>");
  process.exit(2);
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (msg) => {
  out({ step: "error", message: String(msg) });
  process.exit(1);
};
setTimeout(() => fail("timed out"), 60_000).unref();

const socket = io(url, { path: "/ws", transports, reconnection: false });
let pings = 0;
socket.io.on("ping", () => pings++);
socket.on("connect_error", (e) => fail(`connect_error: ${e.message}`));
socket.on("disconnect", (reason) => out({ step: "disconnect", reason }));

const EVENTS = [
  "apporder_published", "apporder_updated", "apporder_unpublished",
  "datasetorder_published", "datasetorder_updated", "datasetorder_unpublished",
  "workerpoolorder_published", "workerpoolorder_updated", "workerpoolorder_unpublished",
  "requestorder_published", "requestorder_updated", "requestorder_unpublished",
  "deal_created", "task_updated",
];
for (const name of EVENTS) {
  socket.on(name, (payload) => out({ step: "event", name, payload, transport: socket.io.engine.transport.name }));
}

const transportName = () => socket.io.engine.transport.name;

async function upgraded() {
  if (mode !== "upgrade" || transportName() === "websocket") return;
  await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
}

socket.on("connect", async () => {
  const ack = await socket.timeout(10_000).emitWithAck("join", { chainId: 134, topic: "orders" });
  await upgraded();
  out({ step: "joined", ack, transport: transportName() });
});

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const [cmd, ...args] = line.trim().split(/\s+/);
  try {
    if (cmd === "leave") {
      const ack = await socket.timeout(10_000).emitWithAck("leave", { chainId: 134, topic: "orders" });
      out({ step: "left", ack });
    } else if (cmd === "join") {
      const ack = await socket.timeout(10_000).emitWithAck("join", { chainId: Number(args[0]), topic: args[1] });
      out({ step: "joined", ack, transport: transportName() });
    } else if (cmd === "quit") {
      out({ step: "done", pings, transport: transportName(), connected: socket.connected });
      socket.disconnect();
      lines.close();
      process.stdin.destroy();
    }
  } catch (e) {
    fail(e);
  }
});
