//! The event stream exported for an analyst's own tools: one row per event with its
//! envelope and its payload as JSON, to JSON Lines, CSV or Parquet.
//!
//! - **Streaming, bounded memory.** Messages are read with an ordered consumer and each
//!   row is written as it comes; Parquet buffers one row group ([`ROW_GROUP`] rows) at
//!   a time. Memory does not grow with the stream.
//! - **Atomic.** Rows go to `<out>.partial`, renamed to `<out>` only when the file is
//!   complete; a failed export removes it. A file at `<out>` is always whole.
//! - **Personal data.** Without `pii`, payload text is kept only under field names known
//!   to hold none by `crm_events::personal` (the one classification of every payload
//!   field: stages, SKUs, channels, owners...); every other text value, present or
//!   added later, becomes `"[personal data]"`. Default deny.
//! - **Types.** Parquet columns are typed: positions and versions unsigned integers,
//!   `occurred_at` / `recorded_at` timestamps (microseconds, UTC); JSON Lines and CSV
//!   write timestamps as RFC 3339. Money stays as the payload has it: integer minor
//!   units with the currency.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_array::builder::{
    StringBuilder, TimestampMicrosecondBuilder, UInt16Builder, UInt64Builder,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use crm_audit::connect::Source;
use crm_events::Envelope;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::AnalystError;

/// Rows per Parquet row group: what the writer holds in memory.
pub const ROW_GROUP: usize = 16_384;

/// A file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            other => Err(format!("format {other:?}: jsonl, csv or parquet")),
        }
    }
}

/// Which events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Business time (`occurred_at`) in `[from, to)`, microseconds.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Event types starting with one of these (e.g. `customer.order`); all when empty.
    pub types: Vec<String>,
}

