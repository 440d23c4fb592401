using System.Globalization;
using System.Text.Json;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.Tdx;

public class QuoteParserTests
{
    public static TheoryData<string> Quotes => new(Vectors.QuoteNames);

    [Theory]
    [MemberData(nameof(Quotes))]
    public void Parses_HeaderAndLayout_AsExpected(string name)
    {
        var e = Vectors.Parsed(name);
        var q = TdxQuote.Parse(Vectors.Quote(name));

        Assert.Equal(e.GetProperty("version").GetInt32(), q.Header.Version);
        Assert.Equal(e.GetProperty("attestation_key_type").GetInt32(), (int)q.Header.AttestationKeyType);
        Assert.Equal(e.GetProperty("tee_type").GetString(), $"0x{(uint)q.Header.TeeType:x8}");
        Assert.Equal(e.GetProperty("tee").GetString(), q.IsTdx ? "TDX" : "SGX");
        Assert.Equal(e.GetProperty("qe_vendor_id").GetString(), Vectors.Hex(q.Header.QeVendorId));
        Assert.Equal(e.GetProperty("user_data").GetString(), Vectors.Hex(q.Header.UserData));
        if (e.TryGetProperty("header_reserved_8_11", out var reserved))
        {
            Assert.Equal(reserved.GetString(), Vectors.Hex(q.Header.Reserved));
        }

        if (e.TryGetProperty("qe_svn", out var qeSvn))
        {
            Assert.Equal(qeSvn.GetInt32(), q.Header.QeSvn);
            Assert.Equal(e.GetProperty("pce_svn").GetInt32(), q.Header.PceSvn);
        }

        if (e.TryGetProperty("body_type", out var bodyType))
        {
            Assert.Equal(bodyType.GetInt32(), (int)q.BodyKind);
            Assert.Equal(e.GetProperty("body_size").GetUInt32(), q.BodyDescriptorSize);
        }
        else
        {
            Assert.Null(q.BodyDescriptorSize);
        }

        Assert.Equal(e.GetProperty("report_body_offset").GetInt32(), q.ReportBodyOffset);
        Assert.Equal(e.GetProperty("report_body_length").GetInt32(), q.ReportBodyLength);
        var kind = e.GetProperty("report_kind").GetString();
        Assert.Equal(kind, q.BodyKind switch { ReportBodyKind.Td10 => "TD10", ReportBodyKind.Td15 => "TD15", _ => "SGX" });
        Assert.Equal(e.GetProperty("signed_length").GetInt32(), q.SignedLength);
        Assert.Equal(e.GetProperty("bytes_after_signature_data").GetInt32(), q.TrailingBytes.Length);
        Assert.Equal(e.GetProperty("signature_data_length").GetInt32(), q.Bytes.Length - q.SignedLength - 4 - q.TrailingBytes.Length);
    }

