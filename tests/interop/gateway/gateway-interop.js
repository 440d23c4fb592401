// Drives the unmodified npm `openai` client against a running PrivateMl gateway, then checks every response's
// signatures with independent libraries: ethers.verifyMessage (EIP-191) and tweetnacl (Ed25519), and that the signed
// hashes are sha256 of the exact bytes this client sent and received.
// Usage: GATEWAY_URL=http://127.0.0.1:8000 GATEWAY_TOKEN=... node gateway-interop.js   (exit 0 = all checks passed)
'use strict';
const crypto = require('node:crypto');
const { OpenAI } = require('openai');
const { ethers } = require('ethers');
const nacl = require('tweetnacl');

const base = process.env.GATEWAY_URL;
const token = process.env.GATEWAY_TOKEN || 'none';
const model = process.env.GATEWAY_MODEL || 'test-model';
if (!base) {
  console.error('GATEWAY_URL is required');
  process.exit(2);
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');
let exchanges = [];

// A fetch that records the exact request bytes the openai client sends and the exact response bytes it gets.
async function recordingFetch(url, init) {
  const sent = init && init.body !== undefined && init.body !== null ? Buffer.from(init.body) : Buffer.alloc(0);
  const response = await fetch(url, init);
  const copy = response.clone();
  const record = { url: String(url), sent, received: null };
  record.done = copy.arrayBuffer().then((b) => { record.received = Buffer.from(b); });
  exchanges.push(record);
  return response;
}

const client = new OpenAI({ apiKey: token, baseURL: base.replace(/\/$/, '') + '/v1', fetch: recordingFetch, maxRetries: 0 });

async function getJson(path) {
  const r = await fetch(base.replace(/\/$/, '') + path, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${path} answered ${r.status}`);
  return r.json();
}

async function checkSignatures(id, exchange, label) {
  await exchange.done;
  const expected = `${sha256(exchange.sent)}:${sha256(exchange.received)}`;
  const ecdsa = await getJson(`/v1/signature/${encodeURIComponent(id)}?signing_algo=ecdsa`);
  const ed = await getJson(`/v1/signature/${encodeURIComponent(id)}?signing_algo=ed25519`);
  const checks = {};
  checks[`${label}: text = sha256(sent):sha256(received)`] = ecdsa.text === expected && ed.text === expected;
  const recovered = ethers.verifyMessage(ecdsa.text, ecdsa.signature);
  checks[`${label}: ethers.verifyMessage recovers signing_address`] = recovered === ecdsa.signing_address;
  checks[`${label}: tweetnacl verifies Ed25519`] = nacl.sign.detached.verify(
    Buffer.from(ed.text, 'utf8'), Buffer.from(ed.signature, 'hex'), Buffer.from(ed.signing_address, 'hex'));
  const tampered = ethers.verifyMessage(ecdsa.text + 'x', ecdsa.signature);
  checks[`${label}: tampered text does not recover the address`] = tampered !== ecdsa.signing_address;
  return { checks, address: ecdsa.signing_address };
}

async function main() {
  const results = {};

  exchanges = [];
  const completion = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }] });
  const nonStream = await checkSignatures(completion.id, exchanges[0], 'non-streaming');
  Object.assign(results, nonStream.checks);
  results['non-streaming: openai client got content'] = typeof completion.choices[0].message.content === 'string'
    && completion.choices[0].message.content.length > 0;

  exchanges = [];
  const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }], stream: true });
  let id = null;
  let text = '';
  for await (const chunk of stream) {
    id = id || chunk.id;
    text += (chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content) || '';
  }
  const streamed = await checkSignatures(id, exchanges[0], 'streaming');
  Object.assign(results, streamed.checks);
  results['streaming: openai client got content'] = text.length > 0;
  results['streaming: raw bytes end with [DONE]'] = exchanges[0].received.toString('utf8').endsWith('data: [DONE]\n\n');

  const nonce = crypto.randomBytes(32).toString('hex');
  const report = await getJson(`/v1/attestation/report?nonce=${nonce}&signing_algo=ecdsa`);
  const reportData = Buffer.from(report.intel_quote, 'hex').subarray(568, 632);
  const expectedReportData = Buffer.concat([Buffer.from(nonStream.address.slice(2), 'hex'), Buffer.alloc(12), Buffer.from(nonce, 'hex')]);
  results['report: signing_address is the address that signed'] = report.signing_address === nonStream.address;
  results['report: quote report_data = address padded to 32 ‖ nonce'] = reportData.equals(expectedReportData);

  const failed = Object.entries(results).filter(([, ok]) => !ok);
  console.log(JSON.stringify({ passed: failed.length === 0, results }, null, 2));
  process.exit(failed.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
