// Runs an example app beside the loopback authorization server of the tests
// (tests/aip/server.mjs, an AIP stand-in that logs in whoever asks, as alice.test or bob.test).
//
//   node ../with-aip.mjs <command> [args...]        (Deno: deno run -A ../with-aip.mjs ...)
//
// Starts the server on a free 127.0.0.1 port, then runs the command with AUTH_BASE_URL set to
// it (and OAUTH_CLIENT_ID/OAUTH_CLIENT_SECRET to its test client, unless set). With
// AUTH_BASE_URL already set, it runs the command alone against that server. Ctrl+C stops both.
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: with-aip.mjs <command> [args...]");
  process.exit(2);
}
const env = { ...process.env };
let aip = null;

if (!env.AUTH_BASE_URL) {
  const server = fileURLToPath(new URL("../tests/aip/server.mjs", import.meta.url));
  const [cmd, cmdArgs] = typeof Deno !== "undefined"
    ? [Deno.execPath(), ["run", "--allow-net=127.0.0.1", "--allow-env", server]]
    : [process.execPath, [server]];
  aip = spawn(cmd, [...cmdArgs, "--port", "0", "--ttl", "0", "--die-with-stdin"], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    aip.stdout.setEncoding("utf8");
    aip.stdout.on("data", (chunk) => {
      out += chunk;
      if (out.includes("\n")) resolve(JSON.parse(out.slice(0, out.indexOf("\n"))).port);
    });
    aip.on("error", reject);
    aip.on("exit", (code) => reject(new Error(`the authorization server exited (${code}) before it listened`)));
  });
  env.AUTH_BASE_URL = `http://127.0.0.1:${port}`;
  env.OAUTH_CLIENT_ID ??= "test-client";
  env.OAUTH_CLIENT_SECRET ??= "test-secret";
  console.log(`Loopback authorization server at ${env.AUTH_BASE_URL} (log in as alice.test or bob.test)`);
}

// Under Deno, `deno` is this very binary (it need not be on PATH).
const program = command === "deno" && typeof Deno !== "undefined" ? Deno.execPath() : command;
const app = spawn(program, args, { stdio: "inherit", env });
const stopAip = () => {
  if (aip && aip.exitCode === null) {
    aip.stdin.end(); // --die-with-stdin
    aip.kill("SIGTERM");
  }
};
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    app.kill(signal);
  });
}
app.on("error", (error) => {
  console.error(`${command}: ${error.message}`);
  stopAip();
  process.exit(127);
});
app.on("exit", (code, signal) => {
  stopAip();
  process.exit(code ?? (signal ? 1 : 0));
});
