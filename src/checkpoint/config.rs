//! The checkpoint manager's config: the job's checkpoint table, and whether and where to read
//! upstream samza-azure's checkpoints.

use std::collections::HashMap;

use super::upstream::upstream_table;
use crate::coordinator::names::JobIdentity;
use crate::error::{Error, Result};

pub const KEY_UPSTREAM_READ: &str = "task.checkpoint.azure.upstream.read";

pub const KEY_UPSTREAM_TABLE: &str = "task.checkpoint.azure.upstream.table";

/// What the checkpoint manager reads from the job's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    pub table: String,
    /// Where upstream samza-azure kept this job's checkpoints, if they are to be read.
    pub upstream_table: Option<String>,
}

impl CheckpointConfig {
    pub fn from_map(config: &HashMap<String, String>) -> Result<Self> {
        let job = JobIdentity::from_map(config)?;
        let read = match config.get(KEY_UPSTREAM_READ).map(|s| s.trim()) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(Error::config(
                    KEY_UPSTREAM_READ,
                    format!("true or false, got '{other}'"),
                ))
            }
        };
        let upstream_table = match config.get(KEY_UPSTREAM_TABLE) {
            Some(t) => {
                crate::storage::names::validate_table(t)
                    .map_err(|e| Error::config(KEY_UPSTREAM_TABLE, e.message()))?;
                t.clone()
            }
            None => upstream_table(&job.name),
        };
        Ok(CheckpointConfig {
            table: job.names()?.checkpoint_table,
            // A job name with no letters or digits gave upstream no valid table either.
            upstream_table: (read
                && crate::storage::names::validate_table(&upstream_table).is_ok())
            .then_some(upstream_table),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_bad_values_and_derives_tables() {
        let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = CheckpointConfig::from_map(&map(&[("job.name", "my-job")])).unwrap();
        assert_eq!(c.upstream_table.as_deref(), Some("myjob"));
        assert!(c.table.starts_with("samzacpmyjob1"), "{}", c.table);
        let off = map(&[("job.name", "j"), (KEY_UPSTREAM_READ, "false")]);
        assert_eq!(
            CheckpointConfig::from_map(&off).unwrap().upstream_table,
            None
        );
        let bad = map(&[("job.name", "j"), (KEY_UPSTREAM_READ, "yes")]);
        let e = CheckpointConfig::from_map(&bad).unwrap_err();
        assert!(e.message().contains(KEY_UPSTREAM_READ) && e.message().contains("yes"));
        let bad = map(&[("job.name", "j"), (KEY_UPSTREAM_TABLE, "no-dashes")]);
        let e = CheckpointConfig::from_map(&bad).unwrap_err();
        assert!(e.message().contains(KEY_UPSTREAM_TABLE), "{e}");
        let e = CheckpointConfig::from_map(&map(&[])).unwrap_err();
        assert!(e.message().contains("job.name"));
    }
}
