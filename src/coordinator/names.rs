//! A job's identity (`job.name`, `job.id`) and the storage names derived from it.
//!
//! [`JobIdentity::from_map`] is the one reader of those two keys: the coordinator, the
//! checkpoint manager, CoordinationUtils and the `JobStorageNames` tool all go through it, so
//! the same config always names the same storage.
//!
//! Sanitizing alone collides ("a-b" and "ab" both become "ab"), so every name ends with a
//! 64-bit FNV-1a hash of the exact (name, id) pair. FNV is fixed by its definition, unlike
//! std's hasher, so names stay stable across builds.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::storage::names::{validate_container, validate_table};
use crate::storage::BlobRef;

pub const KEY_JOB_NAME: &str = "job.name";
pub const KEY_JOB_ID: &str = "job.id";
/// Samza's `JobConfig.DEFAULT_JOB_ID`, for a config without `job.id`.
pub const DEFAULT_JOB_ID: &str = "1";

/// `job.name` and `job.id` as Samza's `JobConfig` reads them: exactly as given (no trimming:
/// " orders" and "orders" are different jobs to Samza too), `job.id` defaulting to "1" when
/// absent. A blank value is refused rather than read: it is almost always a template left
/// unfilled, and components used to disagree on it, so state written under it is ambiguous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobIdentity {
    pub name: String,
    pub id: String,
}

impl JobIdentity {
    pub fn from_map(config: &HashMap<String, String>) -> Result<Self> {
        Self::new(
            config.get(KEY_JOB_NAME).map(String::as_str),
            config.get(KEY_JOB_ID).map(String::as_str),
        )
    }

    /// `None` is a key absent from the config.
    pub fn new(name: Option<&str>, id: Option<&str>) -> Result<Self> {
        let name = match name {
            Some(n) if !n.trim().is_empty() => n,
            other => {
                return Err(Error::config(
                    KEY_JOB_NAME,
                    format!(
                        "a job name with a non-space character (it names the job's container \
                         and tables), found {}",
                        shown(other)
                    ),
                ))
            }
        };
        let id = match id {
            None => DEFAULT_JOB_ID,
            Some(i) if !i.trim().is_empty() => i,
            Some(i) => {
                return Err(Error::config(
                    KEY_JOB_ID,
                    format!(
                        "an id with a non-space character, or no {KEY_JOB_ID} for Samza's \
                         default {DEFAULT_JOB_ID}, found {}",
                        shown(Some(i))
                    ),
                ))
            }
        };
        Ok(JobIdentity {
            name: name.to_owned(),
            id: id.to_owned(),
        })
    }

    pub fn names(&self) -> Result<JobNames> {
        JobNames::new(&self.name, &self.id)
    }
}

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "no value".to_owned(), |v| format!("'{v}'"))
}

/// Blob holding the JobModel document; its lease is the leader lease.
pub const JOB_MODEL_BLOB: &str = "jobmodel";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobNames {
    /// Blob container of the job (lowercase, hyphens allowed).
    pub container: String,
    /// Table of the job's membership rows (letters and digits only).
    pub table: String,
    /// Table of the job's task checkpoints.
    pub checkpoint_table: String,
}

fn fnv1a64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator no job name contains, so ("ab", "c") and ("a", "bc") differ.
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl JobNames {
    pub fn new(job_name: &str, job_id: &str) -> Result<Self> {
        let hash = format!("{:016x}", fnv1a64(&[job_name, job_id]));
        let lower: String = format!("{job_name}-{job_id}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let readable = lower
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let readable: String = readable.chars().take(38).collect();
        let readable = readable.trim_end_matches('-');
        let container = if readable.is_empty() {
            format!("samza-{hash}")
        } else {
            format!("samza-{readable}-{hash}")
        };
        let alnum: String = format!("{job_name}{job_id}")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(42)
            .collect();
        let table = format!("samza{alnum}{hash}");
        // Its own hash, so it cannot equal the membership table even for contrived names.
        let short: String = alnum.chars().take(40).collect();
        let checkpoint_hash = fnv1a64(&[job_name, job_id, "checkpoints"]);
        let checkpoint_table = format!("samzacp{short}{checkpoint_hash:016x}");
        validate_container(&container)?;
        validate_table(&table)?;
        validate_table(&checkpoint_table)?;
        Ok(JobNames {
            container,
            table,
            checkpoint_table,
        })
    }

    pub fn job_model_blob(&self) -> BlobRef {
        BlobRef::new(&self.container, JOB_MODEL_BLOB).expect("validated container name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(pairs: &[(&str, &str)]) -> Result<JobIdentity> {
        JobIdentity::from_map(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn identity_is_read_as_samza_reads_it() {
        let j = identity(&[(KEY_JOB_NAME, " orders ")]).unwrap();
        assert_eq!(
            (j.name.as_str(), j.id.as_str()),
            (" orders ", DEFAULT_JOB_ID)
        );
        let j = identity(&[(KEY_JOB_NAME, "orders"), (KEY_JOB_ID, " 2")]).unwrap();
        assert_eq!(j.id, " 2");
        assert_ne!(j.names().unwrap(), JobNames::new("orders", "2").unwrap());
    }

    #[test]
    fn blank_or_missing_identity_is_refused_naming_the_key() {
        for bad in [vec![], vec![(KEY_JOB_NAME, "")], vec![(KEY_JOB_NAME, "  ")]] {
            let e = identity(&bad).unwrap_err();
            assert!(e.message().contains(KEY_JOB_NAME), "{e}");
        }
        for id in ["", " "] {
            let e = identity(&[(KEY_JOB_NAME, "j"), (KEY_JOB_ID, id)]).unwrap_err();
            assert!(e.message().contains(KEY_JOB_ID), "{e}");
            assert!(e.message().contains(DEFAULT_JOB_ID), "{e}");
        }
    }

    #[test]
    fn names_are_valid_readable_and_distinct() {
        let a = JobNames::new("Order Enricher", "1").unwrap();
        assert!(
            a.container.starts_with("samza-order-enricher-1-"),
            "{}",
            a.container
        );
        assert!(a.table.starts_with("samzaOrderEnricher1"), "{}", a.table);
        // Pairs that sanitize alike still get different names.
        let pairs = [
            ("a-b", "1"),
            ("ab", "1"),
            ("a", "b1"),
            ("ab1", ""),
            ("AB", "1"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (n, i) in pairs {
            let names = JobNames::new(n, i).unwrap();
            assert!(seen.insert(names.container.clone()), "{n}/{i}");
            assert!(seen.insert(names.table.clone()), "{n}/{i}");
            assert!(seen.insert(names.checkpoint_table.clone()), "{n}/{i}");
        }
    }

    #[test]
    fn long_and_odd_names_fit_the_limits() {
        let long = "x".repeat(500);
        let n = JobNames::new(&long, "7").unwrap();
        assert!(n.container.len() <= 63 && n.table.len() <= 63);
        assert!(n.checkpoint_table.len() <= 63, "{}", n.checkpoint_table);
        let n = JobNames::new("---", "__").unwrap();
        assert!(n.container.starts_with("samza-"), "{}", n.container);
        let n = JobNames::new("日本", "1").unwrap();
        assert!(validate_table(&n.table).is_ok());
    }
}
