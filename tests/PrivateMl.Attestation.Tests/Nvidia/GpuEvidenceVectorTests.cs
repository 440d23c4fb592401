using System.Text.Json;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;
using Names = PrivateMl.Attestation.Nvidia.GpuEvidenceVerifier.CheckNames;

namespace PrivateMl.Attestation.Tests.Nvidia;

/// <summary>Every report, chain and payload in ../shared/testdata/nvidia gives the outcome expected.json records.</summary>
public sealed class GpuEvidenceVectorTests
{
    private static readonly GpuEvidenceVerifier Verifier = new();

    public static TheoryData<string> SpdmFiles => NvidiaVectors.Keys("spdm");

    public static TheoryData<string> PayloadFiles
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var section in new[] { "near", "nras" })
            {
                foreach (var k in NvidiaVectors.Keys(section))
                {
                    data.Add(section + "|" + k);
                }
            }

            return data;
        }
    }

    public static TheoryData<string> SerializedFiles => NvidiaVectors.Keys("serialized");

    [Theory]
    [MemberData(nameof(SpdmFiles))]
    public void Spdm_report_verifies_as_expected(string file)
    {
        var e = NvidiaVectors.Expected.GetProperty("spdm").GetProperty(file);
        var item = NvidiaVectors.Item(file);
        var result = Verifier.VerifyItem(item, 0, NvidiaVectors.NonceOf(e), NvidiaVectors.Now);
        AssertMatches(result, e);
    }

    [Theory]
    [MemberData(nameof(PayloadFiles))]
    public void Payload_verifies_as_expected(string key)
    {
        var (section, file) = (key.Split('|')[0], key.Split('|')[1]);
        var e = NvidiaVectors.Expected.GetProperty(section).GetProperty(file);
        var json = SharedTestData.ReadText("nvidia/" + file);
        var payload = GpuEvidencePayload.Parse(json);
        Assert.Equal(e.GetProperty("top_level_nonce").GetString(), payload.Nonce);
        var items = e.GetProperty("items");
        Assert.Equal(items.GetArrayLength(), payload.Items.Count);

        // Verify against the payload's own nonce: the container check is what expected.json records.
        var result = Verifier.Verify(payload, Convert.FromHexString(payload.Nonce), NvidiaVectors.Now);
        Assert.Equal(CheckOutcome.Passed, result.Checks.Single(c => c.Name == Names.PayloadNonce).Outcome);
        for (var i = 0; i < payload.Items.Count; i++)
        {
            var ei = items[i];
            var gpu = result.Gpus[i];
            var containerMatch = ei.GetProperty("nonce_matches_container").GetBoolean();
            Assert.Equal(containerMatch ? CheckOutcome.Passed : CheckOutcome.Failed, gpu.Find(Names.Nonce)!.Outcome);
            if (!containerMatch)
            {
                Assert.Equal(ErrorCode.GpuNonceMismatch, gpu.Find(Names.Nonce)!.Code);

                // With the evidence's own nonce everything else still holds.
                gpu = Verifier.VerifyItem(payload.Items[i], i, NvidiaVectors.NonceOf(ei), NvidiaVectors.Now);
            }

            AssertMatches(gpu, ei);
            var nuls = ei.GetProperty("certificate_trailing_nul_bytes").GetInt32();
            Assert.Equal(nuls, payload.Items[i].CertificateChainPem.Reverse().TakeWhile(b => b == 0).Count());
            Assert.Equal(ei.GetProperty("item_keys").EnumerateArray().Any(k => k.GetString() == "nonce"), payload.Items[i].Nonce is not null);
        }

        Assert.Equal(items.EnumerateArray().All(i => i.GetProperty("nonce_matches_container").GetBoolean()), result.Accepted);
    }

    [Theory]
    [MemberData(nameof(SerializedFiles))]
    public void Nvidia_sdk_evidence_array_verifies_as_expected(string file)
    {
        var e = NvidiaVectors.Expected.GetProperty("serialized").GetProperty(file);
        using var doc = JsonDocument.Parse(SharedTestData.ReadText("nvidia/" + file));
        var items = e.GetProperty("items");
        Assert.Equal(items.GetArrayLength(), doc.RootElement.GetArrayLength());
        for (var i = 0; i < items.GetArrayLength(); i++)
        {
            var item = GpuEvidencePayload.ParseItem(doc.RootElement[i], GpuArchitecture.Hopper, i);
            var result = Verifier.VerifyItem(item, i, NvidiaVectors.NonceOf(items[i]), NvidiaVectors.Now);
            AssertMatches(result, items[i]);
            Assert.Equal(items[i].GetProperty("nonce_matches_container").GetBoolean(), item.Nonce == items[i].GetProperty("spdm_request_nonce").GetString());
        }
    }

    [Fact]
    public void Private_ml_sdk_payload_is_rewritten_byte_for_byte()
    {
        var json = SharedTestData.ReadText("nvidia/near/nanogpt-20260610.nvidia_payload.json").TrimEnd('\n');
        var payload = GpuEvidencePayload.Parse(json);
        Assert.Equal(json, payload.ToJson());
        Assert.StartsWith("{\"nonce\": ", payload.ToJson(), StringComparison.Ordinal);
    }

    [Fact]
    public void Sorted_compact_payload_round_trips_to_the_same_evidence()
    {
        var json = SharedTestData.ReadText("nvidia/near/neardirect-20260629.nvidia_payload.json");
        var payload = GpuEvidencePayload.Parse(json);
        var again = GpuEvidencePayload.Parse(payload.ToJson(includeItemNonce: true));
        Assert.Equal(payload.Nonce, again.Nonce);
        Assert.Equal(8, again.Items.Count);
        for (var i = 0; i < 8; i++)
        {
            Assert.Equal(payload.Items[i].Evidence, again.Items[i].Evidence);
            Assert.Equal(payload.Items[i].CertificateChainPem, again.Items[i].CertificateChainPem);
            Assert.Equal(payload.Items[i].Nonce, again.Items[i].Nonce);
        }
    }

    [Fact]
    public void Legacy_base64_of_hex_evidence_is_accepted_and_flagged()
    {
        const string file = "spdm/hopper-550.90.07.report.hex";
        var e = NvidiaVectors.Expected.GetProperty("spdm").GetProperty(file);
        var hexText = System.Text.Encoding.ASCII.GetBytes(SharedTestData.ReadText("nvidia/" + file).Trim());
        var chain = NvidiaVectors.Chain(e.GetProperty("chain_file").GetString()!);
        var nonce = e.GetProperty("spdm_request_nonce").GetString()!;
        var json = $"{{\"nonce\":\"{nonce}\",\"arch\":\"HOPPER\",\"evidence_list\":[{{\"evidence\":\"{NvidiaVectors.B64(hexText)}\",\"certificate\":\"{NvidiaVectors.B64(chain)}\"}}]}}";
        var payload = GpuEvidencePayload.Parse(json);
        Assert.Equal(GpuEvidenceEncoding.Base64Hex, payload.Items[0].EvidenceEncoding);
        Assert.True(Verifier.Verify(payload, Convert.FromHexString(nonce), NvidiaVectors.Now).Accepted);

        var strict = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowLegacyHexEvidence = false });
        var rejected = strict.Verify(payload, Convert.FromHexString(nonce), NvidiaVectors.Now);
        Assert.False(rejected.Accepted);
        Assert.Equal(ErrorCode.GpuEvidenceLegacyEncoding, rejected.Error);
    }

    [Fact]
    public void Trailing_byte_is_counted_and_rejected_when_not_allowed()
    {
        const string file = "spdm/hopper-580.95.05-trailing-byte.report.hex";
        var e = NvidiaVectors.Expected.GetProperty("spdm").GetProperty(file);
        var strict = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowTrailingBytes = false });
        var result = strict.VerifyItem(NvidiaVectors.Item(file), 0, NvidiaVectors.NonceOf(e), NvidiaVectors.Now);
        Assert.Equal(1, result.Report!.TrailingBytes);
        Assert.Equal(CheckOutcome.Passed, result.Find(Names.Signature)!.Outcome);
        Assert.Equal(ErrorCode.SpdmTrailingData, result.Error);
    }

    [Fact]
    public void Ocsp_is_reported_not_checked_offline()
    {
        const string file = "spdm/hopper-550.90.07.report.hex";
        var e = NvidiaVectors.Expected.GetProperty("spdm").GetProperty(file);
        var result = Verifier.VerifyItem(NvidiaVectors.Item(file), 0, NvidiaVectors.NonceOf(e), NvidiaVectors.Now);
        var ocsp = result.Find(Names.Ocsp)!;
        Assert.Equal(CheckOutcome.Skipped, ocsp.Outcome);
        Assert.Contains("not checked", ocsp.Detail, StringComparison.Ordinal);
        Assert.True(result.Accepted);
    }

    internal static void AssertMatches(GpuVerificationResult result, JsonElement e)
    {
        var report = result.Report;
        Assert.NotNull(report);
        Assert.Equal(e.GetProperty("report_length").GetInt32(), report.Raw.Length);
        Assert.Equal(e.GetProperty("signature_offset").GetInt32(), report.SignatureOffset);
        Assert.Equal(e.GetProperty("trailing_bytes_after_signature").GetInt32(), report.TrailingBytes);
        Assert.Equal(e.GetProperty("measurement_blocks").GetInt32(), report.Blocks.Count);
        Assert.Equal(e.GetProperty("spdm_request_nonce").GetString(), Convert.ToHexStringLower(report.RequestNonce.Span));
        Assert.Equal(e.GetProperty("response_nonce").GetString(), Convert.ToHexStringLower(report.ResponseNonce.Span));

        var signatureValid = e.GetProperty("signature_valid").GetBoolean();
        var sig = result.Find(Names.Signature)!;
        Assert.Equal(signatureValid ? CheckOutcome.Passed : CheckOutcome.Failed, sig.Outcome);
        if (!signatureValid)
        {
            Assert.Equal(ErrorCode.GpuReportSignatureInvalid, sig.Code);
        }

        Assert.Equal(e.GetProperty("chain_valid_to_device_identity_root").GetBoolean() ? CheckOutcome.Passed : CheckOutcome.Failed, result.Find(Names.CertificateChain)!.Outcome);
        Assert.Equal(e.GetProperty("ueid_leaf_serial_decimal").GetString(), result.Ueid);
        Assert.Equal(e.GetProperty("hwmodel_cert1_cn").GetString(), result.HwModel);

        var fwid = result.Find(Names.Fwid)!;
        var expectedFwid = e.GetProperty("fwid_matches_opaque");
        Assert.Equal(expectedFwid.ValueKind switch
        {
            JsonValueKind.True => CheckOutcome.Passed,
            JsonValueKind.False => CheckOutcome.Failed,
            _ => CheckOutcome.Skipped,
        }, fwid.Outcome);
        if (expectedFwid.ValueKind == JsonValueKind.False)
        {
            Assert.Equal(ErrorCode.GpuFwidMismatch, fwid.Code);
        }

        Assert.Equal(signatureValid && expectedFwid.ValueKind != JsonValueKind.False && e.GetProperty("chain_valid_to_device_identity_root").GetBoolean() && result.Find(Names.Nonce)!.Outcome == CheckOutcome.Passed, result.Accepted);

        if (result.Arch == GpuArchitecture.Ls10)
        {
            return;
        }

        var opaque = result.Opaque!;
        var o = e.GetProperty("opaque");
        Assert.Equal(o.GetProperty("DRIVER_VERSION").GetString(), opaque.DriverVersion);
        Assert.Equal(o.GetProperty("VBIOS_VERSION").GetString(), opaque.VbiosVersion);
        Assert.Equal(o.GetProperty("PROJECT").GetString(), opaque.Project);
        Assert.Equal(o.GetProperty("PROJECT_SKU").GetString(), opaque.ProjectSku);
        Assert.Equal(o.GetProperty("PROJECT_SKU_MOD").GetString(), opaque.ProjectSkuMod);
        Assert.Equal(o.GetProperty("CHIP_SKU").GetString(), opaque.ChipSku);
        Assert.Equal(o.GetProperty("CHIP_SKU_MOD").GetString(), opaque.ChipSkuMod);
        Assert.Equal(o.GetProperty("BOARD_ID").GetString(), opaque.BoardIdHex);
        Assert.Equal(Convert.ToByte(o.GetProperty("NVDEC0_STATUS").GetString()!, 16), opaque.Nvdec0Status);
        if (o.TryGetProperty("FWID", out var f))
        {
            Assert.Equal(f.GetString(), Convert.ToHexStringLower(opaque.Fwid!.Value.Span));
        }
        else
        {
            Assert.Null(opaque.Fwid);
        }

        Assert.Equal(o.TryGetProperty("PROTECTED_PCIE_STATUS", out var pp) ? Convert.ToByte(pp.GetString()!, 16) : null, opaque.ProtectedPcieStatus);
        Assert.Equal(o.TryGetProperty("OPAQUE_DATA_VERSION", out var ov) ? ov.GetInt32() : null, opaque.OpaqueDataVersion);
        Assert.Equal(o.TryGetProperty("FEATURE_FLAG", out var ff) ? ff.GetInt32() : null, opaque.FeatureFlag);
        if (o.TryGetProperty("SWITCH_PDI", out var pdis))
        {
            Assert.Equal(pdis.EnumerateArray().Select(p => p.GetString()), opaque.SwitchPdis);
        }

        var rimIds = e.GetProperty("rim_ids");
        Assert.Equal(rimIds.GetProperty("driver").GetString(), result.DriverRimId);
        Assert.Equal(rimIds.GetProperty("vbios").GetString(), result.VbiosRimId);
    }
}
