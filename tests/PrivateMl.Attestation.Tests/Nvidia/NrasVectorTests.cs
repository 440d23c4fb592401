using System.Text.Json;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Nvidia;

/// <summary>The five captured NRAS responses, checked offline with the JWKS captured alongside.</summary>
public sealed class NrasVectorTests
{
    public static TheoryData<string> Responses => NvidiaVectors.Keys("nras_responses");

    [Theory]
    [MemberData(nameof(Responses))]
    public void Nras_response_verifies_as_expected(string file)
    {
        var e = NvidiaVectors.Expected.GetProperty("nras_responses").GetProperty(file);
        var response = SharedTestData.ReadText("nvidia/" + file);
        var jwks = SharedTestData.ReadText("nvidia/" + e.GetProperty("jwks_file").GetString());
        var nonce = Convert.FromHexString(e.GetProperty("eat_nonce").GetString()!);
        var inWindow = DateTimeOffset.FromUnixTimeSeconds(e.GetProperty("iat").GetInt64() + 60);
        var result = NrasResultVerifier.Verify(response, jwks, nonce, inWindow);

        Assert.Equal(CheckOutcome.Passed, Find(result, NrasResultVerifier.CheckNames.OverallSignature).Outcome);
        Assert.Equal(CheckOutcome.Passed, Find(result, NrasResultVerifier.CheckNames.DeviceSignatures).Outcome);
        Assert.Equal(CheckOutcome.Passed, Find(result, NrasResultVerifier.CheckNames.Submods).Outcome);
        Assert.Equal(CheckOutcome.Passed, Find(result, NrasResultVerifier.CheckNames.Nonce).Outcome);
        Assert.Equal(e.GetProperty("overall_result").GetBoolean(), result.OverallResult);
        Assert.Equal(e.GetProperty("x-nvidia-ver").GetString(), result.ClaimsVersion);
        Assert.Equal(e.GetProperty("exp").GetInt64(), result.Expires!.Value.ToUnixTimeSeconds());
        Assert.Equal(e.GetProperty("overall_result").GetBoolean(), result.Accepted);
        if (!e.GetProperty("overall_result").GetBoolean())
        {
            Assert.Equal(ErrorCode.NrasResultNegative, result.FirstFailure!.Code);
        }

        var devices = e.GetProperty("devices");
        Assert.Equal(devices.EnumerateObject().Count(), result.Devices.Count);
        foreach (var d in devices.EnumerateObject())
        {
            var actual = result.Devices.Single(x => x.Name == d.Name);
            Assert.True(actual.SignatureValid);
            Assert.Equal(d.Value.GetProperty("submods_digest_matches").GetBoolean(), actual.SubmodDigestMatches);
            Assert.Equal(Str(d.Value, "measres"), actual.MeasRes);
            Assert.Equal(Str(d.Value, "ueid"), actual.Ueid);
            Assert.Equal(Str(d.Value, "driver"), actual.DriverVersion);
            Assert.Equal(Str(d.Value, "vbios"), actual.VbiosVersion);
            var err = d.Value.GetProperty("error");
            Assert.Equal(err.ValueKind == JsonValueKind.Object ? err.GetProperty("code").GetInt32() : null, actual.ErrorCode);
        }

        // Expired an hour and a bit later; another nonce; another day's JWKS.
        Assert.Equal(ErrorCode.NrasTokenExpired, Find(NrasResultVerifier.Verify(response, jwks, nonce, inWindow.AddHours(2)), NrasResultVerifier.CheckNames.Time).Code);
        var otherNonce = (byte[])nonce.Clone();
        otherNonce[0] ^= 1;
        Assert.Equal(ErrorCode.NrasNonceMismatch, Find(NrasResultVerifier.Verify(response, jwks, otherNonce, inWindow), NrasResultVerifier.CheckNames.Nonce).Code);
    }

    [Fact]
    public void Tampered_token_payload_fails_its_signature_and_digest()
    {
        const string file = "near/neardirect-20260629.nras-v3-response.json";
        var e = NvidiaVectors.Expected.GetProperty("nras_responses").GetProperty(file);
        var response = SharedTestData.ReadText("nvidia/" + file);
        var jwks = SharedTestData.ReadText("nvidia/" + e.GetProperty("jwks_file").GetString());
        using var doc = JsonDocument.Parse(response);
        var gpu0 = doc.RootElement[1].GetProperty("GPU-0").GetString()!;
        var parts = gpu0.Split('.');
        var flipped = parts[1][..10] + (parts[1][10] == 'A' ? 'B' : 'A') + parts[1][11..];
        var tampered = response.Replace(gpu0, parts[0] + "." + flipped + "." + parts[2], StringComparison.Ordinal);
        var result = NrasResultVerifier.Verify(tampered, jwks, Convert.FromHexString(e.GetProperty("eat_nonce").GetString()!), DateTimeOffset.FromUnixTimeSeconds(e.GetProperty("iat").GetInt64()));
        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.NrasSubmodDigestMismatch, Find(result, NrasResultVerifier.CheckNames.Submods).Code);
        Assert.Equal(ErrorCode.NrasTokenSignatureInvalid, Find(result, NrasResultVerifier.CheckNames.DeviceSignatures).Code);

        var wrongJwks = NrasResultVerifier.Verify(response, SharedTestData.ReadText("nvidia/nras/jwks-20260424.json"), Convert.FromHexString(e.GetProperty("eat_nonce").GetString()!), DateTimeOffset.FromUnixTimeSeconds(e.GetProperty("iat").GetInt64()));
        Assert.Equal(ErrorCode.NrasTokenKeyUnknown, Find(wrongJwks, NrasResultVerifier.CheckNames.OverallSignature).Code);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("[[\"JWT\"]]")]
    [InlineData("[[\"JWT\",\"a.b\"],{}]")]
    public void Malformed_response_is_a_typed_failure(string response)
    {
        var result = NrasResultVerifier.Verify(response, "{\"keys\":[]}", new byte[32], DateTimeOffset.UnixEpoch);
        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.NrasTokenMalformed, result.FirstFailure!.Code);
    }

    private static CheckResult Find(NrasVerificationResult r, string name) => r.Checks.Single(c => c.Name == name);

    private static string? Str(JsonElement e, string name) => e.GetProperty(name).ValueKind == JsonValueKind.String ? e.GetProperty(name).GetString() : null;
}
