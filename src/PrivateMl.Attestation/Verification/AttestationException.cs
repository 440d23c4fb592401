namespace PrivateMl.Attestation.Verification;

/// <summary>
/// The only exception type the parsers and verifiers let out. Callers branch on <see cref="Code"/>, never on the message.
/// </summary>
public sealed class AttestationException : Exception
{
    public AttestationException(ErrorCode code, string message)
        : base(message) => Code = code;

    public AttestationException(ErrorCode code, string message, Exception inner)
        : base(message, inner) => Code = code;

    public ErrorCode Code { get; }
}
