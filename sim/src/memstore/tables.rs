//! Table Storage: entities with typed properties, Azure's limits, conditional writes,
//! entity-group transactions and paged partition queries.

use std::collections::BTreeMap;
use std::time::Duration;

use samza_azure_coordinator::storage::{
    classify_answer, BatchOp, Continuation, Entity, IfMatch, Page, WriteMode, MAX_BATCH_OPERATIONS,
};
use samza_azure_coordinator::{ErrorKind, Result};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::clock::{format_ticks, table_etag, Clock};
use super::filter::Filter;
use super::props::{check_entity_limits, check_key, invalid, parse_props, Prop};
use super::{refuse, Answer, Op, Refusal, Served};

const MAX_PAGE: usize = 1000;
/// A deleted table's name cannot be used again for at least this long.
const TABLE_DELETE_DELAY: Duration = Duration::from_secs(40);

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
        (Write::Update(_, if_match, _), Some(row)) => check_if_match(&what, row, if_match)?,
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
    check_if_match(&what, row, if_match)
}

/// 412 when `if_match` names an ETag other than the row's.
fn check_if_match(what: &str, row: &Row, if_match: &IfMatch) -> Served<()> {
    match if_match {
        IfMatch::ETag(want) if *want != table_etag(row.ticks) => Err(refuse(
            412,
            "UpdateConditionNotSatisfied",
            format!(
                "The update condition specified in the request was not satisfied: {what} is at {}, If-Match {want}",
                table_etag(row.ticks)
            ),
        )),
        _ => Ok(()),
    }
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
                BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _) => {
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
                BatchOp::Update(e, u) => written(
                    table,
                    rows,
                    Write::Update(e, &u.if_match, u.mode),
                    clock,
                    now,
                )
                .map(Some),
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
