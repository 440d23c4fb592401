using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Tests.Env;
using PrivateMl.Cli.Commands;

namespace PrivateMl.Cli.Tests.Env;

/// <summary>
/// <c>privateml env encrypt|decrypt</c> and <c>privateml kms list|add|remove</c> against a real loopback endpoint that
/// serves GetAppEnvEncryptPubKey with the KMS signer.
/// </summary>
[Collection(nameof(EnvCommandsTests))]
public sealed class EnvCommandsTests : IDisposable
{
    private const string AppIdHex = "ea549f02e1a25fabd1cb788380e033ec5461b2ff";
    private readonly string _directory = Directory.CreateTempSubdirectory("pml-cli-env-").FullName;

    public void Dispose()
    {
        EnvCommands.Clock = TimeProvider.System;
        Directory.Delete(_directory, recursive: true);
    }

    private string TrustFile => Path.Combine(_directory, "config", "trusted.json");

    private static string TrustedHex => Convert.ToHexStringLower(LoopbackEnvKeyServer.TrustedSigner);

    [Fact]
    public void Kms_AddListRemove_ManagesTheTrustFile()
    {
        Assert.Equal(2, Run("kms", "add", "02abcd", "--trust-file", TrustFile).Exit);
        Assert.Equal(2, Run("kms", "add", "04" + new string('1', 64), "--trust-file", TrustFile).Exit);

        var added = Run("kms", "add", "0x" + TrustedHex.ToUpperInvariant(), "--trust-file", TrustFile);
        Assert.Equal(0, added.Exit);
        Assert.Contains(TrustedHex, File.ReadAllText(TrustFile), StringComparison.Ordinal);
        Assert.Contains("trusted_signers", File.ReadAllText(TrustFile), StringComparison.Ordinal);
        Assert.Contains("already", Run("kms", "add", TrustedHex, "--trust-file", TrustFile).Out, StringComparison.Ordinal);

        var listed = Run("kms", "list", "--trust-file", TrustFile);
        Assert.Equal(0, listed.Exit);
        Assert.Equal(TrustedHex + "\n", listed.Out.Replace("\r", "", StringComparison.Ordinal));

        Assert.Equal(0, Run("kms", "remove", TrustedHex, "--trust-file", TrustFile).Exit);
        Assert.Equal(1, Run("kms", "remove", TrustedHex, "--trust-file", TrustFile).Exit);
        Assert.Equal("", Run("kms", "list", "--trust-file", TrustFile).Out);
    }

