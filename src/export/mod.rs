//! `dcledger export parquet` (PROTOCOL §12.4): the ledger as Parquet tables for DuckDB,
//! Spark or Trino. One pass over the leaves fills `entries.parquet` and one table per
//! record kind; the audit's own findings as of a month fill `findings.parquet`; then
//! `manifest.json` names the checkpoint the files reflect and each file's rows and
//! BLAKE3. A domain module: it reads the log through `ledger::Reader`, never the other
//! way round.

pub mod kinds;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::audit::{self, AuditRequest, Finding};
use crate::config::Config;
use crate::dates::Month;
use crate::ledger::{LedgerError, Progress, Reader};
use crate::log::layout::TILE_WIDTH;
use crate::log::merkle;
use crate::log::segment::SegmentError;
use crate::owner_only;
use crate::report::Basis;
use crate::report::assumptions::Overrides;
use kinds::{KindError, KindTable};
use table::{Field, Node, Prim, TableError, TableWriter, Value};

/// The file every export writes last: a directory without it holds no complete export.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const ENTRIES_FILE: &str = "entries.parquet";
pub const FINDINGS_FILE: &str = "findings.parquet";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Kind(#[from] KindError),
    #[error("{file}: {source}")]
    Table { file: String, source: TableError },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("leaf {index} is not a leaf of PROTOCOL §4 ({reason}); run `dcledger verify`")]
    Leaf { index: u64, reason: String },
}

impl From<SegmentError> for ExportError {
    fn from(e: SegmentError) -> ExportError {
        ExportError::Ledger(e.into())
    }
}

/// What to export the findings as of, and under which configuration.
pub struct ParquetRequest<'a> {
    /// Default: the audit's (PROTOCOL §8).
    pub as_of: Option<Month>,
    pub config: &'a Config,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The checkpoint note the export reflects, as its text.
    pub checkpoint: String,
    pub tree_size: u64,
    /// The tree's root at `tree_size`, hex.
    pub root: String,
    /// The month `findings.parquet` is as of.
    pub as_of: String,
    /// The configuration the findings were made under (`config::Config::b3`).
    pub config_b3: String,
    /// Every file written, by name.
    pub files: BTreeMap<String, FileSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    pub rows: u64,
    /// BLAKE3 of the file's bytes, hex.
    pub blake3: String,
}

/// A leaf as PROTOCOL §4 shapes it, with the body kept as its (canonical) text.
#[derive(Deserialize)]
struct LeafDoc<'a> {
    accepted: String,
    #[serde(borrow)]
    entry: EntryDoc<'a>,
}

#[derive(Deserialize)]
struct EntryDoc<'a> {
    kind: String,
    signer: String,
    seq: u64,
    ts: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// A sink that hashes what passes through it, so a file's BLAKE3 costs no second read.
struct Hashed {
    file: BufWriter<File>,
    hasher: blake3::Hasher,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// One table being written to its file.
struct Output {
    name: String,
    path: PathBuf,
    writer: TableWriter<Hashed>,
}

impl Output {
    fn create(out: &Path, name: String, fields: Vec<Field>) -> Result<Output, ExportError> {
        let path = out.join(&name);
        let file = owner_only::create_file(&path).map_err(|source| ExportError::Io {
            path: path.clone(),
            source,
        })?;
        let sink = Hashed {
            file: BufWriter::new(file),
            hasher: blake3::Hasher::new(),
        };
        let writer = TableWriter::new(fields, sink).map_err(|source| ExportError::Table {
            file: name.clone(),
            source,
        })?;
        Ok(Output { name, path, writer })
    }

    fn push(&mut self, row: &[Value]) -> Result<(), ExportError> {
        self.writer.push(row).map_err(|source| ExportError::Table {
            file: self.name.clone(),
            source,
        })
    }

