//! Table Storage: entities with typed properties, Azure's limits, conditional writes,
//! entity-group transactions and paged partition queries.

use std::collections::BTreeMap;
use std::time::Duration;

use samza_azure_coordinator::storage::{
    classify_answer, BatchOp, Continuation, Entity, IfMatch, Page, WriteMode, MAX_BATCH_OPERATIONS,
};
use samza_azure_coordinator::{ErrorKind, Result};
use serde_json::{Map, Number, Value};
use tokio::time::Instant;

use super::clock::{format_ticks, table_etag, Clock};
use super::filter::Filter;
use super::{refuse, Answer, Op, Refusal, Served};

/// Service limits ("Understanding the Table service data model").
const MAX_USER_PROPERTIES: usize = 252;
const MAX_VALUE_BYTES: usize = 64 * 1024;
const MAX_ENTITY_BYTES: usize = 1024 * 1024;
const MAX_KEY_UNITS: usize = 1024;
const MAX_NAME_CHARS: usize = 255;
const MAX_PAGE: usize = 1000;
/// A deleted table's name cannot be used again for at least this long.
const TABLE_DELETE_DELAY: Duration = Duration::from_secs(40);

const ANNOTATION: &str = "@odata.type";

/// A property value with its Edm type.
#[derive(Clone, Debug, PartialEq)]
enum Prop {
    Str(String),
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Double(f64),
    DateTime(String),
    Guid(String),
    Binary(String),
}

impl Prop {
    /// Bytes the value counts for in the entity size (the documented estimate).
    fn size(&self) -> usize {
        match self {
            Prop::Str(s) => s.encode_utf16().count() * 2 + 4,
            Prop::Bool(_) => 1,
            Prop::Int32(_) => 4,
            Prop::Int64(_) | Prop::Double(_) | Prop::DateTime(_) => 8,
            Prop::Guid(_) => 16,
            Prop::Binary(b) => b.len() * 3 / 4 + 4,
        }
    }

    /// Wire form as the adapter returns it (full metadata): strings, booleans and 32-bit ints
    /// bare, every other type with its annotation.
    fn render(&self, name: &str, out: &mut Map<String, Value>) {
        let (value, edm) = match self {
            Prop::Str(s) => (Value::String(s.clone()), None),
            Prop::Bool(b) => (Value::Bool(*b), None),
            Prop::Int32(n) => (Value::from(*n), None),
            Prop::Int64(n) => (Value::String(n.to_string()), Some("Edm.Int64")),
            Prop::Double(d) => (
                Number::from_f64(*d).map_or_else(
                    || {
                        Value::String(
                            if d.is_nan() {
                                "NaN"
                            } else if *d > 0.0 {
                                "Infinity"
                            } else {
                                "-Infinity"
                            }
                            .into(),
                        )
                    },
                    Value::Number,
                ),
                Some("Edm.Double"),
            ),
            Prop::DateTime(s) => (Value::String(s.clone()), Some("Edm.DateTime")),
            Prop::Guid(s) => (Value::String(s.clone()), Some("Edm.Guid")),
            Prop::Binary(s) => (Value::String(s.clone()), Some("Edm.Binary")),
        };
        if let Some(edm) = edm {
            out.insert(format!("{name}{ANNOTATION}"), Value::String(edm.into()));
        }
        out.insert(name.to_owned(), value);
    }
}

#[derive(Clone, Debug)]
struct Row {
    props: BTreeMap<String, Prop>,
    /// Server time of the last write, in 100 ns ticks; the ETag derives from it.
    ticks: u64,
}

type Rows = BTreeMap<(String, String), Row>;

#[derive(Default)]
pub(crate) struct Tables {
    /// By lower-cased name: table names are case-insensitive.
    tables: BTreeMap<String, Rows>,
    deleted: BTreeMap<String, Instant>,
}

/// The properties the adapter sends for `entity` (its `to_json`, without the keys).
pub(crate) fn wire_json(entity: &Entity) -> Map<String, Value> {
    let mut json = entity.properties.clone();
    for reserved in ["PartitionKey", "RowKey", "Timestamp"] {
        json.remove(reserved);
    }
    json.retain(|k, _| !k.starts_with("odata."));
    json.insert(
        "PartitionKey".into(),
        Value::String(entity.partition_key.clone()),
    );
    json.insert("RowKey".into(), Value::String(entity.row_key.clone()));
    json
}

