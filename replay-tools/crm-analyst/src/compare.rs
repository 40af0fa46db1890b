//! Two builds of a projection compared key by key: how an analyst proves a rebuild is
//! deterministic, or sees what a rule change moved.
//!
//! Each side is a read-model directory (a stopped service's `read-models`, an offline
//! build, a copy); its build is the projection's live tree when the directory records one
//! (a service's), else the tree named after the projection (an offline build). The fold's
//! keys are compared in key order; for the first differences the values are decoded and
//! the fields that differ listed. Without `pii`, text values are never shown (a name, an
//! email or a ticket subject is text), only their length: numbers, flags and ids are.

use std::cmp::Ordering;
use std::path::Path;

use crm_projection::{DATA_PREFIX, DEAD_LETTER_PREFIX, live_tree, tree_checkpoint};

use crate::build::open_dir;
use crate::projection::render_key;
use crate::{AnalystError, Named};

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Side {
    pub dir: String,
    pub tree: String,
    /// The last stream sequence the build applied.
    pub checkpoint: u64,
    pub entries: u64,
    pub dead_letters: u64,
}

/// How a key differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// On both sides, with other values.
    Different,
    /// On the left only.
    Missing,
    /// On the right only.
    Extra,
}

/// One field of a decoded value that differs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FieldDiff {
    /// e.g. `commerce.orders` or `orders[2].total_minor`.
    pub path: String,
    pub left: String,
    pub right: String,
}

/// One key that differs, decoded where the projection's key names a record.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Difference {
    pub key: String,
    pub kind: DiffKind,
    /// The differing fields (empty when the value does not decode: then `bytes` says
    /// the sizes).
    pub fields: Vec<FieldDiff>,
    pub bytes: (usize, usize),
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub projection: &'static str,
    pub left: Side,
    pub right: Side,
    pub equal: u64,
    pub different: u64,
    pub missing: u64,
    pub extra: u64,
    /// The first differences in key order (at most the number asked for).
    pub first: Vec<Difference>,
}

impl Comparison {
    /// Whether the builds hold the same fold keys and values.
    #[must_use]
    pub fn same(&self) -> bool {
        self.different == 0 && self.missing == 0 && self.extra == 0
    }
}

/// Field differences listed per value, at most.
const FIELDS_SHOWN: usize = 20;

fn open_side(dir: &Path, projection: Named) -> Result<(Side, sled::Tree), AnalystError> {
    let fail = |message: String| AnalystError::Directory {
        dir: dir.display().to_string(),
        message,
    };
    // A service's data directory holds its read models in `read-models`.
    let nested = dir.join("read-models");
    let dir = if nested.is_dir() {
        nested.as_path()
    } else {
        dir
    };
    if !dir.join("db").is_file() {
        return Err(fail(
            "is not a read-model directory (no sled database in it)".into(),
        ));
    }
    let db = open_dir(dir)?;
    let name = match live_tree(&db, projection.name())? {
        Some(live) => live,
        None => projection.name().to_owned(),
    };
    if !db
        .tree_names()
        .iter()
        .any(|t| t.as_ref() == name.as_bytes())
    {
        return Err(fail(format!("holds no build of {projection}")));
    }
    let tree = db
        .open_tree(&name)
        .map_err(crm_projection::ProjectionError::from)?;
    let count = |prefix: u8| tree.scan_prefix([prefix]).count() as u64;
    let side = Side {
        dir: dir.display().to_string(),
        checkpoint: tree_checkpoint(&tree)?,
        entries: count(DATA_PREFIX),
        dead_letters: count(DEAD_LETTER_PREFIX),
        tree: name,
    };
    Ok((side, tree))
}

