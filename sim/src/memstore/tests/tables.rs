//! Entities, limits, entity-group transactions, filters and paging.

use std::time::Duration;

use samza_azure_coordinator::storage::{
    BatchOp, Continuation, ETag, Entity, IfMatch, LeaseDuration, Page, PageQuery, TableStore,
    Update, WriteMode,
};
use samza_azure_coordinator::{Error, ErrorKind};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::advance;

use super::*;
use crate::memstore::{clock, Answer, Endpoint, MemStore, Op};
#[tokio::test(start_paused = true)]
async fn entities_carry_server_timestamps_and_etags() {
    let s = with_table().await;
    advance(Duration::from_millis(5_123)).await;
    let e1 = s
        .insert_entity(
            T,
            &row("a")
                .with("n", 5)
                .with("big", "12")
                .with("big@odata.type", "Edm.Int64"),
        )
        .await
        .unwrap();
    assert_eq!(e1.0, "W/\"datetime'2026-01-01T00%3A00%3A05.1230000Z'\"");
    let got = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(got.etag, Some(e1.clone()));
    let stamp = got.get_str("Timestamp").unwrap();
    assert_eq!(stamp, "2026-01-01T00:00:05.1230000Z");
    assert_eq!(got.get_str("Timestamp@odata.type"), Some("Edm.DateTime"));
    let t = OffsetDateTime::parse(stamp, &Rfc3339).unwrap();
    assert_eq!(t.unix_timestamp(), clock::EPOCH_UNIX_SECONDS + 5);
    assert_eq!(got.properties["n"], 5);
    assert_eq!(got.properties["big"], "12");
    assert_eq!(got.get_str("big@odata.type"), Some("Edm.Int64"));
    assert_eq!(s.server_time(), "2026-01-01T00:00:05.1230000Z");
    // Two writes at one instant still get distinct ETags.
    let e2 = s
        .upsert_entity(T, &row("a"), WriteMode::Merge)
        .await
        .unwrap();
    assert_ne!(e1, e2);
    // Sent back as read (Timestamp and its annotation included), it writes the same data.
    s.update_entity(T, &got, Update::replace(IfMatch::ETag(e2)))
        .await
        .unwrap();
    let again = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(again.properties["big"], "12");
    assert_ne!(again.get_str("Timestamp"), Some(stamp));
}

