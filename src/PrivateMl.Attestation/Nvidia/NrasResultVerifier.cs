using System.Buffers.Text;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>What one NRAS device token (GPU-i) says.</summary>
public sealed record NrasDeviceClaims(string Name, bool SignatureValid, bool SubmodDigestMatches, string? MeasRes, string? Ueid, string? DriverVersion, string? VbiosVersion, string? EatNonce, int? ErrorCode, string? ErrorMessage);

/// <summary>The verification of an NRAS detached EAT (<c>[["JWT", overall], {"GPU-0": jwt, …}]</c>).</summary>
public sealed record NrasVerificationResult
{
    public required IReadOnlyList<CheckResult> Checks { get; init; }
    public bool? OverallResult { get; init; }
    public string? ClaimsVersion { get; init; }
    public IReadOnlyList<NrasDeviceClaims> Devices { get; init; } = [];
    public DateTimeOffset? IssuedAt { get; init; }
    public DateTimeOffset? Expires { get; init; }

    /// <summary>True when every check passed: signatures, digests, nonce, time and a positive overall result.</summary>
    public bool Accepted => Checks.Count > 0 && Checks.All(c => c.Outcome != CheckOutcome.Failed);

    public CheckResult? FirstFailure => Checks.FirstOrDefault(c => c.Outcome == CheckOutcome.Failed);
}

/// <summary>
/// Checks NVIDIA Remote Attestation Service results offline — the optional second opinion. Every JWT must be ES384
/// signed by the JWKS key named by its <c>kid</c> (the JWKS is a parameter: NRAS keys rotate daily, so archived
/// tokens need the JWKS captured with them); the overall token's <c>submods</c> digests must equal SHA-256 of each
/// device token; <c>eat_nonce</c> must be the request nonce; <c>exp</c> must not have passed at <c>now</c> (pass a
/// time inside the window for archived results); <c>x-nvidia-overall-att-result</c> must be true.
/// </summary>
public static class NrasResultVerifier
{
    public const int MaxResponseLength = 1024 * 1024;

    public static class CheckNames
    {
        public const string Format = "nras.format";
        public const string OverallSignature = "nras.overall.signature";
        public const string Issuer = "nras.overall.issuer";
        public const string Time = "nras.overall.time";
        public const string Nonce = "nras.overall.nonce";
        public const string Submods = "nras.submods";
        public const string DeviceSignatures = "nras.devices.signature";
        public const string Result = "nras.result";
    }

