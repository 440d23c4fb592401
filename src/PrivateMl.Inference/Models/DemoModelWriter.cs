namespace PrivateMl.Inference.Models;

/// <summary>
/// Writes the project's demo model: a tiny llama-architecture GGUF (v3, all tensors F32, ≈ 0.5 MB) whose weights come
/// from <see cref="SplitMix64"/> seeded with <see cref="DemoModelOptions.Seed"/>. It loads and runs in unmodified
/// llama.cpp (LLamaSharp, node-llama-cpp), so every layer above it is exercised for real, but it was never trained:
/// <b>it produces meaningless text</b>. Serve a real GGUF with <c>--model</c> for useful answers.
/// </summary>
/// <remarks>
/// Reproducing the weights elsewhere: one SplitMix64 stream, consumed tensor by tensor in file order, element by
/// element in storage order; each value is <c>((next &gt;&gt; 40) / 2^23 - 1) * scale</c> with scale 1 for
/// <c>token_embd</c>, <c>sqrt(3 / fan_in)</c> for the attention and feed-forward matrices and 0.5 for <c>output</c>,
/// whose rows for byte tokens and for <c>&lt;unk&gt;</c>, <c>&lt;s&gt;</c>, <c>&lt;|im_start|&gt;</c> are then multiplied
/// by 0.05. Norm weights are 1 and consume nothing.
/// </remarks>
public static class DemoModelWriter
{
    public const string ModelName = "privateml-demo";
    public const string Description =
        "privateml demo model: a tiny llama-architecture GGUF with seeded random weights, never trained. It produces " +
        "meaningless text. It exists so that the whole node (engine, gateway, signatures, attestation) runs with no " +
        "download; serve a real GGUF with --model for useful answers.";

