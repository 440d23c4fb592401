using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral;

/// <summary>The typed failures of this library, in one place.</summary>
internal static class CollateralErrors
{
    public static AttestationException Unavailable(string message) => new(ErrorCode.CollateralUnavailable, message);

    public static AttestationException Unavailable(string message, Exception inner) =>
        new(ErrorCode.CollateralUnavailable, message, inner);

    public static AttestationException Malformed(string message) => new(ErrorCode.CollateralMalformed, message);

    public static AttestationException Malformed(string message, Exception inner) =>
        new(ErrorCode.CollateralMalformed, message, inner);
}
