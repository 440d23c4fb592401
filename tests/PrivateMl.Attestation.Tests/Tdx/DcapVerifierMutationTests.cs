using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.Tdx;

/// <summary>
/// Random byte flips and truncations of the real quotes and collateral (fixed seeds) end only in typed errors or
/// rejections: never another exception, and never "accepted" unless only bytes outside every field were touched.
/// </summary>
public class DcapVerifierMutationTests
{
    private static readonly DateTimeOffset Inside = DateTimeOffset.FromUnixTimeSeconds(1750400000);

    [Theory]
    [InlineData("tdx_quote", "tdx_quote_collateral.json", 1750400000L, 11)]
    [InlineData("sgx_quote", "sgx_quote_collateral.json", 1750400000L, 12)]
    [InlineData("tdx_quote_outdated", "tdx_quote_outdated_collateral.json", 1772000000L, 13)]
    public void QuoteFlipsAndTruncations_EndInTypedRejections(string quoteName, string collateralName, long time, int seed)
    {
        var original = Vectors.Quote(quoteName);
        var collateral = Vectors.Collateral(collateralName);
        var now = DateTimeOffset.FromUnixTimeSeconds(time);
        var verifier = new DcapVerifier();
        var baseline = verifier.Verify(original, collateral, now);
        var tailStart = original.Length - TdxQuote.Parse(original).TrailingBytes.Length;
        var random = new Random(seed);
        for (var i = 0; i < 1200; i++)
        {
            var bytes = (byte[])original.Clone();
            int touched;
            if (i % 4 == 3)
            {
                touched = random.Next(bytes.Length);
                bytes = bytes[..touched];
            }
            else
            {
                touched = random.Next(bytes.Length);
                bytes[touched] ^= (byte)(1 << random.Next(8));
            }

            var result = verifier.Verify(bytes, collateral, now);
            Assert.All(result.Checks.Where(c => c.Outcome == CheckOutcome.Failed), c => Assert.NotNull(c.Code));
            if (result.Accepted)
            {
                Assert.True(baseline.Accepted);
                Assert.True(touched >= tailStart, $"iteration {i}: a change at byte {touched} (before the unsigned tail at {tailStart}) was accepted");
            }

            if (TdxQuote.TryParse(bytes, out var parsed, out var error))
            {
                Assert.Equal(bytes, parsed.ToBytes());
            }
            else
            {
                Assert.True(Enum.IsDefined(error.Code));
            }
        }
    }

    [Theory]
    [InlineData("tdx_quote", "tdx_quote_collateral.json", 21)]
    [InlineData("sgx_quote", "sgx_quote_collateral.json", 22)]
    public void CollateralFlips_EndInTypedRejections(string quoteName, string collateralName, int seed)
    {
        var quote = Vectors.Quote(quoteName);
        var original = Vectors.Collateral(collateralName);
        var verifier = new DcapVerifier(new DcapVerifierOptions { CollateralCacheCapacity = 4 });
        Assert.True(verifier.Verify(quote, original, Inside).Accepted);
        var random = new Random(seed);
        for (var i = 0; i < 300; i++)
        {
            var mutated = Mutate(original, random, out var what);
            var result = verifier.Verify(quote, mutated, Inside);
            Assert.False(result.Accepted, $"iteration {i}: mutated {what} was accepted");
            Assert.NotNull(result.Error);
        }
    }

    [Fact]
    public void HexInput_Mutations_EndInTypedErrors()
    {
        var text = PrivateMl.Testing.SharedTestData.ReadBytes("tdx/dcap-qvl/tdx-quote.hex");
        var random = new Random(31);
        for (var i = 0; i < 1000; i++)
        {
            var bytes = (byte[])text.Clone();
            bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            if (i % 3 == 0)
            {
                bytes = bytes[..random.Next(bytes.Length)];
            }

            try
            {
                if (!TdxQuote.TryParse(QuoteInput.Decode(bytes), out _, out var error))
                {
                    Assert.True(Enum.IsDefined(error.Code));
                }
            }
            catch (AttestationException ex)
            {
                Assert.True(Enum.IsDefined(ex.Code));
            }
        }
    }

    private static DcapCollateral Mutate(DcapCollateral c, Random random, out string what)
    {
        static string FlipText(string s, Random r)
        {
            var chars = s.ToCharArray();
            int i;
            do
            {
                i = r.Next(chars.Length);
            }
            while (char.IsWhiteSpace(chars[i])); // whitespace between PEM lines is not content
            chars[i] = chars[i] == 'A' ? 'B' : 'A';
            return new string(chars);
        }

        static byte[] FlipBytes(byte[] b, Random r)
        {
            var copy = (byte[])b.Clone();
            copy[r.Next(copy.Length)] ^= (byte)(1 << r.Next(8));
            return copy;
        }

        switch (random.Next(9))
        {
            case 0: what = "pck_crl_issuer_chain"; return c with { PckCrlIssuerChain = FlipText(c.PckCrlIssuerChain, random) };
            case 1: what = "root_ca_crl"; return c with { RootCaCrl = FlipBytes(c.RootCaCrl, random) };
            case 2: what = "pck_crl"; return c with { PckCrl = FlipBytes(c.PckCrl, random) };
            case 3: what = "tcb_info_issuer_chain"; return c with { TcbInfoIssuerChain = FlipText(c.TcbInfoIssuerChain, random), QeIdentityIssuerChain = c.QeIdentityIssuerChain };
            case 4: what = "tcb_info"; return c with { TcbInfo = FlipText(c.TcbInfo, random) };
            case 5: what = "tcb_info_signature"; return c with { TcbInfoSignature = FlipBytes(c.TcbInfoSignature, random) };
            case 6: what = "qe_identity_issuer_chain"; return c with { QeIdentityIssuerChain = FlipText(c.QeIdentityIssuerChain, random) };
            case 7: what = "qe_identity"; return c with { QeIdentity = FlipText(c.QeIdentity, random) };
            default: what = "qe_identity_signature"; return c with { QeIdentitySignature = FlipBytes(c.QeIdentitySignature, random) };
        }
    }
}
