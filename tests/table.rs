//! Table Storage against a real (strict) Azurite.

mod common;

use common::{azurite, unique};
use samza_azure_coordinator::storage::{
    AzureStorage, BatchOp, Entity, IfMatch, PageQuery, TableStore, Update, WriteMode,
    MAX_BATCH_OPERATIONS,
};
use samza_azure_coordinator::ErrorKind;

async fn table(s: &AzureStorage) -> String {
    let t = unique("t");
    assert!(s.ensure_table(&t).await.unwrap());
    assert!(
        !s.ensure_table(&t).await.unwrap(),
        "second ensure reports existing"
    );
    t
}

#[tokio::test]
async fn insert_read_conditional_update_merge_delete() {
    let s = azurite().storage();
    let t = table(&s).await;
    let e = Entity::new("job", "p1").with("host", "a").with("gen", 1);
    let v1 = s.insert_entity(&t, &e).await.unwrap();
    let err = s.insert_entity(&t, &e).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");

    let read = s.get_entity(&t, "job", "p1").await.unwrap();
    assert_eq!(read.get_str("host"), Some("a"));
    assert_eq!(read.properties.get("gen").and_then(|v| v.as_i64()), Some(1));
    assert!(
        read.properties.contains_key("Timestamp"),
        "server timestamp is returned"
    );
    assert_eq!(read.etag.as_ref(), Some(&v1));

    let v2 = s
        .update_entity(
            &t,
            &Entity::new("job", "p1").with("host", "b"),
            Update::replace(IfMatch::ETag(v1.clone())),
        )
        .await
        .unwrap();
    let err = s
        .update_entity(
            &t,
            &Entity::new("job", "p1").with("host", "c"),
            Update::replace(IfMatch::ETag(v1.clone())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PreconditionFailed, "{err}");
    let read = s.get_entity(&t, "job", "p1").await.unwrap();
    assert_eq!(read.get_str("host"), Some("b"));
    assert!(
        !read.properties.contains_key("gen"),
        "replace removed the old property"
    );

    s.update_entity(
        &t,
        &Entity::new("job", "p1").with("gen", 7),
        Update::merge(IfMatch::ETag(v2.clone())),
    )
    .await
    .unwrap();
    let read = s.get_entity(&t, "job", "p1").await.unwrap();
    assert_eq!(
        (
            read.get_str("host"),
            read.properties.get("gen").and_then(|v| v.as_i64())
        ),
        (Some("b"), Some(7))
    );

    let err = s
        .delete_entity(&t, &Entity::new("job", "p1"), &IfMatch::ETag(v2))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PreconditionFailed, "{err}");
    s.delete_entity(&t, &Entity::new("job", "p1"), &IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(
        s.get_entity(&t, "job", "p1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn upsert_replace_and_merge() {
    let s = azurite().storage();
    let t = table(&s).await;
    s.upsert_entity(
        &t,
        &Entity::new("p", "r").with("a", "1").with("b", "1"),
        WriteMode::Replace,
    )
    .await
    .unwrap();
    s.upsert_entity(&t, &Entity::new("p", "r").with("b", "2"), WriteMode::Merge)
        .await
        .unwrap();
    let read = s.get_entity(&t, "p", "r").await.unwrap();
    assert_eq!(
        (read.get_str("a"), read.get_str("b")),
        (Some("1"), Some("2"))
    );
    s.upsert_entity(
        &t,
        &Entity::new("p", "r").with("c", "3"),
        WriteMode::Replace,
    )
    .await
    .unwrap();
    let read = s.get_entity(&t, "p", "r").await.unwrap();
    assert_eq!((read.get_str("a"), read.get_str("c")), (None, Some("3")));
}

#[tokio::test]
async fn typed_int64_round_trips() {
    let s = azurite().storage();
    let t = table(&s).await;
    let big = i64::MAX.to_string();
    s.insert_entity(
        &t,
        &Entity::new("p", "r")
            .with("v", big.as_str())
            .with("v@odata.type", "Edm.Int64"),
    )
    .await
    .unwrap();
    let read = s.get_entity(&t, "p", "r").await.unwrap();
    assert_eq!(read.get_str("v"), Some(big.as_str()));
    assert_eq!(read.get_str("v@odata.type"), Some("Edm.Int64"));
}

#[tokio::test]
async fn query_partition_with_filter_and_continuation() {
    let s = azurite().storage();
    let t = table(&s).await;
    let ops: Vec<BatchOp> = (0..25)
        .map(|i| {
            BatchOp::Insert(Entity::new("members", format!("p{i:02}")).with("alive", i % 5 != 0))
        })
        .collect();
    s.batch(&t, "members", ops).await.unwrap();
    s.insert_entity(&t, &Entity::new("other", "x").with("alive", true))
        .await
        .unwrap();

    let mut rows = Vec::new();
    let mut pages = 0;
    let mut cont = None;
    loop {
        let page = s
            .query_partition(
                &t,
                "members",
                PageQuery {
                    page_size: Some(10),
                    continuation: cont,
                    ..PageQuery::default()
                },
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.entities.len() <= 10);
        assert!(
            page.entities.iter().all(|e| e.etag.is_some()),
            "query rows carry ETags"
        );
        rows.extend(page.entities);
        cont = page.continuation;
        if cont.is_none() {
            break;
        }
    }
    assert_eq!(
        rows.len(),
        25,
        "all rows of the partition and none of another"
    );
    assert!(pages >= 3, "continuation was exercised ({pages} pages)");

    let alive = s
        .query_partition(
            &t,
            "members",
            PageQuery {
                filter: Some("alive eq true"),
                ..PageQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(alive.entities.len(), 20);
    assert!(alive.continuation.is_none());
}

#[tokio::test]
async fn batch_of_100_is_atomic_and_failures_are_errors() {
    let s = azurite().storage();
    let t = table(&s).await;
    let full: Vec<BatchOp> = (0..MAX_BATCH_OPERATIONS)
        .map(|i| BatchOp::Insert(Entity::new("b", format!("r{i:03}"))))
        .collect();
    let etags = s.batch(&t, "b", full).await.unwrap();
    assert_eq!(etags.len(), MAX_BATCH_OPERATIONS);
    assert!(etags.iter().all(Option::is_some));

    let too_many: Vec<BatchOp> = (0..=MAX_BATCH_OPERATIONS)
        .map(|i| BatchOp::Insert(Entity::new("c", format!("r{i:03}"))))
        .collect();
    let e = s.batch(&t, "c", too_many).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert!(e.message().contains("101"), "{e}");

    // One conflicting insert sinks the whole batch: the new row must not appear.
    let conflicting = vec![
        BatchOp::Insert(Entity::new("b", "fresh")),
        BatchOp::Insert(Entity::new("b", "r000")),
    ];
    let e = s.batch(&t, "b", conflicting).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(
        s.get_entity(&t, "b", "fresh").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // A stale If-Match inside a batch is a precondition failure, also atomic.
    let current = s.get_entity(&t, "b", "r001").await.unwrap();
    s.upsert_entity(
        &t,
        &Entity::new("b", "r001").with("x", 1),
        WriteMode::Replace,
    )
    .await
    .unwrap();
    let stale = vec![
        BatchOp::Upsert(Entity::new("b", "fresh2"), WriteMode::Replace),
        BatchOp::Update(
            Entity::new("b", "r001").with("x", 2),
            Update::replace(IfMatch::ETag(current.etag.unwrap())),
        ),
        BatchOp::Delete {
            row_key: "r002".into(),
            if_match: IfMatch::Any,
        },
    ];
    let e = s.batch(&t, "b", stale).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert_eq!(
        s.get_entity(&t, "b", "fresh2").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        s.get_entity(&t, "b", "r002").await.is_ok(),
        "delete in the failed batch was rolled back"
    );

    let mixed_partition = vec![BatchOp::Insert(Entity::new("z", "r"))];
    assert_eq!(
        s.batch(&t, "b", mixed_partition).await.unwrap_err().kind(),
        ErrorKind::BadRequest
    );
}

#[tokio::test]
async fn table_lifecycle_and_bad_names() {
    let s = azurite().storage();
    let t = table(&s).await;
    s.delete_table(&t).await.unwrap();
    let e = s.get_entity(&t, "p", "r").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = s.ensure_table("9bad").await.unwrap_err();
    assert!(e.message().contains("9bad"), "{e}");
    let e = s
        .insert_entity(&t, &Entity::new("p", "a/b"))
        .await
        .unwrap_err();
    assert!(e.message().contains("RowKey"), "{e}");
}

/// Keys may hold single quotes (a Samza task or processor name can); every operation that
/// addresses an entity by its keys reaches the right one.
#[tokio::test]
async fn keys_with_quotes_are_addressed_exactly() {
    let s = azurite().storage();
    let t = table(&s).await;
    let (pk, rk) = ("it's", "o'k''");
    let inserted = s
        .insert_entity(&t, &Entity::new(pk, rk).with("n", 1))
        .await
        .unwrap();
    let read = s.get_entity(&t, pk, rk).await.unwrap();
    assert_eq!(
        (read.partition_key.as_str(), read.row_key.as_str()),
        (pk, rk)
    );
    let merged = s
        .update_entity(
            &t,
            &Entity::new(pk, rk).with("m", 2),
            Update::merge(IfMatch::ETag(inserted)),
        )
        .await
        .unwrap();
    s.upsert_entity(
        &t,
        &Entity::new(pk, "other'").with("n", 3),
        WriteMode::Replace,
    )
    .await
    .unwrap();
    let etags = s
        .batch(
            &t,
            pk,
            vec![
                BatchOp::Update(
                    Entity::new(pk, rk).with("m", 4),
                    Update::merge(IfMatch::ETag(merged)),
                ),
                BatchOp::Delete {
                    row_key: "other'".into(),
                    if_match: IfMatch::Any,
                },
            ],
        )
        .await
        .unwrap();
    assert!(etags[0].is_some());
    let read = s.get_entity(&t, pk, rk).await.unwrap();
    assert_eq!(
        read.properties.get("m").and_then(|v| v.as_i64()),
        Some(4),
        "{read:?}"
    );
    let gone = s.get_entity(&t, pk, "other'").await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
    s.delete_entity(&t, &Entity::new(pk, rk), &IfMatch::Any)
        .await
        .unwrap();
    let page = s
        .query_partition(&t, pk, PageQuery::default())
        .await
        .unwrap();
    assert!(page.entities.is_empty(), "{:?}", page.entities);
}
