//! Table Storage on the Azure backend.

use std::future::IntoFuture;

use async_trait::async_trait;
use azure_core::Continuable;
use azure_data_tables::prelude::{EntityClient, Filter, Top};
use azure_data_tables::IfMatchCondition;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::azure::{classify, from_status, AzureStorage};
use super::names::{validate_key, validate_table};
use super::retry::Idempotency;
use super::{
    BatchOp, Continuation, ETag, Entity, IfMatch, Page, PageQuery, TableStore, Update, WriteMode,
    MAX_BATCH_OPERATIONS,
};
use crate::error::{Error, ErrorKind, Result};

/// Service limit on one entity's serialized size.
pub const MAX_ENTITY_BYTES: usize = 1024 * 1024;

type Json = Map<String, Value>;

fn validate_keys(partition_key: &str, row_key: &str) -> Result<()> {
    validate_key("PartitionKey", partition_key)?;
    validate_key("RowKey", row_key)
}

/// The properties sent for `entity`: its own, less the ones the service sets (and any
/// `odata.*` metadata a read entity carries), plus its keys. The simulator's storage reads
/// writes in this form too.
pub fn wire_properties(entity: &Entity) -> Map<String, Value> {
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

fn to_json(table: &str, entity: &Entity) -> Result<Json> {
    validate_keys(&entity.partition_key, &entity.row_key)?;
    let json = wire_properties(entity);
    let size = serde_json::to_vec(&json)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_ENTITY_BYTES {
        return Err(Error::bad_request(format!(
            "entity {table}/{}/{} is {size} bytes; the limit is {MAX_ENTITY_BYTES}",
            entity.partition_key, entity.row_key
        )));
    }
    Ok(json)
}

fn from_json(mut json: Json, etag: Option<ETag>) -> Result<Entity> {
    let take = |json: &mut Json, key: &str| match json.remove(key) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(Error::internal(format!("entity without a string {key}"))),
    };
    let partition_key = take(&mut json, "PartitionKey")?;
    let row_key = take(&mut json, "RowKey")?;
    let etag = etag.or_else(|| {
        json.get("odata.etag")
            .and_then(Value::as_str)
            .map(|s| ETag(s.to_owned()))
    });
    json.retain(|k, _| !k.starts_with("odata."));
    Ok(Entity {
        partition_key,
        row_key,
        properties: json,
        etag,
    })
}

fn sdk_if_match(m: &IfMatch) -> IfMatchCondition {
    match m {
        IfMatch::Any => IfMatchCondition::Any,
        IfMatch::ETag(e) => IfMatchCondition::Etag(e.0.clone().into()),
    }
}

/// OData string literal: single quotes doubled.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A key as the SDK needs it for an entity's address: it writes keys into the OData literal
/// `(PartitionKey='..',RowKey='..')` as given, so a quote in a key must come doubled.
fn url_key(key: &str) -> String {
    key.replace('\'', "''")
}

fn sdk_err(what: &str) -> impl Fn(azure_core::Error) -> Error + '_ {
    move |e| Error::bad_request(format!("cannot encode {what}: {}", e.kind()))
}

impl AzureStorage {
    /// The client addressing one entity.
    fn entity_client(&self, table: &str, partition_key: &str, row_key: &str) -> EntityClient {
        self.table_client(table)
            .partition_key_client(url_key(partition_key))
            .entity_client(url_key(row_key))
    }

    /// Writes `entity` at its keys, its properties replacing the row's or merged into them as
    /// `mode` says: without `if_match` an upsert (the row need not exist), with it an update
    /// (the row must exist and match).
    async fn put_entity(
        &self,
        table: &str,
        entity: &Entity,
        mode: WriteMode,
        if_match: Option<&IfMatch>,
    ) -> Result<ETag> {
        let json = to_json(table, entity)?;
        let verb = if if_match.is_some() {
            "update"
        } else {
            "upsert"
        };
        self.run_on(
            format!("{verb} {table}/{}/{}", entity.partition_key, entity.row_key),
            if_match.map_or(Idempotency::Idempotent, Idempotency::of_condition),
            (
                self.entity_client(table, &entity.partition_key, &entity.row_key),
                json,
                if_match.map(sdk_if_match),
            ),
            |(client, json, cond)| async move {
                // The two kinds of request are built apart but sent and answered alike.
                let request = match (cond, mode) {
                    (None, WriteMode::Replace) => {
                        client.insert_or_replace(json).map(IntoFuture::into_future)
                    }
                    (None, WriteMode::Merge) => {
                        client.insert_or_merge(json).map(IntoFuture::into_future)
                    }
                    (Some(cond), WriteMode::Replace) => {
                        client.update(json, cond).map(IntoFuture::into_future)
                    }
                    (Some(cond), WriteMode::Merge) => {
                        client.merge(json, cond).map(IntoFuture::into_future)
                    }
                }
                .map_err(sdk_err("entity"))?;
                let resp = request.await.map_err(classify)?;
                Ok(ETag(resp.etag.to_string()))
            },
        )
        .await
    }
}

