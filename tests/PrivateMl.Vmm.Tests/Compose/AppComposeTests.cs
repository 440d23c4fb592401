using System.Text;
using PrivateMl.Vmm.Compose;

namespace PrivateMl.Vmm.Tests.Compose;

public sealed class AppComposeTests
{
    // dstack.md §6.6: the production sample (V1) — compose hash and the MRCONFIGID in its quote.
    private const string ProductionComposeHash = "62dd36d22b7d704aaa4d598226801ed4e6a3bfd17dde762b2efd9876768be800";
    private const string ProductionMrConfigId = "0162dd36d22b7d704aaa4d598226801ed4e6a3bfd17dde762b2efd9876768be800000000000000000000000000000000";

    // dstack.md §6.1 / §6.7 A11: simulator compose-hash payload, app_id, KMS key provider id, and the V2 result.
    private const string SimulatorComposeHash = "ea549f02e1a25fabd1cb788380e033ec5461b2ffe4328d753642cf035452e48b";
    private const string SimulatorAppId = "ea549f02e1a25fabd1cb788380e033ec5461b2ff";
    private const string SimulatorKmsId = "3059301306072a8648ce3d020106082a8648ce3d0301070342000419b2457dd9b8aa6446d980f136fff7812ecd6c77740eeb0e28b10d56c0c00028a5b6e59dcea307d583bd1f70769e9c116df2bcfb1758a95d8613e7de1c8482c0";
    private const string SimulatorMrConfigIdV2 = "02e6c7d55058c787ab8dd384645fa65d157d5c7c699d868235732050ae720d501c";

    [Fact]
    public void MrConfigId_V1_MatchesTheProductionQuote()
    {
        var id = AppCompose.ComputeMrConfigId(Convert.FromHexString(ProductionComposeHash), [], KeyProviderKind.Kms, []);

        Assert.Equal(ProductionMrConfigId, Convert.ToHexStringLower(id));
    }

    [Fact]
    public void MrConfigId_V2_MatchesTheSimulatorVector()
    {
        var id = AppCompose.ComputeMrConfigId(Convert.FromHexString(SimulatorComposeHash), Convert.FromHexString(SimulatorAppId), KeyProviderKind.Kms, Convert.FromHexString(SimulatorKmsId));

        Assert.Equal(SimulatorMrConfigIdV2 + new string('0', 30), Convert.ToHexStringLower(id));
    }

    [Fact]
    public void MrConfigId_OfAParsedCompose_UsesItsOwnHashAndKeyProvider()
    {
        var compose = AppCompose.Parse($"{{\"manifest_version\":2,\"name\":\"a\",\"runner\":\"bash\",\"kms_enabled\":true,\"key_provider_id\":\"{SimulatorKmsId}\"}}");

        var expected = AppCompose.ComputeMrConfigId(compose.ComposeHash, compose.DefaultAppId, KeyProviderKind.Kms, Convert.FromHexString(SimulatorKmsId));

        Assert.Equal(expected, compose.MrConfigId(compose.DefaultAppId));
        Assert.Equal(2, compose.MrConfigId(compose.DefaultAppId)[0]);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("not json", "not JSON")]
    [InlineData("[1,2]", "object")]
    [InlineData("{\"name\":\"a\",\"runner\":\"bash\"}", "manifest_version")]
    [InlineData("{\"manifest_version\":-1,\"name\":\"a\",\"runner\":\"bash\"}", "manifest_version")]
    [InlineData("{\"manifest_version\":2,\"runner\":\"bash\"}", "'name'")]
    [InlineData("{\"manifest_version\":2,\"name\":\"a\"}", "'runner'")]
    [InlineData("{\"manifest_version\":2,\"name\":\"a\",\"runner\":\"bash\",\"kms_enabled\":\"yes\"}", "kms_enabled")]
    [InlineData("{\"manifest_version\":2,\"name\":\"a\",\"runner\":\"bash\",\"allowed_envs\":[1]}", "allowed_envs")]
    [InlineData("{\"manifest_version\":2,\"name\":\"a\",\"runner\":\"bash\",\"key_provider_id\":\"xyz\"}", "key_provider_id")]
    [InlineData("{\"manifest_version\":2,\"name\":\"a\",\"runner\":\"bash\",\"key_provider\":\"tpm\"}", "key_provider")]
    public void Malformed_IsAnInvalidComposeError(string text, string mentions)
    {
        var e = Assert.Throws<VmmException>(() => AppCompose.Parse(Encoding.UTF8.GetBytes(text)));

        Assert.Equal(VmmErrorCode.InvalidCompose, e.Code);
        Assert.Contains(mentions, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Oversized_IsRefusedBeforeParsing()
    {
        var e = Assert.Throws<VmmException>(() => AppCompose.Parse(new byte[AppCompose.MaxBytes + 1]));

        Assert.Equal(VmmErrorCode.InvalidCompose, e.Code);
    }

    [Theory]
    [InlineData("{\"manifest_version\":\"3\",\"name\":\"a\",\"runner\":\"bash\"}", KeyProviderKind.None)]
    [InlineData("{\"manifest_version\":2,\"name\":\"a\",\"runner\":\"bash\",\"features\":[\"kms\"]}", KeyProviderKind.Kms)]
    [InlineData("{\"manifest_version\":2,\"name\":\"a\",\"runner\":\"bash\",\"kms_enabled\":true,\"key_provider\":\"local\"}", KeyProviderKind.Local)]
    public void KeyProvider_FollowsDstacksResolution(string text, KeyProviderKind expected) =>
        Assert.Equal(expected, AppCompose.Parse(text).KeyProvider);
}
