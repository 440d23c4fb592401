using PrivateMl.Client;

namespace PrivateMl.EndToEnd.Tests.Support;

/// <summary>Every check of a result, one per line: the message of a failed assertion.</summary>
internal static class Describe
{
    public static string Checks(NodeVerificationResult result) =>
        string.Join("\n", result.Checks.Select(c => $"{c.Outcome} {c.Name} {c.Code}: {c.Detail}"));

    public static string Checks(ChatVerification answer) =>
        string.Join("\n", answer.Checks.Select(c => $"{c.Outcome} {c.Name} {c.Code}: {c.Detail}"));
}
