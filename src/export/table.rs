//! A table of typed columns written as one Parquet file, over the `parquet` crate's
//! low-level writer: the schema as Parquet's message text, rows shredded into each leaf
//! column's values and definition/repetition levels (Dremel), a row group whenever
//! `PARQUET_ROW_GROUP_ROWS` rows or `PARQUET_ROW_GROUP_BYTES` of values are pending. Knows nothing of the ledger: `export` says what the
//! columns are and fills them.

use std::io::Write;
use std::sync::Arc;

use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::limits::{PARQUET_ROW_GROUP_BYTES, PARQUET_ROW_GROUP_ROWS};

/// The leaf types this export uses; every one is exact (no floating point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    /// INT64.
    Int64,
    /// BOOLEAN.
    Bool,
    /// BYTE_ARRAY annotated STRING (UTF-8).
    Text,
    /// INT32 annotated DATE: days since 1970-01-01.
    Date,
    /// INT64 annotated TIMESTAMP(MILLIS, UTC): milliseconds since 1970-01-01T00:00:00Z.
    Timestamp,
    /// FIXED_LEN_BYTE_ARRAY(16) annotated DECIMAL(38,0): a big-endian two's complement
    /// integer, the widest exact integer Spark and Trino read.
    Decimal,
}

/// A column's shape: a leaf, a Parquet LIST of elements, or a struct (a group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Leaf(Prim),
    /// Elements are never null.
    List(Box<Node>),
    Struct(Vec<Field>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub node: Node,
    pub nullable: bool,
}

impl Field {
    pub fn required(name: &str, node: Node) -> Field {
        Field {
            name: name.to_string(),
            node,
            nullable: false,
        }
    }

    pub fn nullable(name: &str, node: Node) -> Field {
        Field {
            name: name.to_string(),
            node,
            nullable: true,
        }
    }
}

/// One cell of a row, shaped like its column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// See `decimal38`.
    Decimal([u8; 16]),
    List(Vec<Value>),
    /// The struct's fields in its column's order.
    Struct(Vec<Value>),
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("column {column:?}: {reason}")]
    Shape { column: String, reason: String },
    #[error("a row of {got} cells for a table of {want} columns")]
    Width { got: usize, want: usize },
    #[error("{0} does not fit DECIMAL(38,0)")]
    DecimalRange(String),
    #[error(transparent)]
    Parquet(#[from] ParquetError),
}

/// The largest magnitude DECIMAL(38,0) holds: 10^38 − 1.
const DECIMAL38_MAX: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;

/// An exact integer (its decimal text, as `exact::Int` writes it) as DECIMAL(38,0)'s
/// 16 bytes; an error beyond 38 digits rather than a wrapped or rounded figure.
pub fn decimal38(text: &str) -> Result<[u8; 16], TableError> {
    match text.parse::<i128>() {
        Ok(v) if (-DECIMAL38_MAX..=DECIMAL38_MAX).contains(&v) => Ok(v.to_be_bytes()),
        _ => Err(TableError::DecimalRange(text.to_string())),
    }
}

/// The Parquet message type of a table with these columns, as the parquet-format's
/// textual schema (what `parquet-tools schema` prints): the golden form tests hold.
pub fn message(fields: &[Field]) -> String {
    let mut out = String::from("message schema {\n");
    for f in fields {
        field_text(f, 1, &mut out);
    }
    out.push_str("}\n");
    out
}

fn field_text(f: &Field, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let repetition = if f.nullable { "optional" } else { "required" };
    match &f.node {
        Node::Leaf(p) => {
            let (physical, annotation) = match p {
                Prim::Int64 => ("int64", ""),
                Prim::Bool => ("boolean", ""),
                Prim::Text => ("binary", " (STRING)"),
                Prim::Date => ("int32", " (DATE)"),
                Prim::Timestamp => ("int64", " (TIMESTAMP(MILLIS,true))"),
                Prim::Decimal => ("fixed_len_byte_array(16)", " (DECIMAL(38,0))"),
            };
            out.push_str(&format!(
                "{pad}{repetition} {physical} {}{annotation};\n",
                f.name
            ));
        }
        Node::Struct(fields) => {
            out.push_str(&format!("{pad}{repetition} group {} {{\n", f.name));
            for child in fields {
                field_text(child, depth + 1, out);
            }
            out.push_str(&format!("{pad}}}\n"));
        }
        // The three-level LIST of the Parquet format's LogicalTypes document, the form
        // every reader (DuckDB, Spark, Trino) maps to its list type.
        Node::List(element) => {
            out.push_str(&format!("{pad}{repetition} group {} (LIST) {{\n", f.name));
            out.push_str(&format!("{pad}  repeated group list {{\n"));
            field_text(
                &Field::required("element", (**element).clone()),
                depth + 2,
                out,
            );
            out.push_str(&format!("{pad}  }}\n{pad}}}\n"));
        }
    }
}

