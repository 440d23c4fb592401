// Chats with a node started by `privateml up` through the unmodified npm `openai` client, once streaming and once
// not, then fetches each answer's signature and reports what independent libraries make of it: the address
// ethers.verifyMessage (EIP-191) recovers, whether tweetnacl accepts the Ed25519 signature, and the sha256 of the
// exact bytes this client sent and received. It prints those facts as JSON and judges nothing: the caller compares
// them with what `up` printed (tests/PrivateMl.Cli.Tests/UpCommandTests.cs).
// Usage: GATEWAY_URL=http://127.0.0.1:8000 GATEWAY_MODEL=privateml-demo node up-chat.js
'use strict';
const crypto = require('node:crypto');
const { OpenAI } = require('openai');
const { ethers } = require('ethers');
const nacl = require('tweetnacl');

const base = (process.env.GATEWAY_URL || '').replace(/\/$/, '');
const model = process.env.GATEWAY_MODEL;
if (!base || !model) {
  console.error('GATEWAY_URL and GATEWAY_MODEL are required');
  process.exit(2);
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');
let exchanges = [];

// A fetch that records the exact request bytes the openai client sends and the exact response bytes it gets.
async function recordingFetch(url, init) {
  const sent = init && init.body !== undefined && init.body !== null ? Buffer.from(init.body) : Buffer.alloc(0);
  const response = await fetch(url, init);
  const record = { sent, received: null };
  record.done = response.clone().arrayBuffer().then((b) => { record.received = Buffer.from(b); });
  exchanges.push(record);
  return response;
}

const client = new OpenAI({ apiKey: 'none', baseURL: base + '/v1', fetch: recordingFetch, maxRetries: 0 });

async function signature(id, algo) {
  const r = await fetch(`${base}/v1/signature/${encodeURIComponent(id)}?signing_algo=${algo}`);
  if (!r.ok) throw new Error(`/v1/signature/${id}?signing_algo=${algo} answered ${r.status}`);
  return r.json();
}

async function facts(id, exchange) {
  await exchange.done;
  const ecdsa = await signature(id, 'ecdsa');
  const ed = await signature(id, 'ed25519');
  return {
    id,
    requestExchanges: exchanges.length,
    sentSha256: sha256(exchange.sent),
    receivedSha256: sha256(exchange.received),
    ecdsaText: ecdsa.text,
    ecdsaSigningAddress: ecdsa.signing_address,
    ecdsaRecovered: ethers.verifyMessage(ecdsa.text, ecdsa.signature),
    ecdsaRecoveredFromTamperedText: ethers.verifyMessage(ecdsa.text + 'x', ecdsa.signature),
    ed25519Text: ed.text,
    ed25519SigningAddress: ed.signing_address,
    ed25519Valid: nacl.sign.detached.verify(
      Buffer.from(ed.text, 'utf8'), Buffer.from(ed.signature, 'hex'), Buffer.from(ed.signing_address, 'hex')),
  };
}

async function main() {
  const request = { model, messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 16, seed: 7 };

  exchanges = [];
  const completion = await client.chat.completions.create(request);
  const nonStreaming = await facts(completion.id, exchanges[0]);
  nonStreaming.model = completion.model;
  nonStreaming.content = completion.choices[0].message.content;
  nonStreaming.finishReason = completion.choices[0].finish_reason;
  nonStreaming.completionTokens = completion.usage ? completion.usage.completion_tokens : null;

  exchanges = [];
  const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
  let id = null;
  let content = '';
  let contentChunks = 0;
  let finishReason = null;
  let completionTokens = null;
  for await (const chunk of stream) {
    id = id || chunk.id;
    const choice = chunk.choices[0];
    if (choice && choice.delta && choice.delta.content) {
      content += choice.delta.content;
      contentChunks++;
    }
    finishReason = (choice && choice.finish_reason) || finishReason;
    completionTokens = chunk.usage ? chunk.usage.completion_tokens : completionTokens;
  }
  const streaming = await facts(id, exchanges[0]);
  streaming.content = content;
  streaming.contentChunks = contentChunks;
  streaming.finishReason = finishReason;
  streaming.completionTokens = completionTokens;
  streaming.endsWithDone = exchanges[0].received.toString('utf8').endsWith('data: [DONE]\n\n');

  console.log(JSON.stringify({ nonStreaming, streaming }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