    [Theory]
    [MemberData(nameof(Quotes))]
    public void Parses_ReportBody_AsExpected(string name)
    {
        var e = Vectors.Parsed(name);
        var q = TdxQuote.Parse(Vectors.Quote(name));
        if (q.TdReport is { } td)
        {
            Assert.Null(q.SgxReport);
            var fields = new (string Name, ReadOnlyMemory<byte> Value)[]
            {
                ("tee_tcb_svn", td.TeeTcbSvn), ("mr_seam", td.MrSeam), ("mr_signer_seam", td.MrSignerSeam),
                ("seam_attributes", td.SeamAttributes), ("td_attributes", td.TdAttributes), ("xfam", td.Xfam),
                ("mr_td", td.MrTd), ("mr_config_id", td.MrConfigId), ("mr_owner", td.MrOwner),
                ("mr_owner_config", td.MrOwnerConfig), ("rtmr0", td.Rtmr0), ("rtmr1", td.Rtmr1), ("rtmr2", td.Rtmr2),
                ("rtmr3", td.Rtmr3), ("report_data", td.ReportData),
            };
            foreach (var (field, value) in fields)
            {
                Assert.True(e.GetProperty(field).GetString() == Vectors.Hex(value), $"{name}.{field}");
            }

            Assert.Equal(e.GetProperty("report_data").GetString(), Vectors.Hex(q.ReportData));
            Assert.Equal(4, td.Rtmrs.Count);
            Assert.Equal(e.GetProperty("td_attributes_u64").GetString(), $"0x{(ulong)td.Attributes:x16}");
            Assert.Equal(e.GetProperty("xfam_u64").GetString(), $"0x{(ulong)td.XfamFeatures:x16}");
            Assert.Equal(Strings(e.GetProperty("td_attributes_set")), TdAttributeNames.Describe(td.Attributes));
            Assert.Equal(Strings(e.GetProperty("xfam_set")), TdAttributeNames.Describe(td.XfamFeatures));
            Assert.Equal(e.GetProperty("td_debug").GetBoolean(), td.IsDebug);
            if (e.TryGetProperty("tee_tcb_svn2", out var svn2))
            {
                Assert.Equal(svn2.GetString(), Vectors.Hex(td.TeeTcbSvn2!.Value));
                Assert.Equal(e.GetProperty("mr_service_td").GetString(), Vectors.Hex(td.MrServiceTd!.Value));
            }
            else
            {
                Assert.Null(td.TeeTcbSvn2);
                Assert.Null(td.MrServiceTd);
            }
        }
        else
        {
            var sgx = q.SgxReport!;
            Assert.Null(q.TdReport);
            var fields = new (string Name, ReadOnlyMemory<byte> Value)[]
            {
                ("cpu_svn", sgx.CpuSvn), ("reserved1", sgx.Reserved1), ("isv_ext_prod_id", sgx.IsvExtProdId),
                ("attributes", sgx.Attributes), ("mr_enclave", sgx.MrEnclave), ("reserved2", sgx.Reserved2),
                ("mr_signer", sgx.MrSigner), ("reserved3", sgx.Reserved3), ("config_id", sgx.ConfigId),
                ("reserved4", sgx.Reserved4), ("isv_family_id", sgx.IsvFamilyId), ("report_data", sgx.ReportData),
            };
            foreach (var (field, value) in fields)
            {
                Assert.True(e.GetProperty(field).GetString() == Vectors.Hex(value), $"{name}.{field}");
            }

            Assert.Equal(e.GetProperty("misc_select").GetString(), sgx.MiscSelect.ToString("x8", CultureInfo.InvariantCulture));
            Assert.Equal(e.GetProperty("isv_prod_id").GetInt32(), sgx.IsvProdId);
            Assert.Equal(e.GetProperty("isv_svn").GetInt32(), sgx.IsvSvn);
            Assert.Equal(e.GetProperty("config_svn").GetInt32(), sgx.ConfigSvn);
            Assert.Equal(e.GetProperty("sgx_debug").GetBoolean(), sgx.IsDebug);
        }
    }

    [Theory]
    [MemberData(nameof(Quotes))]
    public void Parses_SignatureData_AsExpected(string name)
    {
        var e = Vectors.Parsed(name);
        var s = TdxQuote.Parse(Vectors.Quote(name)).Signature;
        Assert.Equal(e.GetProperty("quote_signature").GetString(), Vectors.Hex(s.QuoteSignature));
        Assert.Equal(e.GetProperty("attestation_public_key").GetString(), Vectors.Hex(s.AttestationPublicKey));
        Assert.Equal(e.GetProperty("qe_report_signature").GetString(), Vectors.Hex(s.QeReportSignature));
        Assert.Equal(e.GetProperty("qe_auth_data").GetString(), Vectors.Hex(s.QeAuthData));
        Assert.Equal(e.GetProperty("qe_auth_data_size").GetInt32(), s.QeAuthData.Length);
        Assert.Equal(e.GetProperty("certification_data_type").GetInt32(), (int)s.CertificationData.Type);
        Assert.Equal(e.GetProperty("certification_data_size").GetInt32(), s.CertificationData.Data.Length);
        Assert.Equal(e.GetProperty("certification_data_trailing_nul_bytes").GetInt32(), s.CertificationData.Data.Span.Length - s.CertificationData.Data.Span.TrimEnd((byte)0).Length);
        if (e.TryGetProperty("outer_certification_data_type", out var outer))
        {
            Assert.Equal(outer.GetInt32(), (int?)s.OuterCertificationDataType);
            Assert.Equal(e.GetProperty("outer_certification_data_size").GetInt32(), s.OuterCertificationDataSize);
        }
        else
        {
            Assert.Null(s.OuterCertificationDataType);
        }

        var qe = e.GetProperty("qe_report");
        Assert.Equal(qe.GetProperty("cpu_svn").GetString(), Vectors.Hex(s.QeReport.CpuSvn));
        Assert.Equal(qe.GetProperty("misc_select").GetString(), s.QeReport.MiscSelect.ToString("x8", CultureInfo.InvariantCulture));
        Assert.Equal(qe.GetProperty("attributes").GetString(), Vectors.Hex(s.QeReport.Attributes));
        Assert.Equal(qe.GetProperty("mr_enclave").GetString(), Vectors.Hex(s.QeReport.MrEnclave));
        Assert.Equal(qe.GetProperty("mr_signer").GetString(), Vectors.Hex(s.QeReport.MrSigner));
        Assert.Equal(qe.GetProperty("isv_prod_id").GetInt32(), s.QeReport.IsvProdId);
        Assert.Equal(qe.GetProperty("isv_svn").GetInt32(), s.QeReport.IsvSvn);
        Assert.Equal(qe.GetProperty("report_data").GetString(), Vectors.Hex(s.QeReport.ReportData));
        Assert.Equal(384, s.QeReportBytes.Length);
    }