    public static NrasVerificationResult Verify(string responseJson, string jwksJson, ReadOnlySpan<byte> expectedNonce, DateTimeOffset now, string expectedIssuer = "https://nras.attestation.nvidia.com")
    {
        ArgumentNullException.ThrowIfNull(responseJson);
        ArgumentNullException.ThrowIfNull(jwksJson);
        var checks = new List<CheckResult>();
        Dictionary<string, ECDsa> keys;
        string overall;
        List<(string Name, string Jwt)> devices;
        try
        {
            if (responseJson.Length > MaxResponseLength || jwksJson.Length > MaxResponseLength)
            {
                throw new AttestationException(ErrorCode.NrasTokenMalformed, "NRAS response or JWKS is too large");
            }

            keys = ReadJwks(jwksJson);
            (overall, devices) = ReadResponse(responseJson);
        }
        catch (AttestationException e)
        {
            checks.Add(CheckResult.Fail(CheckNames.Format, e.Code, e.Message));
            return new NrasVerificationResult { Checks = checks };
        }

        try
        {
            checks.Add(CheckResult.Pass(CheckNames.Format, $"overall token and {devices.Count} device token(s)"));
            JsonElement claims;
            try
            {
                var (sigOk, why, c) = VerifyJwt(overall, keys);
                claims = c;
                checks.Add(sigOk
                    ? CheckResult.Pass(CheckNames.OverallSignature, "ES384 signature verifies with the JWKS key named by kid")
                    : CheckResult.Fail(CheckNames.OverallSignature, why!.Value.Code, why.Value.Detail));
            }
            catch (AttestationException e)
            {
                checks.Add(CheckResult.Fail(CheckNames.OverallSignature, e.Code, e.Message));
                return new NrasVerificationResult { Checks = checks };
            }

            var iss = Str(claims, "iss");
            checks.Add(iss == expectedIssuer
                ? CheckResult.Pass(CheckNames.Issuer, iss)
                : CheckResult.Fail(CheckNames.Issuer, ErrorCode.NrasTokenMalformed, $"issuer '{iss}' is not '{expectedIssuer}'"));
            var iat = Num(claims, "iat");
            var exp = Num(claims, "exp");
            DateTimeOffset? expires = exp is { } e1 ? DateTimeOffset.FromUnixTimeSeconds(e1) : null;
            DateTimeOffset? issued = iat is { } i1 ? DateTimeOffset.FromUnixTimeSeconds(i1) : null;
            checks.Add(expires is null
                ? CheckResult.Fail(CheckNames.Time, ErrorCode.NrasTokenMalformed, "no exp claim")
                : now > expires
                    ? CheckResult.Fail(CheckNames.Time, ErrorCode.NrasTokenExpired, $"expired at {expires:O}")
                    : CheckResult.Pass(CheckNames.Time, $"valid until {expires:O}"));
            var expectedHex = Convert.ToHexStringLower(expectedNonce);
            var eatNonce = Str(claims, "eat_nonce");
            checks.Add(string.Equals(eatNonce, expectedHex, StringComparison.OrdinalIgnoreCase)
                ? CheckResult.Pass(CheckNames.Nonce, "eat_nonce equals the request nonce")
                : CheckResult.Fail(CheckNames.Nonce, ErrorCode.NrasNonceMismatch, $"eat_nonce {eatNonce ?? "(none)"} is not {expectedHex}"));

            var deviceClaims = new List<NrasDeviceClaims>();
            var submodProblems = new List<string>();
            var sigProblems = new List<string>();
            claims.TryGetProperty("submods", out var submods);
            var submodCount = submods.ValueKind == JsonValueKind.Object ? submods.EnumerateObject().Count() : 0;
            if (submodCount != devices.Count)
            {
                submodProblems.Add($"{submodCount} submods for {devices.Count} device tokens");
            }

            foreach (var (name, jwt) in devices)
            {
                var digest = Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(jwt)));
                var digestOk = submods.ValueKind == JsonValueKind.Object && submods.TryGetProperty(name, out var sm) && SubmodDigest(sm) == digest;
                if (!digestOk)
                {
                    submodProblems.Add($"{name}: digest mismatch");
                }

                bool sigOk;
                JsonElement dc;
                try
                {
                    (sigOk, var why, dc) = VerifyJwt(jwt, keys);
                    if (!sigOk)
                    {
                        sigProblems.Add($"{name}: {why!.Value.Detail}");
                    }
                }
                catch (AttestationException e)
                {
                    sigProblems.Add($"{name}: {e.Message}");
                    deviceClaims.Add(new NrasDeviceClaims(name, false, digestOk, null, null, null, null, null, null, null));
                    continue;
                }

                int? errCode = null;
                string? errMsg = null;
                if (dc.TryGetProperty("x-nvidia-error-details", out var err) && err.ValueKind == JsonValueKind.Object)
                {
                    errCode = err.TryGetProperty("code", out var ec) && ec.ValueKind == JsonValueKind.Number ? ec.GetInt32() : null;
                    errMsg = Str(err, "message");
                }

                deviceClaims.Add(new NrasDeviceClaims(name, sigOk, digestOk, Str(dc, "measres"), Str(dc, "ueid"), Str(dc, "x-nvidia-gpu-driver-version"), Str(dc, "x-nvidia-gpu-vbios-version"), Str(dc, "eat_nonce"), errCode, errMsg));
            }

            checks.Add(submodProblems.Count == 0
                ? CheckResult.Pass(CheckNames.Submods, $"{devices.Count} submod digest(s) match the device tokens")
                : CheckResult.Fail(CheckNames.Submods, ErrorCode.NrasSubmodDigestMismatch, string.Join("; ", submodProblems)));
            checks.Add(sigProblems.Count == 0
                ? CheckResult.Pass(CheckNames.DeviceSignatures, $"{devices.Count} device token signature(s) verify")
                : CheckResult.Fail(CheckNames.DeviceSignatures, ErrorCode.NrasTokenSignatureInvalid, string.Join("; ", sigProblems)));

            bool? result = claims.TryGetProperty("x-nvidia-overall-att-result", out var r) && r.ValueKind is JsonValueKind.True or JsonValueKind.False ? r.GetBoolean() : null;
            var errors = deviceClaims.Where(d => d.ErrorCode is not null).Select(d => $"{d.Name}: {d.ErrorCode} {d.ErrorMessage}").ToList();
            checks.Add(result == true
                ? CheckResult.Pass(CheckNames.Result, "x-nvidia-overall-att-result is true")
                : CheckResult.Fail(CheckNames.Result, ErrorCode.NrasResultNegative, "x-nvidia-overall-att-result is " + (result?.ToString() ?? "missing") + (errors.Count > 0 ? "; " + string.Join("; ", errors.Distinct()) : string.Empty)));

