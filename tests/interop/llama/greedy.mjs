// Runs a GGUF in node-llama-cpp (llama.cpp's node binding, CPU) and prints, as one JSON line, the prompt tokens and
// the greedily generated tokens and text. With --runs N it also times generation (tokens/s) for the side-by-side bench.
// Usage: node greedy.mjs --model PATH --prompt TEXT [--tokens N] [--threads N] [--runs N]
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, arg, i, all) =>
  arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs, []));
const modelPath = args.model;
if (!modelPath || args.prompt === undefined) {
  console.error("usage: node greedy.mjs --model PATH --prompt TEXT [--tokens N] [--threads N] [--runs N]");
  process.exit(2);
}
const maxTokens = Number(args.tokens ?? 32);
const threads = Number(args.threads ?? 1);
const runs = Number(args.runs ?? 0);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: Math.min(512, model.trainContextSize), threads, sequences: 1 });

// Same input as the C# side: BOS, then the prompt tokenized as plain text (no special tokens).
const prompt = [model.tokens.bos, ...model.tokenize(args.prompt, false)];

async function generate() {
  const sequence = context.getSequence();
  const out = [];
  try {
    for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
      if (model.isEogToken(token)) break;
      out.push(token);
      if (out.length >= maxTokens) break;
    }
  } finally {
    sequence.dispose();
  }
  return out;
}

const tokens = await generate();
// lastTokens = the prompt, so the first piece keeps its leading space (a continuation, not the start of a text).
const result = { prompt, tokens, text: model.detokenize(tokens, false, prompt) };
if (runs > 0) {
  await generate(); // warm-up
  const wall = [], cpu = [];
  for (let r = 0; r < runs; r++) {
    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    const n = (await generate()).length;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const used = process.cpuUsage(cpuStart);
    wall.push(n / seconds);
    cpu.push(n / ((used.user + used.system) / 1e6));
  }
  result.tokensPerSecond = wall;
  result.tokensPerCpuSecond = cpu;
}
console.log(JSON.stringify(result));
await context.dispose();
await model.dispose();
await llama.dispose();
