//! Blob leases on the Azure backend.

use std::time::Duration;

use async_trait::async_trait;
use azure_core::request_options::{
    LeaseBreakPeriod, LeaseDuration as SdkDuration, LeaseId as SdkLeaseId, ProposedLeaseId,
};

use super::azure::{classify, AzureStorage};
use super::retry::Idempotency;
use super::{BlobRef, LeaseDuration, LeaseId, LeaseStore};
use crate::error::{Error, Result};

fn to_sdk(lease: LeaseId) -> SdkLeaseId {
    SdkLeaseId::from(lease.0)
}

fn sdk_duration(duration: LeaseDuration) -> SdkDuration {
    match duration {
        LeaseDuration::Seconds(s) => SdkDuration::Seconds(s),
        LeaseDuration::Infinite => SdkDuration::Infinite,
    }
}

fn from_sdk(lease: &SdkLeaseId) -> Result<LeaseId> {
    LeaseId::parse(&lease.to_string())
        .map_err(|_| Error::internal(format!("storage returned a non-UUID lease id '{lease}'")))
}

#[async_trait]
impl LeaseStore for AzureStorage {
    async fn acquire_lease(
        &self,
        blob: &BlobRef,
        duration: LeaseDuration,
        proposed: Option<LeaseId>,
    ) -> Result<LeaseId> {
        // Proposing our own id makes a retry after a lost response idempotent: re-acquiring
        // with the same id while we hold it succeeds.
        let proposed = proposed.unwrap_or_else(LeaseId::random);
        self.run_on(
            format!("acquire lease on {blob}"),
            Idempotency::Idempotent,
            self.blob_client(blob),
            |client| async move {
                let resp = client
                    .acquire_lease(sdk_duration(duration))
                    .proposed_lease_id(ProposedLeaseId::from(to_sdk(proposed)))
                    .await
                    .map_err(classify)?;
                from_sdk(&resp.lease_id)
            },
        )
        .await
    }

    async fn renew_lease(
        &self,
        blob: &BlobRef,
        lease: LeaseId,
        deadline: Option<Duration>,
    ) -> Result<()> {
        // The one call with a deadline of its own, so it goes through `run` itself.
        let client = self.blob_client(blob).blob_lease_client(to_sdk(lease));
        self.run(
            format!("renew lease on {blob}"),
            Idempotency::Idempotent,
            deadline,
            || {
                let renew = client.renew();
                async move { renew.await.map(|_| ()).map_err(classify) }
            },
        )
        .await
    }

    async fn release_lease(&self, blob: &BlobRef, lease: LeaseId) -> Result<()> {
        self.run_on(
            format!("release lease on {blob}"),
            Idempotency::Idempotent,
            self.blob_client(blob).blob_lease_client(to_sdk(lease)),
            |client| async move { client.release().await.map(|_| ()).map_err(classify) },
        )
        .await
    }

    async fn break_lease(&self, blob: &BlobRef, break_period: Duration) -> Result<Duration> {
        if break_period > Duration::from_secs(60) {
            return Err(Error::bad_request(format!(
                "lease break period must be 0-60 seconds, found {} s",
                break_period.as_secs()
            )));
        }
        self.run_on(
            format!("break lease on {blob}"),
            Idempotency::Idempotent,
            self.blob_client(blob),
            |client| async move {
                let resp = client
                    .break_lease()
                    .lease_break_period(LeaseBreakPeriod::from(break_period))
                    .await
                    .map_err(classify)?;
                Ok(Duration::from_secs(u64::from(resp.lease_time)))
            },
        )
        .await
    }

    async fn change_lease(
        &self,
        blob: &BlobRef,
        lease: LeaseId,
        proposed: LeaseId,
    ) -> Result<LeaseId> {
        // Not idempotent: after a lost response the old id no longer works, and the new one
        // does. The retry reports that conflict as an unknown outcome.
        self.run_on(
            format!("change lease on {blob}"),
            Idempotency::Conditional,
            self.blob_client(blob).blob_lease_client(to_sdk(lease)),
            |client| async move {
                let resp = client
                    .change(ProposedLeaseId::from(to_sdk(proposed)))
                    .await
                    .map_err(classify)?;
                from_sdk(&resp.lease_id)
            },
        )
        .await
    }
}
