using System.Text;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.E2ee.Tests.Aci;

public sealed class AciStatementTests
{
    [Fact]
    public void Statement_with_nonce_matches_the_published_bytes_and_report_data()
    {
        var v = AciVectors.Vector("report_data_with_nonce");
        var digest = AciVectors.Vector("keyset_digest").S("workload_keyset_digest");
        var statement = AciStatement.Build(digest, v.S("nonce"));
        Assert.Equal(v.S("statement_bytes"), Encoding.ASCII.GetString(statement));
        Assert.Equal(v.S("report_data"), Convert.ToHexStringLower(AciStatement.ReportData(digest, v.S("nonce"))));
        Assert.Equal(v.S("report_data_slot_64"), Convert.ToHexStringLower(AciStatement.ReportDataSlot(digest, v.S("nonce"))));
    }

    [Fact]
    public void Statement_without_nonce_uses_the_json_null()
    {
        var v = AciVectors.Vector("report_data_null_nonce");
        var digest = AciVectors.Vector("keyset_digest").S("workload_keyset_digest");
        Assert.Equal(v.S("statement_bytes"), Encoding.ASCII.GetString(AciStatement.Build(digest, null)));
        Assert.Equal(v.S("report_data"), Convert.ToHexStringLower(AciStatement.ReportData(digest, null)));
    }

    [Theory]
    [InlineData("000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f")]
    [InlineData("000102")]
    [InlineData("0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")]
    [InlineData("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")]
    public void Only_lower_case_64_hex_nonces_are_valid(string nonce)
    {
        Assert.False(AciStatement.IsValidNonce(nonce));
        Assert.Throws<ArgumentException>(() => AciStatement.Build("sha256:" + new string('0', 64), nonce));
    }
}
