using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace PrivateMl.Inference.Embedded;

/// <summary>Settings of the embedded engine; validated when the engine loads.</summary>
public sealed record EmbeddedEngineOptions
{
    /// <summary>Path of the GGUF model to serve.</summary>
    public required string ModelPath { get; init; }

    /// <summary>The id clients must send as <c>model</c>; default: the GGUF's general.name, else the file name.</summary>
    public string? ModelId { get; init; }

    /// <summary>Context length per request; default: the model's, capped at 4096 to bound memory.</summary>
    public int? ContextSize { get; init; }

    /// <summary>CPU threads per request; default: llama.cpp's choice.</summary>
    public int? Threads { get; init; }

    /// <summary>Requests generating at once.</summary>
    public int MaxConcurrency { get; init; } = 1;

    /// <summary>Requests allowed to wait for a slot; beyond that the engine answers 429.</summary>
    public int MaxQueue { get; init; } = 16;

    /// <summary>Largest request body accepted (413 above).</summary>
    public int MaxRequestBytes { get; init; } = 1 << 20;

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Source of response ids (after the <c>chatcmpl-</c>/<c>cmpl-</c> prefix).</summary>
    public Func<string> NewId { get; init; } = () => RandomNumberGenerator.GetHexString(24, lowercase: true);

    /// <summary>Sampling seed for requests that send none.</summary>
    public Func<uint> NewSeed { get; init; } = () => BitConverter.ToUInt32(RandomNumberGenerator.GetBytes(4));

    public ILogger? Logger { get; init; }
}
