//! The row layout of a job's checkpoint table, as pure functions: task keys, the owner row,
//! chunking a checkpoint's text inline or into extra rows (`layout`), and reading them back
//! whole or not at all (`assemble`). Nothing here touches storage.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::storage::{quote, BatchOp, Entity, IfMatch, WriteMode};

/// The one partition of a job's checkpoint table. Azure serves a partition up to about 2,000
/// entities/s: a commit writes one entity per checkpoint version, so that is a thousand tasks
/// committing versions 1 and 2 every second (Samza's default `task.commit.ms` is 60 s).
pub const PARTITION: &str = "tasks";

pub(super) const OWNER_ROW: &str = "owner";

/// UTF-16 code units per string property: the Table service allows 64 KiB per property.
const CHUNK_UNITS: usize = 32_000;

/// Chunks per extra row: 15 × 64,000 bytes stays under the 1 MiB entity limit.
const CHUNKS_PER_ROW: usize = 15;

/// Chunks per version kept in the owner row: three versions × 4 × 64,000 bytes stay under the
/// 1 MiB entity limit with the owner's own properties.
pub const INLINE_CHUNKS: usize = 4;

/// Largest checkpoint accepted, measured as it travels: JSON-escaped inside one transaction,
/// whose whole body the Table service limits to 4 MiB; the rest is left for the multipart
/// framing and the other properties.
pub const MAX_CHECKPOINT_BYTES: usize = 3 * 1024 * 1024 + 512 * 1024;

/// The length of `text` as a JSON string body (quotes, backslashes and control characters
/// are escaped).
pub(super) fn escaped_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// Who owns a task, as recorded in its `owner` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub processor: String,
    pub generation: u64,
}

/// Where a checkpoint version lives now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Stored {
    /// `v<version>c<n>` properties present in the owner row (some may be blanked).
    inline_props: usize,
    /// Extra rows `v<version>.<n>` (0: inline).
    rows: usize,
}

/// The task's name as a row-key prefix: escapes what the Table service forbids in keys
/// (`/ \\ # ?`, control characters), `|` (it ends the prefix) and `%` itself, so distinct task
/// names stay distinct and no task's rows fall in another's range.
pub fn task_key(task: &str) -> String {
    let mut out = String::with_capacity(task.len());
    for c in task.chars() {
        if matches!(c, '/' | '\\' | '#' | '?' | '%' | '|') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn owner_row(key: &str) -> String {
    format!("{key}|{OWNER_ROW}")
}

fn row_key(key: &str, version: u16, index: usize) -> String {
    format!("{key}|v{version}.{index}")
}

/// All of a task's rows and no other's: row keys from `<key>|` up to `<key>}` (`}` follows
/// `|`). A key never contains `|`, so another task's rows cannot sort in between.
pub(super) fn task_rows_filter(key: &str) -> String {
    format!(
        "RowKey ge {} and RowKey lt {}",
        quote(&format!("{key}|")),
        quote(&format!("{key}}}"))
    )
}

fn chunk_name(version: u16, index: usize) -> String {
    format!("v{version}c{index}")
}

/// Splits `text` into chunks of at most [`CHUNK_UNITS`] UTF-16 units, never inside a character.
fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut units) = (0, 0);
    for (i, c) in text.char_indices() {
        if units + c.len_utf16() > CHUNK_UNITS {
            out.push(&text[start..i]);
            start = i;
            units = 0;
        }
        units += c.len_utf16();
    }
    if start < text.len() || out.is_empty() {
        out.push(&text[start..]);
    }
    out
}

pub(super) fn owner_entity(key: &str, owner: &Owner) -> Entity {
    Entity::new(PARTITION, owner_row(key))
        .with("processor", owner.processor.as_str())
        .with("generation", owner.generation.to_string())
}

/// Stands for the owner of a row whose owner properties are malformed: no processor is named
/// so (ids never start with `~`), and generation 0 lets any claim take the task over.
pub(super) const MALFORMED_OWNER: &str = "~malformed owner row~";

