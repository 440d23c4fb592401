using LLama.Native;
using Microsoft.Extensions.Logging;

namespace PrivateMl.Inference.Embedded;

/// <summary>
/// Routes llama.cpp's native log to an <see cref="ILogger"/>, keeping only warnings and errors. Without this the
/// native library prints its load chatter to stderr (a "Continue"-level progress dot per tensor, every hyperparameter).
/// </summary>
public static class LlamaNativeLog
{
    private static readonly Lock Gate = new();
    private static ILogger? current;
    private static LLamaLogLevel previous = LLamaLogLevel.Info;
    private static bool installed;

    /// <summary>Installs the filter (idempotent); a later call replaces the logger.</summary>
    public static void Install(ILogger? logger)
    {
        lock (Gate)
        {
            current = logger;
            if (!installed)
            {
                NativeLogConfig.llama_log_set(OnLog);
                installed = true;
            }
        }
    }

    private static void OnLog(LLamaLogLevel level, string message)
    {
        // "Continue" extends the previous message; it belongs to that message's level.
        var effective = level == LLamaLogLevel.Continue ? previous : level;
        previous = effective;
        var logger = current;
        if (logger is null || string.IsNullOrWhiteSpace(message))
        {
            return;
        }

        switch (effective)
        {
            case LLamaLogLevel.Error:
                logger.LogError("llama.cpp: {Message}", message.TrimEnd());
                break;
            case LLamaLogLevel.Warning:
                logger.LogWarning("llama.cpp: {Message}", message.TrimEnd());
                break;
            default:
                break;
        }
    }
}