    /// <summary>A ChatML template in Jinja, which llama.cpp recognises by its <c>&lt;|im_start|&gt;</c> marker.</summary>
    public const string ChatTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}" +
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    private static readonly string[] Words = ["the", "and", "you", "hello", "world", "model", "private", "is", "a", "of", "to"];

    public static byte[] Create(DemoModelOptions? options = null)
    {
        options ??= new DemoModelOptions();
        var writer = new GgufWriter();
        var (tokens, scores, types) = Vocabulary();
        var o = options;

        writer.Add("general.architecture", GgufValue.Of("llama"));
        writer.Add("general.name", GgufValue.Of(ModelName));
        writer.Add("general.description", GgufValue.Of(Description));
        writer.Add("general.alignment", GgufValue.Of((uint)GgufWriter.Alignment));
        writer.Add("general.file_type", GgufValue.Of(0u)); // all F32
        writer.Add("privateml.demo.seed", GgufValue.Of(o.Seed));
        writer.Add("llama.context_length", GgufValue.Of((uint)o.ContextLength));
        writer.Add("llama.embedding_length", GgufValue.Of((uint)o.EmbeddingLength));
        writer.Add("llama.block_count", GgufValue.Of((uint)o.BlockCount));
        writer.Add("llama.feed_forward_length", GgufValue.Of((uint)o.FeedForwardLength));
        writer.Add("llama.attention.head_count", GgufValue.Of((uint)o.HeadCount));
        writer.Add("llama.attention.head_count_kv", GgufValue.Of((uint)o.HeadCount));
        writer.Add("llama.rope.dimension_count", GgufValue.Of((uint)(o.EmbeddingLength / o.HeadCount)));
        writer.Add("llama.rope.freq_base", GgufValue.Of(10000f));
        writer.Add("llama.attention.layer_norm_rms_epsilon", GgufValue.Of(1e-5f));
        writer.Add("llama.vocab_size", GgufValue.Of((uint)tokens.Count));
        writer.Add("tokenizer.ggml.model", GgufValue.Of("llama"));
        writer.Add("tokenizer.ggml.tokens", GgufValue.Strings(tokens));
        writer.Add("tokenizer.ggml.scores", GgufValue.Floats(scores));
        writer.Add("tokenizer.ggml.token_type", GgufValue.Ints(types));
        writer.Add("tokenizer.ggml.unknown_token_id", GgufValue.Of(0u));
        writer.Add("tokenizer.ggml.bos_token_id", GgufValue.Of(1u));
        writer.Add("tokenizer.ggml.eos_token_id", GgufValue.Of(2u));
        writer.Add("tokenizer.ggml.add_bos_token", GgufValue.Of(true));
        writer.Add("tokenizer.ggml.add_eos_token", GgufValue.Of(false));
        writer.Add("tokenizer.chat_template", GgufValue.Of(ChatTemplate));

        var rng = new SplitMix64(o.Seed);
        ulong embd = (ulong)o.EmbeddingLength, ff = (ulong)o.FeedForwardLength, vocab = (ulong)tokens.Count;
        writer.AddTensor("token_embd.weight", [embd, vocab], Random(ref rng, embd * vocab, 1f));
        for (var i = 0; i < o.BlockCount; i++)
        {
            var square = MathF.Sqrt(3f / o.EmbeddingLength);
            writer.AddTensor($"blk.{i}.attn_norm.weight", [embd], Ones(embd));
            writer.AddTensor($"blk.{i}.attn_q.weight", [embd, embd], Random(ref rng, embd * embd, square));
            writer.AddTensor($"blk.{i}.attn_k.weight", [embd, embd], Random(ref rng, embd * embd, square));
            writer.AddTensor($"blk.{i}.attn_v.weight", [embd, embd], Random(ref rng, embd * embd, square));
            writer.AddTensor($"blk.{i}.attn_output.weight", [embd, embd], Random(ref rng, embd * embd, square));
            writer.AddTensor($"blk.{i}.ffn_norm.weight", [embd], Ones(embd));
            writer.AddTensor($"blk.{i}.ffn_gate.weight", [embd, ff], Random(ref rng, embd * ff, square));
            writer.AddTensor($"blk.{i}.ffn_up.weight", [embd, ff], Random(ref rng, embd * ff, square));
            writer.AddTensor($"blk.{i}.ffn_down.weight", [ff, embd], Random(ref rng, ff * embd, MathF.Sqrt(3f / o.FeedForwardLength)));
        }

        writer.AddTensor("output_norm.weight", [embd], Ones(embd));
        var output = Random(ref rng, embd * vocab, 0.5f);
        for (var t = 0; t < tokens.Count; t++)
        {
            // Damp the rows of byte tokens and non-ending control tokens so the untrained model mostly picks printable
            // pieces (valid UTF-8) and can still end a turn with </s> or <|im_end|>.
            if (types[t] == 6 || tokens[t] is "<unk>" or "<s>" or "<|im_start|>")
            {
                for (ulong e = 0; e < embd; e++)
                {
                    output[((ulong)t * embd) + e] *= 0.05f;
                }
            }
        }

        writer.AddTensor("output.weight", [embd, vocab], output);
        return writer.ToArray();
    }

    /// <summary>Writes the demo model to <paramref name="path"/> (created or replaced).</summary>
    public static void Write(string path, DemoModelOptions? options = null) => File.WriteAllBytes(path, Create(options));

    /// <summary>
    /// SentencePiece-style vocabulary: <c>&lt;unk&gt;</c>, <c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>, the ChatML markers as
    /// control tokens, 256 byte tokens (so any text tokenizes), <c>▁</c>, printable ASCII and a few <c>▁word</c> pieces
    /// with every prefix (SPM merges pairwise, so each prefix must exist).
    /// </summary>
    internal static (List<string> Tokens, List<float> Scores, List<int> Types) Vocabulary()
    {
        const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;
        var tokens = new List<string>();
        var scores = new List<float>();
        var types = new List<int>();
        void Add(string text, int type)
        {
            if (tokens.Contains(text))
            {
                return;
            }

            tokens.Add(text);
            types.Add(type);
            scores.Add(type == Normal ? -tokens.Count : 0f);
        }

        Add("<unk>", Unknown);
        Add("<s>", Control);
        Add("</s>", Control);
        Add("<|im_start|>", Control);
        Add("<|im_end|>", Control);
        for (var b = 0; b < 256; b++)
        {
            Add($"<0x{b:X2}>", Byte);
        }

        Add("\u2581", Normal);
        for (var c = 0x21; c <= 0x7E; c++)
        {
            Add(((char)c).ToString(), Normal);
        }

        foreach (var word in Words)
        {
            for (var n = 1; n <= word.Length; n++)
            {
                Add("\u2581" + word[..n], Normal);
            }
        }

        return (tokens, scores, types);
    }

    private static float[] Random(ref SplitMix64 rng, ulong count, float scale)
    {
        var values = new float[count];
        for (ulong i = 0; i < count; i++)
        {
            values[i] = rng.NextSymmetric() * scale;
        }

        return values;
    }

    private static float[] Ones(ulong count) => Enumerable.Repeat(1f, (int)count).ToArray();
}

/// <summary>Shape and seed of the demo model. The defaults give ≈ 0.5 MB; other shapes must keep EmbeddingLength divisible by HeadCount.</summary>
public sealed record DemoModelOptions
{
    public ulong Seed { get; init; } = 42;

    public int ContextLength { get; init; } = 512;

    public int EmbeddingLength { get; init; } = 64;

    public int HeadCount { get; init; } = 4;

    public int BlockCount { get; init; } = 2;

    public int FeedForwardLength { get; init; } = 128;
}
