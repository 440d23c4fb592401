using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Env;

/// <summary>
/// The <c>--env-file</c> syntax of dstack's vmm-cli.py (dstack.md §7.3): one <c>KEY=VALUE</c> per line, split at the
/// first <c>=</c>, both sides trimmed, no quote handling; blank lines and lines starting with <c>#</c> are skipped.
/// </summary>
public static class EnvFile
{
    /// <summary>Largest env file read (dstack's 1 MiB payload limit plus room for syntax).</summary>
    public const int MaxBytes = 2 * 1024 * 1024;

    /// <summary>
    /// Parses the file's text. A line without <c>=</c>, an invalid name or more than
    /// <see cref="EnvVariables.MaxItems"/> variables is an <see cref="AttestationException"/>
    /// (<see cref="ErrorCode.EnvPayloadInvalid"/>) naming the line.
    /// </summary>
    public static IReadOnlyList<EnvVariable> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > MaxBytes)
        {
            throw new AttestationException(ErrorCode.EnvPayloadInvalid, $"env file is over {MaxBytes} characters");
        }

        var variables = new List<EnvVariable>();
        var lineNumber = 0;
        foreach (var rawLine in text.AsSpan().EnumerateLines())
        {
            lineNumber++;
            var line = rawLine.Trim();
            if (line.IsEmpty || line[0] == '#')
            {
                continue;
            }

            var equals = line.IndexOf('=');
            if (equals < 0)
            {
                throw new AttestationException(ErrorCode.EnvPayloadInvalid, $"env file line {lineNumber} has no '=' (KEY=VALUE expected)");
            }

            var key = line[..equals].Trim().ToString();
            if (!EnvVariables.IsValidName(key))
            {
                throw new AttestationException(ErrorCode.EnvPayloadInvalid, $"env file line {lineNumber}: '{key}' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
            }

            if (variables.Count == EnvVariables.MaxItems)
            {
                throw new AttestationException(ErrorCode.EnvPayloadInvalid, $"env file has more than {EnvVariables.MaxItems} variables");
            }

            variables.Add(new EnvVariable(key, line[(equals + 1)..].Trim().ToString()));
        }

        return variables;
    }
}
