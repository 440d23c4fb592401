using System.Globalization;
using System.Text;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace PrivateMl.Gateway.Operations;

/// <summary>
/// An OpenTelemetry exporter, collected on demand (a plain <see cref="BaseExportingMetricReader"/>, no periodic push), that writes the collected metrics of one gateway in the Prometheus text
/// exposition format (0.0.4), so <c>/v1/metrics</c> can serve them right after the upstream's own metrics.
/// OpenTelemetry's Prometheus exporter exists only as a beta (1.20.1-beta.1) and owns the whole response, which would
/// not let the upstream's text be merged in; this one is fed by the stable SDK's <see cref="MetricReader"/>.
/// Names follow the Prometheus conventions for OpenTelemetry instruments: dots become underscores, unit <c>s</c>
/// adds <c>_seconds</c>, monotonic sums add <c>_total</c>; up-down counters are gauges; histograms have cumulative
/// <c>_bucket</c> lines, <c>_sum</c> and <c>_count</c>.
/// </summary>
internal sealed class PrometheusTextExporter : BaseExporter<Metric>
{
    private readonly Lock _gate = new();
    private readonly string _instanceId;
    private StringBuilder? _target;

    public PrometheusTextExporter(string instanceId)
    {
        _instanceId = instanceId;
        Reader = new BaseExportingMetricReader(this) { TemporalityPreference = MetricReaderTemporalityPreference.Cumulative };
    }

    /// <summary>The reader to register on the meter provider.</summary>
    public MetricReader Reader { get; }

    /// <summary>Collects now and appends this gateway's metrics to <paramref name="text"/>.</summary>
    public void WriteTo(StringBuilder text)
    {
        lock (_gate)
        {
            _target = text;
            try
            {
                Reader.Collect();
            }
            finally
            {
                _target = null;
            }
        }
    }

    public override ExportResult Export(in Batch<Metric> batch)
    {
        var text = _target;
        if (text is null)
        {
            return ExportResult.Success;
        }

        foreach (var metric in batch)
        {

            if (IsThisInstance(metric))
            {
                Write(text, metric);
            }
        }

        return ExportResult.Success;
    }

    private bool IsThisInstance(Metric metric)
    {
        if (metric.MeterTags is null)
        {
            return false;
        }

        foreach (var tag in metric.MeterTags)
        {
            if (tag.Key == GatewayMetrics.InstanceTag && tag.Value as string == _instanceId)
            {
                return true;
            }
        }

        return false;
    }

    internal static string PrometheusName(Metric metric)
    {
        var name = new StringBuilder(metric.Name.Length + 16);
        foreach (var c in metric.Name)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or ':' ? c : '_');
        }

        if (metric.Unit == "s" && !metric.Name.EndsWith("_seconds", StringComparison.Ordinal))
        {
            name.Append("_seconds");
        }

        if (metric.MetricType is MetricType.LongSum or MetricType.DoubleSum)
        {
            name.Append("_total");
        }

        return name.ToString();
    }

    private static void Write(StringBuilder text, Metric metric)
    {
        var name = PrometheusName(metric);
        var type = metric.MetricType switch
        {
            MetricType.LongSum or MetricType.DoubleSum => "counter",
            MetricType.Histogram => "histogram",
            MetricType.LongSumNonMonotonic or MetricType.DoubleSumNonMonotonic or MetricType.LongGauge or MetricType.DoubleGauge => "gauge",
            _ => null,
        };
        if (type is null)
        {
            return;
        }

        text.Append("# HELP ").Append(name).Append(' ').Append(metric.Description.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
        text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            var labels = Labels(point.Tags);
            switch (metric.MetricType)
            {
                case MetricType.LongSum or MetricType.LongSumNonMonotonic:
                    Sample(text, name, labels, null, point.GetSumLong().ToString(CultureInfo.InvariantCulture));
                    break;
                case MetricType.DoubleSum or MetricType.DoubleSumNonMonotonic:
                    Sample(text, name, labels, null, Number(point.GetSumDouble()));
                    break;
                case MetricType.LongGauge:
                    Sample(text, name, labels, null, point.GetGaugeLastValueLong().ToString(CultureInfo.InvariantCulture));
                    break;
                case MetricType.DoubleGauge:
                    Sample(text, name, labels, null, Number(point.GetGaugeLastValueDouble()));
                    break;
                case MetricType.Histogram:
                    long cumulative = 0;
                    foreach (var bucket in point.GetHistogramBuckets())
                    {
                        cumulative += bucket.BucketCount;
                        var le = double.IsPositiveInfinity(bucket.ExplicitBound) ? "+Inf" : Number(bucket.ExplicitBound);
                        Sample(text, name + "_bucket", labels, "le=\"" + le + "\"", cumulative.ToString(CultureInfo.InvariantCulture));
                    }

                    Sample(text, name + "_sum", labels, null, Number(point.GetHistogramSum()));
                    Sample(text, name + "_count", labels, null, point.GetHistogramCount().ToString(CultureInfo.InvariantCulture));
                    break;
            }
        }
    }

    private static string? Labels(ReadOnlyTagCollection tags)
    {
        if (tags.Count == 0)
        {
            return null;
        }

        var labels = new StringBuilder();
        foreach (var tag in tags)
        {
            if (labels.Length > 0)
            {
                labels.Append(',');
            }

            foreach (var c in tag.Key)
            {
                labels.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
            }

            var value = Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "";
            labels.Append("=\"").Append(value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('"');
        }

        return labels.ToString();
    }

    private static void Sample(StringBuilder text, string name, string? labels, string? extra, string value)
    {
        text.Append(name);
        if (labels is not null || extra is not null)
        {
            text.Append('{').Append(labels);
            if (labels is not null && extra is not null)
            {
                text.Append(',');
            }

            text.Append(extra).Append('}');
        }

        text.Append(' ').Append(value).Append('\n');
    }

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
