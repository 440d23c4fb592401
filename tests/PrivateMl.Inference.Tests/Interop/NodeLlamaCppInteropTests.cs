using System.Text;
using System.Text.Json;
using LLama;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using PrivateMl.Inference.Embedded;
using PrivateMl.Inference.Models;
using PrivateMl.Inference.Tests.Embedded;

namespace PrivateMl.Inference.Tests.Interop;

/// <summary>
/// The demo GGUF is a real GGUF: node-llama-cpp (another llama.cpp build, from npm) loads it and, greedily, generates
/// the same tokens as LLamaSharp and the same text as the embedded engine.
/// </summary>
public sealed class NodeLlamaCppInteropTests(DemoModelFile model)
{
    [Theory]
    [InlineData("the world", 32)]
    [InlineData("hello, private model!", 48)]
    public async Task GreedyGeneration_IsIdentical_InLlamaSharpAndNodeLlamaCpp(string prompt, int tokens)
    {
        var ct = TestContext.Current.CancellationToken;
        var node = await NodeLlamaCpp.RunAsync(model.Path, prompt, tokens, threads: 1, ct);
        Assert.NotEmpty(node.Tokens);

        LlamaNativeLog.Install(null);
        var parameters = new ModelParams(model.Path) { GpuLayerCount = 0, ContextSize = 512, Threads = 1 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        var promptTokens = weights.Tokenize(prompt, add_bos: true, special: false, Encoding.UTF8);
        Assert.Equal(node.Prompt, promptTokens.Select(t => (int)t));

        using var context = weights.CreateContext(parameters);
        var batch = new LLamaBatch();
        var (_, _, past) = await context.DecodeAsync(promptTokens.ToList(), LLamaSeqId.Zero, batch, 0, ct);
        using var greedy = new GreedySamplingPipeline();
        var ours = new List<int>();
        while (ours.Count < tokens)
        {
            var token = greedy.Sample(context.NativeHandle, batch.TokenCount - 1);
            if (token.IsEndOfGeneration(weights.Vocab))
            {
                break;
            }

            ours.Add((int)token);
            batch.Clear();
            batch.Add(token, past++, LLamaSeqId.Zero, true);
            await context.DecodeAsync(batch, ct);
        }

        Assert.Equal(node.Tokens, ours);

        // The engine's /v1/completions (temperature 0) produces node-llama-cpp's text.
        await using var engine = EngineHarness.Load(model);
        var (status, json) = await EngineHarness.Post(engine, "/v1/completions", new { model = DemoModelWriter.ModelName, prompt, max_tokens = tokens, temperature = 0 });
        Assert.Equal(200, status);
        Assert.Equal(node.Text, json.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(JsonValueKind.Object, json.GetProperty("usage").ValueKind);
    }
}
