// Drives the unmodified @phala/dstack-sdk against a guest agent and prints one JSON object with every result.
// Endpoints come from the environment, as for the SDK's own test suite:
//   DSTACK_SIMULATOR_ENDPOINT=<dstack.sock>  TAPPD_SIMULATOR_ENDPOINT=<tappd.sock>  REPORT_DATA=<hex, <= 64 bytes>
// Exit code 0 when every call succeeded and every local check held; the JSON says which failed otherwise.
'use strict';

const { DstackClient, TappdClient } = require('@phala/dstack-sdk');
const { secp256k1 } = require('@noble/curves/secp256k1');
const { ed25519 } = require('@noble/curves/ed25519');
const { keccak_256 } = require('@noble/hashes/sha3');
const { sha256 } = require('@noble/hashes/sha2');

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const results = { calls: {}, checks: {}, failures: [] };

// RTMRi of a TDX v4 quote: header 48 + TD report offset 328 + 48*i.
const quoteRtmrs = (quoteHex) => [0, 1, 2, 3].map((i) => quoteHex.slice((48 + 328 + 48 * i) * 2, (48 + 376 + 48 * i) * 2));
const quoteReportData = (quoteHex) => quoteHex.slice(568 * 2, 632 * 2);

function check(name, ok, detail) {
  results.checks[name] = ok;
  if (!ok) results.failures.push(`${name}${detail ? ': ' + detail : ''}`);
}

// Signature chain verification as the SDK documents it: recover the app key from chain[0] over
// keccak256(purpose + ":" + hex(pubkey)), then the KMS root from chain[1] over
// keccak256("dstack-kms-issued:" + app_id + app_pubkey).
function recoverChain(purpose, derivedPublicKey, chain, appIdHex) {
  const recover = (message, sig) =>
    secp256k1.Signature.fromCompact(sig.slice(0, 64)).addRecoveryBit(sig[64]).recoverPublicKey(keccak_256(message)).toRawBytes(true);
  const appPub = recover(Buffer.from(`${purpose}:${hex(derivedPublicKey)}`), chain[0]);
  const rootPub = recover(Buffer.concat([Buffer.from('dstack-kms-issued:'), Buffer.from(appIdHex, 'hex'), Buffer.from(appPub)]), chain[1]);
  return { app_pubkey: hex(appPub), root_pubkey: hex(rootPub) };
}

async function step(name, fn) {
  try {
    const value = await fn();
    results.calls[name] = { ok: true, value };
    return value;
  } catch (error) {
    results.calls[name] = { ok: false, error: String(error && error.stack ? error.stack : error) };
    results.failures.push(`${name}: ${error}`);
    return undefined;
  }
}