/// One leaf column's pending values and levels.
struct Leaf {
    values: Values,
    def: Vec<i16>,
    rep: Vec<i16>,
    max_def: i16,
    max_rep: i16,
    /// Bytes of values and levels pending, roughly as they will be encoded.
    bytes: usize,
}

enum Values {
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Bool(Vec<bool>),
    Bytes(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

impl Values {
    fn of(p: Prim) -> Values {
        match p {
            Prim::Int64 | Prim::Timestamp => Values::Int64(Vec::new()),
            Prim::Date => Values::Int32(Vec::new()),
            Prim::Bool => Values::Bool(Vec::new()),
            Prim::Text => Values::Bytes(Vec::new()),
            Prim::Decimal => Values::Fixed(Vec::new()),
        }
    }

    fn clear(&mut self) {
        match self {
            Values::Int64(v) => v.clear(),
            Values::Int32(v) => v.clear(),
            Values::Bool(v) => v.clear(),
            Values::Bytes(v) => v.clear(),
            Values::Fixed(v) => v.clear(),
        }
    }
}

/// The leaf columns under `f`, depth first (Parquet's column order), with the levels
/// at which each is defined and repeated.
fn leaves_of(f: &Field, def: i16, rep: i16, out: &mut Vec<Leaf>) {
    let def = def + i16::from(f.nullable);
    node_leaves(&f.node, def, rep, out);
}

fn node_leaves(node: &Node, def: i16, rep: i16, out: &mut Vec<Leaf>) {
    match node {
        Node::Leaf(p) => out.push(Leaf {
            values: Values::of(*p),
            def: Vec::new(),
            rep: Vec::new(),
            max_def: def,
            max_rep: rep,
            bytes: 0,
        }),
        Node::Struct(fields) => fields.iter().for_each(|f| leaves_of(f, def, rep, out)),
        // The repeated group adds a level of each.
        Node::List(element) => node_leaves(element, def + 1, rep + 1, out),
    }
}

fn leaf_count(node: &Node) -> usize {
    match node {
        Node::Leaf(_) => 1,
        Node::Struct(fields) => fields.iter().map(|f| leaf_count(&f.node)).sum(),
        Node::List(element) => leaf_count(element),
    }
}

/// Records "nothing here" at these levels in every leaf under a node: a null, or an
/// empty list.
fn absent(leaves: &mut [Leaf], def: i16, rep: i16) {
    for l in leaves {
        l.def.push(def);
        l.rep.push(rep);
        l.bytes += LEVELS_BYTES;
    }
}

/// A value's definition and repetition levels, as counted towards a row group's bytes.
const LEVELS_BYTES: usize = 4;

/// Shreds one cell of column `f` into its leaves. `def` and `rep` are the levels of the
/// enclosing value, `depth` the repetition depth there.
fn shred(
    f: &Field,
    value: &Value,
    def: i16,
    rep: i16,
    depth: i16,
    leaves: &mut [Leaf],
) -> Result<(), TableError> {
    if f.nullable {
        if *value == Value::Null {
            absent(leaves, def, rep);
            return Ok(());
        }
        shred_node(&f.name, &f.node, value, def + 1, rep, depth, leaves)
    } else {
        shred_node(&f.name, &f.node, value, def, rep, depth, leaves)
    }
}

fn shred_node(
    name: &str,
    node: &Node,
    value: &Value,
    def: i16,
    rep: i16,
    depth: i16,
    leaves: &mut [Leaf],
) -> Result<(), TableError> {
    let mismatch = || TableError::Shape {
        column: name.to_string(),
        reason: format!("{value:?} is not a {node:?}"),
    };
    match (node, value) {
        (Node::Leaf(p), v) => {
            let leaf = leaves.first_mut().ok_or_else(mismatch)?;
            let bytes = match (p, v, &mut leaf.values) {
                (Prim::Int64, Value::Int(x), Values::Int64(out))
                | (Prim::Timestamp, Value::Timestamp(x), Values::Int64(out)) => {
                    out.push(*x);
                    8
                }
                (Prim::Date, Value::Date(x), Values::Int32(out)) => {
                    out.push(*x);
                    4
                }
                (Prim::Bool, Value::Bool(x), Values::Bool(out)) => {
                    out.push(*x);
                    1
                }
                (Prim::Text, Value::Text(s), Values::Bytes(out)) => {
                    out.push(ByteArray::from(s.as_bytes().to_vec()));
                    s.len() + 4
                }
                (Prim::Decimal, Value::Decimal(b), Values::Fixed(out)) => {
                    out.push(FixedLenByteArray::from(b.to_vec()));
                    16
                }
                _ => return Err(mismatch()),
            };
            leaf.def.push(def);
            leaf.rep.push(rep);
            leaf.bytes += bytes + LEVELS_BYTES;
        }
        (Node::Struct(fields), Value::Struct(values)) if fields.len() == values.len() => {
            let mut at = 0;
            for (f, v) in fields.iter().zip(values) {
                let n = leaf_count(&f.node);
                let mine = leaves.get_mut(at..at + n).ok_or_else(mismatch)?;
                shred(f, v, def, rep, depth, mine)?;
                at += n;
            }
        }
        (Node::List(element), Value::List(items)) => {
            if items.is_empty() {
                absent(leaves, def, rep);
            }
            let level = depth + 1;
            for (i, item) in items.iter().enumerate() {
                // The first element starts where the list does; the others repeat it.
                let r = if i == 0 { rep } else { level };
                shred_node(name, element, item, def + 1, r, level, leaves)?;
            }
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// Writes rows of a table to a Parquet file as they come, a row group at a time.
pub struct TableWriter<W: Write + Send> {
    fields: Vec<Field>,
    leaves: Vec<Leaf>,
    pending: usize,
    rows: u64,
    writer: SerializedFileWriter<W>,
}

impl<W: Write + Send> TableWriter<W> {
    pub fn new(fields: Vec<Field>, sink: W) -> Result<TableWriter<W>, TableError> {
        let schema = Arc::new(parse_message_type(&message(&fields))?);
        // Defaults but for row groups, which this writer cuts itself. No compression:
        // the files stay readable by anything, and the crate builds without codecs.
        let props = Arc::new(
            WriterProperties::builder()
                .set_max_row_group_row_count(None)
                .build(),
        );
        let mut leaves = Vec::new();
        for f in &fields {
            leaves_of(f, 0, 0, &mut leaves);
        }
        Ok(TableWriter {
            writer: SerializedFileWriter::new(sink, schema, props)?,
            fields,
            leaves,
            pending: 0,
            rows: 0,
        })
    }

    pub fn push(&mut self, row: &[Value]) -> Result<(), TableError> {
        if row.len() != self.fields.len() {
            return Err(TableError::Width {
                got: row.len(),
                want: self.fields.len(),
            });
        }
        let mut at = 0;
        for (f, v) in self.fields.iter().zip(row) {
            let n = leaf_count(&f.node);
            shred(f, v, 0, 0, 0, &mut self.leaves[at..at + n])?;
            at += n;
        }
        self.pending += 1;
        self.rows += 1;
        let bytes: usize = self.leaves.iter().map(|l| l.bytes).sum();
        if self.pending == PARQUET_ROW_GROUP_ROWS || bytes >= PARQUET_ROW_GROUP_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending rows as one row group.
    fn flush(&mut self) -> Result<(), TableError> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for leaf in &mut self.leaves {
            let mut column = group.next_column()?.ok_or_else(|| {
                ParquetError::General("the schema has fewer columns than the table".into())
            })?;
            let def = (leaf.max_def > 0).then_some(leaf.def.as_slice());
            let rep = (leaf.max_rep > 0).then_some(leaf.rep.as_slice());
            let written = match (column.untyped(), &leaf.values) {
                (ColumnWriter::Int64ColumnWriter(w), Values::Int64(v)) => {
                    w.write_batch(v, def, rep)
                }
                (ColumnWriter::Int32ColumnWriter(w), Values::Int32(v)) => {
                    w.write_batch(v, def, rep)
                }
                (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => w.write_batch(v, def, rep),
                (ColumnWriter::ByteArrayColumnWriter(w), Values::Bytes(v)) => {
                    w.write_batch(v, def, rep)
                }
                (ColumnWriter::FixedLenByteArrayColumnWriter(w), Values::Fixed(v)) => {
                    w.write_batch(v, def, rep)
                }
                _ => Err(ParquetError::General(
                    "a column's physical type differs from its schema".into(),
                )),
            };
            written?;
            column.close()?;
            leaf.values.clear();
            leaf.def.clear();
            leaf.rep.clear();
            leaf.bytes = 0;
        }
        group.close()?;
        self.pending = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; the rows written and the sink.
    pub fn finish(mut self) -> Result<(u64, W), TableError> {
        self.flush()?;
        Ok((self.rows, self.writer.into_inner()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn sample_fields() -> Vec<Field> {
        vec![
            Field::required("index", Node::Leaf(Prim::Int64)),
            Field::nullable("note", Node::Leaf(Prim::Text)),
            Field::required("tags", Node::List(Box::new(Node::Leaf(Prim::Text)))),
            Field::nullable(
                "condition",
                Node::Struct(vec![
                    Field::required("pct", Node::Leaf(Prim::Int64)),
                    Field::required("by", Node::Leaf(Prim::Date)),
                ]),
            ),
            Field::nullable("amount", Node::Leaf(Prim::Decimal)),
            Field::required("at", Node::Leaf(Prim::Timestamp)),
        ]
    }

    /// The rows written to a file, opened with the crate's own reader.
    fn write(rows: &[Vec<Value>]) -> SerializedFileReader<std::fs::File> {
        let mut w = TableWriter::new(sample_fields(), tempfile::tempfile().unwrap()).unwrap();
        for r in rows {
            w.push(r).unwrap();
        }
        let (n, file) = w.finish().unwrap();
        assert_eq!(n, rows.len() as u64);
        SerializedFileReader::new(file).unwrap()
    }

    #[test]
    fn rows_read_back_as_written_with_nulls_empty_lists_and_structs() {
        let big = "-12345678901234567890123456789012345678";
        let rows = vec![
            vec![
                Value::Int(7),
                Value::Text("x".into()),
                Value::List(vec![Value::Text("a".into()), Value::Text("b".into())]),
                Value::Struct(vec![Value::Int(30), Value::Date(20_000)]),
                Value::Decimal(decimal38(big).unwrap()),
                Value::Timestamp(1_700_000_000_000),
            ],
            vec![
                Value::Int(8),
                Value::Null,
                Value::List(vec![]),
                Value::Null,
                Value::Null,
                Value::Timestamp(0),
            ],
        ];
        let reader = write(&rows);
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let read: Vec<String> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect();
        assert_eq!(
            read[0],
            format!(
                // The crate's reader prints a DECIMAL of scale 0 with a trailing point.
                "{{index: 7, note: \"x\", tags: [\"a\", \"b\"], condition: {{pct: 30, by: 2024-10-04}}, amount: {big}., at: 2023-11-14 22:13:20.000 +00:00}}"
            )
        );
        assert_eq!(
            read[1],
            "{index: 8, note: null, tags: [], condition: null, amount: null, at: 1970-01-01 00:00:00.000 +00:00}"
        );
    }

    /// A list of structs with a nullable member (the findings' notes): the levels of
    /// each leaf count the list, the struct's presence and the member's.
    #[test]
    fn lists_of_structs_read_back_as_written() {
        let fields = vec![Field::required(
            "notes",
            Node::List(Box::new(Node::Struct(vec![
                Field::required("index", Node::Leaf(Prim::Int64)),
                Field::nullable("outcome", Node::Leaf(Prim::Text)),
            ]))),
        )];
        let note = |i, o: Option<&str>| {
            Value::Struct(vec![
                Value::Int(i),
                o.map_or(Value::Null, |o| Value::Text(o.into())),
            ])
        };
        let mut w = TableWriter::new(fields, tempfile::tempfile().unwrap()).unwrap();
        for row in [
            vec![Value::List(vec![note(1, Some("confirmed")), note(2, None)])],
            vec![Value::List(vec![])],
            vec![Value::List(vec![note(3, None)])],
        ] {
            w.push(&row).unwrap();
        }
        let (_, file) = w.finish().unwrap();
        let read: Vec<String> = SerializedFileReader::new(file)
            .unwrap()
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect();
        assert_eq!(
            read,
            [
                "{notes: [{index: 1, outcome: \"confirmed\"}, {index: 2, outcome: null}]}",
                "{notes: []}",
                "{notes: [{index: 3, outcome: null}]}",
            ]
        );
    }

    #[test]
    fn a_cell_of_the_wrong_shape_is_refused_not_coerced() {
        let mut w = TableWriter::new(sample_fields(), Vec::new()).unwrap();
        let row = vec![
            Value::Text("7".into()),
            Value::Null,
            Value::List(vec![]),
            Value::Null,
            Value::Null,
            Value::Timestamp(0),
        ];
        assert!(matches!(w.push(&row), Err(TableError::Shape { .. })));
        assert!(matches!(w.push(&row[..2]), Err(TableError::Width { .. })));
    }

    #[test]
    fn decimals_beyond_38_digits_are_refused() {
        assert!(decimal38("99999999999999999999999999999999999999").is_ok());
        assert!(decimal38("100000000000000000000000000000000000000").is_err());
        assert!(decimal38("12.5").is_err());
        assert_eq!(decimal38("-1").unwrap(), [0xff; 16]);
    }

    #[test]
    fn an_empty_table_is_a_valid_file_with_no_rows() {
        let reader = write(&[]);
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    }
}
