namespace Backprop.Onnx.Tests.Import;

/// <summary>
/// Seeded mutations of serialized protobuf messages for fuzzing the importer: bit flips, truncations, edits of varint
/// values and of length fields (found by scanning the wire format, nested messages included), random byte insertions and
/// duplicated fields. The same seed and input always give the same mutation.
/// </summary>
internal static class ModelMutator
{
    /// <summary>The mutation kinds, in the order a seed picks them.</summary>
    public static readonly string[] Kinds = ["bit flip", "truncation", "varint edit", "length edit", "byte insertion", "field duplication"];

    /// <summary>One mutated copy of <paramref name="original"/> and a description that reproduces it.</summary>
    public static (byte[] Bytes, string Kind, string Description) Mutate(byte[] original, int seed)
    {
        var random = new Random(seed);
        var fields = ProtoWire.Scan(original);
        string kind = Kinds[random.Next(Kinds.Length)];
        switch (kind)
        {
            case "bit flip":
            {
                var bytes = (byte[])original.Clone();
                var flips = new List<string>();
                for (int i = random.Next(1, 5); i > 0; i--)
                {
                    int at = random.Next(bytes.Length), bit = random.Next(8);
                    bytes[at] ^= (byte)(1 << bit);
                    flips.Add($"{at}:{bit}");
                }
                return (bytes, kind, $"flip bits (byte:bit) {string.Join(", ", flips)}");
            }
            case "truncation":
            {
                int length = random.Next(original.Length);
                return (original[..length], kind, $"truncate to {length} of {original.Length} bytes");
            }
            case "varint edit" when fields.Any(f => f.WireType == 0):
            {
                var candidates = fields.Where(f => f.WireType == 0).ToList();
                var f = candidates[random.Next(candidates.Count)];
                ulong value = HostileValues[random.Next(HostileValues.Length)];
                if (value == Random) value = (ulong)random.Next(0, 64);
                return (Splice(original, f.ValueStart, f.ValueEnd, ProtoWire.Varint(value)), kind,
                    $"varint of field {f.Number} at byte {f.ValueStart}: {ProtoWire.ReadVarint(original, f.ValueStart).Value} -> {(long)value}");
            }
            case "length edit" when fields.Any(f => f.WireType == 2):
            {
                var candidates = fields.Where(f => f.WireType == 2).ToList();
                var f = candidates[random.Next(candidates.Count)];
                ulong old = ProtoWire.ReadVarint(original, f.ValueStart).Value;
                ulong[] choices = [0, old + 1, old == 0 ? 0 : old - 1, old * 2, (ulong)original.Length, int.MaxValue, uint.MaxValue, long.MaxValue, ulong.MaxValue, (ulong)random.Next(0, 256)];
                ulong value = choices[random.Next(choices.Length)];
                return (Splice(original, f.ValueStart, f.PayloadStart, ProtoWire.Varint(value)), kind,
                    $"length of field {f.Number} at byte {f.ValueStart}: {old} -> {(long)value}");
            }
            case "field duplication" when fields.Any(f => f.WireType == 2):
            {
                var candidates = fields.Where(f => f.WireType == 2).ToList();
                var f = candidates[random.Next(candidates.Count)];
                byte[] copy = original[f.TagStart..f.End];
                return (Splice(original, f.End, f.End, copy), kind, $"duplicate field {f.Number} at bytes {f.TagStart}..{f.End}");
            }
            default:
            {
                int at = random.Next(original.Length + 1);
                var inserted = new byte[random.Next(1, 17)];
                random.NextBytes(inserted);
                return (Splice(original, at, at, inserted), "byte insertion", $"insert {Convert.ToHexString(inserted)} at byte {at}");
            }
        }
    }

    private const ulong Random = 0xDEAD_BEEF_0000_0001;

    /// <summary>Values that break size arithmetic: zero, negatives (as 10-byte varints), 2^31, 2^32, 2^40, 2^62, extremes.</summary>
    private static readonly ulong[] HostileValues =
        [0, 1, unchecked((ulong)-1L), unchecked((ulong)-2L), int.MaxValue, 1UL << 31, 1UL << 32, 1UL << 40, 1UL << 62, long.MaxValue, unchecked((ulong)long.MinValue), 24, 99, Random, Random];

    private static byte[] Splice(byte[] bytes, int start, int end, byte[] replacement) =>
        [.. bytes.AsSpan(0, start), .. replacement, .. bytes.AsSpan(end)];
}

/// <summary>A scanner of the protobuf wire format that finds every field, descending into payloads that parse as messages.</summary>
internal static class ProtoWire
{
    /// <summary>
    /// One field: where its tag starts, where its value starts (the length varint for wire type 2), where a
    /// length-delimited payload starts, and where the field ends.
    /// </summary>
    public readonly record struct Field(int Number, int WireType, int TagStart, int ValueStart, int ValueEnd, int PayloadStart, int End);

    /// <summary>Every field of the message and of every nested payload that parses as a message.</summary>
    public static List<Field> Scan(byte[] bytes)
    {
        var fields = new List<Field>();
        TryScan(bytes, 0, bytes.Length, fields, depth: 0);
        return fields;
    }

    private static bool TryScan(byte[] bytes, int start, int end, List<Field> into, int depth)
    {
        var found = new List<Field>();
        int at = start;
        while (at < end)
        {
            int tagStart = at;
            var (tag, afterTag) = ReadVarint(bytes, at, end);
            if (afterTag < 0 || tag >> 3 == 0 || tag >> 3 > 536_870_911) return false;
            int wire = (int)(tag & 7);
            at = afterTag;
            switch (wire)
            {
                case 0:
                {
                    var (_, next) = ReadVarint(bytes, at, end);
                    if (next < 0) return false;
                    found.Add(new((int)(tag >> 3), 0, tagStart, at, next, next, next));
                    at = next;
                    break;
                }
                case 1 or 5:
                {
                    int size = wire == 1 ? 8 : 4;
                    if (end - at < size) return false;
                    found.Add(new((int)(tag >> 3), wire, tagStart, at, at + size, at + size, at + size));
                    at += size;
                    break;
                }
                case 2:
                {
                    var (length, payload) = ReadVarint(bytes, at, end);
                    if (payload < 0 || length > (ulong)(end - payload)) return false;
                    int payloadEnd = payload + (int)length;
                    found.Add(new((int)(tag >> 3), 2, tagStart, at, payload, payload, payloadEnd));
                    at = payloadEnd;
                    break;
                }
                default:
                    return false;
            }
        }
        into.AddRange(found);
        if (depth < 32)
            foreach (var f in found)
                if (f.WireType == 2 && f.End > f.PayloadStart) TryScan(bytes, f.PayloadStart, f.End, into, depth + 1);
        return true;
    }

    /// <summary>The varint at <paramref name="at"/> and the offset after it; offset -1 when it is malformed or runs past the end.</summary>
    public static (ulong Value, int Next) ReadVarint(byte[] bytes, int at, int end = -1)
    {
        if (end < 0) end = bytes.Length;
        ulong value = 0;
        for (int shift = 0; shift < 70 && at < end; shift += 7)
        {
            byte b = bytes[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return (value, at);
        }
        return (0, -1);
    }

    /// <summary>The varint encoding of <paramref name="value"/>.</summary>
    public static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>(10);
        do
        {
            byte b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? b : (byte)(b | 0x80));
        } while (value != 0);
        return [.. bytes];
    }
}
