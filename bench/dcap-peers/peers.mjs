// Side-by-side peers: time full DCAP verification of one quote + collateral at one instant with
// @phala/dcap-qvl (pure JS) and @phala/dcap-qvl-web (Rust→WASM). Prints one JSON line per verifier.
// Usage: node peers.mjs QUOTE COLLATERAL_JSON NOW_SECS [SECONDS_PER_VERIFIER]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const [quotePath, collateralPath, nowArg, secondsArg] = process.argv.slice(2);
if (!quotePath || !collateralPath || !nowArg) {
  console.error('usage: node peers.mjs QUOTE COLLATERAL_JSON NOW_SECS [SECONDS]');
  process.exit(2);
}
let quote = readFileSync(quotePath);
const text = quote.toString('latin1').trim();
if (/^(0x)?[0-9a-fA-F]+$/.test(text)) quote = Buffer.from(text.replace(/^0x/, ''), 'hex');
const collateral = JSON.parse(readFileSync(collateralPath, 'utf8'));
const now = Number(nowArg);
const seconds = Number(secondsArg ?? 5);

function measure(name, fn) {
  const first = fn(); // also the verdict we print
  for (let i = 0; i < 50; i++) fn(); // warm-up (JIT)
  let n = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let t = start;
  while (t < deadline) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    t = process.hrtime.bigint();
  }
  const us = Number(t - start) / 1000 / n;
  console.log(JSON.stringify({ verifier: name, iterations: n, us_per_verification: +us.toFixed(1), status: first.status }));
}

const js = require('@phala/dcap-qvl');
measure('@phala/dcap-qvl 0.3.9 (JS)', () => js.verify(new Uint8Array(quote), collateral, now));

const wasmDir = path.dirname(require.resolve('@phala/dcap-qvl-web/dcap-qvl-web.js'));
const web = await import(path.join(wasmDir, 'dcap-qvl-web.js'));
web.initSync({ module: readFileSync(path.join(wasmDir, 'dcap-qvl-web_bg.wasm')) });
measure('@phala/dcap-qvl-web 0.3.3 (WASM)', () => web.js_verify(new Uint8Array(quote), collateral, BigInt(now)));
