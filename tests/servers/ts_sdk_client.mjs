// A real MCP client of the TypeScript SDK: starts the stdio server given as arguments (with this
// process's environment), lists its tools, prints their names as one JSON line, and closes the
// way the SDK does: it ends the server's stdin, and sends SIGTERM if it is still running 2 s later.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [command, ...args] = process.argv.slice(2);
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "ts-sdk-client", version: "1.0.0" });
await client.connect(transport);
const { tools } = await client.listTools();
process.stdout.write(JSON.stringify({ tools: tools.map((tool) => tool.name) }) + "\n");
await client.close();
