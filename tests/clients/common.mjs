// Shared by the client scripts: the scenarios (prompts and canned answers, also read by
// tests/test_client_matrix.py) and the command line: node SCRIPT.mjs SERVER_URL SCENARIO [VARIANT].
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const SCENARIOS = JSON.parse(readFileSync(new URL('./scenarios.json', import.meta.url), 'utf8'));

// The structured-output scenario's record, as each library is given it.
export const Weather = z.object({ city: z.string(), degrees: z.number().int(), sunny: z.boolean() });
export const WEATHER_TOOL_DESCRIPTION = 'The current weather in a city';
export const CityArgs = z.object({ city: z.string() });

// What the rate-limit scenario reports: the class of the error the library threw, and its status.
export function describeError(error) {
  return { error: error?.constructor?.name ?? typeof error, status: error?.status ?? error?.statusCode ?? null,
           message: String(error?.message ?? error).slice(0, 300) };
}

// Run handlers[scenario](serverUrl, variant) and print its result as one line of JSON. An unexpected
// exception leaves node with its stack on stderr and exit status 1.
export async function main(handlers, variants = [undefined]) {
  const [url, scenario, variant] = process.argv.slice(2);
  if (!url || !Object.hasOwn(handlers, scenario) || !variants.includes(variant)) {
    const usage = variants[0] === undefined ? '' : ` ${variants.join('|')}`;
    console.error(`usage: node ${process.argv[1]} SERVER_URL ${Object.keys(handlers).join('|')}${usage}`);
    process.exit(2);
  }
  const result = await handlers[scenario](url.replace(/\/+$/, ''), variant);
  process.stdout.write(JSON.stringify(result) + '\n');
}