    /// Writes the footer, syncs the file and returns its summary.
    fn finish(self) -> Result<(String, FileSummary), ExportError> {
        let (rows, sink) = self.writer.finish().map_err(|source| ExportError::Table {
            file: self.name.clone(),
            source,
        })?;
        let io = |source| ExportError::Io {
            path: self.path.clone(),
            source,
        };
        let file = sink.file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        let summary = FileSummary {
            rows,
            blake3: sink.hasher.finalize().to_hex().to_string(),
        };
        Ok((self.name, summary))
    }
}

/// The columns of `entries.parquet`.
fn entry_fields() -> Vec<Field> {
    let text = || Node::Leaf(Prim::Text);
    vec![
        Field::required("index", Node::Leaf(Prim::Int64)),
        Field::required("accepted", Node::Leaf(Prim::Timestamp)),
        Field::required("kind", text()),
        Field::required("signer", text()),
        Field::nullable("org_id", text()),
        Field::required("seq", Node::Leaf(Prim::Int64)),
        Field::required("ts", Node::Leaf(Prim::Timestamp)),
        Field::nullable("facility_id", text()),
        Field::required("body", text()),
        Field::required("leaf_hash", text()),
    ]
}

/// The columns of `findings.parquet`: the fields of a finding (PROTOCOL §8).
fn finding_fields() -> Vec<Field> {
    let text = || Node::Leaf(Prim::Text);
    vec![
        Field::required("id", text()),
        Field::required("rule", text()),
        Field::required("severity", text()),
        Field::nullable("facility_id", text()),
        Field::required("key", text()),
        Field::required("summary", text()),
        Field::nullable("amount_at_risk_minor", Node::Leaf(Prim::Decimal)),
        Field::nullable("currency", text()),
        Field::required("evidence", Node::List(Box::new(Node::Leaf(Prim::Int64)))),
        Field::required(
            "notes",
            Node::List(Box::new(Node::Struct(vec![
                Field::required("kind", text()),
                Field::nullable("outcome", text()),
                Field::required("org_id", text()),
                Field::required("text", text()),
                Field::required("index", Node::Leaf(Prim::Int64)),
            ]))),
        ),
    ]
}

/// Writes the export of the ledger `reader` reads into `out` (created if missing; files
/// of an earlier export are replaced, `manifest.json` removed first and written last).
/// `progress` is told, as the leaves are read, how many are done of how many.
pub fn export_parquet(
    reader: &Reader,
    out: &Path,
    request: &ParquetRequest<'_>,
    progress: Progress<'_>,
) -> Result<Manifest, ExportError> {
    let (size, checkpoint) = reader.current();
    let (as_of, findings) = audit::run(
        reader,
        &AuditRequest {
            as_of: request.as_of,
            config: request.config.audit.clone(),
            filter: Default::default(),
        },
    )?;
    let basis = Basis::new(reader, size, as_of, request.config, &Overrides::default())?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    owner_only::create_dir_all(out).map_err(io(out))?;
    let manifest_path = out.join(MANIFEST_FILE);
    match std::fs::remove_file(&manifest_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(&manifest_path)(e));
        }
        _ => {}
    }

    let tables = kinds::tables()?;
    let mut files = BTreeMap::new();
    let (entries, per_kind) = write_entries(reader, out, size, &tables, progress)?;
    for done in std::iter::once(entries).chain(per_kind) {
        let (name, summary) = done.finish()?;
        files.insert(name, summary);
    }
    let mut found = Output::create(out, FINDINGS_FILE.to_string(), finding_fields())?;
    for f in &findings {
        found.push(&finding_row(f)?)?;
    }
    let (name, summary) = found.finish()?;
    files.insert(name, summary);

    let manifest = Manifest {
        checkpoint: checkpoint.to_string(),
        tree_size: size,
        root: basis.checkpoint.root,
        as_of: basis.as_of,
        config_b3: basis.config_b3,
        files,
    };
    write_manifest(out, &manifest)?;
    Ok(manifest)
}