    [Theory]
    [MemberData(nameof(Quotes))]
    public void RoundTrips_ByteForByte(string name)
    {
        var bytes = Vectors.Quote(name);
        var q = TdxQuote.Parse(bytes);
        Assert.Equal(bytes, q.ToBytes());
        Assert.Equal(bytes.AsSpan(0, q.SignedLength).ToArray(), q.GetSignedRegion());
    }

    [Theory]
    [MemberData(nameof(Quotes))]
    public void Decodes_FileEncoding_AndQuoteHash(string name)
    {
        var info = Vectors.ExpectedJson.GetProperty("quotes").GetProperty(name);
        var file = PrivateMl.Testing.SharedTestData.ReadBytes("tdx/dcap-qvl/" + name);
        var bytes = QuoteInput.Decode(file, out var encoding);
        Assert.Equal(info.GetProperty("encoding").GetString()!.StartsWith("hex", StringComparison.Ordinal) ? QuoteEncoding.Hex : QuoteEncoding.Binary, encoding);
        Assert.Equal(info.GetProperty("quote_size").GetInt32(), bytes.Length);
        Assert.Equal(info.GetProperty("quote_sha256").GetString(), Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)));

        // The same quote as base64 text, with a trailing newline.
        var b64 = System.Text.Encoding.ASCII.GetBytes(Convert.ToBase64String(bytes) + "\n");
        Assert.Equal(bytes, QuoteInput.Decode(b64, out var b64Encoding));
        Assert.Equal(QuoteEncoding.Base64, b64Encoding);
    }

    [Theory]
    [InlineData("", ErrorCode.MalformedInput)]
    [InlineData("0x", ErrorCode.MalformedInput)]
    [InlineData("not a quote!", ErrorCode.MalformedInput)]
    [InlineData("0xabc", ErrorCode.MalformedInput)]
    public void Rejects_TextThatIsNeitherHexNorBase64(string text, ErrorCode expected)
    {
        var ex = Assert.Throws<AttestationException>(() => QuoteInput.Decode(System.Text.Encoding.ASCII.GetBytes(text)));
        Assert.Equal(expected, ex.Code);
    }

    [Fact]
    public void Rejects_InputAboveLimit_BeforeDecoding()
    {
        var ex = Assert.Throws<AttestationException>(() => QuoteInput.Decode(new byte[QuoteLimits.MaxEncodedInputSize + 1]));
        Assert.Equal(ErrorCode.QuoteTooLarge, ex.Code);
        var parse = Assert.Throws<AttestationException>(() => TdxQuote.Parse(new byte[QuoteLimits.MaxQuoteSize + 1]));
        Assert.Equal(ErrorCode.QuoteTooLarge, parse.Code);
    }

    public static TheoryData<string, int, byte[], ErrorCode> Tampered => new()
    {
        { "version_2", 0, [2, 0], ErrorCode.UnsupportedQuoteVersion },
        { "version_6", 0, [6, 0], ErrorCode.UnsupportedQuoteVersion },
        { "key_type_p384", 2, [3, 0], ErrorCode.UnsupportedAttestationKeyType },
        { "tee_type_unknown", 4, [0x82, 0, 0, 0], ErrorCode.UnsupportedTeeType },
        { "sig_data_len_too_large", 632, [0xff, 0xff, 0, 0], ErrorCode.QuoteTruncated },
        { "sig_data_len_above_limit", 632, [0xff, 0xff, 0xff, 0x7f], ErrorCode.FieldTooLarge },
        { "outer_cert_type_5", 636 + 128, [5, 0], ErrorCode.UnsupportedCertificationDataType },
        { "outer_cert_size_off_by_one", 636 + 130, [0x47, 0x10, 0, 0], ErrorCode.MalformedCertificationData },
        { "qe_auth_size_above_limit", 636 + 134 + 448, [0xff, 0xff], ErrorCode.FieldTooLarge },
        { "qe_auth_size_past_end", 636 + 134 + 448, [0x00, 0x10], ErrorCode.MalformedCertificationData },
        { "inner_cert_type_0", 636 + 134 + 450 + 32, [0, 0], ErrorCode.UnsupportedCertificationDataType },
        { "inner_cert_size_too_small", 636 + 134 + 452 + 32, [0x5d, 0x0e, 0, 0], ErrorCode.MalformedCertificationData },
    };

    [Theory]
    [MemberData(nameof(Tampered))]
    public void Rejects_TamperedStructure_WithTypedError(string defect, int offset, byte[] value, ErrorCode expected)
    {
        var bytes = Vectors.Quote("tdx_quote");
        value.CopyTo(bytes, offset);
        var ok = TdxQuote.TryParse(bytes, out _, out var error);
        Assert.False(ok, defect);
        Assert.Equal(expected, error!.Code);
    }

    [Fact]
    public void Rejects_V5_WithBodyTypeOfOtherTee()
    {
        var bytes = Vectors.Quote("tdx_quote_outdated");
        bytes[48] = 1; // SGX body in a TDX quote
        Assert.False(TdxQuote.TryParse(bytes, out _, out var error));
        Assert.Equal(ErrorCode.UnsupportedBodyType, error!.Code);
        bytes[48] = 4; // TD 1.5 Ex: not supported
        Assert.False(TdxQuote.TryParse(bytes, out _, out error));
        Assert.Equal(ErrorCode.UnsupportedBodyType, error!.Code);
    }

    [Fact]
    public void Accepts_QeAuthData_AtLimit_AndRejects_OneAbove()
    {
        Assert.True(QuoteLimits.MaxQeAuthDataSize < ushort.MaxValue);
        var bytes = Vectors.Quote("tdx_quote");
        var at = 636 + 134 + 448;
        BitConverter.GetBytes((ushort)(QuoteLimits.MaxQeAuthDataSize + 1)).CopyTo(bytes, at);
        Assert.False(TdxQuote.TryParse(bytes, out _, out var error));
        Assert.Equal(ErrorCode.FieldTooLarge, error!.Code);
        BitConverter.GetBytes((ushort)QuoteLimits.MaxQeAuthDataSize).CopyTo(bytes, at);
        Assert.False(TdxQuote.TryParse(bytes, out _, out error));
        Assert.Equal(ErrorCode.MalformedCertificationData, error!.Code); // within the limit, but past the end
    }

    [Fact]
    public void Rejects_EveryTruncation_OfTheSignatureData()
    {
        var bytes = Vectors.Quote("sgx_quote"); // no trailing bytes: every cut removes signed-over structure
        for (var length = 0; length < bytes.Length; length += 97)
        {
            Assert.False(TdxQuote.TryParse(bytes.AsSpan(0, length), out _, out var error), $"length {length}");
            Assert.Contains(error!.Code, new[] { ErrorCode.QuoteTruncated, ErrorCode.MalformedCertificationData });
        }
    }

    private static List<string> Strings(JsonElement array) => array.EnumerateArray().Select(x => x.GetString()!).ToList();
}