fn invalid(what: String) -> Refusal {
    refuse(400, "InvalidInput", what)
}

fn check_key(name: &str, key: &str) -> Served<()> {
    if key.encode_utf16().count() > MAX_KEY_UNITS {
        return Err(refuse(
            400,
            "KeyValueTooLarge",
            format!("{name} '{key}' is longer than {MAX_KEY_UNITS} characters"),
        ));
    }
    if key.chars().any(|c| {
        matches!(c, '/' | '\\' | '#' | '?')
            || ('\u{0}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
    }) {
        return Err(refuse(
            400,
            "OutOfRangeInput",
            format!("{name} '{key}' contains a character the Table service forbids in keys"),
        ));
    }
    Ok(())
}

/// The typed properties of a write, checked as the service checks them.
fn parse_props(what: &str, entity: &Entity) -> Served<BTreeMap<String, Prop>> {
    let json = wire_json(entity);
    let mut props = BTreeMap::new();
    for (name, value) in &json {
        if name == "PartitionKey" || name == "RowKey" || name.ends_with(ANNOTATION) {
            // An annotation of an absent property (e.g. a read's `Timestamp@odata.type`
            // sent back) is ignored.
            continue;
        }
        if name.is_empty() || name.contains(['@', '.', ' ']) {
            return Err(refuse(
                400,
                "PropertyNameInvalid",
                format!("{what}: property name '{name}' is invalid"),
            ));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(refuse(
                400,
                "PropertyNameTooLong",
                format!(
                    "{what}: property name '{name}' is longer than {MAX_NAME_CHARS} characters"
                ),
            ));
        }
        let edm = match json.get(&format!("{name}{ANNOTATION}")) {
            None => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: annotation of '{name}' must be a string, found {other}"
                )))
            }
        };
        let bad = || {
            invalid(format!(
                "{what}: value {value} of property '{name}' is not a valid {}",
                edm.unwrap_or("untyped value")
            ))
        };
        let prop = match (edm, value) {
            // A null value writes nothing.
            (_, Value::Null) => continue,
            (None | Some("Edm.String"), Value::String(s)) => Prop::Str(s.clone()),
            (None | Some("Edm.Boolean"), Value::Bool(b)) => Prop::Bool(*b),
            (None | Some("Edm.Int32"), Value::Number(n)) if n.is_i64() || n.is_u64() => {
                // An integer without annotation is Edm.Int32; beyond its range it is
                // refused rather than guessed at (callers must annotate Edm.Int64).
                Prop::Int32(
                    n.as_i64()
                        .and_then(|v| i32::try_from(v).ok())
                        .ok_or_else(bad)?,
                )
            }
            (None | Some("Edm.Double"), Value::Number(n)) => {
                Prop::Double(n.as_f64().ok_or_else(bad)?)
            }
            (Some("Edm.Double"), Value::String(s)) => match s.as_str() {
                "NaN" => Prop::Double(f64::NAN),
                "Infinity" => Prop::Double(f64::INFINITY),
                "-Infinity" => Prop::Double(f64::NEG_INFINITY),
                _ => return Err(bad()),
            },
            (Some("Edm.Int64"), Value::String(s)) => Prop::Int64(s.parse().map_err(|_| bad())?),
            (Some("Edm.DateTime"), Value::String(s)) => {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad())?;
                Prop::DateTime(s.clone())
            }
            (Some("Edm.Guid"), Value::String(s)) => {
                uuid::Uuid::parse_str(s).map_err(|_| bad())?;
                Prop::Guid(s.clone())
            }
            (Some("Edm.Binary"), Value::String(s))
                if s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) =>
            {
                Prop::Binary(s.clone())
            }
            (Some(t), _) if !t.starts_with("Edm.") => {
                return Err(invalid(format!(
                    "{what}: unknown type '{t}' of property '{name}'"
                )))
            }
            _ => return Err(bad()),
        };
        if let Prop::Str(_) | Prop::Binary(_) = prop {
            if prop.size() - 4 > MAX_VALUE_BYTES {
                return Err(refuse(
                    400,
                    "PropertyValueTooLarge",
                    format!(
                        "{what}: property '{name}' is {} bytes; the limit is {MAX_VALUE_BYTES}",
                        prop.size() - 4
                    ),
                ));
            }
        }
        props.insert(name.clone(), prop);
    }
    Ok(props)
}

