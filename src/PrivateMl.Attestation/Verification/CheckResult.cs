namespace PrivateMl.Attestation.Verification;

/// <summary>How one named check ended. "Skipped" is never a pass: it says the check was not applicable or not asked for.</summary>
public enum CheckOutcome
{
    Passed,
    Failed,
    Skipped,
}

/// <summary>
/// One named step of a verification or policy evaluation, in the order it ran. <see cref="Code"/> is the stable
/// contract (tests assert it); <see cref="Detail"/> is a sentence for a person.
/// </summary>
public sealed record CheckResult(string Name, CheckOutcome Outcome, string Detail, ErrorCode? Code = null)
{
    public static CheckResult Pass(string name, string detail) => new(name, CheckOutcome.Passed, detail);

    public static CheckResult Fail(string name, ErrorCode code, string detail) => new(name, CheckOutcome.Failed, detail, code);

    public static CheckResult Skip(string name, string why) => new(name, CheckOutcome.Skipped, why);
}