#[tokio::test(start_paused = true)]
async fn conditional_writes_and_merges() {
    let s = Endpoint(MemStore::new());
    refused(
        s.insert_entity(T, &row("a")).await,
        (ErrorKind::NotFound, 404, "TableNotFound"),
    );
    let e = s.get_entity(T, "p", "a").await.unwrap_err();
    assert_eq!(e.storage_code(), Some("TableNotFound"));
    s.ensure_table(T).await.unwrap();
    let v1 = s
        .insert_entity(T, &row("a").with("x", "1").with("y", "1"))
        .await
        .unwrap();
    refused(
        s.insert_entity(T, &row("a")).await,
        (ErrorKind::AlreadyExists, 409, "EntityAlreadyExists"),
    );
    // Merge keeps what it does not name; replace drops it.
    let v2 = s
        .update_entity(
            T,
            &row("a").with("y", "2"),
            Update::merge(IfMatch::ETag(v1.clone())),
        )
        .await
        .unwrap();
    let got = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!((got.get_str("x"), got.get_str("y")), (Some("1"), Some("2")));
    refused(
        s.update_entity(T, &row("a"), Update::replace(IfMatch::ETag(v1.clone())))
            .await,
        (
            ErrorKind::PreconditionFailed,
            412,
            "UpdateConditionNotSatisfied",
        ),
    );
    s.update_entity(T, &row("a").with("z", true), Update::replace(IfMatch::Any))
        .await
        .unwrap();
    let got = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(
        (got.get_str("x"), got.properties.get("z")),
        (None, Some(&true.into()))
    );
    refused(
        s.update_entity(T, &row("b"), Update::merge(IfMatch::Any))
            .await,
        (ErrorKind::NotFound, 404, "ResourceNotFound"),
    );
    // Upserts create or replace/merge.
    s.upsert_entity(T, &row("b").with("x", "1"), WriteMode::Merge)
        .await
        .unwrap();
    s.upsert_entity(T, &row("b").with("y", "1"), WriteMode::Merge)
        .await
        .unwrap();
    let b = s.get_entity(T, "p", "b").await.unwrap();
    assert_eq!((b.get_str("x"), b.get_str("y")), (Some("1"), Some("1")));
    s.upsert_entity(T, &row("b").with("y", "2"), WriteMode::Replace)
        .await
        .unwrap();
    let b = s.get_entity(T, "p", "b").await.unwrap();
    assert_eq!((b.get_str("x"), b.get_str("y")), (None, Some("2")));
    // Deletes with If-Match.
    let e = s
        .delete_entity(T, &Entity::new("p", "b"), &IfMatch::ETag(v2))
        .await
        .unwrap_err();
    assert_eq!(e.storage_code(), Some("UpdateConditionNotSatisfied"));
    s.delete_entity(T, &Entity::new("p", "b"), &IfMatch::ETag(b.etag.unwrap()))
        .await
        .unwrap();
    refused(
        s.delete_entity(T, &Entity::new("p", "b"), &IfMatch::Any)
            .await,
        (ErrorKind::NotFound, 404, "ResourceNotFound"),
    );
    // Table names are case-insensitive; a deleted name is unusable for 40 s.
    assert!(!s.ensure_table("MEMBERS").await.unwrap());
    s.delete_table(T).await.unwrap();
    refused(
        s.ensure_table(T).await,
        (ErrorKind::Transient, 409, "TableBeingDeleted"),
    );
    let e = s.get_entity(T, "p", "a").await.unwrap_err();
    assert_eq!(e.storage_code(), Some("TableNotFound"));
    advance(secs(40)).await;
    assert!(s.ensure_table(T).await.unwrap());
    assert!(s.get_entity(T, "p", "a").await.is_err());
}

#[tokio::test(start_paused = true)]
async fn service_limits_answer_with_azures_codes() {
    let s = with_table().await;
    let code = |r: Result<ETag, Error>| {
        let e = r.unwrap_err();
        assert_eq!(
            (e.kind(), e.status()),
            (ErrorKind::BadRequest, Some(400)),
            "{e}"
        );
        e.storage_code().unwrap().to_owned()
    };
    // 32,768 UTF-16 units is 64 KiB: allowed; one more is not.
    s.insert_entity(T, &row("ok").with("s", "x".repeat(32_768)))
        .await
        .unwrap();
    // Characters outside the BMP count twice.
    for long in ["x".repeat(32_769), "\u{1F600}".repeat(16_385)] {
        let e = row("a").with("s", long);
        assert_eq!(code(s.insert_entity(T, &e).await), "PropertyValueTooLarge");
    }
    let mut e = row("a");
    for i in 0..253 {
        e = e.with(&format!("p{i}"), i);
    }
    assert_eq!(code(s.insert_entity(T, &e).await), "TooManyProperties");
    let mut e = row("a");
    for i in 0..252 {
        e = e.with(&format!("p{i}"), i);
    }
    s.insert_entity(T, &e).await.unwrap();
    // 17 × 64,000 bytes as UTF-16 is over 1 MiB although the JSON is half that.
    let mut e = row("big");
    for i in 0..17 {
        e = e.with(&format!("c{i}"), "y".repeat(32_000));
    }
    assert_eq!(code(s.insert_entity(T, &e).await), "EntityTooLarge");
    // A merge is judged on the merged entity.
    let mut half = row("big");
    for i in 0..9 {
        half = half.with(&format!("c{i}"), "y".repeat(32_000));
    }
    s.insert_entity(T, &half).await.unwrap();
    let mut rest = row("big");
    for i in 9..17 {
        rest = rest.with(&format!("c{i}"), "y".repeat(32_000));
    }
    assert_eq!(
        code(s.upsert_entity(T, &rest, WriteMode::Merge).await),
        "EntityTooLarge"
    );
    // Typed values must be what they claim; an unannotated integer is an Int32.
    for e in [
        row("a").with("n", "x").with("n@odata.type", "Edm.Int64"),
        row("a").with("n", 1i64 << 40),
        row("a").with("n", "1").with("n@odata.type", "Edm.Thing"),
    ] {
        assert_eq!(code(s.insert_entity(T, &e).await), "InvalidInput", "{e:?}");
    }
    // Forbidden key characters: the adapter refuses them before sending...
    let e = s.insert_entity(T, &row("a/b")).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    // ...and so would the service (U+007F-U+009F are control characters too).
    let r = s.apply(&Op::InsertEntity {
        table: T.into(),
        entity: row("a\u{85}b"),
    });
    assert!(r.is_err());
}