impl EventFilter {
    fn admits(&self, e: &Envelope) -> bool {
        let at = e.meta.occurred_at.0;
        self.from.is_none_or(|f| at >= f)
            && self.to.is_none_or(|t| at < t)
            && (self.types.is_empty() || self.types.iter().any(|p| e.event_type.starts_with(p)))
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Exported {
    pub path: String,
    pub rows: u64,
    /// The stream position the export covers: for events the stream's last sequence at
    /// the start (every message up to it read), for a read model its checkpoint.
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// One event as exported.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EventRow {
    pub seq: u64,
    pub index: u16,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
    pub event_type: String,
    pub schema_version: u16,
    #[serde(serialize_with = "rfc3339")]
    pub occurred_at: i64,
    #[serde(serialize_with = "rfc3339")]
    pub recorded_at: i64,
    pub actor: String,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub hash: String,
    pub prev_hash: String,
    /// The payload as JSON text.
    pub payload: String,
}

fn rfc3339<S: serde::Serializer>(micros: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp(*micros))
}

/// RFC 3339 with microseconds, UTC.
#[must_use]
pub fn timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

impl EventRow {
    /// The row of `e`, the `index`th event of the message at `seq`.
    #[must_use]
    pub fn of(seq: u64, index: u16, e: &Envelope, pii: bool) -> Self {
        let (event_type, _, mut payload) = crm_events::payload_json(&e.event);
        readable(&mut payload, event_type, &mut String::new(), pii);
        Self {
            seq,
            index,
            aggregate_type: e.aggregate.kind().name().to_owned(),
            aggregate_id: e.aggregate.uuid().to_string(),
            version: e.meta.version,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            occurred_at: e.meta.occurred_at.0,
            recorded_at: e.meta.recorded_at.0,
            actor: e.meta.actor.label(),
            command_id: e.meta.command_id.to_string(),
            correlation_id: e.meta.correlation_id.to_string(),
            causation_id: e.meta.causation_id.map(|c| c.to_string()),
            hash: e.hash.to_string(),
            prev_hash: e.meta.prev_hash.to_string(),
            payload: payload.to_string(),
        }
    }
}

/// Makes the stored shape readable and, without `pii`, withholds personal text: ids
/// (16 bytes in the wire shape) become UUID strings and currency codes (3 bytes) text;
/// a text value is kept only when `crm_events::personal` lists its field as not
/// personal (default deny). `path` is the field's path in the list's form (`a.b`,
/// `lines[].sku`), one buffer grown and cut back on the way down.
fn readable(v: &mut serde_json::Value, event_type: &str, path: &mut String, pii: bool) {
    use serde_json::Value;
    let bytes = |items: &[Value]| -> Option<Vec<u8>> {
        items
            .iter()
            .map(|i| i.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect()
    };
    match v {
        Value::Array(items) if items.len() == 16 && bytes(items).is_some() => {
            let b = bytes(items).unwrap_or_default();
            *v = Value::String(uuid::Uuid::from_slice(&b).unwrap_or_default().to_string());
        }
        Value::Array(items) if path.ends_with("currency") && bytes(items).is_some() => {
            let b = bytes(items).unwrap_or_default();
            *v = Value::String(String::from_utf8_lossy(&b).into_owned());
        }
        Value::String(s) if !pii && !crm_events::personal::may_show(event_type, path) => {
            *s = "[personal data]".to_owned();
        }
        Value::Array(items) => {
            let len = path.len();
            path.push_str("[]");
            items
                .iter_mut()
                .for_each(|i| readable(i, event_type, path, pii));
            path.truncate(len);
        }
        Value::Object(fields) => {
            let len = path.len();
            for (k, v) in fields.iter_mut() {
                if len > 0 {
                    path.push('.');
                }
                path.push_str(k);
                readable(v, event_type, path, pii);
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// A row type an export writes: its Parquet schema and how a batch of rows becomes
/// columns (JSON Lines and CSV use its `Serialize`).
pub trait Row: serde::Serialize + Clone {
    fn schema() -> Arc<Schema>;
    /// # Errors
    /// Columns that do not fit the schema (a bug).
    fn batch(rows: &[Self]) -> Result<RecordBatch, arrow_schema::ArrowError>;
}

enum Sink<R> {
    Jsonl(BufWriter<File>),
    Csv(Box<csv::Writer<File>>),
    Parquet(Box<ArrowWriter<File>>, Vec<R>),
}

/// A file being exported: rows go to `<out>.partial`, renamed to `<out>` by
/// [`RowWriter::finish`]; dropped unfinished, the partial file is removed.
pub struct RowWriter<R: Row> {
    out: PathBuf,
    partial: PathBuf,
    sink: Option<Sink<R>>,
    rows: u64,
    started: Instant,
}

pub(crate) fn io_error(out: &Path, e: impl std::fmt::Display) -> AnalystError {
    AnalystError::Directory {
        dir: out.display().to_string(),
        message: e.to_string(),
    }
}

impl<R: Row> RowWriter<R> {
    /// Creates `<out>.partial`.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(out: &Path, format: Format) -> Result<Self, AnalystError> {
        let partial = partial_path(out);
        let file = File::create(&partial).map_err(|e| io_error(out, e))?;
        let sink = match format {
            Format::Jsonl => Sink::Jsonl(BufWriter::new(file)),
            Format::Csv => Sink::Csv(Box::new(csv::Writer::from_writer(file))),
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_max_row_group_row_count(Some(ROW_GROUP))
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                let writer = ArrowWriter::try_new(file, R::schema(), Some(props))
                    .map_err(|e| io_error(out, e))?;
                Sink::Parquet(Box::new(writer), Vec::with_capacity(ROW_GROUP))
            }
        };
        Ok(Self {
            out: out.to_path_buf(),
            partial,
            sink: Some(sink),
            rows: 0,
            started: Instant::now(),
        })
    }

    /// Writes one row.
    ///
    /// # Errors
    /// The file.
    pub fn write(&mut self, row: &R) -> Result<(), AnalystError> {
        let out = &self.out;
        match self.sink.as_mut() {
            Some(Sink::Jsonl(w)) => {
                serde_json::to_writer(&mut *w, row).map_err(|e| io_error(out, e))?;
                w.write_all(b"\n").map_err(|e| io_error(out, e))?;
            }
            Some(Sink::Csv(w)) => w.serialize(row).map_err(|e| io_error(out, e))?,
            Some(Sink::Parquet(w, rows)) => {
                rows.push(row.clone());
                if rows.len() >= ROW_GROUP {
                    let batch = R::batch(rows).map_err(|e| io_error(out, e))?;
                    rows.clear();
                    w.write(&batch).map_err(|e| io_error(out, e))?;
                }
            }
            None => {}
        }
        self.rows += 1;
        Ok(())
    }

    /// Completes the file and renames it to `<out>`.
    ///
    /// # Errors
    /// The file.
    pub fn finish(mut self, messages: u64) -> Result<Exported, AnalystError> {
        let out = self.out.clone();
        match self.sink.take() {
            Some(Sink::Jsonl(mut w)) => w.flush().map_err(|e| io_error(&out, e))?,
            Some(Sink::Csv(mut w)) => w.flush().map_err(|e| io_error(&out, e))?,
            Some(Sink::Parquet(mut w, rows)) => {
                if !rows.is_empty() {
                    let batch = R::batch(&rows).map_err(|e| io_error(&out, e))?;
                    w.write(&batch).map_err(|e| io_error(&out, e))?;
                }
                w.close().map_err(|e| io_error(&out, e))?;
            }
            None => {}
        }
        std::fs::rename(&self.partial, &out).map_err(|e| io_error(&out, e))?;
        Ok(Exported {
            path: out.display().to_string(),
            rows: self.rows,
            messages,
            bytes: std::fs::metadata(&out).map_or(0, |m| m.len()),
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

impl<R: Row> std::fmt::Debug for RowWriter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowWriter")
            .field("partial", &self.partial)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<R: Row> Drop for RowWriter<R> {
    fn drop(&mut self) {
        if self.sink.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl Row for EventRow {
    fn schema() -> Arc<Schema> {
        event_schema()
    }
    fn batch(rows: &[Self]) -> Result<RecordBatch, arrow_schema::ArrowError> {
        batch(rows)
    }
}

/// The Parquet schema of the event rows.
#[must_use]
pub fn event_schema() -> Arc<Schema> {
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    let time = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::UInt64, false),
        Field::new("index", DataType::UInt16, false),
        text("aggregate_type"),
        text("aggregate_id"),
        Field::new("version", DataType::UInt64, false),
        text("event_type"),
        Field::new("schema_version", DataType::UInt16, false),
        time("occurred_at"),
        time("recorded_at"),
        text("actor"),
        text("command_id"),
        text("correlation_id"),
        Field::new("causation_id", DataType::Utf8, true),
        text("hash"),
        text("prev_hash"),
        text("payload"),
    ]))
}

fn batch(rows: &[EventRow]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    let mut seq = UInt64Builder::with_capacity(n);
    let mut index = UInt16Builder::with_capacity(n);
    let mut version = UInt64Builder::with_capacity(n);
    let mut schema_version = UInt16Builder::with_capacity(n);
    let mut occurred = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut recorded = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut texts: Vec<StringBuilder> = (0..10).map(|_| StringBuilder::new()).collect();
    for r in rows {
        seq.append_value(r.seq);
        index.append_value(r.index);
        version.append_value(r.version);
        schema_version.append_value(r.schema_version);
        occurred.append_value(r.occurred_at);
        recorded.append_value(r.recorded_at);
        let values = [
            Some(&r.aggregate_type),
            Some(&r.aggregate_id),
            Some(&r.event_type),
            Some(&r.actor),
            Some(&r.command_id),
            Some(&r.correlation_id),
            r.causation_id.as_ref(),
            Some(&r.hash),
            Some(&r.prev_hash),
            Some(&r.payload),
        ];
        for (b, v) in texts.iter_mut().zip(values) {
            b.append_option(v);
        }
    }
    let mut t = texts
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as arrow_array::ArrayRef);
    let mut next = || t.next().expect("ten text columns");
    let (aggregate_type, aggregate_id, event_type) = (next(), next(), next());
    let (actor, command_id, correlation_id, causation_id) = (next(), next(), next(), next());
    let (hash, prev_hash, payload) = (next(), next(), next());
    RecordBatch::try_new(
        event_schema(),
        vec![
            Arc::new(seq.finish()),
            Arc::new(index.finish()),
            aggregate_type,
            aggregate_id,
            Arc::new(version.finish()),
            event_type,
            Arc::new(schema_version.finish()),
            Arc::new(occurred.finish()),
            Arc::new(recorded.finish()),
            actor,
            command_id,
            correlation_id,
            causation_id,
            hash,
            prev_hash,
            payload,
        ],
    )
}

pub(crate) fn partial_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

/// Exports the events `filter` admits, from the first message to the stream's last
/// sequence at the start, to `out` in `format`; `progress(read, last)` after each
/// message.
///
/// # Errors
/// The stream, or the file (nothing is left at `out` then).
pub async fn export_events(
    source: &Source,
    filter: &EventFilter,
    format: Format,
    out: &Path,
    pii: bool,
    mut progress: impl FnMut(u64, u64),
) -> Result<Exported, AnalystError> {
    let nats = |e: String| AnalystError::Stream(crm_audit::AuditError::Nats(e));
    let mut stream = source.stream().await?;
    let last = stream
        .info()
        .await
        .map_err(|e| nats(e.to_string()))?
        .state
        .last_sequence;
    let mut rows = RowWriter::<EventRow>::create(out, format)?;
    if last > 0 {
        let mut messages = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .map_err(|e| nats(e.to_string()))?
            .messages()
            .await
            .map_err(|e| nats(e.to_string()))?;
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| nats(e.to_string()))?;
            let seq = m.info().map_err(|e| nats(e.to_string()))?.stream_sequence;
            // Anchors, quarantine records and strangers' messages hold no events.
            if let Ok(mut envelopes) = crm_events::decode_message(&m.payload) {
                if pii {
                    source.open_personal(seq, &mut envelopes, true)?;
                }
                for (i, e) in envelopes
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| filter.admits(e))
                {
                    let index = u16::try_from(i).unwrap_or(u16::MAX);
                    rows.write(&EventRow::of(seq, index, e, pii))?;
                }
            }
            progress(seq, last);
            if seq >= last {
                break;
            }
        }
    }
    rows.finish(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_currencies_read_as_text_and_personal_text_is_withheld() {
        let id: Vec<u8> = (1..=16).collect();
        let mut v = serde_json::json!({
            "customer_id": id,
            "recipients": [id, id],
            "owner": "sales-1",
            "profile": {
                "given_name": "Ada",
                "emails": ["ada@example.com"],
                "external_ids": [["shop", "CRM-42"]],
                "language": "en",
            },
            "total": {"minor": 1250, "currency": [69, 85, 82]},
            "nickname": "a field added later, not classified yet",
        });
        let mut with_pii = v.clone();
        readable(&mut v, "customer.registered", &mut String::new(), false);
        let uuid = "01020304-0506-0708-090a-0b0c0d0e0f10";
        let withheld = "[personal data]";
        assert_eq!(
            v,
            serde_json::json!({
                "customer_id": uuid,
                "recipients": [uuid, uuid],
                "owner": "sales-1",
                "profile": {
                    "given_name": withheld,
                    "emails": [withheld],
                    "external_ids": [[withheld, withheld]],
                    "language": "en",
                },
                "total": {"minor": 1250, "currency": "EUR"},
                "nickname": withheld,
            })
        );
        readable(
            &mut with_pii,
            "customer.registered",
            &mut String::new(),
            true,
        );
        assert_eq!(with_pii["profile"]["emails"][0], "ada@example.com");
        assert_eq!(with_pii["customer_id"], uuid);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(timestamp(1_500_000), "1970-01-01T00:00:01.500000Z");
    }
}
