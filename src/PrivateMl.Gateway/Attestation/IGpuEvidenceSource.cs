namespace PrivateMl.Gateway.Attestation;

/// <summary>
/// Fresh GPU evidence over a nonce, for the report's <c>nvidia_payload</c> (a JSON string whose keys come in the
/// order <c>nonce, evidence_list, arch</c>). Register one in the gateway's services; without one the report says
/// plainly that GPU evidence is unavailable.
/// </summary>
public interface IGpuEvidenceSource
{
    /// <summary>The payload JSON string for <paramref name="nonce"/> (32 bytes), or null when no GPU evidence can be had.</summary>
    Task<string?> GetEvidenceAsync(ReadOnlyMemory<byte> nonce, CancellationToken cancellationToken);
}
