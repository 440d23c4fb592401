using System.Text;
using System.Text.Json;
using NSec.Cryptography;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Signing;
using static PrivateMl.Client.SignatureEncoding;
using SHA256 = System.Security.Cryptography.SHA256;

namespace PrivateMl.Client;

/// <summary>
/// Checks a signed answer the seed-proxy way (<c>GET /v1/signature/{id}</c> → <c>{text, signature, signing_address,
/// signing_algo}</c>): <c>text</c> is <c>sha256(request body):sha256(response bytes)</c> (an optional leading
/// <c>model:</c> part is tolerated), the hashes match the bytes this client actually sent and received (for streams:
/// the raw SSE bytes), and the signature — EIP-191 <c>personal_sign</c> recovered to an address for ecdsa, Ed25519
/// for ed25519 — was made by the key attested in this run. Pure; never throws for hostile input.
/// </summary>
public static class SignedResponseVerifier
{
    public const string TextCheck = "response.text";
    public const string RequestHashCheck = "response.request-hash";
    public const string ResponseHashCheck = "response.response-hash";
    public const string SignatureCheck = "response.signature";
    public const string SignerCheck = "response.signer";

    public static IReadOnlyList<CheckResult> Verify(ReadOnlySpan<byte> signatureJson, ReadOnlySpan<byte> requestBody, ReadOnlySpan<byte> responseBytes, string attestedAddress, string attestedAlgo)
    {
        ArgumentNullException.ThrowIfNull(attestedAddress);
        ArgumentNullException.ThrowIfNull(attestedAlgo);
        string? text, signature, address, algo;
        try
        {
            using var doc = JsonDocument.Parse(signatureJson.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
            var root = doc.RootElement;
            text = Str(root, "text");
            signature = Str(root, "signature");
            address = Str(root, "signing_address");
            algo = Str(root, "signing_algo")?.ToLowerInvariant();
        }
        catch (JsonException e)
        {
            return [CheckResult.Fail(TextCheck, ErrorCode.ResponseSignatureInvalid, "the signature document is not JSON: " + e.Message)];
        }

        if (text is null || signature is null)
        {
            return [CheckResult.Fail(TextCheck, ErrorCode.ResponseSignatureInvalid, "UNSIGNED: the node returned no signed text for this answer")];
        }

        var checks = new List<CheckResult>();
        var parts = text.Split(':');
        if (parts.Length is not (2 or 3) || parts[^1].Length != 64 || parts[^2].Length != 64)
        {
            checks.Add(CheckResult.Fail(TextCheck, ErrorCode.ResponseSignatureInvalid, $"the signed text '{text}' is not request_sha256:response_sha256"));
            return checks;
        }

        checks.Add(CheckResult.Pass(TextCheck, "the signed text is request_sha256:response_sha256" + (parts.Length == 3 ? $" for model {parts[0]}" : string.Empty)));
        var requestHash = Convert.ToHexStringLower(SHA256.HashData(requestBody));
        var responseHash = Convert.ToHexStringLower(SHA256.HashData(responseBytes));
        checks.Add(string.Equals(parts[^2], requestHash, StringComparison.OrdinalIgnoreCase)
            ? CheckResult.Pass(RequestHashCheck, "the signed request hash is SHA-256 of the body this client sent")
            : CheckResult.Fail(RequestHashCheck, ErrorCode.ResponseHashMismatch, $"the signed request hash is {parts[^2]}, the body sent hashes to {requestHash}"));
        checks.Add(string.Equals(parts[^1], responseHash, StringComparison.OrdinalIgnoreCase)
            ? CheckResult.Pass(ResponseHashCheck, $"the signed response hash is SHA-256 of the {responseBytes.Length} bytes this client received")
            : CheckResult.Fail(ResponseHashCheck, ErrorCode.ResponseHashMismatch, $"TAMPERED: the signed response hash is {parts[^1]}, the {responseBytes.Length} bytes received hash to {responseHash}"));

        var wantAlgo = attestedAlgo.ToLowerInvariant();
        if (algo is not null && algo != wantAlgo)
        {
            checks.Add(CheckResult.Fail(SignatureCheck, ErrorCode.SignerNotAttested, $"signed with {algo}, but the attested key is {wantAlgo}"));
            return checks;
        }

        var textBytes = Encoding.UTF8.GetBytes(text);
        if (wantAlgo == "ecdsa")
        {
            var recovered = RecoverEthereumAddress(textBytes, signature);
            if (recovered is null)
            {
                checks.Add(CheckResult.Fail(SignatureCheck, ErrorCode.ResponseSignatureInvalid, "the EIP-191 signature is malformed or recovers no key"));
            }
            else
            {
                checks.Add(CheckResult.Pass(SignatureCheck, $"a valid EIP-191 signature by {recovered}"));
                checks.Add(string.Equals(Strip0x(recovered), Strip0x(attestedAddress), StringComparison.OrdinalIgnoreCase)
                    ? CheckResult.Pass(SignerCheck, $"the signer {recovered} is the address attested in this run")
                    : CheckResult.Fail(SignerCheck, ErrorCode.SignerNotAttested, $"the signer {recovered} is not the attested address {attestedAddress}"));
            }
        }
        else if (wantAlgo == "ed25519")
        {
            var ok = TryHex(signature, 64, out var sig) && TryHex(attestedAddress, 32, out var pub) && VerifyEd25519(pub, textBytes, sig);
            checks.Add(ok
                ? CheckResult.Pass(SignatureCheck, $"a valid Ed25519 signature by the attested key {attestedAddress}")
                : CheckResult.Fail(SignatureCheck, ErrorCode.ResponseSignatureInvalid, $"the Ed25519 signature does not verify under the attested key {attestedAddress}"));
            if (address is not null && !string.Equals(Strip0x(address), Strip0x(attestedAddress), StringComparison.OrdinalIgnoreCase))
            {
                checks.Add(CheckResult.Fail(SignerCheck, ErrorCode.SignerNotAttested, $"the signature claims signer {address}, not the attested {attestedAddress}"));
            }
        }
        else
        {
            checks.Add(CheckResult.Fail(SignatureCheck, ErrorCode.ResponseSignatureInvalid, $"unknown signing algorithm '{wantAlgo}'"));
        }

        return checks;
    }

    /// <summary>Keccak-256 of <c>"\x19Ethereum Signed Message:\n" + length + message</c> (EIP-191 personal_sign).</summary>
    public static byte[] PersonalMessageDigest(ReadOnlySpan<byte> message) => Eip191.PersonalMessageDigest(message);

    /// <summary>The 0x-prefixed lower-case address that made an EIP-191 signature (65 bytes r‖s‖v), or null.</summary>
    public static string? RecoverEthereumAddress(ReadOnlySpan<byte> message, string signatureHex) =>
        TryHex(signatureHex, Eip191.SignatureBytes, out var bytes) && Eip191.RecoverAddress(message, bytes) is { } address
            ? "0x" + Convert.ToHexStringLower(address)
            : null;

    private static string? Str(JsonElement root, string name) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
