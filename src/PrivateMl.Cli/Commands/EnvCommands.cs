using System.CommandLine;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client.Kms;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml env encrypt|decrypt</c>: dstack-compatible encrypted environment variables (research/dstack.md §7).
/// <c>encrypt</c> fetches the app's env-encryption public key from a KMS, refuses it unless a trusted KMS root key
/// signed it (<c>privateml kms add</c>), and encrypts an env file to it (X25519 + AES-256-GCM, as vmm-cli.py).
/// <c>decrypt</c> opens a blob with an env key, as the agent does at boot (for tests and debugging).
/// </summary>
internal static class EnvCommands
{
    /// <summary>The clock used for signature freshness (tests replace it).</summary>
    internal static TimeProvider Clock { get; set; } = TimeProvider.System;

    public static Command Create()
    {
        return new Command("env", "Encrypted environment variables (dstack-compatible)") { EncryptCommand(), DecryptCommand() };
    }

    private static Command EncryptCommand()
    {
        var kms = new Option<string?>("--kms") { Description = "KMS base URL; the app's key comes from POST URL/prpc/GetAppEnvEncryptPubKey?json" };
        var appId = new Option<string?>("--app-id") { Description = "The app id (40 hex characters)" };
        var appCompose = new Option<FileInfo?>("--app-compose") { Description = "Instead of --app-id: app-compose.json, app id = SHA-256(file)[0..20] (a new app, as vmm-cli.py)" };
        var envFile = new Option<FileInfo>("--env-file") { Description = "KEY=VALUE lines (# comments and blank lines skipped)", Required = true };
        var output = new Option<FileInfo?>("--out") { Description = "Write the raw blob here (the VMM's .encrypted-env); default: hex on stdout (the VMM's JSON form)" };
        var trustFile = TrustFileOption();
        var trustAny = new Option<bool>("--trust-any") { Description = "DEVELOPMENT ONLY: accept a validly signed key from a KMS whose root key is not in the trust list" };
        var kmsCa = new Option<FileInfo?>("--kms-ca") { Description = "PEM root the KMS's TLS certificate must chain to (default: TLS not checked; trust comes from the KMS root key's signature)" };
        var publicKey = new Option<string?>("--public-key") { Description = "Instead of --kms: encrypt to this X25519 public key (64 hex); NO KMS signature is checked" };
        var command = new Command("encrypt", "Encrypt an env file to an app's env key, checked against the trusted KMS keys")
        {
            kms, appId, appCompose, envFile, output, trustFile, trustAny, kmsCa, publicKey,
        };
        command.SetAction((parse, cancellationToken) => EncryptAsync(
            new EncryptRequest(
                parse.GetValue(kms),
                parse.GetValue(appId),
                parse.GetValue(appCompose),
                parse.GetValue(envFile)!,
                parse.GetValue(output),
                parse.GetValue(trustFile),
                parse.GetValue(trustAny),
                parse.GetValue(kmsCa),
                parse.GetValue(publicKey)),
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    private static Command DecryptCommand()
    {
        var input = new Option<FileInfo>("--in") { Description = "The blob (raw .encrypted-env or hex)", Required = true };
        var envKey = new Option<string>("--env-key") { Description = "The app's env_crypt_key (64 hex; the X25519 private key)", Required = true };
        var appCompose = new Option<FileInfo?>("--app-compose") { Description = "Keep only its allowed_envs, as the agent does (default: print every variable)" };
        var json = new Option<bool>("--json") { Description = "Print .decrypted-env.json instead of .decrypted-env" };
        var command = new Command("decrypt", "Open an encrypted env with an env key and print it as the agent writes it") { input, envKey, appCompose, json };
        command.SetAction(parse => Decrypt(
            parse.GetValue(input)!,
            parse.GetValue(envKey)!,
            parse.GetValue(appCompose),
            parse.GetValue(json),
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));
        return command;
    }

    internal static Option<string?> TrustFileOption() => new("--trust-file")
    {
        Description = $"Trusted KMS keys file (default ${TrustedKmsKeyStore.PathVariable} or <config dir>/privateml/kms-trusted-signers.json)",
    };

    internal sealed record EncryptRequest(
        string? Kms, string? AppId, FileInfo? AppCompose, FileInfo EnvFile, FileInfo? Out, string? TrustFile, bool TrustAny, FileInfo? KmsCa, string? PublicKey);

    internal static async Task<int> EncryptAsync(EncryptRequest request, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if ((request.Kms is null) == (request.PublicKey is null))
        {
            error.WriteLine("error: give either --kms URL (with --app-id or --app-compose) or --public-key HEX");
            return ExitCodes.UsageOrInput;
        }

        IReadOnlyList<EnvVariable> variables;
        try
        {
            if (request.EnvFile.Exists && request.EnvFile.Length > EnvFile.MaxBytes)
            {
                error.WriteLine($"error: {request.EnvFile.FullName} is over {EnvFile.MaxBytes} bytes");
                return ExitCodes.UsageOrInput;
            }

            variables = EnvFile.Parse(await File.ReadAllTextAsync(request.EnvFile.FullName, cancellationToken));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or AttestationException)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        if (request.Kms is { } kmsText
            && (!Uri.TryCreate(kmsText, UriKind.Absolute, out var kmsUri) || (kmsUri.Scheme != Uri.UriSchemeHttp && kmsUri.Scheme != Uri.UriSchemeHttps)))
        {
            error.WriteLine($"error: --kms must be an http(s) URL, got '{kmsText}'");
            return ExitCodes.UsageOrInput;
        }

        byte[] recipient;
        if (request.PublicKey is { } given)
        {
            if (!TryHex(given, EncryptedEnv.KeySize, out recipient))
            {
                error.WriteLine("error: --public-key must be 64 hex characters (an X25519 public key)");
                return ExitCodes.UsageOrInput;
            }

            error.WriteLine("WARNING: --public-key: no KMS signature was checked; make sure this key really belongs to the app.");
        }
        else
        {
            var key = await FetchTrustedKeyAsync(request, error, cancellationToken);
            if (key.Exit != ExitCodes.Accepted)
            {
                return key.Exit;
            }

            recipient = key.PublicKey!;
        }

        byte[] blob;
        try
        {
            blob = EncryptedEnv.Encrypt(EnvVariables.Serialize(variables), recipient, RandomNumberGenerator.Create());
        }
        catch (ArgumentException e)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        if (request.Out is { } outFile)
        {
            try
            {
                await File.WriteAllBytesAsync(outFile.FullName, blob, cancellationToken);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            error.WriteLine($"encrypted {variables.Count} variables ({blob.Length} bytes) to {outFile.FullName}");
        }
        else
        {
            output.WriteLine(Convert.ToHexStringLower(blob));
            error.WriteLine($"encrypted {variables.Count} variables ({blob.Length} bytes)");
        }

        return ExitCodes.Accepted;
    }

    private static async Task<(int Exit, byte[]? PublicKey)> FetchTrustedKeyAsync(EncryptRequest request, TextWriter error, CancellationToken cancellationToken)
    {
        byte[] appId;
        if (request.AppCompose is { } compose)
        {
            if (request.AppId is not null)
            {
                error.WriteLine("error: give --app-id or --app-compose, not both");
                return (ExitCodes.UsageOrInput, null);
            }

            try
            {
                appId = SHA256.HashData(await File.ReadAllBytesAsync(compose.FullName, cancellationToken))[..20];
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"error: {e.Message}");
                return (ExitCodes.UsageOrInput, null);
            }
        }
        else if (request.AppId is null || !TryHex(request.AppId, 20, out appId))
        {
            error.WriteLine("error: --app-id must be 40 hex characters (or give --app-compose)");
            return (ExitCodes.UsageOrInput, null);
        }

        var store = new TrustedKmsKeyStore(request.TrustFile ?? TrustedKmsKeyStore.DefaultPath);
        IReadOnlyList<byte[]> trusted;
        try
        {
            trusted = store.Signers();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or AttestationException)
        {
            error.WriteLine($"error: {e.Message}");
            return (ExitCodes.UsageOrInput, null);
        }

        AppEnvEncryptPublicKey answer;
        try
        {
            using var http = CreateHttpClient(request.KmsCa, error);
            using var kms = new KmsClient(http, new Uri(request.Kms!), AppEnvEncryptPublicKey.MaxJsonBytes);
            answer = await kms.GetAppEnvEncryptPubKeyAsync(appId, cancellationToken);
        }
        catch (Exception e) when (e is KmsClientException or AttestationException or TaskCanceledException or IOException or CryptographicException)
        {
            error.WriteLine($"error: could not get the app's env key from {request.Kms}: {e.Message}");
            return (ExitCodes.UsageOrInput, null);
        }

        var verdict = answer.Verify(appId, trusted, Clock.GetUtcNow());
        var signer = verdict.Signer is null ? "none" : Convert.ToHexStringLower(verdict.Signer);
        var kind = verdict.Timestamped ? $"timestamped signature_v1, {answer.Timestamp}" : "legacy signature, no timestamp";
        if (verdict.Accepted)
        {
            error.WriteLine($"✔ env key {Convert.ToHexStringLower(answer.PublicKey)} for app {Convert.ToHexStringLower(appId)} signed by trusted KMS key {signer} ({kind})");
            return (ExitCodes.Accepted, answer.PublicKey);
        }

        if (verdict.Code == ErrorCode.EnvPublicKeySignerUntrusted && request.TrustAny)
        {
            error.WriteLine("WARNING: --trust-any: the env key is signed by a KMS key you have NOT trusted: " + signer);
            error.WriteLine("WARNING: anyone running that KMS can read these variables. Use only for development; add real KMS keys with 'privateml kms add'.");
            return (ExitCodes.Accepted, answer.PublicKey);
        }

        error.WriteLine($"✘ refused the env key from {request.Kms}: {verdict.Reason} [{verdict.Code}]");
        if (verdict.Code == ErrorCode.EnvPublicKeySignerUntrusted)
        {
            error.WriteLine($"  if this KMS is yours, trust its root key: privateml kms add {signer}   (trust list: {store.Path})");
        }

        return (ExitCodes.Rejected, null);
    }

    /// <summary>
    /// Without <c>--kms-ca</c> the KMS's TLS certificate is not checked (a KMS's certificate chains to its own root, which
    /// the client does not know yet): what makes the answer trustworthy is the signature by a trusted KMS root key.
    /// </summary>
    private static HttpClient CreateHttpClient(FileInfo? kmsCa, TextWriter error)
    {
        var handler = new SocketsHttpHandler();
        if (kmsCa is null)
        {
            // Any certificate the server presents: TLS is transport here, the signature check is the trust decision.
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null;
            return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        }

        var root = X509Certificate2.CreateFromPem(File.ReadAllText(kmsCa.FullName));
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            if (certificate is null)
            {
                return false;
            }

            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(root);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            var trusted = chain.Build(new X509Certificate2(certificate));
            if (!trusted)
            {
                error.WriteLine($"error: the KMS's TLS certificate does not chain to {kmsCa.FullName}");
            }

            return trusted;
        };
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    }

    internal static int Decrypt(FileInfo input, string envKey, FileInfo? appCompose, bool json, TextWriter output, TextWriter error)
    {
        if (!TryHex(envKey, EncryptedEnv.KeySize, out var key))
        {
            error.WriteLine("error: --env-key must be 64 hex characters");
            return ExitCodes.UsageOrInput;
        }

        try
        {
            var blob = EncryptedEnvSetup.ReadBlob(input.FullName);
            if (blob is null)
            {
                error.WriteLine($"error: {input.FullName} is missing or empty");
                return ExitCodes.UsageOrInput;
            }

            var plaintext = EncryptedEnv.Decrypt(blob, key);
            var result = appCompose is null
                ? EnvVariables.ParseAll(plaintext)
                : EnvVariables.Parse(plaintext, EncryptedEnvSetup.AllowedEnvs(File.ReadAllBytes(appCompose.FullName)));
            if (result.Dropped.Count > 0)
            {
                error.WriteLine($"dropped (not in allowed_envs): {string.Join(", ", result.Dropped.Distinct())}");
            }

            output.Write(json ? Encoding.UTF8.GetString(EnvVariables.RenderJson(result.Variables)) + "\n" : EnvVariables.RenderDotEnv(result.Variables));
            return ExitCodes.Accepted;
        }
        catch (AttestationException e) when (e.Code == ErrorCode.EnvDecryptionFailed)
        {
            error.WriteLine($"✘ {e.Message} [{e.Code}]");
            return ExitCodes.Rejected;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or AttestationException)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.UsageOrInput;
        }
    }

    private static bool TryHex(string text, int length, out byte[] bytes)
    {
        var hex = text.Trim();
        if (hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            hex = hex[2..];
        }

        bytes = new byte[length];
        return hex.Length == length * 2 && Convert.FromHexString(hex, bytes, out _, out _) == System.Buffers.OperationStatus.Done;
    }
}