#[tokio::test(start_paused = true)]
async fn batches_are_all_or_nothing() {
    let s = with_table().await;
    let v = s.insert_entity(T, &row("a").with("x", "1")).await.unwrap();
    let ops = vec![
        BatchOp::Upsert(row("b"), WriteMode::Replace),
        BatchOp::Update(
            row("a").with("x", "2"),
            Update::merge(IfMatch::ETag(v.clone())),
        ),
        BatchOp::Insert(row("c")),
    ];
    let etags = s.batch(T, "p", ops.clone()).await.unwrap();
    assert!(etags.iter().all(Option::is_some));
    let a = s.get_entity(T, "p", "a").await.unwrap();
    assert_eq!(a.etag, etags[1]);
    // The same again: the update's ETag and the insert are stale, so nothing applies.
    s.delete_entity(T, &Entity::new("p", "b"), &IfMatch::Any)
        .await
        .unwrap();
    let e = s.batch(T, "p", ops).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.status()),
        (ErrorKind::PreconditionFailed, Some(412)),
        "{e}"
    );
    assert!(
        e.message().contains("no operation was applied") && e.message().contains("operation 1"),
        "{e}"
    );
    assert!(
        s.get_entity(T, "p", "b").await.is_err(),
        "the upsert was applied"
    );
    // A 409 in a batch is an insert that found its row.
    let e = s
        .batch(T, "p", vec![delete("a"), BatchOp::Insert(row("c"))])
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.status()),
        (ErrorKind::AlreadyExists, Some(409))
    );
    s.get_entity(T, "p", "a").await.unwrap();
    // Deletes answer no ETag.
    let etags = s
        .batch(T, "p", vec![delete("a"), BatchOp::Insert(row("d"))])
        .await
        .unwrap();
    assert!(etags[0].is_none() && etags[1].is_some());
    // One row at most once.
    let e = s
        .batch(
            T,
            "p",
            vec![BatchOp::Upsert(row("e"), WriteMode::Merge), delete("e")],
        )
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, Some(400)));
    assert!(e.message().contains("InvalidDuplicateRow"), "{e}");
    assert!(s.get_entity(T, "p", "e").await.is_err());
    // More than 100, or another partition: refused before sending.
    let many = (0..101)
        .map(|i| BatchOp::Insert(row(&format!("r{i}"))))
        .collect();
    let e = s.batch(T, "p", many).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    let e = s
        .batch(T, "p", vec![BatchOp::Insert(Entity::new("q", "x"))])
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    // The service refuses them too, should a request reach it.
    let served = s.state.lock().unwrap().tables.apply(
        &Op::Batch {
            table: T.into(),
            partition_key: "p".into(),
            ops: vec![BatchOp::Insert(Entity::new("q", "x"))],
        },
        tokio::time::Instant::now(),
        &mut clock::Clock::new(),
    );
    assert!(served
        .unwrap_err()
        .message()
        .contains("CommandsInBatchActOnDifferentPartitions"));
    let hundred = (0..100)
        .map(|i| BatchOp::Insert(row(&format!("r{i:03}"))))
        .collect();
    assert_eq!(s.batch(T, "p", hundred).await.unwrap().len(), 100);
    assert!(s.batch(T, "p", Vec::new()).await.unwrap().is_empty());
    let e = s
        .batch("absent", "p", vec![BatchOp::Insert(row("x"))])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn filters_the_code_uses() {
    let s = with_table().await;
    for rk in [
        "a", "b", "t|owner", "t|v1.0", "t}", "u|owner", "~clock", "~probe~a", "o'neil",
    ] {
        s.insert_entity(T, &row(rk).with("who", rk)).await.unwrap();
    }
    s.insert_entity(T, &Entity::new("other", "a"))
        .await
        .unwrap();
    let q = |f: &str| {
        let f = f.to_owned();
        let s = &s;
        async move { s.partition_rows(T, "p", Some(&f)).await.unwrap() }
    };
    assert_eq!(
        keys(&q("RowKey lt '~probe~'").await),
        ["a", "b", "o'neil", "t|owner", "t|v1.0", "t}", "u|owner", "~clock"]
    );
    assert_eq!(keys(&q("RowKey ge '~probe~'").await), ["~probe~a"]);
    let task = format!(
        "RowKey ge {} and RowKey lt {}",
        samza_azure_coordinator::storage::quote("t|"),
        samza_azure_coordinator::storage::quote("t}")
    );
    assert_eq!(keys(&q(&task).await), ["t|owner", "t|v1.0"]);
    assert_eq!(keys(&q("RowKey eq 'a' or RowKey eq 'b'").await), ["a", "b"]);
    assert_eq!(
        keys(&q("(RowKey gt 'a' and RowKey le 'b') or who eq 'u|owner'").await),
        ["b", "u|owner"]
    );
    assert_eq!(
        keys(
            &q(&format!(
                "who eq {}",
                samza_azure_coordinator::storage::quote("o'neil")
            ))
            .await
        ),
        ["o'neil"]
    );
    assert_eq!(keys(&q("RowKey ne 'a' and RowKey lt 'o'").await), ["b"]);
    assert_eq!(
        keys(&q("PartitionKey eq 'p' and RowKey eq 'a'").await),
        ["a"]
    );
    assert_eq!(keys(&q("PartitionKey eq 'other'").await).len(), 0);
    // A comparison with an absent property is false.
    assert!(q("nothing eq 'a'").await.is_empty());
    // Anything else fails loudly, naming the filter.
    for bad in [
        "heartbeats gt 5L",
        "not RowKey eq 'a'",
        "RowKey eq 'a' and",
        "startswith(RowKey, 'a')",
        "RowKey lt 'a",
    ] {
        let e = query_page(&s, Some(bad), None, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{bad}");
        assert!(e.message().contains(bad), "{e}");
    }
}

#[tokio::test(start_paused = true)]
async fn queries_page_in_row_key_order_with_continuations() {
    let s = with_table().await;
    let e = s.query_partition(T, "p", PageQuery::default()).await;
    assert!(e.unwrap().entities.is_empty());
    for i in (0..2_500).rev() {
        s.upsert_entity(T, &row(&format!("r{i:05}")), WriteMode::Replace)
            .await
            .unwrap();
    }
    s.insert_entity(T, &Entity::new("q", "r00000"))
        .await
        .unwrap();
    let pages = s.query_pages(T, "p", None).await.unwrap();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    let all: Vec<String> = pages.into_iter().flatten().map(|e| e.row_key).collect();
    let want: Vec<String> = (0..2_500).map(|i| format!("r{i:05}")).collect();
    assert_eq!(all, want);
    let page = query_page(&s, None, Some(7), None).await.unwrap();
    assert_eq!(
        keys(&page.entities),
        ["r00000", "r00001", "r00002", "r00003", "r00004", "r00005", "r00006"]
    );
    let c = page.continuation.unwrap();
    assert_eq!(
        (c.next_partition_key.as_str(), c.next_row_key.as_deref()),
        ("p", Some("r00007"))
    );
    let next = query_page(&s, None, Some(2), Some(c)).await.unwrap();
    assert_eq!(keys(&next.entities), ["r00007", "r00008"]);
    // A filtered page stops where the scan stopped; the last page may be empty.
    let f = "RowKey ge 'r02497'";
    let page = query_page(&s, Some(f), Some(3), None).await.unwrap();
    assert_eq!(keys(&page.entities), ["r02497", "r02498", "r02499"]);
    assert!(page.continuation.is_none());
    let f = "RowKey lt 'r00003'";
    let page = query_page(&s, Some(f), Some(3), None).await.unwrap();
    assert!(page.continuation.is_some());
    let last = query_page(&s, Some(f), Some(3), page.continuation)
        .await
        .unwrap();
    assert!(last.entities.is_empty() && last.continuation.is_none());
    for bad in [0, 1001] {
        let e = query_page(&s, None, Some(bad), None).await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
    }
    assert!(s
        .partition_rows("absent", "p", None)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn ops_describe_themselves() {
    let op = Op::ReplaceDocument {
        blob: blob(),
        body: body("x"),
        if_match: None,
        lease: None,
    };
    assert_eq!(op.describe(), "replace document jobs/j-1/jobmodel");
    assert!(op.is_write());
    let read = Op::GetEntity {
        table: T.into(),
        partition_key: "p".into(),
        row_key: "r".into(),
    };
    assert_eq!(read.describe(), "read members/p/r");
    assert!(!read.is_write());
    assert!(Op::AcquireLease {
        blob: blob(),
        duration: LeaseDuration::Infinite,
        proposed: None
    }
    .is_write());
    let s = Endpoint(MemStore::new());
    assert_eq!(
        s.apply(&Op::EnsureContainer {
            container: "jobs".into()
        })
        .unwrap(),
        Answer::Bool(true)
    );
}

#[tokio::test(start_paused = true)]
async fn property_types_and_names_round_trip_as_the_adapter_returns_them() {
    let s = with_table().await;
    let e = row("a")
        .with("s", "text")
        .with("b", true)
        .with("i", -7)
        .with("d", 1.5)
        .with("whole", 2.0)
        .with("l", "9000000000")
        .with("l@odata.type", "Edm.Int64")
        .with("g", "c9da6455-213d-42c9-9a79-3e9149a57833")
        .with("g@odata.type", "Edm.Guid")
        .with("t", "2008-07-10T00:00:00Z")
        .with("t@odata.type", "Edm.DateTime")
        .with("typed", "x")
        .with("typed@odata.type", "Edm.String")
        .with("gone", serde_json::Value::Null);
    s.insert_entity(T, &e).await.unwrap();
    let got = s.get_entity(T, "p", "a").await.unwrap();
    let mut want = e.properties.clone();
    // Strings are never annotated on the way back; a null writes nothing.
    want.remove("typed@odata.type");
    want.remove("gone");
    want.insert("Timestamp@odata.type".into(), "Edm.DateTime".into());
    want.insert("Timestamp".into(), got.properties["Timestamp"].clone());
    assert_eq!(got.properties, want);
    // Straight to the service, past the adapter's own checks.
    let code = |e: Entity| {
        let mut guard = s.state.lock().unwrap();
        let st = &mut *guard;
        let op = Op::InsertEntity {
            table: T.into(),
            entity: e,
        };
        let r = st
            .tables
            .apply(&op, tokio::time::Instant::now(), &mut st.clock);
        r.unwrap_err().storage_code().unwrap().to_owned()
    };
    assert_eq!(code(row("b").with("bad.name", 1)), "PropertyNameInvalid");
    assert_eq!(
        code(row("b").with(&"n".repeat(256), 1)),
        "PropertyNameTooLong"
    );
    assert_eq!(
        code(row("b").with("n", serde_json::json!([1]))),
        "InvalidInput"
    );
    assert_eq!(code(row(&"k".repeat(1025))), "KeyValueTooLarge");
    assert_eq!(code(row("a#b")), "OutOfRangeInput");
    // Keys are checked on reads too, before sending.
    let e = s.get_entity(T, "p", "a?b").await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::BadRequest, None));
}

/// A batch's unconditional delete of row `rk`.
fn delete(rk: &str) -> BatchOp {
    BatchOp::Delete {
        row_key: rk.into(),
        if_match: IfMatch::Any,
    }
}

/// One page of partition "p" of `T`.
async fn query_page(
    s: &Endpoint<MemStore>,
    filter: Option<&str>,
    page_size: Option<u32>,
    continuation: Option<Continuation>,
) -> Result<Page, Error> {
    let query = PageQuery {
        filter,
        page_size,
        continuation,
    };
    s.query_partition(T, "p", query).await
}
