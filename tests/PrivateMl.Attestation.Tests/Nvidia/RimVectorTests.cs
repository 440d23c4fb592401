using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Trust;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;
using Names = PrivateMl.Attestation.Nvidia.GpuEvidenceVerifier.CheckNames;

namespace PrivateMl.Attestation.Tests.Nvidia;

/// <summary>The 13 NVIDIA-signed RIMs and the 7 measurement comparisons of expected.json.</summary>
public sealed class RimVectorTests
{
    public static TheoryData<string> RimFiles => NvidiaVectors.Keys("rims");

    public static TheoryData<int> Comparisons
    {
        get
        {
            var data = new TheoryData<int>();
            for (var i = 0; i < 7; i++)
            {
                data.Add(i);
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(RimFiles))]
    public void Rim_parses_and_authenticates_as_expected(string file)
    {
        var e = NvidiaVectors.Expected.GetProperty("rims").GetProperty(file);
        using var rim = NvidiaRim.Parse(SharedTestData.ReadBytes("nvidia/" + file));
        Assert.Equal(e.GetProperty("colloquialVersion").GetString(), rim.ColloquialVersion);
        Assert.Equal(e.GetProperty("SoftwareIdentity_name").GetString(), rim.Name);
        Assert.Equal(e.GetProperty("tagId").GetString(), rim.TagId);
        Assert.Equal(e.GetProperty("active_indices").EnumerateArray().Select(i => i.GetInt32()), rim.ActiveIndices);
        Assert.Equal(e.GetProperty("signer_cn").GetString(), rim.SignerCertificates[0].GetNameInfo(X509NameType.SimpleName, false));

        var signatureValid = e.GetProperty("xmldsig_valid_with_embedded_signer_key").GetBoolean();
        Assert.Equal(signatureValid, rim.VerifySignature() is null);

        using var root = X509CertificateLoader.LoadCertificate(NvidiaCoRimSigningRootCa.Der);
        Assert.Equal(e.GetProperty("chain_anchored_at_corim_root").GetBoolean(), rim.VerifyChain(root) is null);

        // Validity is separate from authenticity: inside the signer's window it holds, one day after it does not.
        var notAfter = DateTimeOffset.Parse(e.GetProperty("chain_min_not_after").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.NotNull(rim.ValidityProblem(notAfter.AddDays(1)));

        // Through the verifier: the right code for each defect.
        var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowExpiredRimSigners = true });
        var (checkedRim, failure) = verifier.CheckRim(SharedTestData.ReadBytes("nvidia/" + file), rim.ColloquialVersion, NvidiaVectors.Now);
        checkedRim?.Dispose();
        ErrorCode? expected = !signatureValid ? ErrorCode.RimSignatureInvalid
            : !e.GetProperty("chain_anchored_at_corim_root").GetBoolean() ? ErrorCode.RimChainUntrusted
            : null;
        Assert.Equal(expected, failure?.Code);
    }

