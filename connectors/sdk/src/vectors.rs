//! Embedding columns: `FixedSizeList<Float32, dim>`, the type a vector stage
//! makes and a vector store reads back.

use std::sync::Arc;

use arrow::array::{FixedSizeListArray, Float32Array};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;

/// The type of an embedding column of `dim` dimensions.
pub fn embedding_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
    )
}

/// `vectors` as one flat buffer of `dim` floats per row, zeros where a row
/// has none. `Err(len)`: the first vector whose length is not `dim`.
pub fn flatten<V: AsRef<[f32]>>(vectors: &[Option<V>], dim: usize) -> Result<Vec<f32>, usize> {
    let mut flat = Vec::with_capacity(vectors.len() * dim);
    for v in vectors {
        match v.as_ref().map(AsRef::as_ref) {
            Some(v) if v.len() == dim => flat.extend_from_slice(v),
            Some(v) => return Err(v.len()),
            None => flat.extend(std::iter::repeat_n(0.0, dim)),
        }
    }
    Ok(flat)
}

/// An embedding column from `flat` (see [`flatten`]); a row is null where
/// `present` says false.
pub fn column(
    flat: Vec<f32>,
    dim: usize,
    present: impl IntoIterator<Item = bool>,
) -> Result<FixedSizeListArray, ArrowError> {
    let nulls = NullBuffer::from_iter(present);
    FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
        Arc::new(Float32Array::from(flat)),
        Some(nulls).filter(|n| n.null_count() > 0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn absent_vectors_are_null_rows_and_a_wrong_length_is_refused() {
        let rows = [Some(vec![1.0, 2.0]), None, Some(vec![3.0, 4.0])];
        let flat = flatten(&rows, 2).unwrap();
        assert_eq!(flat, [1.0, 2.0, 0.0, 0.0, 3.0, 4.0]);
        let col = column(flat, 2, rows.iter().map(Option::is_some)).unwrap();
        assert_eq!(col.data_type(), &embedding_type(2));
        assert!(col.is_null(1) && col.is_valid(2));
        assert_eq!(flatten(&[Some(vec![1.0])], 2), Err(1));
    }
}