            return new NrasVerificationResult
            {
                Checks = checks,
                OverallResult = result,
                ClaimsVersion = Str(claims, "x-nvidia-ver"),
                Devices = deviceClaims,
                IssuedAt = issued,
                Expires = expires,
            };
        }
        finally
        {
            foreach (var k in keys.Values)
            {
                k.Dispose();
            }
        }
    }

    private static string? SubmodDigest(JsonElement sm)
    {
        // ["DIGEST", ["SHA-256", "<hex>"]]
        if (sm.ValueKind == JsonValueKind.Array && sm.GetArrayLength() == 2 && sm[1].ValueKind == JsonValueKind.Array && sm[1].GetArrayLength() == 2 && sm[1][0].ValueKind == JsonValueKind.String && sm[1][0].GetString() == "SHA-256" && sm[1][1].ValueKind == JsonValueKind.String)
        {
            return sm[1][1].GetString()!.ToLowerInvariant();
        }

        return null;
    }

    private static (bool Ok, (ErrorCode Code, string Detail)? Why, JsonElement Claims) VerifyJwt(string jwt, Dictionary<string, ECDsa> keys)
    {
        var parts = jwt.Split('.');
        if (parts.Length != 3)
        {
            throw new AttestationException(ErrorCode.NrasTokenMalformed, "a token is not a compact JWS");
        }

        var header = ParseJson(B64Url(parts[0]));
        var claims = ParseJson(B64Url(parts[1]));
        var sig = B64Url(parts[2]);
        if (Str(header, "alg") != "ES384")
        {
            return (false, (ErrorCode.NrasTokenSignatureInvalid, $"alg '{Str(header, "alg")}' is not ES384"), claims);
        }

        var kid = Str(header, "kid");
        if (kid is null || !keys.TryGetValue(kid, out var key))
        {
            return (false, (ErrorCode.NrasTokenKeyUnknown, $"kid '{kid}' is not in the JWKS"), claims);
        }

        var signed = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
        return key.VerifyData(signed, sig, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)
            ? (true, null, claims)
            : (false, (ErrorCode.NrasTokenSignatureInvalid, "ES384 signature does not verify"), claims);
    }

    private static Dictionary<string, ECDsa> ReadJwks(string json)
    {
        var keys = new Dictionary<string, ECDsa>(StringComparer.Ordinal);
        using var doc = Parse(json);
        if (!doc.RootElement.TryGetProperty("keys", out var arr) || arr.ValueKind != JsonValueKind.Array)
        {
            throw new AttestationException(ErrorCode.NrasTokenMalformed, "JWKS has no keys array");
        }

        foreach (var k in arr.EnumerateArray())
        {
            if (Str(k, "kty") != "EC" || Str(k, "crv") != "P-384" || Str(k, "kid") is not { } kid || Str(k, "x") is not { } x || Str(k, "y") is not { } y)
            {
                continue;
            }

            try
            {
                keys[kid] = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP384, Q = new ECPoint { X = B64Url(x), Y = B64Url(y) } });
            }
            catch (CryptographicException)
            {
                // a broken key is simply unusable
            }
        }

        return keys;
    }

    private static (string Overall, List<(string, string)> Devices) ReadResponse(string json)
    {
        using var doc = Parse(json);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() < 1 || root[0].ValueKind != JsonValueKind.Array || root[0].GetArrayLength() != 2 || root[0][1].ValueKind != JsonValueKind.String)
        {
            throw new AttestationException(ErrorCode.NrasTokenMalformed, "NRAS response is not [[\"JWT\", token], {devices}]");
        }

        var devices = new List<(string, string)>();
        if (root.GetArrayLength() > 1 && root[1].ValueKind == JsonValueKind.Object)
        {
            foreach (var p in root[1].EnumerateObject())
            {
                if (p.Value.ValueKind == JsonValueKind.String)
                {
                    devices.Add((p.Name, p.Value.GetString()!));
                }
            }
        }

        return (root[0][1].GetString()!, devices);
    }

    private static JsonDocument Parse(string json)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.NrasTokenMalformed, $"not JSON: {e.Message}", e);
        }
    }

    private static JsonElement ParseJson(byte[] utf8)
    {
        try
        {
            using var doc = JsonDocument.Parse(utf8);
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.NrasTokenMalformed, $"a token part is not JSON: {e.Message}", e);
        }
    }

    private static byte[] B64Url(string s)
    {
        try
        {
            return Base64Url.DecodeFromChars(s);
        }
        catch (FormatException e)
        {
            throw new AttestationException(ErrorCode.NrasTokenMalformed, "a token part is not base64url", e);
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long? Num(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : null;
}
