using System.Diagnostics;
using System.Text.Json;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Benchmarks;

/// <summary>
/// Times full DCAP verification with exactly the loop that bench/dcap-peers/peers.mjs uses for the npm verifiers
/// (one verdict, 50 warm-up calls, then batches of 20 until the time is up), so the three numbers are comparable.
/// Cold: a verifier without collateral cache, and the collateral JSON parsed from text on every call — everything
/// from bytes. Warm: the collateral verified once and reused by its exact bytes; quote checks and time checks run
/// on every call.
/// </summary>
internal static class DcapSideBySide
{
    public static int Run(string[] args)
    {
        if (args.Length < 3)
        {
            Console.Error.WriteLine("usage: side-by-side QUOTE COLLATERAL_JSON NOW_SECS [SECONDS]");
            return 2;
        }

        var quote = QuoteInput.Decode(File.ReadAllBytes(args[0]));
        var collateralJson = File.ReadAllText(args[1]);
        var now = DateTimeOffset.FromUnixTimeSeconds(long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
        var seconds = args.Length > 3 ? double.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 5;

        var cold = new DcapVerifier(new DcapVerifierOptions { CollateralCacheCapacity = 0 });
        Measure("PrivateMl DcapVerifier cold (.NET)", seconds, () => cold.Verify(quote, JsonSerializer.Deserialize<DcapCollateral>(collateralJson)!, now));

        var warm = new DcapVerifier();
        var collateral = JsonSerializer.Deserialize<DcapCollateral>(collateralJson)!;
        Measure("PrivateMl DcapVerifier warm (.NET)", seconds, () => warm.Verify(quote, collateral, now));
        return 0;
    }

    private static void Measure(string name, double seconds, Func<QuoteVerificationResult> verify)
    {
        var first = verify();
        for (var i = 0; i < 50; i++)
        {
            verify();
        }

        long n = 0;
        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var limit = TimeSpan.FromSeconds(seconds);
        while (clock.Elapsed < limit)
        {
            for (var i = 0; i < 20; i++)
            {
                verify();
            }

            n += 20;
        }

        var elapsed = clock.Elapsed;
        var allocated = (GC.GetAllocatedBytesForCurrentThread() - allocatedBefore) / n;
        var status = first.Accepted ? first.Status?.ToString() : "rejected: " + first.Error;
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            verifier = name,
            iterations = n,
            us_per_verification = Math.Round(elapsed.TotalMicroseconds / n, 1),
            bytes_allocated_per_verification = allocated,
            status,
        }));
    }
}