pub(super) fn parse_owner(task: &str, e: &Entity) -> std::result::Result<Owner, String> {
    let processor = e.get_str("processor");
    let generation = e.get_str("generation").and_then(|g| g.parse().ok());
    match (processor, generation) {
        (Some(p), Some(generation)) if !p.is_empty() => Ok(Owner {
            processor: p.to_owned(),
            generation,
        }),
        _ => Err(format!(
            "the owner row of task '{task}' is malformed: expected string properties 'processor' (non-empty) and 'generation' (a whole number), found processor={}, generation={}",
            e.properties.get("processor").map_or("none".to_owned(), |v| v.to_string()),
            e.properties.get("generation").map_or("none".to_owned(), |v| v.to_string()),
        )),
    }
}

/// The owner-row merge and extra rows that store `text` as `version`, given where the
/// version lives now. Stale inline chunks are blanked (a merge cannot drop properties) and
/// stale extra rows deleted.
pub(super) fn layout(
    key: &str,
    version: u16,
    text: &str,
    before: Stored,
) -> (Entity, Vec<BatchOp>, Stored) {
    let parts = chunks(text);
    // Only the checkpoint's own properties: a write never touches who owns the task, so even
    // a write that storage wrongly let through could not hand the task back.
    let mut head =
        Entity::new(PARTITION, owner_row(key)).with(&format!("v{version}bytes"), text.len() as i64);
    let mut extra = Vec::new();
    let after = if parts.len() <= INLINE_CHUNKS {
        for (j, part) in parts.iter().enumerate() {
            head = head.with(&chunk_name(version, j), *part);
        }
        Stored {
            inline_props: before.inline_props.max(parts.len()),
            rows: 0,
        }
    } else {
        let groups: Vec<&[&str]> = parts.chunks(CHUNKS_PER_ROW).collect();
        for (i, group) in groups.iter().enumerate() {
            let mut e = Entity::new(PARTITION, row_key(key, version, i));
            for (j, part) in group.iter().enumerate() {
                e = e.with(&format!("c{j}"), *part);
            }
            extra.push(BatchOp::Upsert(e, WriteMode::Replace));
        }
        Stored {
            inline_props: before.inline_props,
            rows: groups.len(),
        }
    };
    let inline_now = if after.rows == 0 { parts.len() } else { 0 };
    for j in inline_now..before.inline_props {
        head = head.with(&chunk_name(version, j), "");
    }
    head = head
        .with(&format!("v{version}chunks"), inline_now as i64)
        .with(&format!("v{version}rows"), after.rows as i64);
    for i in after.rows..before.rows {
        extra.push(BatchOp::Delete {
            row_key: row_key(key, version, i),
            if_match: IfMatch::Any,
        });
    }
    (head, extra, after)
}

/// The version and index of an extra row, from the part of its key after `<task>|`.
pub(super) fn parse_extra(suffix: &str) -> Option<(u16, usize)> {
    let (v, i) = suffix.strip_prefix('v')?.split_once('.')?;
    Some((v.parse().ok()?, i.parse().ok()?))
}

/// The checkpoints in an owner row and its extra rows, each checked complete. A version that
/// is not (a chunk or row missing, a length that does not match) is left out of the
/// checkpoints, with what was expected and found in the third list; its rows are still in
/// `stored`, so the next write of that version replaces them whole.
#[allow(clippy::type_complexity)]
pub(super) fn assemble(
    task: &str,
    owner: &Entity,
    extra: &BTreeMap<u16, BTreeMap<usize, Entity>>,
) -> (BTreeMap<u16, String>, BTreeMap<u16, Stored>, Vec<String>) {
    let int = |name: &str| owner.properties.get(name).and_then(Value::as_i64);
    let mut checkpoints = BTreeMap::new();
    let mut stored = BTreeMap::new();
    let mut problems = Vec::new();
    let versions = owner.properties.keys().filter_map(|k| {
        k.strip_prefix('v')?
            .strip_suffix("bytes")?
            .parse::<u16>()
            .ok()
    });
    for version in versions.collect::<Vec<_>>() {
        let parts = extra.get(&version);
        let inline_props = (0..)
            .take_while(|j| owner.properties.contains_key(&chunk_name(version, *j)))
            .count();
        // Rows 0, 1, ... as far as they go: deleting a row that is absent would fail the
        // transaction that replaces this version.
        let rows_present = (0..)
            .take_while(|i| parts.is_some_and(|p| p.contains_key(i)))
            .count();
        match version_text(task, version, owner, parts, &int) {
            Ok((text, rows)) => {
                // Extra rows beyond `rows` are leftovers of an interrupted history; delete them
                // too.
                stored.insert(
                    version,
                    Stored {
                        inline_props,
                        rows: parts.map_or(0, BTreeMap::len).max(rows),
                    },
                );
                checkpoints.insert(version, text);
            }
            Err(problem) => {
                stored.insert(
                    version,
                    Stored {
                        inline_props,
                        rows: rows_present,
                    },
                );
                problems.push(problem);
            }
        }
    }
    (checkpoints, stored, problems)
}