#[async_trait]
impl TableStore for AzureStorage {
    async fn ensure_table(&self, table: &str) -> Result<bool> {
        validate_table(table)?;
        self.run_create(
            format!("create table {table}"),
            self.table_client(table),
            |client| async move { client.create().await.map(|_| ()).map_err(classify) },
        )
        .await
    }

    async fn delete_table(&self, table: &str) -> Result<()> {
        validate_table(table)?;
        self.run_on(
            format!("delete table {table}"),
            Idempotency::Idempotent,
            self.table_client(table),
            |client| async move { client.delete().await.map(|_| ()).map_err(classify) },
        )
        .await
    }

    async fn insert_entity(&self, table: &str, entity: &Entity) -> Result<ETag> {
        let json = to_json(table, entity)?;
        self.run_on(
            format!("insert {table}/{}/{}", entity.partition_key, entity.row_key),
            Idempotency::Conditional,
            (self.table_client(table), json),
            |(client, json)| async move {
                let resp = client
                    .insert::<_, Json>(json)
                    .map_err(sdk_err("entity"))?
                    .await
                    .map_err(classify)?;
                Ok(ETag(resp.etag.to_string()))
            },
        )
        .await
    }

    async fn upsert_entity(&self, table: &str, entity: &Entity, mode: WriteMode) -> Result<ETag> {
        self.put_entity(table, entity, mode, None).await
    }

    async fn update_entity(&self, table: &str, entity: &Entity, update: Update) -> Result<ETag> {
        self.put_entity(table, entity, update.mode, Some(&update.if_match))
            .await
    }

    async fn get_entity(&self, table: &str, partition_key: &str, row_key: &str) -> Result<Entity> {
        validate_keys(partition_key, row_key)?;
        self.run_on(
            format!("read {table}/{partition_key}/{row_key}"),
            Idempotency::Idempotent,
            self.entity_client(table, partition_key, row_key),
            |client| async move {
                let resp = client.get::<Json>().await.map_err(classify)?;
                from_json(resp.entity, Some(ETag(resp.etag.to_string())))
            },
        )
        .await
    }

