// Drives the unmodified @phala/dstack-sdk env helpers against a KMS's GetAppEnvEncryptPubKey and prints one JSON object.
//   KMS_URL=<base URL, no /prpc>  APP_ID=<40 hex>  ENV_JSON='[{"key":"K","value":"V"},…]'
// Fetches the key as vmm-cli.py does (POST KMS_URL/prpc/GetAppEnvEncryptPubKey?json), recovers the signer with
// verifyEnvEncryptPublicKey (timestamped signature_v1) and verifyEnvEncryptPublicKeyLegacy, then encrypts ENV_JSON
// with encryptEnvVars. Exit code 0 when every call succeeded; the caller checks the signers and decrypts the blob.
'use strict';

const { verifyEnvEncryptPublicKey, verifyEnvEncryptPublicKeyLegacy } = require('@phala/dstack-sdk');
const { encryptEnvVars } = require('@phala/dstack-sdk/encrypt-env-vars');

const fromHex = (text) => Uint8Array.from(Buffer.from(text.replace(/^0x/, ''), 'hex'));

async function main() {
  const kms = process.env.KMS_URL.replace(/\/+$/, '');
  const appId = process.env.APP_ID;
  const envs = JSON.parse(process.env.ENV_JSON || '[]');

  const response = await fetch(`${kms}/prpc/GetAppEnvEncryptPubKey?json`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ app_id: appId }),
  });
  if (!response.ok) throw new Error(`KMS answered ${response.status}: ${await response.text()}`);
  const answer = await response.json();

  const publicKey = fromHex(answer.public_key);
  const signerV1 = answer.signature_v1 === undefined
    ? null
    : verifyEnvEncryptPublicKey(publicKey, fromHex(answer.signature_v1), appId, BigInt(answer.timestamp));
  const signerLegacy = verifyEnvEncryptPublicKeyLegacy(publicKey, fromHex(answer.signature), appId);
  const encrypted = await encryptEnvVars(envs, answer.public_key);
  return { public_key: answer.public_key, timestamp: answer.timestamp ?? null, signer_v1: signerV1, signer_legacy: signerLegacy, encrypted };
}

main().then(
  (result) => { process.stdout.write(JSON.stringify(result) + '\n'); },
  (error) => { process.stdout.write(JSON.stringify({ error: String(error && error.stack || error) }) + '\n'); process.exitCode = 1; },
);
