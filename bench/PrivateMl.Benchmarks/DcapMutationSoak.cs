using System.Diagnostics;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Benchmarks;

/// <summary>
/// The long form of the mutation test in tests/: random byte flips and truncations of the real quotes and of their
/// collateral (fixed seed), each parsed and verified. Every outcome must be a typed rejection (or, rarely, an
/// acceptance of a flip in bytes no check covers, such as padding); any other exception is a bug and fails the run.
/// </summary>
internal static class DcapMutationSoak
{
    private static readonly (string Quote, string Collateral, long Now)[] Vectors =
    [
        ("tdx/dcap-qvl/tdx_quote", "tdx/dcap-qvl/tdx_quote_collateral.json", 1750400000),
        ("tdx/dcap-qvl/tdx_quote_outdated", "tdx/dcap-qvl/tdx_quote_outdated_collateral.json", 1772000000),
        ("tdx/dcap-qvl/sgx_quote", "tdx/dcap-qvl/sgx_quote_collateral.json", 1750400000),
    ];

    public static int Run(string[] args)
    {
        var count = args.Length > 0 ? long.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000;
        var seed = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 20261125;
        var root = TestDataRoot();
        var vectors = Vectors.Select(v => (
            Quote: File.ReadAllBytes(Path.Combine(root, v.Quote)),
            CollateralJson: File.ReadAllText(Path.Combine(root, v.Collateral)),
            Now: DateTimeOffset.FromUnixTimeSeconds(v.Now))).ToArray();

        var random = new Random(seed);
        var verifier = new DcapVerifier();
        var codes = new SortedDictionary<string, long>(StringComparer.Ordinal);
        long accepted = 0, crashes = 0;
        var clock = Stopwatch.StartNew();
        for (long i = 0; i < count; i++)
        {
            var v = vectors[random.Next(vectors.Length)];
            var quote = v.Quote;
            var collateralJson = v.CollateralJson;
            switch (random.Next(4))
            {
                case 0:
                    quote = Flip(quote, random);
                    break;
                case 1:
                    quote = quote.AsSpan(0, random.Next(quote.Length)).ToArray();
                    break;
                case 2:
                    collateralJson = Encoding.UTF8.GetString(Flip(Encoding.UTF8.GetBytes(collateralJson), random));
                    break;
                default:
                    collateralJson = collateralJson[..random.Next(collateralJson.Length)];
                    break;
            }

            string outcome;
            try
            {
                var collateral = JsonSerializer.Deserialize<DcapCollateral>(collateralJson)
                    ?? throw new AttestationException(ErrorCode.CollateralMalformed, "null collateral");
                var result = verifier.Verify(quote, collateral, v.Now);
                if (result.Accepted)
                {
                    accepted++;
                    outcome = "accepted";
                }
                else
                {
                    outcome = result.Error?.ToString() ?? "rejected";
                }
            }
            catch (AttestationException ex)
            {
                outcome = ex.Code.ToString();
            }
            catch (JsonException)
            {
                // The outer collateral file is not JSON any more: the caller's deserializer says so, typed.
                outcome = "CollateralJsonInvalid";
            }
            catch (Exception ex)
            {
                crashes++;
                outcome = "CRASH " + ex.GetType().Name;
                Console.Error.WriteLine($"iteration {i}: {ex}");
            }

            codes[outcome] = codes.GetValueOrDefault(outcome) + 1;
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            mutations = count,
            seed,
            seconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
            untyped_exceptions = crashes,
            accepted,
            outcomes = codes,
        }));
        return crashes == 0 ? 0 : 1;
    }

    private static byte[] Flip(byte[] input, Random random)
    {
        var copy = (byte[])input.Clone();
        var flips = 1 + random.Next(3);
        for (var k = 0; k < flips; k++)
        {
            copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
        }

        return copy;
    }

    private static string TestDataRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "..", "shared", "testdata");
            if (File.Exists(Path.Combine(dir.FullName, "global.json")) && Directory.Exists(candidate))
            {
                return Path.GetFullPath(candidate);
            }
        }

        throw new DirectoryNotFoundException("../shared/testdata not found beside the repository");
    }
}