/// One version's text and its count of extra rows, or what is wrong with it.
fn version_text(
    task: &str,
    version: u16,
    owner: &Entity,
    parts: Option<&BTreeMap<usize, Entity>>,
    int: &dyn Fn(&str) -> Option<i64>,
) -> std::result::Result<(String, usize), String> {
    let count = |name: String| {
        int(&name)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "checkpoint version {version} of task '{task}' is incomplete: expected property '{name}' (a whole number), found {}",
                    owner.properties.get(&name).map_or("none".to_owned(), |v| v.to_string())
                )
            })
    };
    let want = count(format!("v{version}bytes"))?;
    let inline = count(format!("v{version}chunks"))?;
    let rows = count(format!("v{version}rows"))?;
    let mut text = String::with_capacity(want.min(MAX_CHECKPOINT_BYTES));
    for j in 0..inline {
        let name = chunk_name(version, j);
        text.push_str(owner.get_str(&name).ok_or_else(|| {
            format!("checkpoint version {version} of task '{task}' is incomplete: expected {inline} inline chunks, property '{name}' is missing")
        })?);
    }
    for i in 0..rows {
        let row = parts.and_then(|p| p.get(&i)).ok_or_else(|| {
            format!(
                "checkpoint version {version} of task '{task}' is incomplete: expected {rows} extra rows, row '{}' is missing",
                row_key(&task_key(task), version, i)
            )
        })?;
        for j in 0..CHUNKS_PER_ROW {
            match row.get_str(&format!("c{j}")) {
                Some(s) => text.push_str(s),
                None => break,
            }
        }
    }
    if text.len() != want {
        return Err(format!(
            "checkpoint version {version} of task '{task}' is incomplete: expected {want} bytes, its chunks hold {}",
            text.len()
        ));
    }
    Ok((text, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_keys_escape_forbidden_characters_reversibly() {
        assert_eq!(task_key("Partition 0"), "Partition 0");
        assert_eq!(task_key("a/b#c?d\\e%f|g"), "a%2Fb%23c%3Fd%5Ce%25f%7Cg");
        assert_eq!(task_key("t\u{1}"), "t%01");
        // "%2F" written literally and "/" must not meet.
        assert_ne!(task_key("%2F"), task_key("/"));
    }

    #[test]
    fn chunks_respect_the_property_limit_and_characters() {
        let text = "é".repeat(CHUNK_UNITS + 5);
        let parts = chunks(&text);
        assert_eq!(parts.len(), 2);
        assert!(parts
            .iter()
            .all(|p| p.encode_utf16().count() <= CHUNK_UNITS));
        assert_eq!(parts.concat(), text);
        // A character outside the BMP is two UTF-16 units and is never split.
        let wide = "\u{1F600}".repeat(CHUNK_UNITS / 2 + 1);
        let parts = chunks(&wide);
        assert!(parts
            .iter()
            .all(|p| p.encode_utf16().count() <= CHUNK_UNITS));
        assert_eq!(parts.concat(), wide);
        assert_eq!(chunks(""), vec![""]);
    }

    /// Applies a layout the way storage would: merge into the owner, upsert and delete rows.
    fn apply(
        owner: &mut Entity,
        extra: &mut BTreeMap<u16, BTreeMap<usize, Entity>>,
        head: Entity,
        ops: Vec<BatchOp>,
    ) {
        assert_eq!(
            (head.partition_key.as_str(), head.row_key.as_str()),
            (PARTITION, "t|owner")
        );
        owner.properties.extend(head.properties);
        for op in ops {
            match op {
                BatchOp::Upsert(e, _) => {
                    assert_eq!(e.partition_key, PARTITION);
                    let (v, i) = parse_extra(e.row_key.strip_prefix("t|").unwrap()).unwrap();
                    extra.entry(v).or_default().insert(i, e);
                }
                BatchOp::Delete { row_key, .. } => {
                    let (v, i) = parse_extra(row_key.strip_prefix("t|").unwrap()).unwrap();
                    assert!(extra.get_mut(&v).unwrap().remove(&i).is_some(), "{row_key}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn entity_bytes(e: &Entity) -> usize {
        e.properties
            .iter()
            .map(|(k, v)| {
                k.len() * 2
                    + v.as_str()
                        .map(|s| s.encode_utf16().count() * 2)
                        .unwrap_or(8)
            })
            .sum()
    }

    #[test]
    fn checkpoints_move_between_inline_and_rows_and_read_back_whole() {
        let me = Owner {
            processor: "p".into(),
            generation: 3,
        };
        let mut owner = owner_entity("t", &me);
        let mut extra = BTreeMap::new();
        let mut stored = Stored::default();
        let small = "s".repeat(100);
        let big = "b".repeat(CHUNK_UNITS * CHUNKS_PER_ROW * 2 + 7);
        let medium = "m".repeat(CHUNK_UNITS * 3 + 1);
        for (i, text) in [&small, &big, &medium, &small, &big, &small]
            .iter()
            .enumerate()
        {
            let (head, ops, after) = layout("t", 2, text, stored);
            // Small and medium ones are one merge, with no transaction.
            assert_eq!(
                ops.is_empty(),
                text.len() <= CHUNK_UNITS * INLINE_CHUNKS && stored.rows == 0,
                "step {i}"
            );
            apply(&mut owner, &mut extra, head, ops);
            stored = after;
            let (read, seen, problems) = assemble("t", &owner, &extra);
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(read[&2], **text, "step {i}");
            assert_eq!(seen[&2], stored, "step {i}");
            assert!(owner.properties.len() <= 255);
            assert!(
                entity_bytes(&owner) < 1024 * 1024 / 3,
                "{}",
                entity_bytes(&owner)
            );
            for row in extra.values().flat_map(|r| r.values()) {
                assert!(entity_bytes(row) < 1024 * 1024 - 16 * 1024);
            }
        }
        // The other version is untouched by all this.
        let (head, ops, _) = layout("t", 1, "v1 text", Stored::default());
        apply(&mut owner, &mut extra, head, ops);
        let (read, _, _) = assemble("t", &owner, &extra);
        assert_eq!(read[&1], "v1 text");
        assert_eq!(read[&2], small);
    }

    #[test]
    fn a_missing_chunk_row_is_reported_and_left_out_not_a_short_checkpoint() {
        let me = Owner {
            processor: "p".into(),
            generation: 1,
        };
        let text = "y".repeat(CHUNK_UNITS * CHUNKS_PER_ROW + 10);
        let mut owner = owner_entity("t", &me);
        let mut extra = BTreeMap::new();
        let (head, ops, _) = layout("t", 1, &text, Stored::default());
        apply(&mut owner, &mut extra, head, ops);
        extra.get_mut(&1).unwrap().remove(&1);
        let (read, stored, problems) = assemble("t", &owner, &extra);
        assert!(!read.contains_key(&1), "{read:?}");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("incomplete") && problems[0].contains("'t|v1.1' is missing"),
            "{problems:?}"
        );
        // The row still there is known, so the next write of version 1 deletes it.
        assert_eq!(stored[&1].rows, 1);
    }

    #[test]
    fn escaped_length_is_what_serde_json_sends() {
        for text in [
            "plain",
            "{\"a\":\"b\\c\"}",
            "line\nbreak\ttab\u{1}\u{7f}é😀",
            "",
        ] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(escaped_len(text), json.len() - 2, "{text:?}");
        }
    }
}
