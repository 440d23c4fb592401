namespace PrivateMl.Agent.Keys;

/// <summary>The key types GetKey derives (dstack HEAD <c>GetKeyArgs.algorithm</c>).</summary>
public enum KeyAlgorithm
{
    /// <summary>secp256k1 (also spelled "", "k256"); the default.</summary>
    Secp256k1 = 1,

    /// <summary>Ed25519, seeded with the same HKDF output.</summary>
    Ed25519 = 2,
}

/// <summary>The algorithms of <c>Sign</c>/<c>Verify</c>.</summary>
public enum SignatureAlgorithmKind
{
    /// <summary>ECDSA secp256k1 over SHA-256(data); 64-byte r ‖ s.</summary>
    Secp256k1 = 1,

    /// <summary>ECDSA secp256k1 over a caller-supplied 32-byte digest.</summary>
    Secp256k1Prehashed = 2,

    /// <summary>Ed25519 over the data.</summary>
    Ed25519 = 3,
}

/// <summary>Parsing of the algorithm names on the wire.</summary>
public static class AlgorithmNames
{
    public static bool TryParseKeyAlgorithm(string? name, out KeyAlgorithm algorithm)
    {
        switch (name)
        {
            case null or "" or "secp256k1" or "k256":
                algorithm = KeyAlgorithm.Secp256k1;
                return true;
            case "ed25519":
                algorithm = KeyAlgorithm.Ed25519;
                return true;
            default:
                algorithm = default;
                return false;
        }
    }

    public static bool TryParseSignatureAlgorithm(string? name, out SignatureAlgorithmKind algorithm)
    {
        switch (name)
        {
            case "secp256k1" or "k256":
                algorithm = SignatureAlgorithmKind.Secp256k1;
                return true;
            case "secp256k1_prehashed":
                algorithm = SignatureAlgorithmKind.Secp256k1Prehashed;
                return true;
            case "ed25519":
                algorithm = SignatureAlgorithmKind.Ed25519;
                return true;
            default:
                algorithm = default;
                return false;
        }
    }
}