/// One pass over the leaves `0..size`: `entries.parquet` and each kind's table.
fn write_entries(
    reader: &Reader,
    out: &Path,
    size: u64,
    tables: &[KindTable],
    progress: Progress<'_>,
) -> Result<(Output, Vec<Output>), ExportError> {
    let mut entries = Output::create(out, ENTRIES_FILE.to_string(), entry_fields())?;
    let mut per_kind = tables
        .iter()
        .map(|t| {
            Output::create(
                out,
                format!("{}.parquet", t.kind.as_str()),
                t.fields.clone(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let position: HashMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.kind.as_str(), i))
        .collect();
    // A ledger has few signers and each signs many entries.
    let mut orgs: HashMap<String, Option<String>> = HashMap::new();
    reader.leaves(0, size, |index, leaf| -> Result<(), ExportError> {
        if (index + 1) % TILE_WIDTH == 0 || index + 1 == size {
            progress(index + 1, size);
        }
        let bad = |reason: String| ExportError::Leaf { index, reason };
        let doc: LeafDoc<'_> = serde_json::from_slice(leaf).map_err(|e| bad(e.to_string()))?;
        let e = &doc.entry;
        let body: serde_json::Value =
            serde_json::from_str(e.body.get()).map_err(|e| bad(e.to_string()))?;
        let at = *position
            .get(e.kind.as_str())
            .ok_or_else(|| bad(format!("unknown kind {:?}", e.kind)))?;
        per_kind[at].push(&kinds::row(&tables[at], index, &body)?)?;
        let org_id = match orgs.get(&e.signer) {
            Some(org) => org.clone(),
            None => {
                let key = crate::keys::parse_public_hex(&e.signer)
                    .ok_or_else(|| bad(format!("signer {:?} is not a key", e.signer)))?;
                let org = reader.signer(&key)?.map(|s| s.record.org_id);
                orgs.insert(e.signer.clone(), org.clone());
                org
            }
        };
        let instant = |field: &str, s: &str| {
            kinds::instant_millis(s)
                .map(Value::Timestamp)
                .ok_or_else(|| bad(format!("{field} {s:?} is not an instant")))
        };
        let int = |field: &str, n: u64| {
            i64::try_from(n)
                .map(Value::Int)
                .map_err(|_| bad(format!("{field} {n} is beyond INT64")))
        };
        let text_or_null = |v: Option<&str>| v.map_or(Value::Null, |s| Value::Text(s.to_string()));
        entries.push(&[
            int("index", index)?,
            instant("accepted", &doc.accepted)?,
            Value::Text(e.kind.clone()),
            Value::Text(e.signer.clone()),
            text_or_null(org_id.as_deref()),
            int("seq", e.seq)?,
            instant("ts", &e.ts)?,
            // The facility the body names; a body naming none (a lot's serials, a
            // disbursement) leaves it null.
            text_or_null(body.get("facility_id").and_then(|v| v.as_str())),
            Value::Text(e.body.get().to_string()),
            Value::Text(hex::encode(merkle::leaf_hash(leaf))),
        ])
    })?;
    Ok((entries, per_kind))
}

fn finding_row(f: &Arc<Finding>) -> Result<Vec<Value>, ExportError> {
    let text = |s: &str| Value::Text(s.to_string());
    let amount = match &f.amount_at_risk_minor {
        Some(a) => Value::Decimal(table::decimal38(&a.to_string()).map_err(|source| {
            ExportError::Table {
                file: FINDINGS_FILE.to_string(),
                source,
            }
        })?),
        None => Value::Null,
    };
    let index = |i: u64| {
        i64::try_from(i)
            .map(Value::Int)
            .map_err(|_| ExportError::Table {
                file: FINDINGS_FILE.to_string(),
                source: TableError::Shape {
                    column: "evidence".into(),
                    reason: format!("index {i} is beyond INT64"),
                },
            })
    };
    let notes = f
        .notes
        .iter()
        .map(|n| {
            Ok(Value::Struct(vec![
                text(n.kind),
                n.outcome.map_or(Value::Null, text),
                text(&n.org_id),
                text(&n.text),
                index(n.index)?,
            ]))
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    Ok(vec![
        text(&f.id),
        text(f.rule),
        text(f.severity),
        text(&f.facility_id),
        text(&f.key),
        text(&f.summary),
        amount,
        f.currency.as_deref().map_or(Value::Null, text),
        Value::List(
            f.evidence
                .iter()
                .map(|i| index(*i))
                .collect::<Result<_, _>>()?,
        ),
        Value::List(notes),
    ])
}

/// `manifest.json`, through a temporary file renamed into place: present only once
/// every file it names is complete.
fn write_manifest(out: &Path, manifest: &Manifest) -> Result<(), ExportError> {
    let path = out.join(MANIFEST_FILE);
    let temporary = out.join(format!("{MANIFEST_FILE}.tmp"));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ExportError::Io { path: p, source }
    };
    let mut text = serde_json::to_string_pretty(manifest).map_err(|e| ExportError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    text.push('\n');
    let mut file = owner_only::create_file(&temporary).map_err(io(&temporary))?;
    file.write_all(text.as_bytes()).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    Ok(())
}
