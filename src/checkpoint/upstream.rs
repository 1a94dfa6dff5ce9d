//! Reading upstream samza-azure's checkpoints, for a task with none of ours yet.

use crate::error::Result;
use crate::storage::TableStore;

/// Reads checkpoints in the layout of upstream samza-azure's AzureCheckpointManager: table
/// = job.name without non-alphanumerics, PartitionKey = task name, RowKey = the SSP as JSON,
/// property `Offset`. Returns (RowKey, offset) pairs; none when the table or task is absent.
pub async fn read_upstream<S: TableStore>(
    store: &S,
    table: &str,
    task: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let rows = store
        .partition_rows(table, task, None)
        .await
        .map_err(|e| e.context(format!("reading upstream checkpoints of '{task}'")))?;
    Ok(rows
        .into_iter()
        .map(|e| {
            let offset = e.get_str("Offset").map(str::to_owned);
            (e.row_key, offset)
        })
        .collect())
}

/// Upstream's table name for a job.
pub fn upstream_table(job_name: &str) -> String {
    job_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_table_names_drop_non_alphanumerics() {
        assert_eq!(upstream_table("my-job_1"), "myjob1");
    }
}
