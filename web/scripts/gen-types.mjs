// Generates src/api-types.ts, the TypeScript types of the HTTP API, from the server's OpenAPI
// schema (openapi-typescript, then prettier), so the dashboard's types follow the server's
// pydantic response models instead of being mirrored by hand (src/types.ts names them).
//
//   python -m kilometers.server.openapi | npm run --silent gen:types          (make types)
//   npm run --silent gen:types -- openapi.json
//   ... | node scripts/gen-types.mjs --stdout     print instead of writing (the staleness test)
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import openapiTS from "openapi-typescript";
import * as prettier from "prettier";

const OUT = fileURLToPath(new URL("../src/api-types.ts", import.meta.url));

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const args = process.argv.slice(2);
const toStdout = args.includes("--stdout");
const file = args.find((a) => !a.startsWith("--"));
const text = file ? await readFile(file, "utf8") : await readStdin();
if (!text.trim()) {
  console.error(
    "gen-types: no OpenAPI schema on stdin; run: python -m kilometers.server.openapi | npm run --silent gen:types",
  );
  process.exit(2);
}
const generated = await openapiTS(JSON.parse(text));
const options = { ...(await prettier.resolveConfig(OUT)), filepath: OUT };
const formatted = await prettier.format(generated, options);
if (toStdout) process.stdout.write(formatted);
else await writeFile(OUT, formatted, "utf8");
