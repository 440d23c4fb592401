using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Policy;

/// <summary>Whether evidence passed the policy.</summary>
public enum PolicyVerdict
{
    Accepted,
    Rejected,
}

/// <summary>
/// The outcome of <see cref="PolicyEvaluator.Evaluate"/>: every check the policy names, in a fixed order, each Passed,
/// Failed (with its code and a sentence naming the field, expected and actual value) or Skipped (with why), and the
/// verdict: Accepted only when no check failed.
/// </summary>
public sealed record PolicyResult(PolicyVerdict Verdict, IReadOnlyList<CheckResult> Checks)
{
    public bool Accepted => Verdict == PolicyVerdict.Accepted;

    public IEnumerable<CheckResult> Failures => Checks.Where(c => c.Outcome == CheckOutcome.Failed);

    /// <summary>The check with this name (names are stable and prefixed <c>policy.</c>: <c>policy.tcb.status</c>, <c>policy.td.mrtd</c>, …).</summary>
    public CheckResult this[string name] => Checks.Single(c => c.Name == name);
}
