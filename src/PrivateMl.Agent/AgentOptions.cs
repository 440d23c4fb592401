namespace PrivateMl.Agent;

/// <summary>
/// Settings of the guest agent (<c>privateml agent</c>). Validated when the host starts
/// (<see cref="Validate"/>): a bad value stops the agent instead of serving with a surprise.
/// </summary>
public sealed class AgentOptions
{
    public const string DefaultSocketPath = "/var/run/dstack.sock";
    public const string DefaultTappdSocketPath = "/var/run/tappd.sock";

    /// <summary>Unix socket of the DstackGuest API; null or empty to not listen there.</summary>
    public string? SocketPath { get; set; } = DefaultSocketPath;

    /// <summary>Unix socket of the legacy Tappd API; null or empty to not listen there.</summary>
    public string? TappdSocketPath { get; set; } = DefaultTappdSocketPath;

    /// <summary>Optional TCP listener (<c>http://127.0.0.1:8090</c>) serving both APIs (DstackGuest at <c>/</c>, Tappd at <c>/prpc/</c>).</summary>
    public Uri? ListenUrl { get; set; }

    /// <summary>Directory for the agent's state: key-provider roots, instance seed, default app-compose.json.</summary>
    public string StateDirectory { get; set; } = "/var/lib/privateml/agent";

    /// <summary>app-compose.json of the app; null to use (and create) <c>app-compose.json</c> in the state directory.</summary>
    public string? AppComposePath { get; set; }

    /// <summary>
    /// The app id from the VM's <c>.instance_info</c> (40 hex digits); null for dstack's default, the first 20 bytes
    /// of the compose hash. Only a KMS app may differ from the default: that is how its keys survive a compose upgrade.
    /// </summary>
    public string? AppId { get; set; }

    /// <summary>
    /// dstack's <c>.encrypted-env</c> (raw blob or hex) to open at start with the app's env key; null for none. An
    /// absent or empty file means no encrypted env, as in dstack.
    /// </summary>
    public string? EncryptedEnvPath { get; set; }

    /// <summary>Where <c>.decrypted-env</c> and <c>.decrypted-env.json</c> go (mode 0600); null for the directory of <see cref="EncryptedEnvPath"/>, as in dstack.</summary>
    public string? DecryptedEnvDirectory { get; set; }

    /// <summary>The <c>vm_config</c> string returned by GetQuote and Info (JSON text).</summary>
    public string VmConfig { get; set; } = "{\"os_image_hash\":\"\",\"cpu_count\":1,\"memory_size\":2147483648}";

    /// <summary>JSON-lines file of runtime (RTMR3) events; null keeps them in memory (right when RTMRs restart with the process, as in simulation).</summary>
    public string? RuntimeEventLogPath { get; set; }

    /// <summary>
    /// KMS base URLs (<c>https://host:port</c>, dstack's <c>kms_urls</c>): when any, app keys come from a KMS over RA-TLS
    /// (key provider <c>kms</c>) instead of the local provider, tried in this order until one gives them.
    /// </summary>
    public IReadOnlyList<Uri> KmsUrls { get; set; } = [];

    /// <summary>The first of <see cref="KmsUrls"/> (null: none); setting it makes that URL the only one.</summary>
    public Uri? KmsUrl
    {
        get => KmsUrls.Count > 0 ? KmsUrls[0] : null;
        set => KmsUrls = value is null ? [] : [value];
    }

    /// <summary>Largest request body accepted; larger ones get 413 and change nothing.</summary>
    public int MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Version reported by <c>Version</c> (the dstack API level this agent implements).</summary>
    public string ApiVersion { get; set; } = "0.5.8";

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrEmpty(SocketPath) && string.IsNullOrEmpty(TappdSocketPath) && ListenUrl is null)
        {
            throw new ArgumentException("the agent needs at least one listener: a socket path, a tappd socket path or a listen URL");
        }

        if (ListenUrl is not null && (ListenUrl.Scheme != Uri.UriSchemeHttp || ListenUrl.Port <= 0 || ListenUrl.AbsolutePath != "/"))
        {
            throw new ArgumentException($"listen URL must be http://HOST:PORT (got {ListenUrl})");
        }

        if (!string.IsNullOrEmpty(SocketPath) && SocketPath == TappdSocketPath)
        {
            throw new ArgumentException("the dstack and tappd sockets must be different paths");
        }

        foreach (var kmsUrl in KmsUrls)
        {
            if (kmsUrl?.Scheme != Uri.UriSchemeHttps)
            {
                throw new ArgumentException($"the KMS URL must be https:// (got {kmsUrl?.ToString() ?? "null"})");
            }
        }

        if (AppId is not null && (AppId.Length != 40 || !AppId.All(char.IsAsciiHexDigit)))
        {
            throw new ArgumentException($"the app id must be 40 hex digits (got '{AppId}')");
        }

        if (string.IsNullOrWhiteSpace(StateDirectory))
        {
            throw new ArgumentException("a state directory is required");
        }

        if (MaxRequestBodyBytes is < 1024 or > 64 * 1024 * 1024)
        {
            throw new ArgumentException("MaxRequestBodyBytes must be between 1 KiB and 64 MiB");
        }
    }
}
