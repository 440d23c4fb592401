using LLama;
using LLama.Common;
using LLama.Native;
using PrivateMl.Inference.Embedded;

namespace PrivateMl.Inference.Tests.Models;

/// <summary>The demo GGUF is a real llama model: llama.cpp (through LLamaSharp) loads it and tokenizes with its vocabulary.</summary>
public sealed class DemoModelLlamaTests(DemoModelFile model)
{
    [Fact]
    public void LoadsInLlamaCpp_WithTheWrittenShape()
    {
        LlamaNativeLog.Install(null);
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(model.Path) { GpuLayerCount = 0 });
        Assert.Equal(64, weights.EmbeddingSize);
        Assert.Equal(512, weights.ContextSize);
        Assert.Equal(PrivateMl.Inference.Models.DemoModelWriter.Vocabulary().Tokens.Count, weights.Vocab.Count);
        Assert.Equal(2, (int)weights.Vocab.EOS!.Value);
        Assert.Equal("llama", weights.Metadata["general.architecture"]);

        // "hello" (with the SPM space prefix) is the single piece ▁hello; an unknown character falls back to its UTF-8 byte tokens.
        var tokens = weights.Tokenize("hello", add_bos: false, special: false, System.Text.Encoding.UTF8);
        Assert.Single(tokens);
        var euro = weights.Tokenize("€", add_bos: false, special: false, System.Text.Encoding.UTF8);
        Assert.Contains(euro, t => (int)t == 5 + 0xE2);
        Assert.True(((LLamaToken)4).IsEndOfGeneration(weights.Vocab)); // <|im_end|> ends a ChatML turn
    }
}
