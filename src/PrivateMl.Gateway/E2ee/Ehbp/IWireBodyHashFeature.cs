namespace PrivateMl.Gateway.E2ee.Ehbp;

/// <summary>
/// Set on a request whose body travels encrypted: the SHA-256 of the bytes the gateway actually received and, so
/// far, returned on the wire (ciphertext and framing included). Signatures and receipts use these instead of the
/// hashes of the plaintext the handler saw, so they cover exactly what crossed the network.
/// </summary>
internal interface IWireBodyHashFeature
{
    /// <summary>Lowercase hex SHA-256 of the request body as received.</summary>
    string RequestSha256 { get; }

    /// <summary>Lowercase hex SHA-256 of every response body byte written to the connection so far.</summary>
    string ResponseSha256();
}
