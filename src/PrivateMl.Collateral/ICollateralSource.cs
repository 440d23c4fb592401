using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Collateral;

/// <summary>
/// What a quote needs: the platform's FMSPC (6 bytes, 12 hex digits as in the PCK certificate), the PCK CA type and the
/// TEE. Construction normalises the FMSPC to upper-case hex, the form Intel PCS uses in <c>tcbInfo.fmspc</c>.
/// </summary>
public sealed record CollateralRequest
{
    public CollateralRequest(string fmspc, PckCaType ca, TeeType tee)
    {
        ArgumentNullException.ThrowIfNull(fmspc);
        if (fmspc.Length != 12 || !fmspc.All(char.IsAsciiHexDigit))
        {
            throw new ArgumentException($"FMSPC must be 12 hex digits, got '{fmspc}'", nameof(fmspc));
        }

        if (!Enum.IsDefined(ca))
        {
            throw new ArgumentOutOfRangeException(nameof(ca));
        }

        if (!Enum.IsDefined(tee))
        {
            throw new ArgumentOutOfRangeException(nameof(tee));
        }

        Fmspc = fmspc.ToUpperInvariant();
        Ca = ca;
        Tee = tee;
    }

    public CollateralRequest(ReadOnlySpan<byte> fmspc, PckCaType ca, TeeType tee)
        : this(fmspc.Length == 6 ? Convert.ToHexString(fmspc) : throw new ArgumentException("FMSPC must be 6 bytes", nameof(fmspc)), ca, tee)
    {
    }

    /// <summary>12 upper-case hex digits.</summary>
    public string Fmspc { get; }

    public PckCaType Ca { get; }

    public TeeType Tee { get; }

    public override string ToString() =>
        $"{(Tee == TeeType.Tdx ? "TDX" : "SGX")} FMSPC {Fmspc}, {(Ca == PckCaType.Platform ? "platform" : "processor")} CA";
}

/// <summary>
/// Where DCAP collateral comes from: a PCCS or Intel PCS, an offline bundle, a cache in front of either. Every failure
/// is an <see cref="PrivateMl.Attestation.Verification.AttestationException"/>:
/// <see cref="PrivateMl.Attestation.Verification.ErrorCode.CollateralUnavailable"/> when the collateral could not be
/// obtained (network, HTTP status, nothing matching in a bundle) and
/// <see cref="PrivateMl.Attestation.Verification.ErrorCode.CollateralMalformed"/> when what came back is not collateral.
/// A source never returns partial collateral. It does not verify signatures: that is the verifier's job, offline.
/// </summary>
public interface ICollateralSource
{
    Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default);
}