/// Compares the builds of `projection` in two directories; `show` differences are
/// decoded.
///
/// # Errors
/// A directory that cannot be opened or holds no build of the projection; storage.
pub fn compare(
    projection: Named,
    left: &Path,
    right: &Path,
    show: usize,
    pii: bool,
) -> Result<Comparison, AnalystError> {
    let (left_side, l) = open_side(left, projection)?;
    let (right_side, r) = open_side(right, projection)?;
    let mut out = Comparison {
        projection: projection.name(),
        left: left_side,
        right: right_side,
        equal: 0,
        different: 0,
        missing: 0,
        extra: 0,
        first: Vec::new(),
    };
    let storage = |e: sled::Error| AnalystError::from(crm_projection::ProjectionError::from(e));
    let mut a = l.scan_prefix([DATA_PREFIX]).peekable();
    let mut b = r.scan_prefix([DATA_PREFIX]).peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(Err(_)), _) | (_, Some(Err(_))) => Ordering::Equal,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka.cmp(kb),
        };
        let (kind, key, va, vb) = match order {
            Ordering::Less => {
                let (k, v) = a.next().transpose().map_err(storage)?.unwrap_or_default();
                (DiffKind::Missing, k, Some(v), None)
            }
            Ordering::Greater => {
                let (k, v) = b.next().transpose().map_err(storage)?.unwrap_or_default();
                (DiffKind::Extra, k, None, Some(v))
            }
            Ordering::Equal => {
                let (k, va) = a.next().transpose().map_err(storage)?.unwrap_or_default();
                let (_, vb) = b.next().transpose().map_err(storage)?.unwrap_or_default();
                if va == vb {
                    out.equal += 1;
                    continue;
                }
                (DiffKind::Different, k, Some(va), Some(vb))
            }
        };
        match kind {
            DiffKind::Different => out.different += 1,
            DiffKind::Missing => out.missing += 1,
            DiffKind::Extra => out.extra += 1,
        }
        if out.first.len() < show {
            let fold_key = &key[1..];
            out.first.push(describe(
                projection,
                fold_key,
                kind,
                va.as_deref(),
                vb.as_deref(),
                pii,
            ));
        }
    }
    Ok(out)
}

fn describe(
    projection: Named,
    key: &[u8],
    kind: DiffKind,
    left: Option<&[u8]>,
    right: Option<&[u8]>,
    pii: bool,
) -> Difference {
    use crate::projection::Decoded;
    let decode = |v: Option<&[u8]>| v.and_then(|v| projection.decode(key, v));
    let mut fields = Vec::new();
    let null = Decoded::Json(serde_json::Value::Null);
    let (a, b) = (decode(left), decode(right));
    let pair = match (a, b) {
        (Some(a), Some(b)) => Some((a, b)),
        (Some(a), None) if right.is_none() => Some((a, null)),
        (None, Some(b)) if left.is_none() => Some((null, b)),
        _ => None,
    };
    match pair {
        Some((Decoded::Json(a), Decoded::Json(b))) => diff_json("", &a, &b, pii, &mut fields),
        Some((Decoded::Text(a), Decoded::Text(b))) => diff_lines(&a, &b, pii, &mut fields),
        Some((Decoded::Text(a), Decoded::Json(_))) => diff_lines(&a, "", pii, &mut fields),
        Some((Decoded::Json(_), Decoded::Text(b))) => diff_lines("", &b, pii, &mut fields),
        None => {}
    }
    Difference {
        key: render_key(key),
        kind,
        fields,
        bytes: (left.map_or(0, <[u8]>::len), right.map_or(0, <[u8]>::len)),
    }
}

