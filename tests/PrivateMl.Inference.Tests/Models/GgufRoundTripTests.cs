using System.Buffers.Binary;
using System.Security.Cryptography;
using PrivateMl.Inference.Models;

namespace PrivateMl.Inference.Tests.Models;

public sealed class GgufRoundTripTests
{
    [Fact]
    public void DemoModel_ParsesBack_WithItsMetadataAndTensors()
    {
        var bytes = DemoModelWriter.Create();
        var file = GgufReader.Read(bytes);

        Assert.Equal(3u, file.Version);
        Assert.Equal("llama", file.GetString("general.architecture"));
        Assert.Equal(DemoModelWriter.ModelName, file.GetString("general.name"));
        Assert.Equal(DemoModelWriter.ChatTemplate, file.GetString("tokenizer.chat_template"));
        Assert.Contains("meaningless text", file.GetString("general.description"), StringComparison.Ordinal);
        Assert.Equal(64u, file.GetUInt32("llama.embedding_length"));

        var tokens = (GgufArray)file.Find("tokenizer.ggml.tokens")!.Value;
        var types = (GgufArray)file.Find("tokenizer.ggml.token_type")!.Value;
        Assert.Equal(GgufValueType.String, tokens.ElementType);
        Assert.Equal(tokens.Items.Count, types.Items.Count);
        Assert.Equal(file.GetUInt32("llama.vocab_size"), (uint)tokens.Items.Count);
        Assert.Equal("<0x41>", tokens.Items[5 + 0x41]);
        Assert.Equal(6, types.Items[5 + 0x41]);

        // 2 globals + 9 per block, dims in ggml order, offsets packed and aligned, data ending at the file's end.
        Assert.Equal(2 + (2 * 9) + 1, file.Tensors.Count);
        var embd = file.Tensors.Single(t => t.Name == "token_embd.weight");
        Assert.Equal([64UL, (ulong)tokens.Items.Count], embd.Dimensions);
        Assert.Equal([128UL, 64UL], file.Tensors.Single(t => t.Name == "blk.1.ffn_down.weight").Dimensions);
        ulong expected = 0;
        foreach (var t in file.Tensors)
        {
            Assert.Equal(expected, t.Offset);
            Assert.Equal((uint)GgmlType.F32, t.Type);
            expected += (t.ElementCount * 4 + 31) / 32 * 32;
        }

        Assert.Equal(0, file.DataOffset % 32);
        Assert.Equal(bytes.Length, file.DataOffset + (long)expected);
    }

    [Fact]
    public void DemoModel_TensorData_IsTheSplitMix64Stream()
    {
        var bytes = DemoModelWriter.Create(new DemoModelOptions { Seed = 7 });
        var file = GgufReader.Read(bytes);
        var embd = file.Tensors.Single(t => t.Name == "token_embd.weight");
        var rng = new SplitMix64(7);
        for (var i = 0; i < 16; i++)
        {
            var stored = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan((int)(file.DataOffset + (long)embd.Offset) + (i * 4)));
            Assert.Equal(((rng.Next() >> 40) / 8388608f) - 1f, stored);
        }

        var norm = file.Tensors.Single(t => t.Name == "output_norm.weight");
        Assert.Equal(1f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan((int)(file.DataOffset + (long)norm.Offset))));
    }

    [Fact]
    public void SplitMix64_MatchesThePublishedSequence()
    {
        // First outputs for seed 0 from the reference C implementation (Vigna, prng.di.unimi.it/splitmix64.c).
        var rng = new SplitMix64(0);
        Assert.Equal(0xE220A8397B1DCDAFUL, rng.Next());
        Assert.Equal(0x6E789E6AA1B965F4UL, rng.Next());
        Assert.Equal(0x06C45D188009454FUL, rng.Next());
    }

    [Fact]
    public void SameSeed_SameBytes_OtherSeed_OtherWeights()
    {
        var a = DemoModelWriter.Create(new DemoModelOptions { Seed = 1 });
        var b = DemoModelWriter.Create(new DemoModelOptions { Seed = 1 });
        var c = DemoModelWriter.Create(new DemoModelOptions { Seed = 2 });
        Assert.Equal(SHA256.HashData(a), SHA256.HashData(b));
        Assert.Equal(a.Length, c.Length);
        Assert.NotEqual(SHA256.HashData(a), SHA256.HashData(c));
        Assert.InRange(a.Length, 200_000, 1_000_000);
    }

    [Fact]
    public void Writer_RoundTrips_EveryScalarType()
    {
        var writer = new GgufWriter();
        var values = new Dictionary<string, GgufValue>
        {
            ["u8"] = new(GgufValueType.UInt8, (byte)200),
            ["i8"] = new(GgufValueType.Int8, (sbyte)-5),
            ["u16"] = new(GgufValueType.UInt16, (ushort)60000),
            ["i16"] = new(GgufValueType.Int16, (short)-30000),
            ["u32"] = GgufValue.Of(4_000_000_000u),
            ["i32"] = GgufValue.Of(-7),
            ["f32"] = GgufValue.Of(1.5f),
            ["bool"] = GgufValue.Of(true),
            ["str"] = GgufValue.Of("héllo ▁"),
            ["u64"] = GgufValue.Of(ulong.MaxValue),
            ["i64"] = new(GgufValueType.Int64, long.MinValue),
            ["f64"] = new(GgufValueType.Float64, Math.PI),
            ["arr"] = GgufValue.Strings(["a", "", "ccc"]),
        };
        foreach (var (k, v) in values)
        {
            writer.Add(k, v);
        }

        writer.AddTensor("t", [3, 2], [1, 2, 3, 4, 5, 6]);
        var file = GgufReader.Read(writer.ToArray());
        Assert.Equal(values.Keys, file.Metadata.Select(kv => kv.Key));
        foreach (var (k, v) in values.Where(kv => kv.Key != "arr"))
        {
            Assert.Equal(v, file.Find(k));
        }

        Assert.Equal(["a", "", "ccc"], ((GgufArray)file.Find("arr")!.Value).Items);
        Assert.Equal([3UL, 2UL], file.Tensors.Single().Dimensions);
    }

    [Fact]
    public void Writer_RefusesMismatchedTensorAndDuplicateKey()
    {
        var writer = new GgufWriter();
        writer.Add("k", GgufValue.Of(1u));
        Assert.Throws<ArgumentException>(() => writer.Add("k", GgufValue.Of(2u)));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("t", [2, 2], [1, 2, 3]));
    }
}