    async fn query_partition(
        &self,
        table: &str,
        partition_key: &str,
        query: PageQuery<'_>,
    ) -> Result<Page> {
        let PageQuery {
            filter,
            page_size,
            continuation,
        } = query;
        validate_table(table)?;
        let mut expr = format!("PartitionKey eq {}", quote(partition_key));
        if let Some(f) = filter.filter(|f| !f.trim().is_empty()) {
            expr = format!("({expr}) and ({f})");
        }
        if let Some(n) = page_size {
            if n == 0 || n > 1000 {
                return Err(Error::bad_request(format!(
                    "query page size must be 1-1000, found {n}"
                )));
            }
        }
        let client = self.table_client(table);
        self.run(
            format!("query {table}/{partition_key}"),
            Idempotency::Idempotent,
            None,
            || {
                let mut query = client.query().filter(Filter::new(expr.clone()));
                if let Some(n) = page_size {
                    query = query.top(Top::new(n));
                }
                if let Some(c) = &continuation {
                    query = query.initial_partition_key(c.next_partition_key.clone());
                    if let Some(rk) = &c.next_row_key {
                        query = query.initial_row_key(rk.clone());
                    }
                }
                async move {
                    let mut stream = query.into_stream::<Json>();
                    let page = match stream.next().await {
                        Some(p) => p.map_err(classify)?,
                        None => {
                            return Ok(Page {
                                entities: Vec::new(),
                                continuation: None,
                            })
                        }
                    };
                    let continuation = page.continuation().map(|(pk, rk)| Continuation {
                        next_partition_key: pk,
                        next_row_key: rk,
                    });
                    let entities = page
                        .entities
                        .into_iter()
                        .map(|e| from_json(e, None))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Page {
                        entities,
                        continuation,
                    })
                }
            },
        )
        .await
    }

    async fn batch(
        &self,
        table: &str,
        partition_key: &str,
        ops: Vec<BatchOp>,
    ) -> Result<Vec<Option<ETag>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if ops.len() > MAX_BATCH_OPERATIONS {
            return Err(Error::bad_request(format!(
                    "batch on {table}/{partition_key} has {} operations; the limit is {MAX_BATCH_OPERATIONS}",
                    ops.len()
                ),
            ));
        }
        validate_key("PartitionKey", partition_key)?;
        let mut encoded = Vec::with_capacity(ops.len());
        for op in &ops {
            let entity = match op {
                BatchOp::Insert(e) | BatchOp::Upsert(e, _) | BatchOp::Update(e, _) => Some(e),
                BatchOp::Delete { .. } => None,
            };
            if let Some(e) = entity {
                if e.partition_key != partition_key {
                    return Err(Error::bad_request(format!(
                        "batch on partition '{partition_key}' contains an entity of partition '{}'",
                        e.partition_key
                    )));
                }
                encoded.push(Some(to_json(table, e)?));
            } else {
                encoded.push(None);
            }
        }
        let idempotency = Idempotency::of_batch(&ops);
        let count = ops.len();
        self.run_on(
            format!("batch of {count} on {table}/{partition_key}"),
            idempotency,
            (
                self.table_client(table)
                    .partition_key_client(url_key(partition_key)),
                ops,
                encoded,
            ),
            |(client, ops, encoded)| async move {
                let mut tx = client.transaction();
                for (op, json) in ops.iter().zip(encoded) {
                    tx = match (op, json) {
                        (BatchOp::Insert(_), Some(j)) => tx.insert(j),
                        (BatchOp::Upsert(e, WriteMode::Replace), Some(j)) => {
                            tx.insert_or_replace(url_key(&e.row_key), j)
                        }
                        (BatchOp::Upsert(e, WriteMode::Merge), Some(j)) => {
                            tx.insert_or_merge(url_key(&e.row_key), j)
                        }
                        (BatchOp::Update(e, u), Some(j)) => {
                            let (row_key, cond) =
                                (url_key(&e.row_key), Some(sdk_if_match(&u.if_match)));
                            match u.mode {
                                WriteMode::Replace => tx.update(row_key, j, cond),
                                WriteMode::Merge => tx.merge(row_key, j, cond),
                            }
                        }
                        (BatchOp::Delete { row_key, if_match }, None) => {
                            tx.delete(url_key(row_key), Some(sdk_if_match(if_match)))
                        }
                        _ => {
                            return Err(Error::internal("batch operation and encoding out of step"))
                        }
                    }
                    .map_err(sdk_err("batch operation"))?;
                }
                let resp = tx.await.map_err(classify)?;
                // The SDK returns Ok for a failed changeset: the failure is in the parts.
                if let Some(failed) = resp
                    .operation_responses
                    .iter()
                    .find(|r| u16::from(r.status_code) >= 400)
                {
                    let e = from_status(
                        failed.status_code,
                        None,
                        Some("batch rejected as a whole; no operation was applied"),
                    );
                    // A 409 in a batch is an insert that found its row.
                    return Err(if u16::from(failed.status_code) == 409 {
                        e.with_kind(ErrorKind::AlreadyExists)
                    } else {
                        e
                    });
                }
                if resp.operation_responses.len() != count {
                    return Err(Error::internal(format!(
                        "batch of {count} operations answered with {} results",
                        resp.operation_responses.len()
                    )));
                }
                Ok(resp
                    .operation_responses
                    .into_iter()
                    .map(|r| r.etag.map(|e| ETag(e.to_string())))
                    .collect())
            },
        )
        .await
    }

    async fn delete_entity(&self, table: &str, entity: &Entity, if_match: &IfMatch) -> Result<()> {
        let (partition_key, row_key) = (&entity.partition_key, &entity.row_key);
        validate_keys(partition_key, row_key)?;
        self.run_on(
            format!("delete {table}/{partition_key}/{row_key}"),
            Idempotency::of_condition(if_match),
            (
                self.entity_client(table, partition_key, row_key),
                sdk_if_match(if_match),
            ),
            |(client, cond)| async move {
                client
                    .delete()
                    .if_match(cond)
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_single_quotes() {
        assert_eq!(quote("o'neil"), "'o''neil'");
    }

    #[test]
    fn json_roundtrip_strips_metadata_and_keeps_types() {
        let e = Entity::new("p", "r")
            .with("n", 5)
            .with("big", "12")
            .with("big@odata.type", "Edm.Int64");
        let json = to_json("t", &e).unwrap();
        assert_eq!(json["PartitionKey"], "p");
        let mut back = json.clone();
        back.insert("odata.etag".into(), Value::String("W/\"x\"".into()));
        let e2 = from_json(back, None).unwrap();
        assert_eq!(e2.properties, e.properties);
        assert_eq!(e2.etag, Some(ETag("W/\"x\"".into())));
    }

    #[test]
    fn oversized_entity_is_refused_with_its_name() {
        let e = Entity::new("p", "r").with("blob", "x".repeat(MAX_ENTITY_BYTES));
        let err = to_json("tbl", &e).unwrap_err();
        assert!(err.message().contains("tbl/p/r"), "{err}");
    }
}