/// The lines of two `Debug` renderings that only one has (`-`: left, `+`: right), text
/// in quotes hidden without `pii`.
fn diff_lines(a: &str, b: &str, pii: bool, out: &mut Vec<FieldDiff>) {
    let count = |s: &str| {
        let mut m: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for l in s.lines() {
            *m.entry(l.trim().to_owned()).or_default() += 1;
        }
        m
    };
    let (ca, cb) = (count(a), count(b));
    let only = |x: &std::collections::BTreeMap<String, i64>,
                y: &std::collections::BTreeMap<String, i64>| {
        x.iter()
            .filter(|(l, n)| y.get(*l).copied().unwrap_or(0) < **n)
            .map(|(l, _)| l.clone())
            .collect::<Vec<_>>()
    };
    for (path, line, left) in only(&ca, &cb)
        .into_iter()
        .map(|l| ("-", l, true))
        .chain(only(&cb, &ca).into_iter().map(|l| ("+", l, false)))
        .take(FIELDS_SHOWN)
    {
        let line = if pii { line } else { hide_quoted(&line) };
        let (l, r) = if left {
            (line, String::new())
        } else {
            (String::new(), line)
        };
        out.push(FieldDiff {
            path: path.to_owned(),
            left: l,
            right: r,
        });
    }
}

/// `"..."` replaced by its length.
fn hide_quoted(line: &str) -> String {
    let mut out = String::new();
    let mut parts = line.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let rest: Vec<&str> = parts.collect();
    for (i, part) in rest.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str(&format!("<text, {} chars>", part.chars().count()));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// A leaf as shown: text only with `pii`.
fn show(v: &serde_json::Value, pii: bool) -> String {
    match v {
        serde_json::Value::String(s) if !pii => format!("<text, {} chars>", s.chars().count()),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) if !pii => {
            "<structure>".to_owned()
        }
        other => other.to_string(),
    }
}

/// The paths at which `a` and `b` differ (objects by field, arrays by index).
fn diff_json(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    pii: bool,
    out: &mut Vec<FieldDiff>,
) {
    use serde_json::Value;
    if a == b || out.len() >= FIELDS_SHOWN {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_json(
                    &join(k),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    pii,
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let null = Value::Null;
                diff_json(
                    &format!("{path}[{i}]"),
                    x.get(i).unwrap_or(&null),
                    y.get(i).unwrap_or(&null),
                    pii,
                    out,
                );
            }
        }
        _ => out.push(FieldDiff {
            path: if path.is_empty() {
                "(value)".into()
            } else {
                path.to_owned()
            },
            left: show(a, pii),
            right: show(b, pii),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_fields_are_listed_and_text_is_hidden_without_pii() {
        let a = serde_json::json!({"name": "Ada", "orders": [1, 2], "vip": true});
        let b = serde_json::json!({"name": "Bob", "orders": [1, 3, 4], "vip": true});
        let mut out = Vec::new();
        diff_json("", &a, &b, false, &mut out);
        let paths: Vec<(&str, &str, &str)> = out
            .iter()
            .map(|d| (d.path.as_str(), d.left.as_str(), d.right.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("name", "<text, 3 chars>", "<text, 3 chars>"),
                ("orders[1]", "2", "3"),
                ("orders[2]", "null", "4"),
            ]
        );
        let mut shown = Vec::new();
        diff_json("", &a, &b, true, &mut shown);
        assert_eq!(
            (shown[0].left.as_str(), shown[0].right.as_str()),
            ("\"Ada\"", "\"Bob\"")
        );
    }

    #[test]
    fn debug_lines_only_one_side_has_are_listed_with_text_hidden() {
        let mut out = Vec::new();
        diff_lines(
            "Order {\n  total: 5,\n  name: \"Ada\",\n}",
            "Order {\n  total: 7,\n  name: \"Ada\",\n}",
            false,
            &mut out,
        );
        let lines: Vec<(&str, &str, &str)> = out
            .iter()
            .map(|d| (d.path.as_str(), d.left.as_str(), d.right.as_str()))
            .collect();
        assert_eq!(lines, [("-", "total: 5,", ""), ("+", "", "total: 7,")]);
        assert_eq!(hide_quoted("name: \"Ada\","), "name: <text, 3 chars>,");
    }

    #[test]
    fn keys_read_as_prefix_and_id() {
        let mut k = vec![b'c'];
        k.extend_from_slice(&[0x11; 16]);
        assert_eq!(render_key(&k), "c/11111111-1111-1111-1111-111111111111");
        assert_eq!(render_key(b"sv\x01\x02"), "sv/0102");
    }
}