    [Fact]
    public void Kms_List_RejectsMalformedTrustFile()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(TrustFile)!);
        File.WriteAllText(TrustFile, "{\"trusted_signers\":[\"not a key\"]}");
        var (exit, _, error) = Run("kms", "list", "--trust-file", TrustFile);
        Assert.Equal(2, exit);
        Assert.Contains("not a compressed secp256k1 public key", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Encrypt_WithTrustedKms_ThenDecrypt_GivesTheVariables()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        Assert.Equal(0, Run("kms", "add", TrustedHex, "--trust-file", TrustFile).Exit);
        var envFile = WriteEnvFile("# secrets\nAPI_KEY=sk-123\nMODEL = llama 3\n");
        var blobPath = Path.Combine(_directory, ".encrypted-env");

        var (exit, _, error) = Run("env", "encrypt", "--kms", kms.Url.ToString(), "--app-id", AppIdHex, "--env-file", envFile, "--out", blobPath, "--trust-file", TrustFile);
        Assert.True(exit == 0, error);
        Assert.Contains("signed by trusted KMS key " + TrustedHex, error, StringComparison.Ordinal);

        var envKey = LoopbackEnvKeyServer.EnvCryptKey(Convert.FromHexString(AppIdHex));
        var parsed = EnvVariables.ParseAll(EncryptedEnv.Decrypt(File.ReadAllBytes(blobPath), envKey));
        Assert.Equal(["API_KEY", "MODEL"], parsed.Variables.Select(v => v.Key));
        Assert.Equal(["sk-123", "llama 3"], parsed.Variables.Select(v => v.Value));

        var decrypted = Run("env", "decrypt", "--in", blobPath, "--env-key", Convert.ToHexStringLower(envKey));
        Assert.Equal(0, decrypted.Exit);
        Assert.Equal("API_KEY=sk-123\nMODEL=\"llama 3\"\n", decrypted.Out);
    }

    [Fact]
    public async Task Encrypt_HexToStdout_WithAppIdFromCompose()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        Assert.Equal(0, Run("kms", "add", TrustedHex, "--trust-file", TrustFile).Exit);
        var compose = Path.Combine(_directory, "app-compose.json");
        File.WriteAllText(compose, "{\"manifest_version\":2,\"name\":\"x\",\"allowed_envs\":[\"A\"]}");
        var appId = SHA256.HashData(File.ReadAllBytes(compose))[..20];

        var (exit, output, error) = Run("env", "encrypt", "--kms", kms.Url.ToString(), "--app-compose", compose, "--env-file", WriteEnvFile("A=1\nB=2\n"), "--trust-file", TrustFile);
        Assert.True(exit == 0, error);
        var blob = Convert.FromHexString(output.Trim());
        var opened = EnvVariables.Parse(EncryptedEnv.Decrypt(blob, LoopbackEnvKeyServer.EnvCryptKey(appId)), EncryptedEnvSetup.AllowedEnvs(File.ReadAllBytes(compose)));
        Assert.Equal("A", Assert.Single(opened.Variables).Key);
        Assert.Equal(["B"], opened.Dropped);
    }

    [Fact]
    public async Task Encrypt_Refuses_UntrustedKms_UnlessTrustAny()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        var envFile = WriteEnvFile("A=1\n");
        var blobPath = Path.Combine(_directory, "out.bin");

        var refused = Run("env", "encrypt", "--kms", kms.Url.ToString(), "--app-id", AppIdHex, "--env-file", envFile, "--out", blobPath, "--trust-file", TrustFile);
        Assert.True(refused.Exit == 1, refused.Err);
        Assert.Contains("EnvPublicKeySignerUntrusted", refused.Err, StringComparison.Ordinal);
        Assert.Contains("privateml kms add " + TrustedHex, refused.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(blobPath));

        var forced = Run("env", "encrypt", "--kms", kms.Url.ToString(), "--app-id", AppIdHex, "--env-file", envFile, "--out", blobPath, "--trust-file", TrustFile, "--trust-any");
        Assert.Equal(0, forced.Exit);
        Assert.Contains("WARNING: --trust-any", forced.Err, StringComparison.Ordinal);
        Assert.True(File.Exists(blobPath));
    }

    [Fact]
    public async Task Encrypt_Refuses_StaleSignature_EvenWithTrustAny()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        Assert.Equal(0, Run("kms", "add", TrustedHex, "--trust-file", TrustFile).Exit);
        EnvCommands.Clock = new ShiftedClock(TimeSpan.FromMinutes(10));

        var (exit, _, error) = Run("env", "encrypt", "--kms", kms.Url.ToString(), "--app-id", AppIdHex, "--env-file", WriteEnvFile("A=1\n"), "--trust-file", TrustFile, "--trust-any");
        Assert.Equal(1, exit);
        Assert.Contains("EnvPublicKeySignatureStale", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Encrypt_Refuses_KeySwappedInTransit()
    {
        var attacker = EncryptedEnv.PublicKeyOf(RandomNumberGenerator.GetBytes(32));
        await using var kms = await LoopbackEnvKeyServer.StartAsync(appId =>
        {
            var genuine = AppEnvEncryptPublicKey.Create(LoopbackEnvKeyServer.TestRootK256, appId, LoopbackEnvKeyServer.EnvCryptKey(appId), DateTimeOffset.UtcNow);
            return new AppEnvEncryptPublicKey(attacker, genuine.Signature, genuine.Timestamp, genuine.SignatureV1).ToJson();
        });
        Assert.Equal(0, Run("kms", "add", TrustedHex, "--trust-file", TrustFile).Exit);

        var (exit, output, _) = Run("env", "encrypt", "--kms", kms.Url.ToString(), "--app-id", AppIdHex, "--env-file", WriteEnvFile("A=1\n"), "--trust-file", TrustFile);
        Assert.Equal(1, exit);
        Assert.Equal("", output);
    }

    [Theory]
    [InlineData("--app-id", "abcd")]
    [InlineData("--public-key", "00")]
    public void Encrypt_BadArguments_Exit2(string option, string value)
    {
        var args = new List<string> { "env", "encrypt", "--env-file", WriteEnvFile("A=1\n"), option, value };
        if (option == "--app-id")
        {
            args.AddRange(["--kms", "http://127.0.0.1:9"]);
        }

        Assert.Equal(2, Run([.. args]).Exit);
    }

    [Fact]
    public void Encrypt_ToPublicKey_WarnsThatNothingWasChecked()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var (exit, output, error) = Run("env", "encrypt", "--public-key", Convert.ToHexStringLower(EncryptedEnv.PublicKeyOf(key)), "--env-file", WriteEnvFile("A=1\n"));
        Assert.Equal(0, exit);
        Assert.Contains("no KMS signature was checked", error, StringComparison.Ordinal);
        Assert.Equal("1", EnvVariables.ParseAll(EncryptedEnv.Decrypt(Convert.FromHexString(output.Trim()), key)).Variables[0].Value);
    }

    [Fact]
    public void Decrypt_WrongKey_IsRejected()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var blobPath = Path.Combine(_directory, "blob");
        File.WriteAllBytes(blobPath, EncryptedEnv.Encrypt(EnvVariables.Serialize([new EnvVariable("A", "1")]), EncryptedEnv.PublicKeyOf(key), RandomNumberGenerator.Create()));
        var (exit, output, error) = Run("env", "decrypt", "--in", blobPath, "--env-key", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
        Assert.Equal(1, exit);
        Assert.Equal("", output);
        Assert.Contains("EnvDecryptionFailed", error, StringComparison.Ordinal);
    }

    private string WriteEnvFile(string content)
    {
        var path = Path.Combine(_directory, $"env-{Guid.NewGuid():N}");
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary>Runs the CLI as <c>privateml ARGS</c>, capturing both streams.</summary>
    internal static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = Program.Invoke(Program.BuildRoot().Parse(args), new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private sealed class ShiftedClock(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + shift;
    }
}
