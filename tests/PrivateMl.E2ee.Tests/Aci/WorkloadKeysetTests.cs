using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.E2ee.Tests.Aci;

public sealed class WorkloadKeysetTests
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    [Fact]
    public void Published_keyset_canonicalises_to_its_digest()
    {
        var v = AciVectors.Vector("keyset_digest");
        var jcs = v.S("keyset_jcs");
        var keyset = WorkloadKeyset.Parse(Encoding.UTF8.GetBytes(jcs));
        Assert.Equal(jcs, Encoding.UTF8.GetString(keyset.CanonicalJson));
        Assert.Equal(v.S("workload_keyset_digest"), keyset.Digest);
    }

    [Fact]
    public void Keyset_built_from_its_members_matches_the_published_bytes()
    {
        var v = AciVectors.Vector("keyset_digest");
        var keys = AciVectors.Published_("fixed_keys");
        var receipt = keys[0];
        var e2ee = keys[1];
        var keyset = new WorkloadKeyset(
            "dstack-app://example-app",
            1800000000,
            [new KeysetKey(receipt.S("key_id"), receipt.S("algo"), receipt.S("public_key"))],
            [new KeysetKey(e2ee.S("key_id"), e2ee.S("algo"), e2ee.S("public_key"))],
            [new KeysetTlsKey("c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", "api.example.com")]);
        Assert.Equal(v.S("keyset_jcs"), Encoding.UTF8.GetString(keyset.CanonicalJson));
        Assert.Equal(v.S("workload_keyset_digest"), keyset.Digest);
    }

    [Fact]
    public void Any_encoding_of_the_keyset_gives_the_same_digest()
    {
        var v = AciVectors.Vector("keyset_digest");
        using var doc = JsonDocument.Parse(v.S("keyset_jcs"));
        var pretty = JsonSerializer.Serialize(doc.RootElement, Indented);
        Assert.NotEqual(v.S("keyset_jcs"), pretty);
        Assert.Equal(v.S("workload_keyset_digest"), WorkloadKeyset.Parse(Encoding.UTF8.GetBytes(pretty)).Digest);
    }

    [Fact]
    public void Reference_report_fixtures_bind_their_keysets_to_their_report_data()
    {
        var fixtures = AciVectors.Published_("reference_report_fixtures");
        var nonce = fixtures.S("nonce");
        foreach (var fixture in fixtures.GetProperty("fixtures").EnumerateArray())
        {
            using var report = JsonDocument.Parse(fixture.S("raw_json"));
            var attestation = report.RootElement.GetProperty("attestation");
            var keyset = WorkloadKeyset.Parse(attestation.GetProperty("workload_keyset"));
            Assert.Equal(fixture.S("workload_keyset_digest"), keyset.Digest);
            Assert.Equal(fixture.S("report_data"), Convert.ToHexStringLower(AciStatement.ReportData(keyset.Digest, nonce)));
            Assert.True(AciStatement.Binds(AciStatement.ReportDataSlot(keyset.Digest, nonce), keyset, nonce));
            Assert.False(AciStatement.Binds(AciStatement.ReportDataSlot(keyset.Digest, nonce), keyset, null));
        }
    }

    [Fact]
    public void Adding_an_e2ee_key_changes_the_digest()
    {
        var keyset = WorkloadKeyset.Parse(Encoding.UTF8.GetBytes(AciVectors.Vector("keyset_digest").S("keyset_jcs")));
        var more = keyset.WithE2eeKey(new KeysetKey("ehbp-1", "x-unknown-algo", "00"));
        Assert.NotEqual(keyset.Digest, more.Digest);
        Assert.Equal(2, more.E2eePublicKeys.Count);
        Assert.Null(more.FindE2eeKey(WorkloadKeyset.X25519Suite, "00"));
        Assert.NotNull(more.FindE2eeKey(WorkloadKeyset.X25519Suite, "0x5DFEDD3B6BD47F6FA28EE15D969D5BB0EA53774D488BDAF9DF1C6E0124B3EF22"));
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("{\"not_after\":1,\"receipt_signing_keys\":[],\"e2ee_public_keys\":[]}")]
    [InlineData("{\"not_after\":1.5,\"receipt_signing_keys\":[],\"e2ee_public_keys\":[],\"tls_public_keys\":[]}")]
    [InlineData("{\"not_after\":1,\"receipt_signing_keys\":[{\"key_id\":\"a\",\"algo\":\"ed25519\"}],\"e2ee_public_keys\":[],\"tls_public_keys\":[]}")]
    [InlineData("{\"not_after\":1,\"receipt_signing_keys\":[],\"e2ee_public_keys\":[],\"tls_public_keys\":[],\"extra\":1}")]
    [InlineData("{\"not_after\":1,\"not_after\":2,\"receipt_signing_keys\":[],\"e2ee_public_keys\":[],\"tls_public_keys\":[]}")]
    [InlineData("{\"not_after\":1,")]
    public void Malformed_keysets_are_typed_errors(string json)
    {
        var e = Assert.Throws<AttestationException>(() => WorkloadKeyset.Parse(Encoding.UTF8.GetBytes(json)));
        Assert.Equal(ErrorCode.ReportMalformed, e.Code);
    }

    [Fact]
    public void Canonical_strings_escape_only_what_rfc8785_escapes()
    {
        var b = new StringBuilder();
        Jcs.AppendString(b, "a\"\\\u0001\n\u00e9/\u2028");
        Assert.Equal("\"a\\\"\\\\\\u0001\\n\u00e9/\u2028\"", b.ToString());
    }
}
