#!/usr/bin/env node
// Runs one command through Maestro's real bash tool (evalops/maestro src/tools/bash.ts, bundled
// locally; see README.md) the way scripts/run-bash-tool.js does, and prints the tool result text
// byte for byte (no newline added). The shell is whatever $SHELL names in this process's env:
// the tool reads it (shell-utils.ts getShellConfig) and passes the filtered env on.
//
//   node driver.mjs --bundle PATH [--timeout SECONDS] [--cwd DIR] [--json] [--] COMMAND
//
// --timeout: the tool's own `timeout` parameter (seconds, may be fractional; default 90, max 600;
//   on expiry the tool SIGKILLs the shell's process group). --json: print
//   {"text", "elapsed_ms", "details"} instead of the bare text.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const usage = "usage: driver.mjs --bundle PATH [--timeout S] [--cwd DIR] [--json] [--] COMMAND";
const argv = process.argv.slice(2);
const opts = { json: false };
let command;
while (argv.length > 0) {
	const a = argv.shift();
	if (a === "--bundle") opts.bundle = argv.shift();
	else if (a === "--timeout") opts.timeout = Number(argv.shift());
	else if (a === "--cwd") opts.cwd = argv.shift();
	else if (a === "--json") opts.json = true;
	else if (a === "--") { command = argv.shift(); break; }
	else if (a.startsWith("--")) { console.error(`${usage}\nunknown option ${a}`); process.exit(2); }
	else { command = a; break; }
}
if (!opts.bundle || command === undefined || argv.length > 0) {
	console.error(usage);
	process.exit(2);
}
if (opts.timeout !== undefined && !(opts.timeout > 0)) {
	console.error(`--timeout must be a positive number of seconds, got ${opts.timeout}`);
	process.exit(2);
}
// Maestro's logger writes to stdout; keep it off the result (it reads this at import).
process.env.MAESTRO_LOG_LEVEL ??= "error";

const { bashTool } = await import(pathToFileURL(resolve(opts.bundle)).href);
const params = { command };
if (opts.timeout !== undefined) params.timeout = opts.timeout;
if (opts.cwd !== undefined) params.cwd = opts.cwd;
const started = Date.now();
const result = await bashTool.execute("eval-bash", params);
const text = result.content.find((item) => item.type === "text");
if (!text) {
	console.error("Bash tool returned no text output");
	process.exit(1);
}
const out = opts.json
	? `${JSON.stringify({ text: text.text, elapsed_ms: Date.now() - started, details: result.details ?? null })}\n`
	: text.text;
process.stdout.write(out, () => process.exit(0));
