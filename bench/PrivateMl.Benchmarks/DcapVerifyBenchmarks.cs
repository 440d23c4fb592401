using System.Text.Json;
using BenchmarkDotNet.Attributes;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Benchmarks;

/// <summary>
/// Full DCAP verification of the real tdx_quote + its collateral at a time inside the window (every check done).
/// Cold: a fresh verifier with no collateral cache, so every certificate, CRL, signature and JSON document is parsed
/// and checked from bytes. Warm: a verifier that has seen this collateral before and reuses its verified parse (keyed
/// by the SHA-256 of the exact collateral bytes); the quote-specific and time checks still run.
/// Run: dotnet run -c Release --project bench/PrivateMl.Benchmarks -- --filter '*DcapVerify*'
/// </summary>
[MemoryDiagnoser]
public class DcapVerifyBenchmarks
{
    private byte[] _quote = [];
    private string _collateralJson = string.Empty;
    private DcapCollateral _collateral = null!;
    private DcapVerifier _warm = null!;
    private DcapVerifier _cold = null!;
    private DateTimeOffset _now;
    private System.Security.Cryptography.ECDsa _key = null!;
    private byte[] _signature = [];

    [GlobalSetup]
    public void Setup()
    {
        var root = FindTestData();
        _quote = File.ReadAllBytes(Path.Combine(root, "tdx/dcap-qvl/tdx_quote"));
        _collateralJson = File.ReadAllText(Path.Combine(root, "tdx/dcap-qvl/tdx_quote_collateral.json"));
        _collateral = JsonSerializer.Deserialize<DcapCollateral>(_collateralJson)!;
        _now = DateTimeOffset.FromUnixTimeSeconds(1750400000);
        _key = System.Security.Cryptography.ECDsa.Create(new System.Security.Cryptography.ECParameters
        {
            Curve = System.Security.Cryptography.ECCurve.NamedCurves.nistP256,
            Q = new System.Security.Cryptography.ECPoint { X = _quote.AsSpan(636 + 64, 32).ToArray(), Y = _quote.AsSpan(636 + 96, 32).ToArray() },
        });
        _signature = _quote.AsSpan(636, 64).ToArray();
        _cold = new DcapVerifier(new DcapVerifierOptions { CollateralCacheCapacity = 0 });
        _warm = new DcapVerifier();
        if (!_warm.Verify(_quote, _collateral, _now).Accepted || !_cold.Verify(_quote, _collateral, _now).Accepted)
        {
            throw new InvalidOperationException("the benchmark vector does not verify");
        }
    }

    /// <summary>Everything from bytes, the collateral JSON text included.</summary>
    [Benchmark]
    public bool ColdFromJson() => _cold.Verify(_quote, JsonSerializer.Deserialize<DcapCollateral>(_collateralJson)!, _now).Accepted;

    /// <summary>Everything from bytes except the outer collateral JSON (already a <see cref="DcapCollateral"/>).</summary>
    [Benchmark(Baseline = true)]
    public bool Cold() => _cold.Verify(_quote, _collateral, _now).Accepted;

    [Benchmark]
    public bool Warm() => _warm.Verify(_quote, _collateral, _now).Accepted;

    /// <summary>Scale: one P-256 ECDSA verification through the BCL (a key imported once).</summary>
    [Benchmark]
    public bool OneP256Verify() => _key.VerifyData(_quote.AsSpan(0, 632), _signature, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>Scale: importing one P-256 public key.</summary>
    [Benchmark]
    public int OneP256Import()
    {
        using var key = System.Security.Cryptography.ECDsa.Create(new System.Security.Cryptography.ECParameters
        {
            Curve = System.Security.Cryptography.ECCurve.NamedCurves.nistP256,
            Q = new System.Security.Cryptography.ECPoint { X = _quote.AsSpan(636 + 64, 32).ToArray(), Y = _quote.AsSpan(636 + 96, 32).ToArray() },
        });
        return key.KeySize;
    }

    /// <summary>Scale: importing one P-256 public key from SubjectPublicKeyInfo DER.</summary>
    [Benchmark]
    public int OneP256ImportSpki()
    {
        Span<byte> spki = stackalloc byte[91];
        Convert.FromHexString("3059301306072a8648ce3d020106082a8648ce3d03010703420004").CopyTo(spki);
        _quote.AsSpan(636 + 64, 64).CopyTo(spki[27..]);
        using var key = System.Security.Cryptography.ECDsa.Create();
        key.ImportSubjectPublicKeyInfo(spki, out _);
        return key.KeySize;
    }

    private static string FindTestData()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "global.json")))
            {
                return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "testdata"));
            }
        }

        throw new InvalidOperationException("repository root not found");
    }
}
