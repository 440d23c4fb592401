using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using LLama;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway;
using PrivateMl.Inference;
using PrivateMl.Inference.Embedded;

// Greedy tokens/s of one GGUF, measured four ways in this process with the same prompt and thread count:
// raw LLamaSharp loop, the embedded engine (bytes in/out), and the attesting gateway over the engine (HTTP, signing).
// Prints one JSON line per way; bench/inference/run.sh adds node-llama-cpp and prints the side-by-side table.
// Usage: InferenceSideBySide --model PATH --prompt TEXT --tokens N --threads N --runs N
var options = ParseArgs(args);
var modelPath = options["model"];
var prompt = options.GetValueOrDefault("prompt", "the world");
var tokens = int.Parse(options.GetValueOrDefault("tokens", "64"), CultureInfo.InvariantCulture);
var threads = int.Parse(options.GetValueOrDefault("threads", "1"), CultureInfo.InvariantCulture);
var runs = int.Parse(options.GetValueOrDefault("runs", "10"), CultureInfo.InvariantCulture);

LlamaNativeLog.Install(null);
var rawParameters = new ModelParams(modelPath) { GpuLayerCount = 0, ContextSize = 512, Threads = threads, BatchThreads = threads };
using (var weights = LLamaWeights.LoadFromFile(rawParameters))
{
    Report("llamasharp-raw", await Measure(runs, () => RawGreedy(weights, rawParameters, prompt, tokens)));
}

await using var engine = EmbeddedEngine.Load(new EmbeddedEngineOptions { ModelPath = modelPath, Threads = threads, MaxConcurrency = 1 });
var body = JsonSerializer.SerializeToUtf8Bytes(new { model = engine.ModelId, prompt, max_tokens = tokens, temperature = 0 });
Report("embedded-engine", await Measure(runs, async () =>
{
    await using var response = await engine.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/completions", body), CancellationToken.None);
    return CompletionTokens(await ReadAll(response.Body));
}));

var gatewayOptions = new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], ModelName = engine.ModelId };
await using (var gateway = GatewayHost.Build(gatewayOptions, engine, agent: null, configureLogging: l => l.SetMinimumLevel(LogLevel.Error)))
{
    await gateway.StartAsync();
    using var http = new HttpClient { BaseAddress = GatewayHost.Addresses(gateway)[0] };
    Report("gateway-over-engine", await Measure(runs, async () =>
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        using var response = await http.PostAsync("/v1/completions", content);
        return CompletionTokens(await response.Content.ReadAsByteArrayAsync());
    }));
    await gateway.StopAsync();
}

static async Task<int> RawGreedy(LLamaWeights weights, ModelParams parameters, string prompt, int max)
{
    using var context = weights.CreateContext(parameters);
    var batch = new LLamaBatch();
    var (_, _, past) = await context.DecodeAsync(weights.Tokenize(prompt, true, false, Encoding.UTF8).ToList(), LLamaSeqId.Zero, batch, 0);
    using var greedy = new GreedySamplingPipeline();
    var n = 0;
    while (n < max)
    {
        var token = greedy.Sample(context.NativeHandle, batch.TokenCount - 1);
        if (token.IsEndOfGeneration(weights.Vocab))
        {
            break;
        }

        n++;
        batch.Clear();
        batch.Add(token, past++, LLamaSeqId.Zero, true);
        await context.DecodeAsync(batch);
    }

    return n;
}

static async Task<(List<double> Wall, List<double> Cpu)> Measure(int runs, Func<Task<int>> once)
{
    await once(); // warm-up
    var wall = new List<double>();
    var cpu = new List<double>();
    using var process = Process.GetCurrentProcess();
    for (var i = 0; i < runs; i++)
    {
        process.Refresh();
        var cpuStart = process.TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        var n = await once();
        var elapsed = watch.Elapsed;
        process.Refresh();
        wall.Add(n / elapsed.TotalSeconds);
        cpu.Add(n / (process.TotalProcessorTime - cpuStart).TotalSeconds);
    }

    return (wall, cpu);
}

static void Report(string name, (List<double> Wall, List<double> Cpu) rates) =>
    Console.WriteLine(JsonSerializer.Serialize(new { name, tokensPerSecond = rates.Wall, tokensPerCpuSecond = rates.Cpu }));

static int CompletionTokens(byte[] json)
{
    using var doc = JsonDocument.Parse(json);
    return doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
}

static async Task<byte[]> ReadAll(Stream stream)
{
    using var buffer = new MemoryStream();
    await stream.CopyToAsync(buffer);
    return buffer.ToArray();
}

static Dictionary<string, string> ParseArgs(string[] args)
{
    var result = new Dictionary<string, string>(StringComparer.Ordinal);
    for (var i = 0; i + 1 < args.Length; i += 2)
    {
        result[args[i].TrimStart('-')] = args[i + 1];
    }

    if (!result.ContainsKey("model"))
    {
        Console.Error.WriteLine("usage: InferenceSideBySide --model PATH [--prompt TEXT] [--tokens N] [--threads N] [--runs N]");
        Environment.Exit(2);
    }

    return result;
}
