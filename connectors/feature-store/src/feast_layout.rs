//! Feast's own Redis layout, byte for byte, so that Feast's
//! `get_online_features` reads what the sink wrote (Feast 0.67,
//! `feast/infra/online_stores/redis.py` with `entity_key_serialization_version: 3`):
//!
//! - one hash per entity and project: the key is the serialized entity key
//!   (join keys sorted by name; a count, then each name and each value with its
//!   type and length, little-endian) followed by the project's name;
//! - in it, per feature view: a field per feature, named by the murmur3 hash of
//!   `<view>:<feature>` (4 bytes, little-endian), holding the value as a
//!   serialized `feast.types.Value`; and `_ts:<view>`, the event time as a
//!   serialized `google.protobuf.Timestamp`.
//!
//! A null feature is written as an empty value, which Feast reads as unset.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

/// `feast.types.ValueType` numbers of the entity key types.
const STRING: u32 = 2;
const INT32: u32 = 3;
const INT64: u32 = 4;

/// The field holding a view's event time.
pub fn ts_field(view: &str) -> Vec<u8> {
    format!("_ts:{view}").into_bytes()
}

/// The field holding `feature` of `view`.
pub fn feature_field(view: &str, feature: &str) -> Vec<u8> {
    murmur3_32(format!("{view}:{feature}").as_bytes(), 0)
        .to_le_bytes()
        .to_vec()
}

/// The hash key of one entity: `join_keys` are (name, column, row).
pub fn entity_key(join_keys: &[(&str, &ArrayRef)], row: usize, project: &str) -> Option<Vec<u8>> {
    let mut sorted: Vec<&(&str, &ArrayRef)> = join_keys.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64);
    out.extend((sorted.len() as u32).to_le_bytes());
    for (name, _) in &sorted {
        out.extend(STRING.to_le_bytes());
        out.extend((name.len() as u32).to_le_bytes());
        out.extend(name.as_bytes());
    }
    for (_, col) in &sorted {
        let (kind, bytes) = entity_value(col, row)?;
        out.extend(kind.to_le_bytes());
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
    }
    out.extend(project.as_bytes());
    Some(out)
}

/// An entity key column's value type in Feast, for the generated `features.py`.
pub fn entity_value_type(dt: &DataType) -> Option<&'static str> {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 => Some("ValueType.STRING"),
        DataType::Int32 => Some("ValueType.INT32"),
        DataType::Int64 => Some("ValueType.INT64"),
        _ => None,
    }
}

fn entity_value(col: &ArrayRef, row: usize) -> Option<(u32, Vec<u8>)> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => (STRING, col.as_string::<i32>().value(row).as_bytes().to_vec()),
        DataType::LargeUtf8 => (STRING, col.as_string::<i64>().value(row).as_bytes().to_vec()),
        DataType::Int32 => (
            INT32,
            col.as_primitive::<Int32Type>().value(row).to_le_bytes().to_vec(),
        ),
        DataType::Int64 => (
            INT64,
            col.as_primitive::<Int64Type>().value(row).to_le_bytes().to_vec(),
        ),
        _ => return None,
    })
}

/// A `google.protobuf.Timestamp` for an event time in microseconds.
pub fn timestamp_proto(micros: i64) -> Vec<u8> {
    let (seconds, nanos) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000) * 1000);
    let mut out = Vec::with_capacity(16);
    if seconds != 0 {
        out.push(0x08);
        varint(&mut out, seconds as u64);
    }
    if nanos != 0 {
        out.push(0x10);
        varint(&mut out, nanos as u64);
    }
    out
}

