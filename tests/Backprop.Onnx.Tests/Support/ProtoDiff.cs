using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Backprop.Onnx.Tests.Support;

/// <summary>
/// Field-by-field comparison of two protobuf messages through their descriptors, naming the first field that differs
/// (e.g. <c>graph.node[3].attribute[0].i</c>). A scalar field written with its default value equals an absent one (ONNX
/// gives the two the same meaning: <c>domain: ""</c> is the default domain); a message field's presence counts (an
/// absent <c>shape</c> is unknown rank, an empty one a scalar).
/// </summary>
internal static class ProtoDiff
{
    /// <summary>Every difference (at most <paramref name="limit"/>) between the two messages of the same type.</summary>
    public static List<string> Differences(IMessage a, IMessage b, int limit = 10)
    {
        var found = new List<string>();
        Walk(a, b, "", found, limit);
        return found;
    }

    /// <summary>Removes, in place and throughout the message tree, the fields <paramref name="clear"/> selects.</summary>
    public static void Strip(IMessage message, Func<IMessage, FieldDescriptor, bool> clear)
    {
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            if (clear(message, field)) { field.Accessor.Clear(message); continue; }
            if (field.FieldType != FieldType.Message) continue;
            if (field.IsRepeated)
                foreach (var item in (IList)field.Accessor.GetValue(message)) Strip((IMessage)item, clear);
            else if (field.Accessor.GetValue(message) is IMessage child)
                Strip(child, clear);
        }
    }

    private static void Walk(IMessage a, IMessage b, string path, List<string> found, int limit)
    {
        foreach (var field in a.Descriptor.Fields.InFieldNumberOrder())
        {
            if (found.Count >= limit) return;
            string at = path.Length == 0 ? field.Name : $"{path}.{field.Name}";
            if (field.IsRepeated)
            {
                var x = (IList)field.Accessor.GetValue(a);
                var y = (IList)field.Accessor.GetValue(b);
                if (x.Count != y.Count) found.Add($"{at}: {x.Count} items != {y.Count} items");
                for (int i = 0; i < Math.Min(x.Count, y.Count); i++) Value(field, x[i], y[i], $"{at}[{i}]", found, limit);
                continue;
            }
            if (field.FieldType != FieldType.Message)
            {
                Value(field, field.Accessor.GetValue(a), field.Accessor.GetValue(b), at, found, limit);
                continue;
            }
            bool hasA = field.Accessor.GetValue(a) is not null, hasB = field.Accessor.GetValue(b) is not null;
            if (hasA != hasB) found.Add($"{at}: {(hasA ? "set" : "absent")} != {(hasB ? "set" : "absent")}");
            else if (hasA) Value(field, field.Accessor.GetValue(a), field.Accessor.GetValue(b), at, found, limit);
        }
    }

    private static void Value(FieldDescriptor field, object? x, object? y, string at, List<string> found, int limit)
    {
        if (field.FieldType == FieldType.Message)
        {
            if (x is IMessage mx && y is IMessage my) Walk(mx, my, at, found, limit);
            else if (!Equals(x, y)) found.Add($"{at}: message presence differs");
            return;
        }
        if (x is float fx && y is float fy ? BitConverter.SingleToInt32Bits(fx) == BitConverter.SingleToInt32Bits(fy)
            : x is double dx && y is double dy ? BitConverter.DoubleToInt64Bits(dx) == BitConverter.DoubleToInt64Bits(dy)
            : Equals(x, y)) return;
        found.Add($"{at}: {Show(x)} != {Show(y)}");
    }

    private static string Show(object? v) => v switch
    {
        null => "null",
        ByteString b => $"<{b.Length} bytes>",
        string s => $"'{(s.Length > 60 ? s[..60] + "…" : s)}'",
        _ => v.ToString() ?? "",
    };
}
