//! Arrow columns from rows: one helper per column type, so a [`crate::export::Row`]'s
//! `batch` is a list of (field, column) lines.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow_schema::{DataType, Field, TimeUnit};

pub(crate) fn text_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

pub(crate) fn opt_text_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// Microseconds, UTC.
pub(crate) fn time_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        nullable,
    )
}

pub(crate) fn texts<R>(rows: &[R], f: impl Fn(&R) -> &str) -> ArrayRef {
    let mut b = StringBuilder::new();
    rows.iter().for_each(|r| b.append_value(f(r)));
    Arc::new(b.finish())
}

pub(crate) fn opt_texts<R>(rows: &[R], f: impl Fn(&R) -> Option<&str>) -> ArrayRef {
    let mut b = StringBuilder::new();
    rows.iter().for_each(|r| b.append_option(f(r)));
    Arc::new(b.finish())
}

pub(crate) fn times<R>(rows: &[R], f: impl Fn(&R) -> Option<i64>) -> ArrayRef {
    let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    rows.iter().for_each(|r| b.append_option(f(r)));
    Arc::new(b.finish())
}

pub(crate) fn u32s<R>(rows: &[R], f: impl Fn(&R) -> u32) -> ArrayRef {
    let mut b = UInt32Builder::new();
    rows.iter().for_each(|r| b.append_value(f(r)));
    Arc::new(b.finish())
}

pub(crate) fn u64s<R>(rows: &[R], f: impl Fn(&R) -> u64) -> ArrayRef {
    let mut b = UInt64Builder::new();
    rows.iter().for_each(|r| b.append_value(f(r)));
    Arc::new(b.finish())
}

pub(crate) fn i64s<R>(rows: &[R], f: impl Fn(&R) -> i64) -> ArrayRef {
    let mut b = Int64Builder::new();
    rows.iter().for_each(|r| b.append_value(f(r)));
    Arc::new(b.finish())
}

pub(crate) fn f64s<R>(rows: &[R], f: impl Fn(&R) -> f64) -> ArrayRef {
    let mut b = Float64Builder::new();
    rows.iter().for_each(|r| b.append_value(f(r)));
    Arc::new(b.finish())
}

pub(crate) fn opt_f64s<R>(rows: &[R], f: impl Fn(&R) -> Option<f64>) -> ArrayRef {
    let mut b = Float64Builder::new();
    rows.iter().for_each(|r| b.append_option(f(r)));
    Arc::new(b.finish())
}

/// RFC 3339 in JSON Lines and CSV for an optional microsecond time.
#[allow(clippy::ref_option)]
pub(crate) fn opt_rfc3339<S: serde::Serializer>(
    micros: &Option<i64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match micros {
        Some(m) => s.serialize_str(&crate::export::timestamp(*m)),
        None => s.serialize_none(),
    }
}

pub(crate) fn rfc3339<S: serde::Serializer>(micros: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::export::timestamp(*micros))
}

/// A row type's columns, each with its field: the schema and the batch come from one
/// list, so they cannot disagree.
pub(crate) type Columns = Vec<(Field, ArrayRef)>;

pub(crate) fn schema_of(columns: Columns) -> Arc<arrow_schema::Schema> {
    Arc::new(arrow_schema::Schema::new(
        columns.into_iter().map(|(f, _)| f).collect::<Vec<_>>(),
    ))
}

pub(crate) fn batch_of(
    columns: Columns,
) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    arrow_array::RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), arrays)
}

/// `impl Row` for a row type with a `columns(&[Self]) -> Columns` function: its schema
/// and its batches from that one list.
macro_rules! row_from_columns {
    ($row:ty) => {
        impl $crate::export::Row for $row {
            fn schema() -> std::sync::Arc<arrow_schema::Schema> {
                $crate::columns::schema_of(Self::columns(&[]))
            }
            fn batch(rows: &[Self]) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
                $crate::columns::batch_of(Self::columns(rows))
            }
        }
    };
}
pub(crate) use row_from_columns;