/// The serialized `feast.types.Value` of one cell, empty for a null; `None`
/// for a type Feast has no value for (validation refuses those columns).
pub fn value_proto(col: &ArrayRef, row: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    if col.is_null(row) {
        return Some(out);
    }
    let int32 = |out: &mut Vec<u8>, v: i64| {
        out.push(3 << 3);
        varint(out, v as u64);
    };
    let int64 = |out: &mut Vec<u8>, v: i64| {
        out.push(4 << 3);
        varint(out, v as u64);
    };
    match col.data_type() {
        DataType::Int8 => int32(&mut out, col.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int32(&mut out, col.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int32(&mut out, col.as_primitive::<Int32Type>().value(row).into()),
        DataType::UInt8 => int32(&mut out, col.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int32(&mut out, col.as_primitive::<UInt16Type>().value(row).into()),
        DataType::Int64 => int64(&mut out, col.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => int64(&mut out, col.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => int64(
            &mut out,
            i64::try_from(col.as_primitive::<UInt64Type>().value(row)).ok()?,
        ),
        DataType::Float32 => {
            out.push((6 << 3) | 5);
            out.extend(col.as_primitive::<Float32Type>().value(row).to_le_bytes());
        }
        DataType::Float64 => {
            out.push((5 << 3) | 1);
            out.extend(col.as_primitive::<Float64Type>().value(row).to_le_bytes());
        }
        DataType::Utf8 | DataType::LargeUtf8 => {
            let s = match col.data_type() {
                DataType::Utf8 => col.as_string::<i32>().value(row),
                _ => col.as_string::<i64>().value(row),
            };
            out.push((2 << 3) | 2);
            varint(&mut out, s.len() as u64);
            out.extend(s.as_bytes());
        }
        DataType::Boolean => {
            out.push(7 << 3);
            out.push(col.as_boolean().value(row) as u8);
        }
        DataType::Timestamp(unit, _) => {
            // Feast keeps a timestamp feature in whole seconds (truncated, as
            // its `int(datetime.timestamp())`).
            let seconds = match unit {
                TimeUnit::Second => col.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => col.as_primitive::<TimestampMillisecondType>().value(row) / 1_000,
                TimeUnit::Microsecond => {
                    col.as_primitive::<TimestampMicrosecondType>().value(row) / 1_000_000
                }
                TimeUnit::Nanosecond => {
                    col.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000_000
                }
            };
            out.push(8 << 3);
            varint(&mut out, seconds as u64);
        }
        _ => return None,
    }
    Some(out)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// MurmurHash3, x86, 32 bits: what Feast's `mmh3.hash(key, signed=False)` is.
fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, b) in tail.iter().enumerate() {
            k |= (*b as u32) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    //! Expected bytes come from Feast 0.67's own functions (`_mmh3`,
    //! `serialize_entity_key`, `Value.SerializeToString`, `Timestamp`).
    use super::*;
    use std::sync::Arc;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn field_names_are_feasts_murmur3() {
        assert_eq!(hex(&feature_field("fv", "feat")), "b3a02cda");
    }

    #[test]
    fn values_and_timestamps_are_feasts_protos() {
        let cell = |a: ArrayRef| hex(&value_proto(&a, 0).unwrap());
        assert_eq!(
            cell(Arc::new(arrow::array::Int64Array::from(vec![-5]))),
            "20fbffffffffffffffff01"
        );
        assert_eq!(
            cell(Arc::new(arrow::array::Float64Array::from(vec![1.5]))),
            "29000000000000f83f"
        );
        assert_eq!(
            cell(Arc::new(arrow::array::BooleanArray::from(vec![false]))),
            "3800"
        );
        assert_eq!(cell(Arc::new(arrow::array::StringArray::from(vec![""]))), "1200");
        assert_eq!(cell(Arc::new(arrow::array::Int64Array::from(vec![None]))), "");
        // Value(unix_timestamp_val=1700000000): whole seconds, whatever the unit.
        let seconds = "4080e2cfaa06";
        let ts = arrow::array::TimestampMillisecondArray::from(vec![1_700_000_000_999]);
        assert_eq!(cell(Arc::new(ts)), seconds);
        let ts = arrow::array::TimestampNanosecondArray::from(vec![1_700_000_000_123_456_789]);
        assert_eq!(cell(Arc::new(ts.with_timezone("UTC"))), seconds);
        assert_eq!(
            hex(&timestamp_proto(1_700_000_000_000_123)),
            "0880e2cfaa0610f8c007"
        );
        // Before 1970: seconds round down and the nanos are positive.
        assert_eq!(
            hex(&timestamp_proto(-500_000)),
            "08ffffffffffffffffff011080cab5ee01"
        );
    }

    #[test]
    fn entity_keys_sort_their_join_keys() {
        let (doc, n): (ArrayRef, ArrayRef) = (
            Arc::new(arrow::array::StringArray::from(vec!["a"])),
            Arc::new(arrow::array::Int64Array::from(vec![7])),
        );
        let key = entity_key(&[("z", &doc), ("n", &n)], 0, "p").unwrap();
        // count 2; "n", "z"; INT64 7; STRING "a"; then the project.
        assert_eq!(
            hex(&key),
            "02000000\
             02000000010000006e\
             02000000010000007a\
             04000000080000000700000000000000\
             020000000100000061\
             70"
        );
    }
}