async function main() {
  const reportData = Buffer.from(process.env.REPORT_DATA || '', 'hex');
  const client = new DstackClient();

  await step('isReachable', async () => {
    const ok = await client.isReachable();
    check('isReachable', ok === true);
    return ok;
  });

  await step('version', async () => {
    const v = await client.version();
    check('version.present', typeof v.version === 'string' && v.version.length > 0);
    return { version: v.version, rev: v.rev };
  });

  const info = await step('info', async () => {
    const i = await client.info();
    check('info.tcb_info.parsed', typeof i.tcb_info === 'object' && Array.isArray(i.tcb_info.event_log));
    check('info.compose_hash', /^[0-9a-f]{64}$/.test(i.compose_hash));
    check('info.app_id', /^[0-9a-f]{40}$/.test(i.app_id));
    return {
      app_id: i.app_id, instance_id: i.instance_id, compose_hash: i.compose_hash, device_id: i.device_id,
      key_provider_info: i.key_provider_info, app_name: i.app_name, mr_aggregated: i.mr_aggregated,
      tcb_mrtd: i.tcb_info.mrtd, tcb_rtmr3: i.tcb_info.rtmr3, tcb_events: i.tcb_info.event_log.length,
      app_cert_present: i.app_cert.includes('BEGIN CERTIFICATE'),
    };
  });

  await step('getQuote', async () => {
    const q = await client.getQuote(reportData);
    const replayed = q.replayRtmrs();
    const inQuote = quoteRtmrs(q.quote);
    check('getQuote.replayRtmrs_equals_quote', JSON.stringify(replayed) === JSON.stringify(inQuote), JSON.stringify({ replayed, inQuote }));
    const padded = Buffer.concat([reportData, Buffer.alloc(64 - reportData.length)]);
    check('getQuote.report_data_echo', q.report_data === hex(padded));
    check('getQuote.report_data_in_quote', quoteReportData(q.quote) === hex(padded));
    return { quote: q.quote, report_data: q.report_data, replay_rtmrs: replayed, quote_rtmrs: inQuote, events: JSON.parse(q.event_log).length };
  });

  for (const algorithm of ['secp256k1', 'ed25519']) {
    await step(`getKey.${algorithm}`, async () => {
      const k = await client.getKey('interop/wallet', 'signing', algorithm);
      const pub = algorithm === 'ed25519' ? ed25519.getPublicKey(k.key) : secp256k1.getPublicKey(k.key, true);
      const chain = recoverChain('signing', pub, k.signature_chain, info.app_id);
      check(`getKey.${algorithm}.chain_length`, k.signature_chain.length === 2);
      return { key_length: k.key.length, public_key: hex(pub), ...chain };
    });
  }

  await step('getTlsKey', async () => {
    const t = await client.getTlsKey({ subject: 'interop.example', altNames: ['interop.example'], usageRaTls: true, usageServerAuth: true });
    check('getTlsKey.pem', t.key.startsWith('-----BEGIN PRIVATE KEY-----'));
    check('getTlsKey.chain', t.certificate_chain.length >= 2);
    check('getTlsKey.asUint8Array', t.asUint8Array(32).length === 32);
    return { key: t.key, certificate_chain: t.certificate_chain };
  });

  await step('emitEvent', async () => {
    await client.emitEvent('interop-event', 'hello from the dstack sdk');
    const q = await client.getQuote(Buffer.from('after-emit'));
    const events = JSON.parse(q.event_log);
    const last = events[events.length - 1];
    check('emitEvent.logged', last.event === 'interop-event' && last.imr === 3);
    check('emitEvent.replayRtmrs_equals_quote', JSON.stringify(q.replayRtmrs()) === JSON.stringify(quoteRtmrs(q.quote)));
    return { last_event: last, rtmr3: quoteRtmrs(q.quote)[3] };
  });

  for (const algorithm of ['secp256k1', 'secp256k1_prehashed', 'ed25519']) {
    await step(`sign.${algorithm}`, async () => {
      const data = algorithm === 'secp256k1_prehashed' ? sha256(Buffer.from('interop')) : Buffer.from('interop');
      const s = await client.sign(algorithm, data);
      const v = await client.verify(algorithm, data, s.signature, s.public_key);
      check(`sign.${algorithm}.agent_verify`, v.valid === true);
      const local = algorithm === 'ed25519'
        ? ed25519.verify(s.signature, data, s.public_key)
        : secp256k1.verify(s.signature, algorithm === 'secp256k1' ? sha256(data) : data, s.public_key);
      check(`sign.${algorithm}.noble_verify`, local === true);
      const bad = await client.verify(algorithm, Buffer.from('other'), s.signature, s.public_key);
      check(`sign.${algorithm}.rejects_other_data`, bad.valid === false);
      return { signature: hex(s.signature), public_key: hex(s.public_key), chain: s.signature_chain.length };
    });
  }

  // Legacy tappd API.
  const tappd = new TappdClient();
  await step('tappd.isReachable', async () => {
    const ok = await tappd.isReachable();
    check('tappd.isReachable', ok === true);
    return ok;
  });
  await step('tappd.tdxQuote.sha512', async () => {
    const q = await tappd.tdxQuote('test content');
    const expected = hex(Buffer.from(require('@noble/hashes/sha2').sha512(Buffer.from('app-data:test content'))));
    check('tappd.tdxQuote.sha512.report_data', quoteReportData(q.quote) === expected);
    check('tappd.tdxQuote.replayRtmrs_equals_quote', JSON.stringify(q.replayRtmrs()) === JSON.stringify(quoteRtmrs(q.quote)));
    return { hash_algorithm: q.hash_algorithm, prefix: q.prefix };
  });
  await step('tappd.tdxQuote.raw', async () => {
    const q = await tappd.tdxQuote(reportData, 'raw');
    const padded = Buffer.concat([Buffer.alloc(64 - reportData.length), reportData]); // the SDK left-pads raw data
    check('tappd.tdxQuote.raw.report_data', quoteReportData(q.quote) === hex(padded));
    return { hash_algorithm: q.hash_algorithm };
  });
  await step('tappd.deriveKey', async () => {
    const a = await tappd.deriveKey('/interop', 'tappd.example');
    const b = await tappd.deriveKey('/interop', 'tappd.example');
    check('tappd.deriveKey.deterministic', a.key === b.key);
    check('tappd.deriveKey.chain', a.certificate_chain.length >= 2);
    return { key_der_prefix: hex(a.asUint8Array(16)) };
  });
  await step('tappd.info', async () => {
    const i = await tappd.info();
    check('tappd.info.same_app', i.app_id === info.app_id);
    return { app_id: i.app_id };
  });

  results.ok = results.failures.length === 0;
  process.stdout.write(JSON.stringify(results, null, 1) + '\n');
  process.exitCode = results.ok ? 0 : 1;
}

main().catch((error) => {
  results.failures.push(`fatal: ${error && error.stack ? error.stack : error}`);
  results.ok = false;
  process.stdout.write(JSON.stringify(results) + '\n');
  process.exitCode = 1;
});
