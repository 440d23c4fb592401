namespace PrivateMl.Cli;

/// <summary>The contract scripts rely on: 0 accepted, 1 rejected, 2 usage or input error.</summary>
internal static class ExitCodes
{
    public const int Accepted = 0;
    public const int Rejected = 1;
    public const int UsageOrInput = 2;
}
