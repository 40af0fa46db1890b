//! Data sets on disk, for repeatable benchmarks and imports:
//! - `commands.pb`: the `IngestRequest`s, each length-delimited protobuf, in order;
//! - `params.json`: the [`Params`] and the [`Summary`];
//! - `truth.jsonl`: one [`CustomerTruth`] per line.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crm_proto::v1;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::{Dataset, Params, Summary};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `params.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub params: Params,
    pub summary: Summary,
}

/// Writes the data set into `dir` (created if missing).
///
/// # Errors
/// [`FileError::Io`] when a file cannot be written.
pub fn write(dataset: &Dataset, dir: &Path) -> Result<(), FileError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("commands.pb");
    let mut out = BufWriter::new(File::create(&path).map_err(io(&path))?);
    let mut buf = Vec::new();
    for request in dataset.requests() {
        buf.clear();
        request
            .encode_length_delimited(&mut buf)
            .map_err(|e| FileError::Format {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        out.write_all(&buf).map_err(io(&path))?;
    }
    out.flush().map_err(io(&path))?;

    let path = dir.join("params.json");
    let manifest = Manifest {
        params: dataset.params.clone(),
        summary: dataset.summary.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| FileError::Format {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    std::fs::write(&path, text + "\n").map_err(io(&path))?;

    let path = dir.join("truth.jsonl");
    let mut out = BufWriter::new(File::create(&path).map_err(io(&path))?);
    for t in &dataset.truth {
        serde_json::to_writer(&mut out, t).map_err(|e| FileError::Format {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        out.write_all(b"\n").map_err(io(&path))?;
    }
    out.flush().map_err(io(&path))
}

/// Reads `params.json` of a data set directory.
///
/// # Errors
/// [`FileError`] when it is missing or not a manifest.
pub fn manifest(dir: &Path) -> Result<Manifest, FileError> {
    let path = dir.join("params.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| FileError::Format {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The requests of `<dir>/commands.pb`, read lazily.
///
/// # Errors
/// [`FileError::Io`] when the file cannot be opened; each item fails on a truncated or
/// corrupt record.
pub fn requests(
    dir: &Path,
) -> Result<impl Iterator<Item = Result<v1::IngestRequest, FileError>> + Send + 'static, FileError>
{
    let path = dir.join("commands.pb");
    let mut input = BufReader::new(File::open(&path).map_err(io(&path))?);
    let name = path.display().to_string();
    let mut done = false;
    Ok(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let fail = |message: String| FileError::Format {
            path: name.clone(),
            message,
        };
        // A varint length (at most 10 bytes), then the message.
        let mut len: u64 = 0;
        for i in 0..10 {
            let mut byte = [0u8; 1];
            match input.read(&mut byte) {
                Ok(0) if i == 0 => {
                    done = true;
                    return None;
                }
                Ok(0) => {
                    done = true;
                    return Some(Err(fail("truncated length prefix".into())));
                }
                Ok(_) => {}
                Err(e) => {
                    done = true;
                    return Some(Err(fail(e.to_string())));
                }
            }
            len |= u64::from(byte[0] & 0x7f) << (7 * i);
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let Ok(len) = usize::try_from(len) else {
            done = true;
            return Some(Err(fail("record too large".into())));
        };
        let mut buf = vec![0u8; len];
        if let Err(e) = input.read_exact(&mut buf) {
            done = true;
            return Some(Err(fail(format!("truncated record: {e}"))));
        }
        Some(v1::IngestRequest::decode(buf.as_slice()).map_err(|e| {
            done = true;
            fail(e.to_string())
        }))
    }))
}