/// The whole entity's limits, after a merge too.
fn check_entity_limits(
    what: &str,
    pk: &str,
    rk: &str,
    props: &BTreeMap<String, Prop>,
) -> Served<()> {
    if props.len() > MAX_USER_PROPERTIES {
        return Err(refuse(
            400,
            "TooManyProperties",
            format!(
                "{what} has {} properties; the limit is {MAX_USER_PROPERTIES}",
                props.len()
            ),
        ));
    }
    // 4 bytes + keys as UTF-16 + per property 8 bytes, its name as UTF-16 and its value;
    // Timestamp counts too.
    let keys = (pk.encode_utf16().count() + rk.encode_utf16().count()) * 2;
    let size = 4
        + keys
        + (8 + "Timestamp".len() * 2 + 8)
        + props
            .iter()
            .map(|(n, p)| 8 + n.encode_utf16().count() * 2 + p.size())
            .sum::<usize>();
    if size > MAX_ENTITY_BYTES {
        return Err(refuse(
            400,
            "EntityTooLarge",
            format!("{what} is {size} bytes; the limit is {MAX_ENTITY_BYTES}"),
        ));
    }
    Ok(())
}

fn render(pk: &str, rk: &str, row: &Row) -> Entity {
    let mut properties = Map::new();
    properties.insert(
        "Timestamp@odata.type".into(),
        Value::String("Edm.DateTime".into()),
    );
    properties.insert("Timestamp".into(), Value::String(format_ticks(row.ticks)));
    for (name, prop) in &row.props {
        prop.render(name, &mut properties);
    }
    Entity {
        partition_key: pk.to_owned(),
        row_key: rk.to_owned(),
        properties,
        etag: Some(table_etag(row.ticks)),
    }
}

fn not_found(what: &str) -> Refusal {
    refuse(
        404,
        "ResourceNotFound",
        format!("The specified resource does not exist: {what}"),
    )
}