    [Fact]
    public void Expired_rim_signer_is_its_own_failure_unless_allowed()
    {
        var bytes = SharedTestData.ReadBytes("nvidia/rims/NV_GPU_VBIOS_1010_0200_882_96005E0001.2023-06.swidtag");
        var strict = new GpuEvidenceVerifier();
        var (rim, failure) = strict.CheckRim(bytes, "96.00.5E.00.01", NvidiaVectors.Now);
        rim?.Dispose();
        Assert.Equal(ErrorCode.RimCertificateExpired, failure?.Code);

        (rim, failure) = strict.CheckRim(bytes, "96.00.5E.00.01", new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero));
        rim?.Dispose();
        Assert.Null(failure);
    }

    [Fact]
    public void Rim_for_another_version_is_rejected()
    {
        var bytes = SharedTestData.ReadBytes("nvidia/rims/NV_GPU_DRIVER_GH100_550.144.03.xml");
        var (rim, failure) = new GpuEvidenceVerifier().CheckRim(bytes, "550.90.07", new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero));
        rim?.Dispose();
        Assert.Equal(ErrorCode.RimVersionMismatch, failure?.Code);
    }

    [Fact]
    public void Rim_with_a_flipped_measurement_digit_fails_its_signature()
    {
        var text = SharedTestData.ReadText("nvidia/rims/NV_GPU_DRIVER_GH100_550.144.03.xml");
        var at = text.IndexOf("index=\"7\" active=\"True\"", StringComparison.Ordinal);
        var hash = text.IndexOf("Hash0=\"", at, StringComparison.Ordinal) + 7;
        var flipped = text[..hash] + (text[hash] == '0' ? '1' : '0') + text[(hash + 1)..];
        var (rim, failure) = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowExpiredRimSigners = true }).CheckRim(System.Text.Encoding.UTF8.GetBytes(flipped), null, NvidiaVectors.Now);
        rim?.Dispose();
        Assert.Equal(ErrorCode.RimSignatureInvalid, failure?.Code);
    }

    [Theory]
    [InlineData("<SoftwareIdentity/>")]
    [InlineData("not xml")]
    [InlineData("<!DOCTYPE x [<!ENTITY a \"b\">]><SoftwareIdentity xmlns=\"http://standards.iso.org/iso/19770/-2/2015/schema.xsd\"/>")]
    public void Malformed_rim_is_a_typed_error(string xml)
    {
        var ex = Assert.Throws<AttestationException>(() => NvidiaRim.Parse(System.Text.Encoding.UTF8.GetBytes(xml)));
        Assert.Equal(ErrorCode.RimMalformed, ex.Code);
    }

    [Fact]
    public void Random_rim_corruption_is_a_typed_failure()
    {
        var text = SharedTestData.ReadText("nvidia/rims/NV_GPU_DRIVER_GH100_550.144.03.xml");
        var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowExpiredRimSigners = true });
        var random = new Random(11);
        for (var i = 0; i < 60; i++)
        {
            var chars = text.ToCharArray();
            chars[random.Next(chars.Length)] = (char)random.Next(32, 127);
            var (rim, failure) = verifier.CheckRim(System.Text.Encoding.UTF8.GetBytes(chars), null, NvidiaVectors.Now);
            rim?.Dispose();
            Assert.True(failure is null || Enum.IsDefined(failure.Value.Code));
        }
    }

    [Theory]
    [MemberData(nameof(Comparisons))]
    public void Measurement_comparison_matches_expected(int index)
    {
        var e = NvidiaVectors.Expected.GetProperty("measurement_comparisons")[index];
        var reportFile = e.GetProperty("report").GetString()!;
        var report = SpdmMeasurementReport.Parse(NvidiaVectors.Report(reportFile));
        var opaque = GpuOpaqueData.Parse(report.OpaqueData);
        using var driver = Load(e.GetProperty("driver_rim"));
        using var vbios = Load(e.GetProperty("vbios_rim"));
        var result = RimComparison.Compare(report, driver, vbios, opaque.Nvdec0Status);
        Assert.Equal(e.GetProperty("matched_count").GetInt32(), result.MatchedCount);
        Assert.Equal(e.GetProperty("skipped_index35_nvdec0_disabled").EnumerateArray().Select(i => i.GetInt32()), result.Skipped);
        var expectedMismatches = e.GetProperty("mismatched_indices").EnumerateArray()
            .Select(m => (m[0].GetString() == "driver" ? RimKind.Driver : RimKind.Vbios, m[1].GetInt32())).OrderBy(m => m).ToList();
        Assert.Equal(expectedMismatches, result.Mismatches.Select(m => (m.Kind, m.Index)).OrderBy(m => m).ToList());
        if (e.GetProperty("driver_vbios_index_conflicts").ValueKind == JsonValueKind.Array)
        {
            Assert.Equal(e.GetProperty("driver_vbios_index_conflicts").EnumerateArray().Select(i => i.GetInt32()), result.Conflicts);
        }

        Assert.Equal(expectedMismatches.Count == 0, result.Success);
    }

    [Fact]
    public void Full_rim_match_through_the_verifier()
    {
        // hopper-545.00 with the nvtrust test RIMs: everything passes (signers valid in 2024).
        const string file = "spdm/hopper-545.00.report.hex";
        var e = NvidiaVectors.Expected.GetProperty("spdm").GetProperty(file);
        var rims = new InMemoryRimSource(new Dictionary<string, byte[]>
        {
            ["NV_GPU_DRIVER_GH100_545.00"] = SharedTestData.ReadBytes("nvidia/rims/driver-GH100-545.00-test.swidtag"),
            ["NV_GPU_VBIOS_1010_0200_882_96005E0001"] = SharedTestData.ReadBytes("nvidia/rims/vbios-1010_0200_882_96005E0001-test.swidtag"),
        });
        var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { RequireRims = true });
        var at = new DateTimeOffset(2024, 6, 1, 0, 0, 0, TimeSpan.Zero);
        var result = verifier.VerifyItem(NvidiaVectors.Item(file), 0, NvidiaVectors.NonceOf(e), at, rims);
        Assert.True(result.Accepted, result.FirstFailure?.Detail);
        Assert.Equal(CheckOutcome.Passed, result.Find(Names.DriverRim)!.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find(Names.VbiosRim)!.Outcome);
        Assert.Equal(32, result.Measurements!.MatchedCount);

        // The 2023-06 production VBIOS RIM under the same ID: four VBIOS indices mismatch.
        var wrong = new InMemoryRimSource(new Dictionary<string, byte[]>
        {
            ["NV_GPU_DRIVER_GH100_545.00"] = SharedTestData.ReadBytes("nvidia/rims/driver-GH100-545.00-test.swidtag"),
            ["NV_GPU_VBIOS_1010_0200_882_96005E0001"] = SharedTestData.ReadBytes("nvidia/rims/NV_GPU_VBIOS_1010_0200_882_96005E0001.2023-06.swidtag"),
        });
        var mismatch = verifier.VerifyItem(NvidiaVectors.Item(file), 0, NvidiaVectors.NonceOf(e), at, wrong);
        Assert.False(mismatch.Accepted);
        Assert.Equal(ErrorCode.RimMeasurementMismatch, mismatch.Error);

        // Required but absent.
        var missing = verifier.VerifyItem(NvidiaVectors.Item(file), 0, NvidiaVectors.NonceOf(e), at, new InMemoryRimSource(new Dictionary<string, byte[]>()));
        Assert.Equal(ErrorCode.RimNotFound, missing.Error);
    }

    private static NvidiaRim? Load(JsonElement file) =>
        file.ValueKind == JsonValueKind.String ? NvidiaRim.Parse(SharedTestData.ReadBytes("nvidia/" + file.GetString())) : null;
}