/// One write's new row, or why it is refused. Rows are read from `rows`, unchanged.
enum Write<'a> {
    Insert(&'a Entity),
    Upsert(&'a Entity, WriteMode),
    Update(&'a Entity, &'a IfMatch, WriteMode),
}

fn written(
    table: &str,
    rows: &Rows,
    write: Write<'_>,
    clock: &mut Clock,
    now: Instant,
) -> Served<Row> {
    let (entity, mode) = match write {
        Write::Insert(e) => (e, WriteMode::Replace),
        Write::Upsert(e, m) | Write::Update(e, _, m) => (e, m),
    };
    let what = format!("entity {table}/{}/{}", entity.partition_key, entity.row_key);
    check_key("PartitionKey", &entity.partition_key)?;
    check_key("RowKey", &entity.row_key)?;
    let mut props = parse_props(&what, entity)?;
    let existing = rows.get(&(entity.partition_key.clone(), entity.row_key.clone()));
    match (&write, existing) {
        (Write::Insert(_), Some(_)) => {
            return Err(refuse(
                409,
                "EntityAlreadyExists",
                format!("The specified entity already exists: {what}"),
            ))
        }
        (Write::Update(..), None) => return Err(not_found(&what)),
        (Write::Update(_, IfMatch::ETag(want), _), Some(row)) if *want != table_etag(row.ticks) => {
            return Err(refuse(
                412,
                "UpdateConditionNotSatisfied",
                format!(
                    "The update condition specified in the request was not satisfied: {what} is at {}, If-Match {want}",
                    table_etag(row.ticks)
                ),
            ))
        }
        _ => {}
    }
    if let (WriteMode::Merge, Some(row)) = (mode, existing) {
        let mut merged = row.props.clone();
        merged.append(&mut props);
        props = merged;
    }
    check_entity_limits(&what, &entity.partition_key, &entity.row_key, &props)?;
    Ok(Row {
        props,
        ticks: clock.stamp(now),
    })
}

fn deleted_row(table: &str, rows: &Rows, pk: &str, rk: &str, if_match: &IfMatch) -> Served<()> {
    let what = format!("entity {table}/{pk}/{rk}");
    let row = rows
        .get(&(pk.to_owned(), rk.to_owned()))
        .ok_or_else(|| not_found(&what))?;
    if let IfMatch::ETag(want) = if_match {
        if *want != table_etag(row.ticks) {
            return Err(refuse(
                412,
                "UpdateConditionNotSatisfied",
                format!(
                    "The update condition specified in the request was not satisfied: {what} is at {}, If-Match {want}",
                    table_etag(row.ticks)
                ),
            ));
        }
    }
    Ok(())
}

impl Tables {
    fn rows(&mut self, table: &str) -> Served<&mut Rows> {
        self.tables
            .get_mut(&table.to_ascii_lowercase())
            .ok_or_else(|| {
                refuse(
                    404,
                    "TableNotFound",
                    format!("The table specified does not exist: '{table}'"),
                )
            })
    }

    pub fn apply(&mut self, op: &Op, now: Instant, clock: &mut Clock) -> Result<Answer> {
        match op {
            Op::Batch {
                table,
                partition_key,
                ops,
            } => self.batch(table, partition_key, ops, now, clock),
            Op::QueryPartition {
                table,
                partition_key,
                filter,
                page_size,
                continuation,
            } => {
                // Parsed before anything else: an unsupported filter must never pass silently.
                let filter = match filter.as_deref().filter(|f| !f.trim().is_empty()) {
                    Some(f) => Some(Filter::parse(f)?),
                    None => None,
                };
                self.query(
                    table,
                    partition_key,
                    filter.as_ref(),
                    page_size.map_or(MAX_PAGE, |n| n as usize),
                    continuation.as_ref(),
                )
                .map(Answer::Page)
                .map_err(Refusal::into_error)
            }
            _ => self.single(op, now, clock).map_err(Refusal::into_error),
        }
    }

    fn single(&mut self, op: &Op, now: Instant, clock: &mut Clock) -> Served<Answer> {
        match op {
            Op::EnsureTable { table } => {
                let key = table.to_ascii_lowercase();
                if self.tables.contains_key(&key) {
                    return Ok(Answer::Bool(false));
                }
                if let Some(at) = self.deleted.get(&key) {
                    if now < *at + TABLE_DELETE_DELAY {
                        return Err(refuse(
                            409,
                            "TableBeingDeleted",
                            format!("The specified table is being deleted: '{table}'"),
                        ));
                    }
                }
                self.deleted.remove(&key);
                self.tables.insert(key, Rows::new());
                Ok(Answer::Bool(true))
            }
            Op::DeleteTable { table } => {
                self.rows(table)?;
                let key = table.to_ascii_lowercase();
                self.tables.remove(&key);
                self.deleted.insert(key, now);
                Ok(Answer::Unit)
            }
            Op::InsertEntity { table, entity } => {
                self.write(table, Write::Insert(entity), now, clock)
            }
            Op::UpsertEntity {
                table,
                entity,
                mode,
            } => self.write(table, Write::Upsert(entity, *mode), now, clock),
            Op::UpdateEntity {
                table,
                entity,
                if_match,
                mode,
            } => self.write(table, Write::Update(entity, if_match, *mode), now, clock),
            Op::GetEntity {
                table,
                partition_key,
                row_key,
            } => {
                let rows = self.rows(table)?;
                let row = rows
                    .get(&(partition_key.clone(), row_key.clone()))
                    .ok_or_else(|| {
                        not_found(&format!("entity {table}/{partition_key}/{row_key}"))
                    })?;
                Ok(Answer::Entity(render(partition_key, row_key, row)))
            }
            Op::DeleteEntity {
                table,
                partition_key,
                row_key,
                if_match,
            } => {
                let rows = self.rows(table)?;
                deleted_row(table, rows, partition_key, row_key, if_match)?;
                rows.remove(&(partition_key.clone(), row_key.clone()));
                Ok(Answer::Unit)
            }
            other => Err(invalid(format!(
                "not a table operation: {}",
                other.describe()
            ))),
        }
    }

    fn write(
        &mut self,
        table: &str,
        write: Write<'_>,
        now: Instant,
        clock: &mut Clock,
    ) -> Served<Answer> {
        let rows = self.rows(table)?;
        let key = match &write {
            Write::Insert(e) | Write::Upsert(e, _) | Write::Update(e, _, _) => {
                (e.partition_key.clone(), e.row_key.clone())
            }
        };
        let row = written(table, rows, write, clock, now)?;
        let etag = table_etag(row.ticks);
        rows.insert(key, row);
        Ok(Answer::ETag(etag))
    }

    fn query(
        &mut self,
        table: &str,
        pk: &str,
        filter: Option<&Filter>,
        page: usize,
        continuation: Option<&Continuation>,
    ) -> Served<Page> {
        let rows = self.rows(table)?;
        let start = match continuation {
            Some(c) => (
                c.next_partition_key.clone(),
                c.next_row_key.clone().unwrap_or_default(),
            ),
            None => (pk.to_owned(), String::new()),
        };
        let mut entities = Vec::new();
        let mut next = None;
        for ((p, r), row) in rows.range(start..) {
            if p != pk {
                if p.as_str() > pk {
                    break;
                }
                continue;
            }
            if entities.len() == page {
                // Where the scan stopped: the next row, whether or not it matches.
                next = Some(Continuation {
                    next_partition_key: p.clone(),
                    next_row_key: Some(r.clone()),
                });
                break;
            }
            let value = |name: &str| -> Option<&str> {
                match name {
                    "PartitionKey" => Some(p.as_str()),
                    "RowKey" => Some(r.as_str()),
                    _ => match row.props.get(name) {
                        Some(Prop::Str(s)) => Some(s.as_str()),
                        _ => None,
                    },
                }
            };
            if filter.is_none_or(|f| f.matches(&value)) {
                entities.push(render(p, r, row));
            }
        }
        Ok(Page {
            entities,
            continuation: next,
        })
    }

    /// An entity-group transaction: every operation is judged against the rows as they were
    /// before it, since a row appears at most once; the first refusal fails it whole.
    fn batch(
        &mut self,
        table: &str,
        pk: &str,
        ops: &[BatchOp],
        now: Instant,
        clock: &mut Clock,
    ) -> Result<Answer> {
        let fail = |index: usize, r: Refusal| {
            // As the adapter reports a failed changeset: the part's status, no code.
            let e = classify_answer(
                r.status,
                None,
                Some(&format!(
                    "batch rejected as a whole; no operation was applied (operation {index}: {} {})",
                    r.code, r.message
                )),
            );
            if r.status == 409 {
                e.with_kind(ErrorKind::AlreadyExists)
            } else {
                e
            }
        };
        if ops.len() > MAX_BATCH_OPERATIONS {
            return Err(fail(
                0,
                invalid(format!(
                    "The batch request operation exceeds the maximum {MAX_BATCH_OPERATIONS} changes per change set ({} given)",
                    ops.len()
                )),
            ));
        }
        let rows = self.rows(table).map_err(|r| fail(0, r))?;
        let mut seen = std::collections::BTreeSet::new();
        let mut staged: Vec<((String, String), Option<Row>)> = Vec::with_capacity(ops.len());
        let mut etags = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let (p, r) = match op {
                BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _, _) => {
                    (e.partition_key.as_str(), e.row_key.as_str())
                }
                BatchOp::Delete { row_key, .. } => (pk, row_key.as_str()),
            };
            if p != pk {
                return Err(fail(
                    i,
                    refuse(
                        400,
                        "CommandsInBatchActOnDifferentPartitions",
                        format!("batch on {table}/{pk} has an operation on partition '{p}'"),
                    ),
                ));
            }
            if !seen.insert(r.to_owned()) {
                return Err(fail(
                    i,
                    refuse(
                        400,
                        "InvalidDuplicateRow",
                        format!("A command with RowKey '{r}' is already present in the batch on {table}/{pk}"),
                    ),
                ));
            }
            let key = (pk.to_owned(), r.to_owned());
            let outcome = match op {
                BatchOp::Insert(e) => written(table, rows, Write::Insert(e), clock, now).map(Some),
                BatchOp::Upsert(e, m) => {
                    written(table, rows, Write::Upsert(e, *m), clock, now).map(Some)
                }
                BatchOp::Update(e, c, m) => {
                    written(table, rows, Write::Update(e, c, *m), clock, now).map(Some)
                }
                BatchOp::Delete { row_key, if_match } => {
                    deleted_row(table, rows, pk, row_key, if_match).map(|()| None)
                }
            };
            let row = outcome.map_err(|r| fail(i, r))?;
            etags.push(row.as_ref().map(|row| table_etag(row.ticks)));
            staged.push((key, row));
        }
        for (key, row) in staged {
            match row {
                Some(row) => rows.insert(key, row),
                None => rows.remove(&key),
            };
        }
        Ok(Answer::Batch(etags))
    }
}
